/* Form-encoded bodies (the OAuth 1 token answers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bitbucket/bb_form.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void test_form_get(void **state)
{
    (void)state;
    const char *b = "a=1&oauth_token=x%20y&b&oauth_token_secret=p+q";
    char *v = bb_form_get(b, strlen(b), "oauth_token");
    assert_string_equal(v, "x y");
    free(v);
    v = bb_form_get(b, strlen(b), "oauth_token_secret");
    assert_string_equal(v, "p q");
    free(v);
    v = bb_form_get(b, strlen(b), "b");
    assert_string_equal(v, "");
    free(v);
    assert_null(bb_form_get(b, strlen(b), "oauth"));
    assert_null(bb_form_get("x=%00", 5, "x"));
    assert_null(bb_form_get("x=%FF", 5, "x"));
    /* Length-bounded: never reads past body_len ("x", not "x=1"). */
    v = bb_form_get("x=1", 1, "x");
    assert_string_equal(v, "");
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form_get),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
