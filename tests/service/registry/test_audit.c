/* audit.*: entries appended by other services, listed newest first. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_append(const char *actor, const char *action, const char *detail, bus_error_t *err)
{
    Portico__Registry__AuditEntry e = PORTICO__REGISTRY__AUDIT_ENTRY__INIT;
    e.actor = (char *)(uintptr_t)actor;
    e.action = (char *)(uintptr_t)action;
    e.object = "integration:1";
    e.addr = "198.51.100.30";
    e.detail = (char *)(uintptr_t)detail;
    Portico__Registry__AppendAuditRequest req = PORTICO__REGISTRY__APPEND_AUDIT_REQUEST__INIT;
    req.entry = &e;
    return h_call("audit.append", &req.base, NULL, NULL, err);
}

static Portico__Registry__ListAuditReply *s_list(int64_t before_id, int limit)
{
    Portico__Registry__ListAuditRequest req = PORTICO__REGISTRY__LIST_AUDIT_REQUEST__INIT;
    req.before_id = before_id;
    req.limit = limit;
    ProtobufCMessage *out = NULL;
    bus_error_t err;
    assert_code(0, h_call("audit.list", &req.base, &portico__registry__list_audit_reply__descriptor, &out, &err), err);
    return (Portico__Registry__ListAuditReply *)out;
}

static void test_append_and_list_newest_first(void **state)
{
    (void)state;
    bus_error_t err;
    assert_code(0, s_append("jdoe", "login.failed", "error=access_denied", &err), err);
    Portico__Registry__ListAuditReply *r = s_list(0, 5);
    assert_int_equal(r->n_entries, 5);
    Portico__Registry__AuditEntry *e = r->entries[0];
    assert_string_equal(e->action, "login.failed");
    assert_string_equal(e->actor, "jdoe");
    assert_string_equal(e->object, "integration:1");
    assert_string_equal(e->addr, "198.51.100.30");
    assert_string_equal(e->detail, "error=access_denied");
    assert_true(llabs(e->at - h_now_ms()) < 60000);
    for (size_t i = 1; i < r->n_entries; i++)
        assert_true(r->entries[i]->id < r->entries[i - 1]->id);
    int64_t last = r->entries[r->n_entries - 1]->id;
    protobuf_c_message_free_unpacked(&r->base, NULL);

    r = s_list(last, 3);
    assert_int_equal(r->n_entries, 3);
    assert_true(r->entries[0]->id < last);
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void test_append_validation(void **state)
{
    (void)state;
    bus_error_t err;
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_append("x", "", "", &err), err);
    assert_int_equal(err.detail, DETAIL(ACTION));
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_append("x", "Bad Action", "", &err), err);
    assert_int_equal(err.detail, DETAIL(ACTION));
    char big[1200];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_append("x", "login.failed", big, &err), err);
    assert_int_equal(err.detail, DETAIL(DETAIL));
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, h_call("audit.append", NULL, NULL, NULL, &err), err);
    Portico__Registry__ListAuditRequest req = PORTICO__REGISTRY__LIST_AUDIT_REQUEST__INIT;
    req.limit = 100000;
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, h_call("audit.list", &req.base, NULL, NULL, &err), err);
}

static void test_logins_are_audited(void **state)
{
    (void)state;
    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    assert_true(h_pg_scalar(c, "SELECT count(*) FROM audit_log WHERE action = 'user.login' "
                               "AND object LIKE 'user:%' AND detail LIKE 'integration=%'") >= 8);
    PQfinish(c);
}

int run_audit_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_list_newest_first),
        cmocka_unit_test(test_append_validation),
        cmocka_unit_test(test_logins_are_audited),
    };
    return cmocka_run_group_tests_name("audit", tests, NULL, NULL);
}
