/* access.*: rules per integration (validated, audited), the re-check claims
 * (one broker per identity at a time, only users with live sessions), a
 * failed check ending sessions and marking the account, a login clearing the
 * mark, a rule change making everyone due, and the lists for the web. */
#include "harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int64_t s_integration;

static int s_set(int64_t integration, const char *resource, char **patterns, size_t n, const char *contact,
                 Portico__Registry__AccessRules **out, bus_error_t *err)
{
    Portico__Registry__AccessRules rules = PORTICO__REGISTRY__ACCESS_RULES__INIT;
    rules.integration_id = integration;
    rules.resource = (char *)(uintptr_t)resource;
    rules.patterns = patterns;
    rules.n_patterns = n;
    rules.contact = (char *)(uintptr_t)contact;
    Portico__Registry__SetAccessRequest req = PORTICO__REGISTRY__SET_ACCESS_REQUEST__INIT;
    req.rules = &rules;
    req.actor = "access-test";
    return h_call("access.set", &req.base, out ? &portico__registry__access_rules__descriptor : NULL,
                  (ProtobufCMessage **)out, err);
}

/* A session starts only with a login: log the person in again with cookie. */
static void s_session(const char *cookie, long bb_user_id, const char *name)
{
    bus_error_t err;
    assert_code(0, h_login_session(s_integration, bb_user_id, name, cookie, 0, 0, &err), err);
}

/* Someone who logged in through the test integration and holds a session:
 * names made unique from label, the Bitbucket user id from base. */
typedef struct {
    char name[64], cookie[80];
    long bb_user_id;
    int64_t user, ident;
} person_t;

static void s_person(person_t *p, const char *label, long base)
{
    long u = h_unique();
    snprintf(p->name, sizeof p->name, "access-%s-%ld", label, u);
    snprintf(p->cookie, sizeof p->cookie, "access-cookie-%s-%ld", label, u);
    p->bb_user_id = base + u;
    p->user = 0;
    p->ident = h_login(s_integration, p->bb_user_id, p->name, &p->user);
    s_session(p->cookie, p->bb_user_id, p->name);
}

static bool s_session_alive(const char *cookie)
{
    uint8_t buf[32];
    bus_error_t err;
    Portico__Registry__LookupSessionRequest req = PORTICO__REGISTRY__LOOKUP_SESSION_REQUEST__INIT;
    req.token_hash = h_hash(cookie, buf);
    ProtobufCMessage *out = NULL;
    int rc = h_call("session.lookup", &req.base, &portico__registry__lookup_session_reply__descriptor, &out, &err);
    if (out)
        protobuf_c_message_free_unpacked(out, NULL);
    return rc == 0;
}

/* Claim what is due and report whether identity is among it (and its rules'
 * resource into resource when given, its claim's mark into claim). */
static bool s_due_claim(int older_than_s, int64_t identity, char *resource, size_t resource_size, int64_t *claim)
{
    bus_error_t err;
    Portico__Registry__DueAccessRequest req = PORTICO__REGISTRY__DUE_ACCESS_REQUEST__INIT;
    req.older_than_s = older_than_s;
    req.limit = 100;
    req.claim_s = 60;
    Portico__Registry__DueAccessReply *rep = NULL;
    assert_code(0,
                h_call("access.due", &req.base, &portico__registry__due_access_reply__descriptor,
                       (ProtobufCMessage **)&rep, &err),
                err);
    bool found = false;
    for (size_t i = 0; i < rep->n_checks; i++)
        if (rep->checks[i]->identity_id == identity) {
            found = true;
            if (resource)
                snprintf(resource, resource_size, "%s", rep->checks[i]->rules->resource);
            if (claim)
                *claim = rep->checks[i]->claim;
        }
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    return found;
}

static bool s_due_has(int older_than_s, int64_t identity, char *resource, size_t resource_size)
{
    return s_due_claim(older_than_s, identity, resource, resource_size, NULL);
}

static bool s_marked(int64_t user_id, char *reason, size_t reason_size)
{
    bus_error_t err;
    Portico__Registry__ListAccessEndedRequest req = PORTICO__REGISTRY__LIST_ACCESS_ENDED_REQUEST__INIT;
    Portico__Registry__ListAccessEndedReply *rep = NULL;
    assert_code(0,
                h_call("access.ended", &req.base, &portico__registry__list_access_ended_reply__descriptor,
                       (ProtobufCMessage **)&rep, &err),
                err);
    bool found = false;
    for (size_t i = 0; i < rep->n_ended; i++)
        if (rep->ended[i]->user_id == user_id) {
            found = true;
            if (reason)
                snprintf(reason, reason_size, "%s", rep->ended[i]->reason);
        }
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    return found;
}

