#include "bb_http.h"

#include "bb_egress.h"
#include "envelope.pb-c.h"

#include <sys/socket.h>

#include <stdlib.h>
#include <string.h>

/* Answers bigger than a request's cap, and than this whatever the request
 * says, are cut off and refused (UPSTREAM too_large). */
#define MAX_BODY (4 * 1024 * 1024)
#define USER_AGENT "Portico (portico-bitbucket)"
#define MAX_IDLE_HANDLES 16 /* easy handles kept for the next transfers */

struct bb_xfer_t {
    bb_http_t *http;
    CURL *easy;
    struct curl_slist *headers;
    char *body_out; /* what we POST (may hold a secret) */
    char *body_in;  /* what we receive */
    size_t in_len, in_cap;
    size_t max_body;
    bool too_large;
    char host[256];    /* the URL's host, for PORTICO_BITBUCKET_ALLOW's names */
    char refused[160]; /* why a connection was refused by the egress policy */
    char error[CURL_ERROR_SIZE];
    bb_http_done_fn done;
    void *arg;
    bb_xfer_t *prev, *next;
};

struct bb_http_t {
    zloop_t *loop;
    CURLM *multi;
    int timer_id; /* the one zloop timer curl asked for, 0 when none */
    bool due;     /* curl asked to be run at once (a transfer was added) */
    size_t in_flight;
    bb_xfer_t *xfers; /* every transfer that is in the multi handle */
    /* Easy handles of finished transfers, reset to curl's defaults: making
     * and freeing one per request (its state and a 16 KB buffer) was a
     * few percent of the CPU per login. */
    CURL *idle[MAX_IDLE_HANDLES];
    size_t n_idle;
};

/* ---- transfers ---- */

static void s_wipe_slist(struct curl_slist *list)
{
    for (struct curl_slist *l = list; l; l = l->next)
        if (l->data)
            explicit_bzero(l->data, strlen(l->data));
    curl_slist_free_all(list);
}

static CURL *s_easy_take(bb_http_t *self)
{
    return self->n_idle ? self->idle[--self->n_idle] : curl_easy_init();
}

/* curl_easy_reset forgets every option (URL, headers, body, CA, callbacks)
 * at once, so nothing of this transfer reaches the next one; what it keeps
 * is its buffers and its TLS session cache, which bb_http_start turns off. */
static void s_easy_give(bb_http_t *self, CURL *easy)
{
    if (self->n_idle < MAX_IDLE_HANDLES) {
        curl_easy_reset(easy);
        self->idle[self->n_idle++] = easy;
    } else {
        curl_easy_cleanup(easy);
    }
}

static void s_xfer_free(bb_xfer_t *x)
{
    if (!x)
        return;
    if (x->easy)
        s_easy_give(x->http, x->easy);
    s_wipe_slist(x->headers);
    if (x->body_out) {
        explicit_bzero(x->body_out, strlen(x->body_out));
        free(x->body_out);
    }
    if (x->body_in) {
        /* Token answers pass through here too. */
        explicit_bzero(x->body_in, x->in_cap);
        free(x->body_in);
    }
    free(x);
}

static void s_link(bb_http_t *self, bb_xfer_t *x)
{
    x->next = self->xfers;
    if (self->xfers)
        self->xfers->prev = x;
    self->xfers = x;
    self->in_flight++;
}

static void s_unlink(bb_http_t *self, bb_xfer_t *x)
{
    if (self->xfers == x)
        self->xfers = x->next;
    if (x->prev)
        x->prev->next = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
    self->in_flight--;
}

static size_t s_on_write(char *data, size_t size, size_t nmemb, void *arg)
{
    bb_xfer_t *x = arg;
    size_t n = size * nmemb;
    if (n > x->max_body || x->in_len + n > x->max_body) {
        x->too_large = true;
        return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
    }
    if (x->in_len + n + 1 > x->in_cap) {
        size_t cap = x->in_cap ? x->in_cap : 4096;
        while (cap < x->in_len + n + 1)
            cap *= 2;
        char *b = malloc(cap);
        if (!b)
            return 0;
        if (x->body_in) {
            memcpy(b, x->body_in, x->in_len);
            explicit_bzero(x->body_in, x->in_cap);
            free(x->body_in);
        }
        x->body_in = b;
        x->in_cap = cap;
    }
    memcpy(x->body_in + x->in_len, data, n);
    x->in_len += n;
    x->body_in[x->in_len] = '\0';
    return n;
}

