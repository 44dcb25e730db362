/* bus: round trip, deadlines, malformed and unknown messages, a peer that is
 * not there, and a late reply that must not be taken for a newer call's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bus.h"
#include "log.h"
#include "netaddr.h"

#include "free_port.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define ENDPOINT "inproc://test-bus"

static atomic_bool s_stop;
static pthread_t s_thread;

static void h_echo(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)ctx;
    const Portico__PingReply *in = (const Portico__PingReply *)msg;
    Portico__PingReply out = PORTICO__PING_REPLY__INIT;
    out.service = (char *)(uintptr_t)req->method;
    out.status = in->status;
    out.ready = true;
    bus_reply_ok(reply, &out.base);
}

/* Long enough past the callers' deadlines that a call which waited for
 * the answer shows, even on a loaded machine running sanitizers. */
#define SLOW_MS 1500

static void h_slow(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)ctx;
    (void)req;
    (void)msg;
    usleep(SLOW_MS * 1000);
    bus_reply_ok(reply, NULL);
}

static void h_fail(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)ctx;
    (void)req;
    (void)msg;
    bus_error_set(&reply->err, PORTICO__ERROR_CODE__CONFLICT, DETAIL(DUPLICATE), "already there: %s", "x");
}

static const bus_route_t s_routes[] = {
    {"echo", &portico__ping_reply__descriptor, h_echo, BUS_WEB, 0},
    {"slow", NULL, h_slow, BUS_WEB, 0},
    {"fail", NULL, h_fail, BUS_WEB, 0},
    {"broker_only", NULL, h_fail, BUS_BROKER, 0},
    {0},
};

static void *s_server(void *arg)
{
    zsock_t *router = arg;
    while (!atomic_load(&s_stop)) {
        zmq_pollitem_t item = {zsock_resolve(router), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 50) > 0) {
            zmsg_t *m = zmsg_recv(router);
            if (m)
                bus_serve_as(router, &m, s_routes, NULL, "web");
        }
    }
    zsock_destroy(&router);
    return NULL;
}

static int s_setup(void **state)
{
    (void)state;
    bus_init();
    log_set_level(LOG_LEVEL_ERROR);
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    bus_socket_tune(router);
    assert_int_equal(zsock_bind(router, ENDPOINT), 0);
    atomic_store(&s_stop, false);
    pthread_create(&s_thread, NULL, s_server, router);
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    atomic_store(&s_stop, true);
    pthread_join(s_thread, NULL);
    return 0;
}

static void test_round_trip(void **state)
{
    (void)state;
    bus_client_t *c = bus_client_new(ENDPOINT, "test");
    Portico__PingReply req = PORTICO__PING_REPLY__INIT;
    req.status = "hello";
    Portico__PingReply *rep = NULL;
    bus_error_t err;
    assert_int_equal(
        bus_call(c, "echo", &req.base, &portico__ping_reply__descriptor, (ProtobufCMessage **)&rep, 2000, &err), 0);
    assert_string_equal(rep->status, "hello");
    assert_string_equal(rep->service, "echo");
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    /* A typed error comes back with its detail. */
    assert_int_equal(bus_call(c, "fail", NULL, NULL, NULL, 2000, &err), -1);
    assert_int_equal(err.code, PORTICO__ERROR_CODE__CONFLICT);
    assert_int_equal(err.detail, DETAIL(DUPLICATE));
    assert_string_equal(err.message, "already there: x");
    /* A method this caller (the web) is not declared for: refused, no body. */
    assert_int_equal(bus_call(c, "broker_only", NULL, NULL, NULL, 2000, &err), -1);
    assert_int_equal(err.code, PORTICO__ERROR_CODE__FORBIDDEN);
    assert_int_equal(err.detail, DETAIL(CALLER));
    /* ping is built in. */
    assert_int_equal(bus_call(c, "ping", NULL, &portico__ping_reply__descriptor, (ProtobufCMessage **)&rep, 2000, &err),
                     0);
    assert_true(rep->ready);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    bus_client_destroy(&c);
    assert_null(c);
}

