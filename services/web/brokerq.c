#include "brokerq.h"

#include "bus.h"
#include "log.h"
#include "metrics.h"
#include "service.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WORKERS 1024
#define MAX_QUEUED 4096
#define MAX_INSTANCES 64
/* A new bus key (brokerq_rekey): how long the workers' requests in flight
 * may take before the old key's connections are let go anyway, and how
 * long new work waits for workers to come back on the new key. */
#define REKEY_DRAIN_MS SERVICE_DRAIN_MS
#define REKEY_HOLD_MS 5000

typedef struct {
    zframe_t *identity;
    char instance[96];
    int64_t last_seen;
    int64_t idle_since;
    bool busy;
    bool leaving;     /* said BYE: no new work, removed once idle */
    zframe_t *client; /* the request in flight, to fail it if the worker dies */
    uint64_t call_id;
} worker_t;

typedef struct {
    zframe_t *client;
    zframe_t *envelope;
    uint64_t call_id;
    int64_t deadline;
} queued_t;

struct brokerq_t {
    pthread_t thread;
    atomic_bool stop;
    atomic_int workers_connected;
    atomic_bool rekey; /* asked for: switch to the key busauth holds now */
    bool rotating;     /* holding new work until the workers are idle */
    int64_t rotate_limit;
    int64_t hold_until; /* after the switch: work waits for workers until then */
    zsock_t *frontend;
    zsock_t *backend;
    char bind_endpoint[256];
    char frontend_endpoint[64];
    worker_t workers[MAX_WORKERS];
    int nworkers;
    queued_t queue[MAX_QUEUED];
    int qhead, qlen;
    pthread_mutex_t stats_lock;
    brokerq_instance_t stats[MAX_INSTANCES];
    int nstats;
};

static void s_answer_error(brokerq_t *self, zframe_t *client, uint64_t call_id, int code, const char *text)
{
    bus_reply_t reply = {0};
    bus_error_set(&reply.err, code, DETAIL(BROKER), "%s", text);
    uint8_t *buf = NULL;
    size_t n = 0;
    if (bus_encode_reply(call_id, &reply, &buf, &n) == 0) {
        zmsg_t *m = zmsg_new();
        zmsg_append(m, &client);
        zmsg_addmem(m, buf, n);
        zmsg_send(&m, self->frontend);
        zmsg_destroy(&m);
    }
    zframe_destroy(&client);
    free(buf);
    bus_reply_clear(&reply);
}

static void s_stats_update(brokerq_t *self)
{
    pthread_mutex_lock(&self->stats_lock);
    for (int s = 0; s < self->nstats; s++)
        self->stats[s].workers = self->stats[s].busy = 0;
    for (int i = 0; i < self->nworkers; i++) {
        worker_t *w = &self->workers[i];
        int s;
        for (s = 0; s < self->nstats; s++)
            if (!strcmp(self->stats[s].instance, w->instance))
                break;
        if (s == self->nstats) {
            if (self->nstats == MAX_INSTANCES)
                continue;
            memset(&self->stats[s], 0, sizeof self->stats[s]);
            snprintf(self->stats[s].instance, sizeof self->stats[s].instance, "%s", w->instance);
            self->nstats++;
        }
        self->stats[s].workers++;
        self->stats[s].busy += w->busy;
    }
    /* Forget instances that have gone for good. */
    int kept = 0;
    for (int s = 0; s < self->nstats; s++)
        if (self->stats[s].workers > 0)
            self->stats[kept++] = self->stats[s];
    self->nstats = kept;
    pthread_mutex_unlock(&self->stats_lock);
    /* While the workers come back on a new key the web still takes
     * sign-ins (they wait for them): it stays ready meanwhile. */
    if (self->nworkers == 0 && (self->rotating || bus_now_ms() < self->hold_until))
        return;
    atomic_store(&self->workers_connected, self->nworkers);
    metrics_set("portico_broker_workers_connected", NULL, self->nworkers);
}

