#include "bus.h"

#include "crypto.h"
#include "endpoints.h"
#include "log.h"
#include "metrics.h"
#include "netaddr.h"
#include "pidcache.h"
#include "zfd.h"
#include <arpa/inet.h>
#include <net/if.h>

#include <assert.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local int64_t s_deadline_ms;

static char s_service[32] = "portico";
static char s_instance[96] = "";
static bus_ready_fn s_ready_fn;
static void *s_ready_arg;

int64_t bus_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* For the re-resolve timer: wall-clock jumps must not stall it. */
static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t bus_current_deadline(void)
{
    return s_deadline_ms;
}

void bus_set_thread_deadline(int64_t deadline_ms)
{
    s_deadline_ms = deadline_ms;
}

void bus_init(void)
{
    /* libzmq's fork checks then cost no system call (pidcache.h). */
    pidcache_init();
    /* We install our own SIGTERM/SIGINT handling; czmq's would swallow them. */
    zsys_handler_set(NULL);
    zsys_set_linger(0);
    zsys_set_logstream(NULL);
    /* A client holds a socket per instance of each service it calls, in
     * every thread: czmq's default of 1024 sockets is too few. */
    zsys_set_max_sockets(0);
}

void bus_socket_tune(zsock_t *sock)
{
    void *s = zsock_resolve(sock);
    int64_t max = BUS_MAX_MSG_SIZE;
    int ivl = BUS_HEARTBEAT_IVL_MS, timeout = BUS_HEARTBEAT_TIMEOUT_MS, linger = 0, hwm = 10000;
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof max);
    zmq_setsockopt(s, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof timeout);
    zmq_setsockopt(s, ZMQ_HEARTBEAT_TTL, &timeout, sizeof timeout);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
}

