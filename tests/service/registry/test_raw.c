/* A raw look at the database never shows a secret or a token. */
#include "harness.h"

#include "crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const s_plaintexts[] = {
    "PLAINTEXT-CLIENT-SECRET-7f3a",
    "PLAINTEXT-VERIFIER-9c1d",
    "PLAINTEXT-RT-SECRET-2b8e",
    "PLAINTEXT-REQUEST-TOKEN-5a6f",
    "PLAINTEXT-ACCESS-TOKEN-4d2c",
    "PLAINTEXT-REFRESH-TOKEN-8e1b",
    "PLAINTEXT-TOKEN-SECRET-3f9a",
    "PRIVATE KEY",
    "secret-a",
    "second-secret",
    "access-r1",
    "refresh-r1",
    "race-verifier",
    "request-secret-4",
};

static void s_seed(void)
{
    bus_error_t err;
    uint8_t sb[32], bb[32];
    int64_t integration = h_make_integration("PLAINTEXT-CLIENT-SECRET-7f3a");
    assert_true(integration > 0);
    int64_t identity = h_login(integration, 5000, "raw-user", NULL);

    Portico__Registry__Tokens t = PORTICO__REGISTRY__TOKENS__INIT;
    t.access_token = "PLAINTEXT-ACCESS-TOKEN-4d2c";
    t.refresh_token = "PLAINTEXT-REFRESH-TOKEN-8e1b";
    t.token_secret = "PLAINTEXT-TOKEN-SECRET-3f9a";
    Portico__Registry__StoreTokensRequest st = PORTICO__REGISTRY__STORE_TOKENS_REQUEST__INIT;
    st.identity_id = identity;
    st.tokens = &t;
    assert_code(0, h_call("token.store", &st.base, NULL, NULL, &err), err);

    Portico__Registry__PendingLogin pl = PORTICO__REGISTRY__PENDING_LOGIN__INIT;
    pl.state_hash = h_hash("raw-state", sb);
    pl.browser_hash = h_hash("raw-browser", bb);
    pl.integration_id = integration;
    pl.code_verifier = "PLAINTEXT-VERIFIER-9c1d";
    Portico__Registry__CreatePendingRequest pr = PORTICO__REGISTRY__CREATE_PENDING_REQUEST__INIT;
    pr.pending = &pl;
    assert_code(0, h_call("pending.create", &pr.base, NULL, NULL, &err), err);

    Portico__Registry__PendingLogin p1 = PORTICO__REGISTRY__PENDING_LOGIN__INIT;
    p1.browser_hash = h_hash("raw-browser", bb);
    p1.integration_id = integration;
    p1.request_token = "PLAINTEXT-REQUEST-TOKEN-5a6f";
    p1.request_token_secret = "PLAINTEXT-RT-SECRET-2b8e";
    pr.pending = &p1;
    assert_code(0, h_call("pending.create", &pr.base, NULL, NULL, &err), err);
}

/* Where a plaintext could show in a dump: as text, and as bytea hex. */
static bool s_leaks(const char *dump, const char *plain)
{
    char hex[256];
    crypto_hex(plain, strlen(plain), hex);
    return strstr(dump, plain) || strstr(dump, hex);
}

