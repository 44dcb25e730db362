/* access.*: who may log in through an integration, and access that ends.
 *
 * The rules live in access_rules (one row per integration, none = everyone
 * with an account on that Bitbucket). access_checks remembers when each
 * identity last passed them, at login or at a re-check; brokers claim the
 * identities whose users have live sessions and whose check is old
 * (access.due), check them against Bitbucket with the user's own token,
 * and report (access.result). A failed check marks the account in
 * access_ended (never deletes it), ends its sessions and forgets the
 * identity's tokens, in one transaction with its audit entry. Refused
 * logins are audit entries (login.refused, written by the broker);
 * access.refused lists them for the Users page. */
#include "handlers_access.h"

#include "access_rules.h"
#include "audit.h"
#include "log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ADDR 64
#define MAX_REASON 64
#define MAX_EMAIL 320
#define DUE_MAX 100
#define ENDED_MAX 500
#define REFUSED_MAX 200
#define REFUSED_DEFAULT 20

#define AUDIT_ACCESS_RULES "integration.access"
#define AUDIT_ACCESS_ENDED "access.ended"

#define RULES_COLUMNS                                                                                                  \
    "integration_id, resource, array_to_string(patterns, E'\\n') AS patterns, contact, "                               \
    "floor(extract(epoch FROM updated_at))::bigint AS updated_at, updated_by"

static const db_stmt_t s_get = {"access_get", "SELECT " RULES_COLUMNS " FROM access_rules WHERE integration_id = $1"};
static const db_stmt_t s_set = {
    "access_set",
    "INSERT INTO access_rules (integration_id, resource, patterns, contact, updated_at, updated_by) "
    "SELECT i.id, $2, string_to_array($3, E'\\n'), $4, now(), $5 FROM integrations i WHERE i.id = $1 "
    "ON CONFLICT (integration_id) DO UPDATE SET resource = EXCLUDED.resource, patterns = EXCLUDED.patterns, "
    "contact = EXCLUDED.contact, updated_at = now(), updated_by = EXCLUDED.updated_by "
    "RETURNING " RULES_COLUMNS};
/* A changed rule applies to existing sessions at once: their identities are
 * due for a re-check now. */
static const db_stmt_t s_recheck_all = {"access_recheck_all",
                                        "UPDATE access_checks SET checked_at = '-infinity', claimed_until = NULL "
                                        "WHERE identity_id IN (SELECT id FROM identities WHERE integration_id = $1)"};
/* A login is a fresh check of the identity, and clears the user's mark of
 * an ended access (one statement: a login's every statement costs). The
 * broker checked the rules it read at the callback, up to the broker's
 * deadline for login.finish (120 s, proto/broker.proto) before this: when
 * the integration's rules changed since then, access.set's "everyone is
 * due" may have come between, and this login must not undo it, so the
 * identity stays due. (A login that merely ends within 120 s of a change
 * is checked again once more: harmless.) */
static const db_stmt_t s_after_login = {
    "access_after_login",
    "WITH cleared AS (DELETE FROM access_ended WHERE user_id = $2) "
    "INSERT INTO access_checks (identity_id, checked_at) "
    "SELECT $1, CASE WHEN EXISTS (SELECT 1 FROM identities d "
    "  JOIN access_rules r ON r.integration_id = d.integration_id "
    "  WHERE d.id = $1 AND r.updated_at > now() - interval '120 seconds') "
    "THEN '-infinity'::timestamptz ELSE now() END "
    "ON CONFLICT (identity_id) DO UPDATE SET checked_at = EXCLUDED.checked_at, claimed_until = NULL"};
/* Identities of users with a live session, on enabled integrations, whose
 * last check is older than $1 seconds (or who were never checked), not
 * claimed by another broker. Oldest check first, but those whose claim ran
 * out (postponed: their Bitbucket did not answer) after all the others, so
 * that a Bitbucket that is down cannot keep the rest waiting. Each is held
 * (FOR KEY SHARE, as the foreign key's own check does) so that it cannot be
 * deleted before its claim is written; one being deleted is skipped, not
 * waited for: otherwise its claim's foreign key failed the whole batch. */
