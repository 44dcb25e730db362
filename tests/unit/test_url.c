/* url: base URL normalisation, local-path checks, percent-encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "url.h"

#include <string.h>

static void s_ok(const char *in, const char *want)
{
    char out[256], why[160] = "";
    if (url_normalize_base(in, out, sizeof out, why, sizeof why) != 0)
        fail_msg("refused %s: %s", in, why);
    assert_string_equal(out, want);
}

static void s_bad(const char *in, const char *why_part)
{
    char out[256], why[160] = "";
    assert_int_equal(url_normalize_base(in, out, sizeof out, why, sizeof why), -1);
    if (!strstr(why, why_part))
        fail_msg("%s: expected a reason containing \"%s\", got \"%s\"", in, why_part, why);
}

static void test_normalize(void **state)
{
    (void)state;
    s_ok("https://git.example.com", "https://git.example.com");
    s_ok("https://git.example.com/", "https://git.example.com");
    s_ok("https://git.example.com/bitbucket/", "https://git.example.com/bitbucket");
    s_ok("https://git.example.com/bitbucket", "https://git.example.com/bitbucket");
    s_ok("HTTPS://Git.Example.COM:8443/BitBucket", "https://git.example.com:8443/BitBucket");
    s_ok("http://127.0.0.1:7990/bitbucket//", "http://127.0.0.1:7990/bitbucket");
    s_ok("http://[::1]:7990/bb", "http://[::1]:7990/bb");
}

static void test_refused(void **state)
{
    (void)state;
    s_bad("", "Enter the URL");
    s_bad("ftp://git.example.com", "http:// or https://");
    s_bad("git.example.com", "http:// or https://");
    s_bad("javascript:alert(1)", "http:// or https://");
    s_bad("https://user:pw@git.example.com", "user name or password");
    s_bad("https://user@git.example.com", "user name or password");
    s_bad("https://git.example.com/?x=1", "query");
    s_bad("https://git.example.com/#frag", "fragment");
    s_bad("https://git.example.com/a b", "spaces");
    s_bad("https://git.example.com\\evil", "backslashes");
    s_bad("https:///nohost", "host name");
    s_bad("https://gït.example.com", "outside ASCII");
    s_bad("https://%ee8s10/x", "percent-encoded");
    /* libcurl resolves dot segments: the normalised URL has none left. */
    s_ok("https://git.example.com/a/../b", "https://git.example.com/b");
}

static void test_local_path(void **state)
{
    (void)state;
    assert_true(url_is_local_path("/"));
    assert_true(url_is_local_path("/account?start=25"));
    assert_false(url_is_local_path("//evil.example"));
    assert_false(url_is_local_path("/\\evil.example"));
    assert_false(url_is_local_path("https://evil.example"));
    assert_false(url_is_local_path("evil"));
    assert_false(url_is_local_path(""));
    assert_false(url_is_local_path(NULL));
    assert_false(url_is_local_path("/a\r\nSet-Cookie: x=1"));
}

static void test_encode_decode(void **state)
{
    (void)state;
    char out[128];
    assert_int_equal(url_encode("a b+c~d/é", out, sizeof out), 20);
    assert_string_equal(out, "a%20b%2Bc~d%2F%C3%A9");
    assert_int_equal(url_encode("abcdef", out, 4), -1);
    assert_true(url_decode("user%40email.com", false, out, sizeof out) > 0);
    assert_string_equal(out, "user@email.com");
    assert_true(url_decode("a+b", true, out, sizeof out) > 0);
    assert_string_equal(out, "a b");
    assert_true(url_decode("a+b", false, out, sizeof out) > 0);
    assert_string_equal(out, "a+b");
    assert_int_equal(url_decode("bad%zz", false, out, sizeof out), -1);
    assert_int_equal(url_decode("trunc%4", false, out, sizeof out), -1);
    assert_int_equal(url_decode("nul%00byte", false, out, sizeof out), -1);
    assert_true(url_is_https("https://x"));
    assert_false(url_is_https("http://x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_local_path),
        cmocka_unit_test(test_encode_decode),
    };
    return cmocka_run_group_tests_name("url", tests, NULL, NULL);
}
