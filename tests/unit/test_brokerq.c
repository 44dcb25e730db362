/* brokerq: the web's load-balancing queue in front of broker workers. Fake
 * workers run in threads; one of them dies holding a request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "web/brokerq.h"
#include "bus.h"
#include "log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

static char BACKEND[64];
static int s_backend_seq;

typedef struct {
    pthread_t thread;
    char name[32];
    bool die_on_request; /* go silent after taking a request, as kill -9 would */
    atomic_bool stop;
    atomic_bool bye; /* say BYE, then keep answering and heartbeating */
    atomic_int handled;
    atomic_int delay_ms; /* how long each answer takes; 0: 20 ms */
} fake_worker_t;

static void h_who(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    (void)msg;
    fake_worker_t *w = ctx;
    Portico__PingReply out = PORTICO__PING_REPLY__INIT;
    out.instance = w->name;
    int delay = atomic_load(&w->delay_ms);
    usleep((useconds_t)(delay ? delay : 20) * 1000);
    atomic_fetch_add(&w->handled, 1);
    bus_reply_ok(reply, &out.base);
}

static const bus_route_t s_routes[] = {{"who", NULL, h_who, BUS_WEB, 0}, {0}};
static const bus_method_t s_who = {"who", "broker", NULL, &portico__ping_reply__descriptor};

static void s_ctl(zsock_t *s, const char *text)
{
    zmsg_t *m = zmsg_new();
    zmsg_addstr(m, text);
    zmsg_send(&m, s);
}

static void *s_worker(void *arg)
{
    fake_worker_t *w = arg;
    zsock_t *s = zsock_new(ZMQ_DEALER);
    bus_socket_tune(s);
    zsock_connect(s, BACKEND);
    char ready[64];
    snprintf(ready, sizeof ready, "%s %s", BUS_WORKER_READY, w->name);
    s_ctl(s, ready);
    int64_t last = bus_now_ms();
    bool said_bye = false;
    while (!atomic_load(&w->stop)) {
        if (atomic_load(&w->bye) && !said_bye) {
            s_ctl(s, BUS_WORKER_BYE);
            said_bye = true;
        }
        zmq_pollitem_t item = {zsock_resolve(s), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 100) > 0) {
            zmsg_t *m = zmsg_recv(s);
            if (w->die_on_request) {
                zmsg_destroy(&m);
                break; /* silent from now on */
            }
            bus_serve_as(s, &m, s_routes, w, "web");
        }
        if (bus_now_ms() - last >= 1000) {
            s_ctl(s, said_bye ? BUS_WORKER_HEARTBEAT : ready);
            last = bus_now_ms();
        }
    }
    zsock_destroy(&s);
    return NULL;
}

static void s_start(fake_worker_t *w, const char *name, bool die)
{
    memset(w, 0, sizeof *w);
    snprintf(w->name, sizeof w->name, "%s", name);
    w->die_on_request = die;
    pthread_create(&w->thread, NULL, s_worker, w);
}

static void s_stop(fake_worker_t *w)
{
    atomic_store(&w->stop, true);
    pthread_join(w->thread, NULL);
}

/* A queue on a backend endpoint of its own. */
static brokerq_t *s_new_queue(void)
{
    snprintf(BACKEND, sizeof BACKEND, "inproc://test-brokerq-backend-%d", s_backend_seq++);
    return brokerq_new(BACKEND);
}

static void s_wait_workers(brokerq_t *q, int n)
{
    for (int i = 0; i < 100 && brokerq_workers(q) != n; i++)
        usleep(50 * 1000);
    assert_int_equal(brokerq_workers(q), n);
}

static void test_no_worker_fails_fast(void **state)
{
    (void)state;
    brokerq_t *q = s_new_queue();
    assert_non_null(q);
    bus_error_t err;
    int64_t t0 = bus_now_ms();
    assert_int_equal(brokerq_call(q, &s_who, NULL, NULL, 5000, &err), -1);
    assert_int_equal(err.code, PORTICO__ERROR_CODE__UNAVAILABLE);
    assert_true(bus_now_ms() - t0 < 500);
    brokerq_destroy(&q);
}

static void test_spreads_over_workers(void **state)
{
    (void)state;
    brokerq_t *q = s_new_queue();
    fake_worker_t a, b;
    s_start(&a, "alpha", false);
    s_start(&b, "beta", false);
    s_wait_workers(q, 2);
    bus_error_t err;
    for (int i = 0; i < 20; i++)
        assert_int_equal(brokerq_call(q, &s_who, NULL, NULL, 2000, &err), 0);
    /* The idlest worker gets each request: both take a fair share. */
    assert_true(atomic_load(&a.handled) >= 8);
    assert_true(atomic_load(&b.handled) >= 8);
    brokerq_instance_t inst[4];
    assert_int_equal(brokerq_instances(q, inst, 4), 2);
    assert_int_equal(inst[0].handled + inst[1].handled, 20);
    /* A worker that stops its heartbeats is dropped within a few seconds. */
    s_stop(&b);
    s_wait_workers(q, 1);
    assert_int_equal(brokerq_call(q, &s_who, NULL, NULL, 2000, &err), 0);
    s_stop(&a);
    brokerq_destroy(&q);
}