static void test_deadline_and_late_reply(void **state)
{
    (void)state;
    bus_client_t *c = bus_client_new(ENDPOINT, "test");
    bus_error_t err;
    int64_t t0 = bus_now_ms();
    assert_int_equal(bus_call(c, "slow", NULL, NULL, NULL, 100, &err), -1);
    int64_t took = bus_now_ms() - t0;
    assert_int_equal(err.code, PORTICO__ERROR_CODE__TIMEOUT);
    assert_true(took >= 90 && took < SLOW_MS - 500);
    /* The slow reply arrives later and must be skipped for this call's. */
    Portico__PingReply req = PORTICO__PING_REPLY__INIT;
    req.status = "second";
    Portico__PingReply *rep = NULL;
    assert_int_equal(bus_call(c, "echo", &req.base, &portico__ping_reply__descriptor, (ProtobufCMessage **)&rep,
                              SLOW_MS + 3000, &err),
                     0);
    assert_string_equal(rep->status, "second");
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    bus_client_destroy(&c);
}

static Portico__Reply *s_raw_call(zsock_t *dealer, const void *data, size_t len)
{
    zmq_send(zsock_resolve(dealer), data, len, 0);
    zmq_pollitem_t item = {zsock_resolve(dealer), 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, 2000) <= 0)
        return NULL;
    zmsg_t *m = zmsg_recv(dealer);
    zframe_t *f = zmsg_last(m);
    Portico__Reply *r = portico__reply__unpack(NULL, zframe_size(f), zframe_data(f));
    zmsg_destroy(&m);
    return r;
}

static void test_malformed_and_unknown(void **state)
{
    (void)state;
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    bus_socket_tune(dealer);
    zsock_connect(dealer, ENDPOINT);
    /* Garbage that is not a protobuf envelope. */
    Portico__Reply *r = s_raw_call(dealer, "\xff\xff\xff\xff garbage", 13);
    assert_non_null(r);
    assert_int_equal(r->code, PORTICO__ERROR_CODE__BAD_REQUEST);
    portico__reply__free_unpacked(r, NULL);
    /* A valid envelope with an unknown method. */
    Portico__Request env = PORTICO__REQUEST__INIT;
    env.call_id = 77;
    env.method = "no.such.method";
    env.deadline_ms = bus_now_ms() + 2000;
    uint8_t buf[256];
    size_t n = portico__request__pack(&env, buf);
    r = s_raw_call(dealer, buf, n);
    assert_non_null(r);
    assert_int_equal(r->call_id, 77);
    assert_int_equal(r->code, PORTICO__ERROR_CODE__UNKNOWN_METHOD);
    portico__reply__free_unpacked(r, NULL);
    /* A known method whose body does not decode. */
    env.method = "echo";
    env.body.data = (uint8_t *)"\x0a\xff\xff";
    env.body.len = 3;
    n = portico__request__pack(&env, buf);
    r = s_raw_call(dealer, buf, n);
    assert_non_null(r);
    assert_int_equal(r->code, PORTICO__ERROR_CODE__BAD_REQUEST);
    portico__reply__free_unpacked(r, NULL);
    /* An envelope already past its deadline is not run. */
    env.body.len = 0;
    env.method = "slow";
    env.deadline_ms = bus_now_ms() - 1;
    n = portico__request__pack(&env, buf);
    int64_t t0 = bus_now_ms();
    r = s_raw_call(dealer, buf, n);
    assert_non_null(r);
    assert_int_equal(r->code, PORTICO__ERROR_CODE__TIMEOUT);
    assert_true(bus_now_ms() - t0 < SLOW_MS - 500);
    portico__reply__free_unpacked(r, NULL);
    zsock_destroy(&dealer);
    /* And the server still serves. */
    bus_client_t *c = bus_client_new(ENDPOINT, "test");
    bus_error_t err;
    assert_int_equal(bus_call(c, "ping", NULL, NULL, NULL, 2000, &err), 0);
    bus_client_destroy(&c);
}

static void test_peer_absent(void **state)
{
    (void)state;
    bus_client_t *c = bus_client_new("tcp://127.0.0.1:1", "nobody");
    bus_error_t err;
    int64_t t0 = bus_now_ms();
    assert_int_equal(bus_call(c, "ping", NULL, NULL, NULL, 300, &err), -1);
    assert_int_equal(err.code, PORTICO__ERROR_CODE__UNAVAILABLE);
    assert_true(bus_now_ms() - t0 < 1000);
    assert_non_null(strstr(err.message, "nobody"));
    bus_client_destroy(&c);
}

