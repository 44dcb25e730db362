/* db_columns, db_column, db_col: result columns found by name, and a
 * missing one reported rather than read from a neighbour. On results made
 * in memory (no server). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "registry/db.h"

#include <string.h>

/* A one-row result with the given column names; column i holds "i". */
static PGresult *s_result(const char *const *names, int n)
{
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    assert_non_null(res);
    PGresAttDesc attrs[8];
    memset(attrs, 0, sizeof attrs);
    for (int i = 0; i < n; i++) {
        attrs[i].name = (char *)(uintptr_t)names[i];
        attrs[i].typid = 25; /* text */
        attrs[i].typlen = -1;
        attrs[i].atttypmod = -1;
    }
    assert_int_equal(PQsetResultAttrs(res, n, attrs), 1);
    for (int i = 0; i < n; i++) {
        char v[4] = {(char)('0' + i), '\0'};
        assert_int_equal(PQsetvalue(res, 0, i, v, 1), 1);
    }
    return res;
}

static void test_columns_by_name(void **state)
{
    (void)state;
    static const char *const in_result[] = {"pending_id", "integ_id", "integ_name"};
    PGresult *res = s_result(in_result, 3);
    static const char *const wanted[] = {"integ_name", "integ_id"};
    int cols[2] = {-1, -1};
    assert_int_equal(db_columns(res, wanted, 2, cols), 0);
    assert_int_equal(cols[0], 2);
    assert_int_equal(cols[1], 1);
    assert_string_equal(db_get_text(res, 0, cols[0]), "2");
    assert_int_equal(db_get_int(res, 0, cols[1]), 1);
    PQclear(res);
}

/* A query that lost a column: an error, not the next column's value. */
static void test_missing_column(void **state)
{
    (void)state;
    static const char *const in_result[] = {"integ_id", "integ_platform"};
    PGresult *res = s_result(in_result, 2);
    static const char *const wanted[] = {"integ_id", "integ_name", "integ_platform"};
    int cols[3];
    assert_int_equal(db_columns(res, wanted, 3, cols), -1);
    PQclear(res);
}

/* One column by name: the same number whatever the order of the query. */
static void test_column_by_name(void **state)
{
    (void)state;
    static const char *const in_result[] = {"id", "name", "expires_at"};
    PGresult *res = s_result(in_result, 3);
    assert_int_equal(db_column(res, "expires_at"), 2);
    assert_int_equal(db_col(res, "id"), 0);
    assert_string_equal(db_get_text(res, 0, db_col(res, "name")), "1");
    PQclear(res);
}

/* A name the query does not give is -1, not a neighbour; names compare
 * exactly, so a prefix does not match either. */
static void test_column_missing(void **state)
{
    (void)state;
    static const char *const in_result[] = {"id", "name"};
    PGresult *res = s_result(in_result, 2);
    assert_int_equal(db_column(res, "email"), -1);
    assert_int_equal(db_column(res, "nam"), -1);
    assert_int_equal(db_column(res, "ID"), -1);
    PQclear(res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_columns_by_name),
        cmocka_unit_test(test_missing_column),
        cmocka_unit_test(test_column_by_name),
        cmocka_unit_test(test_column_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