static void s_count_handled(brokerq_t *self, const char *instance)
{
    char labels[160], q[100];
    snprintf(labels, sizeof labels, "instance=\"%s\"", metrics_label(instance, q, sizeof q));
    metrics_inc("portico_broker_requests_total", labels, 1);
    pthread_mutex_lock(&self->stats_lock);
    for (int s = 0; s < self->nstats; s++)
        if (!strcmp(self->stats[s].instance, instance))
            self->stats[s].handled++;
    pthread_mutex_unlock(&self->stats_lock);
}

static worker_t *s_find(brokerq_t *self, zframe_t *identity)
{
    for (int i = 0; i < self->nworkers; i++)
        if (zframe_eq(self->workers[i].identity, identity))
            return &self->workers[i];
    return NULL;
}

static void s_remove(brokerq_t *self, worker_t *w, const char *why)
{
    char q[200];
    if (w->leaving && !w->busy)
        log_info("broker worker left", "instance=%s", log_quote(w->instance, q, sizeof q));
    else
        log_warn("broker worker dropped", "instance=%s reason=%s", log_quote(w->instance, q, sizeof q), why);
    if (w->busy && w->client)
        s_answer_error(self, w->client, w->call_id, PORTICO__ERROR_CODE__UNAVAILABLE,
                       "the sign-in service stopped while handling this request; please try again");
    w->client = NULL;
    zframe_destroy(&w->identity);
    *w = self->workers[--self->nworkers];
    memset(&self->workers[self->nworkers], 0, sizeof self->workers[0]);
    s_stats_update(self);
}

/* Send a copy of one request to a worker; 0, or -1 when the worker is gone. */
static int s_send_to(brokerq_t *self, worker_t *w, zframe_t *client, zframe_t *envelope, uint64_t call_id)
{
    zmsg_t *m = zmsg_new();
    zmsg_addmem(m, zframe_data(w->identity), zframe_size(w->identity));
    zmsg_addmem(m, zframe_data(client), zframe_size(client));
    zmsg_addmem(m, zframe_data(envelope), zframe_size(envelope));
    int rc = zmsg_send(&m, self->backend);
    zmsg_destroy(&m);
    if (rc < 0)
        return -1;
    w->busy = true;
    w->client = zframe_dup(client);
    w->call_id = call_id;
    return 0;
}

static worker_t *s_idlest(brokerq_t *self)
{
    worker_t *best = NULL;
    for (int i = 0; i < self->nworkers; i++) {
        worker_t *w = &self->workers[i];
        if (!w->busy && !w->leaving && (!best || w->idle_since < best->idle_since))
            best = w;
    }
    return best;
}

/* Hand the request to the idlest worker. 1 when sent, 0 when every worker
 * is busy (or none is left). */
static int s_try_send(brokerq_t *self, zframe_t *client, zframe_t *envelope, uint64_t call_id)
{
    worker_t *w;
    while ((w = s_idlest(self)) != NULL) {
        if (s_send_to(self, w, client, envelope, call_id) == 0) {
            s_stats_update(self);
            return 1;
        }
        s_remove(self, w, "unreachable");
    }
    return 0;
}

/* True while new work waits rather than fails for want of a worker:
 * during a change of the bus key and until workers came back after it. */
static bool s_holding(const brokerq_t *self, int64_t now)
{
    return self->rotating || (self->nworkers == 0 && now < self->hold_until);
}

/* Route a request now, or queue it while every worker is busy. Takes the
 * frames. */
static void s_dispatch(brokerq_t *self, zframe_t *client, zframe_t *envelope, uint64_t call_id, int64_t deadline)
{
    if (!self->rotating && s_try_send(self, client, envelope, call_id)) {
        zframe_destroy(&client);
        zframe_destroy(&envelope);
        return;
    }
    if ((self->nworkers == 0 && !s_holding(self, bus_now_ms())) || self->qlen == MAX_QUEUED) {
        zframe_destroy(&envelope);
        s_answer_error(self, client, call_id, PORTICO__ERROR_CODE__UNAVAILABLE,
                       self->nworkers == 0 ? "no sign-in service (broker) is running; ask your operator to start one"
                                           : "the sign-in service is overloaded; please try again");
        return;
    }
    queued_t *q = &self->queue[(self->qhead + self->qlen++) % MAX_QUEUED];
    q->client = client;
    q->envelope = envelope;
    q->call_id = call_id;
    q->deadline = deadline;
}

