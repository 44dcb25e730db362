#include "server.h"

#include "bus.h"
#include "bus_methods.h"
#include "db.h"
#include "handlers.h"
#include "log.h"
#include "migrations.h"
#include "monitor.h"
#include "secrets.h"
#include "service.h"
#include "setup.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WORKERS_ENDPOINT "inproc://registry-workers"
#define POLL_MS 200
#define DRAIN_BATCH 256
#define ROTATE_GRACE_MS 300
#define CONNECT_BUDGET_MS 3000
#define REQUEST_RECONNECT_BUDGET_MS 1000

typedef struct {
    const reg_options_t *opts;
    const crypto_keyring_t *keys;
    atomic_bool stop;
} pool_t;

typedef struct {
    pool_t *pool;
    int index;
    pthread_t thread;
    bool started;
} worker_t;

static void *s_worker(void *arg)
{
    worker_t *w = arg;
    const reg_options_t *opts = w->pool->opts;
    char name[32];
    snprintf(name, sizeof name, "worker-%d", w->index);
    db_t *db = db_new(opts->database_url, opts->statement_timeout_ms, name);
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    if (!db || !sock) {
        log_error("could not start a worker", "worker=%d", w->index);
        goto out;
    }
    bus_socket_tune(sock);
    if (zsock_connect(sock, WORKERS_ENDPOINT) < 0) {
        log_error("could not connect a worker to the queue", "worker=%d", w->index);
        goto out;
    }
    /* The database answered the migrations a moment ago: this is quick. */
    db_ensure(db, REQUEST_RECONNECT_BUDGET_MS);
    reg_ctx_t ctx = {db, w->pool->keys, opts};
    /* Wait in the receive itself, not in a zmq_poll before it: zmq_poll
     * asks ZMQ_EVENTS before and after its poll (each a getpid, libzmq's
     * fork check, and a poll of the socket's mailbox) and polls twice;
     * a receive with a timeout waits in one poll of that mailbox. */
    zsock_set_rcvtimeo(sock, POLL_MS);
    while (!atomic_load(&w->pool->stop)) {
        zmsg_t *msg = zmsg_recv(sock);
        if (!msg)
            continue;
        /* Never wait long for a database that is away: the handler then
         * answers UNAVAILABLE at once. */
        db_ensure(db, REQUEST_RECONNECT_BUDGET_MS);
        /* The shuttle put the caller's authenticated name in front. */
        char *caller = zmsg_popstr(msg);
        bus_serve_as(sock, &msg, registry_routes, &ctx, caller ? caller : "");
        zstr_free(&caller);
    }
out:
    zsock_destroy(&sock);
    db_destroy(&db);
    return NULL;
}

/* Move one whole multi-part message, if one is waiting. 1, 0 or -1. */
static int s_forward(void *from, void *to)
{
    zmq_msg_t part;
    bool first = true;
    for (;;) {
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, from, first ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&part);
            return first && zmq_errno() == EAGAIN ? 0 : -1;
        }
        first = false;
        bool more = zmq_msg_more(&part);
        if (zmq_msg_send(&part, to, more ? ZMQ_SNDMORE : 0) < 0) {
            zmq_msg_close(&part);
            return -1;
        }
        if (!more)
            return 1;
    }
}

/* Forward everything waiting on from; returns how many messages moved. */
static int s_drain(void *from, void *to)
{
    int n = 0;
    while (n < DRAIN_BATCH && s_forward(from, to) == 1)
        n++;
    return n;
}

/* Move one request from the bus to the workers, with the name of the
 * service that sent it (its CURVE key, as the ZAP handler admitted it) in
 * a frame of its own in front: the workers know the caller only this way.
 * The front receives without waiting (its receive timeout is 0): a receive
 * that finds nothing is the check, no ZMQ_EVENTS before it. 2 when one was
 * forwarded, 1 when one was dropped, 0 when none was waiting. */
