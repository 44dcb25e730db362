/* settings.* and audit.*: Setup Mode, the setup token, the audit log. */
#include "handlers.h"

#include "audit.h"
#include "log.h"
#include "netaddr.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Wrong setup tokens allowed from one client (an IPv4 address, an IPv6
 * /64: netaddr_client_key) before it waits a minute after its last failure. There is no overall limit: behind a proxy,
 * or with many attackers, it would let anyone lock the owner out, and the token's 256 bits make guessing hopeless
 * anyway. */
#define SETUP_FAILURES_PER_ADDR 10
#define MAX_SETUP_TOKEN 256
#define MAX_ADDR 64
#define MAX_ACTION 64
#define MAX_OBJECT 200
#define MAX_DETAIL 1000
#define AUDIT_LIST_DEFAULT 50
#define AUDIT_LIST_MAX 500

static const db_stmt_t s_get = {"settings_get",
                                "SELECT setup_mode, EXISTS (SELECT 1 FROM users WHERE is_admin) AS admin_exists, "
                                "(SELECT count(*) FROM integrations) AS integration_count FROM settings WHERE id = 1"};
static const db_stmt_t s_check = {
    "settings_check_token",
    "SELECT setup_mode, setup_token_hash, coalesce(setup_token_expires_at > now(), false) AS token_valid, "
    "(SELECT coalesce(sum(repeats), 0) FROM audit_log WHERE action = '" AUDIT_SETUP_TOKEN_FAILED "' "
    "  AND (client_key = $2 OR (client_key IS NULL AND addr = $1)) "
    "  AND coalesce(last_at, at) > now() - interval '1 minute') AS recent_failures "
    "FROM settings WHERE id = 1"};
/* Two statements: one that waited for the settings row (while an admin was
 * revoked, say) still sees the users as they were when it began, so
 * whether an admin is left is asked once the row is held. */
static const db_stmt_t s_lock = {"settings_lock_mode", "SELECT setup_mode FROM settings WHERE id = 1 FOR UPDATE"};
static const db_stmt_t s_admin_exists = {"settings_admin_exists",
                                         "SELECT EXISTS (SELECT 1 FROM users WHERE is_admin) AS admin_exists"};
static const db_stmt_t s_set_mode = {"settings_set_mode",
                                     "UPDATE settings SET setup_mode = $1, updated_at = now() WHERE id = 1"};
static const db_stmt_t s_end_setup_sessions = {"settings_end_setup_sessions", "DELETE FROM sessions WHERE setup"};
static const db_stmt_t s_audit_list = {
    "audit_list", "SELECT id, (extract(epoch FROM at) * 1000)::bigint AS at_ms, actor, action, object, addr, "
                  "detail || CASE WHEN repeats > 1 THEN format(' (%s times, the last at %s UTC)', repeats, "
                  "to_char(last_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')) ELSE '' END AS detail "
                  "FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2"};

static void s_reply_settings(db_t *db, bus_reply_t *reply)
{
    PGresult *res = NULL;
    db_rc_t rc = db_exec(db, &s_get, NULL, &res);
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        return;
    }
    Portico__Registry__Settings out = PORTICO__REGISTRY__SETTINGS__INIT;
    out.setup_mode = db_get_bool(res, 0, db_col(res, "setup_mode"));
    out.admin_exists = db_get_bool(res, 0, db_col(res, "admin_exists"));
    out.integration_count = db_get_int(res, 0, db_col(res, "integration_count"));
    bus_reply_ok(reply, &out.base);
    PQclear(res);
}

void h_settings_get(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    (void)msg;
    s_reply_settings(((reg_ctx_t *)ctx)->db, reply);
}