void bus_socket_serve(zsock_t *sock)
{
    int ivl = 0;
    zmq_setsockopt(zsock_resolve(sock), ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
}

/* ---- binding ---- */

static int s_bind_wait_ms = 30000;

void bus_set_bind_wait(int ms)
{
    s_bind_wait_ms = ms;
}

static bool (*s_stopping)(void);
static atomic_bool s_stopped_waiting;

bool bus_stopped_waiting(void)
{
    return atomic_load(&s_stopped_waiting);
}

void bus_set_stopping_check(bool (*stopping)(void))
{
    s_stopping = stopping;
}

int bus_own_address(const char *host, const char *what, char *addr, size_t addr_size)
{
    /* An orchestrator may publish a new container's name a moment after
     * the container starts (Swarm does): ask again for a while before
     * calling the name wrong. */
    int64_t until = bus_now_ms() + s_bind_wait_ms;
    bool said = false;
    while (netaddr_own_address(host, addr, addr_size) < 0) {
        if (!said) {
            log_info("waiting for the bind host to name an address of this machine", "endpoint=%s up_to_ms=%d", what,
                     s_bind_wait_ms);
            said = true;
        }
        if (s_stopping && s_stopping()) {
            atomic_store(&s_stopped_waiting, true);
            log_info("stopped while waiting for the bind host's address", "endpoint=%s", what);
            return -1;
        }
        if (bus_now_ms() >= until) {
            log_error("bind host names no address of this machine", "endpoint=%s waited_ms=%d", what, s_bind_wait_ms);
            return -1;
        }
        zclock_sleep(250);
    }
    return 0;
}

int bus_bind(zsock_t *sock, const char *endpoint)
{
    char host[256], addr[INET6_ADDRSTRLEN], bound[320];
    const char *target = endpoint;
    if (!strncmp(endpoint, "tcp://", 6)) {
        const char *h = endpoint + 6, *colon = strrchr(h, ':');
        size_t n = colon ? (size_t)(colon - h) : 0;
        bool name = colon && n > 0 && n < sizeof host && h[0] != '[';
        if (name) {
            memcpy(host, h, n);
            host[n] = '\0';
            name = strcmp(host, "*") != 0 && !netaddr_is_ip(host) && if_nametoindex(host) == 0;
        }
        if (name) {
            if (bus_own_address(host, endpoint, addr, sizeof addr) < 0)
                return -1;
            bool v6 = strchr(addr, ':') != NULL;
            if (v6)
                zsock_set_ipv6(sock, 1);
            snprintf(bound, sizeof bound, v6 ? "tcp://[%s]%s" : "tcp://%s%s", addr, colon);
            target = bound;
        }
    }
    if (zsock_bind(sock, "%s", target) < 0) {
        log_error("could not bind the bus endpoint", "endpoint=%s error=\"%s\"", target, zmq_strerror(zmq_errno()));
        return -1;
    }
    if (target != endpoint)
        log_info("bus endpoint bound", "endpoint=%s address=%s", endpoint, target);
    return 0;
}

/* ---- client ---- */

/* One connection per instance: a call then knows which instance holds it,
 * and sees that instance vanish (its socket is no longer writable,
 * s_connected) instead of waiting out the deadline. An instance has one
 * DEALER per public key its service may have: normally one; during a
 * rotation of the server's key two (the old and the new), of which only
 * the one the server answers to completes its handshake, and ZMQ_IMMEDIATE
 * keeps requests off the other. */
#define CLIENT_KEYS BUS_SERVER_KEYS

typedef struct {
    zsock_t *socks[CLIENT_KEYS];
    char keys[CLIENT_KEYS][41]; /* the server key of each ("" : the default one) */
    int nsocks;
    char endpoint[ENDPOINTS_LEN];
} conn_t;

struct bus_client_t {
    endpoints_t *endpoints;
    conn_t conns[ENDPOINTS_MAX];
    int nconns;
    unsigned next_conn; /* round robin */
    bool secure;
    int own_gen;         /* busauth_secret_generation() when the sockets were made */
    bus_keyset_t keyset; /* the server keys every connection uses */
    char service[32];
    char as[32];
    char endpoint[1024];
    uint64_t next_call_id;
    bool resolved_once;
    void (*idle_fn)(void *);
    void *idle_arg;
};

/* What this process knows of each service it calls (ms, 0 never): when
 * it last got ROTATING from one, and when a call last found one of its
 * instances connected. */
typedef struct {
    atomic_llong rotating_ms;
    atomic_llong seen_ms;
} peer_state_t;
static peer_state_t s_peers[8];

static peer_state_t *s_peer_of(const char *service)
{
    unsigned bit = busauth_bit(service);
    int i = 0;
    while (bit > 1 && i < 7) {
        bit >>= 1;
        i++;
    }
    return &s_peers[bit ? i : 7];
}

/* A call that finds no instance of its service connected waits for one,
 * but not always until its deadline. While an instance was connected a
 * moment ago (RESTART_GRACE_MS), it is likely being restarted or replaced:
 * the call waits as long as its deadline allows. Otherwise the service is
 * down, and each call waits only for a connection that may be under way
 * (CONNECT_WAIT_MS: a reconnect, at most a second apart, and its
 * handshake), then fails: callers are not held for seconds each, nor
 * threads piled up behind them, for as long as the outage lasts. */
#define RESTART_GRACE_MS 5000
#define CONNECT_WAIT_MS 1500

/* One tuned DEALER towards endpoint, with server key `key` (NULL or "":
 * the one in the keys folder) when secure. */
static zsock_t *s_connect(const char *endpoint, const char *service, const char *key, const char *as, bool secure)
{
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    if (!sock)
        return NULL;
    bus_socket_tune(sock);
    /* Do not queue requests for a peer that is not there: fail fast instead. */
    zsock_set_immediate(sock, 1);
    zsock_set_ipv6(sock, 1);
    zsock_set_reconnect_ivl(sock, 100);
    zsock_set_reconnect_ivl_max(sock, 1000);
    if (secure && busauth_client_key(sock, service, key && key[0] ? key : NULL, as) < 0) {
        zsock_destroy(&sock);
        return NULL;
    }
    if (zsock_connect(sock, "%s", endpoint) < 0) {
        log_error("could not connect bus socket", "endpoint=%s", endpoint);
        zsock_destroy(&sock);
        return NULL;
    }
    return sock;
}

zsock_t *bus_socket_connect(const char *endpoint, const char *service, const char *key, const char *as)
{
    bool secure = (busauth_enabled() || as) && strncmp(endpoint, "inproc://", 9) != 0;
    return s_connect(endpoint, service, key, as, secure);
}

/* A socket of c for server key `key`. 0 or -1. */
static int s_conn_add_key(bus_client_t *self, conn_t *c, const char *key)
{
    if (c->nsocks >= CLIENT_KEYS)
        return -1;
    zsock_t *sock = s_connect(c->endpoint, self->service, key, self->as[0] ? self->as : NULL, self->secure);
    if (!sock)
        return -1;
    c->socks[c->nsocks] = sock;
    snprintf(c->keys[c->nsocks], sizeof c->keys[0], "%s", key);
    c->nsocks++;
    return 0;
}

static void s_conn_close(conn_t *c)
{
    for (int i = 0; i < c->nsocks; i++)
        zsock_destroy(&c->socks[i]);
    c->nsocks = 0;
}

static void s_conn_change(void *arg, const char *endpoint, bool added)
{
    bus_client_t *self = arg;
    if (!added) {
        for (int i = 0; i < self->nconns; i++)
            if (!strcmp(self->conns[i].endpoint, endpoint)) {
                s_conn_close(&self->conns[i]);
                self->conns[i] = self->conns[--self->nconns];
                log_debug("bus instance gone", "service=%s endpoint=%s", self->service, endpoint);
                return;
            }
        return;
    }
    if (self->nconns == ENDPOINTS_MAX)
        return;
    conn_t *c = &self->conns[self->nconns];
    memset(c, 0, sizeof *c);
    snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
    for (int k = 0; k < self->keyset.n; k++)
        if (s_conn_add_key(self, c, self->keyset.keys[k]) < 0) {
            s_conn_close(c);
            return;
        }
    self->nconns++;
    if (self->resolved_once)
        log_debug("bus instance found", "service=%s endpoint=%s", self->service, endpoint);
}

/* This process's own key changed (SIGHUP, README: Bus keys): every socket
 * was made with the old one, which the servers stop admitting once it is
 * removed from the keys folder, and a socket's key is fixed when it
 * connects. So connect again, between calls; the next call waits for the
 * new handshake. */
static void s_follow_own_key(bus_client_t *self)
{
    int gen = busauth_secret_generation();
    if (!self->secure || self->as[0] || gen == self->own_gen)
        return;
    self->own_gen = gen;
    /* Every client of every thread does this: one line says it. */
    static atomic_int logged;
    if (atomic_exchange(&logged, gen) != gen)
        log_info("own bus key changed; the bus clients connect again with it", NULL);
    for (int j = 0; j < self->nconns; j++) {
        conn_t *c = &self->conns[j];
        s_conn_close(c);
        for (int k = 0; k < self->keyset.n; k++)
            if (s_conn_add_key(self, c, self->keyset.keys[k]) < 0)
                log_error("could not connect again with the new bus key", "service=%s endpoint=%s", self->service,
                          c->endpoint);
    }
}

/* A server key appeared (a socket per instance for it) or went (its
 * sockets closed). */
static void s_key_change(void *arg, const char *key, bool added)
{
    bus_client_t *self = arg;
    for (int j = 0; j < self->nconns; j++) {
        conn_t *c = &self->conns[j];
        if (added) {
            s_conn_add_key(self, c, key);
            continue;
        }
        for (int s = 0; s < c->nsocks; s++)
            if (!strcmp(c->keys[s], key)) {
                zsock_destroy(&c->socks[s]);
                c->nsocks--;
                c->socks[s] = c->socks[c->nsocks];
                memcpy(c->keys[s], c->keys[c->nsocks], sizeof c->keys[0]);
                break;
            }
    }
}

/* Follow this process's key and the server's. Between calls only, so no
 * request is ever in flight on a socket that closes. */
static void s_follow_keys(bus_client_t *self)
{
    s_follow_own_key(self);
    bus_keyset_follow(&self->keyset, s_key_change, self);
}

void bus_keyset_init(bus_keyset_t *self, const char *server, bool follow)
{
    memset(self, 0, sizeof *self);
    snprintf(self->server, sizeof self->server, "%s", server);
    if (follow && busauth_enabled()) {
        self->n = busauth_server_keys(server, self->keys, BUS_SERVER_KEYS);
        if (self->n < 0)
            self->n = 0;
        self->follow = self->n > 0;
        self->read_ms = bus_now_ms();
    }
    if (self->n == 0)
        self->n = 1; /* keys[0] is "": the default key */
}

void bus_keyset_follow(bus_keyset_t *self, bus_key_fn fn, void *arg)
{
    int64_t now = bus_now_ms();
    if (!self->follow || now - self->read_ms < 1000)
        return;
    self->read_ms = now;
    char keys[BUS_SERVER_KEYS][41];
    int n = busauth_server_keys(self->server, keys, BUS_SERVER_KEYS);
    if (n <= 0)
        return; /* nothing readable: keep what works */
    for (int i = 0; i < self->n;) {
        bool keep = false;
        for (int k = 0; k < n && !keep; k++)
            keep = !strcmp(self->keys[i], keys[k]);
        if (keep) {
            i++;
            continue;
        }
        log_info("bus server key gone; closing its connections", "service=%s key=%.12s", self->server, self->keys[i]);
        fn(arg, self->keys[i], false);
        self->n--;
        memcpy(self->keys[i], self->keys[self->n], sizeof self->keys[0]);
    }
    for (int k = 0; k < n; k++) {
        bool have = false;
        for (int i = 0; i < self->n && !have; i++)
            have = !strcmp(self->keys[i], keys[k]);
        if (have || self->n >= BUS_SERVER_KEYS)
            continue;
        snprintf(self->keys[self->n++], sizeof self->keys[0], "%s", keys[k]);
        fn(arg, keys[k], true);
        log_info("bus server key added; connecting with it too", "service=%s key=%.12s", self->server, keys[k]);
    }
}

bus_client_t *bus_client_new(const char *endpoint, const char *service)
{
    return bus_client_new_as(endpoint, service, NULL);
}

bus_client_t *bus_client_new_as(const char *endpoint, const char *service, const char *as)
{
    bus_client_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    snprintf(self->service, sizeof self->service, "%s", service);
    snprintf(self->as, sizeof self->as, "%s", as ? as : "");
    snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint);
    self->secure = (busauth_enabled() || as) && strncmp(endpoint, "inproc://", 9) != 0;
    bus_keyset_init(&self->keyset, service, self->secure);
    self->own_gen = busauth_secret_generation();
    self->endpoints = endpoints_new(endpoint, NULL);
    if (!self->endpoints) {
        log_error("not a bus endpoint list", "service=%s", service);
        free(self);
        return NULL;
    }
    endpoints_refresh(self->endpoints, s_mono_ms(), true, s_conn_change, self);
    self->resolved_once = true;
    crypto_random(&self->next_call_id, sizeof self->next_call_id);
    self->next_call_id &= 0x7fffffffffffULL;
    crypto_random(&self->next_conn, sizeof self->next_conn);
    return self;
}

