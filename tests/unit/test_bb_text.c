/* Text from Bitbucket: UTF-8 checks and text made safe for messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bitbucket/bb_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void test_safe_text(void **state)
{
    (void)state;
    char out[8];
    bb_safe_text("  a\r\n\x1b[31mb  ", 14, out, sizeof out);
    assert_string_equal(out, "a [31mb");
    bb_safe_text("ab\xe2\x82\xac\xe2\x82\xac", 8, out, 6);
    assert_string_equal(out, "ab\xe2\x82\xac");
    bb_safe_text("\xff\xfe", 2, out, sizeof out);
    assert_string_equal(out, "(unread");
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(bb_utf8_valid("h\xc3\xa9llo \xf0\x9f\x98\x80", 11));
    assert_false(bb_utf8_valid("\xc0\xaf", 2));         /* overlong */
    assert_false(bb_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(bb_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(bb_utf8_valid("\xe2\x82", 2));         /* cut */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safe_text),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
