/* bus: a client of several instances sends to each in turn, and a call
 * whose instance vanishes is sent again to another when it may run twice,
 * or answered UNAVAILABLE at once when it may not (never left to hang until
 * its deadline); a call an instance refused because it is stopping (it ran
 * nothing) goes to another instance, whatever the call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bus.h"
#include "free_port.h"
#include "log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    int index;
    bool dies_on_hold; /* a "hold" call makes this instance vanish unanswered */
    bool stopping;     /* a "stop" call is refused: UNAVAILABLE, STOPPING */
    atomic_bool died;
    atomic_bool stop;
    zsock_t *router;
    bus_request_t *held; /* the "hold" call it never answers */
    char endpoint[64];
    pthread_t thread;
} server_t;

static server_t s_servers[2];

static void h_reply_index(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    (void)msg;
    server_t *s = ctx;
    char status[8];
    snprintf(status, sizeof status, "%d", s->index);
    if (!strncmp(req->method, "hold.", 5) && s->dies_on_hold) {
        atomic_store(&s->died, true);
        s->held = req;
        bus_reply_defer(reply); /* never answered: the server goes away */
        return;
    }
    if (!strncmp(req->method, "stop.", 5) && s->stopping) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__UNAVAILABLE, DETAIL(STOPPING), "stopping");
        return;
    }
    Portico__PingReply out = PORTICO__PING_REPLY__INIT;
    out.status = status;
    bus_reply_ok(reply, &out.base);
}

static const bus_route_t s_routes[] = {
    {"who.get", NULL, h_reply_index, BUS_WEB, 0},
    {"hold.get", NULL, h_reply_index, BUS_WEB, 0},
    {"hold.do", NULL, h_reply_index, BUS_WEB, 0},
    {"stop.do", NULL, h_reply_index, BUS_WEB, 0},
    {0},
};

static void *s_serve(void *arg)
{
    server_t *s = arg;
    while (!atomic_load(&s->stop) && !atomic_load(&s->died)) {
        zmq_pollitem_t item = {zsock_resolve(s->router), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 50) > 0) {
            zmsg_t *m = zmsg_recv(s->router);
            if (m)
                bus_serve_as(s->router, &m, s_routes, s, "web");
        }
    }
    zsock_destroy(&s->router); /* closes its connections: the instance vanishes */
    return NULL;
}

static int s_setup(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        server_t *s = &s_servers[i];
        memset(s, 0, sizeof *s);
        s->index = i;
        s->dies_on_hold = i == 0;
        s->router = zsock_new(ZMQ_ROUTER);
        bus_socket_tune(s->router);
        int port = zsock_bind(s->router, "tcp://127.0.0.1:*");
        assert_true(port > 0);
        snprintf(s->endpoint, sizeof s->endpoint, "tcp://127.0.0.1:%d", port);
        pthread_create(&s->thread, NULL, s_serve, s);
    }
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        atomic_store(&s_servers[i].stop, true);
        pthread_join(s_servers[i].thread, NULL);
        bus_request_destroy(&s_servers[i].held);
    }
    return 0;
}

static bus_client_t *s_client(void)
{
    char list[160];
    snprintf(list, sizeof list, "%s, %s", s_servers[0].endpoint, s_servers[1].endpoint);
    bus_client_t *c = bus_client_new(list, "test");
    assert_non_null(c);
    assert_int_equal(bus_client_instances(c), 2);
    return c;
}

/* Call method; the answering instance's index, or -1 with err set. */
static int s_call(bus_client_t *c, const char *method, bus_error_t *err)
{
    Portico__PingReply *rep = NULL;
    if (bus_call(c, method, NULL, &portico__ping_reply__descriptor, (ProtobufCMessage **)&rep, 10000, err) < 0)
        return -1;
    int index = rep->status[0] - '0';
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    return index;
}

static void test_calls_reach_every_instance(void **state)
{
    (void)state;
    bus_client_t *c = s_client();
    bool seen[2] = {false, false};
    bus_error_t err;
    /* Connections complete in their own time; in turn once they have. */
    for (int i = 0; i < 200 && !(seen[0] && seen[1]); i++) {
        int who = s_call(c, "who.get", &err);
        assert_true(who == 0 || who == 1);
        seen[who] = true;
    }
    assert_true(seen[0] && seen[1]);
    bus_client_destroy(&c);
}

static void s_until_both_answered(bus_client_t *c)
{
    bool seen[2] = {false, false};
    bus_error_t err;
    for (int i = 0; i < 200 && !(seen[0] && seen[1]); i++) {
        int who = s_call(c, "who.get", &err);
        if (who >= 0)
            seen[who] = true;
    }
    assert_true(seen[0] && seen[1]);
}

static void test_a_repeatable_call_moves_to_another_instance(void **state)
{
    (void)state;
    assert_true(bus_method_repeatable("hold.get"));
    bus_client_t *c = s_client();
    s_until_both_answered(c);
    /* Instance 0 vanishes holding the call: instance 1 answers it. */
    for (int i = 0; i < 4 && !atomic_load(&s_servers[0].died); i++) {
        bus_error_t err = {0};
        assert_int_equal(s_call(c, "hold.get", &err), 1);
    }
    assert_true(atomic_load(&s_servers[0].died));
    bus_client_destroy(&c);
}

