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
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WORKERS_ENDPOINT "inproc://registry-workers"
#define POLL_MS 200
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
    zmq_pollitem_t item = {zsock_resolve(sock), 0, ZMQ_POLLIN, 0};
    while (!atomic_load(&w->pool->stop)) {
        if (zmq_poll(&item, 1, POLL_MS) <= 0)
            continue;
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
    while (n < 256 && s_forward(from, to) == 1)
        n++;
    return n;
}

/* Move one request from the bus to the workers, with the name of the
 * service that sent it (its CURVE key, as the ZAP handler admitted it) in
 * a frame of its own in front: the workers know the caller only this way.
 * 1 when one was waiting (forwarded or dropped), 0 when none. */
static int s_forward_request(zsock_t *front, zsock_t *back)
{
    if (!(zsock_events(front) & ZMQ_POLLIN))
        return 0;
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

static int s_drain_requests(zsock_t *front, zsock_t *back)
{
    int n = 0, rc;
    for (int i = 0; i < 256 && (rc = s_forward_request(front, back)) > 0; i++)
        n += rc == 2;
    return n;
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
} shuttle_t;

/* While stopping: answer a new request at once with UNAVAILABLE rather
 * than leave its caller waiting for the deadline. */
static void s_refuse(zsock_t *front)
{
    zmsg_t *msg = zmsg_recv(front);
    if (!msg)
        return;
    zframe_t *last = zmsg_last(msg);
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
            bus_reply_error(&reply, PORTICO__ERROR_CODE__UNAVAILABLE, "stopping",
                            "the registry is restarting; try again in a moment");
            bus_send_reply(front, &req, &reply);
            bus_reply_clear(&reply);
        }
        portico__request__free_unpacked(env, NULL);
    }
    zmsg_destroy(&msg);
}

/* Returns when the process was asked to stop (ms since the epoch). */
static int64_t s_shuttle(shuttle_t *s, monitor_t *monitor)
{
    void *front = zsock_resolve(s->front), *back = zsock_resolve(s->back);
    zmq_pollitem_t items[] = {{front, 0, ZMQ_POLLIN, 0}, {back, 0, ZMQ_POLLIN, 0}};
    while (!service_stopping()) {
        int rc = zmq_poll(items, 2, POLL_MS);
        if (rc < 0 && zmq_errno() != EINTR) {
            log_error("polling the bus failed", "error=\"%s\"", zmq_strerror(zmq_errno()));
            break;
        }
        if (rc <= 0)
            continue;
        if (items[0].revents & ZMQ_POLLIN)
            s->inflight += s_drain_requests(s->front, s->back);
        if (items[1].revents & ZMQ_POLLIN)
            s->inflight -= s_drain(back, front);
    }
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
    shuttle_t shuttle = {NULL, NULL, 0};

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
    bus_socket_tune(shuttle.back);
    if (busauth_server(shuttle.front) < 0)
        goto out;
    if (zsock_bind(shuttle.back, WORKERS_ENDPOINT) < 0)
        goto out;
    if (zsock_bind(shuttle.front, "%s", opts->bind) < 0) {
        log_error("could not bind the bus endpoint", "endpoint=%s error=\"%s\"", opts->bind, zmq_strerror(zmq_errno()));
        goto out;
    }
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