static const db_stmt_t s_due = {
    "access_due",
    "WITH due AS ("
    "  SELECT d.id FROM identities d JOIN integrations i ON i.id = d.integration_id AND i.enabled "
    "  LEFT JOIN access_checks k ON k.identity_id = d.id "
    "  WHERE EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = d.user_id AND s.idle_expires_at > now() "
    "                AND s.absolute_expires_at > now()) "
    "    AND (k.identity_id IS NULL OR (k.checked_at < now() - $1::integer * interval '1 second' "
    "         AND (k.claimed_until IS NULL OR k.claimed_until < now()))) "
    "  ORDER BY k.claimed_until NULLS FIRST, k.checked_at NULLS FIRST LIMIT $2 FOR KEY SHARE OF d SKIP LOCKED), "
    "claimed AS ("
    "  INSERT INTO access_checks (identity_id, checked_at, claimed_until) "
    "  SELECT id, '-infinity', now() + $3::integer * interval '1 second' FROM due "
    "  ON CONFLICT (identity_id) DO UPDATE SET claimed_until = EXCLUDED.claimed_until "
    "  WHERE access_checks.claimed_until IS NULL OR access_checks.claimed_until < now() "
    "  RETURNING identity_id, claimed_until) "
    "SELECT d.id, d.user_id, d.integration_id, d.bb_user_id, d.username, d.slug, d.email, "
    "  (extract(epoch FROM c.claimed_until) * 1000000)::bigint AS claim, "
    "  coalesce(r.resource, '') AS resource, coalesce(array_to_string(r.patterns, E'\\n'), '') AS patterns, "
    "  coalesce(r.contact, '') AS contact "
    "FROM claimed c JOIN identities d ON d.id = c.identity_id "
    "LEFT JOIN access_rules r ON r.integration_id = d.integration_id ORDER BY d.id"};
/* A result counts only while its own claim stands: access.set (a rule
 * change) and user.login clear the claim, and a check that began before
 * either was made against what they replaced; another broker may have
 * claimed the identity since (after such a change, or once this claim ran
 * out), and its result is the one to keep. The claim is told by its
 * claimed_until in microseconds ($2; 0 from a broker that sends none:
 * any). Its row stays locked to the end of the transaction, so a rule
 * change waits for the result, and then makes the identity due again. */
static const db_stmt_t s_result_claimed = {
    "access_result_claimed",
    "UPDATE access_checks SET checked_at = now(), claimed_until = NULL "
    "WHERE identity_id = $1 AND claimed_until IS NOT NULL "
    "AND ($2::bigint = 0 OR (extract(epoch FROM claimed_until) * 1000000)::bigint = $2) RETURNING identity_id"};
static const db_stmt_t s_identity = {"access_identity",
                                     "SELECT user_id, integration_id, username FROM identities WHERE id = $1"};
static const db_stmt_t s_update_email = {"access_update_email",
                                         "UPDATE identities SET email = $2 WHERE id = $1 AND $2 <> '' AND email <> $2"};
static const db_stmt_t s_mark = {
    "access_mark", "INSERT INTO access_ended (user_id, at, integration_id, reason) VALUES ($1, now(), $2, $3) "
                   "ON CONFLICT (user_id) DO UPDATE SET at = now(), integration_id = $2, reason = $3"};
static const db_stmt_t s_end_sessions = {"access_end_sessions", "DELETE FROM sessions WHERE user_id = $1"};
static const db_stmt_t s_forget_tokens = {"access_forget_tokens", "DELETE FROM tokens WHERE identity_id = $1"};
static const db_stmt_t s_ended_list = {
    "access_ended_list",
    "SELECT user_id, (extract(epoch FROM at) * 1000)::bigint AS at_ms, "
    "coalesce(integration_id, 0) AS integration_id, reason FROM access_ended ORDER BY at DESC LIMIT $1"};

static const db_stmt_t s_list = {"access_list", "SELECT " RULES_COLUMNS " FROM access_rules ORDER BY integration_id"};
static const db_stmt_t s_refused_list = {
    "access_refused_list",
    "SELECT id, (extract(epoch FROM at) * 1000)::bigint AS at_ms, actor, action, object, addr, detail "
    "FROM audit_log WHERE action = 'login.refused' ORDER BY action, at DESC LIMIT $1"};

/* ---- rules as a message ---- */

static void s_rules_clear(reg_access_rules_t *r)
{
    free(r->patterns);
    free(r->patterns_buf);
    memset(r, 0, sizeof *r);
    portico__registry__access_rules__init(&r->msg);
}

