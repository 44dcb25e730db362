/* session.*: create, look up (sliding idle expiry), end. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t s_user, s_integration;

/* A session starts only with a login (or the setup token): log
 * session-user in again with this cookie. */
static int s_create(const char *cookie, bool setup, int idle, int absolute, bus_error_t *err)
{
    if (setup)
        return h_setup_session(test_setup_token(), cookie, err);
    return h_login_session(s_integration, 3000, "session-user", cookie, idle, absolute, err);
}

static int s_lookup(const char *cookie, Portico__Registry__Session **session, ProtobufCMessage **keep, bus_error_t *err)
{
    uint8_t buf[32];
    Portico__Registry__LookupSessionRequest req = PORTICO__REGISTRY__LOOKUP_SESSION_REQUEST__INIT;
    req.token_hash = h_hash(cookie, buf);
    ProtobufCMessage *out = NULL;
    int rc = h_call("session.lookup", &req.base, &portico__registry__lookup_session_reply__descriptor, &out, err);
    if (rc == 0 && session) {
        *session = ((Portico__Registry__LookupSessionReply *)out)->session;
        *keep = out;
    } else if (out) {
        protobuf_c_message_free_unpacked(out, NULL);
    }
    return rc;
}

static void test_create_and_lookup(void **state)
{
    (void)state;
    bus_error_t err;
    s_integration = h_make_integration(NULL);
    h_login(s_integration, 3000, "session-user", &s_user);
    assert_true(s_user > 0);
    assert_code(0, s_create("cookie-1", false, 0, 0, &err), err);
    Portico__Registry__Session *s = NULL;
    ProtobufCMessage *keep = NULL;
    assert_code(0, s_lookup("cookie-1", &s, &keep, &err), err);
    assert_int_equal(s->user_id, s_user);
    assert_false(s->setup);
    assert_string_equal(s->user_name, "session-user");
    assert_string_equal(s->display_name, "Test User");
    int64_t now = (int64_t)time(NULL);
    /* Default idle timeout: 30 minutes. */
    assert_true(s->expires_at > now + 1700 && s->expires_at <= now + 1801);
    protobuf_c_message_free_unpacked(keep, NULL);
}

/* with_user: the account comes with the session, as user.get gives it;
 * without, only the session. */
static void test_lookup_with_user(void **state)
{
    (void)state;
    bus_error_t err;
    uint8_t buf[32];
    Portico__Registry__LookupSessionRequest req = PORTICO__REGISTRY__LOOKUP_SESSION_REQUEST__INIT;
    req.token_hash = h_hash("cookie-1", buf);
    req.with_user = true;
    ProtobufCMessage *out = NULL;
    assert_code(
        0, h_call("session.lookup", &req.base, &portico__registry__lookup_session_reply__descriptor, &out, &err), err);
    Portico__Registry__LookupSessionReply *r = (Portico__Registry__LookupSessionReply *)out;
    assert_int_equal(r->session->user_id, s_user);
    assert_non_null(r->user);
    assert_int_equal(r->user->id, s_user);
    assert_string_equal(r->user->name, "session-user");
    assert_int_equal(r->user->n_identities, 1);
    assert_int_equal(r->user->identities[0]->integration_id, s_integration);
    assert_string_equal(r->user->identities[0]->username, "session-user");
    protobuf_c_message_free_unpacked(out, NULL);
    req.with_user = false;
    assert_code(
        0, h_call("session.lookup", &req.base, &portico__registry__lookup_session_reply__descriptor, &out, &err), err);
    assert_null(((Portico__Registry__LookupSessionReply *)out)->user);
    protobuf_c_message_free_unpacked(out, NULL);
}

static void test_lookup_errors(void **state)
{
    (void)state;
    bus_error_t err;
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_lookup("never-issued", NULL, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(SESSION));
    Portico__Registry__LookupSessionRequest req = PORTICO__REGISTRY__LOOKUP_SESSION_REQUEST__INIT;
    uint8_t shortbuf[10] = {0};
    req.token_hash.data = shortbuf;
    req.token_hash.len = sizeof shortbuf;
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, h_call("session.lookup", &req.base, NULL, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(TOKEN_HASH));
}

static void test_create_errors(void **state)
{
    (void)state;
    bus_error_t err;
    /* The same cookie twice: the second login fails as a whole. */
    assert_true(s_create("cookie-1", false, 0, 0, &err) != 0);
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_create("cookie-w", false, -5, 0, &err), err);
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_create("cookie-v", false, 0, 100000000, &err), err);
    /* No other method starts a session. */
    assert_code(PORTICO__ERROR_CODE__UNKNOWN_METHOD, h_call("session.create", NULL, NULL, NULL, &err), err);
}