void bus_client_destroy(bus_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bus_client_t *self = *self_p;
    for (int i = 0; i < self->nconns; i++)
        s_conn_close(&self->conns[i]);
    endpoints_destroy(&self->endpoints);
    free(self);
    *self_p = NULL;
}

const char *bus_client_endpoint(const bus_client_t *self)
{
    return self->endpoint;
}

int bus_client_instances(bus_client_t *self)
{
    endpoints_refresh(self->endpoints, s_mono_ms(), false, s_conn_change, self);
    return self->nconns;
}

void bus_client_set_idle(bus_client_t *self, void (*fn)(void *arg), void *arg)
{
    self->idle_fn = fn;
    self->idle_arg = arg;
}

static void s_record(const bus_client_t *self, const char *method, int code, int64_t started)
{
    char labels[192];
    snprintf(labels, sizeof labels, "service=\"%s\",method=\"%s\",code=\"%s\"", self->service, method,
             bus_code_name(code));
    metrics_inc("portico_bus_calls_total", labels, 1);
    snprintf(labels, sizeof labels, "service=\"%s\",method=\"%s\"", self->service, method);
    metrics_observe("portico_bus_call_seconds", labels, (double)(bus_now_ms() - started) / 1000.0);
}

/* With ZMQ_IMMEDIATE a DEALER is writable only while its peer is
 * connected (and, under CURVE, has accepted our handshake): one that is not
 * has vanished (its process ended, or ZMTP heartbeats gave up on it). */
