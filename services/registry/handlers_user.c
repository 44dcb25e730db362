/* user.*: Portico users, their Bitbucket identities and the admin role. */
#include "handlers.h"
#include "handlers_access.h"
#include "users.h"

#include "audit.h"
#include "log.h"
#include "secrets.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_USERNAME 255
#define MAX_DISPLAY_NAME 255
#define MAX_EMAIL 320
#define MAX_ADDR 64
#define LIST_DEFAULT 50
#define LIST_MAX 500

#define USER_COLUMNS REG_USER_COLUMNS
static const db_stmt_t s_touch_user = {
    "login_touch_user",
    "UPDATE users SET display_name = CASE WHEN $2 = '' THEN display_name ELSE $2 END, last_login_at = now(), "
    "updated_at = now() WHERE id = $1 RETURNING " USER_COLUMNS};
static const db_stmt_t s_insert_user = {"login_insert_user",
                                        "INSERT INTO users (name, display_name, last_login_at) VALUES ($1, $2, now()) "
                                        "RETURNING " USER_COLUMNS};
static const db_stmt_t s_insert_identity = {
    "login_insert_identity",
    "INSERT INTO identities (integration_id, user_id, bb_user_id, username, slug, display_name, email) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id"};
/* $2: the SHA-256 of the browser's Setup Mode session, which must still
 * be alive (a new setup token ends them all). */
static const db_stmt_t s_grant_first = {
    "login_grant_first_admin",
    "UPDATE users SET is_admin = true, updated_at = now() WHERE id = $1 AND NOT is_admin "
    "AND NOT EXISTS (SELECT 1 FROM users WHERE is_admin) "
    "AND EXISTS (SELECT 1 FROM sessions WHERE token_hash = $2 AND setup AND idle_expires_at > now() "
    "  AND absolute_expires_at > now()) RETURNING id"};
static const db_stmt_t s_find_by_name = {"user_find_by_name",
                                         "SELECT id FROM users WHERE name = $1 ORDER BY id LIMIT 2"};
static const db_stmt_t s_other_admins = {
    "user_other_admins",
    "SELECT s.setup_mode, (SELECT count(*) FROM users WHERE is_admin AND id <> $1) AS other_admins "
    "FROM settings s WHERE s.id = 1"};
static const db_stmt_t s_set_admin = {
    "user_set_admin",
    "UPDATE users SET is_admin = $2, updated_at = now() WHERE id = $1 AND is_admin <> $2 RETURNING name"};
static const db_stmt_t s_user_exists = {"user_exists", "SELECT 1 FROM users WHERE id = $1"};

static void s_reply_user(db_t *db, bus_reply_t *reply, int64_t id)
{
    reg_users_t u;
    db_rc_t rc = reg_users_load(db, id, 0, 1, &u);
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        return;
    }
    if (u.n == 0) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(USER), "user %" PRId64 " does not exist", id);
    } else {
        Portico__Registry__GetUserReply out = PORTICO__REGISTRY__GET_USER_REPLY__INIT;
        out.user = &u.users[0];
        bus_reply_ok(reply, &out.base);
    }
    reg_users_clear(&u);
}

/* ---- user.login ---- */

static bool s_validate_login(const Portico__Registry__LoginRequest *r, bus_reply_t *reply, int *idle, int *absolute)
{
    const Portico__Registry__Identity *d = r->identity;
    if (!d) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(IDENTITY), "identity is required");
        return false;
    }
    if (d->user_id < 0) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(USER_ID), "user_id must not be negative");
        return false;
    }
    return reg_check_id(reply, DETAIL(INTEGRATION_ID), d->integration_id) &&
           reg_check_id(reply, DETAIL(BB_USER_ID), d->bb_user_id) &&
           reg_check_text(reply, DETAIL(USERNAME), "username", d->username, MAX_USERNAME, REG_REQUIRED) &&
           reg_check_text(reply, DETAIL(SLUG), "slug", d->slug, MAX_USERNAME, REG_OPTIONAL) &&
           reg_check_text(reply, DETAIL(DISPLAY_NAME), "display name", d->display_name, MAX_DISPLAY_NAME,
                          REG_OPTIONAL) &&
           reg_check_text(reply, DETAIL(EMAIL), "email", d->email, MAX_EMAIL, REG_OPTIONAL) &&
           reg_check_text(reply, DETAIL(ADDR), "address", r->addr, MAX_ADDR, REG_OPTIONAL) &&
           (!r->tokens || reg_check_tokens(r->tokens, reply)) &&
           (!r->session || reg_check_session(reply, r->session, idle, absolute));
}

