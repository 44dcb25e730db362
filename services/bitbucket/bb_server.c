#include "bb_server.h"

#include "bb_http.h"
#include "bb_methods.h"
#include "bb_url.h"
#include "bus.h"
#include "bus_methods.h"
#include "envelope.pb-c.h"
#include "log.h"
#include "metrics.h"
#include "service.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define REPLY_MARGIN_MS 100 /* left for our reply to reach the caller before its deadline */
#define MIN_ATTEMPT_MS 50   /* not worth asking Bitbucket with less time than this */
#define MIN_RETRY_WAIT_MS 50
#define MAX_ATTEMPTS 3
#define TICK_MS 100
#define ROTATE_GRACE_MS 300 /* ROTATING answers before binding again with a new bus key */
#define MAX_CACHED_CONNECTIONS 64
#define FLUSH_LINGER_MS 1000 /* at exit, for answers still queued */
#define DRAIN_QUIET_MS 300   /* stopping: no request for this long before leaving */

/* One bus request being served: its plan, its transfer or retry timer. */
typedef struct bb_call_t {
    bb_server_t *srv;
    bus_request_t *req;
    const bb_method_t *method;
    bb_plan_t plan;
    bb_xfer_t *xfer;      /* the transfer in flight, or NULL */
    int retry_timer;      /* zloop timer while waiting to retry, or 0 */
    bus_error_t last_err; /* what the last attempt got (answered if a retry cannot run) */
    int attempt;
    long timeout_ms; /* of the current attempt */
    int64_t deadline_ms;
    struct bb_call_t *prev, *next;
} bb_call_t;

struct bb_server_t {
    bb_server_config_t cfg;
    zloop_t *loop;
    zsock_t *router;
    bb_http_t *http;
    const bus_route_t *routes;
    bb_call_t *calls;
    size_t n_calls;
    atomic_bool ready;
    atomic_bool draining;
    int64_t drain_until;
    int64_t last_request_ms; /* when the bus last brought a request */
    bool finished;
    int drain_timer;      /* zloop timer to read the rest of the bus requests, or 0 */
    bool rotating;        /* changing the bus key: new calls get ROTATING */
    int64_t rotate_until; /* the earliest moment to bind again */
    int64_t rotate_limit; /* bind again then, calls in flight or not */
};

/* ---- calls ---- */

static void s_gauges(bb_server_t *self)
{
    metrics_set("portico_bitbucket_in_flight", "", (double)bb_http_in_flight(self->http));
    metrics_set("portico_bitbucket_calls", "", (double)self->n_calls);
}

static void s_call_free(bb_server_t *self, bb_call_t *call)
{
    if (self->calls == call)
        self->calls = call->next;
    if (call->prev)
        call->prev->next = call->next;
    if (call->next)
        call->next->prev = call->prev;
    self->n_calls--;
    if (call->xfer)
        bb_http_cancel(self->http, &call->xfer);
    if (call->retry_timer)
        zloop_timer_end(self->loop, call->retry_timer);
    bus_request_destroy(&call->req);
    bb_plan_clear(&call->plan);
    free(call);
    s_gauges(self);
}

static void s_router_check(bb_server_t *self);

/* Answer the caller and forget the call. */
static void s_reply(bb_server_t *self, bb_call_t *call, bus_reply_t *reply)
{
    log_set_request_id(call->req->request_id);
    if (bus_send_reply(self->router, &call->req, reply) < 0)
        log_warn("could not send a reply", "method=%s", call->plan.kind ? call->plan.kind : "?");
    s_router_check(self);
    /* The body may carry tokens. */
    if (reply->body)
        explicit_bzero(reply->body, reply->body_len);
    bus_reply_clear(reply);
    s_call_free(self, call);
}

static void s_reply_error(bb_server_t *self, bb_call_t *call, const bus_error_t *err)
{
    bus_reply_t reply;
    memset(&reply, 0, sizeof reply);
    bus_error_set(&reply.err, err->code, err->detail, "%s", err->message);
    s_reply(self, call, &reply);
}

static void s_on_done(void *arg, const bb_http_result_t *res);