/* Fill r from the columns of RULES_COLUMNS-like text at col (resource,
 * newline-joined patterns, contact); strings point into res or r. */
static int s_rules_fill(reg_access_rules_t *r, int64_t integration_id, const char *resource, const char *patterns,
                        const char *contact)
{
    s_rules_clear(r);
    r->msg.integration_id = integration_id;
    r->msg.resource = REG_STR(resource);
    r->msg.contact = REG_STR(contact);
    if (!patterns || !*patterns)
        return 0;
    r->patterns_buf = strdup(patterns);
    size_t n = 1;
    for (const char *p = patterns; *p; p++)
        n += *p == '\n';
    r->patterns = calloc(n, sizeof *r->patterns);
    if (!r->patterns_buf || !r->patterns)
        return -1;
    size_t k = 0;
    for (char *save = NULL, *t = strtok_r(r->patterns_buf, "\n", &save); t && k < n; t = strtok_r(NULL, "\n", &save))
        r->patterns[k++] = t;
    r->msg.patterns = r->patterns;
    r->msg.n_patterns = k;
    return 0;
}

void reg_access_clear(reg_access_rules_t *r)
{
    if (!r)
        return;
    PGresult *res = r->res;
    s_rules_clear(r);
    PQclear(res);
}

int reg_access_from_row(const PGresult *res, int row, int64_t integration_id, reg_access_rules_t *out)
{
    memset(out, 0, sizeof *out);
    s_rules_clear(out);
    out->msg.integration_id = integration_id;
    if (!db_get_bool(res, row, db_col(res, "access_set")))
        return 0;
    if (s_rules_fill(out, integration_id, db_get_text(res, row, db_col(res, "access_resource")),
                     db_get_text(res, row, db_col(res, "access_patterns")),
                     db_get_text(res, row, db_col(res, "access_contact"))) < 0) {
        s_rules_clear(out);
        return -1;
    }
    out->msg.updated_at = db_get_int(res, row, db_col(res, "access_updated_at"));
    out->msg.updated_by = REG_STR(db_get_text(res, row, db_col(res, "access_updated_by")));
    return 0;
}

db_rc_t reg_access_load(db_t *db, int64_t integration_id, reg_access_rules_t *out)
{
    memset(out, 0, sizeof *out);
    s_rules_clear(out);
    out->msg.integration_id = integration_id;
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, integration_id);
    PGresult *res = NULL;
    db_rc_t rc = db_exec(db, &s_get, &p, &res);
    if (rc != DB_OK)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return DB_OK;
    }
    if (s_rules_fill(out, integration_id, db_get_text(res, 0, db_col(res, "resource")),
                     db_get_text(res, 0, db_col(res, "patterns")), db_get_text(res, 0, db_col(res, "contact"))) < 0) {
        s_rules_clear(out);
        PQclear(res);
        return DB_FAIL;
    }
    out->msg.updated_at = db_get_int(res, 0, db_col(res, "updated_at"));
    out->msg.updated_by = REG_STR(db_get_text(res, 0, db_col(res, "updated_by")));
    out->res = res;
    return DB_OK;
}

db_rc_t reg_access_after_login(db_t *db, int64_t user_id, int64_t identity_id)
{
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, identity_id);
    db_param_int(&p, user_id);
    return db_exec(db, &s_after_login, &p, NULL);
}

/* ---- access.get ---- */

void h_access_get(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__GetAccessRequest *r = (const Portico__Registry__GetAccessRequest *)msg;
    if (!reg_check_id(reply, DETAIL(INTEGRATION_ID), r->integration_id))
        return;
    reg_access_rules_t rules;
    db_rc_t rc = reg_access_load(c->db, r->integration_id, &rules);
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        return;
    }
    bus_reply_ok(reply, &rules.msg.base);
    reg_access_clear(&rules);
}

/* ---- access.set ---- */