typedef struct {
    int64_t user_id;
    int64_t identity_id;
    bool created;
    bool became_admin;
    bool admin_candidate; /* Setup Mode is on and nobody is admin yet */
    /* The user as the login left it, for a brief reply. */
    char name[MAX_USERNAME + 1];
    char display_name[MAX_DISPLAY_NAME + 1];
    bool is_admin;
    int64_t created_at;
} login_result_t;

/* The user columns of the statements below (USER_COLUMNS): id, name,
 * display_name, is_admin, created_at. */
static void s_take_user(login_result_t *out, const PGresult *res)
{
    out->user_id = db_get_int(res, 0, db_col(res, "id"));
    snprintf(out->name, sizeof out->name, "%s", db_get_text(res, 0, db_col(res, "name")));
    snprintf(out->display_name, sizeof out->display_name, "%s", db_get_text(res, 0, db_col(res, "display_name")));
    out->is_admin = db_get_bool(res, 0, db_col(res, "is_admin"));
    out->created_at = db_get_int(res, 0, db_col(res, "created_at"));
}

/* Make this identity's user the first admin when Setup Mode is on, no
 * admin exists and the login came from a browser holding a live Setup Mode
 * session. The settings row lock serialises concurrent first logins,
 * and the check runs after the lock is held (a fresh snapshot under READ
 * COMMITTED), so exactly one of them wins. */
static db_rc_t s_maybe_first_admin(db_t *db, const ProtobufCBinaryData *setup_session, login_result_t *out)
{
    PGresult *res = NULL;
    db_params_t p;
    db_rc_t rc;
    bool setup_mode = false;
    if ((rc = reg_lock_settings(db, &setup_mode)) != DB_OK)
        return rc;
    if (!setup_mode)
        return DB_OK;
    db_params_init(&p);
    db_param_int(&p, out->user_id);
    db_param_bytes(&p, setup_session->data, setup_session->len);
    if ((rc = db_exec(db, &s_grant_first, &p, &res)) != DB_OK)
        return rc;
    out->became_admin = PQntuples(res) == 1;
    PQclear(res);
    if (!out->became_admin)
        return DB_OK;
    out->is_admin = true;
    char object[48];
    snprintf(object, sizeof object, "user:%" PRId64, out->user_id);
    return audit_write(db, "setup", AUDIT_ADMIN_GRANT, object, "", "first user to log in during Setup Mode");
}

#define LOGIN_KNOWN_SQL(pending_key)                                                                                   \
    "WITH i AS (SELECT enabled, name, base_url FROM integrations WHERE id = $1), "                                     \
    "p AS (DELETE FROM pending_logins WHERE " pending_key " = $8 AND browser_hash = $9 AND integration_id = $1 "       \
    "  AND expires_at > now() AND base_url = (SELECT base_url FROM i) RETURNING 1), "                                  \
    "d AS (UPDATE identities SET username = $3, slug = $4, display_name = $5, email = $6, last_login_at = now() "      \
    "  WHERE integration_id = $1 AND bb_user_id = $2 AND (SELECT enabled FROM i) RETURNING id, user_id), "             \
    "u AS (UPDATE users SET display_name = CASE WHEN $5 = '' THEN display_name ELSE $5 END, "                          \
    "  last_login_at = now(), updated_at = now() "                                                                     \
    "  WHERE id = (SELECT user_id FROM d) AND ($7::bigint = 0 OR id = $7) RETURNING " USER_COLUMNS ") "                \
    "SELECT i.enabled AS integration_enabled, i.name AS integration_name, d.id AS identity_id, "                       \
    "  d.user_id AS identity_user_id, u.*, EXISTS (SELECT 1 FROM p) AS pending_found, "                                \
    "  CASE WHEN $10::boolean THEN (SELECT setup_mode AND NOT EXISTS (SELECT 1 FROM users WHERE is_admin) "            \
    "  FROM settings WHERE id = 1) ELSE false END AS admin_candidate "                                                 \
    "FROM i LEFT JOIN d ON true LEFT JOIN u ON true"
