/* pending.* and token.*: logins in progress and the tokens they yield.
 *
 * A pending login is consumed exactly once: one DELETE ... RETURNING that
 * also checks the browser and the integration, so of several brokers
 * racing for the same callback one gets the row and the rest find nothing.
 *
 * Token refresh is serialised with a lease rather than a transaction,
 * because the refresh is a network call: token.lease hands the right to
 * refresh to one holder for lease_ms, token.replace stores the rotated
 * pair only while that holder still holds it and the generation it read
 * is unchanged, and releases the lease; token.release gives it back when
 * the tokens turned out to be fresh already. An expired lease that nobody
 * took over still counts as held: the new pair is then still the only
 * valid one and must be kept. */
#include "handlers.h"
#include "handlers_access.h"

#include "log.h"
#include "secrets.h"
#include "url.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PENDING_TTL_DEFAULT_S 600
#define PENDING_TTL_MAX_S 3600
#define MAX_VERIFIER 128
#define MAX_OAUTH1_TOKEN 512
#define MAX_RETURN_TO 1024
#define MAX_TOKEN 8192
#define MAX_SCOPE 512
#define MAX_HOLDER 128
#define LEASE_DEFAULT_MS 30000
#define LEASE_MIN_MS 100
#define LEASE_MAX_MS 600000

#define PENDING_COLUMNS                                                                                                \
    "state_hash, request_token_hash, integration_id, code_verifier, request_token, request_token_secret, "             \
    "browser_hash, return_to, floor(extract(epoch FROM expires_at))::bigint AS expires_at, "                           \
    "expires_at <= now() AS expired"

/* login.start's every statement, in one: how many unfinished logins this
 * browser ($7) and everyone have (each count stops at its cap, $10 and $11,
 * so a full table costs no more than the cap), and the new one stored only
 * while the browser is under its cap. When everyone's are at theirs, the
 * oldest live one gives way (PENDING_EVICT): refusing every new start
 * instead let a few addresses without cookies (each start a new "browser")
 * keep the table full and everyone out; evicting makes them replace it
 * within the time a person takes to sign in. Columns: browser_pending,
 * all_pending, integration_found, stored (and the integration, for
 * OAuth 2).
 *
 * Everyone's count is skipped (0) while the table's file is too small to
 * hold $11 live rows: each takes at least 28 bytes of it (a 24-byte header
 * and a 4-byte line pointer) for as long as it can be counted. PostgreSQL
 * plans that count as a scan of the whole table, dead rows included (the
 * table is small and every row matches), and it was the most expensive
 * statement of a login; the size of the file costs two stat() calls. */
#define PENDING_MIN_TUPLE_BYTES "28"
#define PENDING_COUNTS                                                                                                 \
    "WITH n AS (SELECT (SELECT count(*) FROM (SELECT 1 FROM pending_logins WHERE browser_hash = $7 "                   \
    "  AND expires_at > now() LIMIT $10::bigint) b) AS browser_pending, "                                              \
    "CASE WHEN pg_relation_size('pending_logins') < $11::bigint * " PENDING_MIN_TUPLE_BYTES " THEN 0 ELSE "            \
    "(SELECT count(*) FROM (SELECT 1 FROM pending_logins WHERE expires_at > now() LIMIT $11::bigint) t) END "          \
    "  AS all_pending), "
/* Only when the start will be stored: the same caps, and the same
 * integration condition as its INSERT (usable, a condition on i). */
#define PENDING_EVICT(usable)                                                                                          \
    "evict AS (DELETE FROM pending_logins WHERE ctid = (SELECT ctid FROM pending_logins "                              \
    "  WHERE (SELECT all_pending FROM n) >= $11::bigint AND (SELECT browser_pending FROM n) < $10::bigint "            \
    "  AND EXISTS (SELECT 1 FROM integrations i WHERE " usable ") AND expires_at > now() "                             \
    "  ORDER BY expires_at LIMIT 1)), "
#define PENDING_USABLE "i.id = $3 "
#define PENDING_USABLE_OAUTH2 "i.id = $3 AND i.enabled AND i.oauth_version = 2 AND i.client_id <> '' "
#define PENDING_INSERT                                                                                                 \
    "ins AS (INSERT INTO pending_logins (state_hash, request_token_hash, integration_id, code_verifier, "              \
    "request_token, request_token_secret, browser_hash, return_to, expires_at, base_url) "
#define PENDING_UNDER_CAPS "n.browser_pending < $10::bigint "
/* pending_logins has no foreign key to integrations: checking one locks
 * the integration's row, and that lock is a write-ahead log record, which
 * made every start's commit wait for the disk although the table is
 * unlogged. Both statements read the integration instead (stored only when
 * it exists) and keep the Base URL the login was sent to;
 * integration.delete deletes its pending logins, and a Base URL change to
 * another host does too. A start that races either (it read the
 * integration before the change was committed, and stored after) leaves a
 * row that is void: every statement below that reads or uses up a pending
 * login wants its integration to exist with the same Base URL
 * (PENDING_BOUND), and a void one is deleted when a callback names it, or
 * swept when it expires. */
