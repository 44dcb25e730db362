/* Transport failures to typed errors (services/bitbucket/bb_http.c), and
 * that nothing of one transfer reaches the next when easy handles are
 * reused. The transfers themselves are exercised by tests/service/bitbucket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bitbucket/bb_http.h"
#include "envelope.pb-c.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static bus_error_t s_map(CURLcode code, bool connected, bool too_large)
{
    bb_http_result_t res;
    memset(&res, 0, sizeof res);
    res.curl_code = code;
    res.connected = connected;
    res.too_large = too_large;
    bus_error_t err;
    memset(&err, 0, sizeof err);
    bb_http_error(&res, "git.example.com:7990", 9000, 3000, &err);
    return err;
}

static void s_is(CURLcode code, bool connected, int want_code, const char *want_detail)
{
    bus_error_t err = s_map(code, connected, false);
    if (err.code != want_code || strcmp(bus_detail_name(err.detail), want_detail) != 0)
        fail_msg("curl %d: got %d/%s, want %d/%s", (int)code, err.code, bus_detail_name(err.detail), want_code,
                 want_detail);
    assert_non_null(strstr(err.message, "git.example.com:7990"));
}

static void test_mapping(void **state)
{
    (void)state;
    s_is(CURLE_COULDNT_CONNECT, false, PORTICO__ERROR_CODE__UNAVAILABLE, "unreachable");
    s_is(CURLE_COULDNT_RESOLVE_HOST, false, PORTICO__ERROR_CODE__UNAVAILABLE, "unreachable");
    s_is(CURLE_OPERATION_TIMEDOUT, false, PORTICO__ERROR_CODE__TIMEOUT, "timeout");
    s_is(CURLE_OPERATION_TIMEDOUT, true, PORTICO__ERROR_CODE__TIMEOUT, "timeout");
    s_is(CURLE_PEER_FAILED_VERIFICATION, true, PORTICO__ERROR_CODE__TLS, "certificate");
    s_is(CURLE_SSL_CACERT_BADFILE, false, PORTICO__ERROR_CODE__TLS, "ca_cert_invalid");
    s_is(CURLE_SSL_CONNECT_ERROR, true, PORTICO__ERROR_CODE__TLS, "handshake");
    s_is(CURLE_GOT_NOTHING, true, PORTICO__ERROR_CODE__UNAVAILABLE, "connection");
    s_is(CURLE_RECV_ERROR, true, PORTICO__ERROR_CODE__UNAVAILABLE, "connection");
    s_is(CURLE_WEIRD_SERVER_REPLY, true, PORTICO__ERROR_CODE__UPSTREAM, "protocol");
    s_is(CURLE_UNSUPPORTED_PROTOCOL, false, PORTICO__ERROR_CODE__BAD_REQUEST, "base_url");
    s_is(CURLE_FILESIZE_EXCEEDED, true, PORTICO__ERROR_CODE__UPSTREAM, "too_large");

    bus_error_t err = s_map(CURLE_WRITE_ERROR, true, true);
    assert_int_equal(err.code, PORTICO__ERROR_CODE__UPSTREAM);
    assert_int_equal(err.detail, DETAIL(TOO_LARGE));
}

static void test_messages(void **state)
{
    (void)state;
    bus_error_t err = s_map(CURLE_PEER_FAILED_VERIFICATION, true, false);
    assert_non_null(strstr(err.message, "could not be verified"));
    assert_non_null(strstr(err.message, "CA certificate"));
    err = s_map(CURLE_OPERATION_TIMEDOUT, false, false);
    assert_non_null(strstr(err.message, "3000 ms"));
    err = s_map(CURLE_OPERATION_TIMEDOUT, true, false);
    assert_non_null(strstr(err.message, "9000 ms"));
}

/* A listening socket on a free loopback port. */
static int s_listen(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* ---- reused easy handles ---- */

#define N_REQUESTS 3

/* A one-connection-at-a-time HTTP server that keeps each request's text. */
typedef struct {
    int listener;
    char requests[N_REQUESTS][2048];
    int n;
} server_t;

static void *s_serve(void *arg)
{
    server_t *srv = arg;
    while (srv->n < N_REQUESTS) {
        int c = accept(srv->listener, NULL, NULL);
        if (c < 0)
            break;
        while (srv->n < N_REQUESTS) {
            char *buf = srv->requests[srv->n];
            size_t len = 0, want = 0;
            char *end = NULL;
            while (len < sizeof srv->requests[0] - 1) {
                ssize_t r = recv(c, buf + len, sizeof srv->requests[0] - 1 - len, 0);
                if (r <= 0)
                    break;
                len += (size_t)r;
                buf[len] = '\0';
                end = strstr(buf, "\r\n\r\n");
                const char *cl = strcasestr(buf, "Content-Length:");
                want = end ? (size_t)(end + 4 - buf) + (cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0) : 0;
                if (end && len >= want)
                    break;
            }
            if (!end || len < want)
                break;
            srv->n++;
            const char *answer = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
            if (send(c, answer, strlen(answer), MSG_NOSIGNAL) < 0)
                break;
        }
        close(c);
    }
    return NULL;
}

typedef struct {
    bb_http_t *http;
    char base[64];
    int done, ok;
} client_t;

static void s_start(client_t *cl);

static void s_on_done(void *arg, const bb_http_result_t *res)
{
    client_t *cl = arg;
    if (res->curl_code == CURLE_OK && res->status == 200 && res->body_len == 2 && !memcmp(res->body, "ok", 2))
        cl->ok++;
    cl->done++;
    /* The next transfer starts from the done callback, as a chain does,
     * and gets the handle this one gives back. */
    if (cl->done < N_REQUESTS)
        s_start(cl);
}

static void s_start(client_t *cl)
{
    static const bb_http_request_t reqs[N_REQUESTS] = {
        {.method = "POST",
         .url = "/one",
         .body = "secret=s3cr3t",
         .authorization = "Bearer tok-1",
         .accept = "application/json"},
        {.method = "GET", .url = "/two"},
        {.method = "GET", .url = "/three", .authorization = "Bearer tok-3"},
    };
    char url[128];
    bb_http_request_t r = reqs[cl->done];
    snprintf(url, sizeof url, "%s%s", cl->base, r.url);
    r.url = url;
    r.timeout_ms = 5000;
    r.connect_timeout_ms = 5000;
    if (!bb_http_start(cl->http, &r, s_on_done, cl))
        cl->done = N_REQUESTS;
}

static int s_check(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    client_t *cl = arg;
    return cl->done >= N_REQUESTS ? -1 : 0;
}

static int s_give_up(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    (void)arg;
    return -1;
}

static void test_reused_handles_forget_the_last_request(void **state)
{
    (void)state;
    server_t srv;
    memset(&srv, 0, sizeof srv);
    int port;
    srv.listener = s_listen(&port);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_serve, &srv), 0);

    zloop_t *loop = zloop_new();
    client_t cl;
    memset(&cl, 0, sizeof cl);
    cl.http = bb_http_new(loop, 4, 8);
    assert_non_null(cl.http);
    snprintf(cl.base, sizeof cl.base, "http://127.0.0.1:%d", port);
    s_start(&cl);
    bb_http_run_due(cl.http);
    zloop_timer(loop, 10, 0, s_check, &cl);
    zloop_timer(loop, 10000, 1, s_give_up, NULL);
    zloop_start(loop);
    bb_http_destroy(&cl.http);
    zloop_destroy(&loop);
    shutdown(srv.listener, SHUT_RDWR);
    close(srv.listener);
    pthread_join(thread, NULL);

    assert_int_equal(cl.ok, N_REQUESTS);
    assert_int_equal(srv.n, N_REQUESTS);
    const char *one = srv.requests[0], *two = srv.requests[1], *three = srv.requests[2];
    assert_non_null(strstr(one, "POST /one "));
    assert_non_null(strstr(one, "Authorization: Bearer tok-1\r\n"));
    assert_non_null(strstr(one, "secret=s3cr3t"));
    /* Nothing of the POST: method, credentials, body, its headers. */
    assert_non_null(strstr(two, "GET /two "));
    assert_null(strstr(two, "Authorization"));
    assert_null(strstr(two, "secret"));
    assert_null(strstr(two, "Content-Type"));
    assert_null(strstr(two, "application/json"));
    assert_non_null(strstr(three, "GET /three "));
    assert_non_null(strstr(three, "Authorization: Bearer tok-3\r\n"));
    assert_null(strstr(three, "tok-1"));
}

