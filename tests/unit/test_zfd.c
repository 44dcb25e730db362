/* zfd: waiting on sockets through their ZMQ_FD wakes on a message that
 * arrives from another thread, says which socket signalled, and comes back
 * when its time is up; and the rule its callers follow holds: a message
 * whose signal something else took waits with the descriptor silent.
 *
 * A wait that should end but would not is ended by an alarm (the test
 * fails), not by a time limit the test asserts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bus.h"
#include "zfd.h"

#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

/* Far longer than any of these waits takes: only a wait that never ends
 * reaches it, and the alarm then ends the test as a failure. */
#define HANG_GUARD_S 20

typedef struct {
    zsock_t *in;  /* the end a test waits on */
    zsock_t *out; /* the end that sends to it */
} pair_t;

static void s_pair_new(pair_t *p, const char *endpoint)
{
    p->in = zsock_new(ZMQ_PAIR);
    p->out = zsock_new(ZMQ_PAIR);
    assert_non_null(p->in);
    assert_non_null(p->out);
    assert_int_equal(zsock_bind(p->in, "%s", endpoint), 0);
    assert_int_equal(zsock_connect(p->out, "%s", endpoint), 0);
}

static void s_pair_destroy(pair_t *p)
{
    zsock_destroy(&p->in);
    zsock_destroy(&p->out);
}

static void s_expect(zsock_t *sock, const char *text)
{
    char *got = zstr_recv(sock);
    assert_non_null(got);
    assert_string_equal(got, text);
    zstr_free(&got);
}

/* Two messages wait; asking ZMQ_EVENTS takes the descriptor's signal, and
 * receiving the first leaves the second there with the descriptor silent:
 * which is why a caller asks ZMQ_EVENTS of a socket it used before it
 * waits on it. */
static void test_a_message_whose_signal_was_taken(void **state)
{
    (void)state;
    pair_t p;
    s_pair_new(&p, "inproc://zfd-taken");
    zstr_send(p.out, "one");
    zstr_send(p.out, "two");
    assert_true(zsock_events(p.in) & ZMQ_POLLIN);
    s_expect(p.in, "one");
    zsock_t *socks[] = {p.in};
    bool woke[1] = {true};
    assert_int_equal(zfd_wait(socks, 1, woke, 0), 0);
    assert_false(woke[0]);
    assert_true(zsock_events(p.in) & ZMQ_POLLIN);
    s_expect(p.in, "two");
    s_pair_destroy(&p);
}

static void *s_send_later(void *arg)
{
    usleep(50 * 1000);
    zstr_send(arg, "later");
    return NULL;
}

static void test_a_message_from_another_thread(void **state)
{
    (void)state;
    pair_t p;
    s_pair_new(&p, "inproc://zfd-thread");
    /* Asked once: the next message signals. */
    assert_int_equal(zsock_events(p.in) & ZMQ_POLLIN, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s_send_later, p.out), 0);
    zsock_t *socks[] = {p.in};
    bool woke[1] = {false};
    alarm(HANG_GUARD_S);
    int rc = zfd_wait(socks, 1, woke, -1);
    alarm(0);
    pthread_join(t, NULL);
    assert_int_equal(rc, 1);
    assert_true(woke[0]);
    assert_true(zsock_events(p.in) & ZMQ_POLLIN);
    s_expect(p.in, "later");
    s_pair_destroy(&p);
}

/* Nothing comes: the wait ends when its time is up. */
static void test_nothing_comes(void **state)
{
    (void)state;
    pair_t p;
    s_pair_new(&p, "inproc://zfd-nothing");
    assert_int_equal(zsock_events(p.in), ZMQ_POLLOUT);
    zsock_t *socks[] = {p.in};
    bool woke[1] = {true};
    assert_int_equal(zfd_wait(socks, 1, woke, 30), 0);
    assert_false(woke[0]);
    s_pair_destroy(&p);
}

static void test_which_socket_signalled(void **state)
{
    (void)state;
    pair_t a, b;
    s_pair_new(&a, "inproc://zfd-a");
    s_pair_new(&b, "inproc://zfd-b");
    /* Asked once, each signals on the next message. */
    assert_int_equal(zsock_events(a.in) & ZMQ_POLLIN, 0);
    assert_int_equal(zsock_events(b.in) & ZMQ_POLLIN, 0);
    zstr_send(b.out, "for b");
    zsock_t *socks[] = {a.in, b.in};
    bool woke[2] = {true, false};
    alarm(HANG_GUARD_S);
    assert_int_equal(zfd_wait(socks, 2, woke, -1), 1);
    alarm(0);
    assert_false(woke[0]);
    assert_true(woke[1]);
    assert_true(zsock_events(b.in) & ZMQ_POLLIN);
    s_expect(b.in, "for b");
    s_pair_destroy(&a);
    s_pair_destroy(&b);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    zsock_t *none[1] = {NULL};
    assert_int_equal(zfd_wait(none, -1, NULL, 0), -1);
    assert_int_equal(zfd_wait(none, 100000, NULL, 0), -1);
    /* No socket at all: a plain sleep. */
    assert_int_equal(zfd_wait(none, 0, NULL, 1), 0);
}

int main(void)
{
    bus_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_message_whose_signal_was_taken),
        cmocka_unit_test(test_a_message_from_another_thread),
        cmocka_unit_test(test_nothing_comes),
        cmocka_unit_test(test_which_socket_signalled),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests_name("zfd", tests, NULL, NULL);
}