static const db_stmt_t s_pending_insert = {
    "pending_insert", PENDING_COUNTS PENDING_EVICT(PENDING_USABLE) PENDING_INSERT
    "SELECT $1, $2, i.id, $4, $5, $6, $7, $8, now() + $9::integer * interval '1 second', i.base_url "
    "FROM n, integrations i WHERE " PENDING_USABLE "AND " PENDING_UNDER_CAPS "RETURNING 1) "
    "SELECT n.browser_pending, n.all_pending, EXISTS (SELECT 1 FROM integrations WHERE id = $3) AS integration_found, "
    "EXISTS (SELECT 1 FROM ins) AS stored FROM n"};
/* The same for an OAuth 2 integration: stored only when the integration can
 * take it, and the integration comes back in the same statement (a
 * data-modifying CTE runs whether or not it is read; the main query reads
 * its RETURNING rows to tell whether it stored). integration_found: false
 * when there is no such integration. */
static const db_stmt_t s_pending_insert_oauth2 = {
    "pending_insert_oauth2", PENDING_COUNTS PENDING_EVICT(PENDING_USABLE_OAUTH2) PENDING_INSERT
    "SELECT $1, $2, i.id, $4, $5, $6, $7, $8, now() + $9::integer * interval '1 second', i.base_url "
    "FROM n, integrations i "
    "WHERE " PENDING_USABLE_OAUTH2 "AND " PENDING_UNDER_CAPS "RETURNING 1) "
    "SELECT n.browser_pending, n.all_pending, i.id IS NOT NULL AS integration_found, " REG_INTEGRATION_COLUMNS_NO_COUNT
    ", EXISTS (SELECT 1 FROM ins) AS stored "
    "FROM n LEFT JOIN integrations i ON i.id = $3"};
/* A pending login is not void: its integration exists with the Base URL
 * the login was sent to (see s_pending_insert). */
#define PENDING_BOUND                                                                                                  \
    "EXISTS (SELECT 1 FROM integrations bi WHERE bi.id = pending_logins.integration_id "                               \
    "AND bi.base_url = pending_logins.base_url)"
static const db_stmt_t s_consume_by_state = {
    "pending_consume_state", "DELETE FROM pending_logins WHERE state_hash = $1 AND browser_hash = $2 "
                             "AND integration_id = $3 AND " PENDING_BOUND " RETURNING " PENDING_COLUMNS};
static const db_stmt_t s_consume_by_token = {
    "pending_consume_token", "DELETE FROM pending_logins WHERE request_token_hash = $1 AND browser_hash = $2 "
                             "AND integration_id = $3 AND " PENDING_BOUND " RETURNING " PENDING_COLUMNS};
/* The same, with the login's integration and its sealed secrets, which the
 * broker needs next (the join wants the Base URL the login was sent to:
 * see s_pending_insert). */
#define PENDING_COLUMNS_P                                                                                              \
    "p.state_hash, p.request_token_hash, p.integration_id, p.code_verifier, p.request_token, "                         \
    "p.request_token_secret, p.browser_hash, p.return_to, "                                                            \
    "floor(extract(epoch FROM p.expires_at))::bigint AS expires_at, p.expires_at <= now() AS expired"
static const db_stmt_t s_consume_by_state_integ = {
    "pending_consume_state_integ",
    "DELETE FROM pending_logins p USING integrations i LEFT JOIN access_rules a ON a.integration_id = i.id "
    "WHERE p.state_hash = $1 AND p.browser_hash = $2 AND p.integration_id = $3 AND i.id = p.integration_id "
    "AND i.base_url = p.base_url RETURNING " PENDING_COLUMNS_P ", " REG_INTEGRATION_COLUMNS_NO_COUNT
    ", " REG_INTEGRATION_SECRET_COLUMNS ", " REG_ACCESS_JOIN_COLUMNS};
static const db_stmt_t s_consume_by_token_integ = {
    "pending_consume_token_integ",
    "DELETE FROM pending_logins p USING integrations i LEFT JOIN access_rules a ON a.integration_id = i.id "
    "WHERE p.request_token_hash = $1 AND p.browser_hash = $2 AND p.integration_id = $3 AND i.id = p.integration_id "
    "AND i.base_url = p.base_url RETURNING " PENDING_COLUMNS_P ", " REG_INTEGRATION_COLUMNS_NO_COUNT
    ", " REG_INTEGRATION_SECRET_COLUMNS ", " REG_ACCESS_JOIN_COLUMNS};
/* The same four without the DELETE, for a broker that only reads the
 * login (keep): user.login deletes it in the login's own transaction. */
static const db_stmt_t s_read_by_state = {
    "pending_read_state", "SELECT " PENDING_COLUMNS " FROM pending_logins WHERE state_hash = $1 AND browser_hash = $2 "
                          "AND integration_id = $3 AND " PENDING_BOUND};
static const db_stmt_t s_read_by_token = {
    "pending_read_token", "SELECT " PENDING_COLUMNS " FROM pending_logins WHERE request_token_hash = $1 "
                          "AND browser_hash = $2 AND integration_id = $3 AND " PENDING_BOUND};
