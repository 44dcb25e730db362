/* The egress policy (services/bitbucket/bb_egress.c): which addresses a
 * call to Bitbucket may connect to. Pure decisions: no traffic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bitbucket/bb_egress.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static bool s_ok(const bb_egress_t *e, const char *host, const char *ip, char *why)
{
    why[0] = '\0';
    return bb_egress_permits_text(e, host, ip, why, 160);
}

static void test_refused_by_default(void **state)
{
    (void)state;
    bb_egress_t *e = bb_egress_new();
    char why[160];
    static const char *const refused[] = {
        "127.0.0.1", "127.1.2.3", "::1",     "169.254.169.254", "fe80::1",          "0.0.0.0",
        "::",        "224.0.0.1", "ff02::1", "255.255.255.255", "::ffff:127.0.0.1", "::ffff:169.254.169.254"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (s_ok(e, "bitbucket.example.com", refused[i], why))
            fail_msg("%s was permitted", refused[i]);
    assert_false(s_ok(e, "x", "169.254.169.254", why));
    assert_string_equal(why, "169.254.169.254 is a link-local address");
    assert_false(s_ok(e, "x", "::ffff:127.0.0.1", why));
    assert_string_equal(why, "127.0.0.1 is a loopback address");
    /* Private ranges are where Bitbucket Data Center lives. */
    static const char *const fine[] = {"10.1.2.3",   "172.16.0.9",  "192.168.1.10", "fd12::7",
                                       "100.64.0.1", "203.0.113.5", "2001:db8::1"};
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++)
        if (!s_ok(e, "bitbucket.example.com", fine[i], why))
            fail_msg("%s was refused: %s", fine[i], why);
    bb_egress_destroy(&e);
    assert_null(e);
}

static void test_own_addresses(void **state)
{
    (void)state;
    bb_egress_t *e = bb_egress_new();
    char why[160];
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    inet_pton(AF_INET, "172.18.0.4", &sa.sin_addr);
    assert_int_equal(bb_egress_own_addr(e, (struct sockaddr *)&sa), 0);
    assert_false(s_ok(e, "registry", "172.18.0.4", why));
    assert_string_equal(why, "172.18.0.4 is an address of Portico itself");
    assert_true(s_ok(e, "bitbucket", "172.18.0.5", why));
    /* The host's own interfaces include loopback at least. */
    assert_int_equal(bb_egress_own_interfaces(e), 0);
    bb_egress_destroy(&e);
}

/* The pieces of the periodic re-read (bitbucket/main.c): a read that
 * could not resolve everything keeps what was known; a change is seen. */
static void test_own_addresses_merge(void **state)
{
    (void)state;
    bb_egress_t *a = bb_egress_new(), *b = bb_egress_new();
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    inet_pton(AF_INET, "172.18.0.4", &sa.sin_addr);
    assert_int_equal(bb_egress_own_addr(a, (struct sockaddr *)&sa), 0);
    inet_pton(AF_INET, "172.18.0.9", &sa.sin_addr);
    assert_int_equal(bb_egress_own_addr(b, (struct sockaddr *)&sa), 0);
    assert_false(bb_egress_own_same(a, b));
    assert_int_equal(bb_egress_own_add_all(b, a), 0);
    assert_int_equal(bb_egress_own_count(b), 2);
    assert_int_equal(bb_egress_own_add_all(b, a), 0); /* none twice */
    assert_int_equal(bb_egress_own_count(b), 2);
    char why[160];
    assert_false(s_ok(b, "registry", "172.18.0.4", why));
    assert_false(s_ok(b, "registry", "172.18.0.9", why));
    assert_int_equal(bb_egress_own_add_all(a, b), 0);
    assert_true(bb_egress_own_same(a, b));
    bb_egress_destroy(&a);
    bb_egress_destroy(&b);
}

static void test_allow_list(void **state)
{
    (void)state;
    bb_egress_t *e = bb_egress_new();
    char why[300];
    assert_int_equal(bb_egress_allow(e, "127.0.0.1, demo-bitbucket,10.9.0.0/16,[::1], fe80::/10", why, sizeof why), 0);
    assert_true(s_ok(e, "127.0.0.1", "127.0.0.1", why));
    assert_true(s_ok(e, "localhost", "127.0.0.1", why));
    assert_false(s_ok(e, "localhost", "127.0.0.2", why));
    assert_true(s_ok(e, "any", "::1", why));
    assert_true(s_ok(e, "any", "fe80::42", why));
    /* A named host is allowed whatever it resolves to... */
    assert_true(s_ok(e, "demo-bitbucket", "172.20.0.3", why));
    assert_true(s_ok(e, "DEMO-Bitbucket", "127.0.0.9", why));
    /* ...and only that name. */
    assert_false(s_ok(e, "other", "127.0.0.9", why));
    assert_false(s_ok(e, "any", "169.254.169.254", why));
    /* Bad entries name themselves. */
    assert_int_equal(bb_egress_allow(e, "10.0.0.0/33", why, sizeof why), -1);
    assert_non_null(strstr(why, "\"10.0.0.0/33\""));
    assert_int_equal(bb_egress_allow(e, "ok.example, 999.1.1.1", why, sizeof why), -1);
    assert_non_null(strstr(why, "999.1.1.1"));
    assert_int_equal(bb_egress_allow(e, "http://x", why, sizeof why), -1);
    assert_int_equal(bb_egress_allow(e, "", why, sizeof why), 0);
    bb_egress_destroy(&e);
    /* No policy set: other parts' tests are not affected. */
    assert_true(bb_egress_permits_text(NULL, "x", "127.0.0.1", why, sizeof why));
}

/* A host name may end in a digit (bitbucket1, bb-2); what only an IP
 * address parser would read (a last label all digits, or 0x and hex) is
 * not taken for a name. */
static void test_allow_list_names_ending_in_digits(void **state)
{
    (void)state;
    bb_egress_t *e = bb_egress_new();
    char why[300];
    if (bb_egress_allow(e, "bitbucket1, bb-2,git.example2.com,0xbb.example", why, sizeof why) != 0)
        fail_msg("refused: %s", why);
    assert_true(s_ok(e, "bitbucket1", "127.0.0.5", why));
    assert_true(s_ok(e, "BB-2", "127.0.0.5", why));
    assert_true(s_ok(e, "git.example2.com", "127.0.0.5", why));
    assert_true(s_ok(e, "0xbb.example", "127.0.0.5", why));
    assert_false(s_ok(e, "bitbucket", "127.0.0.5", why));
    static const char *const refused[] = {"1.2.3",  "10.0.0.1.5", "host.123",       "0x7f000001", "127.0.0.0x1",
                                          "0X7F.1", "1.2.3.4.",   "bitbucket.0xff", "2130706433", "0x"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        bb_egress_t *r = bb_egress_new();
        if (bb_egress_allow(r, refused[i], why, sizeof why) != -1)
            fail_msg("%s was taken for a host name", refused[i]);
        assert_non_null(strstr(why, "is not a host name"));
        bb_egress_destroy(&r);
    }
    bb_egress_destroy(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_by_default),
        cmocka_unit_test(test_own_addresses),
        cmocka_unit_test(test_own_addresses_merge),
        cmocka_unit_test(test_allow_list),
        cmocka_unit_test(test_allow_list_names_ending_in_digits),
    };
    return cmocka_run_group_tests_name("bb_egress", tests, NULL, NULL);
}