/* The start of every login, in one statement: the integration must exist
 * and be enabled; the login's pending login ($8: its state hash, or its
 * request token's; $9: the browser; sent to the integration's Base URL as
 * it is now: handlers_login.c) is used up; a known identity (every
 * login but the first of an account) and its user are updated, and
 * whether this user may become the first admin is read along, only for a
 * login that came from a Setup Mode session ($10): PostgreSQL answers "is
 * there an admin" by reading every user while there is none. Columns:
 * integration_enabled, integration_name; identity_id, identity_user_id;
 * the user (USER_COLUMNS, NULL when the identity is new or belongs to
 * another user than the one asked for); pending_found; admin_candidate.
 * No row: no such integration. Whatever it changed is rolled back when the
 * login does not go on. */
static const db_stmt_t s_login_known_state = {"login_known_state", LOGIN_KNOWN_SQL("state_hash")};
static const db_stmt_t s_login_known_token = {"login_known_token", LOGIN_KNOWN_SQL("request_token_hash")};

/* The first login of an identity: a new user (or the one asked for) and the
 * identity linking it. */
static db_rc_t s_login_new_identity(reg_ctx_t *c, const Portico__Registry__LoginRequest *r, login_result_t *out,
                                    bus_reply_t *reply)
{
    const Portico__Registry__Identity *d = r->identity;
    PGresult *res = NULL;
    db_params_t p;
    db_rc_t rc;
    db_params_init(&p);
    if (d->user_id == 0) {
        db_param_text(&p, d->username);
        db_param_text(&p, d->display_name);
        if ((rc = db_exec(c->db, &s_insert_user, &p, &res)) != DB_OK)
            goto out;
        out->created = true;
    } else {
        db_param_int(&p, d->user_id);
        db_param_text(&p, d->display_name);
        if ((rc = db_exec(c->db, &s_touch_user, &p, &res)) != DB_OK)
            goto out;
        if (PQntuples(res) == 0) {
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(USER), "user %" PRId64 " does not exist",
                          d->user_id);
            goto out;
        }
    }
    s_take_user(out, res);
    PQclear(res);
    res = NULL;
    db_params_init(&p);
    db_param_int(&p, d->integration_id);
    db_param_int(&p, out->user_id);
    db_param_int(&p, d->bb_user_id);
    db_param_text(&p, d->username);
    db_param_text(&p, d->slug);
    db_param_text(&p, d->display_name);
    db_param_text(&p, d->email);
    if ((rc = db_exec(c->db, &s_insert_identity, &p, &res)) != DB_OK)
        goto out;
    out->identity_id = db_get_int(res, 0, db_col(res, "id"));
out:
    PQclear(res);
    return rc;
}

/* One attempt at the login transaction. DB_UNIQUE means another login of
 * the same new identity won the race: the caller tries again. An answer
 * already given in reply (an error) means: roll back, nothing to add. */