static const db_stmt_t s_read_by_state_integ = {
    "pending_read_state_integ",
    "SELECT " PENDING_COLUMNS_P ", " REG_INTEGRATION_COLUMNS_NO_COUNT ", " REG_INTEGRATION_SECRET_COLUMNS
    ", " REG_ACCESS_JOIN_COLUMNS " "
    "FROM pending_logins p JOIN integrations i ON i.id = p.integration_id AND i.base_url = p.base_url "
    "LEFT JOIN access_rules a ON a.integration_id = i.id "
    "WHERE p.state_hash = $1 AND p.browser_hash = $2 AND p.integration_id = $3"};
static const db_stmt_t s_read_by_token_integ = {
    "pending_read_token_integ",
    "SELECT " PENDING_COLUMNS_P ", " REG_INTEGRATION_COLUMNS_NO_COUNT ", " REG_INTEGRATION_SECRET_COLUMNS
    ", " REG_ACCESS_JOIN_COLUMNS " "
    "FROM pending_logins p JOIN integrations i ON i.id = p.integration_id AND i.base_url = p.base_url "
    "LEFT JOIN access_rules a ON a.integration_id = i.id "
    "WHERE p.request_token_hash = $1 AND p.browser_hash = $2 AND p.integration_id = $3"};
/* Why a read or use of a pending login found none: s_explain_miss. */
#define PENDING_WHY                                                                                                    \
    "SELECT browser_hash = $2 AS same_browser, integration_id = $3 AS same_integration, "                              \
    "expires_at <= now() AS expired, NOT " PENDING_BOUND " AS void FROM pending_logins "
static const db_stmt_t s_why_state = {"pending_why_state", PENDING_WHY "WHERE state_hash = $1"};
static const db_stmt_t s_why_token = {"pending_why_token", PENDING_WHY "WHERE request_token_hash = $1"};
/* An expired or void one goes: nobody can use it any more. */
#define PENDING_DEAD "(expires_at <= now() OR NOT " PENDING_BOUND ")"
static const db_stmt_t s_drop_dead_state = {"pending_drop_dead_state",
                                            "DELETE FROM pending_logins WHERE state_hash = $1 AND " PENDING_DEAD};
static const db_stmt_t s_drop_dead_token = {
    "pending_drop_dead_token", "DELETE FROM pending_logins WHERE request_token_hash = $1 AND " PENDING_DEAD};

#define TOKEN_COLUMNS "access_token, refresh_token, token_secret, scope, expires_at, generation"

static const db_stmt_t s_token_store = {
    "token_store",
    "INSERT INTO tokens (identity_id, access_token, refresh_token, token_secret, scope, expires_at, generation) "
    "VALUES ($1, $2, $3, $4, $5, $6, 1) ON CONFLICT (identity_id) DO UPDATE SET "
    "access_token = EXCLUDED.access_token, refresh_token = EXCLUDED.refresh_token, "
    "token_secret = EXCLUDED.token_secret, scope = EXCLUDED.scope, expires_at = EXCLUDED.expires_at, "
    "generation = tokens.generation + 1, lease_holder = NULL, lease_until = NULL, updated_at = now()"};
static const db_stmt_t s_token_get = {"token_get", "SELECT " TOKEN_COLUMNS " FROM tokens WHERE identity_id = $1"};
static const db_stmt_t s_token_lease = {
    "token_lease", "UPDATE tokens SET lease_holder = $2, lease_until = now() + $3::integer * interval '1 millisecond' "
                   "WHERE identity_id = $1 AND (lease_holder IS NULL OR lease_until <= now() OR lease_holder = $2) "
                   "RETURNING " TOKEN_COLUMNS};
static const db_stmt_t s_token_replace = {
    "token_replace",
    "UPDATE tokens SET access_token = $4, refresh_token = $5, token_secret = $6, scope = $7, expires_at = $8, "
    "generation = generation + 1, lease_holder = NULL, lease_until = NULL, updated_at = now() "
    "WHERE identity_id = $1 AND lease_holder = $2 AND generation = $3"};
static const db_stmt_t s_token_revoke = {
    "token_revoke", "DELETE FROM tokens WHERE identity_id = $1 AND lease_holder = $2 AND generation = $3"};
static const db_stmt_t s_token_release = {
    "token_release",
    "UPDATE tokens SET lease_holder = NULL, lease_until = NULL WHERE identity_id = $1 AND lease_holder = $2"};
static const db_stmt_t s_token_exists = {"token_exists", "SELECT 1 FROM tokens WHERE identity_id = $1"};

/* ---- pending.create ---- */

/* The row part of a pending login's additional data: the state hash, or
 * the request token's hash for OAuth 1 logins that have no state. */
static void s_pending_row(const uint8_t *state_hash, const uint8_t *token_hash, char *out, size_t out_size)
{
    char hex[65];
    if (state_hash) {
        crypto_hex(state_hash, 32, hex);
        snprintf(out, out_size, "%s", hex);
    } else {
        crypto_hex(token_hash, 32, hex);
        snprintf(out, out_size, "rt-%s", hex);
    }
}