static bool s_sock_connected(zsock_t *sock)
{
    return (zsock_events(sock) & ZMQ_POLLOUT) != 0;
}

/* The socket of c that can take a request now, or -1. */
static int s_connected(const conn_t *c)
{
    for (int s = 0; s < c->nsocks; s++)
        if (s_sock_connected(c->socks[s]))
            return s;
    return -1;
}

/* Send buf on the first socket of c that takes it: its index, -1 when none
 * does, -2 when sending failed otherwise. Trying is how a connected socket
 * is found: with ZMQ_IMMEDIATE an unconnected DEALER refuses (EAGAIN). A
 * send looks at the socket's news (a connection made) only now and then,
 * so a refusal is confirmed with ZMQ_EVENTS, which reads them all. */
static int s_conn_send(const conn_t *c, const void *buf, size_t len)
{
    for (int s = 0; s < c->nsocks; s++) {
        void *z = zsock_resolve(c->socks[s]);
        if (zmq_send(z, buf, len, ZMQ_DONTWAIT) >= 0)
            return s;
        if (zmq_errno() != EAGAIN)
            return -2;
        if (s_sock_connected(c->socks[s]) && zmq_send(z, buf, len, ZMQ_DONTWAIT) >= 0)
            return s;
    }
    return -1;
}

/* How often a waiting call runs the client's idle callback (the broker's
 * heartbeats) and looks whether its instance is still there. */
#define WAIT_SLICE_MS 250

static void s_idle_due(bus_client_t *self, int64_t *idle_at)
{
    int64_t now = bus_now_ms();
    if (now < *idle_at)
        return;
    *idle_at = now + WAIT_SLICE_MS;
    if (self->idle_fn)
        self->idle_fn(self->idle_arg);
}

/* Send buf to the next connected instance in turn (the instance returned,
 * its socket in *sock), or, while none is, wait for one (when wait) until
 * the deadline, or less when the service seems down (RESTART_GRACE_MS).
 * NULL when none came. */
static conn_t *s_send_next(bus_client_t *self, int64_t deadline, const char *avoid, bool wait, const void *buf,
                           size_t len, int *sock)
{
    int64_t started = bus_now_ms(), idle_at = started + WAIT_SLICE_MS;
    atomic_llong *seen = &s_peer_of(self->service)->seen_ms;
    for (;;) {
        endpoints_refresh(self->endpoints, s_mono_ms(), false, s_conn_change, self);
        for (int k = 0; k < self->nconns; k++) {
            conn_t *c = &self->conns[(self->next_conn + (unsigned)k) % (unsigned)self->nconns];
            if (avoid && !strcmp(c->endpoint, avoid))
                continue;
            *sock = s_conn_send(c, buf, len);
            if (*sock == -2)
                return NULL;
            if (*sock >= 0) {
                self->next_conn += (unsigned)k + 1;
                atomic_store(seen, bus_now_ms());
                return c;
            }
        }
        int64_t until = atomic_load(seen) + RESTART_GRACE_MS;
        if (until < started + CONNECT_WAIT_MS)
            until = started + CONNECT_WAIT_MS;
        if (until > deadline)
            until = deadline;
        int64_t now = bus_now_ms(), left = until - now;
        if (left <= 0 || !wait)
            return NULL;
        /* Every socket was just asked (s_conn_send): a connection made from
         * now on signals on its descriptor. */
        zsock_t *socks[ENDPOINTS_MAX * CLIENT_KEYS];
        int n = 0;
        for (int i = 0; i < self->nconns; i++)
            for (int s = 0; s < self->conns[i].nsocks; s++)
                if (!avoid || strcmp(self->conns[i].endpoint, avoid) != 0)
                    socks[n++] = self->conns[i].socks[s];
        int64_t ms = idle_at - now < left ? idle_at - now : left;
        if (zfd_wait(socks, n, NULL, ms > 0 ? (int)ms : 0) < 0)
            return NULL;
        s_idle_due(self, &idle_at);
    }
}

/* Another instance than avoid that can take a request now. */
static bool s_other_connected(bus_client_t *self, const char *avoid)
{
    for (int i = 0; i < self->nconns; i++)
        if (strcmp(self->conns[i].endpoint, avoid) != 0 && s_connected(&self->conns[i]) >= 0)
            return true;
    return false;
}

