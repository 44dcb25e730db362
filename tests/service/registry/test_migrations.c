/* Schema migrations: from an empty database, re-run, raced, and refused
 * when the database is newer than the binary. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The migrations services/registry/migrations.c knows. */
#define LATEST 7
#define LATEST_TEXT "7"

static char s_out[16384];

static int s_cli(const char *dbname, const char *args)
{
    char conninfo[1024];
    h_conninfo(dbname, conninfo, sizeof conninfo);
    return h_run(s_out, sizeof s_out, "PORTICO_DATABASE_URL='%s' %s %s", conninfo, h_env("REG_TEST_BIN"), args);
}

static void test_from_empty_and_again(void **state)
{
    (void)state;
    h_create_database("mig_fresh");
    assert_int_equal(s_cli("mig_fresh", "migrate"), 0);
    assert_non_null(
        strstr(s_out, "Database schema is at version " LATEST_TEXT " (" LATEST_TEXT " migrations applied now)."));
    PGconn *c = h_pg("mig_fresh");
    assert_non_null(c);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN "
                                    "('schema_migrations', 'integrations', 'integration_reservations', 'users', "
                                    "'identities', 'sessions', 'pending_logins', 'tokens', 'settings', 'audit_log')"),
                     10);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN "
                                    "('access_rules', 'access_checks', 'access_ended', 'web_instances')"),
                     4);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM settings WHERE setup_mode"), 1);
    /* Pending logins only: everything else must survive a crash. */
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                    "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relpersistence = 'u'"),
                     1);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM pg_class WHERE relname = 'pending_logins' "
                                    "AND relpersistence = 'u'"),
                     1);
    /* No foreign key on it: checking one would lock the integration's row,
     * a write-ahead log record that makes every start's commit wait for the
     * disk. */
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
                                    "AND conrelid = 'pending_logins'::regclass"),
                     0);
    assert_int_equal(s_cli("mig_fresh", "migrate"), 0);
    assert_non_null(strstr(s_out, "(0 migrations applied now)"));
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM schema_migrations"), LATEST);
    PQfinish(c);
}

static void test_concurrent_migrations_do_not_race(void **state)
{
    (void)state;
    h_create_database("mig_race");
    char conninfo[1024];
    h_conninfo("mig_race", conninfo, sizeof conninfo);
    int rc = h_run(s_out, sizeof s_out,
                   "export PORTICO_DATABASE_URL='%s'; for i in 1 2 3 4 5 6; do %s migrate & done; "
                   "fail=0; for j in $(jobs -p); do wait $j || fail=1; done; exit $fail",
                   conninfo, h_env("REG_TEST_BIN"));
    if (rc != 0)
        print_error("%s\n", s_out);
    assert_int_equal(rc, 0);
    PGconn *c = h_pg("mig_race");
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM schema_migrations"), LATEST);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM settings"), 1);
    PQfinish(c);
}

static void test_newer_schema_is_refused(void **state)
{
    (void)state;
    PGconn *c = h_pg("mig_fresh");
    assert_int_equal(h_pg_exec(c, "INSERT INTO schema_migrations (version, description) VALUES (999, 'future')"), 0);
    PQfinish(c);
    assert_int_equal(s_cli("mig_fresh", "migrate"), 1);
    assert_non_null(
        strstr(s_out, "database schema version 999 is newer than this portico-registry knows (" LATEST_TEXT ")"));
    assert_int_equal(s_cli("mig_fresh", "integrations list"), 1);
    assert_non_null(strstr(s_out, "version 999"));

    h_registry_t r;
    assert_int_equal(h_registry_start(&r, "mig_fresh", NULL), -1);
    char *log = h_read_file(r.log);
    assert_non_null(log);
    assert_non_null(strstr(log, "refusing to start"));
    assert_non_null(
        strstr(log, "database schema version 999 is newer than this portico-registry knows (" LATEST_TEXT ")"));
    free(log);
    /* Untouched: the migrations and the future version's row. */
    c = h_pg("mig_fresh");
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM schema_migrations"), LATEST + 1);
    PQfinish(c);
}

int run_migration_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_from_empty_and_again),
        cmocka_unit_test(test_concurrent_migrations_do_not_race),
        cmocka_unit_test(test_newer_schema_is_refused),
    };
    return cmocka_run_group_tests_name("migrations", tests, NULL, NULL);
}