static bool s_validate_pending(const Portico__Registry__PendingLogin *pl, bus_reply_t *reply)
{
    if (!reg_check_hash(reply, DETAIL(STATE_HASH), &pl->state_hash, false) ||
        !reg_check_hash(reply, DETAIL(BROWSER_HASH), &pl->browser_hash, true) ||
        !reg_check_id(reply, DETAIL(INTEGRATION_ID), pl->integration_id) ||
        !reg_check_text(reply, DETAIL(CODE_VERIFIER), "code verifier", pl->code_verifier, MAX_VERIFIER, REG_OPTIONAL) ||
        !reg_check_text(reply, DETAIL(REQUEST_TOKEN), "request token", pl->request_token, MAX_OAUTH1_TOKEN,
                        REG_OPTIONAL) ||
        !reg_check_text(reply, DETAIL(REQUEST_TOKEN_SECRET), "request token secret", pl->request_token_secret,
                        MAX_OAUTH1_TOKEN, REG_OPTIONAL) ||
        !reg_check_text(reply, DETAIL(RETURN_TO), "return path", pl->return_to, MAX_RETURN_TO, REG_OPTIONAL))
        return false;
    if (pl->state_hash.len == 0 && !pl->request_token[0]) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(STATE_HASH),
                      "a pending login needs a state hash or a request token");
        return false;
    }
    if (pl->return_to[0] && !url_is_local_path(pl->return_to)) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(RETURN_TO),
                      "the return path must be a local path starting with a single /");
        return false;
    }
    if (pl->ttl_seconds < 0 || pl->ttl_seconds > PENDING_TTL_MAX_S) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(TTL_SECONDS),
                      "ttl_seconds must be from 0 (the default, %d) to %d", PENDING_TTL_DEFAULT_S, PENDING_TTL_MAX_S);
        return false;
    }
    return true;
}

/* Once a minute at most: a flood would write a line per start. */
static void s_warn_full(int max)
{
    static _Atomic int64_t last_ms;
    int64_t now = bus_now_ms(), was = atomic_load(&last_ms);
    if (now - was >= 60000 && atomic_compare_exchange_strong(&last_ms, &was, now))
        log_warn("unfinished logins are at PORTICO_PENDING_LOGINS_MAX: the oldest give way to new ones", "max=%d", max);
}

/* The answer of a login.start statement: refused when the browser's cap
 * was reached, else stored (or, for OAuth 2, the integration and whether
 * it stored). */
static void s_pending_reply(reg_ctx_t *c, db_rc_t rc, PGresult *res, bool oauth2, int64_t integration_id,
                            bus_reply_t *reply)
{
    if (rc == DB_UNIQUE) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__CONFLICT, DETAIL(EXISTS),
                      "a login with this state is already pending");
        return;
    }
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        return;
    }
    if (db_get_int(res, 0, db_col(res, "browser_pending")) >= c->opts->pending_per_browser) {
        log_warn("refused a login start: too many pending logins for one browser", NULL);
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__RATE_LIMITED, DETAIL(PENDING_BROWSER),
                      "too many sign-ins are in progress: finish one or wait a few minutes");
        return;
    }
    if (db_get_int(res, 0, db_col(res, "all_pending")) >= c->opts->pending_max)
        s_warn_full(c->opts->pending_max);
    if (!db_get_bool(res, 0, db_col(res, "integration_found"))) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(INTEGRATION),
                      "integration %" PRId64 " does not exist", integration_id);
        return;
    }
    if (!oauth2) {
        reg_reply_empty(reply);
        return;
    }
    Portico__Registry__Integration in;
    reg_integration_cols_t cols = reg_integration_columns(res);
    reg_fill_integration(&in, res, 0, &cols);
    Portico__Registry__CreatePendingReply out = PORTICO__REGISTRY__CREATE_PENDING_REPLY__INIT;
    out.integration = &in;
    out.stored = db_get_bool(res, 0, db_col(res, "stored"));
    bus_reply_ok(reply, &out.base);
}

void h_pending_create(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__CreatePendingRequest *r = (const Portico__Registry__CreatePendingRequest *)msg;
    const Portico__Registry__PendingLogin *pl = r->pending;
    uint8_t *sealed[3] = {NULL, NULL, NULL};
    size_t sealed_n[3] = {0, 0, 0};
    uint8_t token_hash[32];
    char row[80], aad[160];
    db_params_t p;

    if (!pl) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(PENDING), "pending is required");
        return;
    }
    if (!s_validate_pending(pl, reply))
        return;
    bool has_token = pl->request_token[0] != '\0';
    if (has_token)
        crypto_sha256(pl->request_token, strlen(pl->request_token), token_hash);
    s_pending_row(pl->state_hash.len ? pl->state_hash.data : NULL, token_hash, row, sizeof row);
    const char *columns[3] = {"code_verifier", "request_token", "request_token_secret"};
    const char *values[3] = {pl->code_verifier, pl->request_token, pl->request_token_secret};
    for (int i = 0; i < 3; i++) {
        secrets_aad(aad, sizeof aad, "pending", row, columns[i]);
        if (secrets_seal(c->keys, values[i], aad, &sealed[i], &sealed_n[i]) < 0) {
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE),
                          "could not encrypt the pending login");
            goto out;
        }
    }
    /* Every start stores a row for up to PORTICO_LOGIN_TTL_SECONDS: the
     * statement bounds them per browser and in all. */
    db_params_init(&p);
    db_param_bytes(&p, pl->state_hash.len ? pl->state_hash.data : NULL, pl->state_hash.len);
    db_param_bytes(&p, has_token ? token_hash : NULL, 32);
    db_param_int(&p, pl->integration_id);
    for (int i = 0; i < 3; i++)
        db_param_bytes(&p, sealed[i], sealed_n[i]);
    db_param_bytes(&p, pl->browser_hash.data, pl->browser_hash.len);
    db_param_text(&p, pl->return_to[0] ? pl->return_to : "/");
    db_param_int(&p, pl->ttl_seconds ? pl->ttl_seconds : PENDING_TTL_DEFAULT_S);
    db_param_int(&p, c->opts->pending_per_browser);
    db_param_int(&p, c->opts->pending_max);
    PGresult *res = NULL;
    db_rc_t rc = db_exec(c->db, r->oauth2_integration ? &s_pending_insert_oauth2 : &s_pending_insert, &p, &res);
    s_pending_reply(c, rc, res, r->oauth2_integration, pl->integration_id, reply);
    PQclear(res);