static void s_attempt(bb_server_t *self, bb_call_t *call)
{
    bus_error_t err;
    memset(&err, 0, sizeof err);
    int64_t now = bus_now_ms();
    long timeout = self->cfg.timeout_ms;
    int64_t left = call->deadline_ms - now - REPLY_MARGIN_MS;
    if (left < timeout)
        timeout = (long)(left > 0 ? left : 0);
    if (timeout < MIN_ATTEMPT_MS) {
        if (call->attempt > 0)
            s_reply_error(self, call, &call->last_err);
        else {
            bus_error_set(&err, PORTICO__ERROR_CODE__TIMEOUT, DETAIL(DEADLINE),
                          "the request ran out of time before Bitbucket at %s could be asked", call->plan.host);
            s_reply_error(self, call, &err);
        }
        return;
    }
    char *authorization = NULL;
    if (bb_plan_authorization(&call->plan, &authorization, &err) < 0) {
        char q[100];
        log_warn("could not prepare credentials", "kind=%s detail=%s", call->plan.kind,
                 log_quote(bus_detail_name(err.detail), q, sizeof q));
        s_reply_error(self, call, &err);
        return;
    }
    bb_http_request_t hr = {
        .method = call->plan.http_method,
        .url = call->plan.url,
        .body = call->plan.body,
        .authorization = authorization,
        .accept = call->plan.accept,
        .ca_pem = call->plan.ca_pem,
        .timeout_ms = timeout,
        .connect_timeout_ms = self->cfg.connect_timeout_ms,
        .max_body = call->plan.max_body,
    };
    call->attempt++;
    call->timeout_ms = timeout;
    call->xfer = bb_http_start(self->http, &hr, s_on_done, call);
    bb_free_secret(authorization);
    if (!call->xfer) {
        bus_error_set(&err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE),
                      "the request to Bitbucket could not be started");
        s_reply_error(self, call, &err);
        return;
    }
    s_gauges(self);
}

static int s_on_retry(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    bb_call_t *call = arg;
    call->retry_timer = 0;
    bb_server_t *self = call->srv;
    log_set_request_id(call->req->request_id);
    s_attempt(self, call); /* may free call */
    log_set_request_id(NULL);
    bb_http_run_due(self->http);
    return 0;
}

/* A 429 on a GET is retried when Bitbucket said how long to wait and that
 * wait plus a useful attempt still fits before the caller's deadline. */
static bool s_schedule_retry(bb_server_t *self, bb_call_t *call, const bus_error_t *err)
{
    if (err->code != PORTICO__ERROR_CODE__RATE_LIMITED || !call->plan.idempotent || err->retry_after_s < 0 ||
        call->attempt >= MAX_ATTEMPTS || atomic_load(&self->draining))
        return false;
    int64_t wait = (int64_t)err->retry_after_s * 1000;
    if (wait < MIN_RETRY_WAIT_MS)
        wait = MIN_RETRY_WAIT_MS;
    if (bus_now_ms() + wait + MIN_ATTEMPT_MS + REPLY_MARGIN_MS > call->deadline_ms)
        return false;
    int id = zloop_timer(self->loop, (size_t)wait, 1, s_on_retry, call);
    if (id < 0)
        return false;
    call->retry_timer = id;
    call->last_err = *err;
    metrics_inc("portico_bitbucket_retries_total", NULL, 1);
    log_info("retrying after rate limiting", "kind=%s wait_ms=%lld attempt=%d", call->plan.kind, (long long)wait,
             call->attempt);
    return true;
}

static void s_record(const bb_call_t *call, const bb_http_result_t *res, const bus_error_t *err, const char *note)
{
    char labels[160], path[512], q[600];
    char status[16] = "none";
    if (res->status)
        snprintf(status, sizeof status, "%ld", res->status);
    snprintf(labels, sizeof labels, "kind=\"%s\",status=\"%s\",code=\"%s\"", call->plan.kind, status,
             bus_code_name(err->code));
    metrics_inc("portico_bitbucket_requests_total", labels, 1);
    snprintf(labels, sizeof labels, "kind=\"%s\"", call->plan.kind);
    metrics_observe("portico_bitbucket_request_seconds", labels, res->seconds);

    /* Never the query (it can carry a filter) nor any header. */
    bb_url_path(call->plan.url, path, sizeof path);
    log_quote(path, q, sizeof q);
    if (res->curl_code != CURLE_OK) {
        char cq[300];
        log_warn("bitbucket request failed",
                 "kind=%s http_method=%s host=%s path=%s integration=%lld ms=%.0f "
                 "attempt=%d result=%s detail=%s curl=%s",
                 call->plan.kind, call->plan.http_method, call->plan.host, q, (long long)call->plan.integration_id,
                 res->seconds * 1000, call->attempt, bus_code_name(err->code), bus_detail_name(err->detail),
                 log_quote(res->curl_error, cq, sizeof cq));
        return;
    }
    /* Failures are warnings above; a call that went well is debug. */
    log_debug("bitbucket request",
              "kind=%s http_method=%s host=%s path=%s integration=%lld status=%ld ms=%.0f attempt=%d result=%s "
              "detail=%s %s",
              call->plan.kind, call->plan.http_method, call->plan.host, q, (long long)call->plan.integration_id,
              res->status, res->seconds * 1000, call->attempt, bus_code_name(err->code),
              err->detail ? bus_detail_name(err->detail) : "-", note);
}