/* The next message on c's socket s, by the deadline: NULL with *w 0 on
 * timeout, -1 when the instance vanished meanwhile (else *w is 1). It
 * waits inside libzmq's own receive (ZMQ_RCVTIMEO), which takes a message
 * already there without a system call and otherwise sleeps on the
 * socket's command mailbox until one comes: a wake and the commands it
 * brings, where zmq_poll would also ask ZMQ_EVENTS before and after. In
 * slices, to run the idle callback and to see the instance vanish. */
static zmsg_t *s_recv_reply(bus_client_t *self, conn_t *c, int s, int64_t deadline, int *w)
{
    int64_t idle_at = bus_now_ms() + WAIT_SLICE_MS;
    *w = 1;
    for (;;) {
        int64_t now = bus_now_ms(), left = deadline - now;
        if (left <= 0) {
            *w = 0;
            return NULL;
        }
        int64_t ms = idle_at - now < left ? idle_at - now : left;
        zsock_set_rcvtimeo(c->socks[s], ms > 0 ? (int)ms : 0);
        zmsg_t *msg = zmsg_recv(c->socks[s]);
        if (msg)
            return msg;
        now = bus_now_ms();
        if (now < idle_at && now < deadline)
            continue; /* interrupted by a signal */
        if (!s_sock_connected(c->socks[s])) {
            *w = -1;
            return NULL;
        }
        s_idle_due(self, &idle_at);
    }
}

bool bus_method_repeatable(const char *method)
{
    const char *dot = strrchr(method, '.');
    const char *verb = dot ? dot + 1 : method;
    return !strcmp(verb, "ping") || !strcmp(verb, "get") || !strcmp(verb, "list") || !strcmp(verb, "lookup");
}

int bus_request_prepare(Portico__Request *env, char rid[64], const char *method, int64_t deadline,
                        const ProtobufCMessage *req, uint8_t **body)
{
    portico__request__init(env);
    *body = NULL;
    if (log_request_id()[0]) {
        snprintf(rid, 64, "%s", log_request_id());
    } else {
        uint8_t raw[8];
        crypto_random(raw, sizeof raw);
        crypto_hex(raw, sizeof raw, rid);
    }
    env->request_id = rid;
    env->method = (char *)(uintptr_t)method;
    env->deadline_ms = deadline;
    if (req) {
        size_t n = protobuf_c_message_get_packed_size(req);
        *body = malloc(n ? n : 1);
        if (!*body)
            return -1;
        protobuf_c_message_pack(req, *body);
        env->body.data = *body;
        env->body.len = n;
    }
    return 0;
}

int bus_reply_take(const Portico__Reply *reply, const char *service, const ProtobufCMessageDescriptor *resp_desc,
                   ProtobufCMessage **resp, int *code, bus_error_t *err)
{
    *code = reply->code;
    if (reply->code != PORTICO__ERROR_CODE__OK) {
        bus_error_t peer;
        bus_error_set(&peer, reply->code, reply->detail, "%s", reply->message);
        bus_error_from_peer(&peer);
        *code = peer.code;
        if (err)
            *err = peer;
        return -1;
    }
    if (resp_desc && resp) {
        *resp = protobuf_c_message_unpack(resp_desc, NULL, reply->body.len, reply->body.data);
        if (!*resp) {
            bus_error_set(err, *code = PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE),
                          "the %s service sent a reply we cannot read", service);
            return -1;
        }
    }
    return 0;
}

