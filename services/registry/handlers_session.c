/* session.*: browser sessions, stored only as the SHA-256 of the cookie. */
#include "handlers.h"
#include "users.h"

#include "audit.h"
#include "log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDLE_DEFAULT_S (30 * 60)
#define ABSOLUTE_DEFAULT_S (12 * 60 * 60)
#define LIFETIME_MAX_S (30 * 24 * 60 * 60)
#define MAX_ADDR 64

static const db_stmt_t s_create_user = {
    "session_create_user",
    "INSERT INTO sessions (token_hash, user_id, setup, addr, idle_seconds, idle_expires_at, absolute_expires_at) "
    "VALUES ($1, $2, false, $3, $4, now() + least($4::integer, $5::integer) * interval '1 second', "
    "now() + $5::integer * interval '1 second')"};
/* A Setup Mode session: only while Setup Mode is on. */
static const db_stmt_t s_create_setup = {
    "session_create_setup",
    "INSERT INTO sessions (token_hash, user_id, setup, addr, idle_seconds, idle_expires_at, absolute_expires_at) "
    "SELECT $1, NULL, true, $2, $3, now() + least($3::integer, $4::integer) * interval '1 second', "
    "now() + $4::integer * interval '1 second' "
    "FROM settings WHERE id = 1 AND setup_mode AND setup_token_hash = $5 AND setup_token_expires_at > now() "
    "FOR SHARE"};

/* The hot path: one read-only statement. It also says whether the session
 * was last seen more than a tenth of its idle timeout ago (at most 10 s);
 * only then does a second statement slide the idle expiry, so most
 * lookups write nothing. */
static const db_stmt_t s_lookup = {
    "session_lookup",
    "SELECT s.user_id, s.setup, coalesce(u.is_admin, false) AS is_admin, coalesce(u.name, '') AS user_name, "
    "  coalesce(u.display_name, '') AS display_name, st.setup_mode, "
    "  floor(extract(epoch FROM s.idle_expires_at))::bigint AS expires_at, "
    "  s.last_seen_at < now() - least(10000, s.idle_seconds * 100) * interval '1 millisecond' AS stale "
    "FROM sessions s LEFT JOIN users u ON u.id = s.user_id CROSS JOIN settings st "
    "WHERE st.id = 1 AND s.token_hash = $1 AND s.idle_expires_at > now() AND s.absolute_expires_at > now()"};
static const db_stmt_t s_touch = {
    "session_touch", "UPDATE sessions SET last_seen_at = now(), "
                     "  idle_expires_at = least(now() + idle_seconds * interval '1 second', absolute_expires_at) "
                     "WHERE token_hash = $1 AND idle_expires_at > now() "
                     "RETURNING floor(extract(epoch FROM idle_expires_at))::bigint AS expires_at"};

static const db_stmt_t s_delete = {"session_delete", "DELETE FROM sessions WHERE token_hash = $1"};
static const db_stmt_t s_delete_user = {"session_delete_user", "DELETE FROM sessions WHERE user_id = $1"};
static const db_stmt_t s_user_exists = {"session_user_exists", "SELECT 1 FROM users WHERE id = $1"};

bool reg_check_session(bus_reply_t *reply, const Portico__Registry__CreateSessionRequest *r, int *idle, int *absolute)
{
    if (!reg_check_hash(reply, DETAIL(TOKEN_HASH), &r->token_hash, true) ||
        !reg_check_text(reply, DETAIL(ADDR), "address", r->addr, MAX_ADDR, REG_OPTIONAL))
        return false;
    *idle = r->idle_seconds ? r->idle_seconds : IDLE_DEFAULT_S;
    *absolute = r->absolute_seconds ? r->absolute_seconds : ABSOLUTE_DEFAULT_S;
    if (*idle < 1 || *idle > LIFETIME_MAX_S || *absolute < 1 || *absolute > LIFETIME_MAX_S) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST,
                      *idle < 1 || *idle > LIFETIME_MAX_S ? DETAIL(IDLE_SECONDS) : DETAIL(ABSOLUTE_SECONDS),
                      "session timeouts must be from 1 to %d seconds", LIFETIME_MAX_S);
        return false;
    }
    return true;
}

db_rc_t reg_session_insert_user(db_t *db, const Portico__Registry__CreateSessionRequest *r, int64_t user_id, int idle,
                                int absolute)
{
    db_params_t p;
    db_params_init(&p);
    db_param_bytes(&p, r->token_hash.data, r->token_hash.len);
    db_param_int(&p, user_id);
    db_param_text(&p, r->addr);
    db_param_int(&p, idle);
    db_param_int(&p, absolute);
    return db_exec(db, &s_create_user, &p, NULL);
}

db_rc_t reg_session_insert_setup(db_t *db, const Portico__Registry__CreateSessionRequest *r, int idle, int absolute,
                                 const uint8_t token_hash[32], bool *started)
{
    PGresult *res = NULL;
    db_params_t p;
    db_params_init(&p);
    db_param_bytes(&p, r->token_hash.data, r->token_hash.len);
    db_param_text(&p, r->addr);
    db_param_int(&p, idle);
    db_param_int(&p, absolute);
    db_param_bytes(&p, token_hash, 32);
    db_rc_t rc = db_exec(db, &s_create_setup, &p, &res);
    *started = rc == DB_OK && PQcmdTuples(res)[0] != '0';
    PQclear(res);
    return rc;
}