out:
    for (int i = 0; i < 3; i++)
        secrets_free_sealed(sealed[i], sealed_n[i]);
}

/* ---- pending.consume ---- */

/* Why the consuming DELETE found nothing: unknown, expired (then deleted),
 * or another browser's or integration's login (then left in place). */
static void s_explain_miss(reg_ctx_t *c, bool by_state, const db_params_t *p, bus_reply_t *reply)
{
    PGresult *res = NULL;
    db_rc_t rc = db_exec(c->db, by_state ? &s_why_state : &s_why_token, p, &res);
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        return;
    }
    if (PQntuples(res) == 0) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(UNKNOWN),
                      "no login is waiting for this callback: it was already completed or never started");
    } else if (db_get_bool(res, 0, db_col(res, "expired")) || db_get_bool(res, 0, db_col(res, "void"))) {
        bool expired = db_get_bool(res, 0, db_col(res, "expired"));
        db_params_t q;
        db_params_init(&q);
        db_param_bytes(&q, p->values[0], (size_t)p->lengths[0]);
        rc = db_exec(c->db, by_state ? &s_drop_dead_state : &s_drop_dead_token, &q, NULL);
        if (rc != DB_OK)
            reg_reply_db(reply, rc);
        else if (expired)
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(EXPIRED),
                          "the login took too long and expired");
        else
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(UNKNOWN),
                          "the integration this login was started for was deleted or moved since: start again");
    } else if (!db_get_bool(res, 0, db_col(res, "same_browser"))) {
        log_warn("refused a login callback from another browser", NULL);
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(BROWSER),
                      "this login was started in another browser");
    } else {
        log_warn("refused a login callback for another integration", NULL);
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(INTEGRATION),
                      "this login was started for another integration");
    }
    PQclear(res);
}

static void s_reply_pending(reg_ctx_t *c, const PGresult *res, bool with_integration, bus_reply_t *reply)
{
    char row[80], aad[160];
    char *opened[3] = {NULL, NULL, NULL};
    char *client_secret = NULL, *private_key = NULL;
    Portico__Registry__Integration in;
    Portico__Registry__IntegrationSecrets secrets = PORTICO__REGISTRY__INTEGRATION_SECRETS__INIT;
    reg_access_rules_t access;
    memset(&access, 0, sizeof access);
    size_t sh_n = 0, th_n = 0, bh_n = 0;
    uint8_t *state_hash = db_get_bytes(res, 0, db_col(res, "state_hash"), &sh_n);
    uint8_t *token_hash = db_get_bytes(res, 0, db_col(res, "request_token_hash"), &th_n);
    uint8_t *browser_hash = db_get_bytes(res, 0, db_col(res, "browser_hash"), &bh_n);
    const char *columns[3] = {"code_verifier", "request_token", "request_token_secret"};
    if ((state_hash && sh_n != 32) || (!state_hash && (!token_hash || th_n != 32))) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "internal error in the registry");
        goto out;
    }
    s_pending_row(state_hash, token_hash, row, sizeof row);
    for (int i = 0; i < 3; i++) {
        size_t n = 0;
        uint8_t *sealed = db_get_bytes(res, 0, db_col(res, columns[i]), &n);
        secrets_aad(aad, sizeof aad, "pending", row, columns[i]);
        opened[i] = secrets_open(c->keys, sealed, n, aad);
        free(sealed);
        if (!opened[i]) {
            log_error("could not decrypt a pending login", NULL);
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(KEY),
                          "the pending login could not be decrypted with the configured key");
            goto out;
        }
    }
    Portico__Registry__PendingLogin pl = PORTICO__REGISTRY__PENDING_LOGIN__INIT;
    pl.state_hash.data = state_hash;
    pl.state_hash.len = state_hash ? sh_n : 0;
    pl.integration_id = db_get_int(res, 0, db_col(res, "integration_id"));
    pl.code_verifier = opened[0];
    pl.request_token = opened[1];
    pl.request_token_secret = opened[2];
    pl.browser_hash.data = browser_hash;
    pl.browser_hash.len = browser_hash ? bh_n : 0;
    pl.return_to = REG_STR(db_get_text(res, 0, db_col(res, "return_to")));
    pl.expires_at = db_get_int(res, 0, db_col(res, "expires_at"));
    Portico__Registry__ConsumePendingReply out = PORTICO__REGISTRY__CONSUME_PENDING_REPLY__INIT;
    out.pending = &pl;
    if (with_integration) {
        reg_integration_cols_t cols = reg_integration_columns(res);
        reg_fill_integration(&in, res, 0, &cols);
        if (reg_open_integration_secrets(c->keys, in.id, res, 0, &client_secret, &private_key, &reply->err) < 0) {
            goto out;
        }
        secrets.client_secret = client_secret;
        secrets.private_key_pem = private_key;
        out.integration = &in;
        out.secrets = &secrets;
        /* The integration's access rules came in the same row. */
        if (reg_access_from_row(res, 0, in.id, &access) < 0) {
            reg_reply_db(reply, DB_FAIL);
            goto out;
        }
        out.access = &access.msg;
    }
    bus_reply_ok(reply, &out.base);