static void test_rules_are_validated_and_audited(void **state)
{
    (void)state;
    bus_error_t err;
    s_integration = h_make_integration(NULL);
    char *bad_pattern[] = {"j*doe"};
    char *ok_patterns[] = {"jdoe", "*@example.com"};
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_set(s_integration, "PROJ/a/b", NULL, 0, "", NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(RESOURCE));
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_set(s_integration, "", bad_pattern, 1, "", NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(PATTERNS));
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_set(s_integration, "", NULL, 0, "a\001b", NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(CONTACT));
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_set(99999999, "PROJ", NULL, 0, "", NULL, &err), err);

    Portico__Registry__AccessRules *got = NULL;
    assert_code(0, s_set(s_integration, "PROJ", ok_patterns, 2, "the platform team", &got, &err), err);
    assert_string_equal(got->resource, "PROJ");
    assert_int_equal(got->n_patterns, 2);
    assert_string_equal(got->patterns[1], "*@example.com");
    assert_string_equal(got->updated_by, "access-test");
    protobuf_c_message_free_unpacked(&got->base, NULL);

    Portico__Registry__GetAccessRequest q = PORTICO__REGISTRY__GET_ACCESS_REQUEST__INIT;
    q.integration_id = s_integration;
    assert_code(
        0, h_call("access.get", &q.base, &portico__registry__access_rules__descriptor, (ProtobufCMessage **)&got, &err),
        err);
    assert_string_equal(got->contact, "the platform team");
    assert_int_equal(got->n_patterns, 2);
    assert_string_equal(got->patterns[0], "jdoe");
    protobuf_c_message_free_unpacked(&got->base, NULL);

    /* An integration without rules answers empty ones. */
    q.integration_id = h_make_integration(NULL);
    assert_code(
        0, h_call("access.get", &q.base, &portico__registry__access_rules__descriptor, (ProtobufCMessage **)&got, &err),
        err);
    assert_string_equal(got->resource, "");
    assert_int_equal(got->n_patterns, 0);
    protobuf_c_message_free_unpacked(&got->base, NULL);

    Portico__Registry__ListAccessReply *list = NULL;
    assert_code(0,
                h_call("access.list", NULL, &portico__registry__list_access_reply__descriptor,
                       (ProtobufCMessage **)&list, &err),
                err);
    bool listed = false;
    for (size_t i = 0; i < list->n_rules; i++)
        listed |= list->rules[i]->integration_id == s_integration && !strcmp(list->rules[i]->resource, "PROJ");
    assert_true(listed);
    protobuf_c_message_free_unpacked(&list->base, NULL);

    PGconn *c = h_pg(NULL);
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM audit_log WHERE action = 'integration.access' AND object = 'integration:%lld'",
             (long long)s_integration);
    assert_int_equal(h_pg_scalar(c, sql), 1);
    PQfinish(c);
}

/* The rules last changed longer ago than a login can take (120 s). */
static void s_age_rules(void)
{
    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    char sql[200];
    snprintf(sql, sizeof sql,
             "UPDATE access_rules SET updated_at = now() - interval '10 minutes' WHERE integration_id = %lld",
             (long long)s_integration);
    assert_int_equal(h_pg_exec(c, sql), 0);
    PQfinish(c);
}

