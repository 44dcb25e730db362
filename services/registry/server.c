#include "server.h"

#include "bus.h"
#include "bus_methods.h"
#include "db.h"
#include "handoff.h"
#include "handlers.h"
#include "log.h"
#include "migrations.h"
#include "monitor.h"
#include "rotate.h"
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

#define POLL_MS 200
#define DRAIN_BATCH 256
#define ROTATE_GRACE_MS 300
#define CONNECT_BUDGET_MS 3000
#define REQUEST_RECONNECT_BUDGET_MS 1000
/* Requests taken from the bus and not yet answered, queued or being run:
 * past this the shuttle answers UNAVAILABLE (busy) at once. Eight workers
 * answer a login's calls in about a millisecond each, so a full queue is a
 * few hundred milliseconds of work: a caller is better told to try again
 * than left to wait for its deadline behind it. */
#define INFLIGHT_MAX 1024

/* One request on its way: from the shuttle to a worker with the caller's
 * authenticated name, and back with the reply (NULL: nothing to send). */
typedef struct {
    zmsg_t *msg;
    char caller[32];
} job_t;

static void s_job_destroy(void *arg)
{
    job_t *job = arg;
    zmsg_destroy(&job->msg);
    free(job);
}

/* The shuttle puts requests on `requests` for the workers; they put the
 * same jobs, answered, on `replies`, which the shuttle polls next to the
 * ROUTER. Only the shuttle touches the ROUTER. */
typedef struct {
    const reg_options_t *opts;
    const crypto_keyring_t *keys;
    atomic_bool stop;
    handoff_t *requests, *replies;
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
    pool_t *pool = w->pool;
    const reg_options_t *opts = pool->opts;
    char name[32];
    snprintf(name, sizeof name, "worker-%d", w->index);
    db_t *db = db_new(opts->database_url, opts->statement_timeout_ms, name);
    if (!db) {
        log_error("could not start a worker", "worker=%d", w->index);
        return NULL;
    }
    /* The database answered the migrations a moment ago: this is quick. */
    db_ensure(db, REQUEST_RECONNECT_BUDGET_MS);
    reg_ctx_t ctx = {db, pool->keys, opts};
    /* The queue is closed at the stop, which wakes this at once. */
    job_t *job;
    while (!atomic_load(&pool->stop) && (job = handoff_take(pool->requests, -1))) {
        /* Never wait long for a database that is away: the handler then
         * answers UNAVAILABLE at once. */
        db_ensure(db, REQUEST_RECONNECT_BUDGET_MS);
        job->msg = bus_serve_reply(&job->msg, registry_routes, &ctx, job->caller);
        /* Cannot be full: it holds at most the jobs in flight, which the
         * shuttle keeps to its capacity. */
        if (handoff_put(pool->replies, job) < 0) {
            log_error("could not hand a reply back", "worker=%d", w->index);
            s_job_destroy(job);
        }
    }
    db_destroy(&db);
    return NULL;
}

/* Secrets stored under a key this registry was not given: said at start,
 * not found one failed login at a time (a key file lost and made again,
 * another deployment's key, PORTICO_SECRET_KEY_FILE_PREVIOUS dropped
 * before rotate-key finished). Not a refusal: the rest still works, and an
 * admin may need the Admin section to replace what cannot be opened. */
static void s_check_keys(db_t *db, const crypto_keyring_t *keys)
{
    rotate_count_t counts[ROTATE_COLUMNS];
    if (rotate_census(db, keys, counts) < 0) {
        char q[300];
        log_warn("could not count the stored secrets by key", "error=%s", log_quote(db_last_error(db), q, sizeof q));
        return;
    }
    for (int i = 0; i < ROTATE_COLUMNS; i++)
        if (counts[i].failed)
            log_error("stored secrets are sealed with a key this registry was not given",
                      "column=%s values=%ld "
                      "opened_by_its_keys=%ld fix=\"set PORTICO_SECRET_KEY_FILE (or, during a rotation, "
                      "PORTICO_SECRET_KEY_FILE_PREVIOUS) to the key that sealed them\"",
                      counts[i].label, counts[i].failed, counts[i].current);
}

/* Connect, migrate, look at the stored secrets' keys and settle the setup
 * token before serving. 0, or the exit status. */
static int s_prepare_database(const reg_options_t *opts, const crypto_keyring_t *keys)
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
    /* Before the setup token's lock, which other registries starting wait
     * for: the count reads every sealed column. */
    s_check_keys(db, keys);
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
    zsock_t *front;
    pool_t *pool;
    int64_t inflight; /* taken from the front, not yet answered */
    const char *bind;
    bool busy; /* refusing for INFLIGHT_MAX (logged once) */
} shuttle_t;

