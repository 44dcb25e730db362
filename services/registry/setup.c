#include "setup.h"

#include "audit.h"
#include "crypto.h"
#include "log.h"

#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define SETUP_TOKEN_BYTES 32

static const db_stmt_t s_adopt = {"setup_adopt_token", "UPDATE settings SET setup_token_hash = $1, updated_at = now() "
                                                       "WHERE id = 1 AND setup_token_hash IS DISTINCT FROM $1"};
/* Only the registry that fills the empty slot logs its token. */
static const db_stmt_t s_first = {"setup_first_token",
                                  "UPDATE settings SET setup_token_hash = $1, updated_at = now() "
                                  "WHERE id = 1 AND setup_token_hash IS NULL RETURNING setup_mode"};
static const db_stmt_t s_store = {"setup_store_token",
                                  "UPDATE settings SET setup_token_hash = $1, updated_at = now() WHERE id = 1"};
static const db_stmt_t s_mode = {"setup_mode", "SELECT setup_mode FROM settings WHERE id = 1"};

static db_rc_t s_exec_hash(db_t *db, const db_stmt_t *stmt, const char *token, PGresult **res)
{
    uint8_t hash[32];
    db_params_t p;
    crypto_sha256(token, strlen(token), hash);
    db_params_init(&p);
    db_param_bytes(&p, hash, sizeof hash);
    return db_exec(db, stmt, &p, res);
}

static db_rc_t s_setup_mode(db_t *db, bool *on)
{
    PGresult *res = NULL;
    db_rc_t rc = db_exec(db, &s_mode, NULL, &res);
    if (rc == DB_OK)
        *on = PQntuples(res) == 1 && db_get_bool(res, 0, 0);
    PQclear(res);
    return rc;
}

int setup_token_init(db_t *db, const char *preset)
{
    int rc = -1;
    bool on = false;
    PGresult *res = NULL;
    char token[64] = "";
    if (preset && *preset) {
        if (s_exec_hash(db, &s_adopt, preset, &res) != DB_OK)
            goto out;
        if (strcmp(PQcmdTuples(res), "0") != 0)
            log_info("setup token taken from PORTICO_SETUP_TOKEN", NULL);
        if (s_setup_mode(db, &on) != DB_OK)
            goto out;
        if (on)
            log_info("setup mode is on: use the setup token from PORTICO_SETUP_TOKEN to open /admin", NULL);
        rc = 0;
        goto out;
    }
    if (crypto_random_token(SETUP_TOKEN_BYTES, token, sizeof token) < 0)
        goto out;
    if (s_exec_hash(db, &s_first, token, &res) != DB_OK)
        goto out;
    if (PQntuples(res) == 1) {
        /* The one time the token is shown: make it stand out. */
        log_warn("setup mode is on: use this setup token to open /admin", "setup_token=%s", token);
        rc = audit_write(db, "registry", AUDIT_SETUP_TOKEN_ISSUED, "settings", "", "first start") == DB_OK ? 0 : -1;
        goto out;
    }
    if (s_setup_mode(db, &on) != DB_OK)
        goto out;
    if (on)
        log_info("setup mode is on: use the setup token logged when Portico first started, or get a new one with "
                 "`portico-registry setup-mode on`",
                 NULL);
    rc = 0;
out:
    OPENSSL_cleanse(token, sizeof token);
    PQclear(res);
    return rc;
}

int setup_token_issue(db_t *db, const char *preset, const char *actor, char *out, size_t out_size)
{
    int rc = -1;
    char token[64] = "";
    out[0] = '\0';
    const char *use = preset;
    if (!preset || !*preset) {
        if (crypto_random_token(SETUP_TOKEN_BYTES, token, sizeof token) < 0 || strlen(token) >= out_size)
            goto out;
        use = token;
    }
    if (s_exec_hash(db, &s_store, use, NULL) != DB_OK)
        goto out;
    if (audit_write(db, actor, AUDIT_SETUP_TOKEN_ISSUED, "settings", "", use == token ? "new token" : "preset") !=
        DB_OK)
        goto out;
    if (use == token)
        memcpy(out, token, strlen(token) + 1);
    rc = 0;
out:
    OPENSSL_cleanse(token, sizeof token);
    return rc;
}
