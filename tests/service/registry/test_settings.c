/* settings.*: Setup Mode at first start, the setup token and its limits. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char s_token[128];

static int s_count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_token_in_a_private_file_not_in_the_log(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/setup-token", h_env("REG_TEST_TMP"));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *file = h_read_file(path);
    assert_non_null(file);
    size_t n = strcspn(file, "\n");
    assert_true(n >= 43 && n < sizeof s_token);
    memcpy(s_token, file, n);
    s_token[n] = '\0';
    free(file);
    char *log = h_read_file(h_env("REG_TEST_LOG"));
    assert_non_null(log);
    assert_null(strstr(log, s_token));
    assert_null(strstr(log, "setup_token="));
    assert_non_null(strstr(log, "portico-registry setup-token"));
    free(log);
}

static void test_initial_settings(void **state)
{
    (void)state;
    ProtobufCMessage *out = NULL;
    bus_error_t err;
    assert_code(0, h_call("settings.get", NULL, &portico__registry__settings__descriptor, &out, &err), err);
    Portico__Registry__Settings *s = (Portico__Registry__Settings *)out;
    assert_true(s->setup_mode);
    assert_false(s->admin_exists);
    assert_int_equal(s->integration_count, 0);
    protobuf_c_message_free_unpacked(out, NULL);
}

static int s_check(const char *token, const char *addr, bus_error_t *err)
{
    static int seq;
    char cookie[48];
    uint8_t buf[32];
    snprintf(cookie, sizeof cookie, "%s-%d-%ld", __FILE__, seq++, h_unique());
    Portico__Registry__CreateSessionRequest cs = PORTICO__REGISTRY__CREATE_SESSION_REQUEST__INIT;
    cs.token_hash = h_hash(cookie, buf);
    cs.setup = true;
    Portico__Registry__CheckSetupTokenRequest req = PORTICO__REGISTRY__CHECK_SETUP_TOKEN_REQUEST__INIT;
    req.token = (char *)(uintptr_t)token;
    req.addr = (char *)(uintptr_t)addr;
    req.session = &cs;
    return h_call("settings.check_setup_token", &req.base, NULL, NULL, err);
}

static void test_check_setup_token(void **state)
{
    (void)state;
    bus_error_t err;
    assert_code(0, s_check(s_token, "198.51.100.1", &err), err);
    assert_code(PORTICO__ERROR_CODE__FORBIDDEN, s_check("not-the-token-at-all-xxxxxxxx", "198.51.100.1", &err), err);
    assert_int_equal(err.detail, DETAIL(BAD_TOKEN));
    assert_code(PORTICO__ERROR_CODE__FORBIDDEN, s_check("", "198.51.100.1", &err), err);
    /* A prefix of the right token is still wrong. */
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%.20s", s_token);
    assert_code(PORTICO__ERROR_CODE__FORBIDDEN, s_check(prefix, "198.51.100.1", &err), err);
}

static void test_failures_are_rate_limited_per_address(void **state)
{
    (void)state;
    bus_error_t err;
    const char *addr = "192.0.2.77";
    /* 10 wrong tries are answered as wrong (the earlier test made none
     * from this address). */
    for (int i = 0; i < 10; i++)
        assert_code(PORTICO__ERROR_CODE__FORBIDDEN, s_check("wrong-token-wrong-token-wrong", addr, &err), err);
    /* Then even the right token is refused for a while, from this address. */
    assert_code(PORTICO__ERROR_CODE__RATE_LIMITED, s_check(s_token, addr, &err), err);
    assert_int_equal(err.detail, DETAIL(RATE_LIMITED));
    assert_code(0, s_check(s_token, "192.0.2.78", &err), err);

    /* The failures are one audit row that counts them. */
    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    assert_true(h_pg_scalar(c, "SELECT count(*) FROM audit_log WHERE action = 'setup_token.failed' "
                               "AND addr = '192.0.2.77'") == 1);
    assert_true(h_pg_scalar(c, "SELECT sum(repeats) FROM audit_log WHERE action = 'setup_token.failed' "
                               "AND addr = '192.0.2.77'") == 10);
    PQfinish(c);
}

/* An IPv6 host is usually given a whole /64: a new address for every wrong
 * token must not buy it new tries. Its neighbours in other /64s, and IPv4
 * clients, are not held back by it. */
static void test_failures_count_per_ipv6_64(void **state)
{
    (void)state;
    bus_error_t err;
    char addr[64];
    for (int i = 0; i < 10; i++) {
        snprintf(addr, sizeof addr, "2001:db8:77:1::%x", i + 1);
        assert_code(PORTICO__ERROR_CODE__FORBIDDEN, s_check("wrong-token-wrong-token-wrong", addr, &err), err);
        assert_int_equal(err.detail, DETAIL(BAD_TOKEN));
    }
    assert_code(PORTICO__ERROR_CODE__RATE_LIMITED, s_check(s_token, "2001:db8:77:1:abcd::99", &err), err);
    assert_int_equal(err.detail, DETAIL(RATE_LIMITED));
    assert_code(0, s_check(s_token, "2001:db8:77:2::1", &err), err);

    /* The audit log still names every address. */
    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    assert_int_equal(h_pg_scalar(c, "SELECT count(DISTINCT addr) FROM audit_log WHERE action = 'setup_token.failed' "
                                    "AND client_key = '2001:db8:77:1::/64'"),
                     10);
    PQfinish(c);
}