static void s_drain_queue(brokerq_t *self)
{
    int64_t now = bus_now_ms();
    while (self->qlen > 0) {
        queued_t *q = &self->queue[self->qhead];
        bool expired = q->deadline && q->deadline <= now;
        if (!expired && s_holding(self, now))
            return; /* a new key: wait for the workers on it */
        if (!expired && self->nworkers > 0 && !s_try_send(self, q->client, q->envelope, q->call_id))
            return; /* every worker busy: wait */
        self->qhead = (self->qhead + 1) % MAX_QUEUED;
        self->qlen--;
        zframe_destroy(&q->envelope);
        if (expired || self->nworkers == 0)
            s_answer_error(self, q->client, q->call_id,
                           expired ? PORTICO__ERROR_CODE__TIMEOUT : PORTICO__ERROR_CODE__UNAVAILABLE,
                           expired ? "the sign-in service is busy; please try again"
                                   : "no sign-in service (broker) is running; ask your operator to start one");
        else
            zframe_destroy(&q->client);
    }
}

static void s_on_frontend(brokerq_t *self)
{
    zmsg_t *m = zmsg_recv(self->frontend);
    if (!m)
        return;
    if (zmsg_size(m) != 2) {
        zmsg_destroy(&m);
        return;
    }
    zframe_t *client = zmsg_pop(m);
    zframe_t *envelope = zmsg_pop(m);
    zmsg_destroy(&m);
    Portico__Request *req = portico__request__unpack(NULL, zframe_size(envelope), zframe_data(envelope));
    if (!req) {
        zframe_destroy(&envelope);
        s_answer_error(self, client, 0, PORTICO__ERROR_CODE__BAD_REQUEST, "the message could not be decoded");
        return;
    }
    uint64_t call_id = req->call_id;
    int64_t deadline = req->deadline_ms;
    portico__request__free_unpacked(req, NULL);
    s_dispatch(self, client, envelope, call_id, deadline);
}

