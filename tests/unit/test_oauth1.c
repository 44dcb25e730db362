/* The broker's pure OAuth 1 helpers: the authorize URL, the denial
 * verifier, and what each oauth_problem tells whom. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "broker/oauth.h"

#include <string.h>

static void test_authorize_url(void **state)
{
    (void)state;
    char out[512];
    int n = oauth1_authorize_url("https://git.example.com/bitbucket", "tok+en/=&x", out, sizeof out);
    assert_true(n > 0);
    assert_string_equal(out, "https://git.example.com/bitbucket/plugins/servlet/oauth/authorize"
                             "?oauth_token=tok%2Ben%2F%3D%26x");
    assert_int_equal(n, (int)strlen(out));
    char small[32];
    assert_int_equal(oauth1_authorize_url("https://git.example.com", "t", small, sizeof small), -1);
    assert_int_equal(oauth1_authorize_url("https://git.example.com", "", out, sizeof out), -1);
    assert_int_equal(oauth1_authorize_url("https://git.example.com", NULL, out, sizeof out), -1);
}

static void test_verifier_denied(void **state)
{
    (void)state;
    assert_true(oauth1_verifier_denied("denied"));
    assert_false(oauth1_verifier_denied("Denied"));
    assert_false(oauth1_verifier_denied("deniedx"));
    assert_false(oauth1_verifier_denied(""));
    assert_false(oauth1_verifier_denied(NULL));
}

/* The detail the bitbucket service sends for an oauth_problem. */
#define P(name) bus_detail_parse(name, DETAIL(NONE))

static void test_problem_kinds(void **state)
{
    (void)state;
    assert_int_equal(oauth1_problem_kind(P("consumer_key_unknown")), OAUTH1_PROBLEM_LINK);
    assert_int_equal(oauth1_problem_kind(P("signature_invalid")), OAUTH1_PROBLEM_LINK);
    assert_int_equal(oauth1_problem_kind(P("timestamp_refused")), OAUTH1_PROBLEM_CLOCK);
    assert_int_equal(oauth1_problem_kind(P("nonce_used")), OAUTH1_PROBLEM_RETRY);
    assert_int_equal(oauth1_problem_kind(P("token_rejected")), OAUTH1_PROBLEM_TOKEN);
    assert_int_equal(oauth1_problem_kind(P("token_expired")), OAUTH1_PROBLEM_TOKEN);
    assert_int_equal(oauth1_problem_kind(P("permission_denied")), OAUTH1_PROBLEM_TOKEN);
    assert_int_equal(oauth1_problem_kind(P("parameter_absent")), OAUTH1_PROBLEM_PROTOCOL);
    /* OAuth 2 details and anything else are not oauth_problems. */
    assert_int_equal(oauth1_problem_kind(P("invalid_grant")), OAUTH1_PROBLEM_NONE);
    assert_int_equal(oauth1_problem_kind(P("anonymous")), OAUTH1_PROBLEM_NONE);
    assert_int_equal(oauth1_problem_kind(P("")), OAUTH1_PROBLEM_NONE);
    assert_int_equal(oauth1_problem_kind(P(NULL)), OAUTH1_PROBLEM_NONE);
    assert_null(oauth1_problem_message(P("invalid_grant")));
    assert_null(oauth1_problem_message(P(NULL)));
}

static void test_problem_messages(void **state)
{
    (void)state;
    static const char *const problems[] = {"consumer_key_unknown", "signature_invalid",  "signature_method_rejected",
                                           "timestamp_refused",    "nonce_used",         "token_rejected",
                                           "token_expired",        "permission_denied",  "permission_unknown",
                                           "parameter_absent",     "parameter_rejected", "version_rejected"};
    for (size_t i = 0; i < sizeof problems / sizeof problems[0]; i++) {
        const char *m = oauth1_problem_message(P(problems[i]));
        assert_non_null(m);
        /* It is stored as an integration's last test result. */
        assert_true(strlen(m) <= 200);
        assert_true(strlen(m) > 20);
    }
    assert_non_null(strstr(oauth1_problem_message(P("timestamp_refused")), "clocks"));
    assert_non_null(strstr(oauth1_problem_message(P("timestamp_refused")), "NTP"));
    assert_non_null(strstr(oauth1_problem_message(P("consumer_key_unknown")), "consumer key"));
    assert_non_null(strstr(oauth1_problem_message(P("consumer_key_unknown")), "Incoming Authentication"));
    assert_non_null(strstr(oauth1_problem_message(P("signature_invalid")), "public key"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_authorize_url),
        cmocka_unit_test(test_verifier_denied),
        cmocka_unit_test(test_problem_kinds),
        cmocka_unit_test(test_problem_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