static void test_idle_timeout_slides_and_expires(void **state)
{
    (void)state;
    bus_error_t err;
    /* Idle for 4 s: each lookup comes 2.5 s after the last, with time to
     * spare for a slow (sanitized) registry's answer. */
    assert_code(0, s_create("cookie-idle", false, 4, 60, &err), err);
    h_sleep_ms(2500);
    assert_code(0, s_lookup("cookie-idle", NULL, NULL, &err), err);
    h_sleep_ms(2500);
    /* 5 s after creation, alive because the lookup slid the expiry. */
    assert_code(0, s_lookup("cookie-idle", NULL, NULL, &err), err);
    h_sleep_ms(4600);
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_lookup("cookie-idle", NULL, NULL, &err), err);
}

static void test_absolute_timeout(void **state)
{
    (void)state;
    bus_error_t err;
    assert_code(0, s_create("cookie-abs", false, 60, 2, &err), err);
    Portico__Registry__Session *s = NULL;
    ProtobufCMessage *keep = NULL;
    assert_code(0, s_lookup("cookie-abs", &s, &keep, &err), err);
    assert_true(s->expires_at <= (int64_t)time(NULL) + 2);
    protobuf_c_message_free_unpacked(keep, NULL);
    h_sleep_ms(1100);
    assert_code(0, s_lookup("cookie-abs", NULL, NULL, &err), err);
    h_sleep_ms(1200);
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_lookup("cookie-abs", NULL, NULL, &err), err);
}

static void test_setup_session(void **state)
{
    (void)state;
    bus_error_t err;
    assert_code(0, s_create("cookie-setup", true, 0, 0, &err), err);
    Portico__Registry__Session *s = NULL;
    ProtobufCMessage *keep = NULL;
    assert_code(0, s_lookup("cookie-setup", &s, &keep, &err), err);
    assert_true(s->setup);
    assert_true(s->setup_mode);
    assert_int_equal(s->user_id, 0);
    assert_false(s->is_admin);
    protobuf_c_message_free_unpacked(keep, NULL);
}

static void test_delete_and_delete_user(void **state)
{
    (void)state;
    bus_error_t err;
    uint8_t buf[32];
    Portico__Registry__DeleteSessionRequest del = PORTICO__REGISTRY__DELETE_SESSION_REQUEST__INIT;
    del.token_hash = h_hash("cookie-1", buf);
    assert_code(0, h_call("session.delete", &del.base, NULL, NULL, &err), err);
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_lookup("cookie-1", NULL, NULL, &err), err);
    /* Logging out twice is fine. */
    assert_code(0, h_call("session.delete", &del.base, NULL, NULL, &err), err);

    assert_code(0, s_create("cookie-a", false, 0, 0, &err), err);
    assert_code(0, s_create("cookie-b", false, 0, 0, &err), err);
    Portico__Registry__DeleteUserSessionsRequest du = PORTICO__REGISTRY__DELETE_USER_SESSIONS_REQUEST__INIT;
    du.user_id = s_user;
    du.actor = "admin-test";
    ProtobufCMessage *out = NULL;
    assert_code(
        0,
        h_call("session.delete_user", &du.base, &portico__registry__delete_user_sessions_reply__descriptor, &out, &err),
        err);
    /* cookie-a and cookie-b, and expired ones the sweep has not reached yet. */
    int64_t deleted = ((Portico__Registry__DeleteUserSessionsReply *)out)->deleted;
    assert_true(deleted >= 2);
    protobuf_c_message_free_unpacked(out, NULL);
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_lookup("cookie-a", NULL, NULL, &err), err);
    du.user_id = 99999999;
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, h_call("session.delete_user", &du.base, NULL, NULL, &err), err);

    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM audit_log WHERE action = 'session.end' "
                                    "AND actor = 'admin-test'"),
                     1);
    PQfinish(c);
}

static void test_expired_sessions_are_swept(void **state)
{
    (void)state;
    bus_error_t err;
    assert_code(0, s_create("cookie-sweep", false, 1, 60, &err), err);
    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    uint8_t buf[32];
    char hex[65], sql[200];
    h_hash("cookie-sweep", buf);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", buf[i]);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM sessions WHERE token_hash = '\\x%s'", hex);
    assert_int_equal(h_pg_scalar(c, sql), 1);
    /* Sweeps run every second in this test setup. */
    int64_t until = h_now_ms() + 6000;
    while (h_pg_scalar(c, sql) != 0 && h_now_ms() < until)
        h_sleep_ms(200);
    assert_int_equal(h_pg_scalar(c, sql), 0);
    PQfinish(c);
}

int run_session_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_lookup),
        cmocka_unit_test(test_lookup_with_user),
        cmocka_unit_test(test_lookup_errors),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_idle_timeout_slides_and_expires),
        cmocka_unit_test(test_absolute_timeout),
        cmocka_unit_test(test_setup_session),
        cmocka_unit_test(test_delete_and_delete_user),
        cmocka_unit_test(test_expired_sessions_are_swept),
    };
    return cmocka_run_group_tests_name("sessions", tests, NULL, NULL);
}
