/* aform: the access rules form without HTTP: size limits, trimming, the
 * split of the pattern list and its limit, and a refusal on its field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "form_fields.h"
#include "web/aform.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_read(void **state)
{
    (void)state;
    aform_t f;
    assert_int_equal(aform_init(&f), 0);
    field_t fields[] = {{"resource", "  PKG/registry \r\n"},
                        {"patterns", "jdoe\r\njane@example.com, *@example.com\n\n"},
                        {"contact", "\tthe platform team "},
                        {NULL, NULL}};
    assert_int_equal(aform_read(&f, form_fields_get, fields), 0);
    assert_false(aform_has_errors(&f));
    assert_string_equal(f.resource, "PKG/registry");
    assert_string_equal(f.contact, "the platform team");
    assert_int_equal(f.npats, 3);
    assert_string_equal(f.pats[0], "jdoe");
    assert_string_equal(f.pats[2], "*@example.com");
    aform_free(&f);
}

static void test_limits(void **state)
{
    (void)state;
    static char long_resource[AFORM_MAX_RESOURCE + 5];
    memset(long_resource, 'P', sizeof long_resource - 1);
    size_t many = (AFORM_MAX_PATTERNS + 1) * 3;
    char *list = calloc(1, many + 1);
    assert_non_null(list);
    for (size_t i = 0; i < many; i += 3)
        memcpy(list + i, "ab\n", 3);
    aform_t f;
    assert_int_equal(aform_init(&f), 0);
    field_t fields[] = {{"resource", long_resource}, {"patterns", list}, {NULL, NULL}};
    assert_int_equal(aform_read(&f, form_fields_get, fields), 0);
    assert_true(aform_has_errors(&f));
    assert_non_null(strstr(f.e_resource, "At most 300"));
    assert_non_null(strstr(f.e_patterns, "At most 200 names"));
    assert_string_equal(f.e_contact, "");
    aform_free(&f);
    free(list);
}

/* A NUL byte would cut a value short: "PROJ\0/repo" is not the project PROJ. */
static void test_nul_is_refused_on_its_field(void **state)
{
    (void)state;
    aform_t f;
    assert_int_equal(aform_init(&f), 0);
    field_t fields[] = {{"resource", "PROJ%00/secret-repo"},
                        {"patterns", "alice%00\nmallory"},
                        {"contact", "the %00 team"},
                        {NULL, NULL}};
    assert_int_equal(aform_read(&f, form_fields_get, fields), 0);
    assert_true(aform_has_errors(&f));
    assert_non_null(strstr(f.e_resource, "NUL"));
    assert_non_null(strstr(f.e_patterns, "NUL"));
    assert_non_null(strstr(f.e_contact, "NUL"));
    assert_string_equal(f.resource, "");
    aform_free(&f);
}

static void test_store_failed(void **state)
{
    (void)state;
    aform_t f;
    assert_int_equal(aform_init(&f), 0);
    bus_error_t err = {0};
    err.detail = DETAIL(PATTERNS);
    snprintf(err.message, sizeof err.message, "a pattern may hold one * only");
    aform_store_failed(&f, &err);
    assert_string_equal(f.e_patterns, "A pattern may hold one * only.");
    err.detail = DETAIL(NONE);
    snprintf(err.message, sizeof err.message, "refused");
    aform_store_failed(&f, &err);
    assert_string_equal(f.e_top, "Refused");
    aform_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_nul_is_refused_on_its_field),
        cmocka_unit_test(test_store_failed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
