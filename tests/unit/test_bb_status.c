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

/* An error answer may be as long as a page (4 MiB): one longer than the
 * small answers' cap is not parsed (jansson's tree of many small values
 * would be some 40 times its text), and gets no message. */
static void test_long_error_bodies_are_not_parsed(void **state)
{
    (void)state;
    size_t n = BB_MAX_SMALL_BODY + 1024;
    char *b = malloc(n + 1);
    assert_non_null(b);
    size_t o = (size_t)snprintf(b, n + 1, "{\"errors\":[{\"message\":\"x\",\"j\":[0");
    while (o + 6 < n)
        o += (size_t)snprintf(b + o, n + 1 - o, ",0");
    snprintf(b + o, n + 1 - o, "]}]}");
    char m[161];
    bb_errors_message(b, strlen(b), m, sizeof m);
    assert_string_equal(m, "");
    /* The same shape within the cap is read. */
    const char *small = "{\"errors\":[{\"message\":\"x\",\"j\":[0,0,0]}]}";
    bb_errors_message(small, strlen(small), m, sizeof m);
    assert_string_equal(m, "x");

    bus_error_t err;
    memset(&err, 0, sizeof err);
    bb_response_t r = {.status = 400, .body = b, .body_len = strlen(b), .host = "git.example.com"};
    o = (size_t)snprintf(b, n + 1, "{\"error\":\"invalid_grant\",\"j\":[0");
    while (o + 4 < n)
        o += (size_t)snprintf(b + o, n + 1 - o, ",0");
    snprintf(b + o, n + 1 - o, "]}");
    r.body_len = strlen(b);
    assert_int_equal(bb_oauth2_error(&r, &err), -1);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors_message),
        cmocka_unit_test(test_long_error_bodies_are_not_parsed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