static int s_forward_request(zsock_t *front, zsock_t *back)
{
    zmsg_t *msg = zmsg_recv(front);
    if (!msg)
        return 0;
    const char *peer = busauth_peer(zmsg_last(msg));
    if (!peer) {
        busauth_log_refused("request", "unauthenticated", "");
        zmsg_destroy(&msg);
        return 1;
    }
    zmsg_pushstr(msg, peer);
    if (zmsg_send(&msg, back) < 0)
        zmsg_destroy(&msg);
    return 2;
}

/* Forward the requests waiting, up to a batch: how many were forwarded in
 * *n; false when the batch ended with more perhaps waiting. */
static bool s_drain_requests(zsock_t *front, zsock_t *back, int *n)
{
    int rc;
    *n = 0;
    for (int i = 0; i < DRAIN_BATCH; i++) {
        if ((rc = s_forward_request(front, back)) == 0)
            return true;
        *n += rc == 2;
    }
    return false;
}

/* Connect, migrate and settle the setup token before serving. 0, or the
 * exit status. */
static int s_prepare_database(const reg_options_t *opts)
{
    int status = 1;
    char why[512];
    db_t *db = db_new(opts->database_url, opts->statement_timeout_ms, "startup");
    if (!db)
        return 1;
    while (!db_ensure(db, CONNECT_BUDGET_MS)) {
        if (service_stopping()) {
            status = 0;
            goto out;
        }
        char q[300];
        log_warn("could not connect to the database; retrying", "error=%s", log_quote(db_last_error(db), q, sizeof q));
        db_reset_backoff(db);
        for (int i = 0; i < 5 && !service_stopping(); i++)
            usleep(200 * 1000);
    }
    int applied = 0, version = 0;
    if (migrations_apply(db, &applied, &version, why, sizeof why) < 0) {
        char q[700];
        log_error("refusing to start", "reason=%s", log_quote(why, q, sizeof q));
        goto out;
    }
    log_info("database schema is current", "version=%d applied=%d db=%s", version, applied, db_describe(db));
    /* Registries starting together settle the setup token one at a time:
     * the first makes it, the others find it. */
    if (db_lock(db, DB_LOCK_SETUP) != DB_OK || setup_token_init(db, opts) < 0) {
        log_error("could not initialise the setup token", NULL);
        goto out;
    }
    status = 0;
out:
    db_destroy(&db);
    return status;
}

typedef struct {
    zsock_t *front, *back;
    int64_t inflight;
    const char *bind;
} shuttle_t;

/* While stopping or changing keys: answer a new request at once with
 * UNAVAILABLE rather than leave its caller waiting for the deadline. */
static void s_refuse_with(zsock_t *front, int detail, const char *message)
{
    zmsg_t *msg = zmsg_recv(front);
    bus_refuse(front, &msg, detail, message);
}

static void s_refuse(zsock_t *front)
{
    s_refuse_with(front, DETAIL(STOPPING), "the registry is restarting; try again in a moment");
}

/* Serve with the bus key just read again (SIGHUP, README: Bus keys). A
 * socket's CURVE key is fixed when it binds, and unbinding ends the
 * connections made on the old key: so first answer ROTATING (nothing
 * run; callers send again, and stop using the old key's connection) for
 * a moment and carry the answers of everything in flight, then let the old
 * connections go, with time to deliver the last answers, and bind again.
 * Callers that know the new key are connected with it within a second. */
static int s_rotate(shuttle_t *s, const char *bind)
{
    void *front = zsock_resolve(s->front), *back = zsock_resolve(s->back);
    zmq_pollitem_t items[] = {{front, 0, ZMQ_POLLIN, 0}, {back, 0, ZMQ_POLLIN, 0}};
    int64_t started = bus_now_ms(), grace = started + ROTATE_GRACE_MS, limit = started + SERVICE_DRAIN_MS;
    while ((bus_now_ms() < grace || s->inflight > 0) && bus_now_ms() < limit) {
        if (zmq_poll(items, 2, 20) <= 0)
            continue;
        if (items[0].revents & ZMQ_POLLIN)
            s_refuse_with(s->front, DETAIL(ROTATING), "the registry is changing its bus key; send again");
        if (items[1].revents & ZMQ_POLLIN)
            s->inflight -= s_drain(back, front);
    }
    zmq_pollitem_t one = {front, 0, ZMQ_POLLIN, 0};
    while (zmq_poll(&one, 1, 0) > 0)
        s_refuse_with(s->front, DETAIL(ROTATING), "the registry is changing its bus key; send again");
    return bus_rebind(s->front, bind);
}