static void test_another_call_is_unavailable_at_once(void **state)
{
    (void)state;
    assert_false(bus_method_repeatable("hold.do"));
    bus_client_t *c = s_client();
    s_until_both_answered(c);
    bus_error_t err = {0};
    int who = 1;
    for (int i = 0; i < 4 && who == 1; i++)
        who = s_call(c, "hold.do", &err);
    assert_true(atomic_load(&s_servers[0].died));
    assert_int_equal(who, -1);
    /* Not a timeout: the call did not wait for its deadline. */
    assert_int_equal(err.code, PORTICO__ERROR_CODE__UNAVAILABLE);
    assert_non_null(strstr(err.message, "went away"));
    /* The instance left answers the next call. */
    assert_int_equal(s_call(c, "hold.do", &err), 1);
    bus_client_destroy(&c);
}

static void test_a_call_refused_by_a_stopping_instance_goes_to_another(void **state)
{
    (void)state;
    assert_false(bus_method_repeatable("stop.do"));
    s_servers[0].stopping = true;
    bus_client_t *c = s_client();
    s_until_both_answered(c);
    /* Whichever instance is asked first, instance 1 answers every time. */
    for (int i = 0; i < 6; i++) {
        bus_error_t err = {0};
        assert_int_equal(s_call(c, "stop.do", &err), 1);
    }
    /* With only the stopping one left, its answer stands. */
    s_servers[1].stopping = true;
    bus_error_t err = {0};
    assert_int_equal(s_call(c, "stop.do", &err), -1);
    assert_int_equal(err.code, PORTICO__ERROR_CODE__UNAVAILABLE);
    assert_int_equal(err.detail, DETAIL(STOPPING));
    bus_client_destroy(&c);
}

static int64_t s_timed_call(bus_client_t *c, int *who, bus_error_t *err)
{
    int64_t t0 = bus_now_ms();
    *who = s_call(c, "who.get", err);
    return bus_now_ms() - t0;
}

/* A service this process never reached is down: a call waits for a
 * connection that may be under way, not for its whole deadline (10 s). */
static void test_a_service_that_is_down_fails_soon(void **state)
{
    (void)state;
    /* A port nobody listens on, and "registry": a name no other test here
     * calls. Not a ZeroMQ socket's port, closed at once: its listener
     * closes later, in its I/O thread, and on a busy machine the client
     * connected to it, saw it vanish, and failed at once. */
    int port = test_free_port();
    assert_true(port > 0);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    bus_client_t *c = bus_client_new(endpoint, "registry");
    assert_non_null(c);
    int who;
    bus_error_t err = {0};
    int64_t ms = s_timed_call(c, &who, &err);
    assert_int_equal(who, -1);
    assert_int_equal(err.code, PORTICO__ERROR_CODE__UNAVAILABLE);
    assert_non_null(strstr(err.message, "not reachable"));
    assert_true(ms >= 1000);
    assert_true(ms < 5000);
    /* Down for a while, it still fails as soon. */
    ms = s_timed_call(c, &who, &err);
    assert_int_equal(who, -1);
    assert_true(ms < 5000);
    bus_client_destroy(&c);
}

/* bus.c's short wait for a service that is down. */
#define CONNECT_WAIT_MS 1500

/* Bring server 0 back on its port after a pause. */
static void *s_revive(void *arg)
{
    server_t *s = arg;
    zclock_sleep(2500);
    s->router = zsock_new(ZMQ_ROUTER);
    bus_socket_tune(s->router);
    assert_true(zsock_bind(s->router, "%s", s->endpoint) >= 0);
    return s_serve(s);
}

/* An instance connected a moment ago is likely being restarted: a call
 * then waits for it, past the short wait of a service that is down. */
static void test_a_call_waits_through_a_restart(void **state)
{
    (void)state;
    bus_client_t *c = bus_client_new(s_servers[0].endpoint, "broker");
    assert_non_null(c);
    int who = -1;
    bus_error_t err = {0};
    for (int i = 0; i < 200 && who != 0; i++)
        who = s_call(c, "who.get", &err);
    assert_int_equal(who, 0);
    atomic_store(&s_servers[0].stop, true);
    pthread_join(s_servers[0].thread, NULL);
    s_servers[0].stop = false;
    pthread_create(&s_servers[0].thread, NULL, s_revive, &s_servers[0]);
    /* Once the client has seen its connection go (a call sent before that
     * fails: test_another_call_is_unavailable_at_once). */
    zclock_sleep(500);
    int64_t ms = s_timed_call(c, &who, &err);
    if (who != 0)
        print_error("after %lld ms: %s\n", (long long)ms, err.message);
    assert_int_equal(who, 0);
    assert_true(ms >= CONNECT_WAIT_MS);
    bus_client_destroy(&c);
}

int main(void)
{
    bus_init();
    log_set_level(LOG_LEVEL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_calls_reach_every_instance, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_a_repeatable_call_moves_to_another_instance, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_another_call_is_unavailable_at_once, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_a_call_refused_by_a_stopping_instance_goes_to_another, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_a_service_that_is_down_fails_soon, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_a_call_waits_through_a_restart, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("bus_instances", tests, NULL, NULL);
}