static db_rc_t s_login_tx(reg_ctx_t *c, const Portico__Registry__LoginRequest *r, int idle, int absolute,
                          login_result_t *out, reg_users_t *whole, bus_reply_t *reply)
{
    const Portico__Registry__Identity *d = r->identity;
    PGresult *res = NULL;
    db_params_t p;
    db_rc_t rc;
    uint8_t key[32];
    bool by_state = true;
    bool can_finish = r->pending && reg_pending_finish_key(r->pending, d->integration_id, key, &by_state);
    memset(out, 0, sizeof *out);
    /* Batched: the statements below whose answer is only "it worked" (the
     * audit entry, the access marks, the tokens, the session) share the
     * round trip of the next one that is read: a returning user's login
     * waits for PostgreSQL twice, at its first statement and at the
     * commit. */
    if ((rc = db_begin_batch(c->db)) != DB_OK)
        goto out;
    db_params_init(&p);
    db_param_int(&p, d->integration_id);
    db_param_int(&p, d->bb_user_id);
    db_param_text(&p, d->username);
    db_param_text(&p, d->slug);
    db_param_text(&p, d->display_name);
    db_param_text(&p, d->email);
    db_param_int(&p, d->user_id);
    db_param_bytes(&p, can_finish ? key : NULL, 32);
    db_param_bytes(&p, can_finish ? r->pending->browser_hash.data : NULL, 32);
    db_param_bool(&p, r->setup_session_hash.len == 32);
    if ((rc = db_exec(c->db, by_state ? &s_login_known_state : &s_login_known_token, &p, &res)) != DB_OK)
        goto out;
    if (PQntuples(res) == 0) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(INTEGRATION),
                      "integration %" PRId64 " does not exist", d->integration_id);
        goto out;
    }
    if (!db_get_bool(res, 0, db_col(res, "integration_enabled"))) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(DISABLED),
                      "the integration \"%s\" is disabled", db_get_text(res, 0, db_col(res, "integration_name")));
        goto out;
    }
    /* The single use of the login this one finishes: without it the
     * transaction writes nothing (it rolls back). */
    if (!can_finish || !db_get_bool(res, 0, db_col(res, "pending_found"))) {
        log_warn("refused user.login without a live pending login", "integration=%" PRId64, d->integration_id);
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(PENDING),
                      "no sign-in of this browser is waiting for this login: it was never started, already "
                      "used or has expired");
        goto out;
    }
    out->admin_candidate = db_get_bool(res, 0, db_col(res, "admin_candidate"));
    if (!db_get_null(res, 0, db_col(res, "identity_id"))) {
        out->identity_id = db_get_int(res, 0, db_col(res, "identity_id"));
        if (db_get_null(res, 0, db_col(res, "id"))) {
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__CONFLICT, DETAIL(LINKED),
                          "this Bitbucket account is already linked to another Portico user");
            goto out;
        }
        s_take_user(out, res);
    } else if ((rc = s_login_new_identity(c, r, out, reply)) != DB_OK || reply->err.code) {
        goto out;
    }
    PQclear(res);
    res = NULL;
    if (out->admin_candidate && r->setup_session_hash.len == 32 &&
        (rc = s_maybe_first_admin(c->db, &r->setup_session_hash, out)) != DB_OK)
        goto out;
    char object[48], detail[128];
    snprintf(object, sizeof object, "user:%" PRId64, out->user_id);
    snprintf(detail, sizeof detail, "integration=%" PRId64 " identity=%" PRId64 "%s", d->integration_id,
             out->identity_id, out->created ? " created=true" : "");
    if ((rc = audit_write(c->db, d->username, AUDIT_USER_LOGIN, object, r->addr, detail)) != DB_OK)
        goto out;
    if ((rc = reg_access_after_login(c->db, out->user_id, out->identity_id)) != DB_OK)
        goto out;
    if (r->tokens && ((rc = reg_tokens_store(c, out->identity_id, r->tokens, reply)) != DB_OK || reply->err.code))
        goto out;
    if (r->session && (rc = reg_session_insert_user(c->db, r->session, out->user_id, idle, absolute)) != DB_OK)
        goto out;
    /* The session goes out with the commit, and the account the login
     * answers with is read in the same round trip. */
    rc = whole ? reg_users_commit_load(c->db, out->user_id, whole) : db_commit(c->db);
out:
    db_rollback(c->db);
    PQclear(res);
    return rc;
}