/* The server of a call made before it listens: it starts a moment later,
 * binds the port the client is already trying, and answers one call. */
typedef struct {
    char endpoint[64];
    zsock_t *router;
} late_server_t;

static void *s_late_server(void *arg)
{
    late_server_t *late = arg;
    usleep(300 * 1000);
    late->router = zsock_new(ZMQ_ROUTER);
    bus_socket_tune(late->router);
    zsock_set_rcvtimeo(late->router, 10000);
    if (zsock_bind(late->router, "%s", late->endpoint) < 0)
        return NULL;
    zmsg_t *m = zmsg_recv(late->router);
    if (m)
        bus_serve_as(late->router, &m, s_routes, NULL, "web");
    return NULL;
}

/* A call waits, until its deadline, for an instance to connect. */
static void test_a_call_waits_for_its_server(void **state)
{
    (void)state;
    late_server_t late = {0};
    /* Not from a ZeroMQ socket closed at once: its listener lingers, and
     * on a busy machine the client connected to it and saw it vanish. */
    int port = test_free_port();
    assert_true(port > 0);
    snprintf(late.endpoint, sizeof late.endpoint, "tcp://127.0.0.1:%d", port);
    bus_client_t *c = bus_client_new(late.endpoint, "test");
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s_late_server, &late), 0);
    Portico__PingReply req = PORTICO__PING_REPLY__INIT;
    req.status = "waited";
    Portico__PingReply *rep = NULL;
    bus_error_t err;
    int rc = bus_call(c, "echo", &req.base, &portico__ping_reply__descriptor, (ProtobufCMessage **)&rep, 8000, &err);
    pthread_join(t, NULL);
    if (rc != 0)
        fprintf(stderr, "bus_call: %s\n", err.message);
    assert_int_equal(rc, 0);
    assert_string_equal(rep->status, "waited");
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    bus_client_destroy(&c);
    zsock_destroy(&late.router);
}

/* A bind host that is a name binds the machine's own address it names, and
 * only that one; a name of no address here is refused. */
static void test_bind_host(void **state)
{
    (void)state;
    zsock_t *s = zsock_new(ZMQ_ROUTER);
    assert_int_equal(bus_bind(s, "tcp://localhost:*"), 0);
    char *last = zsock_last_endpoint(s);
    assert_true(!strncmp(last, "tcp://127.0.0.1:", 16) || !strncmp(last, "tcp://[::1]:", 12));
    zstr_free(&last);
    zsock_destroy(&s);
    s = zsock_new(ZMQ_ROUTER);
    bus_set_bind_wait(0);
    assert_int_equal(bus_bind(s, "tcp://no-such-host.invalid:*"), -1);
    assert_int_equal(bus_bind(s, "tcp://127.0.0.1:*"), 0);
    zsock_destroy(&s);
    char addr[64];
    assert_int_equal(netaddr_own_address("127.0.0.1", addr, sizeof addr), 0);
    assert_string_equal(addr, "127.0.0.1");
    assert_int_equal(netaddr_own_address("192.0.2.1", addr, sizeof addr), -1);
    /* A range (a network with a fixed subnet): this machine's address in
     * it, found without asking any DNS. */
    s = zsock_new(ZMQ_ROUTER);
    assert_int_equal(bus_bind(s, "tcp://127.0.0.0/8:*"), 0);
    char *bound = zsock_last_endpoint(s);
    assert_true(!strncmp(bound, "tcp://127.0.0.1:", 16));
    zstr_free(&bound);
    assert_int_equal(bus_bind(s, "tcp://198.51.100.0/24:*"), -1);
    zsock_destroy(&s);
    assert_int_equal(netaddr_own_address("127.0.0.0/8", addr, sizeof addr), 0);
    assert_string_equal(addr, "127.0.0.1");
    assert_int_equal(netaddr_own_address("198.51.100.0/24", addr, sizeof addr), -1);
    assert_int_equal(netaddr_own_address("127.0.0.0/99", addr, sizeof addr), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_deadline_and_late_reply),
        cmocka_unit_test(test_malformed_and_unknown),
        cmocka_unit_test(test_peer_absent),
        cmocka_unit_test(test_a_call_waits_for_its_server),
        cmocka_unit_test(test_bind_host),
    };
    return cmocka_run_group_tests_name("bus", tests, s_setup, s_teardown);
}