void h_settings_check_setup_token(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__CheckSetupTokenRequest *r = (const Portico__Registry__CheckSetupTokenRequest *)msg;
    PGresult *res = NULL;
    db_params_t p;
    char q[80];
    int idle = 0, absolute = 0;
    bool started = false;
    if (!reg_check_text(reply, DETAIL(ADDR), "address", r->addr, MAX_ADDR, REG_OPTIONAL))
        return;
    if (!r->session) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(SESSION), "the new session is required");
        return;
    }
    if (!reg_check_session(reply, r->session, &idle, &absolute))
        return;
    char key[80];
    netaddr_client_key(r->addr ? r->addr : "", key, sizeof key);
    db_params_init(&p);
    db_param_text(&p, r->addr);
    db_param_text(&p, key);
    db_rc_t rc = db_exec(c->db, &s_check, &p, &res);
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        return;
    }
    if (!db_get_bool(res, 0, db_col(res, "setup_mode"))) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(SETUP_OFF),
                      "Setup Mode is off: sign in with an admin account instead");
        goto out;
    }
    if (db_get_int(res, 0, db_col(res, "recent_failures")) >= SETUP_FAILURES_PER_ADDR) {
        log_warn("refused a setup token attempt: too many failures", "addr=%s", log_quote(r->addr, q, sizeof q));
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__RATE_LIMITED, DETAIL(RATE_LIMITED),
                      "too many wrong setup tokens: wait a minute and try again");
        goto out;
    }
    size_t stored_n = 0;
    uint8_t *stored = db_get_bytes(res, 0, db_col(res, "setup_token_hash"), &stored_n);
    uint8_t given[32];
    crypto_sha256(r->token, strlen(r->token), given);
    /* Digests of equal length, compared in constant time. */
    bool ok = stored && stored_n == sizeof given && strlen(r->token) <= MAX_SETUP_TOKEN &&
              crypto_equal(stored, given, sizeof given);
    free(stored);
    if (!ok) {
        log_warn("wrong setup token", "addr=%s", log_quote(r->addr, q, sizeof q));
        rc = audit_write(c->db, "setup", AUDIT_SETUP_TOKEN_FAILED, "settings", r->addr, "");
        if (rc != DB_OK)
            reg_reply_db(reply, rc);
        else
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(BAD_TOKEN),
                          "the setup token is not correct");
        goto out;
    }
    if (!db_get_bool(res, 0, db_col(res, "token_valid"))) {
        log_warn("refused an expired setup token", "addr=%s", log_quote(r->addr, q, sizeof q));
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(TOKEN_EXPIRED),
                      "this setup token has expired: get a new one on the registry's machine with "
                      "`portico-registry setup-mode on`");
        goto out;
    }
    /* The accepted token and the Setup Mode session it opens: one
     * transaction, so there is no session without a checked token. */
    if ((rc = db_begin(c->db)) == DB_OK &&
        (rc = audit_write(c->db, "setup", AUDIT_SETUP_TOKEN_ACCEPTED, "settings", r->addr, "")) == DB_OK &&
        (rc = reg_session_insert_setup(c->db, r->session, idle, absolute, given, &started)) == DB_OK && started)
        rc = db_commit(c->db);
    db_rollback(c->db);
    if (rc == DB_UNIQUE)
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__CONFLICT, DETAIL(EXISTS),
                      "a session with this token already exists");
    else if (rc != DB_OK)
        reg_reply_db(reply, rc);
    else if (!started) /* it changed since it was checked above */
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(BAD_TOKEN),
                      "the setup token is no longer valid: Setup Mode ended or a new token was issued");
    else
        reg_reply_empty(reply);
out:
    PQclear(res);
}