void h_user_login(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__LoginRequest *r = (const Portico__Registry__LoginRequest *)msg;
    login_result_t result;
    reg_users_t u;
    db_rc_t rc;
    int idle = 0, absolute = 0;
    memset(&u, 0, sizeof u);
    if (!s_validate_login(r, reply, &idle, &absolute))
        return;
    /* Clear any answer a lost race left behind before retrying. */
    for (int attempt = 0;; attempt++) {
        reply->err.code = 0;
        rc = s_login_tx(c, r, idle, absolute, &result, r->brief ? NULL : &u, reply);
        if (rc != DB_UNIQUE || attempt == 2)
            break;
    }
    if (reply->err.code != 0 && rc == DB_OK)
        return;
    if (rc == DB_FOREIGN) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(INTEGRATION),
                      "integration %" PRId64 " or user %" PRId64 " does not exist", r->identity->integration_id,
                      r->identity->user_id);
        return;
    }
    if (rc != DB_OK) {
        if (!reply->err.code)
            reg_reply_db(reply, rc);
        return;
    }
    if (result.became_admin)
        log_info("first user to log in during Setup Mode is now an admin", "user=%" PRId64, result.user_id);
    /* The broker logs the login and the audit log keeps it. */
    log_debug("user logged in", "user=%" PRId64 " identity=%" PRId64 " created=%s", result.user_id, result.identity_id,
              result.created ? "true" : "false");
    Portico__Registry__LoginReply out = PORTICO__REGISTRY__LOGIN_REPLY__INIT;
    out.identity_id = result.identity_id;
    out.created = result.created;
    if (r->brief) {
        Portico__Registry__User user = PORTICO__REGISTRY__USER__INIT;
        user.id = result.user_id;
        user.name = result.name;
        user.display_name = result.display_name;
        user.is_admin = result.is_admin;
        user.created_at = result.created_at;
        out.user = &user;
        bus_reply_ok(reply, &out.base);
        return;
    }
    if (u.n == 0) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(USER), "user %" PRId64 " no longer exists",
                      result.user_id);
    } else {
        out.user = &u.users[0];
        bus_reply_ok(reply, &out.base);
    }
    reg_users_clear(&u);
}

/* ---- user.get, user.list ---- */

void h_user_get(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__GetUserRequest *r = (const Portico__Registry__GetUserRequest *)msg;
    if (!reg_check_id(reply, DETAIL(ID), r->id))
        return;
    s_reply_user(c->db, reply, r->id);
}

/* ---- user.credentials ---- */

/* The identity as user.get lists it first (by id), its integration and its
 * tokens, in one statement. */
static const db_stmt_t s_credentials = {
    "user_credentials",
    "SELECT d.id, d.integration_id, d.user_id, d.bb_user_id, d.username, d.slug, d.display_name, d.email, "
    "i.name AS integration_name, extract(epoch FROM d.last_login_at)::bigint AS "
    "last_login_at, " REG_INTEGRATION_COLUMNS_NO_COUNT ", " REG_INTEGRATION_SECRET_COLUMNS ", "
    "t.identity_id IS NOT NULL AS has_tokens, t.access_token, t.refresh_token, t.token_secret, t.scope, "
    "t.expires_at, t.generation "
    "FROM identities d JOIN integrations i ON i.id = d.integration_id "
    "LEFT JOIN tokens t ON t.identity_id = d.id "
    "WHERE d.user_id = $1 AND ($2::bigint = 0 OR d.integration_id = $2) ORDER BY d.id LIMIT 1"};

