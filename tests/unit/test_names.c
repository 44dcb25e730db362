/* names: Bitbucket's names into the broker's fixed buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "broker/names.h"

#include <string.h>

static void test_whole_or_nothing(void **state)
{
    (void)state;
    char out[8];
    broker_copy_whole(out, sizeof out, "jdoe");
    assert_string_equal(out, "jdoe");
    broker_copy_whole(out, sizeof out, "1234567");
    assert_string_equal(out, "1234567");
    /* One byte too long: not "1234567", which could be another's. */
    memset(out, 'x', sizeof out);
    broker_copy_whole(out, sizeof out, "12345678");
    assert_string_equal(out, "");
    broker_copy_whole(out, sizeof out, "");
    assert_string_equal(out, "");
}

static void test_cut_at_a_character(void **state)
{
    (void)state;
    char out[8];
    broker_copy_cut(out, sizeof out, "Zo\xc3\xab");
    assert_string_equal(out, "Zo\xc3\xab");
    broker_copy_cut(out, sizeof out, "abcdefghij");
    assert_string_equal(out, "abcdefg");
    /* Seven bytes fit; the fourth "é" would be cut after its first byte. */
    broker_copy_cut(out, sizeof out, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    assert_string_equal(out, "\xc3\xa9\xc3\xa9\xc3\xa9");
    /* A four-byte letter over the end, at each offset. */
    broker_copy_cut(out, sizeof out, "abcde\xf0\x9f\x98\x80");
    assert_string_equal(out, "abcde");
    broker_copy_cut(out, sizeof out, "abc\xf0\x9f\x98\x80z");
    assert_string_equal(out, "abc\xf0\x9f\x98\x80");
    broker_copy_cut(out, sizeof out, "abcd\xf0\x9f\x98\x80");
    assert_string_equal(out, "abcd");
    /* The display name of the emulator's longest user: 128 "é" (256
     * bytes) into 256 bytes keeps 127 of them. */
    char name[257], kept[256];
    for (size_t o = 0; o < 256; o += 2)
        memcpy(name + o, "\xc3\xa9", 2);
    name[256] = '\0';
    broker_copy_cut(kept, sizeof kept, name);
    assert_int_equal(strlen(kept), 254);
    assert_memory_equal(kept, name, 254);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_or_nothing),
        cmocka_unit_test(test_cut_at_a_character),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