static void test_no_plaintext_in_any_table(void **state)
{
    (void)state;
    s_seed();
    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    PGresult *tables = PQexec(c, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
    assert_int_equal(PQresultStatus(tables), PGRES_TUPLES_OK);
    assert_true(PQntuples(tables) >= 9);
    for (int i = 0; i < PQntuples(tables); i++) {
        const char *table = PQgetvalue(tables, i, 0);
        char *quoted = PQescapeIdentifier(c, table, strlen(table));
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM %s t", quoted);
        PQfreemem(quoted);
        PGresult *res = PQexec(c, sql);
        assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
        const char *dump = PQgetvalue(res, 0, 0);
        for (size_t k = 0; k < sizeof s_plaintexts / sizeof s_plaintexts[0]; k++) {
            if (s_leaks(dump, s_plaintexts[k])) {
                print_error("table %s shows \"%s\"\n", table, s_plaintexts[k]);
                fail();
            }
        }
        const char *setup = test_setup_token();
        if (setup[0] && s_leaks(dump, setup)) {
            print_error("table %s shows the setup token\n", table);
            fail();
        }
        PQclear(res);
    }
    PQclear(tables);
    PQfinish(c);
}

static void test_no_plaintext_in_a_full_dump(void **state)
{
    (void)state;
    size_t size = 64 * 1024 * 1024;
    char *dump = malloc(size);
    assert_non_null(dump);
    char conninfo[1024];
    h_conninfo(NULL, conninfo, sizeof conninfo);
    int rc = h_run(dump, size, "%s/pg_dump --data-only '%s'", h_env("REG_TEST_PGBIN"), conninfo);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(dump, "COPY public.tokens"));
    for (size_t k = 0; k < sizeof s_plaintexts / sizeof s_plaintexts[0]; k++) {
        if (s_leaks(dump, s_plaintexts[k])) {
            print_error("the dump shows \"%s\"\n", s_plaintexts[k]);
            fail();
        }
    }
    free(dump);
}

static void test_no_secret_in_the_log(void **state)
{
    (void)state;
    char *log = h_read_file(h_env("REG_TEST_LOG"));
    assert_non_null(log);
    for (size_t k = 0; k < sizeof s_plaintexts / sizeof s_plaintexts[0]; k++) {
        if (strstr(log, s_plaintexts[k])) {
            print_error("the registry log shows \"%s\"\n", s_plaintexts[k]);
            fail();
        }
    }
    /* The setup token never: it is in its file only. */
    assert_null(strstr(log, test_setup_token()));
    free(log);
}

static void test_sealed_values_are_bound_to_their_place(void **state)
{
    (void)state;
    /* Copying one identity's sealed access token over another's makes it
     * unreadable, not someone else's token. */
    bus_error_t err;
    int64_t integration = h_make_integration(NULL);
    int64_t a = h_login(integration, 5100, "bound-a", NULL), b = h_login(integration, 5101, "bound-b", NULL);
    Portico__Registry__Tokens t = PORTICO__REGISTRY__TOKENS__INIT;
    Portico__Registry__StoreTokensRequest st = PORTICO__REGISTRY__STORE_TOKENS_REQUEST__INIT;
    t.access_token = "token-of-a";
    st.identity_id = a;
    st.tokens = &t;
    assert_code(0, h_call("token.store", &st.base, NULL, NULL, &err), err);
    t.access_token = "token-of-b";
    st.identity_id = b;
    assert_code(0, h_call("token.store", &st.base, NULL, NULL, &err), err);
    PGconn *c = h_pg(NULL);
    char sql[300];
    snprintf(sql, sizeof sql,
             "UPDATE tokens SET access_token = (SELECT access_token FROM tokens WHERE identity_id = %lld) "
             "WHERE identity_id = %lld",
             (long long)a, (long long)b);
    assert_int_equal(h_pg_exec(c, sql), 0);
    PQfinish(c);
    Portico__Registry__GetTokensRequest g = PORTICO__REGISTRY__GET_TOKENS_REQUEST__INIT;
    g.identity_id = b;
    assert_code(PORTICO__ERROR_CODE__INTERNAL, h_call("token.get", &g.base, NULL, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(KEY));
    assert_null(strstr(err.message, "token-of"));
}

int run_raw_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_plaintext_in_any_table),
        cmocka_unit_test(test_no_plaintext_in_a_full_dump),
        cmocka_unit_test(test_no_secret_in_the_log),
        cmocka_unit_test(test_sealed_values_are_bound_to_their_place),
    };
    return cmocka_run_group_tests_name("secrets at rest", tests, NULL, NULL);
}