/* The front and the back are watched through their ZMQ_FD, as plain
 * descriptors, not with zmq_poll: for a ZeroMQ socket zmq_poll asks
 * ZMQ_EVENTS before and after its poll (each a getpid, libzmq's fork
 * check, and a poll of the socket's mailbox), for both sockets, and polls
 * twice. ZMQ_FD only signals that a socket's state changed, once: so a
 * socket is read until a receive finds nothing (that receive makes it
 * signal again), when its descriptor fired, when the batch before stopped
 * with more waiting, when a send on it (which also looks at its mailbox)
 * may have taken the signal, and on every tick. A socket none of this
 * applies to is not asked at all. */
static void s_serve(shuttle_t *s)
{
    void *back = zsock_resolve(s->back);
    struct pollfd fds[] = {{zsock_fd(s->front), POLLIN, 0}, {zsock_fd(s->back), POLLIN, 0}};
    bool front_due = true, back_due = true; /* anything before the first poll */
    while (!service_stopping()) {
        if (service_take_reload() && busauth_reload_secret() == 1) {
            if (s_rotate(s, s->bind) < 0) {
                log_error("could not bind again with the new bus key", "endpoint=%s", s->bind);
                service_request_stop();
                break;
            }
            front_due = back_due = true;
        }
        if (!front_due && !back_due) {
            int rc = poll(fds, 2, POLL_MS);
            if (rc < 0 && errno != EINTR) {
                log_error("polling the bus failed", "error=\"%s\"", strerror(errno));
                break;
            }
            front_due = rc <= 0 || fds[0].revents;
            back_due = rc <= 0 || fds[1].revents;
        }
        int n;
        if (front_due) {
            front_due = !s_drain_requests(s->front, s->back, &n);
            s->inflight += n;
            back_due = back_due || n > 0;
        }
        if (back_due) {
            n = s_drain(back, zsock_resolve(s->front));
            back_due = n == DRAIN_BATCH;
            s->inflight -= n;
            front_due = front_due || n > 0;
        }
    }
}

/* Returns when the process was asked to stop (ms since the epoch). */
static int64_t s_shuttle(shuttle_t *s, monitor_t *monitor)
{
    void *front = zsock_resolve(s->front), *back = zsock_resolve(s->back);
    zmq_pollitem_t items[] = {{front, 0, ZMQ_POLLIN, 0}, {back, 0, ZMQ_POLLIN, 0}};
    s_serve(s);
    /* Stop taking requests; carry the answers of those in flight. Health
     * checks say "stopping" from now on. */
    int64_t stop_seen = bus_now_ms(), until = stop_seen + SERVICE_DRAIN_MS;
    monitor_request_stop(monitor);
    while (s->inflight > 0 && bus_now_ms() < until) {
        if (zmq_poll(items, 2, 100) <= 0)
            continue;
        if (items[0].revents & ZMQ_POLLIN)
            s_refuse(s->front);
        if (items[1].revents & ZMQ_POLLIN)
            s->inflight -= s_drain(back, front);
    }
    if (s->inflight > 0)
        log_warn("stopping with requests still in flight", "requests=%lld", (long long)s->inflight);
    return stop_seen;
}

/* Stop the workers and the monitor, and wait for the health endpoint to
 * close (it began at the stop: service.h), still refusing new requests
 * while they finish, so no caller is left waiting for its deadline. Past
 * the budget the process ends anyway. */