static bool s_check_rules(const Portico__Registry__AccessRules *in, bus_reply_t *reply, char *joined, size_t size)
{
    if (!reg_check_text(reply, DETAIL(RESOURCE), "Bitbucket project or repository", in->resource, ACCESS_MAX_RESOURCE,
                        REG_OPTIONAL) ||
        !reg_check_text(reply, DETAIL(CONTACT), "whom to ask", in->contact, ACCESS_MAX_CONTACT, REG_OPTIONAL))
        return false;
    if (!access_resource_valid(in->resource)) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(RESOURCE),
                      "write a project key (PROJ) or a project key and repository slug (PROJ/repo)");
        return false;
    }
    if (in->n_patterns > ACCESS_MAX_PATTERNS) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(PATTERNS), "at most %d names or patterns",
                      ACCESS_MAX_PATTERNS);
        return false;
    }
    size_t used = 0;
    joined[0] = '\0';
    for (size_t i = 0; i < in->n_patterns; i++) {
        const char *p = in->patterns[i];
        if (!reg_check_text(reply, DETAIL(PATTERNS), "names and patterns", p, ACCESS_MAX_PATTERN, REG_REQUIRED))
            return false;
        if (!access_pattern_valid(p)) {
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(PATTERNS),
                          "\"%.60s\" is neither a user name, an e-mail address nor *@domain", p);
            return false;
        }
        int n = snprintf(joined + used, size - used, "%s%s", used ? "\n" : "", p);
        if (n < 0 || (size_t)n >= size - used) {
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(PATTERNS), "the list is too long");
            return false;
        }
        used += (size_t)n;
    }
    return true;
}

static char *s_joined_new(bus_reply_t *reply, size_t size)
{
    char *joined = malloc(size);
    if (!joined)
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "out of memory");
    return joined;
}

void h_access_set(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__SetAccessRequest *r = (const Portico__Registry__SetAccessRequest *)msg;
    /* 64 KB: on the heap, not in thread-local storage, which glibc takes
     * from every thread's stack (civetweb's health threads have 100 KB). */
    const size_t joined_size = ACCESS_MAX_PATTERNS * (ACCESS_MAX_PATTERN + 1) + 1;
    char *joined = NULL;
    PGresult *res = NULL;
    reg_access_rules_t rules;
    memset(&rules, 0, sizeof rules);
    db_rc_t rc;
    if (!r->rules) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(RULES), "rules are required");
        return;
    }
    if (!reg_check_id(reply, DETAIL(INTEGRATION_ID), r->rules->integration_id) ||
        !reg_check_text(reply, DETAIL(ACTOR), "actor", r->actor, REG_MAX_ACTOR, REG_OPTIONAL) ||
        !reg_check_text(reply, DETAIL(ADDR), "address", r->addr, MAX_ADDR, REG_OPTIONAL) ||
        !(joined = s_joined_new(reply, joined_size)) || !s_check_rules(r->rules, reply, joined, joined_size))
        goto out;
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, r->rules->integration_id);
    db_param_text(&p, r->rules->resource);
    db_param_text(&p, joined);
    db_param_text(&p, r->rules->contact);
    db_param_text(&p, reg_actor(r->actor));
    /* An integration deleted meanwhile: the delete's lock makes the insert
     * wait, and its foreign key then fails. */
    if ((rc = db_begin(c->db)) != DB_OK || ((rc = db_exec(c->db, &s_set, &p, &res)) != DB_OK && rc != DB_FOREIGN))
        goto db_fail;
    if (rc == DB_FOREIGN || PQntuples(res) == 0) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(INTEGRATION),
                      "integration %" PRId64 " does not exist", r->rules->integration_id);
        goto out;
    }
    db_params_t q;
    db_params_init(&q);
    db_param_int(&q, r->rules->integration_id);
    if ((rc = db_exec(c->db, &s_recheck_all, &q, NULL)) != DB_OK)
        goto db_fail;
    char object[48], detail[400];
    snprintf(object, sizeof object, "integration:%" PRId64, r->rules->integration_id);
    snprintf(detail, sizeof detail, "resource=%s patterns=%zu", r->rules->resource[0] ? r->rules->resource : "-",
             r->rules->n_patterns);
    if ((rc = audit_write(c->db, reg_actor(r->actor), AUDIT_ACCESS_RULES, object, r->addr, detail)) != DB_OK ||
        (rc = db_commit(c->db)) != DB_OK)
        goto db_fail;
    if (s_rules_fill(&rules, r->rules->integration_id, db_get_text(res, 0, db_col(res, "resource")),
                     db_get_text(res, 0, db_col(res, "patterns")), db_get_text(res, 0, db_col(res, "contact"))) < 0) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "out of memory");
        goto out;
    }
    rules.msg.updated_at = db_get_int(res, 0, db_col(res, "updated_at"));
    rules.msg.updated_by = REG_STR(db_get_text(res, 0, db_col(res, "updated_by")));
    log_info("access rules changed", "integration=%" PRId64 " patterns=%zu resource=%d", r->rules->integration_id,
             r->rules->n_patterns, r->rules->resource[0] != '\0');
    bus_reply_ok(reply, &rules.msg.base);
    goto out;