out:
    reg_access_clear(&access);
    secrets_free(client_secret);
    secrets_free(private_key);
    for (int i = 0; i < 3; i++)
        secrets_free(opened[i]);
    free(state_hash);
    free(token_hash);
    free(browser_hash);
}

/* $1..$3 of the statements that find a pending login: the state hash (or
 * the request token's, kept in token_hash), the browser, the integration. */
static void s_pending_key(db_params_t *p, const Portico__Registry__ConsumePendingRequest *r, bool by_state,
                          uint8_t token_hash[32])
{
    db_params_init(p);
    if (by_state) {
        db_param_bytes(p, r->state_hash.data, r->state_hash.len);
    } else {
        crypto_sha256(r->request_token, strlen(r->request_token), token_hash);
        db_param_bytes(p, token_hash, 32);
    }
    db_param_bytes(p, r->browser_hash.data, r->browser_hash.len);
    db_param_int(p, r->integration_id);
}

void h_pending_consume(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__ConsumePendingRequest *r = (const Portico__Registry__ConsumePendingRequest *)msg;
    PGresult *res = NULL;
    uint8_t token_hash[32]; /* outlives the branch: p points at it */
    db_params_t p;
    if (!reg_check_hash(reply, DETAIL(STATE_HASH), &r->state_hash, false) ||
        !reg_check_hash(reply, DETAIL(BROWSER_HASH), &r->browser_hash, true) ||
        !reg_check_id(reply, DETAIL(INTEGRATION_ID), r->integration_id) ||
        !reg_check_text(reply, DETAIL(REQUEST_TOKEN), "request token", r->request_token, MAX_OAUTH1_TOKEN,
                        REG_OPTIONAL))
        return;
    bool by_state = r->state_hash.len > 0;
    if (!by_state && !r->request_token[0]) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(STATE_HASH),
                      "give a state hash or a request token");
        return;
    }
    s_pending_key(&p, r, by_state, token_hash);
    const db_stmt_t *stmt;
    if (r->keep)
        stmt = r->with_integration ? (by_state ? &s_read_by_state_integ : &s_read_by_token_integ)
                                   : (by_state ? &s_read_by_state : &s_read_by_token);
    else
        stmt = r->with_integration ? (by_state ? &s_consume_by_state_integ : &s_consume_by_token_integ)
                                   : (by_state ? &s_consume_by_state : &s_consume_by_token);
    db_rc_t rc = db_exec(c->db, stmt, &p, &res);
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        return;
    }
    if (PQntuples(res) == 0 || (r->keep && db_get_bool(res, 0, db_col(res, "expired"))))
        s_explain_miss(c, by_state, &p, reply); /* also deletes an expired one */
    else if (db_get_bool(res, 0, db_col(res, "expired")))
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(EXPIRED),
                      "the login took too long and expired");
    else
        s_reply_pending(c, res, r->with_integration, reply);
    PQclear(res);
}

bool reg_pending_finish_key(const Portico__Registry__ConsumePendingRequest *r, int64_t integration_id, uint8_t key[32],
                            bool *by_state)
{
    *by_state = r->state_hash.len == 32;
    if (!*by_state && !r->request_token[0])
        return false;
    if (r->browser_hash.len != 32 || r->integration_id != integration_id)
        return false;
    if (*by_state)
        memcpy(key, r->state_hash.data, 32);
    else
        crypto_sha256(r->request_token, strlen(r->request_token), key);
    return true;
}

/* ---- tokens ---- */

bool reg_check_tokens(const Portico__Registry__Tokens *t, bus_reply_t *reply)
{
    if (!t) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(TOKENS), "tokens are required");
        return false;
    }
    if (t->expires_at < 0) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(EXPIRES_AT),
                      "expires_at must not be negative");
        return false;
    }
    return reg_check_text(reply, DETAIL(ACCESS_TOKEN), "access token", t->access_token, MAX_TOKEN, REG_REQUIRED) &&
           reg_check_text(reply, DETAIL(REFRESH_TOKEN), "refresh token", t->refresh_token, MAX_TOKEN, REG_OPTIONAL) &&
           reg_check_text(reply, DETAIL(TOKEN_SECRET), "token secret", t->token_secret, MAX_TOKEN, REG_OPTIONAL) &&
           reg_check_text(reply, DETAIL(SCOPE), "scope", t->scope, MAX_SCOPE, REG_OPTIONAL);
}

