/* gate: what it does with an answer it cannot follow (framing.h): the
 * connection ends after the answers due, instead of passing the client's
 * next requests to a civetweb thread it would hold for as long as the
 * client went on. A plain socket stands in for civetweb. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "free_port.h"
#include "gate.h"
#include "log.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

typedef struct {
    int lfd;
    atomic_int requests; /* request heads read */
    atomic_bool eof;     /* the gate ended its side */
} backend_t;

/* One connection: each request is answered without a length (as an
 * answer with a Transfer-Encoding or a head over 8 KiB would be to the
 * gate), and the connection is kept until the gate ends it. */
static void *s_backend(void *arg)
{
    backend_t *b = arg;
    int fd = accept(b->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    char buf[4096];
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0)
            break;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            atomic_store(&b->eof, true);
            break;
        }
        for (ssize_t i = 0; i + 3 < n; i++)
            if (!memcmp(buf + i, "\r\n\r\n", 4))
                atomic_fetch_add(&b->requests, 1);
        static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nno length";
        (void)!send(fd, answer, sizeof answer - 1, MSG_NOSIGNAL);
    }
    close(fd);
    return NULL;
}

static int s_connect(int port)
{
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void test_an_answer_it_cannot_follow_ends_the_connection(void **state)
{
    (void)state;
    backend_t b = {.lfd = socket(AF_INET, SOCK_STREAM, 0)};
    int bport = test_free_port(), gport = test_free_port();
    assert_true(bport > 0 && gport > 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)bport), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(b.lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(b.lfd, 4), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_backend, &b), 0);

    char listen_addr[32];
    snprintf(listen_addr, sizeof listen_addr, "127.0.0.1:%d", gport);
    gate_config_t cfg = {.listen_addr = listen_addr,
                         .backend_port = bport,
                         .header_timeout_ms = 5000,
                         .keep_alive_ms = 5000,
                         .max_per_client = 8,
                         .max_total = 8,
                         .listener = "test"};
    gate_t *gate = gate_new(&cfg);
    assert_non_null(gate);

    int fd = s_connect(gport);
    assert_true(fd >= 0);
    static const char req[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(send(fd, req, sizeof req - 1, 0), (ssize_t)(sizeof req - 1));
    char buf[512] = "";
    size_t got = 0;
    while (!strstr(buf, "no length")) {
        struct pollfd p = {fd, POLLIN, 0};
        assert_true(poll(&p, 1, 5000) > 0);
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        assert_true(n > 0);
        got += (size_t)n;
        buf[got] = '\0';
    }
    /* The client goes on; civetweb's side is ended, not sent more. */
    (void)!send(fd, req, sizeof req - 1, MSG_NOSIGNAL);
    for (int i = 0; i < 40 && !atomic_load(&b.eof); i++)
        usleep(50 * 1000);
    assert_true(atomic_load(&b.eof));
    assert_int_equal(atomic_load(&b.requests), 1);
    /* And then the client's. */
    struct pollfd p = {fd, POLLIN, 0};
    assert_true(poll(&p, 1, 5000) > 0);
    assert_true(recv(fd, buf, sizeof buf, 0) <= 0);

    close(fd);
    pthread_join(th, NULL);
    close(b.lfd);
    gate_destroy(&gate);
}

int main(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_an_answer_it_cannot_follow_ends_the_connection),
    };
    return cmocka_run_group_tests_name("gate", tests, NULL, NULL);
}