/* ---- a slow answer on a kept-alive connection ---- */

/* Answers the first request, then starts the second answer and stalls. */
static void *s_serve_then_stall(void *arg)
{
    int listener = *(int *)arg;
    int c = accept(listener, NULL, NULL);
    if (c < 0)
        return NULL;
    char buf[2048];
    for (int i = 0; i < 2; i++) {
        size_t len = 0;
        while (len < sizeof buf - 1 && !memmem(buf, len, "\r\n\r\n", 4)) {
            ssize_t r = recv(c, buf + len, sizeof buf - 1 - len, 0);
            if (r <= 0)
                goto out;
            len += (size_t)r;
        }
        const char *answer = i == 0 ? "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                                    : "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\no";
        if (send(c, answer, strlen(answer), MSG_NOSIGNAL) < 0)
            goto out;
    }
    usleep(1500 * 1000);
out:
    close(c);
    return NULL;
}

typedef struct {
    bb_http_t *http;
    char url[96];
    int done;
    CURLcode code[2];
    bool connected[2];
} stall_t;

static void s_stall_start(stall_t *st);

static void s_stall_done(void *arg, const bb_http_result_t *res)
{
    stall_t *st = arg;
    st->code[st->done] = res->curl_code;
    st->connected[st->done] = res->connected;
    if (++st->done < 2)
        s_stall_start(st);
}