void h_settings_set_setup_mode(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__SetSetupModeRequest *r = (const Portico__Registry__SetSetupModeRequest *)msg;
    PGresult *res = NULL;
    db_params_t p;
    db_rc_t rc;
    if (!reg_check_text(reply, DETAIL(ACTOR), "actor", r->actor, REG_MAX_ACTOR, REG_OPTIONAL) ||
        !reg_check_text(reply, DETAIL(ADDR), "address", r->addr, MAX_ADDR, REG_OPTIONAL))
        return;
    if ((rc = db_begin(c->db)) != DB_OK)
        goto db_fail;
    if ((rc = db_exec(c->db, &s_lock, NULL, &res)) != DB_OK)
        goto db_fail;
    bool current = db_get_bool(res, 0, db_col(res, "setup_mode"));
    PQclear(res);
    res = NULL;
    if ((rc = db_exec(c->db, &s_admin_exists, NULL, &res)) != DB_OK)
        goto db_fail;
    bool admin_exists = db_get_bool(res, 0, db_col(res, "admin_exists"));
    if (!r->on && !admin_exists) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__CONFLICT, DETAIL(NO_ADMIN),
                      "cannot end Setup Mode before an admin exists: log in with a Bitbucket account first");
        goto out;
    }
    if (current != r->on) {
        db_params_init(&p);
        db_param_bool(&p, r->on);
        if ((rc = db_exec(c->db, &s_set_mode, &p, NULL)) != DB_OK)
            goto db_fail;
        /* Setup Mode sessions end with Setup Mode. */
        if (!r->on && (rc = db_exec(c->db, &s_end_setup_sessions, NULL, NULL)) != DB_OK)
            goto db_fail;
        rc = audit_write(c->db, reg_actor(r->actor), r->on ? AUDIT_SETUP_MODE_ON : AUDIT_SETUP_MODE_OFF, "settings",
                         r->addr, "");
        if (rc != DB_OK)
            goto db_fail;
    }
    if ((rc = db_commit(c->db)) != DB_OK)
        goto db_fail;
    if (current != r->on) {
        char q[REG_MAX_ACTOR + 8];
        log_info(r->on ? "setup mode turned on" : "setup mode turned off", "actor=%s",
                 log_quote(reg_actor(r->actor), q, sizeof q));
    }
    s_reply_settings(c->db, reply);
    goto out;
db_fail:
    reg_reply_db(reply, rc);
out:
    db_rollback(c->db);
    PQclear(res);
}

static bool s_valid_action(const char *action)
{
    if (!*action)
        return false;
    for (const char *p = action; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
            return false;
    return true;
}

void h_audit_append(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__AppendAuditRequest *r = (const Portico__Registry__AppendAuditRequest *)msg;
    const Portico__Registry__AuditEntry *e = r->entry;
    if (!e) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(ENTRY), "entry is required");
        return;
    }
    if (!reg_check_text(reply, DETAIL(ACTION), "action", e->action, MAX_ACTION, REG_REQUIRED) ||
        !reg_check_text(reply, DETAIL(ACTOR), "actor", e->actor, REG_MAX_ACTOR, REG_OPTIONAL) ||
        !reg_check_text(reply, DETAIL(OBJECT), "object", e->object, MAX_OBJECT, REG_OPTIONAL) ||
        !reg_check_text(reply, DETAIL(ADDR), "address", e->addr, MAX_ADDR, REG_OPTIONAL) ||
        !reg_check_text(reply, DETAIL(DETAIL), "detail", e->detail, MAX_DETAIL, REG_OPTIONAL))
        return;
    if (!s_valid_action(e->action)) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(ACTION),
                      "action may contain only a-z, 0-9, '.', '_' and '-'");
        return;
    }
    db_rc_t rc = audit_write(c->db, e->actor, e->action, e->object, e->addr, e->detail);
    if (rc != DB_OK)
        reg_reply_db(reply, rc);
    else
        reg_reply_empty(reply);
}

void h_audit_list(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__ListAuditRequest *r = (const Portico__Registry__ListAuditRequest *)msg;
    PGresult *res = NULL;
    db_params_t p;
    if (r->before_id < 0 || r->limit < 0 || r->limit > AUDIT_LIST_MAX) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST,
                      r->before_id < 0 ? DETAIL(BEFORE_ID) : DETAIL(LIMIT),
                      "before_id must not be negative and limit must be from 0 to %d", AUDIT_LIST_MAX);
        return;
    }
    db_params_init(&p);
    db_param_int(&p, r->before_id ? r->before_id : INT64_MAX);
    db_param_int(&p, r->limit ? r->limit : AUDIT_LIST_DEFAULT);
    db_rc_t rc = db_exec(c->db, &s_audit_list, &p, &res);
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        return;
    }
    reg_reply_audit_entries(reply, res);
    PQclear(res);
}