static void test_due_claims_and_a_failed_check_ends_access(void **state)
{
    (void)state;
    s_age_rules();
    bus_error_t err;
    long u = h_unique();
    char name_a[64], name_b[64], cookie[64];
    snprintf(name_a, sizeof name_a, "access-a-%ld", u);
    snprintf(name_b, sizeof name_b, "access-b-%ld", u);
    snprintf(cookie, sizeof cookie, "access-cookie-%ld", u);
    int64_t user_a = 0, user_b = 0;
    int64_t ident_a = h_login(s_integration, 7000 + u, name_a, &user_a);
    int64_t ident_b = h_login(s_integration, 8000 + u, name_b, &user_b);
    assert_true(ident_a > 0 && ident_b > 0);
    s_session(cookie, 7000 + u, name_a);

    /* Just logged in: not due for an hour; due at once with 0. Only users
     * with a live session are checked. */
    assert_false(s_due_has(3600, ident_a, NULL, 0));
    char resource[64] = "";
    assert_true(s_due_has(0, ident_a, resource, sizeof resource));
    assert_string_equal(resource, "PROJ");
    assert_false(s_due_has(0, ident_b, NULL, 0));
    /* Claimed: nobody else gets it while the claim runs. */
    assert_false(s_due_has(0, ident_a, NULL, 0));

    Portico__Registry__AccessResultRequest res = PORTICO__REGISTRY__ACCESS_RESULT_REQUEST__INIT;
    res.identity_id = ident_a;
    res.ok = false;
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, h_call("access.result", &res.base, NULL, NULL, &err), err);
    res.reason = "user_inactive";
    Portico__Registry__AccessResultReply *rep = NULL;
    assert_code(0,
                h_call("access.result", &res.base, &portico__registry__access_result_reply__descriptor,
                       (ProtobufCMessage **)&rep, &err),
                err);
    assert_int_equal(rep->sessions_ended, 1);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    assert_false(s_session_alive(cookie));
    char reason[64] = "";
    assert_true(s_marked(user_a, reason, sizeof reason));
    assert_string_equal(reason, "user_inactive");
    Portico__Registry__GetTokensRequest tq = PORTICO__REGISTRY__GET_TOKENS_REQUEST__INIT;
    tq.identity_id = ident_a;
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, h_call("token.get", &tq.base, NULL, NULL, &err), err);
    PGconn *c = h_pg(NULL);
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM users WHERE id = %lld", (long long)user_a);
    assert_int_equal(h_pg_scalar(c, sql), 1); /* marked, not deleted */
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM audit_log WHERE action = 'access.ended' AND object = 'user:%lld' "
             "AND detail LIKE 'reason=user_inactive%%'",
             (long long)user_a);
    assert_int_equal(h_pg_scalar(c, sql), 1);
    PQfinish(c);

    /* A login that passes clears the mark. */
    assert_int_equal(h_login(s_integration, 7000 + u, name_a, NULL), ident_a);
    assert_false(s_marked(user_a, NULL, 0));

    res.identity_id = 99999999;
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, h_call("access.result", &res.base, NULL, NULL, &err), err);
}

static void test_a_passed_check_and_a_rule_change(void **state)
{
    (void)state;
    s_age_rules();
    bus_error_t err;
    person_t p;
    s_person(&p, "c", 9000);
    int64_t ident = p.ident;
    const char *cookie = p.cookie;
    assert_true(s_due_has(0, ident, NULL, 0));
    Portico__Registry__AccessResultRequest res = PORTICO__REGISTRY__ACCESS_RESULT_REQUEST__INIT;
    res.identity_id = ident;
    res.ok = true;
    res.email = "new-address@example.com";
    assert_code(0, h_call("access.result", &res.base, NULL, NULL, &err), err);
    assert_true(s_session_alive(cookie));
    assert_false(s_due_has(3600, ident, NULL, 0));
    PGconn *c = h_pg(NULL);
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM identities WHERE id = %lld AND email = 'new-address@example.com'",
             (long long)ident);
    assert_int_equal(h_pg_scalar(c, sql), 1);
    PQfinish(c);
    /* A changed rule: every identity of the integration is due at once. */
    assert_code(0, s_set(s_integration, "PROJ/repo", NULL, 0, "", NULL, &err), err);
    char resource[64] = "";
    assert_true(s_due_has(3600, ident, resource, sizeof resource));
    assert_string_equal(resource, "PROJ/repo");
    assert_code(0, s_set(s_integration, "", NULL, 0, "", NULL, &err), err);
}

/* The broker checks the rules it read at the callback, then user.login
 * commits. A rule change in between made everyone due; the login must
 * leave its identity due, not mark it checked. */
static void test_a_login_racing_a_rule_change_stays_due(void **state)
{
    (void)state;
    bus_error_t err;
    long u = h_unique();
    char name[64], cookie[64], again[64];
    snprintf(name, sizeof name, "access-race-%ld", u);
    snprintf(cookie, sizeof cookie, "access-cookie-race-%ld", u);
    snprintf(again, sizeof again, "access-cookie-race-again-%ld", u);
    assert_code(0, s_set(s_integration, "PROJ", NULL, 0, "", NULL, &err), err);
    int64_t ident = h_login(s_integration, 9500 + u, name, NULL);
    s_session(cookie, 9500 + u, name);
    assert_true(s_due_has(3600, ident, NULL, 0));
    /* Long after the change, a login is a check again. */
    s_age_rules();
    s_session(again, 9500 + u, name);
    assert_false(s_due_has(3600, ident, NULL, 0));
    assert_code(0, s_set(s_integration, "", NULL, 0, "", NULL, &err), err);
}

/* A broker's check that a rule change or a new login overtook (both clear
 * its claim) is not applied: a pass leaves the identity due for the new
 * rules, a failure ends nothing. */