/* curl_easy_header's result lives until its next call: copy each. */
typedef struct {
    char *content_type, *www_authenticate, *retry_after, *location, *x_ausername, *x_auserid;
} headers_t;

#define MAX_HEADER 4096 /* of one value kept, and of what is appended to it */

/* A response header's value, fresh, or NULL when absent. An answer that
 * repeats the header gives every value that differs from the first,
 * joined by ", ": RFC 9110 (5.3) reads repeated fields as one list. So two
 * X-AUSERIDs that disagree read as a list, which names no account, rather
 * than as whichever came first or last. */
static char *s_dup_header(CURL *easy, const char *name)
{
    struct curl_header *h = NULL;
    if (curl_easy_header(easy, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK || !h)
        return NULL;
    size_t amount = h->amount;
    char *first = strndup(h->value, MAX_HEADER);
    char *out = first ? strdup(first) : NULL;
    for (size_t i = 1; out && i < amount; i++) {
        if (curl_easy_header(easy, name, i, CURLH_HEADER, -1, &h) != CURLHE_OK || !h)
            break;
        size_t len = strlen(out), add = strnlen(h->value, MAX_HEADER);
        if ((add == strlen(first) && !memcmp(h->value, first, add)) || len + add > 2 * MAX_HEADER)
            continue;
        char *more = realloc(out, len + 2 + add + 1);
        if (!more) {
            free(out);
            out = NULL;
            break;
        }
        out = more;
        memcpy(out + len, ", ", 2);
        memcpy(out + len + 2, h->value, add);
        out[len + 2 + add] = '\0';
    }
    free(first);
    return out;
}

static void s_headers_free(headers_t *h)
{
    free(h->content_type);
    free(h->www_authenticate);
    free(h->retry_after);
    free(h->location);
    free(h->x_ausername);
    free(h->x_auserid);
}

static void s_finish(bb_http_t *self, bb_xfer_t *x, CURLcode code)
{
    bb_http_result_t res;
    memset(&res, 0, sizeof res);
    headers_t h;
    memset(&h, 0, sizeof h);
    long status = 0;
    curl_off_t connect_us = 0, appconnect_us = 0, pretransfer_us = 0, total_us = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(x->easy, CURLINFO_CONNECT_TIME_T, &connect_us);
    curl_easy_getinfo(x->easy, CURLINFO_APPCONNECT_TIME_T, &appconnect_us);
    curl_easy_getinfo(x->easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us);
    curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME_T, &total_us);
    if (code == CURLE_OK) {
        h.content_type = s_dup_header(x->easy, "Content-Type");
        h.www_authenticate = s_dup_header(x->easy, "WWW-Authenticate");
        h.retry_after = s_dup_header(x->easy, "Retry-After");
        h.location = s_dup_header(x->easy, "Location");
        h.x_ausername = s_dup_header(x->easy, "X-AUSERNAME");
        h.x_auserid = s_dup_header(x->easy, "X-AUSERID");
    }
    res.curl_code = x->too_large ? CURLE_FILESIZE_EXCEEDED : code;
    res.curl_error = x->error[0] ? x->error : curl_easy_strerror(code);
    res.too_large = x->too_large;
    res.max_body = x->max_body;
    res.refused = x->refused[0] ? x->refused : NULL;
    /* A connection kept alive from an earlier request has no connect
     * time; that the request went out on it says it was connected. */
    res.connected = connect_us > 0 || appconnect_us > 0 || pretransfer_us > 0;
    res.status = code == CURLE_OK ? status : 0;
    res.body = x->body_in ? x->body_in : "";
    res.body_len = x->in_len;
    res.content_type = h.content_type;
    res.www_authenticate = h.www_authenticate;
    res.retry_after = h.retry_after;
    res.location = h.location;
    res.x_ausername = h.x_ausername;
    res.x_auserid = h.x_auserid;
    res.seconds = (double)total_us / 1e6;

    curl_multi_remove_handle(self->multi, x->easy);
    s_unlink(self, x);
    x->done(x->arg, &res);
    s_headers_free(&h);
    s_xfer_free(x);
}

/* Hand every finished transfer to its owner. */
static void s_check_done(bb_http_t *self)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(self->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        bb_xfer_t *x = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x)
            s_finish(self, x, msg->data.result);
    }
}

/* ---- curl <-> zloop ---- */

static void s_run_due(bb_http_t *self);