db_fail:
    reg_reply_db(reply, rc);
out:
    db_rollback(c->db);
    s_rules_clear(&rules);
    PQclear(res);
    free(joined);
}

/* ---- access.due ---- */

void h_access_due(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__DueAccessRequest *r = (const Portico__Registry__DueAccessRequest *)msg;
    if (r->older_than_s < 0 || r->limit < 0 || r->limit > DUE_MAX || r->claim_s < 0 || r->claim_s > 3600) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(LIMIT),
                      "older_than_s must not be negative, limit must be from 0 to %d, claim_s from 0 to 3600", DUE_MAX);
        return;
    }
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, r->older_than_s);
    db_param_int(&p, r->limit ? r->limit : 20);
    db_param_int(&p, r->claim_s ? r->claim_s : 60);
    PGresult *res = NULL;
    db_rc_t rc = db_exec(c->db, &s_due, &p, &res);
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        return;
    }
    int rows = PQntuples(res);
    Portico__Registry__AccessCheck *items = calloc((size_t)rows + 1, sizeof *items);
    Portico__Registry__AccessCheck **ptrs = calloc((size_t)rows + 1, sizeof *ptrs);
    reg_access_rules_t *rules = calloc((size_t)rows + 1, sizeof *rules);
    int filled = 0;
    if (!items || !ptrs || !rules) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "out of memory");
        goto out;
    }
    const int c_id = db_col(res, "id"), c_user_id = db_col(res, "user_id"),
              c_integration_id = db_col(res, "integration_id"), c_username = db_col(res, "username"),
              c_slug = db_col(res, "slug"), c_bb_user_id = db_col(res, "bb_user_id"), c_email = db_col(res, "email"),
              c_resource = db_col(res, "resource"), c_patterns = db_col(res, "patterns"),
              c_contact = db_col(res, "contact"), c_claim = db_col(res, "claim");
    for (int i = 0; i < rows; i++, filled++) {
        Portico__Registry__AccessCheck *k = &items[i];
        portico__registry__access_check__init(k);
        k->identity_id = db_get_int(res, i, c_id);
        k->user_id = db_get_int(res, i, c_user_id);
        k->integration_id = db_get_int(res, i, c_integration_id);
        k->username = REG_STR(db_get_text(res, i, c_username));
        k->slug = REG_STR(db_get_text(res, i, c_slug));
        k->bb_user_id = db_get_int(res, i, c_bb_user_id);
        k->email = REG_STR(db_get_text(res, i, c_email));
        k->claim = db_get_int(res, i, c_claim);
        if (s_rules_fill(&rules[i], k->integration_id, db_get_text(res, i, c_resource), db_get_text(res, i, c_patterns),
                         db_get_text(res, i, c_contact)) < 0) {
            filled++;
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "out of memory");
            goto out;
        }
        k->rules = &rules[i].msg;
        ptrs[i] = k;
    }
    Portico__Registry__DueAccessReply out = PORTICO__REGISTRY__DUE_ACCESS_REPLY__INIT;
    out.n_checks = (size_t)rows;
    out.checks = ptrs;
    bus_reply_ok(reply, &out.base);
out:
    if (rules)
        for (int i = 0; i < filled; i++)
            s_rules_clear(&rules[i]);
    free(rules);
    free(items);
    free(ptrs);
    PQclear(res);
}

/* ---- access.result ---- */