static void test_an_overtaken_check_is_not_applied(void **state)
{
    (void)state;
    s_age_rules();
    bus_error_t err;
    person_t p;
    s_person(&p, "late", 9600);
    int64_t ident = p.ident;
    char again[96];
    snprintf(again, sizeof again, "%s-again", p.cookie);
    assert_true(s_due_has(0, ident, NULL, 0));
    /* The rules change while the broker checks against the old ones. */
    assert_code(0, s_set(s_integration, "PROJ/repo", NULL, 0, "", NULL, &err), err);
    Portico__Registry__AccessResultRequest res = PORTICO__REGISTRY__ACCESS_RESULT_REQUEST__INIT;
    res.identity_id = ident;
    res.ok = true;
    assert_code(0, h_call("access.result", &res.base, NULL, NULL, &err), err);
    char resource[64] = "";
    assert_true(s_due_has(3600, ident, resource, sizeof resource));
    assert_string_equal(resource, "PROJ/repo");
    /* Claimed again; the person logs in meanwhile, which is a fresh check. */
    s_age_rules();
    s_session(again, p.bb_user_id, p.name);
    res.ok = false;
    res.reason = "user_inactive";
    Portico__Registry__AccessResultReply *rep = NULL;
    assert_code(0,
                h_call("access.result", &res.base, &portico__registry__access_result_reply__descriptor,
                       (ProtobufCMessage **)&rep, &err),
                err);
    assert_int_equal(rep->sessions_ended, 0);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    assert_true(s_session_alive(p.cookie));
    assert_true(s_session_alive(again));
    assert_false(s_marked(p.user, NULL, 0));
    assert_code(0, s_set(s_integration, "", NULL, 0, "", NULL, &err), err);
}

/* A rule change, then another broker claims the identity again: the first
 * broker's result (on the old rules) is not applied; the second's is. */
static void test_a_result_applies_only_to_its_own_claim(void **state)
{
    (void)state;
    s_age_rules();
    bus_error_t err;
    person_t p;
    s_person(&p, "reclaimed", 9650);
    int64_t ident = p.ident;
    int64_t first = 0, second = 0;
    assert_true(s_due_claim(0, ident, NULL, 0, &first));
    assert_true(first > 0);
    assert_code(0, s_set(s_integration, "PROJ/repo", NULL, 0, "", NULL, &err), err);
    assert_true(s_due_claim(3600, ident, NULL, 0, &second));
    assert_true(second > 0 && second != first);
    Portico__Registry__AccessResultRequest res = PORTICO__REGISTRY__ACCESS_RESULT_REQUEST__INIT;
    res.identity_id = ident;
    res.ok = true;
    res.claim = first;
    assert_code(0, h_call("access.result", &res.base, NULL, NULL, &err), err);
    /* Still claimed by the second: nobody else gets it, and its result counts. */
    assert_false(s_due_has(0, ident, NULL, 0));
    res.ok = false;
    res.reason = "rule_resource";
    res.claim = second;
    Portico__Registry__AccessResultReply *rep = NULL;
    assert_code(0,
                h_call("access.result", &res.base, &portico__registry__access_result_reply__descriptor,
                       (ProtobufCMessage **)&rep, &err),
                err);
    assert_int_equal(rep->sessions_ended, 1);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    assert_false(s_session_alive(p.cookie));
    assert_true(s_marked(p.user, NULL, 0));
    assert_code(0, s_set(s_integration, "", NULL, 0, "", NULL, &err), err);
}

typedef struct {
    const char *method;
    const ProtobufCMessage *req;
    const ProtobufCMessageDescriptor *desc;
    ProtobufCMessage *out;
    int rc;
    bus_error_t err;
} racer_t;

static void *s_racer(void *arg)
{
    racer_t *r = arg;
    r->rc = h_call(r->method, r->req, r->desc, r->desc ? &r->out : NULL, &r->err);
    return NULL;
}

/* Calls that meet a delete in flight (an admin deleting the integration or
 * the user): each answers as if it came after the delete, NOT_FOUND or a
 * batch without the row, never INTERNAL. */
