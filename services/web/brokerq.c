#include "brokerq.h"

#include "bus.h"
#include "crypto.h"
#include "log.h"
#include "metrics.h"
#include "service.h"

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 1024
#define MAX_QUEUED 4096
#define MAX_INSTANCES 64
/* A new bus key (brokerq_rekey): how long the workers' requests in flight
 * may take before the old key's connections are let go anyway, and how
 * long new work waits for workers to come back on the new key. */
#define REKEY_DRAIN_MS SERVICE_DRAIN_MS
#define REKEY_HOLD_MS 5000
/* A worker repeats READY every BUS_HEARTBEAT_IVL_MS while idle (HB while
 * busy), at most a quarter of a second late when all is well. One not
 * heard from for two intervals has missed a heartbeat: it may be gone
 * without a word (its host lost, its process frozen), which the queue
 * learns only after BUS_HEARTBEAT_TIMEOUT_MS. Meanwhile new work goes to
 * a worker heard from within two intervals, while there is one. */
#define WORKER_FRESH_MS (BUS_HEARTBEAT_IVL_MS * 2)

typedef struct {
    zframe_t *identity;
    char instance[96];
    int64_t last_seen;
    int64_t idle_since;
    bool busy;
    bool leaving;     /* said BYE: no new work, removed once idle */
    zframe_t *client; /* the request in flight, to fail it if the worker dies */
    uint64_t call_id;
    /* ... or to hand it to another worker, when it may run twice */
    zframe_t *envelope;
    const char *method;
    int64_t deadline;
} worker_t;

/* A request waiting for a worker. method: its name (a static string). */
typedef struct {
    zframe_t *client;
    zframe_t *envelope;
    uint64_t call_id;
    int64_t deadline;
    const char *method;
} queued_t;

/* A call handed over in memory (brokerq_call). It lives on the caller's
 * stack; the caller takes it out of the list when it returns, so an answer
 * that comes later finds nobody and is dropped. On the way to a worker it
 * is named by a client frame of DIRECT_FRAME_SIZE bytes, DIRECT_MARK and
 * its id, which the worker sends back with the answer. */
#define DIRECT_MARK 'D'
#define DIRECT_FRAME_SIZE 9
typedef struct direct_t {
    uint64_t id;
    const uint8_t *env;
    size_t env_len;
    uint64_t call_id;
    int64_t deadline;
    const char *method;
    bool taken; /* the queue's thread has it */
    bool done;
    uint8_t *reply; /* the reply envelope (malloc'd) */
    size_t reply_len;
    pthread_cond_t cond;
    struct direct_t *next;
} direct_t;

struct brokerq_t {
    pthread_t thread;
    atomic_bool stop;
    atomic_int workers_connected;
    atomic_bool rekey; /* asked for: switch to the key busauth holds now */
    bool rotating;     /* holding new work until the workers are idle */
    int64_t rotate_limit;
    int64_t hold_until; /* after the switch: work waits for workers until then */
    zsock_t *backend;
    bool backend_due; /* read the backend before waiting again (s_run) */
    char bind_endpoint[256];
    worker_t workers[MAX_WORKERS];
    int nworkers;
    queued_t queue[MAX_QUEUED];
    int qhead, qlen;
    /* Requests of workers lost while holding them, to route again
     * (s_reroute_lost): filled by s_remove, emptied by its callers. */
    queued_t lost[MAX_WORKERS];
    int nlost;
    pthread_mutex_t stats_lock;
    brokerq_instance_t stats[MAX_INSTANCES];
    int nstats;
    /* brokerq_call: calls waiting or in flight, and an eventfd that wakes
     * the thread when the first untaken one arrives. */
    pthread_mutex_t calls_lock;
    direct_t *calls;
    int untaken;
    uint64_t next_direct;
    int wakefd;
};

static bool s_is_direct(zframe_t *client, uint64_t *id)
{
    if (zframe_size(client) != DIRECT_FRAME_SIZE || zframe_data(client)[0] != DIRECT_MARK)
        return false;
    memcpy(id, zframe_data(client) + 1, sizeof *id);
    return true;
}