int bus_call(bus_client_t *self, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, int timeout_ms, bus_error_t *err)
{
    int rc = -1;
    uint8_t *body = NULL, *env_buf = NULL;
    Portico__Reply *reply = NULL;
    int64_t started = bus_now_ms();
    int64_t deadline = started + timeout_ms;
    if (s_deadline_ms && s_deadline_ms < deadline)
        deadline = s_deadline_ms;
    if (resp)
        *resp = NULL;
    int code = PORTICO__ERROR_CODE__INTERNAL;

    /* A client made on first use (the web's threads) may not exist: the
     * caller gets an answer, not a crash. */
    if (!self) {
        if (resp)
            *resp = NULL;
        bus_error_set(err, PORTICO__ERROR_CODE__UNAVAILABLE, DETAIL(NONE), "no bus client could be made");
        return -1;
    }
    if (deadline <= started) {
        bus_error_set(err, code = PORTICO__ERROR_CODE__TIMEOUT, DETAIL(NONE), "the request ran out of time");
        goto out;
    }
    Portico__Request env;
    char rid[64];
    if (bus_request_prepare(&env, rid, method, deadline, req, &body) < 0)
        goto out;
    /* A request that may run twice without harm is sent again, to another
     * instance, when the one holding it vanishes; any other is answered
     * UNAVAILABLE at once, since it may or may not have been carried out.
     * The exceptions are a server changing its key (README, Bus keys): it
     * ran nothing it did not answer, so the request goes again, on the new
     * key, whatever it is; and an instance that refused it because it is
     * stopping (STOPPING, nothing run): it goes to another instance. */
    s_follow_keys(self);
    atomic_llong *rotating = &s_peer_of(self->service)->rotating_ms;
    bool repeatable = bus_method_repeatable(method);
    conn_t *c = NULL;
    int s = -1;
    bool wait = true;
    int vanished = 0, stopping = 0;
    char gone[ENDPOINTS_LEN] = ""; /* the instance that vanished holding the call */
    for (;;) {
        env.call_id = ++self->next_call_id;
        size_t env_len = portico__request__get_packed_size(&env);
        if (env_len > BUS_MAX_MSG_SIZE) {
            bus_error_set(err, code = PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(NONE), "the request is too large");
            goto out;
        }
        free(env_buf);
        env_buf = malloc(env_len ? env_len : 1);
        if (!env_buf)
            goto out;
        portico__request__pack(&env, env_buf);

        /* A call sent again after its instance vanished goes to an instance
         * connected now, or fails: waiting for the vanished one to come
         * back is what it must not do. */
        c = s_send_next(self, deadline, gone[0] ? gone : NULL, wait, env_buf, env_len, &s);
        if (!c) {
            bus_error_set(err, code = PORTICO__ERROR_CODE__UNAVAILABLE, DETAIL(NONE), "the %s service is not reachable",
                          self->service);
            goto out;
        }
        int w;
        for (;;) {
            zmsg_t *msg = s_recv_reply(self, c, s, deadline, &w);
            if (!msg)
                break;
            zframe_t *last = zmsg_last(msg);
            reply = last ? portico__reply__unpack(NULL, zframe_size(last), zframe_data(last)) : NULL;
            zmsg_destroy(&msg);
            if (!reply) {
                log_warn("bad reply envelope", "service=%s", self->service);
                continue;
            }
            if (reply->call_id == env.call_id)
                break;
            /* A late answer to an earlier call that already timed out. */
            portico__reply__free_unpacked(reply, NULL);
            reply = NULL;
        }
        if (w > 0 && reply->code == PORTICO__ERROR_CODE__UNAVAILABLE &&
            reply->detail == PORTICO__ERROR_DETAIL__DETAIL_ROTATING) {
            /* It ran nothing and answers on the new key in a moment. */
            atomic_store(rotating, bus_now_ms());
            portico__reply__free_unpacked(reply, NULL);
            reply = NULL;
            zclock_sleep(20);
            gone[0] = '\0';
            wait = true;
            continue;
        }
        if (w > 0 && reply->code == PORTICO__ERROR_CODE__UNAVAILABLE &&
            reply->detail == PORTICO__ERROR_DETAIL__DETAIL_STOPPING && stopping < 2) {
            /* A stopping instance refuses before it runs anything, so any
             * call may go to another instance; with none, its answer stands. */
            if (s_other_connected(self, c->endpoint)) {
                stopping++;
                portico__reply__free_unpacked(reply, NULL);
                reply = NULL;
                snprintf(gone, sizeof gone, "%s", c->endpoint);
                wait = false;
                continue;
            }
        }
        if (w > 0)
            break;
        if (w == 0) {
            bus_error_set(err, code = PORTICO__ERROR_CODE__TIMEOUT, DETAIL(NONE),
                          "the %s service did not answer in time", self->service);
            goto out;
        }
        if (bus_now_ms() - atomic_load(rotating) < 10000) {
            /* The connection went away unanswered while that server was
             * changing its key: it answers everything it read before it
             * lets the old key's connections go, so this one was never read. */
            gone[0] = '\0';
            wait = true;
            continue;
        }
        log_warn("bus instance vanished during a call", "service=%s endpoint=%s method=%s", self->service, c->endpoint,
                 method);
        snprintf(gone, sizeof gone, "%s", c->endpoint);
        wait = false;
        if (!repeatable || ++vanished > 2) {
            bus_error_set(err, code = PORTICO__ERROR_CODE__UNAVAILABLE, DETAIL(NONE),
                          "the %s service instance handling the request went away", self->service);
            goto out;
        }
    }
    if (bus_reply_take(reply, self->service, resp_desc, resp, &code, err) < 0)
        goto out;
    rc = 0;
out:
    if (rc < 0 && code != PORTICO__ERROR_CODE__INTERNAL && err && !err->message[0])
        bus_error_set(err, code, DETAIL(NONE), "the %s service failed", self->service);
    if (rc < 0 && code == PORTICO__ERROR_CODE__INTERNAL && err && !err->message[0])
        bus_error_set(err, code, DETAIL(NONE), "internal error calling the %s service", self->service);
    s_record(self, method, rc == 0 ? 0 : code, started);
    if (reply)
        portico__reply__free_unpacked(reply, NULL);
    free(body);
    free(env_buf);
    return rc;
}

int bus_call_method(bus_client_t *self, const bus_method_t *m, const ProtobufCMessage *req, ProtobufCMessage **resp,
                    int timeout_ms, bus_error_t *err)
{
    assert(!req || req->descriptor == m->req);
    return bus_call(self, m->name, req, resp ? m->rep : NULL, resp, timeout_ms, err);
}

/* ---- server ---- */

#ifndef PORTICO_VERSION
#define PORTICO_VERSION "unknown"
#endif

const char *bus_version(void)
{
    return PORTICO_VERSION;
}

const char *bus_instance(void)
{
    return s_instance;
}

void bus_set_identity(const char *service, const char *instance, bus_ready_fn ready, void *arg)
{
    snprintf(s_service, sizeof s_service, "%s", service);
    snprintf(s_instance, sizeof s_instance, "%s", instance ? instance : "");
    s_ready_fn = ready;
    s_ready_arg = arg;
}

void bus_reply_clear(bus_reply_t *reply)
{
    free(reply->body);
    memset(reply, 0, sizeof *reply);
}