static void test_worker_dies_mid_request(void **state)
{
    (void)state;
    brokerq_t *q = s_new_queue();
    fake_worker_t dying;
    s_start(&dying, "dying", true);
    s_wait_workers(q, 1);
    bus_error_t err;
    int64_t t0 = bus_now_ms();
    assert_int_equal(brokerq_call(q, &s_who, NULL, NULL, 10000, &err), -1);
    int64_t took = bus_now_ms() - t0;
    /* Answered when the heartbeat is missed, well before the deadline. */
    assert_int_equal(err.code, PORTICO__ERROR_CODE__UNAVAILABLE);
    assert_true(took < 5000);
    assert_int_equal(brokerq_workers(q), 0);
    s_stop(&dying);
    brokerq_destroy(&q);
}

static void test_a_worker_saying_bye_gets_no_more_work(void **state)
{
    (void)state;
    brokerq_t *q = s_new_queue();
    fake_worker_t a, b;
    s_start(&a, "alpha", false);
    s_start(&b, "leaving", false);
    s_wait_workers(q, 2);
    atomic_store(&b.bye, true);
    /* Gone from the queue at once, though its heartbeats go on. */
    s_wait_workers(q, 1);
    int before = atomic_load(&b.handled);
    bus_error_t err;
    for (int i = 0; i < 10; i++)
        assert_int_equal(brokerq_call(q, &s_who, NULL, NULL, 2000, &err), 0);
    assert_int_equal(atomic_load(&b.handled), before);
    assert_int_equal(brokerq_workers(q), 1);
    s_stop(&a);
    s_stop(&b);
    brokerq_destroy(&q);
}

/* A queue on a TCP port of its own, kept over a rebind (the workers
 * connect to the same port again), unlike inproc. */
static brokerq_t *s_queue_on_tcp(void)
{
    zsock_t *probe = zsock_new(ZMQ_ROUTER);
    int port = zsock_bind(probe, "tcp://127.0.0.1:*");
    assert_true(port > 0);
    zsock_destroy(&probe);
    snprintf(BACKEND, sizeof BACKEND, "tcp://127.0.0.1:%d", port);
    /* The probe's listener closes in the background. */
    brokerq_t *q = NULL;
    for (int i = 0; i < 100 && !q; i++)
        if (!(q = brokerq_new(BACKEND)))
            usleep(20 * 1000);
    assert_non_null(q);
    return q;
}

typedef struct {
    brokerq_t *q;
    int ok, calls;
} caller_t;

static void *s_caller(void *arg)
{
    caller_t *c = arg;
    bus_error_t err;
    for (int i = 0; i < c->calls; i++)
        c->ok += brokerq_call(c->q, &s_who, NULL, NULL, 8000, &err) == 0;
    return NULL;
}

/* A new key (brokerq_rekey): the workers' port binds again, which ends the
 * workers' connections; calls made meanwhile wait for the worker to come
 * back on the new listener instead of failing. */
static void test_rekey_holds_work_until_workers_return(void **state)
{
    (void)state;
    brokerq_t *q = s_queue_on_tcp();
    fake_worker_t a;
    s_start(&a, "alpha", false);
    s_wait_workers(q, 1);
    caller_t c = {.q = q, .calls = 40};
    pthread_t t;
    pthread_create(&t, NULL, s_caller, &c);
    usleep(200 * 1000);
    brokerq_rekey(q);
    pthread_join(t, NULL);
    assert_int_equal(c.ok, c.calls);
    /* The worker came back on the new listener: one worker, not two. */
    s_wait_workers(q, 1);
    s_stop(&a);
    brokerq_destroy(&q);
}

/* A new key and no worker comes back on it (the operator skipped a step):
 * sign-ins wait a few seconds, then fail as when no broker runs, rather
 * than each waiting out its deadline. */
static void test_rekey_without_workers_fails_after_the_hold(void **state)
{
    (void)state;
    brokerq_t *q = s_queue_on_tcp();
    brokerq_rekey(q);
    bus_error_t err;
    assert_int_equal(brokerq_call(q, &s_who, NULL, NULL, 30000, &err), -1);
    assert_int_equal(err.code, PORTICO__ERROR_CODE__UNAVAILABLE);
    brokerq_destroy(&q);
}

static int s_setup(void **state)
{
    (void)state;
    bus_init();
    log_set_level(LOG_LEVEL_ERROR);
    return 0;
}