/* The answer to a brokerq_call: to its caller, if it still waits. */
static void s_direct_done(brokerq_t *self, uint64_t id, const uint8_t *data, size_t len)
{
    pthread_mutex_lock(&self->calls_lock);
    for (direct_t *d = self->calls; d; d = d->next) {
        if (d->id != id || !d->taken || d->done)
            continue;
        d->reply = malloc(len ? len : 1);
        if (d->reply) {
            memcpy(d->reply, data, len);
            d->reply_len = len;
        }
        d->done = true;
        pthread_cond_signal(&d->cond);
        break;
    }
    pthread_mutex_unlock(&self->calls_lock);
}

/* Hand [client][envelope] (taken) to the brokerq_call that asked. */
static void s_to_client(brokerq_t *self, zmsg_t **msg_p)
{
    zmsg_t *m = *msg_p;
    uint64_t id;
    if (zmsg_size(m) == 2 && s_is_direct(zmsg_first(m), &id)) {
        zframe_t *env = zmsg_last(m);
        s_direct_done(self, id, zframe_data(env), zframe_size(env));
    }
    zmsg_destroy(msg_p);
}

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
        s_to_client(self, &m);
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

/* Calls that do no harm when they run twice, so that one held by a worker
 * lost without a word is handed to another rather than failed: a new
 * pending login (the lost worker's, if it stored one, expires unused), a
 * repository list (a token refresh in it is made once, however many ask),
 * a Base URL check. Not login.finish: the lost worker may have exchanged
 * the code, which Bitbucket takes once only. */
static bool s_repeatable(const char *method)
{
    return method && (!strcmp(method, "login.start") || !strcmp(method, "user.repositories") ||
                      !strcmp(method, "integration.check"));
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
    zframe_t *held = w->busy ? w->client : NULL;
    queued_t again = {held, w->envelope, w->call_id, w->deadline, w->method};
    if (!held)
        zframe_destroy(&w->client);
    w->client = NULL;
    w->envelope = NULL;
    zframe_destroy(&w->identity);
    *w = self->workers[--self->nworkers];
    memset(&self->workers[self->nworkers], 0, sizeof self->workers[0]);
    s_stats_update(self);
    if (!held) {
        zframe_destroy(&again.envelope);
        return;
    }
    /* A request that may run twice goes to another worker (by the
     * caller's s_reroute_lost); any other is failed: the lost worker may
     * have done part of it (a login's code can be exchanged once only). */
    if (again.envelope && s_repeatable(again.method) && self->nlost < MAX_WORKERS) {
        self->lost[self->nlost++] = again;
        return;
    }
    zframe_destroy(&again.envelope);
    /* After the count changed: a caller answered at once sees it. */
    s_answer_error(self, held, again.call_id, PORTICO__ERROR_CODE__UNAVAILABLE,
                   "the sign-in service stopped while handling this request; please try again");
}

/* Send a copy of one request to a worker; 0, or -1 when the worker is gone. */
static int s_send_to(brokerq_t *self, worker_t *w, const queued_t *q)
{
    zframe_t *client = q->client, *envelope = q->envelope;
    zmsg_t *m = zmsg_new();
    zmsg_addmem(m, zframe_data(w->identity), zframe_size(w->identity));
    zmsg_addmem(m, zframe_data(client), zframe_size(client));
    zmsg_addmem(m, zframe_data(envelope), zframe_size(envelope));
    int rc = zmsg_send(&m, self->backend);
    zmsg_destroy(&m);
    /* A send looks at the socket's mailbox too: it may have taken the
     * ZMQ_FD signal of a message waiting. */
    self->backend_due = true;
    if (rc < 0)
        return -1;
    w->busy = true;
    w->client = zframe_dup(client);
    w->call_id = q->call_id;
    w->envelope = s_repeatable(q->method) ? zframe_dup(envelope) : NULL;
    w->method = q->method;
    w->deadline = q->deadline;
    return 0;
}

/* The worker idle longest among those heard from recently, else among
 * all (WORKER_FRESH_MS). */
static worker_t *s_idlest(brokerq_t *self)
{
    int64_t now = bus_now_ms();
    worker_t *best = NULL;
    bool best_fresh = false;
    for (int i = 0; i < self->nworkers; i++) {
        worker_t *w = &self->workers[i];
        if (w->busy || w->leaving)
            continue;
        bool fresh = now - w->last_seen <= WORKER_FRESH_MS;
        if (!best || (fresh && !best_fresh) || (fresh == best_fresh && w->idle_since < best->idle_since)) {
            best = w;
            best_fresh = fresh;
        }
    }
    return best;
}

/* Hand the request to the idlest worker. 1 when sent, 0 when every worker
 * is busy (or none is left). */
