/* The operator commands: integrations list, admin grant/revoke, Setup Mode
 * off and back on, migrate. They run the same binary against the same
 * database as the registry under test, which keeps running. */
#include "harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_out[65536];

static int s_cli(const char *args)
{
    return h_run(s_out, sizeof s_out, "%s %s", h_env("REG_TEST_BIN"), args);
}

static int s_check_token(const char *token, bus_error_t *err)
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
    req.addr = "198.51.100.40";
    req.session = &cs;
    return h_call("settings.check_setup_token", &req.base, NULL, NULL, err);
}

static bool s_setup_mode(void)
{
    ProtobufCMessage *out = NULL;
    bus_error_t err;
    assert_code(0, h_call("settings.get", NULL, &portico__registry__settings__descriptor, &out, &err), err);
    bool on = ((Portico__Registry__Settings *)out)->setup_mode;
    protobuf_c_message_free_unpacked(out, NULL);
    return on;
}

static void test_integrations_list(void **state)
{
    (void)state;
    assert_int_equal(s_cli("integrations list"), 0);
    assert_non_null(strstr(s_out, "BASE URL"));
    assert_non_null(strstr(s_out, "https://git.example.com/bitbucket"));
    assert_non_null(strstr(s_out, "Old Bitbucket"));
    assert_int_equal(s_cli("integrations nope"), 2);
    assert_int_equal(s_cli("frobnicate"), 2);
}

static void test_admin_grant_and_revoke(void **state)
{
    (void)state;
    int64_t integration = h_make_integration(NULL), uid = 0;
    h_login(integration, 6000, "cli-user", &uid);
    char args[64];
    snprintf(args, sizeof args, "admin grant '#%lld'", (long long)uid);
    assert_int_equal(s_cli(args), 0);
    assert_non_null(strstr(s_out, "cli-user"));
    assert_non_null(strstr(s_out, "is an admin"));
    assert_int_equal(s_cli("admin revoke cli-user"), 0);
    assert_non_null(strstr(s_out, "is not an admin"));
    assert_int_equal(s_cli("admin grant no-such-user"), 1);
    assert_non_null(strstr(s_out, "user \"no-such-user\" does not exist"));
    assert_int_equal(s_cli("admin grant '#abc'"), 2);
    assert_int_equal(s_cli("admin promote cli-user"), 2);

    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM audit_log WHERE actor = 'cli' "
                                    "AND action IN ('admin.grant', 'admin.revoke')"),
                     2);
    PQfinish(c);
}

