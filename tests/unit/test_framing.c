/* framing: where a request ends, and which framings are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "web/framing.h"

#include <stdio.h>
#include <string.h>

static int s_parse(const char *req, framing_t *f)
{
    memset(f, 0, sizeof *f);
    return framing_parse(req, strlen(req), 16384, f);
}

static void test_whole(void **state)
{
    (void)state;
    framing_t f;
    const char *get = "GET /login HTTP/1.1\r\nHost: x\r\n\r\nGET /next";
    assert_int_equal(s_parse(get, &f), 1);
    assert_int_equal(f.head_len, strlen("GET /login HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_int_equal(f.body_len, 0);

    const char *post = "POST /f HTTP/1.1\r\ncontent-LENGTH:\t 12 \r\nHost: x\r\n\r\n";
    assert_int_equal(s_parse(post, &f), 1);
    assert_int_equal(f.head_len, strlen(post));
    assert_int_equal(f.body_len, 12);

    /* Bare line feeds, as civetweb takes them. */
    assert_int_equal(s_parse("POST /f HTTP/1.1\nContent-Length: 3\n\nabc", &f), 1);
    assert_int_equal(f.head_len, strlen("POST /f HTTP/1.1\nContent-Length: 3\n\n"));
    assert_int_equal(f.body_len, 3);

    /* A header that only looks like one of ours. */
    assert_int_equal(s_parse("GET / HTTP/1.1\r\nX-Content-Length: 9x\r\nContent-Lengthy: z\r\n\r\n", &f), 1);
    assert_int_equal(f.body_len, 0);
}

static void test_not_yet(void **state)
{
    (void)state;
    framing_t f;
    assert_int_equal(s_parse("", &f), 0);
    assert_int_equal(s_parse("GET / HTTP/1.1\r\nHost: x\r\n", &f), 0);
    assert_int_equal(s_parse("GET / HTTP/1.1\r\nHost: x\r\n\r", &f), 0);
    /* Not whole within the limit: too large, once the limit is reached. */
    char big[200];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    assert_int_equal(framing_parse(big, 99, 100, &f), 0);
    assert_int_equal(framing_parse(big, 100, 100, &f), 431);
    assert_int_equal(framing_parse(big, sizeof big, 100, &f), 431);
    /* A block that ends just past the limit is too large as well. */
    char edge[] = "GET / HTTP/1.1\r\nX: 1\r\n\r\n";
    assert_int_equal(framing_parse(edge, strlen(edge), strlen(edge) - 1, &f), 431);
    assert_int_equal(framing_parse(edge, strlen(edge), strlen(edge), &f), 1);
}

static void test_refused(void **state)
{
    (void)state;
    framing_t f;
    static const struct {
        const char *req;
        int status;
    } cases[] = {
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411},
        {"POST / HTTP/1.1\r\ntransfer-encoding: identity\r\n\r\n", 411},
        {"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nContent-Length: \r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nContent-Length: 1234567890123456\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nContent-Length : 1\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nContent-Length\t: 1\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nX: a\r\n folded: 1\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nno colon here\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\n: empty name\r\n\r\n", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = s_parse(cases[i].req, &f);
        if (rc != cases[i].status)
            fail_msg("case %zu: %d, not %d", i, rc, cases[i].status);
    }
    /* The largest length it takes. */
    assert_int_equal(s_parse("POST / HTTP/1.1\r\nContent-Length: 999999999999999\r\n\r\n", &f), 1);
    assert_true(f.body_len == 999999999999999LL);
}

static void test_head_end(void **state)
{
    (void)state;
    assert_int_equal(framing_head_end("a\r\n\r\nb", 6), 5);
    assert_int_equal(framing_head_end("a\n\nb", 4), 3);
    assert_int_equal(framing_head_end("a\r\n\nb", 5), 4);
    assert_int_equal(framing_head_end("a\r\n\r", 4), 0);
    assert_int_equal(framing_head_end("a\r\nb\r\n", 6), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole),
        cmocka_unit_test(test_not_yet),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_head_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
