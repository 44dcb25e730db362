/* netaddr: address lists, and the client an address counts as. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "netaddr.h"

#include <string.h>

static void test_client_key(void **state)
{
    (void)state;
    static const struct {
        const char *ip, *key;
    } cases[] = {
        {"192.0.2.7", "192.0.2.7"},
        {"::ffff:192.0.2.7", "::ffff:192.0.2.7"},
        {"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
        {"2001:db8:1:2::1", "2001:db8:1:2::/64"},
        {"2001:DB8:1:2:0:0:0:9", "2001:db8:1:2::/64"},
        {"::1", "::/64"},
        {"fe80::1", "fe80::/64"},
        {"not an address", "not an address"},
        {"", ""},
    };
    char key[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        netaddr_client_key(cases[i].ip, key, sizeof key);
        if (strcmp(key, cases[i].key))
            fail_msg("%s: \"%s\", not \"%s\"", cases[i].ip, key, cases[i].key);
    }
    /* Two addresses of one /64 are one client; of two /64s, two. */
    char a[64], b[64];
    netaddr_client_key("2001:db8::1", a, sizeof a);
    netaddr_client_key("2001:db8::ffff:2", b, sizeof b);
    assert_string_equal(a, b);
    netaddr_client_key("2001:db8:0:1::1", b, sizeof b);
    assert_string_not_equal(a, b);
    /* Cut to the room given, never past it. */
    char small[8];
    netaddr_client_key("2001:db8:1:2::1", small, sizeof small);
    assert_int_equal(strlen(small), sizeof small - 1);
}

static void test_lists(void **state)
{
    (void)state;
    netaddr_list_t l;
    char why[128];
    assert_int_equal(netaddr_list_parse("10.0.0.0/8, 192.0.2.7, fd00::/8", &l, why, sizeof why), 0);
    assert_true(netaddr_list_contains(&l, "10.1.2.3"));
    assert_true(netaddr_list_contains(&l, "::ffff:10.1.2.3"));
    assert_true(netaddr_list_contains(&l, "192.0.2.7"));
    assert_false(netaddr_list_contains(&l, "192.0.2.8"));
    assert_true(netaddr_list_contains(&l, "fd12::1"));
    assert_false(netaddr_list_contains(&l, "2001:db8::1"));
    assert_false(netaddr_list_contains(&l, "nonsense"));
    netaddr_list_free(&l);
    assert_int_equal(netaddr_list_parse("10.0.0.0/33", &l, why, sizeof why), -1);
    assert_non_null(strstr(why, "10.0.0.0/33"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_key),
        cmocka_unit_test(test_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