static void test_setup_mode_off_then_back_on(void **state)
{
    (void)state;
    bus_error_t err;
    uint8_t buf[32];
    /* A Setup Mode session, which must end with Setup Mode. */
    assert_code(0, h_setup_session(test_setup_token(), "cookie-setup-cli", &err), err);

    /* Finishing setup (as the admin pages do) turns it off. */
    Portico__Registry__SetSetupModeRequest sm = PORTICO__REGISTRY__SET_SETUP_MODE_REQUEST__INIT;
    sm.on = false;
    sm.actor = "racer-admin";
    assert_code(0, h_call("settings.set_setup_mode", &sm.base, NULL, NULL, &err), err);
    assert_false(s_setup_mode());
    assert_code(PORTICO__ERROR_CODE__FORBIDDEN, s_check_token(test_setup_token(), &err), err);
    assert_int_equal(err.detail, DETAIL(SETUP_OFF));
    Portico__Registry__LookupSessionRequest ls = PORTICO__REGISTRY__LOOKUP_SESSION_REQUEST__INIT;
    ls.token_hash = h_hash("cookie-setup-cli", buf);
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, h_call("session.lookup", &ls.base, NULL, NULL, &err), err);
    assert_code(PORTICO__ERROR_CODE__FORBIDDEN, h_setup_session(test_setup_token(), "cookie-setup-cli-2", &err), err);
    assert_int_equal(err.detail, DETAIL(SETUP_OFF));

    /* The operator is locked out: Setup Mode back on, with a new token. */
    assert_int_equal(s_cli("setup-mode on"), 0);
    assert_non_null(strstr(s_out, "Setup Mode is on."));
    const char *p = strstr(s_out, "Setup token: ");
    assert_non_null(p);
    p += strlen("Setup token: ");
    char token[128];
    size_t n = strcspn(p, "\n");
    assert_true(n >= 43 && n < sizeof token);
    memcpy(token, p, n);
    token[n] = '\0';
    assert_true(s_setup_mode());
    assert_code(0, s_check_token(token, &err), err);
    assert_code(PORTICO__ERROR_CODE__FORBIDDEN, s_check_token(test_setup_token(), &err), err);
    assert_int_equal(err.detail, DETAIL(BAD_TOKEN));
    /* Shown on the operator's terminal only. */
    char *log = h_read_file(h_env("REG_TEST_LOG"));
    assert_non_null(log);
    assert_null(strstr(log, token));
    free(log);

    /* `setup-token` shows the same token (from the 0600 file). */
    assert_int_equal(s_cli("setup-token"), 0);
    assert_non_null(strstr(s_out, token));
    assert_non_null(strstr(s_out, "Valid until"));

    /* A new token ends every Setup Mode session: whoever held the old one
     * holds nothing any more. */
    assert_code(0, h_setup_session(token, "cookie-setup-cli-3", &err), err);
    ls.token_hash = h_hash("cookie-setup-cli-3", buf);
    assert_code(0, h_call("session.lookup", &ls.base, NULL, NULL, &err), err);
    assert_int_equal(s_cli("setup-mode on"), 0);
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, h_call("session.lookup", &ls.base, NULL, NULL, &err), err);
    assert_code(PORTICO__ERROR_CODE__FORBIDDEN, s_check_token(token, &err), err);
    p = strstr(s_out, "Setup token: ");
    assert_non_null(p);
    p += strlen("Setup token: ");
    n = strcspn(p, "\n");
    assert_true(n >= 43 && n < sizeof token);
    memcpy(token, p, n);
    token[n] = '\0';
    assert_code(0, s_check_token(token, &err), err);

    assert_int_equal(s_cli("setup-mode off"), 0);
    assert_non_null(strstr(s_out, "Setup Mode is off."));
    assert_false(s_setup_mode());
    assert_int_equal(s_cli("setup-mode maybe"), 2);

    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM audit_log WHERE actor = 'cli' AND action = 'setup_mode.on'"),
                     1);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM audit_log WHERE actor = 'cli' "
                                    "AND action = 'setup_mode.off'"),
                     1);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM audit_log WHERE actor = 'racer-admin' "
                                    "AND action = 'setup_mode.off'"),
                     1);
    PQfinish(c);
}

static void test_last_admin_cannot_be_revoked_outside_setup_mode(void **state)
{
    (void)state;
    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    /* Revoke every admin but one, then try the last. */
    PGresult *res = PQexec(c, "SELECT id FROM users WHERE is_admin ORDER BY id");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    int n = PQntuples(res);
    assert_true(n >= 1);
    char args[64];
    for (int i = 1; i < n; i++) {
        snprintf(args, sizeof args, "admin revoke '#%s'", PQgetvalue(res, i, 0));
        assert_int_equal(s_cli(args), 0);
    }
    snprintf(args, sizeof args, "admin revoke '#%s'", PQgetvalue(res, 0, 0));
    assert_int_equal(s_cli(args), 1);
    assert_non_null(strstr(s_out, "last admin"));
    PQclear(res);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM users WHERE is_admin"), 1);
    PQfinish(c);
}

static void test_migrate_is_idempotent(void **state)
{
    (void)state;
    assert_int_equal(s_cli("migrate"), 0);
    assert_non_null(strstr(s_out, "(0 migrations applied now)"));
}

typedef struct {
    int rc;
    bus_error_t err;
} end_setup_t;

static void *s_end_setup(void *arg)
{
    end_setup_t *e = arg;
    Portico__Registry__SetSetupModeRequest sm = PORTICO__REGISTRY__SET_SETUP_MODE_REQUEST__INIT;
    sm.on = false;
    sm.actor = "racer-admin";
    e->rc = h_call("settings.set_setup_mode", &sm.base, NULL, NULL, &e->err);
    return NULL;
}

/* Finishing setup while the last admin is revoked (which holds the
 * settings row, as user.set_admin does): it waits for the row, and must
 * then see that no admin is left, not what was there when it began. */