static int s_on_socket(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    bb_http_t *self = arg;
    int flags = 0, running = 0;
    if (item->revents & ZMQ_POLLIN)
        flags |= CURL_CSELECT_IN;
    if (item->revents & ZMQ_POLLOUT)
        flags |= CURL_CSELECT_OUT;
    if (item->revents & ZMQ_POLLERR)
        flags |= CURL_CSELECT_ERR;
    curl_multi_socket_action(self->multi, item->fd, flags, &running);
    s_check_done(self);
    s_run_due(self);
    return 0;
}

/* CURLMOPT_SOCKETFUNCTION: watch s for what curl wants, or stop watching. */
static int s_socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    (void)socketp;
    bb_http_t *self = userp;
    zmq_pollitem_t item = {NULL, s, 0, 0};
    zloop_poller_end(self->loop, &item);
    if (what == CURL_POLL_REMOVE)
        return 0;
    if (what & CURL_POLL_IN)
        item.events |= ZMQ_POLLIN;
    if (what & CURL_POLL_OUT)
        item.events |= ZMQ_POLLOUT;
    if (zloop_poller(self->loop, &item, s_on_socket, self) < 0)
        return -1;
    /* curl itself decides what an error on its socket means. */
    zloop_poller_set_tolerant(self->loop, &item);
    return 0;
}

static int s_on_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    bb_http_t *self = arg;
    int running = 0;
    if (timer_id == self->timer_id)
        self->timer_id = 0; /* one-shot: zloop drops it after this call */
    curl_multi_socket_action(self->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    s_check_done(self);
    s_run_due(self);
    return 0;
}

/* What curl wants run at once (it says so when a transfer is added, and a
 * done callback often adds the next one) runs now rather than on a 0 ms
 * zloop timer: that saves a loop round, a poll with its ZeroMQ event
 * checks, per request. The timer stays set in case nobody calls this. A
 * few rounds at most: the timer takes over after that. */
static void s_run_due(bb_http_t *self)
{
    for (int round = 0; round < 4 && self->due; round++) {
        int running = 0;
        self->due = false;
        if (self->timer_id) {
            zloop_timer_end(self->loop, self->timer_id);
            self->timer_id = 0;
        }
        curl_multi_socket_action(self->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        s_check_done(self);
    }
}

void bb_http_run_due(bb_http_t *self)
{
    s_run_due(self);
}

/* CURLMOPT_TIMERFUNCTION: one timer, replaced whenever curl asks. */
static int s_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    bb_http_t *self = userp;
    if (self->timer_id) {
        zloop_timer_end(self->loop, self->timer_id);
        self->timer_id = 0;
    }
    self->due = timeout_ms == 0;
    if (timeout_ms >= 0) {
        int id = zloop_timer(self->loop, (size_t)timeout_ms, 1, s_on_timer, self);
        if (id < 0)
            return -1;
        self->timer_id = id;
    }
    return 0;
}

/* ---- public ---- */

bb_http_t *bb_http_new(zloop_t *loop, long max_host_connections, long max_cached)
{
    bb_http_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->multi = curl_multi_init();
    if (!self->multi) {
        free(self);
        return NULL;
    }
    curl_multi_setopt(self->multi, CURLMOPT_SOCKETFUNCTION, s_socket_cb);
    curl_multi_setopt(self->multi, CURLMOPT_SOCKETDATA, self);
    curl_multi_setopt(self->multi, CURLMOPT_TIMERFUNCTION, s_timer_cb);
    curl_multi_setopt(self->multi, CURLMOPT_TIMERDATA, self);
    curl_multi_setopt(self->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_host_connections);
    curl_multi_setopt(self->multi, CURLMOPT_MAXCONNECTS, max_cached);
    return self;
}

void bb_http_destroy(bb_http_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bb_http_t *self = *self_p;
    for (bb_xfer_t *x = self->xfers, *next; x; x = next) {
        next = x->next;
        bb_http_cancel(self, &x);
    }
    while (self->n_idle)
        curl_easy_cleanup(self->idle[--self->n_idle]);
    curl_multi_cleanup(self->multi);
    if (self->timer_id)
        zloop_timer_end(self->loop, self->timer_id);
    free(self);
    *self_p = NULL;
}

size_t bb_http_in_flight(const bb_http_t *self)
{
    return self->in_flight;
}

void bb_http_cancel(bb_http_t *self, bb_xfer_t **xfer_p)
{
    if (!xfer_p || !*xfer_p)
        return;
    bb_xfer_t *x = *xfer_p;
    curl_multi_remove_handle(self->multi, x->easy);
    s_unlink(self, x);
    s_xfer_free(x);
    *xfer_p = NULL;
}

