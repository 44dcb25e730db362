/* WWW-Authenticate (oauth_problem) and Retry-After, from the header values Bitbucket sends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bitbucket/bb_header.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void test_oauth_problem_parsing(void **state)
{
    (void)state;
    char p[64];
    assert_int_equal(bb_oauth_problem("OAuth oauth_problem=nonce_used", NULL, 0, p, sizeof p), 0);
    assert_string_equal(p, "nonce_used");
    assert_int_equal(bb_oauth_problem("oauth realm=\"a, b\" , oauth_problem = \"x_y\"", NULL, 0, p, sizeof p), 0);
    assert_string_equal(p, "x_y");
    assert_int_equal(bb_oauth_problem("OAuth realm=\"oauth_problem=fake\"", "oauth_problem=real", 18, p, sizeof p), 0);
    assert_string_equal(p, "real");
    assert_int_equal(bb_oauth_problem("Basic realm=\"x\"", "a=b", 3, p, sizeof p), -1);
    assert_int_equal(bb_oauth_problem("OAuth oauth_problem=\"<script>\"", NULL, 0, p, sizeof p), 0);
    assert_string_equal(p, "script");
    assert_int_equal(bb_oauth_problem("OAuth oauth_problem=\"", NULL, 0, p, sizeof p), -1);
    assert_int_equal(bb_oauth_problem("OAuth ,,,=,=\"", NULL, 0, p, sizeof p), -1);
    assert_int_equal(bb_oauth_problem(NULL, "x=1&oauth_problem=token_rejected&y", 33, p, sizeof p), 0);
    assert_string_equal(p, "token_rejected");
}

static void test_retry_after(void **state)
{
    (void)state;
    time_t now = 1700000000;
    assert_int_equal(bb_retry_after_seconds("5", now), 5);
    assert_int_equal(bb_retry_after_seconds(" 10 ", now), 10);
    assert_int_equal(bb_retry_after_seconds("0", now), 0);
    assert_int_equal(bb_retry_after_seconds("99999999999", now), 86400);
    assert_int_equal(bb_retry_after_seconds("-1", now), -1);
    assert_int_equal(bb_retry_after_seconds("5s", now), -1);
    assert_int_equal(bb_retry_after_seconds("", now), -1);
    assert_int_equal(bb_retry_after_seconds(NULL, now), -1);
    /* 1700000000 is Tue, 14 Nov 2023 22:13:20 GMT */
    assert_int_equal(bb_retry_after_seconds("Tue, 14 Nov 2023 22:13:50 GMT", now), 30);
    assert_int_equal(bb_retry_after_seconds("Tue, 14 Nov 2023 22:00:00 GMT", now), 0);
    assert_int_equal(bb_retry_after_seconds("someday", now), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oauth_problem_parsing),
        cmocka_unit_test(test_retry_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