static int s_try_send(brokerq_t *self, const queued_t *q)
{
    worker_t *w;
    while ((w = s_idlest(self)) != NULL) {
        if (s_send_to(self, w, q) == 0) {
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
static void s_dispatch(brokerq_t *self, queued_t r)
{
    if (!self->rotating && s_try_send(self, &r)) {
        zframe_destroy(&r.client);
        zframe_destroy(&r.envelope);
        return;
    }
    if ((self->nworkers == 0 && !s_holding(self, bus_now_ms())) || self->qlen == MAX_QUEUED) {
        zframe_destroy(&r.envelope);
        s_answer_error(self, r.client, r.call_id, PORTICO__ERROR_CODE__UNAVAILABLE,
                       self->nworkers == 0 ? "no sign-in service (broker) is running; ask your operator to start one"
                                           : "the sign-in service is overloaded; please try again");
        return;
    }
    self->queue[(self->qhead + self->qlen++) % MAX_QUEUED] = r;
}

/* The requests of workers lost while holding them (s_remove): to another
 * worker, or into the queue, with the time they had left. */
static void s_reroute_lost(brokerq_t *self)
{
    while (self->nlost > 0) {
        queued_t r = self->lost[--self->nlost];
        if (r.deadline && r.deadline <= bus_now_ms()) { /* its caller has given up */
            zframe_destroy(&r.client);
            zframe_destroy(&r.envelope);
            continue;
        }
        char q[200];
        log_info("sign-in request handed to another broker worker", "method=%s", log_quote(r.method, q, sizeof q));
        metrics_inc("portico_broker_requests_rerouted_total", NULL, 1);
        s_dispatch(self, r);
    }
}

static void s_drain_queue(brokerq_t *self)
{
    int64_t now = bus_now_ms();
    while (self->qlen > 0) {
        queued_t *q = &self->queue[self->qhead];
        bool expired = q->deadline && q->deadline <= now;
        if (!expired && s_holding(self, now))
            return; /* a new key: wait for the workers on it */
        if (!expired && self->nworkers > 0 && !s_try_send(self, q))
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

/* The brokerq_calls handed over since the last look: to a worker, or into
 * the queue. */
static void s_on_calls(brokerq_t *self)
{
    uint64_t v;
    (void)!read(self->wakefd, &v, sizeof v);
    for (;;) {
        zframe_t *client = NULL, *envelope = NULL;
        uint64_t call_id = 0;
        int64_t deadline = 0;
        const char *method = NULL;
        pthread_mutex_lock(&self->calls_lock);
        for (direct_t *d = self->calls; d; d = d->next) {
            if (d->taken)
                continue;
            uint8_t name[DIRECT_FRAME_SIZE];
            name[0] = DIRECT_MARK;
            memcpy(name + 1, &d->id, sizeof d->id);
            client = zframe_new(name, sizeof name);
            envelope = zframe_new(d->env, d->env_len);
            call_id = d->call_id;
            deadline = d->deadline;
            method = d->method;
            d->taken = true;
            self->untaken--;
            break;
        }
        pthread_mutex_unlock(&self->calls_lock);
        if (!client && !envelope)
            return;
        if (!client || !envelope) {
            zframe_destroy(&envelope);
            zframe_destroy(&client);
            continue; /* out of memory: its caller times out */
        }
        s_dispatch(self, (queued_t){client, envelope, call_id, deadline, method});
    }
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
        s_to_client(self, &m);
        zframe_destroy(&w->client);
        zframe_destroy(&w->envelope);
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

/* What the workers sent, up to a batch: the receive does not wait (the
 * backend's receive timeout is 0), and one that finds nothing is the
 * check, no ZMQ_EVENTS before it. */
static void s_on_backend(brokerq_t *self)
{
    if (!self->backend_due)
        return;
    for (int i = 0; i < 256; i++) {
        zmsg_t *m = zmsg_recv(self->backend);
        if (!m) {
            self->backend_due = false;
            return;
        }
        s_on_backend_msg(self, &m);
    }
}

static void s_expire(brokerq_t *self)
{
    int64_t now = bus_now_ms();
    for (int i = self->nworkers - 1; i >= 0; i--)
        if (now - self->workers[i].last_seen > BUS_HEARTBEAT_TIMEOUT_MS)
            s_remove(self, &self->workers[i], "heartbeat lost");
    s_reroute_lost(self);
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
    self->backend_due = true; /* its zmq_poll took the signals */
    /* Every worker known so far came on the old key: gone with it. */
    while (self->nworkers > 0) {
        worker_t *w = &self->workers[self->nworkers - 1];
        w->leaving = true;
        s_remove(self, w, "the bus key changed");
    }
    self->rotating = false;
    self->hold_until = bus_now_ms() + REKEY_HOLD_MS;
    s_reroute_lost(self); /* held until workers come back on the new key */
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
    /* The backend is watched through its ZMQ_FD, as a plain descriptor
     * beside the eventfd, not with zmq_poll: for a ZeroMQ socket zmq_poll
     * asks ZMQ_EVENTS before and after its poll (each a getpid, libzmq's
     * fork check, and a poll of the socket's mailbox) and polls twice.
     * ZMQ_FD only signals that the socket's state changed, once: so the
     * backend is read until a receive finds nothing when its descriptor
     * fired, after a send on it, after a batch that stopped short, and on
     * every tick. */
    struct pollfd fds[] = {{zsock_fd(self->backend), POLLIN, 0}, {self->wakefd, POLLIN, 0}};
    self->backend_due = true; /* anything before the first poll */
    while (!atomic_load(&self->stop)) {
        bool calls = false;
        if (!self->backend_due) {
            int rc = poll(fds, 2, 100);
            if (rc < 0 && errno != EINTR)
                break;
            self->backend_due = rc <= 0 || fds[0].revents;
            calls = rc > 0 && fds[1].revents;
        }
        if (calls)
            s_on_calls(self);
        s_on_backend(self);
        int64_t now = bus_now_ms();
        s_rekey_step(self, now);
        if (now - last_expire >= 200) {
            s_expire(self);
            last_expire = now;
        }
    }
    s_on_calls(self); /* handed over at the last moment: answered below */
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
        zframe_destroy(&self->workers[i].envelope);
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
    pthread_mutex_init(&self->calls_lock, NULL);
    if (crypto_random(&self->next_direct, sizeof self->next_direct) < 0)
        self->next_direct = 0;
    self->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->wakefd < 0)
        goto fail;
    self->backend = zsock_new(ZMQ_ROUTER);
    if (!self->backend)
        goto fail;
    bus_socket_tune(self->backend);
    bus_socket_serve(self->backend);
    zsock_set_router_mandatory(self->backend, 1);
    /* Read only when a message may be waiting: never wait in a receive. */
    zsock_set_rcvtimeo(self->backend, 0);
    if (busauth_enabled() && busauth_server(self->backend) < 0)
        goto fail;
    if (bus_bind(self->backend, bind_endpoint) < 0)
        goto fail;
    metrics_help("portico_broker_workers_connected", "gauge", "Broker worker threads connected to the web");
    metrics_set("portico_broker_workers_connected", NULL, 0);
    metrics_help("portico_broker_requests_rerouted_total", "counter",
                 "Sign-in requests handed to another broker worker after theirs was lost");
    snprintf(self->bind_endpoint, sizeof self->bind_endpoint, "%s", bind_endpoint);
    if (pthread_create(&self->thread, NULL, s_run, self) != 0)
        goto fail;
    log_info("broker queue listening", "endpoint=%s", bind_endpoint);
    return self;
fail:
    zsock_destroy(&self->backend);
    if (self->wakefd >= 0)
        close(self->wakefd);
    pthread_mutex_destroy(&self->calls_lock);
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
    zsock_destroy(&self->backend);
    close(self->wakefd);
    pthread_mutex_destroy(&self->calls_lock);
    pthread_mutex_destroy(&self->stats_lock);
    free(self);
    *self_p = NULL;
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

/* ---- calls in memory ---- */

static void s_record(const char *method, int code, int64_t started)
{
    /* The labels bus_call gives a call, so the metrics do not change with
     * the way a call reaches the queue. */
    char labels[192];
    snprintf(labels, sizeof labels, "service=\"broker\",method=\"%s\",code=\"%s\"", method, bus_code_name(code));
    metrics_inc("portico_bus_calls_total", labels, 1);
    snprintf(labels, sizeof labels, "service=\"broker\",method=\"%s\"", method);
    metrics_observe("portico_bus_call_seconds", labels, (double)(bus_now_ms() - started) / 1000.0);
}

/* Hand one packed request to the queue's thread and wait for its answer
 * until deadline (bus_now_ms time). The reply envelope (malloc'd), or NULL
 * when none came in time. */
static uint8_t *s_exchange(brokerq_t *self, const char *method, const uint8_t *env, size_t env_len, uint64_t call_id,
                           int64_t deadline, size_t *reply_len)
{
    direct_t d;
    memset(&d, 0, sizeof d);
    d.method = method;
    d.env = env;
    d.env_len = env_len;
    d.call_id = call_id;
    d.deadline = deadline;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d.cond, &ca);
    pthread_condattr_destroy(&ca);

    pthread_mutex_lock(&self->calls_lock);
    d.id = ++self->next_direct;
    d.next = self->calls;
    self->calls = &d;
    /* One wake-up for the calls the thread has not taken yet: it takes
     * them all. */
    bool wake = self->untaken++ == 0;
    pthread_mutex_unlock(&self->calls_lock);
    if (wake) {
        uint64_t one = 1;
        (void)!write(self->wakefd, &one, sizeof one);
    }

    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    int64_t left = deadline - bus_now_ms();
    if (left < 0)
        left = 0;
    until.tv_sec += left / 1000;
    until.tv_nsec += (left % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&self->calls_lock);
    while (!d.done && pthread_cond_timedwait(&d.cond, &self->calls_lock, &until) != ETIMEDOUT)
        ;
    for (direct_t **p = &self->calls; *p; p = &(*p)->next)
        if (*p == &d) {
            *p = d.next;
            break;
        }
    if (!d.taken)
        self->untaken--;
    pthread_mutex_unlock(&self->calls_lock);
    pthread_cond_destroy(&d.cond);
    *reply_len = d.reply_len;
    return d.done ? d.reply : NULL;
}

int brokerq_call(brokerq_t *self, const bus_method_t *m, const ProtobufCMessage *req, ProtobufCMessage **resp,
                 int timeout_ms, bus_error_t *err)
{
    assert(!req || req->descriptor == m->req);
    const char *method = m->name;
    int rc = -1;
    int code = PORTICO__ERROR_CODE__INTERNAL;
    uint8_t *body = NULL, *env_buf = NULL, *reply_buf = NULL;
    Portico__Reply *reply = NULL;
    int64_t started = bus_now_ms();
    int64_t deadline = started + timeout_ms;
    int64_t serving = bus_current_deadline();
    if (serving && serving < deadline)
        deadline = serving;
    if (resp)
        *resp = NULL;
    if (deadline <= started) {
        bus_error_set(err, code = PORTICO__ERROR_CODE__TIMEOUT, DETAIL(NONE), "the request ran out of time");
        goto out;
    }
    Portico__Request env;
    char rid[64];
    if (bus_request_prepare(&env, rid, method, deadline, req, &body) < 0)
        goto out;
    static atomic_ullong call_ids;
    env.call_id = atomic_fetch_add(&call_ids, 1) + 1;
    size_t env_len = portico__request__get_packed_size(&env);
    if (env_len > BUS_MAX_MSG_SIZE) {
        bus_error_set(err, code = PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(NONE), "the request is too large");
        goto out;
    }
    env_buf = malloc(env_len ? env_len : 1);
    if (!env_buf)
        goto out;
    portico__request__pack(&env, env_buf);
    size_t reply_len = 0;
    reply_buf = s_exchange(self, method, env_buf, env_len, env.call_id, deadline, &reply_len);
    if (!reply_buf) {
        bus_error_set(err, code = PORTICO__ERROR_CODE__TIMEOUT, DETAIL(NONE),
                      "the broker service did not answer in time");
        goto out;
    }
    reply = portico__reply__unpack(NULL, reply_len, reply_buf);
    if (!reply || reply->call_id != env.call_id) {
        log_warn("bad reply envelope", "service=broker");
        bus_error_set(err, code = PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE),
                      "the broker service sent a reply we cannot read");
        goto out;
    }
    if (bus_reply_take(reply, "broker", m->rep, resp, &code, err) < 0)
        goto out;
    rc = 0;
out:
    if (rc < 0 && code == PORTICO__ERROR_CODE__INTERNAL && err && !err->message[0])
        bus_error_set(err, code, DETAIL(NONE), "internal error calling the broker service");
    s_record(method, rc == 0 ? 0 : code, started);
    if (reply)
        portico__reply__free_unpacked(reply, NULL);
    free(reply_buf);
    free(body);
    free(env_buf);
    return rc;
}
