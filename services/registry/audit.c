#include "audit.h"

#include "netaddr.h"

#include <string.h>

static const db_stmt_t s_insert = {
    "audit_insert",
    "INSERT INTO audit_log (actor, action, object, addr, detail, client_key) VALUES ($1, $2, $3, $4, $5, $6)"};
/* A failure like one seen in the last AUDIT_REPEAT_WINDOW from the same
 * address counts on that row: a flood of bad callbacks or wrong setup
 * tokens is one line with a number, not a million rows. */
static const db_stmt_t s_repeat = {
    "audit_repeat", "WITH r AS (UPDATE audit_log SET repeats = repeats + 1, last_at = now() WHERE id = ("
                    "  SELECT id FROM audit_log WHERE action = $2 AND addr = $4 AND object = $3 AND detail = $5 "
                    "  AND at > now() - interval '" AUDIT_REPEAT_WINDOW "' ORDER BY id DESC LIMIT 1) RETURNING id) "
                    "INSERT INTO audit_log (actor, action, object, addr, detail, client_key) "
                    "SELECT $1, $2, $3, $4, $5, $6 WHERE NOT EXISTS (SELECT 1 FROM r)"};

static bool s_is_failure(const char *action)
{
    size_t n = strlen(action);
    return n > 7 && !strcmp(action + n - 7, ".failed");
}

db_rc_t audit_write(db_t *db, const char *actor, const char *action, const char *object, const char *addr,
                    const char *detail)
{
    db_params_t p;
    char key[80];
    netaddr_client_key(addr ? addr : "", key, sizeof key);
    db_params_init(&p);
    db_param_text(&p, actor && *actor ? actor : "unknown");
    db_param_text(&p, action);
    db_param_text(&p, object ? object : "");
    db_param_text(&p, addr ? addr : "");
    db_param_text(&p, detail ? detail : "");
    db_param_text(&p, key);
    return db_exec(db, s_is_failure(action) ? &s_repeat : &s_insert, &p, NULL);
}
