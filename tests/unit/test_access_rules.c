/* access_rules: the checks behind "who may log in". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "access_rules.h"

static void test_resource(void **state)
{
    (void)state;
    assert_true(access_resource_valid(""));
    assert_true(access_resource_valid("PROJ"));
    assert_true(access_resource_valid("PROJ/service-03"));
    assert_true(access_resource_valid("~JDOE/sandbox.00"));
    assert_false(access_resource_valid("PROJ/a/b"));
    assert_false(access_resource_valid("/repo"));
    assert_false(access_resource_valid("PROJ/"));
    assert_false(access_resource_valid("PR OJ"));
    assert_false(access_resource_valid("PROJ/~x"));
    assert_false(access_resource_valid("~"));
    char key[16], slug[16];
    assert_int_equal(access_resource_split("PROJ/repo", key, sizeof key, slug, sizeof slug), 0);
    assert_string_equal(key, "PROJ");
    assert_string_equal(slug, "repo");
    assert_int_equal(access_resource_split("PROJ", key, sizeof key, slug, sizeof slug), 0);
    assert_string_equal(slug, "");
    assert_int_equal(access_resource_split("", key, sizeof key, slug, sizeof slug), -1);
    assert_int_equal(access_resource_split("AVERYLONGPROJECTKEY", key, sizeof key, slug, sizeof slug), -1);
}

static void test_pattern_valid(void **state)
{
    (void)state;
    assert_true(access_pattern_valid("jdoe"));
    assert_true(access_pattern_valid("jane.doe@example.com"));
    assert_true(access_pattern_valid("*@example.com"));
    assert_true(access_pattern_valid("zo\xc3\xab"));
    assert_false(access_pattern_valid(""));
    assert_false(access_pattern_valid("*"));
    assert_false(access_pattern_valid("*@"));
    assert_false(access_pattern_valid("j*doe"));
    assert_false(access_pattern_valid("*example.com"));
    assert_false(access_pattern_valid("*@a@b"));
    assert_false(access_pattern_valid("*@*.example.com"));
    assert_false(access_pattern_valid("a b"));
    assert_false(access_pattern_valid("a,b"));
    assert_false(access_pattern_valid("a\nb"));
}

static void test_match(void **state)
{
    (void)state;
    char *p[] = {"jdoe", "*@corp.example", "Jane.Doe@Example.com"};
    assert_true(access_patterns_match(p, 3, "jdoe", "jdoe@example.com"));
    assert_true(access_patterns_match(p, 3, "JDOE", ""));
    assert_true(access_patterns_match(p, 3, "someone", "someone@corp.example"));
    assert_true(access_patterns_match(p, 3, "someone", "SOMEONE@CORP.EXAMPLE"));
    assert_true(access_patterns_match(p, 3, "jane", "jane.doe@example.com"));
    assert_true(access_patterns_match(p, 3, "x@corp.example", ""));
    assert_false(access_patterns_match(p, 3, "someone", "someone@sub.corp.example"));
    assert_false(access_patterns_match(p, 3, "someone", "someone@corp.example.org"));
    assert_false(access_patterns_match(p, 3, "jdoe2", "jdoe2@example.com"));
    assert_false(access_patterns_match(p, 3, "", ""));
    assert_false(access_patterns_match(p, 0, "jdoe", ""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resource),
        cmocka_unit_test(test_pattern_valid),
        cmocka_unit_test(test_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