/* One message from a worker (taken). */
static void s_on_backend_msg(brokerq_t *self, zmsg_t **msg_p)
{
    zmsg_t *m = *msg_p;
    *msg_p = NULL;
    if (!m)
        return;
    int64_t now = bus_now_ms();
    /* Only broker workers get past the ZAP handler; check it again on every
     * message all the same, by the authenticated name. */
    if (busauth_enabled()) {
        const char *peer = busauth_peer(zmsg_last(m));
        if (!peer || strcmp(peer, "broker") != 0) {
            busauth_log_refused("broker worker", peer ? peer : "unauthenticated", "");
            zmsg_destroy(&m);
            return;
        }
    }
    zframe_t *identity = zmsg_pop(m);
    worker_t *w = identity ? s_find(self, identity) : NULL;
    if (zmsg_size(m) == 1) {
        zframe_t *ctl = zmsg_first(m);
        size_t n = zframe_size(ctl);
        const char *data = (const char *)zframe_data(ctl);
        size_t rl = strlen(BUS_WORKER_READY);
        if (w && n == strlen(BUS_WORKER_BYE) && !memcmp(data, BUS_WORKER_BYE, n)) {
            /* A worker stopping: nothing new for it; what it holds it answers. */
            w->leaving = true;
            w->last_seen = now;
            if (!w->busy)
                s_remove(self, w, "stopped");
        } else if (n >= rl && !memcmp(data, BUS_WORKER_READY, rl) && !w && self->nworkers < MAX_WORKERS) {
            /* A worker we do not know yet: it is idle by definition. */
            w = &self->workers[self->nworkers++];
            memset(w, 0, sizeof *w);
            w->identity = identity;
            identity = NULL;
            size_t in = n > rl + 1 ? n - rl - 1 : 0;
            if (in >= sizeof w->instance)
                in = sizeof w->instance - 1;
            memcpy(w->instance, data + rl + 1, in);
            w->instance[in] = '\0';
            for (char *p = w->instance; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\')
                    *p = '?';
            w->idle_since = now;
            w->last_seen = now;
            char q[200];
            log_info("broker worker connected", "instance=%s workers=%d", log_quote(w->instance, q, sizeof q),
                     self->nworkers);
            s_stats_update(self);
        } else if (w) {
            w->last_seen = now;
        }
    } else if (zmsg_size(m) == 2 && w) {
        /* A reply: [client][envelope]. */
        w->last_seen = now;
        s_count_handled(self, w->instance);
        zmsg_send(&m, self->frontend);
        zframe_destroy(&w->client);
        w->busy = false;
        w->idle_since = now;
        if (w->leaving)
            s_remove(self, w, "stopped");
        s_stats_update(self);
    }
    zframe_destroy(&identity);
    zmsg_destroy(&m);
    s_drain_queue(self);
}

static void s_on_backend(brokerq_t *self)
{
    zmsg_t *m = zmsg_recv(self->backend);
    s_on_backend_msg(self, &m);
}

static void s_expire(brokerq_t *self)
{
    int64_t now = bus_now_ms();
    for (int i = self->nworkers - 1; i >= 0; i--)
        if (now - self->workers[i].last_seen > BUS_HEARTBEAT_TIMEOUT_MS)
            s_remove(self, &self->workers[i], "heartbeat lost");
    if (self->hold_until && now >= self->hold_until) {
        self->hold_until = 0;
        if (self->nworkers == 0)
            log_warn("no broker worker came back with the new bus key", "waited_ms=%d", REKEY_HOLD_MS);
        s_stats_update(self);
    }
    s_drain_queue(self);
}

/* ---- a new bus key (README: Bus keys) ---- */

static int s_busy(const brokerq_t *self)
{
    int n = 0;
    for (int i = 0; i < self->nworkers; i++)
        n += self->workers[i].busy;
    return n;
}

/* What the old key's connections had sent before they were let go: the
 * answers still reach the web's threads. */
static void s_settle(void *arg, zsock_t *sock, zmsg_t **msg_p)
{
    (void)sock;
    s_on_backend_msg(arg, msg_p);
}

/* The workers' port is bound with the web's key, fixed at bind, and
 * unbinding ends the connections made on it (as for the registry): so hold
 * new work while the workers finish what they hold, let the old key's
 * connections go and bind again. Workers that know the new key (they
 * connect with every key of the web in the keys folder) say READY on it
 * within a second; the work held meanwhile goes to them. */
static void s_rekey_step(brokerq_t *self, int64_t now)
{
    if (atomic_exchange(&self->rekey, false) && !self->rotating) {
        self->rotating = true;
        self->rotate_limit = now + REKEY_DRAIN_MS;
        log_info("changing the bus key: new sign-in work waits while the workers finish theirs", "busy=%d",
                 s_busy(self));
    }
    int busy = self->rotating ? s_busy(self) : 0;
    if (!self->rotating || (busy > 0 && now < self->rotate_limit))
        return;
    if (busy > 0)
        log_warn("changing the bus key with sign-in work still in flight", "busy=%d", busy);
    int rc = bus_rebind_with(self->backend, self->bind_endpoint, s_settle, self);
    /* Every worker known so far came on the old key: gone with it. */
    while (self->nworkers > 0) {
        worker_t *w = &self->workers[self->nworkers - 1];
        w->leaving = true;
        s_remove(self, w, "the bus key changed");
    }
    self->rotating = false;
    self->hold_until = bus_now_ms() + REKEY_HOLD_MS;
    if (rc < 0) {
        log_error("could not bind the broker port again with the new bus key", "endpoint=%s", self->bind_endpoint);
        service_request_stop();
    }
    s_drain_queue(self);
}

static void *s_run(void *arg)
{
    brokerq_t *self = arg;
    /* Named for top, perf and strace. */
    pthread_setname_np(pthread_self(), "portico-brokerq");
    int64_t last_expire = 0;
    while (!atomic_load(&self->stop)) {
        zmq_pollitem_t items[] = {{zsock_resolve(self->frontend), 0, ZMQ_POLLIN, 0},
                                  {zsock_resolve(self->backend), 0, ZMQ_POLLIN, 0}};
        int rc = zmq_poll(items, 2, 100);
        if (rc < 0 && zmq_errno() != EINTR)
            break;
        if (items[1].revents & ZMQ_POLLIN)
            s_on_backend(self);
        if (items[0].revents & ZMQ_POLLIN)
            s_on_frontend(self);
        int64_t now = bus_now_ms();
        s_rekey_step(self, now);
        if (now - last_expire >= 200) {
            s_expire(self);
            last_expire = now;
        }
    }
    while (self->qlen > 0) {
        queued_t q = self->queue[self->qhead];
        self->qhead = (self->qhead + 1) % MAX_QUEUED;
        self->qlen--;
        zframe_destroy(&q.envelope);
        s_answer_error(self, q.client, q.call_id, PORTICO__ERROR_CODE__UNAVAILABLE, "Portico is shutting down");
    }
    for (int i = 0; i < self->nworkers; i++) {
        zframe_destroy(&self->workers[i].identity);
        zframe_destroy(&self->workers[i].client);
    }
    self->nworkers = 0;
    return NULL;
}

brokerq_t *brokerq_new(const char *bind_endpoint)
{
    brokerq_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    pthread_mutex_init(&self->stats_lock, NULL);
    self->frontend = zsock_new(ZMQ_ROUTER);
    self->backend = zsock_new(ZMQ_ROUTER);
    if (!self->frontend || !self->backend)
        goto fail;
    bus_socket_tune(self->frontend);
    bus_socket_tune(self->backend);
    bus_socket_serve(self->backend);
    zsock_set_router_mandatory(self->backend, 1);
    if (busauth_enabled() && busauth_server(self->backend) < 0)
        goto fail;
    /* A name of its own: an inproc name is released only some time after
     * its socket closes. */
    static atomic_int instances;
    snprintf(self->frontend_endpoint, sizeof self->frontend_endpoint, "inproc://portico-brokerq-%d",
             atomic_fetch_add(&instances, 1));
    if (zsock_bind(self->frontend, "%s", self->frontend_endpoint) < 0) {
        log_error("could not bind the broker queue", "endpoint=%s", self->frontend_endpoint);
        goto fail;
    }
    if (bus_bind(self->backend, bind_endpoint) < 0)
        goto fail;
    metrics_help("portico_broker_workers_connected", "gauge", "Broker worker threads connected to the web");
    metrics_set("portico_broker_workers_connected", NULL, 0);
    snprintf(self->bind_endpoint, sizeof self->bind_endpoint, "%s", bind_endpoint);
    if (pthread_create(&self->thread, NULL, s_run, self) != 0)
        goto fail;
    log_info("broker queue listening", "endpoint=%s", bind_endpoint);
    return self;
fail:
    zsock_destroy(&self->frontend);
    zsock_destroy(&self->backend);
    pthread_mutex_destroy(&self->stats_lock);
    free(self);
    return NULL;
}

void brokerq_destroy(brokerq_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    brokerq_t *self = *self_p;
    atomic_store(&self->stop, true);
    pthread_join(self->thread, NULL);
    zsock_unbind(self->backend, "%s", self->bind_endpoint);
    zsock_destroy(&self->frontend);
    zsock_destroy(&self->backend);
    pthread_mutex_destroy(&self->stats_lock);
    free(self);
    *self_p = NULL;
}

const char *brokerq_frontend(const brokerq_t *self)
{
    return self->frontend_endpoint;
}

void brokerq_rekey(brokerq_t *self)
{
    atomic_store(&self->rekey, true);
}

int brokerq_workers(brokerq_t *self)
{
    return atomic_load(&self->workers_connected);
}

int brokerq_instances(brokerq_t *self, brokerq_instance_t *out, int max)
{
    pthread_mutex_lock(&self->stats_lock);
    int n = self->nstats < max ? self->nstats : max;
    memcpy(out, self->stats, (size_t)n * sizeof *out);
    pthread_mutex_unlock(&self->stats_lock);
    return n;
}