void bus_reply_ok(bus_reply_t *reply, const ProtobufCMessage *msg)
{
    free(reply->body);
    reply->body = NULL;
    reply->body_len = 0;
    bus_error_set(&reply->err, PORTICO__ERROR_CODE__OK, DETAIL(NONE), "%s", "");
    if (!msg)
        return;
    size_t n = protobuf_c_message_get_packed_size(msg);
    reply->body = malloc(n ? n : 1);
    if (!reply->body) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "out of memory");
        return;
    }
    reply->body_len = protobuf_c_message_pack(msg, reply->body);
}

void bus_reply_defer(bus_reply_t *reply)
{
    reply->deferred = true;
}

static void s_ping(bus_reply_t *reply)
{
    Portico__PingReply p = PORTICO__PING_REPLY__INIT;
    char status[128] = "ok";
    p.service = s_service;
    p.instance = s_instance;
    p.ready = s_ready_fn ? s_ready_fn(s_ready_arg, status, sizeof status) : true;
    p.status = status;
    p.version = (char *)(uintptr_t)bus_version();
    bus_reply_ok(reply, &p.base);
}

int bus_process(const bus_route_t *routes, void *ctx, const uint8_t *data, size_t len, bus_request_t *req,
                bus_reply_t *reply)
{
    Portico__Request *env = portico__request__unpack(NULL, len, data);
    if (!env) {
        log_warn("dropped malformed bus message", "bytes=%zu", len);
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(ENVELOPE),
                      "the message could not be decoded");
        return -1;
    }
    req->call_id = env->call_id;
    snprintf(req->request_id, sizeof req->request_id, "%s", env->request_id);
    snprintf(req->method, sizeof req->method, "%s", env->method);
    req->deadline_ms = env->deadline_ms;
    req->received_ms = bus_now_ms();
    log_set_request_id(req->request_id);

    if (strlen(env->method) >= sizeof req->method) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__UNKNOWN_METHOD, DETAIL(NONE), "unknown method");
        goto out;
    }
    if (req->deadline_ms && req->deadline_ms <= req->received_ms) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__TIMEOUT, DETAIL(NONE),
                      "the request expired before it was handled");
        goto out;
    }
    if (!strcmp(env->method, "ping")) {
        s_ping(reply);
        goto out;
    }
    const bus_route_t *route = NULL;
    for (const bus_route_t *r = routes; r && r->method; r++)
        if (!strcmp(r->method, env->method))
            route = r;
    if (!route) {
        char q[96];
        log_warn("unknown bus method", "method=%s", log_quote(env->method, q, sizeof q));
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__UNKNOWN_METHOD, DETAIL(NONE), "unknown method");
        goto out;
    }
    if (!(route->callers & busauth_bit(req->caller))) {
        busauth_log_refused(route->method, req->caller[0] ? req->caller : "unauthenticated", "");
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(CALLER),
                      "this service may not call this method");
        goto out;
    }
    /* A caller cannot buy more time than the method is declared to take. */
    if (route->deadline_ms && (!req->deadline_ms || req->deadline_ms > req->received_ms + route->deadline_ms))
        req->deadline_ms = req->received_ms + route->deadline_ms;
    ProtobufCMessage *msg = NULL;
    if (route->desc) {
        msg = protobuf_c_message_unpack(route->desc, NULL, env->body.len, env->body.data);
        if (!msg) {
            log_warn("dropped bus request with a malformed body", "method=%s", route->method);
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(BODY),
                          "the request body could not be decoded");
            goto out;
        }
    }
    s_deadline_ms = req->deadline_ms;
    route->fn(ctx, req, msg, reply);
    s_deadline_ms = 0;
    if (msg)
        protobuf_c_message_free_unpacked(msg, NULL);
out:
    portico__request__free_unpacked(env, NULL);
    return 0;
}

int bus_encode_reply(uint64_t call_id, const bus_reply_t *reply, uint8_t **out, size_t *out_len)
{
    Portico__Reply r = PORTICO__REPLY__INIT;
    r.call_id = call_id;
    r.code = (Portico__ErrorCode)reply->err.code;
    r.message = (char *)(uintptr_t)reply->err.message;
    r.detail = (Portico__ErrorDetail)reply->err.detail;
    /* An error carries no data, whatever a handler had put there. */
    if (reply->err.code == PORTICO__ERROR_CODE__OK) {
        r.body.data = reply->body;
        r.body.len = reply->body_len;
    }
    size_t n = portico__reply__get_packed_size(&r);
    *out = malloc(n ? n : 1);
    if (!*out)
        return -1;
    *out_len = portico__reply__pack(&r, *out);
    return 0;
}

void bus_request_destroy(bus_request_t **req_p)
{
    if (!req_p || !*req_p)
        return;
    zmsg_destroy(&(*req_p)->routing);
    free(*req_p);
    *req_p = NULL;
}

zmsg_t *bus_reply_msg(bus_request_t **req_p, bus_reply_t *reply)
{
    bus_request_t *req = *req_p;
    uint8_t *buf = NULL;
    size_t n = 0;
    zmsg_t *out = NULL;
    if (bus_encode_reply(req->call_id, reply, &buf, &n) == 0) {
        out = req->routing ? req->routing : zmsg_new();
        req->routing = NULL;
        zmsg_addmem(out, buf, n);
    }
    char labels[160];
    snprintf(labels, sizeof labels, "method=\"%s\",code=\"%s\"", req->method[0] ? req->method : "?",
             bus_code_name(reply->err.code));
    metrics_inc("portico_bus_handled_total", labels, 1);
    free(buf);
    bus_request_destroy(req_p);
    return out;
}

