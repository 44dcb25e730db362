/* bb_http: many HTTP transfers at once, driven by a czmq zloop.
 *
 * libcurl's multi interface in its event-driven form: curl tells us which
 * sockets to watch (CURLMOPT_SOCKETFUNCTION: each becomes a zloop poller)
 * and when to wake it (CURLMOPT_TIMERFUNCTION: a one-shot zloop timer), and
 * we call curl_multi_socket_action when either fires. So the one thread that
 * reads the bus also moves every transfer forward, and a slow Bitbucket
 * delays nobody but its own callers. The multi handle keeps a connection
 * cache (and DNS cache) shared by all transfers.
 *
 * TLS is always verified. A transfer with a CA certificate trusts only
 * that PEM (CURLOPT_CAINFO_BLOB, no system store); curl matches the CA blob
 * before reusing a cached connection, so integrations never share one
 * across trust settings. TLS sessions are not resumed (no CURLSH, and
 * the session cache of the easy handles, which are reused from one
 * transfer to the next, is off): curl releases before 8.6 had
 * session-cache matching bugs, and reused connections already save the
 * handshakes that matter. */
#ifndef PORTICO_BB_HTTP_H
#define PORTICO_BB_HTTP_H

#include "buserr.h"

#include <curl/curl.h>
#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct bb_http_t bb_http_t;
typedef struct bb_xfer_t bb_xfer_t;

typedef struct {
    const char *method;        /* "GET" or "POST" */
    const char *url;           /* absolute, with its query */
    const char *body;          /* POST: application/x-www-form-urlencoded; NULL for GET */
    const char *authorization; /* Authorization header value or NULL; copied and wiped after */
    const char *accept;        /* Accept header value, NULL for curl's default */
    const char *ca_pem;        /* trust only this PEM; NULL or "" for the system store */
    long timeout_ms;           /* whole transfer */
    long connect_timeout_ms;   /* connection and TLS handshake */
    size_t max_body;           /* a longer answer is refused (too_large); 0 for the most, 4 MiB */
} bb_http_request_t;

/* The outcome of one transfer: valid only during the done callback. */
typedef struct {
    CURLcode curl_code;
    const char *curl_error; /* curl's own text for the log; names hosts, never secrets */
    bool too_large;         /* the body passed the size cap */
    size_t max_body;        /* that cap */
    const char *refused;    /* why the egress policy refused the address (bb_egress.h), or NULL */
    bool connected;         /* a connection was established (tells connect from answer timeouts) */
    long status;            /* HTTP status, 0 when there was no answer */
    const char *body;       /* NUL-terminated for convenience; may contain NUL bytes */
    size_t body_len;
    const char *content_type, *www_authenticate, *retry_after, *location, *x_ausername, *x_auserid;
    double seconds;
} bb_http_result_t;

typedef void (*bb_http_done_fn)(void *arg, const bb_http_result_t *res);

/* max_host_connections bounds parallel connections per Bitbucket host
 * (more transfers queue inside curl); max_cached is the idle cache size. */
bb_http_t *bb_http_new(zloop_t *loop, long max_host_connections, long max_cached);
/* Abort every transfer (no callbacks) and free. */
void bb_http_destroy(bb_http_t **self_p);

/* Start a transfer. done(arg, result) runs exactly once, later, from the
 * loop (never from inside this call). NULL when it cannot start. */
bb_xfer_t *bb_http_start(bb_http_t *self, const bb_http_request_t *req, bb_http_done_fn done, void *arg);
/* Move the transfers just started as far as they go now (sending the
 * request), instead of on the loop's next round. Call it from a loop
 * callback after starting transfers; done callbacks may run inside. */
void bb_http_run_due(bb_http_t *self);
/* Abort a transfer; its done callback does not run. */
void bb_http_cancel(bb_http_t *self, bb_xfer_t **xfer_p);
size_t bb_http_in_flight(const bb_http_t *self);

/* The typed error for a transfer that ended without an HTTP answer
 * (res->curl_code != CURLE_OK or too_large). host names the integration in
 * the message; timeout_ms is what the transfer was allowed. */
void bb_http_error(const bb_http_result_t *res, const char *host, long timeout_ms, long connect_timeout_ms,
                   bus_error_t *err);

#endif