/* Answer a request without running it: UNAVAILABLE, detail says why. */
static void s_refuse_msg(shuttle_t *s, zmsg_t **msg_p, int detail)
{
    const char *message = detail == DETAIL(ROTATING) ? "the registry is changing its bus key; send again"
                          : detail == DETAIL(BUSY)
                              ? "the registry has too many requests in flight; try again in a moment"
                              : "the registry is restarting; try again in a moment";
    bus_refuse(s->front, msg_p, detail, message);
}

/* While stopping or changing keys: answer a new request at once with
 * UNAVAILABLE rather than leave its caller waiting for the deadline. */
static void s_refuse(shuttle_t *s, int detail)
{
    zmsg_t *msg = zmsg_recv(s->front);
    s_refuse_msg(s, &msg, detail);
}

/* Hand one request from the bus to the workers, with the name of the
 * service that sent it (its CURVE key, as the ZAP handler admitted it):
 * the workers know the caller only this way. Past INFLIGHT_MAX it is
 * answered busy instead. The front receives without waiting (its receive
 * timeout is 0): a receive that finds nothing is the check, no ZMQ_EVENTS
 * before it. 2 when one was handed on, 1 when one was dropped or refused,
 * 0 when none was waiting. */
static int s_forward_request(shuttle_t *s)
{
    zmsg_t *msg = zmsg_recv(s->front);
    if (!msg)
        return 0;
    const char *peer = busauth_peer(zmsg_last(msg));
    if (!peer) {
        busauth_log_refused("request", "unauthenticated", "");
        zmsg_destroy(&msg);
        return 1;
    }
    job_t *job = s->inflight < INFLIGHT_MAX ? calloc(1, sizeof *job) : NULL;
    if (job) {
        job->msg = msg;
        snprintf(job->caller, sizeof job->caller, "%s", peer);
        if (handoff_put(s->pool->requests, job) == 0) {
            s->busy = false;
            return 2;
        }
        msg = job->msg;
        free(job);
    }
    if (!s->busy)
        log_warn("too many requests in flight; answering busy", "requests=%lld", (long long)s->inflight);
    s->busy = true;
    s_refuse_msg(s, &msg, DETAIL(BUSY));
    return 1;
}

/* Hand on the requests waiting, up to a batch: false when the batch ended
 * with more perhaps waiting. */
static bool s_drain_requests(shuttle_t *s)
{
    int rc;
    for (int i = 0; i < DRAIN_BATCH; i++) {
        if ((rc = s_forward_request(s)) == 0)
            return true;
        s->inflight += rc == 2;
    }
    return false;
}

/* Send the replies the workers handed back, up to a batch; how many. */
static int s_send_replies(shuttle_t *s)
{
    void *jobs[DRAIN_BATCH];
    int n = handoff_take_some(s->pool->replies, jobs, DRAIN_BATCH);
    for (int i = 0; i < n; i++) {
        job_t *job = jobs[i];
        if (job->msg && zmsg_send(&job->msg, s->front) < 0)
            zmsg_destroy(&job->msg);
        free(job);
    }
    s->inflight -= n;
    return n;
}

/* The waits of the rare paths (key rotation, the stop), with zmq_poll:
 * up to ms for a request on the front or a reply (sent before returning).
 * True when a request waits on the front. */
static bool s_wait_slow(shuttle_t *s, int ms)
{
    zmq_pollitem_t items[] = {{zsock_resolve(s->front), 0, ZMQ_POLLIN, 0},
                              {NULL, handoff_fd(s->pool->replies), ZMQ_POLLIN, 0}};
    int rc = zmq_poll(items, 2, handoff_arm(s->pool->replies) ? ms : 0);
    if (rc > 0 && (items[1].revents & ZMQ_POLLIN))
        handoff_clear_fd(s->pool->replies);
    s_send_replies(s);
    return rc > 0 && (items[0].revents & ZMQ_POLLIN);
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
    int64_t started = bus_now_ms(), grace = started + ROTATE_GRACE_MS, limit = started + SERVICE_DRAIN_MS;
    while ((bus_now_ms() < grace || s->inflight > 0) && bus_now_ms() < limit) {
        if (s_wait_slow(s, 20))
            s_refuse(s, DETAIL(ROTATING));
    }
    zmq_pollitem_t one = {zsock_resolve(s->front), 0, ZMQ_POLLIN, 0};
    while (zmq_poll(&one, 1, 0) > 0)
        s_refuse(s, DETAIL(ROTATING));
    return bus_rebind(s->front, bind);
}

/* The front is watched through its ZMQ_FD, as a plain descriptor, next to
 * the replies' eventfd, not with zmq_poll: for a ZeroMQ socket zmq_poll
 * asks ZMQ_EVENTS before and after its poll (each a getpid, libzmq's fork
 * check, and a poll of the socket's mailbox), and polls twice. ZMQ_FD
 * only signals that the socket's state changed, once: so the front is read
 * until a receive finds nothing (that receive makes it signal again), when
 * its descriptor fired, when the batch before stopped with more waiting,
 * when a send on it (which also looks at its mailbox) may have taken the
 * signal, and on every tick. The replies are taken on every turn (a mutex,
 * no system call); the shuttle waits only when there are none, and only
 * then does a worker's reply write the eventfd. */