static void s_on_done(void *arg, const bb_http_result_t *res)
{
    bb_call_t *call = arg;
    bb_server_t *self = call->srv;
    call->xfer = NULL; /* bb_http frees it after this returns */
    log_set_request_id(call->req->request_id);

    bus_reply_t reply;
    memset(&reply, 0, sizeof reply);
    bus_error_t err;
    memset(&err, 0, sizeof err);
    err.retry_after_s = -1;
    char note[160] = "";
    if (res->curl_code != CURLE_OK) {
        bb_http_error(res, call->plan.host, call->timeout_ms, self->cfg.connect_timeout_ms, &err);
    } else {
        bb_response_t r = {
            .status = res->status,
            .body = res->body,
            .body_len = res->body_len,
            .content_type = res->content_type,
            .www_authenticate = res->www_authenticate,
            .retry_after = res->retry_after,
            .location = res->location,
            .x_ausername = res->x_ausername,
            .x_auserid = res->x_auserid,
            .host = call->plan.host,
        };
        if (call->method->finish(&call->plan, &r, &reply, &err, note, sizeof note) == 0)
            err.code = reply.err.code;
    }
    s_record(call, res, &err, note);
    if (s_schedule_retry(self, call, &err)) {
        bus_reply_clear(&reply);
        log_set_request_id(NULL);
        return;
    }
    if (call->method->next) {
        /* A chain (login.exchange): the next request, or the answer. */
        bus_error_t step = err;
        memset(&err, 0, sizeof err);
        bus_reply_clear(&reply);
        memset(&reply, 0, sizeof reply);
        int more = call->method->next(&call->plan, &step, &reply, &err);
        if (more == 1) {
            call->attempt = 0;
            s_attempt(self, call);
            log_set_request_id(NULL);
            return;
        }
        if (more < 0 && err.code == PORTICO__ERROR_CODE__OK)
            bus_error_set(&err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "the login exchange failed");
    }
    if (err.code != PORTICO__ERROR_CODE__OK && reply.err.code == PORTICO__ERROR_CODE__OK)
        bus_error_set(&reply.err, err.code, err.detail, "%s", err.message);
    s_reply(self, call, &reply);
    log_set_request_id(NULL);
}

/* ---- bus ---- */

/* Every method of the declared table (bitbucket_routes, generated from
 * proto/bitbucket.proto) runs through here. */
void bb_server_handle(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    bb_server_t *self = ctx;
    const bb_method_t *m = bb_method_find(req->method);
    if (!m || !msg) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__UNKNOWN_METHOD, DETAIL(NONE), "unknown method");
        return;
    }
    /* STOPPING, as the registry says it: nothing was run, so the caller's
     * bus client sends the call to another instance when there is one. */
    if (atomic_load(&self->draining)) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__UNAVAILABLE, DETAIL(STOPPING),
                      "the Bitbucket service is shutting down; try again in a moment");
        return;
    }
    if ((long)self->n_calls >= self->cfg.max_calls) {
        log_warn("too many calls in flight", "calls=%zu", self->n_calls);
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__UNAVAILABLE, DETAIL(BUSY),
                      "the Bitbucket service has too many requests in flight; try again in a moment");
        return;
    }
    bus_error_t err;
    memset(&err, 0, sizeof err);
    bb_call_t *call = calloc(1, sizeof *call);
    if (!call) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "out of memory");
        return;
    }
    if (m->prepare(msg, &call->plan, &err) < 0) {
        char q[100];
        log_warn("refused a request", "method=%s detail=%s", m->name,
                 log_quote(bus_detail_name(err.detail), q, sizeof q));
        bus_error_set(&reply->err, err.code, err.detail, "%s", err.message);
        bb_plan_clear(&call->plan);
        free(call);
        return;
    }
    call->srv = self;
    call->req = req;
    call->method = m;
    call->deadline_ms = req->deadline_ms ? req->deadline_ms : bus_now_ms() + self->cfg.timeout_ms + REPLY_MARGIN_MS;
    call->next = self->calls;
    if (self->calls)
        self->calls->prev = call;
    self->calls = call;
    self->n_calls++;
    /* The request is ours now: answered when the transfer completes. */
    bus_reply_defer(reply);
    s_attempt(self, call);
}