void h_user_credentials(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__UserCredentialsRequest *r = (const Portico__Registry__UserCredentialsRequest *)msg;
    PGresult *res = NULL;
    char *client_secret = NULL, *private_key = NULL, *opened[3] = {NULL, NULL, NULL};
    db_params_t p;
    reg_session_found_t f = {0};
    Portico__Registry__UserCredentialsReply out = PORTICO__REGISTRY__USER_CREDENTIALS_REPLY__INIT;
    bool by_session = r->session_hash.len > 0;
    int64_t user_id = r->user_id;
    if (by_session && r->user_id) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(USER_ID),
                      "give either user_id or session_hash, not both");
        return;
    }
    if (!by_session && !reg_check_id(reply, DETAIL(USER_ID), r->user_id))
        return;
    if (r->integration_id < 0) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(INTEGRATION_ID),
                      "integration_id must not be negative");
        return;
    }
    if (by_session) {
        /* The session first, as session.lookup checks it; a live one is
         * answered even when there is nothing more to give. */
        if (reg_session_find(c, &r->session_hash, true, &f, reply) < 0)
            goto out;
        out.session = &f.reply;
        user_id = f.session.user_id;
        if (!user_id || !f.reply.user) {
            bus_reply_ok(reply, &out.base);
            goto out;
        }
    }
    db_params_init(&p);
    db_param_int(&p, user_id);
    db_param_int(&p, r->integration_id);
    db_rc_t rc = db_exec(c->db, &s_credentials, &p, &res);
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        goto out;
    }
    if (PQntuples(res) == 0) {
        if (by_session)
            bus_reply_ok(reply, &out.base);
        else
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(NO_IDENTITY),
                          "user %" PRId64 " has no Bitbucket identity there", user_id);
        goto out;
    }
    int col[REG_IDENT_NCOLUMNS];
    if (reg_identity_columns(res, col) < 0) {
        reg_reply_db(reply, DB_FAIL);
        goto out;
    }
    Portico__Registry__Identity identity;
    reg_fill_identity(&identity, res, 0, col);
    Portico__Registry__Integration in;
    reg_integration_cols_t icols = reg_integration_columns(res);
    reg_fill_integration(&in, res, 0, &icols);
    Portico__Registry__IntegrationSecrets secrets = PORTICO__REGISTRY__INTEGRATION_SECRETS__INIT;
    Portico__Registry__GetIntegrationReply integ = PORTICO__REGISTRY__GET_INTEGRATION_REPLY__INIT;
    Portico__Registry__Tokens tokens;
    if (reg_open_integration_secrets(c->keys, in.id, res, 0, &client_secret, &private_key, &reply->err) < 0) {
        goto out;
    }
    secrets.client_secret = client_secret;
    secrets.private_key_pem = private_key;
    integ.integration = &in;
    integ.secrets = &secrets;
    out.identity = &identity;
    out.integration = &integ;
    if (db_get_bool(res, 0, db_col(res, "has_tokens"))) {
        if (reg_open_tokens(c->keys, identity.id, res, 0, &tokens, opened) < 0) {
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(KEY),
                          "the stored tokens could not be decrypted with the configured key");
            goto out;
        }
        out.tokens = &tokens;
        out.generation = db_get_int(res, 0, db_col(res, "generation"));
    }
    bus_reply_ok(reply, &out.base);
out:
    reg_close_tokens(opened);
    secrets_free(client_secret);
    secrets_free(private_key);
    PQclear(res);
    reg_session_found_clear(&f);
}

void h_user_list(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__ListUsersRequest *r = (const Portico__Registry__ListUsersRequest *)msg;
    if (r->after_id < 0 || r->limit < 0 || r->limit > LIST_MAX) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, r->after_id < 0 ? DETAIL(AFTER_ID) : DETAIL(LIMIT),
                      "after_id must not be negative and limit must be from 0 to %d", LIST_MAX);
        return;
    }
    reg_users_t u;
    db_rc_t rc = reg_users_load(c->db, 0, r->after_id, r->limit ? r->limit : LIST_DEFAULT, &u);
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        return;
    }
    Portico__Registry__ListUsersReply out = PORTICO__REGISTRY__LIST_USERS_REPLY__INIT;
    out.n_users = u.n;
    out.users = u.user_ptrs;
    bus_reply_ok(reply, &out.base);
    reg_users_clear(&u);
}

/* ---- user.set_admin ---- */