static void test_ending_setup_mode_sees_an_admin_revoked_meanwhile(void **state)
{
    (void)state;
    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    bool was_on = s_setup_mode();
    assert_int_equal(h_pg_exec(c, "UPDATE settings SET setup_mode = true WHERE id = 1"), 0);
    assert_int_equal(h_pg_exec(c, "BEGIN"), 0);
    assert_int_equal(h_pg_exec(c, "SELECT 1 FROM settings WHERE id = 1 FOR UPDATE"), 0);
    assert_int_equal(h_pg_exec(c, "CREATE TEMP TABLE was_admin AS SELECT id FROM users WHERE is_admin"), 0);
    assert_int_equal(h_pg_exec(c, "UPDATE users SET is_admin = false WHERE is_admin"), 0);
    end_setup_t e = {0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_end_setup, &e), 0);
    usleep(500 * 1000); /* the call waits for the settings row */
    assert_int_equal(h_pg_exec(c, "COMMIT"), 0);
    pthread_join(th, NULL);
    bool still_on = s_setup_mode();
    assert_int_equal(h_pg_exec(c, "UPDATE users SET is_admin = true WHERE id IN (SELECT id FROM was_admin)"), 0);
    assert_int_equal(h_pg_exec(c, was_on ? "UPDATE settings SET setup_mode = true WHERE id = 1"
                                         : "UPDATE settings SET setup_mode = false WHERE id = 1"),
                     0);
    PQfinish(c);
    assert_code(PORTICO__ERROR_CODE__CONFLICT, e.rc, e.err);
    assert_int_equal(e.err.detail, DETAIL(NO_ADMIN));
    assert_true(still_on);
}

typedef struct {
    const char *token;
    int rc;
    bus_error_t err;
} setup_login_t;

static void *s_setup_login(void *arg)
{
    setup_login_t *l = arg;
    l->rc = h_setup_session(l->token, "cookie-setup-race", &l->err);
    return NULL;
}

/* A setup token checked just before a new one is issued (setup-mode on,
 * which ends every Setup Mode session) must not open a session that
 * outlives the new token. */
static void test_a_setup_session_racing_a_new_token_is_refused(void **state)
{
    (void)state;
    static const char token[] = "race-token-0123456789abcdefghijklmnop";
    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    assert_int_equal(h_pg_exec(c, "CREATE TEMP TABLE saved AS SELECT setup_mode, setup_token_hash, "
                                  "setup_token_expires_at FROM settings WHERE id = 1"),
                     0);
    assert_int_equal(h_pg_exec(c, "UPDATE settings SET setup_mode = true, "
                                  "setup_token_hash = sha256('race-token-0123456789abcdefghijklmnop'), "
                                  "setup_token_expires_at = now() + interval '1 hour' WHERE id = 1"),
                     0);
    /* As setup_token_issue does: the settings row, then every Setup Mode
     * session; its new token here is one nobody knows. */
    assert_int_equal(h_pg_exec(c, "BEGIN"), 0);
    assert_int_equal(h_pg_exec(c, "UPDATE settings SET setup_token_hash = sha256('another token') WHERE id = 1"), 0);
    assert_int_equal(h_pg_exec(c, "DELETE FROM sessions WHERE setup"), 0);
    setup_login_t l = {.token = token};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_setup_login, &l), 0);
    usleep(500 * 1000); /* checked against the old token, waiting to insert */
    assert_int_equal(h_pg_exec(c, "COMMIT"), 0);
    pthread_join(th, NULL);
    long long sessions = h_pg_scalar(c, "SELECT count(*) FROM sessions WHERE setup");
    assert_int_equal(h_pg_exec(c, "UPDATE settings SET (setup_mode, setup_token_hash, setup_token_expires_at) = "
                                  "(SELECT * FROM saved) WHERE id = 1"),
                     0);
    PQfinish(c);
    assert_code(PORTICO__ERROR_CODE__FORBIDDEN, l.rc, l.err);
    assert_int_equal(l.err.detail, DETAIL(BAD_TOKEN));
    assert_int_equal(sessions, 0);
}

int run_cli_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integrations_list),
        cmocka_unit_test(test_admin_grant_and_revoke),
        cmocka_unit_test(test_setup_mode_off_then_back_on),
        cmocka_unit_test(test_ending_setup_mode_sees_an_admin_revoked_meanwhile),
        cmocka_unit_test(test_last_admin_cannot_be_revoked_outside_setup_mode),
        cmocka_unit_test(test_migrate_is_idempotent),
        cmocka_unit_test(test_a_setup_session_racing_a_new_token_is_refused),
    };
    return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
