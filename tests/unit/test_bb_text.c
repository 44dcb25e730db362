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

/* A server or proxy that echoes the code, token or secret it was sent puts
 * none of it in Portico's messages; words, names and paths stay. */
static void test_opaque_runs_are_redacted(void **state)
{
    (void)state;
    char out[200];
    const char *echo =
        "Invalid authorization code: NjM0Mzk5MTY3NzQ5OkXk3q_Yb-9zQ2 (client 0123456789abcdef0123456789abcdef)";
    bb_safe_text(echo, strlen(echo), out, sizeof out);
    assert_string_equal(out, "Invalid authorization code: [redacted] (client [redacted])");
    const char *plain = "redirect_uri mismatch: https://portico.example.com/login/callback/3 for MyRepository2024 "
                        "and 550e8400-e29b-41d4-a716-446655440000";
    bb_safe_text(plain, strlen(plain), out, sizeof out);
    assert_string_equal(out, "redirect_uri mismatch: https://portico.example.com/login/callback/3 for [redacted] and "
                             "[redacted]");
    const char *words = "The repository PROJECT_ALPHA/my-long-repository-name does not exist (oauth2/latest/token)";
    bb_safe_text(words, strlen(words), out, sizeof out);
    assert_string_equal(out, words);
    char cut[24];
    bb_safe_text("code=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5", 33, cut, sizeof cut);
    assert_string_equal(cut, "code=[redacted]");
    /* Redacted before it is cut: no first part of a token is left. */
    char small[30];
    bb_safe_text(echo, strlen(echo), small, sizeof small);
    assert_string_equal(small, "Invalid authorization code: [");
}

/* What a proxy echoes from a form body is percent-encoded: "%2B" and "%2F"
 * must not cut a secret into runs too short to look like one, and a value
 * whose name says it is secret goes whatever it looks like. */
static void test_encoded_and_named_secrets_are_redacted(void **state)
{
    (void)state;
    char out[300];
    const char *echo = "bad request: client_secret=Xy7%2Bk2Lm9Qa%2FzT4w%2B8bRcV3n%3D&code=q7Zk%2Bx2P%2FaB9d";
    bb_safe_text(echo, strlen(echo), out, sizeof out);
    assert_string_equal(out, "bad request: client_secret=[redacted]&code=[redacted]");
    const char *bare = "got Xy7%2Bk2Lm9Qa%2FzT4w%2B8bRcV3n%3D instead";
    bb_safe_text(bare, strlen(bare), out, sizeof out);
    assert_string_equal(out, "got [redacted] instead");
    const char *named = "password=hunter2, refresh_token=abc&code_verifier=\"xyz 1\" oauth_token=t";
    bb_safe_text(named, strlen(named), out, sizeof out);
    assert_string_equal(out, "password=[redacted], refresh_token=[redacted]&code_verifier=[redacted] "
                             "oauth_token=[redacted]");
    /* An encoded address is words and punctuation: it stays. */
    const char *uri = "redirect_uri=https%3A%2F%2Fportico.example.com%2Flogin%2Fcallback does not match";
    bb_safe_text(uri, strlen(uri), out, sizeof out);
    assert_string_equal(out, uri);
    /* A base64 secret with its padding is not taken for a name. */
    const char *padded = "tokenXy7k2Lm9QazT4w8bRcV3n= was refused";
    bb_safe_text(padded, strlen(padded), out, sizeof out);
    assert_string_equal(out, "[redacted]= was refused");
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
        cmocka_unit_test(test_opaque_runs_are_redacted),
        cmocka_unit_test(test_encoded_and_named_secrets_are_redacted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