/* Failures recorded before the audit log kept the client key still count,
 * by their exact address. */
static void test_failures_without_client_key_count_by_address(void **state)
{
    (void)state;
    bus_error_t err;
    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    assert_int_equal(h_pg_exec(c, "INSERT INTO audit_log (actor, action, object, addr, repeats, last_at) "
                                  "VALUES ('setup', 'setup_token.failed', 'settings', '192.0.2.99', 10, now())"),
                     0);
    assert_code(PORTICO__ERROR_CODE__RATE_LIMITED, s_check(s_token, "192.0.2.99", &err), err);
    assert_code(0, s_check(s_token, "192.0.2.98", &err), err);
    PQfinish(c);
}

/* Many addresses failing (one proxy's clients, or an attacker with many)
 * never lock out an address that made no wrong attempt: there is no
 * overall limit. */
static void test_no_global_lockout(void **state)
{
    (void)state;
    bus_error_t err;
    char addr[64];
    for (int i = 0; i < 120; i++) {
        snprintf(addr, sizeof addr, "203.0.113.%d", i + 1);
        assert_code(PORTICO__ERROR_CODE__FORBIDDEN, s_check("wrong-token-wrong-token-wrong", addr, &err), err);
    }
    assert_code(0, s_check(s_token, "198.51.100.200", &err), err);
}

/* An expired token is refused with a message that says how to get a new
 * one; a wrong token still reads as wrong. */
static void test_expired_token(void **state)
{
    (void)state;
    bus_error_t err;
    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    assert_int_equal(h_pg_exec(c, "UPDATE settings SET setup_token_expires_at = now() - interval '1 second'"), 0);
    assert_code(PORTICO__ERROR_CODE__FORBIDDEN, s_check(s_token, "198.51.100.201", &err), err);
    assert_int_equal(err.detail, DETAIL(TOKEN_EXPIRED));
    assert_non_null(strstr(err.message, "portico-registry setup-mode on"));
    assert_code(PORTICO__ERROR_CODE__FORBIDDEN, s_check("wrong-token-wrong-token-wrong", "198.51.100.201", &err), err);
    assert_int_equal(err.detail, DETAIL(BAD_TOKEN));
    assert_int_equal(h_pg_exec(c, "UPDATE settings SET setup_token_expires_at = now() + interval '1 hour'"), 0);
    assert_code(0, s_check(s_token, "198.51.100.201", &err), err);
    PQfinish(c);
}

static void test_token_never_logged_again_nor_stored(void **state)
{
    (void)state;
    char *log = h_read_file(h_env("REG_TEST_LOG"));
    assert_non_null(log);
    assert_int_equal(s_count(log, s_token), 0);
    free(log);
    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    char sql[300];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM settings s WHERE s::text LIKE '%%%s%%'", s_token);
    assert_int_equal(h_pg_scalar(c, sql), 0);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM audit_log a WHERE a::text LIKE '%%%s%%'", s_token);
    assert_int_equal(h_pg_scalar(c, sql), 0);
    PQfinish(c);
}

static void test_start_refused_without_key_file(void **state)
{
    (void)state;
    char out[4096];
    int rc = h_run(out, sizeof out,
                   "PORTICO_SECRET_KEY_FILE= PORTICO_REGISTRY_BIND=tcp://127.0.0.1:%d "
                   "PORTICO_HEALTH_ADDR=127.0.0.1:%d timeout 10 %s",
                   h_free_port(), h_free_port(), h_env("REG_TEST_BIN"));
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "PORTICO_SECRET_KEY_FILE is not set"));
    assert_non_null(strstr(out, "head -c 32 /dev/urandom | base64"));
}

static void test_short_preset_token_refused(void **state)
{
    (void)state;
    char out[4096];
    int rc = h_run(out, sizeof out, "PORTICO_SETUP_TOKEN=tooshort timeout 10 %s", h_env("REG_TEST_BIN"));
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "PORTICO_SETUP_TOKEN"));
    assert_null(strstr(out, "tooshort\""));
}

int run_settings_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_in_a_private_file_not_in_the_log),
        cmocka_unit_test(test_initial_settings),
        cmocka_unit_test(test_check_setup_token),
        cmocka_unit_test(test_failures_are_rate_limited_per_address),
        cmocka_unit_test(test_failures_count_per_ipv6_64),
        cmocka_unit_test(test_failures_without_client_key_count_by_address),
        cmocka_unit_test(test_no_global_lockout),
        cmocka_unit_test(test_expired_token),
        cmocka_unit_test(test_token_never_logged_again_nor_stored),
        cmocka_unit_test(test_start_refused_without_key_file),
        cmocka_unit_test(test_short_preset_token_refused),
    };
    return cmocka_run_group_tests_name("settings", tests, NULL, NULL);
}

const char *test_setup_token(void)
{
    return s_token;
}
