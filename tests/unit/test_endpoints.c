/* endpoints: a setting's endpoints, names resolved to every address, and
 * the changes reported as instances appear and vanish. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "endpoints.h"

#include <stdio.h>
#include <string.h>

/* What the fake DNS answers for "registry": s_answers addresses, or a
 * failure when negative. */
static int s_answers;
static const char *s_addrs[] = {"10.0.0.7", "10.0.0.5", "10.0.0.6", "fd00::9"};

static int s_fake_resolver(const char *host, char out[][64], int max)
{
    if (strcmp(host, "registry") || s_answers < 0)
        return -1;
    int n = s_answers < max ? s_answers : max;
    for (int i = 0; i < n; i++)
        snprintf(out[i], 64, "%s", s_addrs[i]);
    return n;
}

static char s_log[1024];

static void s_record(void *arg, const char *endpoint, bool added)
{
    (void)arg;
    size_t n = strlen(s_log);
    snprintf(s_log + n, sizeof s_log - n, "%c%s ", added ? '+' : '-', endpoint);
}

static void test_check_accepts_lists_and_refuses_garbage(void **state)
{
    (void)state;
    char why[200];
    assert_int_equal(endpoints_check("tcp://127.0.0.1:5551", why, sizeof why), 0);
    assert_int_equal(endpoints_check("tcp://registry:5551, tcp://[::1]:5551,ipc:///run/x,inproc://q", why, sizeof why),
                     0);
    assert_int_equal(endpoints_check("", why, sizeof why), -1);
    assert_int_equal(endpoints_check(" , ", why, sizeof why), -1);
    assert_int_equal(endpoints_check("http://registry:5551", why, sizeof why), -1);
    assert_non_null(strstr(why, "ZeroMQ endpoints"));
    assert_int_equal(endpoints_check("tcp://registry", why, sizeof why), -1);
    assert_int_equal(endpoints_check("tcp://registry:0", why, sizeof why), -1);
    assert_int_equal(endpoints_check("tcp://registry:99999", why, sizeof why), -1);
    assert_int_equal(endpoints_check("tcp://registry:55x1", why, sizeof why), -1);
    assert_int_equal(endpoints_check("tcp://*:5551", why, sizeof why), -1);
    assert_int_equal(endpoints_check("tcp://[::1:5551", why, sizeof why), -1);
    assert_int_equal(endpoints_check("inproc://", why, sizeof why), -1);
    char big[9000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(endpoints_check(big, why, sizeof why), -1);
    assert_null(endpoints_new("tcp://nowhere", NULL));
}

static void test_a_name_stands_for_every_address_and_changes_are_reported(void **state)
{
    (void)state;
    s_answers = 2;
    s_log[0] = '\0';
    endpoints_t *e = endpoints_new("tcp://registry:5551,tcp://127.0.0.1:6000", s_fake_resolver);
    assert_non_null(e);
    assert_int_equal(endpoints_count(e), 0);
    assert_int_equal(endpoints_refresh(e, 0, false, s_record, NULL), 3);
    assert_int_equal(endpoints_count(e), 3);
    assert_string_equal(endpoints_at(e, 0), "tcp://10.0.0.5:5551");
    assert_string_equal(endpoints_at(e, 1), "tcp://10.0.0.7:5551");
    assert_string_equal(endpoints_at(e, 2), "tcp://127.0.0.1:6000");
    assert_null(endpoints_at(e, 3));

    /* Not due yet: nothing is resolved, whatever DNS says now. */
    s_answers = 3;
    assert_int_equal(endpoints_refresh(e, ENDPOINTS_REFRESH_MS - 1, false, s_record, NULL), 0);
    assert_int_equal(endpoints_count(e), 3);
    /* Due: the new instance is reported once. */
    s_log[0] = '\0';
    assert_int_equal(endpoints_refresh(e, ENDPOINTS_REFRESH_MS, false, s_record, NULL), 1);
    assert_string_equal(s_log, "+tcp://10.0.0.6:5551 ");
    assert_int_equal(endpoints_count(e), 4);

    /* A failed lookup keeps what the name had. */
    s_answers = -1;
    assert_int_equal(endpoints_refresh(e, 0, true, s_record, NULL), 0);
    assert_int_equal(endpoints_count(e), 4);

    /* One instance left: the two that vanished are reported, the literal
     * address stays. */
    s_answers = 1;
    s_log[0] = '\0';
    assert_int_equal(endpoints_refresh(e, 0, true, s_record, NULL), 2);
    assert_string_equal(s_log, "-tcp://10.0.0.5:5551 -tcp://10.0.0.6:5551 ");
    assert_int_equal(endpoints_count(e), 2);
    endpoints_destroy(&e);
    assert_null(e);
    endpoints_destroy(&e);
}

static void test_ipv6_addresses_get_brackets_and_duplicates_count_once(void **state)
{
    (void)state;
    s_answers = 4;
    endpoints_t *e = endpoints_new("tcp://registry:5551,tcp://10.0.0.7:5551,inproc://x", s_fake_resolver);
    assert_non_null(e);
    endpoints_refresh(e, 0, true, NULL, NULL);
    assert_int_equal(endpoints_count(e), 5);
    assert_string_equal(endpoints_at(e, 0), "inproc://x");
    assert_string_equal(endpoints_at(e, 4), "tcp://[fd00::9]:5551");
    endpoints_destroy(&e);
}

static void test_the_system_resolver_resolves_localhost(void **state)
{
    (void)state;
    char out[8][ENDPOINTS_LEN];
    int n = endpoints_resolve_once("tcp://localhost:5551", out, 8);
    assert_true(n >= 1);
    assert_string_equal(out[0], "tcp://127.0.0.1:5551");
    assert_int_equal(endpoints_resolve_once("tcp://", out, 8), -1);
    /* A name that does not resolve yields nothing, not an error. */
    assert_int_equal(endpoints_resolve_once("tcp://no-such-host.invalid:5551", out, 8), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_accepts_lists_and_refuses_garbage),
        cmocka_unit_test(test_a_name_stands_for_every_address_and_changes_are_reported),
        cmocka_unit_test(test_ipv6_addresses_get_brackets_and_duplicates_count_once),
        cmocka_unit_test(test_the_system_resolver_resolves_localhost),
    };
    return cmocka_run_group_tests_name("endpoints", tests, NULL, NULL);
}