static int s_add_header(bb_xfer_t *x, const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = malloc(n);
    if (!line)
        return -1;
    snprintf(line, n, "%s: %s", name, value);
    struct curl_slist *l = curl_slist_append(x->headers, line);
    explicit_bzero(line, n);
    free(line);
    if (!l)
        return -1;
    x->headers = l;
    return 0;
}

/* ---- the egress policy, on the address actually connected to ---- */

/* Before curl connects: refuse the socket for an address the policy does
 * not permit (curl then tries the host's next address, if any). */
static curl_socket_t s_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
    bb_xfer_t *x = arg;
    (void)purpose;
    char why[128];
    if (!bb_egress_permits(bb_egress_global(), x->host, &addr->addr, why, sizeof why)) {
        snprintf(x->refused, sizeof x->refused, "%s", why);
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

/* Before the request goes out, on a new or a reused connection: the same
 * rule on the address it is connected to. */
static int s_prereq(void *arg, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    bb_xfer_t *x = arg;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    char why[128];
    if (!bb_egress_permits_text(bb_egress_global(), x->host, primary_ip, why, sizeof why)) {
        snprintf(x->refused, sizeof x->refused, "%s", why);
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

static void s_url_host(const char *url, char *out, size_t out_size)
{
    out[0] = '\0';
    CURLU *u = curl_url();
    char *host = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        size_t n = strlen(host);
        /* "[::1]" names the address ::1. */
        if (n >= 2 && host[0] == '[' && host[n - 1] == ']')
            snprintf(out, out_size, "%.*s", (int)(n - 2), host + 1);
        else
            snprintf(out, out_size, "%s", host);
    }
    curl_free(host);
    curl_url_cleanup(u);
}

bb_xfer_t *bb_http_start(bb_http_t *self, const bb_http_request_t *req, bb_http_done_fn done, void *arg)
{
    bb_xfer_t *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->http = self;
    x->done = done;
    x->arg = arg;
    x->max_body = req->max_body && req->max_body < MAX_BODY ? req->max_body : MAX_BODY;
    x->easy = s_easy_take(self);
    if (!x->easy)
        goto fail;
    CURL *e = x->easy;
    bool ok = true;
    ok &= curl_easy_setopt(e, CURLOPT_URL, req->url) == CURLE_OK;
    /* Handles are reused (s_easy_give): no TLS session of one request is
     * offered on the next, which may be another integration's. */
    ok &= curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, 0L) == CURLE_OK;
    s_url_host(req->url, x->host, sizeof x->host);
    ok &= curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, s_open_socket) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, s_prereq) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_PREREQDATA, x) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_PRIVATE, x) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->error) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
    /* A redirect is reported, not followed: it usually means a wrong base
     * URL, and following it could carry credentials elsewhere. */
    ok &= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                           req->connect_timeout_ms < req->timeout_ms ? req->connect_timeout_ms : req->timeout_ms) ==
          CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_USERAGENT, USER_AGENT) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "") == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->max_body) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_on_write) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_WRITEDATA, x) == CURLE_OK;
    if (req->ca_pem && *req->ca_pem) {
        struct curl_blob blob = {(void *)(uintptr_t)req->ca_pem, strlen(req->ca_pem), CURL_BLOB_COPY};
        ok &= curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob) == CURLE_OK;
        /* Only that PEM: no system CA directory either. */
        ok &= curl_easy_setopt(e, CURLOPT_CAPATH, NULL) == CURLE_OK;
    }
    if (req->accept && s_add_header(x, "Accept", req->accept) < 0)
        ok = false;
    if (req->authorization && s_add_header(x, "Authorization", req->authorization) < 0)
        ok = false;
    if (req->method && !strcmp(req->method, "POST")) {
        x->body_out = strdup(req->body ? req->body : "");
        if (!x->body_out || s_add_header(x, "Content-Type", "application/x-www-form-urlencoded") < 0)
            ok = false;
        ok &= curl_easy_setopt(e, CURLOPT_POST, 1L) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body_out) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(x->body_out ? x->body_out : "")) ==
              CURLE_OK;
        /* Small bodies: no "Expect: 100-continue" round trip. */
        if (s_add_header(x, "Expect", "") < 0)
            ok = false;
    } else {
        ok &= curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) == CURLE_OK;
    }
    ok &= curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers) == CURLE_OK;
    if (!ok || curl_multi_add_handle(self->multi, e) != CURLM_OK)
        goto fail;
    s_link(self, x);
    return x;