static void s_stop_threads(pool_t *pool, worker_t *workers, int n, monitor_t *monitor, zsock_t *front,
                           int64_t stop_seen)
{
    atomic_store(&pool->stop, true);
    zmq_pollitem_t item = {zsock_resolve(front), 0, ZMQ_POLLIN, 0};
    for (int i = 0; i <= n + 1; i++) {
        for (;;) {
            bool done = i < n    ? !workers[i].started || pthread_tryjoin_np(workers[i].thread, NULL) == 0
                        : i == n ? monitor_done(monitor)
                                 : service_health_closed();
            if (done)
                break;
            if (bus_now_ms() - stop_seen > SERVICE_STOP_BUDGET_MS) {
                log_warn("a thread did not finish in time; exiting anyway", "worker=%d", i);
                _exit(0);
            }
            if (zmq_poll(&item, 1, 20) > 0)
                s_refuse(front);
        }
    }
}

int server_run(const reg_options_t *opts)
{
    int status = 1;
    char why[600], instance[96];
    crypto_keyring_t *keys = NULL;
    monitor_t *monitor = NULL;
    worker_t *workers = NULL;
    pool_t pool = {opts, NULL, false};
    shuttle_t shuttle = {NULL, NULL, 0, opts->bind};

    keys = secrets_load(opts->key_file, opts->key_file_previous, why, sizeof why);
    if (!keys) {
        char q[700];
        log_error("refusing to start without the secret key", "reason=%s", log_quote(why, q, sizeof q));
        return 2;
    }
    pool.keys = keys;
    service_instance_name(instance, sizeof instance);
    monitor = monitor_new(opts);
    if (!monitor)
        goto out;
    bus_set_identity("registry", instance, monitor_ready, monitor);
    if (service_health_start(opts->health_addr, monitor_ready, monitor) < 0)
        goto out;

    if ((status = s_prepare_database(opts)) != 0 || service_stopping())
        goto out;
    status = 1;
    if (monitor_start(monitor) < 0)
        goto out;

    shuttle.front = zsock_new(ZMQ_ROUTER);
    shuttle.back = zsock_new(ZMQ_DEALER);
    if (!shuttle.front || !shuttle.back)
        goto out;
    bus_socket_tune(shuttle.front);
    bus_socket_serve(shuttle.front);
    /* Read only when a request may be waiting: never wait in a receive. */
    zsock_set_rcvtimeo(shuttle.front, 0);
    bus_socket_tune(shuttle.back);
    if (busauth_server(shuttle.front) < 0)
        goto out;
    if (zsock_bind(shuttle.back, WORKERS_ENDPOINT) < 0)
        goto out;
    if (bus_bind(shuttle.front, opts->bind) < 0)
        goto out;
    workers = calloc((size_t)opts->workers, sizeof *workers);
    if (!workers)
        goto out;
    for (int i = 0; i < opts->workers; i++) {
        workers[i].pool = &pool;
        workers[i].index = i;
        if (service_thread_start(&workers[i].thread, "worker", s_worker, &workers[i]) < 0) {
            service_request_stop();
            break;
        }
        workers[i].started = true;
    }
    log_info("registry serving", "endpoint=%s workers=%d health=%s", opts->bind, opts->workers, opts->health_addr);

    int64_t stop_seen = s_shuttle(&shuttle, monitor);
    log_info("registry stopping", "waited_ms=%lld", (long long)(bus_now_ms() - stop_seen));
    s_stop_threads(&pool, workers, opts->workers, monitor, shuttle.front, stop_seen);
    status = 0;
out:
    /* Replies the drain queued leave within a second (bus sockets linger 0). */
    if (shuttle.front)
        zsock_set_linger(shuttle.front, 1000);
    zsock_destroy(&shuttle.front);
    zsock_destroy(&shuttle.back);
    free(workers);
    /* The health endpoint asks the monitor: close it first. */
    service_health_stop();
    monitor_destroy(&monitor);
    crypto_keyring_destroy(&keys);
    if (status == 0)
        log_info("registry stopped", NULL);
    return status;
}
