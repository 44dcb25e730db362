/* URL joining and form encoding (services/bitbucket/bb_url.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bitbucket/bb_url.h"
#include "url.h"

#include <stdlib.h>
#include <string.h>

static void s_join(const char *base, const char *path, const char *want)
{
    char *got = bb_url_join(base, path);
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("join(\"%s\", \"%s\") = \"%s\", want \"%s\"", base, path, got, want);
    free(got);
}

static void test_join(void **state)
{
    (void)state;
    s_join("https://git.example.com", "/rest/api/1.0/users", "https://git.example.com/rest/api/1.0/users");
    s_join("https://git.example.com/", "/rest/api/1.0/users", "https://git.example.com/rest/api/1.0/users");
    s_join("https://git.example.com/bitbucket", "/rest/api/1.0/repos",
           "https://git.example.com/bitbucket/rest/api/1.0/repos");
    s_join("https://git.example.com/bitbucket/", "/rest/api/1.0/repos",
           "https://git.example.com/bitbucket/rest/api/1.0/repos");
    s_join("https://git.example.com/bitbucket///", "rest/oauth2/latest/token",
           "https://git.example.com/bitbucket/rest/oauth2/latest/token");
    s_join("http://127.0.0.1:7990/a/b", "//plugins/servlet/applinks/whoami",
           "http://127.0.0.1:7990/a/b/plugins/servlet/applinks/whoami");
}

/* What the service does: normalise the admin's base URL, then join. */
static void test_normalised_then_joined(void **state)
{
    (void)state;
    const char *inputs[] = {"https://Git.Example.com/bitbucket/", "https://git.example.com//bitbucket//",
                            "https://git.example.com/bitbucket"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        char base[512], why[200];
        assert_int_equal(url_normalize_base(inputs[i], base, sizeof base, why, sizeof why), 0);
        char *u = bb_url_join(base, "/rest/api/1.0/application-properties");
        assert_string_equal(u, "https://git.example.com/bitbucket/rest/api/1.0/application-properties");
        assert_null(strstr(u + strlen("https://"), "//"));
        free(u);
    }
}

static void test_form(void **state)
{
    (void)state;
    sbuf_t f = {0};
    bb_form_add(&f, "grant_type", "authorization_code");
    bb_form_add(&f, "redirect_uri", "https://portico.example/cb?x=1&y=2");
    bb_form_add(&f, "client_secret", "a b+c/d=e&f~g%h");
    bb_form_add(&f, "code_verifier", "");
    bb_form_add(&f, "name", "jos\xc3\xa9");
    bb_form_add_int(&f, "limit", 25);
    char *s = sbuf_take(&f);
    assert_string_equal(s, "grant_type=authorization_code"
                           "&redirect_uri=https%3A%2F%2Fportico.example%2Fcb%3Fx%3D1%26y%3D2"
                           "&client_secret=a%20b%2Bc%2Fd%3De%26f~g%25h"
                           "&code_verifier="
                           "&name=jos%C3%A9"
                           "&limit=25");
    free(s);
    /* Empty builder gives "", not NULL. */
    sbuf_t e = {0};
    s = sbuf_take(&e);
    assert_string_equal(s, "");
    free(s);
}

static void test_path_segment(void **state)
{
    (void)state;
    sbuf_t p = {0};
    sbuf_puts(&p, "/rest/api/1.0/users/");
    bb_path_segment(&p, "jane.doe@example.com/../admin?x#y");
    char *s = sbuf_take(&p);
    assert_string_equal(s, "/rest/api/1.0/users/jane.doe%40example.com%2F..%2Fadmin%3Fx%23y");
    free(s);
    /* Dot segments whole: curl would resolve them (users/.. is the API's
     * root); dots inside a segment stay. */
    const char *cases[][2] = {{"..", "%2E%2E"}, {".", "%2E"}, {"...", "..."}, {"a..", "a.."}, {".b", ".b"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sbuf_t q = {0};
        bb_path_segment(&q, cases[i][0]);
        s = sbuf_take(&q);
        assert_string_equal(s, cases[i][1]);
        free(s);
    }
}

static void test_host_and_path(void **state)
{
    (void)state;
    char h[64], p[64];
    bb_url_host("https://git.example.com:8443/bitbucket/rest?x=1", h, sizeof h);
    assert_string_equal(h, "git.example.com:8443");
    bb_url_host("http://user:pw@h.example/x", h, sizeof h);
    assert_string_equal(h, "h.example");
    bb_url_host("http://[::1]:7990", h, sizeof h);
    assert_string_equal(h, "[::1]:7990");
    bb_url_path("https://h/bitbucket/rest/api/1.0/users?filter=secret#f", p, sizeof p);
    assert_string_equal(p, "/bitbucket/rest/api/1.0/users");
    bb_url_path("https://h?x", p, sizeof p);
    assert_string_equal(p, "/");
    bb_url_path("https://h/a", p, 2);
    assert_string_equal(p, "/");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join),         cmocka_unit_test(test_normalised_then_joined), cmocka_unit_test(test_form),
        cmocka_unit_test(test_path_segment), cmocka_unit_test(test_host_and_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