typedef struct {
    uint8_t *sealed[3];
    size_t n[3];
} sealed_tokens_t;

static const char *const s_token_columns[3] = {"access_token", "refresh_token", "token_secret"};

static void s_sealed_clear(sealed_tokens_t *s)
{
    for (int i = 0; i < 3; i++)
        secrets_free_sealed(s->sealed[i], s->n[i]);
    memset(s, 0, sizeof *s);
}

static int s_seal_tokens(const crypto_keyring_t *keys, int64_t identity_id, const Portico__Registry__Tokens *t,
                         sealed_tokens_t *out)
{
    char row[24], aad[96];
    const char *values[3] = {t->access_token, t->refresh_token, t->token_secret};
    memset(out, 0, sizeof *out);
    snprintf(row, sizeof row, "%" PRId64, identity_id);
    for (int i = 0; i < 3; i++) {
        secrets_aad(aad, sizeof aad, "token", row, s_token_columns[i]);
        if (secrets_seal(keys, values[i], aad, &out->sealed[i], &out->n[i]) < 0) {
            s_sealed_clear(out);
            return -1;
        }
    }
    return 0;
}

int reg_open_tokens(const crypto_keyring_t *keys, int64_t identity_id, const PGresult *res, int row,
                    Portico__Registry__Tokens *t, char *opened[3])
{
    char id[24], aad[96];
    portico__registry__tokens__init(t);
    snprintf(id, sizeof id, "%" PRId64, identity_id);
    for (int i = 0; i < 3; i++) {
        size_t n = 0;
        uint8_t *sealed = db_get_bytes(res, row, db_col(res, s_token_columns[i]), &n);
        secrets_aad(aad, sizeof aad, "token", id, s_token_columns[i]);
        opened[i] = secrets_open(keys, sealed, n, aad);
        free(sealed);
        if (!opened[i]) {
            log_error("could not decrypt stored tokens", "identity=%" PRId64, identity_id);
            reg_close_tokens(opened);
            return -1;
        }
    }
    t->access_token = opened[0];
    t->refresh_token = opened[1];
    t->token_secret = opened[2];
    t->scope = REG_STR(db_get_text(res, row, db_col(res, "scope")));
    t->expires_at = db_get_int(res, row, db_col(res, "expires_at"));
    return 0;
}

void reg_close_tokens(char *opened[3])
{
    for (int i = 0; i < 3; i++) {
        secrets_free(opened[i]);
        opened[i] = NULL;
    }
}

/* Answer GetTokensReply (the same shape as LeaseTokensReply) from a row of
 * TOKEN_COLUMNS. */
static void s_reply_tokens(reg_ctx_t *c, int64_t identity_id, const PGresult *res, bus_reply_t *reply)
{
    char *opened[3] = {NULL, NULL, NULL};
    Portico__Registry__Tokens t;
    if (reg_open_tokens(c->keys, identity_id, res, 0, &t, opened) < 0) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(KEY),
                      "the stored tokens could not be decrypted with the configured key");
        return;
    }
    Portico__Registry__GetTokensReply out = PORTICO__REGISTRY__GET_TOKENS_REPLY__INIT;
    out.tokens = &t;
    out.generation = db_get_int(res, 0, db_col(res, "generation"));
    bus_reply_ok(reply, &out.base);
    reg_close_tokens(opened);
}

static void s_no_tokens(bus_reply_t *reply, int64_t identity_id)
{
    bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(TOKENS),
                  "no tokens are stored for identity %" PRId64 ": the user must log in again", identity_id);
}

db_rc_t reg_tokens_store(reg_ctx_t *c, int64_t identity_id, const Portico__Registry__Tokens *t, bus_reply_t *reply)
{
    sealed_tokens_t s;
    db_params_t p;
    if (s_seal_tokens(c->keys, identity_id, t, &s) < 0) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "could not encrypt the tokens");
        return DB_FAIL;
    }
    db_params_init(&p);
    db_param_int(&p, identity_id);
    for (int i = 0; i < 3; i++)
        db_param_bytes(&p, s.sealed[i], s.n[i]);
    db_param_text(&p, t->scope);
    db_param_int(&p, t->expires_at);
    db_rc_t rc = db_exec(c->db, &s_token_store, &p, NULL);
    s_sealed_clear(&s);
    return rc;
}

void h_token_store(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__StoreTokensRequest *r = (const Portico__Registry__StoreTokensRequest *)msg;
    if (!reg_check_id(reply, DETAIL(IDENTITY_ID), r->identity_id) || !reg_check_tokens(r->tokens, reply))
        return;
    db_rc_t rc = reg_tokens_store(c, r->identity_id, r->tokens, reply);
    if (reply->err.code)
        return; /* answered already */
    if (rc == DB_FOREIGN)
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(IDENTITY),
                      "identity %" PRId64 " does not exist", r->identity_id);
    else if (rc != DB_OK)
        reg_reply_db(reply, rc);
    else
        reg_reply_empty(reply);
}