int reg_session_find(reg_ctx_t *c, const ProtobufCBinaryData *token_hash, bool with_user, reg_session_found_t *f,
                     bus_reply_t *reply)
{
    memset(f, 0, sizeof *f);
    portico__registry__session__init(&f->session);
    portico__registry__lookup_session_reply__init(&f->reply);
    if (!reg_check_hash(reply, DETAIL(TOKEN_HASH), token_hash, true))
        return -1;
    db_params_t p;
    db_params_init(&p);
    db_param_bytes(&p, token_hash->data, token_hash->len);
    db_rc_t rc = db_exec(c->db, &s_lookup, &p, &f->res);
    if (rc != DB_OK)
        goto db_fail;
    const PGresult *res = f->res;
    if (PQntuples(res) == 0) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(SESSION),
                      "no such session, or it has expired");
        return -1;
    }
    if (db_get_bool(res, 0, db_col(res, "setup")) && !db_get_bool(res, 0, db_col(res, "setup_mode"))) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(SETUP_OFF),
                      "this Setup Mode session ended when Setup Mode was turned off");
        return -1;
    }
    Portico__Registry__Session *s = &f->session;
    s->expires_at = db_get_int(res, 0, db_col(res, "expires_at"));
    if (db_get_bool(res, 0, db_col(res, "stale"))) {
        if ((rc = db_exec(c->db, &s_touch, &p, &f->touched)) != DB_OK)
            goto db_fail;
        if (PQntuples(f->touched) == 0) {
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(SESSION),
                          "no such session, or it has expired");
            return -1;
        }
        s->expires_at = db_get_int(f->touched, 0, db_col(f->touched, "expires_at"));
    }
    s->user_id = db_get_int(res, 0, db_col(res, "user_id"));
    s->setup = db_get_bool(res, 0, db_col(res, "setup"));
    s->is_admin = db_get_bool(res, 0, db_col(res, "is_admin"));
    s->user_name = REG_STR(db_get_text(res, 0, db_col(res, "user_name")));
    s->display_name = REG_STR(db_get_text(res, 0, db_col(res, "display_name")));
    s->setup_mode = db_get_bool(res, 0, db_col(res, "setup_mode"));
    f->reply.session = s;
    if (with_user && s->user_id) {
        if ((rc = reg_users_load(c->db, s->user_id, 0, 1, &f->users)) != DB_OK)
            goto db_fail;
        f->reply.user = f->users.n ? &f->users.users[0] : NULL;
    }
    return 0;
db_fail:
    reg_reply_db(reply, rc);
    return -1;
}

void reg_session_found_clear(reg_session_found_t *f)
{
    reg_users_clear(&f->users);
    PQclear(f->res);
    PQclear(f->touched);
    f->res = f->touched = NULL;
    f->reply.session = NULL;
    f->reply.user = NULL;
}

void h_session_lookup(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    const Portico__Registry__LookupSessionRequest *r = (const Portico__Registry__LookupSessionRequest *)msg;
    reg_session_found_t f;
    if (reg_session_find(ctx, &r->token_hash, r->with_user, &f, reply) == 0)
        bus_reply_ok(reply, &f.reply.base);
    reg_session_found_clear(&f);
}

void h_session_delete(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__DeleteSessionRequest *r = (const Portico__Registry__DeleteSessionRequest *)msg;
    db_params_t p;
    if (!reg_check_hash(reply, DETAIL(TOKEN_HASH), &r->token_hash, true))
        return;
    db_params_init(&p);
    db_param_bytes(&p, r->token_hash.data, r->token_hash.len);
    /* Logging out twice is not an error. */
    db_rc_t rc = db_exec(c->db, &s_delete, &p, NULL);
    if (rc != DB_OK)
        reg_reply_db(reply, rc);
    else
        reg_reply_empty(reply);
}

void h_session_delete_user(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__DeleteUserSessionsRequest *r = (const Portico__Registry__DeleteUserSessionsRequest *)msg;
    PGresult *res = NULL;
    db_params_t p;
    db_rc_t rc;
    if (!reg_check_id(reply, DETAIL(USER_ID), r->user_id) ||
        !reg_check_text(reply, DETAIL(ACTOR), "actor", r->actor, REG_MAX_ACTOR, REG_OPTIONAL) ||
        !reg_check_text(reply, DETAIL(ADDR), "address", r->addr, MAX_ADDR, REG_OPTIONAL))
        return;
    db_params_init(&p);
    db_param_int(&p, r->user_id);
    if ((rc = db_begin(c->db)) != DB_OK)
        goto db_fail;
    if ((rc = db_exec(c->db, &s_user_exists, &p, &res)) != DB_OK)
        goto db_fail;
    if (PQntuples(res) == 0) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(USER), "user %" PRId64 " does not exist",
                      r->user_id);
        goto out;
    }
    PQclear(res);
    res = NULL;
    if ((rc = db_exec(c->db, &s_delete_user, &p, &res)) != DB_OK)
        goto db_fail;
    Portico__Registry__DeleteUserSessionsReply out = PORTICO__REGISTRY__DELETE_USER_SESSIONS_REPLY__INIT;
    out.deleted = strtoll(PQcmdTuples(res), NULL, 10);
    char object[48], detail[48];
    snprintf(object, sizeof object, "user:%" PRId64, r->user_id);
    snprintf(detail, sizeof detail, "sessions=%" PRId64, out.deleted);
    if ((rc = audit_write(c->db, reg_actor(r->actor), AUDIT_SESSION_END, object, r->addr, detail)) != DB_OK)
        goto db_fail;
    if ((rc = db_commit(c->db)) != DB_OK)
        goto db_fail;
    bus_reply_ok(reply, &out.base);
    goto out;
db_fail:
    reg_reply_db(reply, rc);
out:
    db_rollback(c->db);
    PQclear(res);
}
