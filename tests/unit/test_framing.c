/* framing: where a request ends, and which framings are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "framing.h"

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
        /* Request lines civetweb could read otherwise: spaces before the
         * method (it skips them, then reads past what came), a method
         * that is no token, extra or missing parts. */
        {" GET / HTTP/1.1\r\n\r\n", 400},
        {"\tGET / HTTP/1.1\r\n\r\n", 400},
        {" HEAD / HTTP/1.1\r\n\r\n", 400},
        {"G@T / HTTP/1.1\r\n\r\n", 400},
        {"GET  / HTTP/1.1\r\n\r\n", 400},
        {"GET / HTTP/1.1 \r\n\r\n", 400},
        {"GET /\r\n\r\n", 400},
        {"GET / FTP/1.1\r\n\r\n", 400},
        {"GET / HTTP/11\r\n\r\n", 400},
        {"GET /a\x01b HTTP/1.1\r\n\r\n", 400},
        {"GET\r\n\r\n", 400},
        /* Header names civetweb stops reading at (a CR or a byte over 126
         * first) or that are no token: a Content-Length after them would
         * frame a body civetweb runs as a request. */
        {"GET / HTTP/1.1\r\n\x80: z\r\nContent-Length: 3\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n\rX: z\r\nContent-Length: 3\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nX\x80: z\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nX(y): z\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nX\x01: z\r\n\r\n", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = s_parse(cases[i].req, &f);
        if (rc != cases[i].status)
            fail_msg("case %zu: %d, not %d", i, rc, cases[i].status);
    }
    /* Forms of request line it takes. */
    assert_int_equal(s_parse("OPTIONS * HTTP/1.1\r\n\r\n", &f), 1);
    assert_int_equal(s_parse("GET http://h.example/a?b=c HTTP/1.0\n\n", &f), 1);
    assert_int_equal(s_parse("M-SEARCH /%C3%A9 HTTP/1.1\r\n\r\n", &f), 1);
    assert_int_equal(s_parse("GET / HTTP/1.1\r\nX-Ok_1.~!#$%&'*+^`|: v \xc3\xa9\r\n\r\n", &f), 1);
    /* As many header lines as civetweb reads with the gate's own, and one
     * more. */
    char many[4096];
    size_t o = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < FRAMING_HEADERS_MAX; i++)
        o += (size_t)snprintf(many + o, sizeof many - o, "X-%d: v\r\n", i);
    snprintf(many + o, sizeof many - o, "\r\n");
    assert_int_equal(s_parse(many, &f), 1);
    snprintf(many + o, sizeof many - o, "Content-Length: 9\r\n\r\n");
    assert_int_equal(s_parse(many, &f), 431);
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
    /* civetweb reads on past these: a bare line feed, then a whole CRLF. */
    assert_int_equal(framing_head_end("a\n\r\nb", 5), 0);
    assert_int_equal(framing_head_end("\n\r\n", 3), 0);
    assert_int_equal(framing_head_end("a\n\r\n\r\n", 6), 6);
    assert_int_equal(framing_head_end("\r\n\r\n", 4), 4);
}

/* Feed text to a tracker one piece of `step` bytes at a time; the answers
 * that ended. */
static int s_feed(framing_answers_t *a, const char *text, size_t step)
{
    int ended = 0;
    size_t len = strlen(text);
    for (size_t at = 0; at < len; at += step)
        ended += framing_answered(a, text + at, len - at < step ? len - at : step);
    return ended;
}

static void test_answers(void **state)
{
    (void)state;
    static framing_answers_t a;
    const char *two = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
                      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
    /* Whole, or a byte at a time: the same answers end. */
    for (size_t step = 1; step <= 200; step += 199) {
        memset(&a, 0, sizeof a);
        assert_true(framing_none_due(&a));
        framing_asked(&a, false);
        framing_asked(&a, true); /* a HEAD: its answer has no body */
        assert_false(framing_none_due(&a));
        assert_int_equal(s_feed(&a, two, step), 2);
        assert_true(framing_none_due(&a));
    }
    /* Not yet: a head, or a body, cut short. */
    memset(&a, 0, sizeof a);
    framing_asked(&a, false);
    assert_int_equal(s_feed(&a, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhell", 100), 0);
    assert_false(framing_none_due(&a));
    assert_int_equal(s_feed(&a, "o", 1), 1);
    assert_true(framing_none_due(&a));
    /* 100 Continue comes before the answer; 204 and 304 have no body. */
    framing_asked(&a, false);
    framing_asked(&a, false);
    framing_asked(&a, false);
    assert_int_equal(s_feed(&a,
                            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
                            "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"
                            "HTTP/1.1 302 Found\r\nLocation: /\r\nContent-Length: 0\r\n\r\n",
                            7),
                     3);
    assert_true(framing_none_due(&a));

    /* What cannot be delimited: the gate stops following. */
    static const char *const lost[] = {
        "HTTP/1.1 200 OK\r\n\r\nno length",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        "HTTP/1.1 101 Switching Protocols\r\n\r\n",
        "HTTP/1.0 2xx OK\r\nContent-Length: 0\r\n\r\n",
        "SSH-2.0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
    };
    for (size_t i = 0; i < sizeof lost / sizeof lost[0]; i++) {
        memset(&a, 0, sizeof a);
        framing_asked(&a, false);
        s_feed(&a, lost[i], 100);
        if (!a.lost)
            fail_msg("case %zu was followed", i);
        assert_false(framing_none_due(&a));
    }
    /* Bytes after every answer due. */
    memset(&a, 0, sizeof a);
    framing_asked(&a, false);
    assert_int_equal(s_feed(&a, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nX", 100), 1);
    assert_true(a.lost);
    /* A head longer than the tracker holds. */
    memset(&a, 0, sizeof a);
    framing_asked(&a, false);
    static char big[FRAMING_ANSWER_HEAD_MAX + 64];
    memset(big, 'a', sizeof big - 1);
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    s_feed(&a, big, 1000);
    assert_true(a.lost);
    /* More requests outstanding than it counts (the gate holds the next
     * one back instead). */
    memset(&a, 0, sizeof a);
    for (int i = 0; i <= FRAMING_ANSWERS_MAX; i++)
        framing_asked(&a, false);
    assert_true(a.lost);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole),    cmocka_unit_test(test_not_yet), cmocka_unit_test(test_refused),
        cmocka_unit_test(test_head_end), cmocka_unit_test(test_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
