#include "audit.h"

static const db_stmt_t s_insert = {
    "audit_insert", "INSERT INTO audit_log (actor, action, object, addr, detail) VALUES ($1, $2, $3, $4, $5)"};

db_rc_t audit_write(db_t *db, const char *actor, const char *action, const char *object, const char *addr,
                    const char *detail)
{
    db_params_t p;
    db_params_init(&p);
    db_param_text(&p, actor && *actor ? actor : "unknown");
    db_param_text(&p, action);
    db_param_text(&p, object ? object : "");
    db_param_text(&p, addr ? addr : "");
    db_param_text(&p, detail ? detail : "");
    return db_exec(db, &s_insert, &p, NULL);
}