fail:
    s_xfer_free(x);
    return NULL;
}

void bb_http_error(const bb_http_result_t *res, const char *host, long timeout_ms, long connect_timeout_ms,
                   bus_error_t *err)
{
    if (res->refused && res->curl_code != CURLE_OK) {
        bus_error_set(err, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(ADDRESS_REFUSED),
                      "Portico does not connect to %s: %s. If Bitbucket really is there, the operator can allow it "
                      "with PORTICO_BITBUCKET_ALLOW",
                      host, res->refused);
        return;
    }
    switch (res->too_large ? CURLE_FILESIZE_EXCEEDED : res->curl_code) {
    case CURLE_OK:
        bus_error_set(err, PORTICO__ERROR_CODE__OK, DETAIL(NONE), "ok");
        return;
    case CURLE_FILESIZE_EXCEEDED: {
        size_t max = res->max_body ? res->max_body : MAX_BODY;
        bool mib = max % (1024 * 1024) == 0;
        bus_error_set(err, PORTICO__ERROR_CODE__UPSTREAM, DETAIL(TOO_LARGE),
                      "Bitbucket at %s sent an answer larger than %zu %s", host, max / (mib ? 1024 * 1024 : 1024),
                      mib ? "MiB" : "KiB");
        return;
    }
    case CURLE_COULDNT_RESOLVE_HOST:
        bus_error_set(err, PORTICO__ERROR_CODE__UNAVAILABLE, DETAIL(UNREACHABLE),
                      "could not resolve the host name of Bitbucket (%s); check the base URL and DNS", host);
        return;
    case CURLE_COULDNT_RESOLVE_PROXY:
        bus_error_set(err, PORTICO__ERROR_CODE__UNAVAILABLE, DETAIL(UNREACHABLE),
                      "could not resolve the proxy host name on the way to Bitbucket at %s", host);
        return;
    case CURLE_COULDNT_CONNECT:
        bus_error_set(err, PORTICO__ERROR_CODE__UNAVAILABLE, DETAIL(UNREACHABLE),
                      "could not connect to Bitbucket at %s (connection refused or no route); check that it is "
                      "running and reachable from Portico",
                      host);
        return;
    case CURLE_OPERATION_TIMEDOUT:
        if (!res->connected)
            bus_error_set(err, PORTICO__ERROR_CODE__TIMEOUT, DETAIL(TIMEOUT),
                          "could not connect to Bitbucket at %s within %ld ms", host,
                          connect_timeout_ms < timeout_ms ? connect_timeout_ms : timeout_ms);
        else
            bus_error_set(err, PORTICO__ERROR_CODE__TIMEOUT, DETAIL(TIMEOUT),
                          "Bitbucket at %s did not answer within %ld ms", host, timeout_ms);
        return;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        if (res->curl_code == CURLE_SSL_CACERT_BADFILE)
            bus_error_set(err, PORTICO__ERROR_CODE__TLS, DETAIL(CA_CERT_INVALID),
                          "the CA certificate of the integration could not be read; paste the PEM "
                          "(-----BEGIN CERTIFICATE-----) of the authority that issued the certificate of %s",
                          host);
        else
            bus_error_set(err, PORTICO__ERROR_CODE__TLS, DETAIL(CERTIFICATE),
                          "the TLS certificate of %s could not be verified; if Bitbucket uses a private or "
                          "self-signed certificate authority, add its CA certificate (PEM) to the integration",
                          host);
        return;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_CLIENTCERT:
        bus_error_set(err, PORTICO__ERROR_CODE__TLS, DETAIL(HANDSHAKE),
                      "the TLS handshake with %s failed; check that the base URL's scheme (https) and port are "
                      "right and that the certificate could be verified (add the CA certificate to the integration "
                      "if it is private)",
                      host);
        return;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        bus_error_set(err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(BASE_URL),
                      "the base URL of the integration cannot be used (%s)", host);
        return;
    case CURLE_OUT_OF_MEMORY:
        bus_error_set(err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "out of memory");
        return;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_BAD_CONTENT_ENCODING:
        bus_error_set(err, PORTICO__ERROR_CODE__UPSTREAM, DETAIL(PROTOCOL),
                      "%s did not answer in HTTP Portico understands; check the base URL's scheme and port", host);
        return;
    default:
        bus_error_set(err, PORTICO__ERROR_CODE__UNAVAILABLE, DETAIL(CONNECTION),
                      "the connection to Bitbucket at %s failed before it answered; try again", host);
        return;
    }
}