/* The ROUTER is watched through its ZMQ_FD, as a plain descriptor, not as
 * a ZeroMQ socket: for a socket, every zmq_poll of the loop asks ZMQ_EVENTS
 * before and after its poll, each a getpid (libzmq's fork check) and a
 * poll of the socket's mailbox: four system calls per loop round, some
 * twenty per login. ZMQ_FD only signals that the socket's state changed,
 * once: so whoever may have taken that signal reads what is waiting.
 * Reading here asks ZMQ_EVENTS after each request; a send (an answer) can
 * also take it, so s_router_check follows each one; and the tick looks
 * once more, in case. */
static int s_drain(bb_server_t *self)
{
    zsock_t *sock = self->router;
    /* A batch per wake-up, then let the transfers move too. */
    int i;
    for (i = 0; i < 64 && (zsock_events(sock) & ZMQ_POLLIN); i++) {
        zmsg_t *msg = zmsg_recv(sock);
        if (!msg)
            break;
        self->last_request_ms = bus_now_ms();
        if (self->rotating)
            bus_refuse(sock, &msg, DETAIL(ROTATING), "the Bitbucket service is changing its bus key; send again");
        else
            bus_serve(sock, &msg, self->routes, self);
    }
    bb_http_run_due(self->http);
    /* Stopped at the batch's end with more waiting: read on next round. */
    if (i == 64)
        s_router_check(self);
    return 0;
}

static int s_on_router(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    (void)item;
    return s_drain(arg);
}

static int s_on_drain_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    bb_server_t *self = arg;
    self->drain_timer = 0;
    return s_drain(self);
}

/* Requests may be waiting with the ZMQ_FD signal already taken: read
 * them on the loop's next round (not from here, deep inside a transfer's
 * callback). */
static void s_router_check(bb_server_t *self)
{
    if (self->drain_timer || !(zsock_events(self->router) & ZMQ_POLLIN))
        return;
    int id = zloop_timer(self->loop, 0, 1, s_on_drain_timer, self);
    if (id >= 0)
        self->drain_timer = id;
}

/* ---- a new bus key (SIGHUP; README: Bus keys) ---- */

/* A socket's CURVE key is fixed when it binds, and unbinding ends the
 * connections made on the old key: so answer ROTATING (nothing run; the
 * callers send again) for a moment and let the calls in flight finish,
 * then bind again with the new key. */
static void s_rotate(bb_server_t *self)
{
    int64_t now = bus_now_ms();
    if (!self->rotating && service_take_reload() && busauth_reload_secret() == 1) {
        self->rotating = true;
        self->rotate_until = now + ROTATE_GRACE_MS;
        self->rotate_limit = now + self->cfg.drain_ms;
        log_info("changing the bus key: answering the calls in flight", "calls=%zu", self->n_calls);
    }
    if (!self->rotating || now < self->rotate_until || (self->calls && now < self->rotate_limit))
        return;
    if (self->calls)
        log_warn("changing the bus key with calls still in flight", "calls=%zu", self->n_calls);
    while (zsock_events(self->router) & ZMQ_POLLIN) {
        zmsg_t *msg = zmsg_recv(self->router);
        if (!msg)
            break;
        bus_refuse(self->router, &msg, DETAIL(ROTATING), "the Bitbucket service is changing its bus key; send again");
    }
    self->rotating = false;
    if (bus_rebind(self->router, self->cfg.bind) < 0) {
        log_error("could not bind again with the new bus key", "endpoint=%s", self->cfg.bind);
        service_request_stop();
    }
    s_router_check(self);
}

/* ---- stopping ---- */

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    bb_server_t *self = arg;
    s_rotate(self);
    s_router_check(self);
    if (!service_stopping())
        return 0;
    int64_t now = bus_now_ms();
    if (!atomic_load(&self->draining)) {
        atomic_store(&self->draining, true);
        atomic_store(&self->ready, false);
        self->drain_until = now + self->cfg.drain_ms;
        log_info("stopping: answering the calls in flight", "calls=%zu", self->n_calls);
        /* A call waiting out a Retry-After gets its 429 now. */
        for (bb_call_t *c = self->calls, *next; c; c = next) {
            next = c->next;
            if (c->retry_timer)
                s_reply_error(self, c, &c->last_err);
        }
    }
    if (self->calls && now >= self->drain_until) {
        log_warn("stopping: aborting calls still in flight", "calls=%zu", self->n_calls);
        bus_error_t err;
        bus_error_set(&err, PORTICO__ERROR_CODE__UNAVAILABLE, DETAIL(SHUTTING_DOWN),
                      "the Bitbucket service stopped before Bitbucket answered; try again");
        for (bb_call_t *c = self->calls, *next; c; c = next) {
            next = c->next;
            s_reply_error(self, c, &err);
        }
    }
    /* A client that has not yet seen this instance leave may still send
     * to it: such a call is refused STOPPING (nothing run), and its bus
     * client sends it to another instance. Leaving while calls still come
     * would drop them unanswered, and a call that vanishes that way cannot
     * be sent again (it may have run). So leave once nothing is in flight
     * and the bus has been quiet a moment, or when the drain time is up. */
    if (!self->calls && (now - self->last_request_ms >= DRAIN_QUIET_MS || now >= self->drain_until)) {
        self->finished = true;
        return -1;
    }
    return 0;
}

