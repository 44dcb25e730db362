/* The broker's pure OAuth 2 helpers: PKCE, the authorize URL, the callback
 * URL, version comparison and callback error names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "broker/oauth.h"

#include <string.h>

/* RFC 7636 appendix B. */
static void test_challenge_rfc7636(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(oauth2_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", out, sizeof out), 0);
    assert_string_equal(out, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    assert_int_equal(strlen(out), 43);
}

static void test_authorize_url(void **state)
{
    (void)state;
    char out[1024];
    int n = oauth2_authorize_url("https://git.example.com/bitbucket", "client id&x",
                                 "https://portico.example.com/oauth/callback/7", "st-_ate", "chal", out, sizeof out);
    assert_true(n > 0);
    assert_string_equal(out, "https://git.example.com/bitbucket/rest/oauth2/latest/authorize"
                             "?client_id=client%20id%26x"
                             "&redirect_uri=https%3A%2F%2Fportico.example.com%2Foauth%2Fcallback%2F7"
                             "&response_type=code&state=st-_ate&scope=REPO_READ&code_challenge=chal"
                             "&code_challenge_method=S256");
    char small[16];
    assert_int_equal(oauth2_authorize_url("https://a", "b", "c", "d", "e", small, sizeof small), -1);
}

static void test_redirect_uri(void **state)
{
    (void)state;
    char out[128];
    assert_true(oauth2_redirect_uri("http://localhost:8080", 12, out, sizeof out) > 0);
    assert_string_equal(out, "http://localhost:8080/oauth/callback/12");
    assert_true(oauth2_redirect_uri("https://x.example/portico/", 3, out, sizeof out) > 0);
    assert_string_equal(out, "https://x.example/portico/oauth/callback/3");
}

static void test_version_cmp(void **state)
{
    (void)state;
    assert_true(oauth2_version_cmp("7.9", "7.21") < 0);
    assert_true(oauth2_version_cmp("7.21", "7.21") == 0);
    assert_true(oauth2_version_cmp("7.21.0", "7.21") == 0);
    assert_true(oauth2_version_cmp("7.21.18", "7.21") > 0);
    assert_true(oauth2_version_cmp("7.20.5", "7.21") < 0);
    assert_true(oauth2_version_cmp("8.0", "8.0") == 0);
    assert_true(oauth2_version_cmp("8.9.0", "8.0") > 0);
    assert_true(oauth2_version_cmp("10.0.1", "8.0") > 0);
    assert_true(oauth2_version_cmp("7.99", "8.0") < 0);
    assert_true(oauth2_version_cmp("8.9.0-rc1", "8.9.0") == 0);
    assert_true(oauth2_version_valid("8.9.0"));
    assert_true(oauth2_version_valid("7.21.0-SNAPSHOT"));
    assert_false(oauth2_version_valid(""));
    assert_false(oauth2_version_valid("v8"));
    assert_false(oauth2_version_valid("8.9 <script>"));
}

static void test_callback_error(void **state)
{
    (void)state;
    assert_string_equal(oauth2_callback_error("access_denied"), "access_denied");
    assert_string_equal(oauth2_callback_error("invalid_scope"), "invalid_scope");
    assert_string_equal(oauth2_callback_error("<script>"), "provider_error");
    assert_string_equal(oauth2_callback_error(""), "provider_error");
}

static void test_wipe(void **state)
{
    (void)state;
    char s[] = "secret";
    oauth2_wipe(s);
    assert_int_equal(s[0], 0);
    assert_int_equal(s[5], 0);
    oauth2_wipe(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_challenge_rfc7636), cmocka_unit_test(test_authorize_url),
        cmocka_unit_test(test_redirect_uri),      cmocka_unit_test(test_version_cmp),
        cmocka_unit_test(test_callback_error),    cmocka_unit_test(test_wipe),
    };
    return cmocka_run_group_tests_name("oauth2", tests, NULL, NULL);
}