/* The user a SetAdminRequest names: by id, or by name when it is unique. */
static db_rc_t s_resolve_user(db_t *db, const Portico__Registry__SetAdminRequest *r, int64_t *id, bus_reply_t *reply)
{
    PGresult *res = NULL;
    db_params_t p;
    db_rc_t rc;
    *id = 0;
    db_params_init(&p);
    if (r->id > 0) {
        db_param_int(&p, r->id);
        if ((rc = db_exec(db, &s_user_exists, &p, &res)) != DB_OK)
            return rc;
        if (PQntuples(res) == 1)
            *id = r->id;
        else
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(USER), "user %" PRId64 " does not exist",
                          r->id);
        PQclear(res);
        return DB_OK;
    }
    db_param_text(&p, r->name);
    if ((rc = db_exec(db, &s_find_by_name, &p, &res)) != DB_OK)
        return rc;
    int n = PQntuples(res);
    if (n == 1)
        *id = db_get_int(res, 0, db_col(res, "id"));
    else if (n == 0)
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(USER), "user \"%s\" does not exist", r->name);
    else
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__CONFLICT, DETAIL(AMBIGUOUS),
                      "more than one user is named \"%s\": give the user id instead", r->name);
    PQclear(res);
    return DB_OK;
}

void h_user_set_admin(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__SetAdminRequest *r = (const Portico__Registry__SetAdminRequest *)msg;
    PGresult *res = NULL;
    db_params_t p;
    db_rc_t rc;
    int64_t id = 0;
    if (r->id < 0 || (r->id == 0 && !r->name[0])) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(ID), "give the user's id or name");
        return;
    }
    if (!reg_check_text(reply, DETAIL(NAME), "name", r->name, MAX_USERNAME, REG_OPTIONAL) ||
        !reg_check_text(reply, DETAIL(ACTOR), "actor", r->actor, REG_MAX_ACTOR, REG_OPTIONAL) ||
        !reg_check_text(reply, DETAIL(ADDR), "address", r->addr, MAX_ADDR, REG_OPTIONAL))
        return;
    if ((rc = db_begin(c->db)) != DB_OK)
        goto db_fail;
    /* Admin changes take the settings lock so "the last admin" stays true
     * while we act on it. */
    if ((rc = reg_lock_settings(c->db, NULL)) != DB_OK)
        goto db_fail;
    if ((rc = s_resolve_user(c->db, r, &id, reply)) != DB_OK)
        goto db_fail;
    if (id == 0)
        goto out;
    db_params_init(&p);
    db_param_int(&p, id);
    if (!r->admin) {
        if ((rc = db_exec(c->db, &s_other_admins, &p, &res)) != DB_OK)
            goto db_fail;
        bool setup_mode = db_get_bool(res, 0, db_col(res, "setup_mode"));
        int64_t others = db_get_int(res, 0, db_col(res, "other_admins"));
        PQclear(res);
        res = NULL;
        if (!setup_mode && others == 0) {
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__CONFLICT, DETAIL(LAST_ADMIN),
                          "cannot revoke the last admin while Setup Mode is off: grant another admin first");
            goto out;
        }
    }
    db_param_bool(&p, r->admin);
    if ((rc = db_exec(c->db, &s_set_admin, &p, &res)) != DB_OK)
        goto db_fail;
    if (PQntuples(res) == 1) {
        char object[48], detail[300];
        snprintf(object, sizeof object, "user:%" PRId64, id);
        snprintf(detail, sizeof detail, "name=%s", db_get_text(res, 0, db_col(res, "name")));
        rc = audit_write(c->db, reg_actor(r->actor), r->admin ? AUDIT_ADMIN_GRANT : AUDIT_ADMIN_REVOKE, object, r->addr,
                         detail);
        if (rc != DB_OK)
            goto db_fail;
        log_info(r->admin ? "admin role granted" : "admin role revoked", "user=%" PRId64, id);
    }
    if ((rc = db_commit(c->db)) != DB_OK)
        goto db_fail;
    s_reply_user(c->db, reply, id);
    goto out;
db_fail:
    reg_reply_db(reply, rc);
out:
    db_rollback(c->db);
    PQclear(res);
}
