/* handoff: items come out in the order they went in, a full queue refuses,
 * a polling taker's descriptor fires on a put while it is armed and at no
 * other, a close frees blocked takers, and under many threads putting and
 * taking at once every item arrives exactly once and no wake-up is lost.
 *
 * A wait that should end but would not is ended by an alarm (the test
 * fails), not by a time limit the test asserts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "handoff.h"

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

/* Far longer than any of these waits takes: only a wait that never ends
 * reaches it, and the alarm then ends the test as a failure. */
#define HANG_GUARD_S 30

#define PRODUCERS 4
#define TAKERS 3
#define PER_PRODUCER 20000

static bool s_readable(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1;
}

static void test_order_and_bound(void **state)
{
    (void)state;
    int v[4] = {0, 1, 2, 3};
    assert_null(handoff_new(0));
    handoff_t *q = handoff_new(3);
    assert_non_null(q);
    for (int i = 0; i < 3; i++)
        assert_int_equal(handoff_put(q, &v[i]), 0);
    assert_int_equal(handoff_put(q, &v[3]), -1);
    assert_int_equal(handoff_count(q), 3);
    void *got[4];
    assert_int_equal(handoff_take_some(q, got, 2), 2);
    assert_ptr_equal(got[0], &v[0]);
    assert_ptr_equal(got[1], &v[1]);
    /* The ring wraps around. */
    assert_int_equal(handoff_put(q, &v[3]), 0);
    assert_ptr_equal(handoff_take(q, 0), &v[2]);
    assert_ptr_equal(handoff_take(q, -1), &v[3]);
    /* Empty: a take with a limit comes back with nothing. */
    assert_null(handoff_take(q, 10));
    assert_int_equal(handoff_take_some(q, got, 4), 0);
    handoff_destroy(&q, NULL);
    assert_null(q);
    handoff_destroy(&q, NULL);
}

static void test_fd_fires_only_when_armed(void **state)
{
    (void)state;
    int v = 7;
    void *got[2];
    handoff_t *q = handoff_new(4);
    int fd = handoff_fd(q);
    assert_true(fd >= 0);
    /* Not armed: a put costs no wake. */
    assert_int_equal(handoff_put(q, &v), 0);
    assert_false(s_readable(fd));
    /* Something waits: arming refuses, the taker takes instead. */
    assert_false(handoff_arm(q));
    assert_int_equal(handoff_take_some(q, got, 2), 1);
    /* Armed on an empty queue: the next put fires, once. */
    assert_true(handoff_arm(q));
    assert_false(s_readable(fd));
    assert_int_equal(handoff_put(q, &v), 0);
    assert_true(s_readable(fd));
    handoff_clear_fd(q);
    assert_false(s_readable(fd));
    assert_int_equal(handoff_put(q, &v), 0);
    assert_false(s_readable(fd));
    /* Taking disarms: a put after it does not fire. */
    assert_true(handoff_take_some(q, got, 2) == 2);
    assert_true(handoff_arm(q));
    assert_int_equal(handoff_take_some(q, got, 2), 0);
    assert_int_equal(handoff_put(q, &v), 0);
    assert_false(s_readable(fd));
    /* Clearing a quiet descriptor is harmless. */
    handoff_clear_fd(q);
    handoff_destroy(&q, NULL);
}

static void *s_blocked_taker(void *arg)
{
    return handoff_take(arg, -1);
}

static void test_close_frees_takers(void **state)
{
    (void)state;
    int v = 1;
    handoff_t *q = handoff_new(2);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s_blocked_taker, q), 0);
    handoff_close(q);
    void *got = &v;
    alarm(HANG_GUARD_S);
    assert_int_equal(pthread_join(t, &got), 0);
    alarm(0);
    assert_null(got);
    /* Closed: no more puts, and takes return at once. */
    assert_int_equal(handoff_put(q, &v), -1);
    assert_null(handoff_take(q, -1));
    handoff_destroy(&q, NULL);
}

static int s_dropped;

static void s_drop(void *item)
{
    (void)item;
    s_dropped++;
}

static void test_destroy_drops_what_is_left(void **state)
{
    (void)state;
    int v[3];
    handoff_t *q = handoff_new(3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(handoff_put(q, &v[i]), 0);
    void *got;
    assert_int_equal(handoff_take_some(q, &got, 1), 1);
    s_dropped = 0;
    handoff_destroy(&q, s_drop);
    assert_int_equal(s_dropped, 2);
}

/* The registry's shape: producers put requests, blocked takers answer
 * each on a second queue, one polling thread collects the answers. */
typedef struct {
    handoff_t *requests, *replies;
    int id;
} side_t;

static void *s_producer(void *arg)
{
    side_t *s = arg;
    for (intptr_t i = 0; i < PER_PRODUCER; i++) {
        void *item = (void *)(intptr_t)(1 + s->id * PER_PRODUCER + i);
        while (handoff_put(s->requests, item) < 0)
            sched_yield();
    }
    return NULL;
}

static void *s_taker(void *arg)
{
    side_t *s = arg;
    void *item;
    while ((item = handoff_take(s->requests, -1)) != NULL) {
        while (handoff_put(s->replies, item) < 0)
            sched_yield();
    }
    return NULL;
}

static void test_every_item_once_under_load(void **state)
{
    (void)state;
    enum { TOTAL = PRODUCERS * PER_PRODUCER };
    side_t s = {handoff_new(64), handoff_new(64), 0};
    side_t ps[PRODUCERS];
    pthread_t producers[PRODUCERS], takers[TAKERS];
    for (int i = 0; i < TAKERS; i++)
        assert_int_equal(pthread_create(&takers[i], NULL, s_taker, &s), 0);
    for (int i = 0; i < PRODUCERS; i++) {
        ps[i] = s;
        ps[i].id = i;
        assert_int_equal(pthread_create(&producers[i], NULL, s_producer, &ps[i]), 0);
    }
    unsigned char *seen = calloc(TOTAL + 1, 1);
    assert_non_null(seen);
    int got = 0, dup = 0;
    struct pollfd p = {handoff_fd(s.replies), POLLIN, 0};
    alarm(HANG_GUARD_S);
    while (got < TOTAL) {
        void *items[32];
        int n = handoff_take_some(s.replies, items, 32);
        for (int i = 0; i < n; i++) {
            intptr_t k = (intptr_t)items[i];
            assert_true(k >= 1 && k <= TOTAL);
            dup += seen[k]++ > 0;
        }
        got += n;
        /* Wait with no limit: a lost wake-up hangs here until the alarm. */
        if (n == 0 && handoff_arm(s.replies)) {
            assert_int_equal(poll(&p, 1, -1), 1);
            handoff_clear_fd(s.replies);
        }
    }
    alarm(0);
    assert_int_equal(dup, 0);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(producers[i], NULL);
    handoff_close(s.requests);
    for (int i = 0; i < TAKERS; i++)
        pthread_join(takers[i], NULL);
    assert_int_equal(handoff_count(s.requests), 0);
    assert_int_equal(handoff_count(s.replies), 0);
    free(seen);
    handoff_destroy(&s.requests, NULL);
    handoff_destroy(&s.replies, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_bound),
        cmocka_unit_test(test_fd_fires_only_when_armed),
        cmocka_unit_test(test_close_frees_takers),
        cmocka_unit_test(test_destroy_drops_what_is_left),
        cmocka_unit_test(test_every_item_once_under_load),
    };
    return cmocka_run_group_tests_name("handoff", tests, NULL, NULL);
}
