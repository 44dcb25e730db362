/* PostgreSQL crashes and starts again under a running registry: requests
 * fail fast while it is away, succeed after, nothing committed is lost
 * (but the logins in progress, which live in an unlogged table, are gone
 * and cannot be finished), and the registry is never restarted. */
#include "harness.h"

#include "crypto.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t s_integration;
static h_pending_t s_pending;

static int s_pg(const char *what)
{
    char out[4096];
    int rc = h_run(out, sizeof out, "bash %s %s %s", h_env("REG_TEST_PGSH"), what, h_env("REG_TEST_PGHOST"));
    if (rc != 0)
        print_error("pg.sh %s: %s\n", what, out);
    return rc;
}

static int s_lookup(const char *cookie, bus_error_t *err)
{
    uint8_t buf[32];
    Portico__Registry__LookupSessionRequest req = PORTICO__REGISTRY__LOOKUP_SESSION_REQUEST__INIT;
    req.token_hash = h_hash(cookie, buf);
    return h_call("session.lookup", &req.base, NULL, NULL, err);
}

static bool s_ready(void)
{
    ProtobufCMessage *out = NULL;
    bus_error_t err;
    if (h_call("ping", NULL, &portico__ping_reply__descriptor, &out, &err) != 0)
        return false;
    bool ready = ((Portico__PingReply *)out)->ready;
    protobuf_c_message_free_unpacked(out, NULL);
    return ready;
}

static void test_requests_fail_fast_while_the_database_is_down(void **state)
{
    (void)state;
    bus_error_t err;
    /* Committed before the outage. */
    s_integration = h_make_integration("outage-secret");
    assert_code(0, h_login_session(s_integration, 7000, "outage-user", "cookie-outage", 0, 0, &err), err);
    /* A login in progress when the database crashes. */
    assert_int_equal(h_pending(s_integration, &s_pending), 0);
    char hex[65], sql[160];
    crypto_hex(s_pending.state_hash, 32, hex);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pending_logins WHERE state_hash = '\\x%s'", hex);
    PGconn *c = h_pg(NULL);
    assert_int_equal(h_pg_scalar(c, sql), 1);
    PQfinish(c);
    assert_true(s_ready());

    assert_int_equal(s_pg("crash"), 0);
    for (int i = 0; i < 6; i++) {
        int64_t t0 = h_now_ms();
        int rc = s_lookup("cookie-outage", &err);
        int64_t took = h_now_ms() - t0;
        if (rc != PORTICO__ERROR_CODE__UNAVAILABLE || took > 1200) {
            print_error("attempt %d: %s after %lld ms (%s)\n", i, bus_code_name(rc), (long long)took, err.message);
            fail();
        }
        t0 = h_now_ms();
        rc = h_call("settings.get", NULL, NULL, NULL, &err);
        took = h_now_ms() - t0;
        if (rc != PORTICO__ERROR_CODE__UNAVAILABLE || took > 1200) {
            print_error("attempt %d: settings.get %s after %lld ms\n", i, bus_code_name(rc), (long long)took);
            fail();
        }
        h_sleep_ms(250);
    }
    assert_int_equal(err.detail, DETAIL(DATABASE));
    /* Readiness follows within the monitor's interval. */
    int64_t until = h_now_ms() + 3000;
    while (s_ready() && h_now_ms() < until)
        h_sleep_ms(100);
    assert_false(s_ready());
}

static void test_requests_succeed_after_it_is_back(void **state)
{
    (void)state;
    bus_error_t err;
    assert_int_equal(s_pg("start"), 0);
    int64_t t0 = h_now_ms(), until = t0 + 10000;
    int rc;
    while ((rc = s_lookup("cookie-outage", &err)) != 0 && h_now_ms() < until)
        h_sleep_ms(100);
    assert_code(0, rc, err);
    print_message("    recovered %lld ms after PostgreSQL was started\n", (long long)(h_now_ms() - t0));
    /* Every worker reconnects: a burst of calls all succeed. */
    for (int i = 0; i < 40; i++) {
        int64_t deadline = h_now_ms() + 5000;
        while ((rc = h_call("settings.get", NULL, NULL, NULL, &err)) != 0 && h_now_ms() < deadline)
            h_sleep_ms(100);
        assert_code(0, rc, err);
    }
    /* Nothing committed was lost. */
    Portico__Registry__GetIntegrationRequest g = PORTICO__REGISTRY__GET_INTEGRATION_REQUEST__INIT;
    g.id = s_integration;
    g.with_secrets = true;
    ProtobufCMessage *out = NULL;
    assert_code(
        0, h_call("integration.get", &g.base, &portico__registry__get_integration_reply__descriptor, &out, &err), err);
    assert_string_equal(((Portico__Registry__GetIntegrationReply *)out)->secrets->client_secret, "outage-secret");
    protobuf_c_message_free_unpacked(out, NULL);
    assert_code(0, s_lookup("cookie-outage", &err), err);
    /* The login in progress did not survive the crash: it cannot be
     * finished (nor ever used twice); the next one works. */
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND,
                h_call("pending.consume", &s_pending.finish.base, &portico__registry__consume_pending_reply__descriptor,
                       &out, &err),
                err);
    assert_int_equal(h_pending(s_integration, &s_pending), 0);
    assert_code(0,
                h_call("pending.consume", &s_pending.finish.base, &portico__registry__consume_pending_reply__descriptor,
                       &out, &err),
                err);
    protobuf_c_message_free_unpacked(out, NULL);
    until = h_now_ms() + 3000;
    while (!s_ready() && h_now_ms() < until)
        h_sleep_ms(100);
    assert_true(s_ready());
    /* The same registry process served throughout. */
    assert_int_equal(kill((pid_t)atol(h_env("REG_TEST_PID")), 0), 0);
}

int run_outage_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests_fail_fast_while_the_database_is_down),
        cmocka_unit_test(test_requests_succeed_after_it_is_back),
    };
    return cmocka_run_group_tests_name("database outage", tests, NULL, NULL);
}