static void s_serve(shuttle_t *s)
{
    handoff_t *replies = s->pool->replies;
    struct pollfd fds[] = {{zsock_fd(s->front), POLLIN, 0}, {handoff_fd(replies), POLLIN, 0}};
    bool front_due = true; /* anything before the first poll */
    while (!service_stopping()) {
        if (service_take_reload() && busauth_reload_secret() == 1) {
            if (s_rotate(s, s->bind) < 0) {
                log_error("could not bind again with the new bus key", "endpoint=%s", s->bind);
                service_request_stop();
                break;
            }
            front_due = true;
        }
        if (!front_due && handoff_arm(replies)) {
            int rc = poll(fds, 2, POLL_MS);
            if (rc < 0 && errno != EINTR) {
                log_error("polling the bus failed", "error=\"%s\"", strerror(errno));
                break;
            }
            front_due = rc <= 0 || fds[0].revents;
            if (rc > 0 && fds[1].revents)
                handoff_clear_fd(replies);
        }
        if (front_due)
            front_due = !s_drain_requests(s);
        if (s_send_replies(s) > 0)
            front_due = true;
    }
}

/* Returns when the process was asked to stop (ms since the epoch). */
static int64_t s_shuttle(shuttle_t *s, monitor_t *monitor)
{
    s_serve(s);
    /* Stop taking requests; carry the answers of those in flight. Health
     * checks say "stopping" from now on. */
    int64_t stop_seen = bus_now_ms(), until = stop_seen + SERVICE_DRAIN_MS;
    monitor_request_stop(monitor);
    while (s->inflight > 0 && bus_now_ms() < until) {
        if (s_wait_slow(s, 100))
            s_refuse(s, DETAIL(STOPPING));
    }
    if (s->inflight > 0)
        log_warn("stopping with requests still in flight", "requests=%lld", (long long)s->inflight);
    return stop_seen;
}

/* Stop the workers and the monitor, and wait for the health endpoint to
 * close (it began at the stop: service.h), still refusing new requests
 * while they finish, and sending the replies of those that were still
 * running, so no caller is left waiting for its deadline. Past the budget
 * the process ends anyway. Requests no worker took are answered STOPPING. */
static void s_stop_threads(shuttle_t *s, worker_t *workers, int n, monitor_t *monitor, int64_t stop_seen)
{
    atomic_store(&s->pool->stop, true);
    handoff_close(s->pool->requests);
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
            if (s_wait_slow(s, 20))
                s_refuse(s, DETAIL(STOPPING));
        }
    }
    void *left[DRAIN_BATCH];
    for (int k; (k = handoff_take_some(s->pool->requests, left, DRAIN_BATCH)) > 0;) {
        for (int i = 0; i < k; i++) {
            job_t *job = left[i];
            s_refuse_msg(s, &job->msg, DETAIL(STOPPING));
            free(job);
        }
        s->inflight -= k;
    }
    while (s_send_replies(s) > 0)
        continue;
}

int server_run(const reg_options_t *opts)
{
    int status = 1;
    char why[600], instance[96];
    crypto_keyring_t *keys = NULL;
    monitor_t *monitor = NULL;
    worker_t *workers = NULL;
    pool_t pool = {opts, NULL, false, NULL, NULL};
    shuttle_t shuttle = {NULL, &pool, 0, opts->bind, false};

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

    if ((status = s_prepare_database(opts, keys)) != 0 || service_stopping())
        goto out;
    status = 1;
    if (monitor_start(monitor) < 0)
        goto out;

    shuttle.front = zsock_new(ZMQ_ROUTER);
    pool.requests = handoff_new(INFLIGHT_MAX);
    pool.replies = handoff_new(INFLIGHT_MAX);
    if (!shuttle.front || !pool.requests || !pool.replies)
        goto out;
    bus_socket_tune(shuttle.front);
    bus_socket_serve(shuttle.front);
    /* Read only when a request may be waiting: never wait in a receive. */
    zsock_set_rcvtimeo(shuttle.front, 0);
    if (busauth_server(shuttle.front) < 0)
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
    s_stop_threads(&shuttle, workers, opts->workers, monitor, stop_seen);
    status = 0;
out:
    /* Replies the drain queued leave within a second (bus sockets linger 0). */
    if (shuttle.front)
        zsock_set_linger(shuttle.front, 1000);
    zsock_destroy(&shuttle.front);
    /* Every worker was joined (or never started): no thread holds these. */
    handoff_destroy(&pool.requests, s_job_destroy);
    handoff_destroy(&pool.replies, s_job_destroy);
    free(workers);
    /* The health endpoint asks the monitor: close it first. */
    service_health_stop();
    monitor_destroy(&monitor);
    crypto_keyring_destroy(&keys);
    if (status == 0)
        log_info("registry stopped", NULL);
    return status;
}