int bus_send_reply(zsock_t *sock, bus_request_t **req_p, bus_reply_t *reply)
{
    zmsg_t *out = bus_reply_msg(req_p, reply);
    int rc = out ? zmsg_send(&out, sock) : -1;
    zmsg_destroy(&out);
    return rc;
}

void bus_serve(zsock_t *sock, zmsg_t **msg_p, const bus_route_t *routes, void *ctx)
{
    const char *peer = *msg_p ? busauth_peer(zmsg_last(*msg_p)) : NULL;
    bus_serve_as(sock, msg_p, routes, ctx, peer ? peer : "");
}

zmsg_t *bus_serve_reply(zmsg_t **msg_p, const bus_route_t *routes, void *ctx, const char *caller)
{
    zmsg_t *msg = *msg_p, *out = NULL;
    *msg_p = NULL;
    bus_request_t *req = calloc(1, sizeof *req);
    bus_reply_t reply = {0};
    if (!req) {
        zmsg_destroy(&msg);
        return NULL;
    }
    zframe_t *env = zmsg_last(msg);
    if (!env) {
        zmsg_destroy(&msg);
        free(req);
        return NULL;
    }
    zmsg_remove(msg, env);
    req->routing = msg;
    snprintf(req->caller, sizeof req->caller, "%s", caller ? caller : "");
    bus_process(routes, ctx, zframe_data(env), zframe_size(env), req, &reply);
    zframe_destroy(&env);
    if (!reply.deferred)
        out = bus_reply_msg(&req, &reply);
    bus_reply_clear(&reply);
    log_set_request_id(NULL);
    return out;
}

void bus_serve_as(zsock_t *sock, zmsg_t **msg_p, const bus_route_t *routes, void *ctx, const char *caller)
{
    zmsg_t *out = bus_serve_reply(msg_p, routes, ctx, caller);
    if (out && zmsg_send(&out, sock) < 0)
        zmsg_destroy(&out);
}

void bus_refuse(zsock_t *sock, zmsg_t **msg_p, int detail, const char *message)
{
    zmsg_t *msg = *msg_p;
    *msg_p = NULL;
    zframe_t *last = msg ? zmsg_last(msg) : NULL;
    Portico__Request *env = last ? portico__request__unpack(NULL, zframe_size(last), zframe_data(last)) : NULL;
    if (env) {
        bus_request_t *req = calloc(1, sizeof *req);
        if (req) {
            zmsg_remove(msg, last);
            zframe_destroy(&last);
            req->routing = msg;
            msg = NULL;
            req->call_id = env->call_id;
            snprintf(req->method, sizeof req->method, "%.63s", env->method);
            bus_reply_t reply = {0};
            bus_error_set(&reply.err, PORTICO__ERROR_CODE__UNAVAILABLE, detail, "%s", message);
            bus_send_reply(sock, &req, &reply);
            bus_reply_clear(&reply);
        }
        portico__request__free_unpacked(env, NULL);
    }
    zmsg_destroy(&msg);
}

#define REBIND_SETTLE_MS 150

static void s_settle_refuse(void *arg, zsock_t *sock, zmsg_t **msg_p)
{
    (void)arg;
    bus_refuse(sock, msg_p, DETAIL(ROTATING), "changing the bus key; send again");
}

int bus_rebind(zsock_t *sock, const char *endpoint)
{
    return bus_rebind_with(sock, endpoint, s_settle_refuse, NULL);
}

int bus_rebind_with(zsock_t *sock, const char *endpoint, bus_settle_fn settle, void *arg)
{
    char bound[320];
    char *last = zsock_last_endpoint(sock); /* czmq's copy, ours to free */
    snprintf(bound, sizeof bound, "%s", last ? last : "");
    free(last);
    /* Unbinding ends the connections made on the old key (the listener
     * owns them); the linger in force now lets their last answers go. */
    zsock_set_linger(sock, 500);
    if (bound[0] && zsock_unbind(sock, "%s", bound) < 0)
        log_warn("could not unbind the old bus key's endpoint", "endpoint=%s", bound);
    zsock_set_linger(sock, 0);
    /* What those connections had sent can still be read for a moment, but
     * an answer could no longer reach them: refuse it unrun (their callers
     * send it again on the new key) until they are surely gone, before any
     * connection on the new key exists. */
    int64_t until = bus_now_ms() + REBIND_SETTLE_MS;
    for (int64_t left; (left = until - bus_now_ms()) > 0;) {
        zmq_pollitem_t item = {zsock_resolve(sock), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, (long)left) <= 0)
            continue;
        zmsg_t *msg = zmsg_recv(sock);
        settle(arg, sock, &msg);
        zmsg_destroy(&msg);
    }
    if (busauth_enabled() && busauth_server(sock) < 0)
        return -1;
    /* The old listener closes in the background: try until its port is free. */
    for (int i = 0; i < 100; i++) {
        if (bus_bind(sock, endpoint) == 0) {
            log_info("serving with the new bus key", "endpoint=%s", endpoint);
            return 0;
        }
        zclock_sleep(20);
    }
    return -1;
}
