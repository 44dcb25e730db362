/* db's batched transactions (libpq pipeline mode) against the real
 * PostgreSQL: statements that ask for no result go out without waiting, and
 * their errors still stop the transaction, from the next call that waits. */
#include "harness.h"

#include "registry/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const db_stmt_t s_put = {"t_batch_put", "INSERT INTO batch_probe (id, v) VALUES ($1::int, $2)"};
static const db_stmt_t s_count = {"t_batch_count",
                                  "SELECT count(*) AS n FROM batch_probe WHERE id BETWEEN $1::int AND $2::int"};
static const db_stmt_t s_fresh = {"t_batch_fresh", "UPDATE batch_probe SET v = v WHERE id = $1::int"};

static db_t *s_db;

static int s_setup(void **state)
{
    (void)state;
    char conninfo[1024];
    h_conninfo(NULL, conninfo, sizeof conninfo);
    s_db = db_new(conninfo, 5000, "test");
    if (!s_db || !db_ensure(s_db, 3000))
        return -1;
    return db_exec_script(s_db, "CREATE TABLE IF NOT EXISTS batch_probe (id int PRIMARY KEY, v text NOT NULL)") == DB_OK
               ? 0
               : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    db_exec_script(s_db, "DROP TABLE IF EXISTS batch_probe");
    db_destroy(&s_db);
    return 0;
}

static db_rc_t s_insert(int id, const char *v)
{
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, id);
    db_param_text(&p, v);
    return db_exec(s_db, &s_put, &p, NULL);
}

static long long s_count_rows(int from, int to)
{
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, from);
    db_param_int(&p, to);
    PGresult *res = NULL;
    if (db_exec(s_db, &s_count, &p, &res) != DB_OK)
        return -1;
    long long n = db_get_int(res, 0, db_col(res, "n"));
    PQclear(res);
    return n;
}

/* What another connection sees: only what was committed. */
static long long s_committed(int from, int to)
{
    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM batch_probe WHERE id BETWEEN %d AND %d", from, to);
    long long n = h_pg_scalar(c, sql);
    PQfinish(c);
    return n;
}

static void test_batch_commits_what_it_sent(void **state)
{
    (void)state;
    assert_int_equal(db_begin_batch(s_db), DB_OK);
    assert_int_equal(s_insert(1, "a"), DB_OK);
    assert_int_equal(s_insert(2, "b"), DB_OK);
    /* A statement that asks for its result sees the ones sent before it. */
    assert_int_equal(s_count_rows(1, 9), 2);
    assert_int_equal(s_insert(3, "c"), DB_OK);
    assert_int_equal(db_commit(s_db), DB_OK);
    db_rollback(s_db);
    assert_int_equal(s_committed(1, 9), 3);
}

/* A deferred statement that fails: the commit says so, with the kind of
 * error, and nothing of the transaction stays. */
static void test_deferred_error_stops_the_commit(void **state)
{
    (void)state;
    assert_int_equal(db_begin_batch(s_db), DB_OK);
    assert_int_equal(s_insert(10, "x"), DB_OK);
    assert_int_equal(s_insert(10, "again"), DB_OK); /* not known yet */
    assert_int_equal(s_insert(11, "y"), DB_OK);
    assert_int_equal(db_commit(s_db), DB_UNIQUE);
    assert_string_equal(db_constraint(s_db), "batch_probe_pkey");
    db_rollback(s_db);
    assert_int_equal(s_committed(10, 19), 0);
    /* The connection serves the next transaction. */
    assert_int_equal(s_count_rows(10, 19), 0);
}

/* The error comes back from the next statement that waits for its result. */
static void test_deferred_error_reaches_the_next_read(void **state)
{
    (void)state;
    assert_int_equal(db_begin_batch(s_db), DB_OK);
    assert_int_equal(s_insert(1, "duplicate of the first test"), DB_OK);
    assert_int_equal(s_count_rows(20, 29), -1);
    db_rollback(s_db);
    assert_int_equal(s_count_rows(1, 9), 3);
}

/* A statement first used behind a failed one was never prepared: it is
 * prepared again on its next use instead of failing for good. */