/* ---- calls handed over in memory (brokerq_call) ---- */

typedef struct {
    pthread_t thread;
    brokerq_t *q;
    int ok, alpha, beta;
} mem_caller_t;

static void *s_mem_caller(void *arg)
{
    mem_caller_t *c = arg;
    for (int i = 0; i < 10; i++) {
        Portico__PingReply *rep = NULL;
        bus_error_t err;
        if (brokerq_call(c->q, &s_who, NULL, (ProtobufCMessage **)&rep, 5000, &err) == 0 && rep) {
            c->ok++;
            c->alpha += !strcmp(rep->instance, "alpha");
            c->beta += !strcmp(rep->instance, "beta");
        }
        if (rep)
            protobuf_c_message_free_unpacked(&rep->base, NULL);
    }
    return NULL;
}

static void test_calls_in_memory(void **state)
{
    (void)state;
    brokerq_t *q = s_new_queue();
    fake_worker_t a, b;
    s_start(&a, "alpha", false);
    s_start(&b, "beta", false);
    s_wait_workers(q, 2);
    /* Eight threads at once, more than the workers: every caller gets
     * its own answer (the worker's name in it), the work is spread and
     * what waits for a worker is queued, not lost. */
    mem_caller_t callers[8];
    for (int i = 0; i < 8; i++) {
        memset(&callers[i], 0, sizeof callers[i]);
        callers[i].q = q;
        pthread_create(&callers[i].thread, NULL, s_mem_caller, &callers[i]);
    }
    int ok = 0, alpha = 0, beta = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(callers[i].thread, NULL);
        ok += callers[i].ok;
        alpha += callers[i].alpha;
        beta += callers[i].beta;
    }
    assert_int_equal(ok, 80);
    assert_int_equal(alpha + beta, 80);
    assert_int_equal(atomic_load(&a.handled), alpha);
    assert_int_equal(atomic_load(&b.handled), beta);
    assert_true(alpha >= 20 && beta >= 20);
    s_stop(&a);
    s_stop(&b);
    brokerq_destroy(&q);
}

static void test_a_call_that_gave_up_is_forgotten(void **state)
{
    (void)state;
    brokerq_t *q = s_new_queue();
    fake_worker_t w;
    s_start(&w, "slow", false);
    s_wait_workers(q, 1);
    bus_error_t err;
    /* The worker takes 600 ms: a call that gives up after 200 ms (long
     * enough to reach the worker on a loaded machine: one whose deadline
     * has passed on arrival is refused unrun) gets TIMEOUT, and its
     * answer, when it comes, reaches nobody; the next call gets its own. */
    atomic_store(&w.delay_ms, 600);
    assert_int_equal(brokerq_call(q, &s_who, NULL, NULL, 200, &err), -1);
    assert_int_equal(err.code, PORTICO__ERROR_CODE__TIMEOUT);
    for (int i = 0; i < 500 && atomic_load(&w.handled) < 1; i++)
        usleep(10 * 1000);
    assert_int_equal(atomic_load(&w.handled), 1);
    atomic_store(&w.delay_ms, 0);
    Portico__PingReply *rep = NULL;
    assert_int_equal(brokerq_call(q, &s_who, NULL, (ProtobufCMessage **)&rep, 2000, &err), 0);
    assert_string_equal(rep->instance, "slow");
    assert_int_equal(atomic_load(&w.handled), 2);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    s_stop(&w);
    s_wait_workers(q, 0);
    /* A worker that goes silent holding a call: the caller's own deadline
     * ends it; the queue drops the worker when its heartbeat is missed. */
    fake_worker_t dying;
    s_start(&dying, "dying", true);
    s_wait_workers(q, 1);
    assert_int_equal(brokerq_call(q, &s_who, NULL, NULL, 300, &err), -1);
    assert_int_equal(err.code, PORTICO__ERROR_CODE__TIMEOUT);
    s_wait_workers(q, 0);
    assert_int_equal(brokerq_call(q, &s_who, NULL, NULL, 5000, &err), -1);
    assert_int_equal(err.code, PORTICO__ERROR_CODE__UNAVAILABLE);
    s_stop(&dying);
    brokerq_destroy(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_worker_fails_fast),
        cmocka_unit_test(test_spreads_over_workers),
        cmocka_unit_test(test_worker_dies_mid_request),
        cmocka_unit_test(test_a_worker_saying_bye_gets_no_more_work),
        cmocka_unit_test(test_rekey_holds_work_until_workers_return),
        cmocka_unit_test(test_rekey_without_workers_fails_after_the_hold),
        cmocka_unit_test(test_calls_in_memory),
        cmocka_unit_test(test_a_call_that_gave_up_is_forgotten),
    };
    return cmocka_run_group_tests_name("brokerq", tests, s_setup, NULL);
}