void h_access_result(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__AccessResultRequest *r = (const Portico__Registry__AccessResultRequest *)msg;
    PGresult *res = NULL, *del = NULL;
    db_rc_t rc;
    if (!reg_check_id(reply, DETAIL(IDENTITY_ID), r->identity_id) ||
        !reg_check_text(reply, DETAIL(REASON), "reason", r->reason, MAX_REASON, r->ok ? REG_OPTIONAL : REG_REQUIRED) ||
        !reg_check_text(reply, DETAIL(EMAIL), "e-mail address", r->email, MAX_EMAIL, REG_OPTIONAL))
        return;
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, r->identity_id);
    Portico__Registry__AccessResultReply out = PORTICO__REGISTRY__ACCESS_RESULT_REPLY__INIT;
    if ((rc = db_begin(c->db)) != DB_OK || (rc = db_exec(c->db, &s_identity, &p, &res)) != DB_OK)
        goto db_fail;
    if (PQntuples(res) == 0) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(IDENTITY),
                      "identity %" PRId64 " does not exist", r->identity_id);
        goto out;
    }
    int64_t user_id = db_get_int(res, 0, db_col(res, "user_id"));
    int64_t integration_id = db_get_int(res, 0, db_col(res, "integration_id"));
    db_params_t cp;
    db_params_init(&cp);
    db_param_int(&cp, r->identity_id);
    db_param_int(&cp, r->claim);
    PGresult *claim = NULL;
    if ((rc = db_exec(c->db, &s_result_claimed, &cp, &claim)) != DB_OK)
        goto db_fail;
    int claimed = PQntuples(claim);
    PQclear(claim);
    if (!claimed) {
        /* Overtaken (or the identity went meanwhile, which waited for the
         * delete: asked again, it is not found). Nothing is written; the
         * identity stays due when a rule change overtook the check. */
        PQclear(res);
        res = NULL;
        if ((rc = db_exec(c->db, &s_identity, &p, &res)) != DB_OK)
            goto db_fail;
        if (PQntuples(res) == 0) {
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(IDENTITY),
                          "identity %" PRId64 " does not exist", r->identity_id);
            goto out;
        }
        log_info("access check overtaken (a rule change, a login or a newer claim): not applied",
                 "identity=%" PRId64 " ok=%d", r->identity_id, r->ok ? 1 : 0);
        bus_reply_ok(reply, &out.base);
        goto out;
    }
    if (r->email[0]) {
        db_params_t e;
        db_params_init(&e);
        db_param_int(&e, r->identity_id);
        db_param_text(&e, r->email);
        if ((rc = db_exec(c->db, &s_update_email, &e, NULL)) != DB_OK)
            goto db_fail;
    }
    if (r->ok) {
        if ((rc = db_commit(c->db)) != DB_OK)
            goto db_fail;
        bus_reply_ok(reply, &out.base);
        goto out;
    }
    db_params_t m;
    db_params_init(&m);
    db_param_int(&m, user_id);
    db_param_int(&m, integration_id);
    db_param_text(&m, r->reason);
    db_params_t u;
    db_params_init(&u);
    db_param_int(&u, user_id);
    if ((rc = db_exec(c->db, &s_mark, &m, NULL)) != DB_OK ||
        (rc = db_exec(c->db, &s_end_sessions, &u, &del)) != DB_OK ||
        (rc = db_exec(c->db, &s_forget_tokens, &p, NULL)) != DB_OK)
        goto db_fail;
    out.sessions_ended = strtoll(PQcmdTuples(del), NULL, 10);
    char object[48], detail[200];
    snprintf(object, sizeof object, "user:%" PRId64, user_id);
    snprintf(detail, sizeof detail, "reason=%s integration=%" PRId64 " sessions=%" PRId64, r->reason, integration_id,
             out.sessions_ended);
    if ((rc = audit_write(c->db, db_get_text(res, 0, db_col(res, "username")), AUDIT_ACCESS_ENDED, object, "",
                          detail)) != DB_OK ||
        (rc = db_commit(c->db)) != DB_OK)
        goto db_fail;
    log_info("access ended", "user=%" PRId64 " integration=%" PRId64 " reason=%s sessions=%" PRId64, user_id,
             integration_id, r->reason, out.sessions_ended);
    bus_reply_ok(reply, &out.base);
    goto out;
db_fail:
    /* Only access_ended has a foreign key here: its user was deleted
     * (with the identity) since the identity was read. */
    if (rc == DB_FOREIGN)
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(IDENTITY),
                      "identity %" PRId64 " does not exist", r->identity_id);
    else
        reg_reply_db(reply, rc);
out:
    db_rollback(c->db);
    PQclear(res);
    PQclear(del);
}

/* ---- access.ended ---- */