void h_token_get(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__GetTokensRequest *r = (const Portico__Registry__GetTokensRequest *)msg;
    PGresult *res = NULL;
    db_params_t p;
    if (!reg_check_id(reply, DETAIL(IDENTITY_ID), r->identity_id))
        return;
    db_params_init(&p);
    db_param_int(&p, r->identity_id);
    db_rc_t rc = db_exec(c->db, &s_token_get, &p, &res);
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        return;
    }
    if (PQntuples(res) == 0)
        s_no_tokens(reply, r->identity_id);
    else
        s_reply_tokens(c, r->identity_id, res, reply);
    PQclear(res);
}

/* After a conditional statement matched nothing: NOT_FOUND when there are
 * no tokens at all, else CONFLICT with detail. */
static void s_token_miss(reg_ctx_t *c, int64_t identity_id, int detail, const char *message, bus_reply_t *reply)
{
    PGresult *res = NULL;
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, identity_id);
    db_rc_t rc = db_exec(c->db, &s_token_exists, &p, &res);
    if (rc != DB_OK)
        reg_reply_db(reply, rc);
    else if (PQntuples(res) == 0)
        s_no_tokens(reply, identity_id);
    else
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__CONFLICT, detail, "%s", message);
    PQclear(res);
}

void h_token_lease(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__LeaseTokensRequest *r = (const Portico__Registry__LeaseTokensRequest *)msg;
    PGresult *res = NULL;
    db_params_t p;
    if (!reg_check_id(reply, DETAIL(IDENTITY_ID), r->identity_id) ||
        !reg_check_text(reply, DETAIL(HOLDER), "holder", r->holder, MAX_HOLDER, REG_REQUIRED))
        return;
    int lease_ms = r->lease_ms ? r->lease_ms : LEASE_DEFAULT_MS;
    if (lease_ms < LEASE_MIN_MS || lease_ms > LEASE_MAX_MS) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(LEASE_MS),
                      "lease_ms must be from %d to %d (0 means %d)", LEASE_MIN_MS, LEASE_MAX_MS, LEASE_DEFAULT_MS);
        return;
    }
    db_params_init(&p);
    db_param_int(&p, r->identity_id);
    db_param_text(&p, r->holder);
    db_param_int(&p, lease_ms);
    db_rc_t rc = db_exec(c->db, &s_token_lease, &p, &res);
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        return;
    }
    if (PQntuples(res) == 0)
        s_token_miss(c, r->identity_id, DETAIL(LEASED),
                     "another refresh of these tokens is in progress: wait, then read them again", reply);
    else
        s_reply_tokens(c, r->identity_id, res, reply);
    PQclear(res);
}

void h_token_replace(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__ReplaceTokensRequest *r = (const Portico__Registry__ReplaceTokensRequest *)msg;
    PGresult *res = NULL;
    sealed_tokens_t s = {0};
    db_params_t p;
    db_rc_t rc;
    if (!reg_check_id(reply, DETAIL(IDENTITY_ID), r->identity_id) ||
        !reg_check_text(reply, DETAIL(HOLDER), "holder", r->holder, MAX_HOLDER, REG_REQUIRED) ||
        !reg_check_id(reply, DETAIL(GENERATION), r->generation) || (!r->revoked && !reg_check_tokens(r->tokens, reply)))
        return;
    db_params_init(&p);
    db_param_int(&p, r->identity_id);
    db_param_text(&p, r->holder);
    db_param_int(&p, r->generation);
    if (r->revoked) {
        rc = db_exec(c->db, &s_token_revoke, &p, &res);
    } else {
        if (s_seal_tokens(c->keys, r->identity_id, r->tokens, &s) < 0) {
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "could not encrypt the tokens");
            return;
        }
        for (int i = 0; i < 3; i++)
            db_param_bytes(&p, s.sealed[i], s.n[i]);
        db_param_text(&p, r->tokens->scope);
        db_param_int(&p, r->tokens->expires_at);
        rc = db_exec(c->db, &s_token_replace, &p, &res);
    }
    if (rc != DB_OK)
        reg_reply_db(reply, rc);
    else if (PQcmdTuples(res)[0] == '0')
        s_token_miss(c, r->identity_id, DETAIL(LEASE_LOST),
                     "the refresh lease was lost or the tokens changed meanwhile: read them again", reply);
    else
        reg_reply_empty(reply);
    if (rc == DB_OK && r->revoked && PQcmdTuples(res)[0] != '0')
        log_info("stored tokens forgotten after the refresh token was refused", "identity=%" PRId64, r->identity_id);
    PQclear(res);
    s_sealed_clear(&s);
}

void h_token_release(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__ReleaseTokensRequest *r = (const Portico__Registry__ReleaseTokensRequest *)msg;
    db_params_t p;
    if (!reg_check_id(reply, DETAIL(IDENTITY_ID), r->identity_id) ||
        !reg_check_text(reply, DETAIL(HOLDER), "holder", r->holder, MAX_HOLDER, REG_REQUIRED))
        return;
    db_params_init(&p);
    db_param_int(&p, r->identity_id);
    db_param_text(&p, r->holder);
    db_rc_t rc = db_exec(c->db, &s_token_release, &p, NULL);
    if (rc != DB_OK)
        reg_reply_db(reply, rc);
    else
        reg_reply_empty(reply);
}