static void s_stall_start(stall_t *st)
{
    bb_http_request_t r = {.method = "GET", .url = st->url, .timeout_ms = 700, .connect_timeout_ms = 700};
    if (!bb_http_start(st->http, &r, s_stall_done, st))
        st->done = 2;
}

static int s_stall_check(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    return ((stall_t *)arg)->done >= 2 ? -1 : 0;
}

/* The second request goes out on the first one's connection, which has no
 * connect time of its own: a timeout there is Bitbucket not answering, not
 * "could not connect". */
static void test_a_stall_on_a_kept_alive_connection_was_connected(void **state)
{
    (void)state;
    int port;
    int listener = s_listen(&port);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_serve_then_stall, &listener), 0);

    zloop_t *loop = zloop_new();
    stall_t st;
    memset(&st, 0, sizeof st);
    st.http = bb_http_new(loop, 4, 8);
    assert_non_null(st.http);
    snprintf(st.url, sizeof st.url, "http://127.0.0.1:%d/x", port);
    s_stall_start(&st);
    bb_http_run_due(st.http);
    zloop_timer(loop, 10, 0, s_stall_check, &st);
    zloop_timer(loop, 10000, 1, s_give_up, NULL);
    zloop_start(loop);
    bb_http_destroy(&st.http);
    zloop_destroy(&loop);
    pthread_join(thread, NULL);
    close(listener);

    assert_int_equal(st.done, 2);
    assert_int_equal(st.code[0], CURLE_OK);
    assert_int_equal(st.code[1], CURLE_OPERATION_TIMEDOUT);
    assert_true(st.connected[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mapping),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_reused_handles_forget_the_last_request),
        cmocka_unit_test(test_a_stall_on_a_kept_alive_connection_was_connected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