static void test_skipped_statement_is_prepared_later(void **state)
{
    (void)state;
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, 1);
    assert_int_equal(db_begin_batch(s_db), DB_OK);
    assert_int_equal(s_insert(2, "duplicate"), DB_OK);
    assert_int_equal(db_exec(s_db, &s_fresh, &p, NULL), DB_OK);
    assert_int_equal(db_commit(s_db), DB_UNIQUE);
    db_rollback(s_db);
    PGresult *res = NULL;
    assert_int_equal(db_exec(s_db, &s_fresh, &p, &res), DB_OK);
    assert_string_equal(PQcmdTuples(res), "1");
    PQclear(res);
}

/* A call pipeline mode does not allow ends the batching, not the
 * transaction. */
static void test_plain_sql_inside_a_batch(void **state)
{
    (void)state;
    assert_int_equal(db_begin_batch(s_db), DB_OK);
    assert_int_equal(s_insert(30, "z"), DB_OK);
    PGresult *res = NULL;
    assert_int_equal(db_exec_sql(s_db, "SELECT count(*) FROM batch_probe WHERE id = 30", NULL, &res), DB_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "1");
    PQclear(res);
    assert_int_equal(s_insert(31, "z"), DB_OK);
    assert_int_equal(db_commit(s_db), DB_OK);
    assert_int_equal(s_committed(30, 39), 2);
}

static long long s_commit_then_count(int from, int to, db_rc_t *rc)
{
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, from);
    db_param_int(&p, to);
    PGresult *res = (PGresult *)&p; /* must come back NULL on failure */
    *rc = db_commit_then(s_db, &s_count, &p, &res);
    if (*rc != DB_OK) {
        assert_null(res);
        return -1;
    }
    long long n = db_get_int(res, 0, db_col(res, "n"));
    PQclear(res);
    return n;
}

/* The commit and the read after it share a round trip: the read sees what
 * was committed, and another connection sees it too. */
static void test_commit_then_read(void **state)
{
    (void)state;
    db_rc_t rc;
    assert_int_equal(db_begin_batch(s_db), DB_OK);
    assert_int_equal(s_insert(40, "p"), DB_OK);
    assert_int_equal(s_insert(41, "q"), DB_OK);
    assert_int_equal(s_commit_then_count(40, 49, &rc), 2);
    assert_int_equal(rc, DB_OK);
    db_rollback(s_db);
    assert_int_equal(s_committed(40, 49), 2);
    /* Outside a batch it is a commit and then the read. */
    assert_int_equal(db_begin(s_db), DB_OK);
    assert_int_equal(s_insert(42, "r"), DB_OK);
    assert_int_equal(s_commit_then_count(40, 49, &rc), 3);
    assert_int_equal(s_committed(40, 49), 3);
}

/* A commit that fails: its error is the answer, the read is skipped and
 * nothing of the transaction stays. */
static void test_commit_then_read_after_a_failure(void **state)
{
    (void)state;
    db_rc_t rc;
    assert_int_equal(db_begin_batch(s_db), DB_OK);
    assert_int_equal(s_insert(50, "s"), DB_OK);
    assert_int_equal(s_insert(50, "again"), DB_OK);
    assert_int_equal(s_commit_then_count(50, 59, &rc), -1);
    assert_int_equal(rc, DB_UNIQUE);
    db_rollback(s_db);
    assert_int_equal(s_committed(50, 59), 0);
    assert_int_equal(s_count_rows(50, 59), 0);
}

int run_db_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_commits_what_it_sent),
        cmocka_unit_test(test_deferred_error_stops_the_commit),
        cmocka_unit_test(test_deferred_error_reaches_the_next_read),
        cmocka_unit_test(test_skipped_statement_is_prepared_later),
        cmocka_unit_test(test_plain_sql_inside_a_batch),
        cmocka_unit_test(test_commit_then_read),
        cmocka_unit_test(test_commit_then_read_after_a_failure),
    };
    return cmocka_run_group_tests_name("db", tests, s_setup, s_teardown);
}