void h_access_ended(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__ListAccessEndedRequest *r = (const Portico__Registry__ListAccessEndedRequest *)msg;
    if (r->limit < 0 || r->limit > ENDED_MAX) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(LIMIT), "limit must be from 0 to %d",
                      ENDED_MAX);
        return;
    }
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, r->limit ? r->limit : ENDED_MAX);
    PGresult *res = NULL;
    db_rc_t rc = db_exec(c->db, &s_ended_list, &p, &res);
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        return;
    }
    int rows = PQntuples(res);
    Portico__Registry__AccessEnded *items = calloc((size_t)rows + 1, sizeof *items);
    Portico__Registry__AccessEnded **ptrs = calloc((size_t)rows + 1, sizeof *ptrs);
    if (!items || !ptrs) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "out of memory");
        goto out;
    }
    const int c_user_id = db_col(res, "user_id"), c_at = db_col(res, "at_ms"),
              c_integration_id = db_col(res, "integration_id"), c_reason = db_col(res, "reason");
    for (int i = 0; i < rows; i++) {
        portico__registry__access_ended__init(&items[i]);
        items[i].user_id = db_get_int(res, i, c_user_id);
        items[i].at = db_get_int(res, i, c_at);
        items[i].integration_id = db_get_int(res, i, c_integration_id);
        items[i].reason = REG_STR(db_get_text(res, i, c_reason));
        ptrs[i] = &items[i];
    }
    Portico__Registry__ListAccessEndedReply out = PORTICO__REGISTRY__LIST_ACCESS_ENDED_REPLY__INIT;
    out.n_ended = (size_t)rows;
    out.ended = ptrs;
    bus_reply_ok(reply, &out.base);
out:
    free(items);
    free(ptrs);
    PQclear(res);
}

/* ---- access.refused ---- */

void h_access_refused(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    reg_ctx_t *c = ctx;
    const Portico__Registry__ListRefusedRequest *r = (const Portico__Registry__ListRefusedRequest *)msg;
    if (r->limit < 0 || r->limit > REFUSED_MAX) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(LIMIT), "limit must be from 0 to %d",
                      REFUSED_MAX);
        return;
    }
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, r->limit ? r->limit : REFUSED_DEFAULT);
    PGresult *res = NULL;
    db_rc_t rc = db_exec(c->db, &s_refused_list, &p, &res);
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        return;
    }
    reg_reply_audit_entries(reply, res);
    PQclear(res);
}

/* ---- access.list ---- */

void h_access_list(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    (void)msg;
    reg_ctx_t *c = ctx;
    PGresult *res = NULL;
    db_rc_t rc = db_exec(c->db, &s_list, NULL, &res);
    if (rc != DB_OK) {
        reg_reply_db(reply, rc);
        return;
    }
    int rows = PQntuples(res), filled = 0;
    reg_access_rules_t *rules = calloc((size_t)rows + 1, sizeof *rules);
    Portico__Registry__AccessRules **ptrs = calloc((size_t)rows + 1, sizeof *ptrs);
    if (!rules || !ptrs) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "out of memory");
        goto out;
    }
    const int c_integration_id = db_col(res, "integration_id"), c_resource = db_col(res, "resource"),
              c_patterns = db_col(res, "patterns"), c_contact = db_col(res, "contact"),
              c_updated_at = db_col(res, "updated_at"), c_updated_by = db_col(res, "updated_by");
    for (int i = 0; i < rows; i++) {
        filled++;
        if (s_rules_fill(&rules[i], db_get_int(res, i, c_integration_id), db_get_text(res, i, c_resource),
                         db_get_text(res, i, c_patterns), db_get_text(res, i, c_contact)) < 0) {
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "out of memory");
            goto out;
        }
        rules[i].msg.updated_at = db_get_int(res, i, c_updated_at);
        rules[i].msg.updated_by = REG_STR(db_get_text(res, i, c_updated_by));
        ptrs[i] = &rules[i].msg;
    }
    Portico__Registry__ListAccessReply out = PORTICO__REGISTRY__LIST_ACCESS_REPLY__INIT;
    out.n_rules = (size_t)rows;
    out.rules = ptrs;
    bus_reply_ok(reply, &out.base);
out:
    for (int i = 0; rules && i < filled; i++)
        s_rules_clear(&rules[i]);
    free(rules);
    free(ptrs);
    PQclear(res);
}
