/* Bitbucket's error bodies, as the message an admin is shown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bitbucket/bb_status.h"
#include "bitbucket/bb_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void test_errors_message(void **state)
{
    (void)state;
    char m[161];
    const char *b = "{\"errors\":[{\"message\":\"first\\nline\\ttab\"},{\"message\":\"second\"}]}";
    bb_errors_message(b, strlen(b), m, sizeof m);
    assert_string_equal(m, "first line tab");
    b = "{\"message\":\"null for uri: https://h//rest/api/1.0/x\",\"status-code\":404}";
    bb_errors_message(b, strlen(b), m, sizeof m);
    assert_string_equal(m, "null for uri: https://h//rest/api/1.0/x");
    bb_errors_message("oops", 4, m, sizeof m);
    assert_string_equal(m, "");
    b = "{\"errors\":[{\"message\":7}]}";
    bb_errors_message(b, strlen(b), m, sizeof m);
    assert_string_equal(m, "");
    /* Long messages are cut (at a character boundary). */
    char big[1200] = "{\"errors\":[{\"message\":\"";
    for (int i = 0; i < 300; i++)
        strcat(big, "\xc3\xa9");
    strcat(big, "\"}]}");
    bb_errors_message(big, strlen(big), m, sizeof m);
    assert_true(strlen(m) <= 160);
    assert_true(bb_utf8_valid(m, strlen(m)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