static void test_calls_racing_a_delete(void **state)
{
    (void)state;
    long u = h_unique();
    char name[64], cookie[64], sql[200];
    snprintf(name, sizeof name, "access-del-%ld", u);
    snprintf(cookie, sizeof cookie, "access-cookie-del-%ld", u);
    int64_t user = 0;
    int64_t ident = h_login(s_integration, 9700 + u, name, &user);
    s_session(cookie, 9700 + u, name);
    assert_true(s_due_has(0, ident, NULL, 0)); /* a broker is checking it */
    int64_t doomed = h_make_integration("secret-of-a-doomed-integration");
    assert_true(ident > 0 && doomed > 0);

    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    assert_int_equal(h_pg_exec(c, "BEGIN"), 0);
    snprintf(sql, sizeof sql, "DELETE FROM users WHERE id = %lld", (long long)user);
    assert_int_equal(h_pg_exec(c, sql), 0);
    snprintf(sql, sizeof sql, "DELETE FROM integrations WHERE id = %lld", (long long)doomed);
    assert_int_equal(h_pg_exec(c, sql), 0);

    Portico__Registry__AccessRules rules = PORTICO__REGISTRY__ACCESS_RULES__INIT;
    rules.integration_id = doomed;
    rules.resource = "PROJ";
    Portico__Registry__SetAccessRequest set = PORTICO__REGISTRY__SET_ACCESS_REQUEST__INIT;
    set.rules = &rules;
    set.actor = "access-test";
    Portico__Registry__AccessResultRequest result = PORTICO__REGISTRY__ACCESS_RESULT_REQUEST__INIT;
    result.identity_id = ident;
    result.reason = "user_inactive";
    Portico__Registry__DueAccessRequest due = PORTICO__REGISTRY__DUE_ACCESS_REQUEST__INIT;
    due.limit = 100;
    due.claim_s = 60;
    racer_t racers[] = {
        {.method = "access.set", .req = &set.base},
        {.method = "access.result", .req = &result.base},
        {.method = "access.due", .req = &due.base, .desc = &portico__registry__due_access_reply__descriptor},
    };
    enum { N = sizeof racers / sizeof racers[0] };
    pthread_t th[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_create(&th[i], NULL, s_racer, &racers[i]), 0);
    usleep(500 * 1000); /* each has read the rows the delete holds */
    assert_int_equal(h_pg_exec(c, "COMMIT"), 0);
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    PQfinish(c);

    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, racers[0].rc, racers[0].err);
    assert_int_equal(racers[0].err.detail, DETAIL(INTEGRATION));
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, racers[1].rc, racers[1].err);
    assert_int_equal(racers[1].err.detail, DETAIL(IDENTITY));
    assert_code(0, racers[2].rc, racers[2].err);
    const Portico__Registry__DueAccessReply *d = (const Portico__Registry__DueAccessReply *)racers[2].out;
    for (size_t i = 0; i < d->n_checks; i++)
        assert_true(d->checks[i]->identity_id != ident);
    protobuf_c_message_free_unpacked(racers[2].out, NULL);
}

static void test_refused_logins_are_listed(void **state)
{
    (void)state;
    bus_error_t err;
    Portico__Registry__AuditEntry e = PORTICO__REGISTRY__AUDIT_ENTRY__INIT;
    e.actor = "refused-person";
    e.action = "login.refused";
    e.object = "integration:1";
    e.detail = "access_restricted rule=patterns";
    Portico__Registry__AppendAuditRequest a = PORTICO__REGISTRY__APPEND_AUDIT_REQUEST__INIT;
    a.entry = &e;
    assert_code(0, h_call("audit.append", &a.base, NULL, NULL, &err), err);
    Portico__Registry__ListRefusedRequest q = PORTICO__REGISTRY__LIST_REFUSED_REQUEST__INIT;
    Portico__Registry__ListAuditReply *rep = NULL;
    assert_code(0,
                h_call("access.refused", &q.base, &portico__registry__list_audit_reply__descriptor,
                       (ProtobufCMessage **)&rep, &err),
                err);
    assert_true(rep->n_entries >= 1);
    assert_string_equal(rep->entries[0]->actor, "refused-person");
    for (size_t i = 0; i < rep->n_entries; i++)
        assert_string_equal(rep->entries[i]->action, "login.refused");
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    q.limit = 100000;
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, h_call("access.refused", &q.base, NULL, NULL, &err), err);
}

int run_access_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_are_validated_and_audited),
        cmocka_unit_test(test_due_claims_and_a_failed_check_ends_access),
        cmocka_unit_test(test_a_passed_check_and_a_rule_change),
        cmocka_unit_test(test_a_login_racing_a_rule_change_stays_due),
        cmocka_unit_test(test_an_overtaken_check_is_not_applied),
        cmocka_unit_test(test_a_result_applies_only_to_its_own_claim),
        cmocka_unit_test(test_calls_racing_a_delete),
        cmocka_unit_test(test_refused_logins_are_listed),
    };
    return cmocka_run_group_tests_name("access", tests, NULL, NULL);
}