bool bb_server_ready(void *arg, char *status, size_t status_size)
{
    bb_server_t *self = arg;
    bool ready = self && atomic_load(&self->ready);
    snprintf(status, status_size, "%s", ready ? "ok" : self && atomic_load(&self->draining) ? "stopping" : "starting");
    return ready;
}

/* ---- life cycle ---- */

bb_server_t *bb_server_new(const bb_server_config_t *cfg)
{
    bb_server_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = *cfg;
    atomic_init(&self->ready, false);
    atomic_init(&self->draining, false);
    /* Each declared method must have its plan, for the very request type
     * the declaration decodes. */
    self->routes = bitbucket_routes;
    for (const bus_route_t *r = self->routes; r->method; r++) {
        const bb_method_t *m = bb_method_find(r->method);
        if (!m || m->desc != r->desc) {
            log_error("a declared method has no plan of its type", "method=%s", r->method);
            goto fail;
        }
    }
    self->loop = zloop_new();
    self->router = zsock_new(ZMQ_ROUTER);
    if (!self->loop || !self->router)
        goto fail;
    self->http = bb_http_new(self->loop, cfg->max_host_connections, MAX_CACHED_CONNECTIONS);
    if (!self->http)
        goto fail;
    bus_socket_tune(self->router);
    bus_socket_serve(self->router);
    if (busauth_enabled() && busauth_server(self->router) < 0)
        goto fail;
    if (bus_bind(self->router, cfg->bind) < 0)
        goto fail;
    metrics_help("portico_bitbucket_requests_total", "counter",
                 "HTTP requests to Bitbucket by kind, status and result");
    metrics_help("portico_bitbucket_request_seconds", "histogram", "Duration of HTTP requests to Bitbucket");
    metrics_help("portico_bitbucket_in_flight", "gauge", "HTTP transfers to Bitbucket in flight");
    metrics_help("portico_bitbucket_calls", "gauge", "Bus calls being served");
    metrics_help("portico_bitbucket_retries_total", "counter", "Requests retried after a 429 with Retry-After");
    s_gauges(self);
    return self;
fail:
    bb_server_destroy(&self);
    return NULL;
}

void bb_server_destroy(bb_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bb_server_t *self = *self_p;
    for (bb_call_t *c = self->calls, *next; c; c = next) {
        next = c->next;
        s_call_free(self, c);
    }
    bb_http_destroy(&self->http);
    zloop_destroy(&self->loop);
    /* Bus sockets do not linger, but the answers given at the end of the
     * drain were queued a moment ago: let them leave before the process. */
    if (self->router)
        zsock_set_linger(self->router, FLUSH_LINGER_MS);
    zsock_destroy(&self->router);
    free(self);
    *self_p = NULL;
}

int bb_server_run(bb_server_t *self)
{
    zmq_pollitem_t item = {NULL, zsock_fd(self->router), ZMQ_POLLIN, 0};
    if (zloop_poller(self->loop, &item, s_on_router, self) < 0 ||
        zloop_timer(self->loop, TICK_MS, 0, s_on_tick, self) < 0) {
        log_error("could not set up the event loop", NULL);
        return 1;
    }
    zloop_poller_set_tolerant(self->loop, &item);
    /* Anything that came before the loop watched the descriptor. */
    s_router_check(self);
    atomic_store(&self->ready, true);
    log_info("serving", "endpoint=%s timeout_ms=%ld connect_timeout_ms=%ld", self->cfg.bind, self->cfg.timeout_ms,
             self->cfg.connect_timeout_ms);
    while (!self->finished) {
        int rc = zloop_start(self->loop);
        if (self->finished)
            break;
        /* 0 with EINTR: a signal woke the poll; the tick takes it from here. */
        if (rc != 0 || zmq_errno() != EINTR) {
            log_error("the event loop ended unexpectedly", "rc=%d", rc);
            return 1;
        }
    }
    log_info("stopped", NULL);
    return 0;
}
