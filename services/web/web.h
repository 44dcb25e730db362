/* The web frontend: configuration, per-thread bus clients, the request
 * context every handler gets, and the helpers that answer it.
 *
 * Each civetweb worker thread owns its own bus clients (created in the
 * thread-init callback); nothing here is shared between threads but the
 * read-only configuration and the broker queue.
 *
 * This header is the bottom layer: the configuration and shared state
 * (web.c) and the transport (http.c). session.h, page.h and reply.h build
 * on it; nothing here knows about pages. */
#ifndef PORTICO_WEB_H
#define PORTICO_WEB_H

#include "broker.pb-c.h"
#include "brokerq.h"
#include "gate.h"
#include "bus.h"
#include "config.h"
#include "formvar.h"
#include "netaddr.h"
#include "ratelimit.h"
#include "sbuf.h"
#include "webcache.h"

#include <civetweb.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    char public_url[512];    /* normalised, no trailing slash */
    char public_origin[512]; /* scheme://host[:port] of public_url */
    char public_path[256];   /* path prefix of public_url ("" or "/portico") */
    bool secure;             /* public URL is https */
    char http_addr[128];
    char ops_addr[128]; /* /metrics and the detailed /readyz */
    char registry_endpoint[1024];
    char bitbucket_endpoint[1024];
    char broker_bind[256];
    long threads;
    long session_idle_s;
    long session_max_s;
    long bus_timeout_ms;
    long login_timeout_ms;
    long session_cache_ms; /* 0: every request asks the registry */
    long repos_cache_ms;   /* 0: every account page asks the broker */
    char session_cookie[40];
    char login_cookie[40];
    netaddr_list_t trusted_proxies;  /* whose X-Forwarded-For names the client */
    long login_rate;                 /* login starts per client and minute */
    long callback_rate;              /* OAuth callbacks per client and minute */
    long setup_failure_rate;         /* wrong setup tokens per client and minute */
    long header_timeout_ms;          /* the gate: request headers complete within this */
    long max_conns_per_client;       /* the gate: open connections per client address */
    long max_conns;                  /* the gate: open connections in all */
    long login_ttl_s;                /* how long a started login may take: the binding cookie's age */
    char trusted_proxies_text[2048]; /* PORTICO_TRUSTED_PROXIES as given */
} web_config_t;

extern web_config_t web_cfg;

/* Every PORTICO_* variable the web reads (web_config.c). */
extern const config_var_t web_config_vars[];
/* Read and check them into c (which owns c->trusted_proxies afterwards).
 * 0, or -1 with err naming the variable. */
int web_config_load(web_config_t *c, config_error_t *err);
extern brokerq_t *web_brokerq;
/* Sessions, account records and repository lists seen lately (session.c
 * says what may be stale and for how long); NULL when both caches are off. */
extern webcache_t *web_cache;
/* Per-client request budgets (web_rate_ok). */
extern ratelimit_t *web_limits;
/* The front door (gate.h): who the client of a gated request is. */
extern gate_t *web_gate;

/* A request thread's bus clients, made on first use (web_registry, ...):
 * each holds a connection per instance and key, with a heartbeat each way
 * every second, and most of the threads never need most of them. */
typedef struct {
    bus_client_t *registry;
    bus_client_t *bitbucket;
} web_clients_t;

typedef struct {
    int64_t user_id;
    bool setup; /* a Setup Mode session (setup token, no account) */
    bool is_admin;
    bool setup_mode; /* Setup Mode is on right now */
    char user_name[256];
    char display_name[256];
    char csrf[48];
} web_session_t;

#define WEB_MAX_SET_COOKIES 3

/* The gate closes a public keep-alive connection idle this long (and its
 * own connection to civetweb sooner: gate.h); civetweb closes one that the
 * gate has left open this long, as a backstop. Answers say Connection:
 * close when the connection ends after them, and Keep-Alive: timeout=
 * (these seconds) when it stays open (web_send): a client that reused a
 * connection just as the server closes it would see its request fail.
 * Clients keep an idle connection for less than the hint (Node's fetch
 * takes 2 s off it; with no hint, 4 s), so 5 s leaves them a margin. */
#define WEB_KEEP_ALIVE_MS 5000

typedef struct web_req {
    struct mg_connection *conn;
    const struct mg_request_info *ri;
    web_clients_t *clients;
    const char *path;  /* the routed path, without PORTICO_PUBLIC_URL's prefix */
    const char *route; /* metrics label */
    int64_t path_id;   /* the {id} in the route's path, or 0 */
    bool ops;          /* arrived on the operations listener (PORTICO_OPS_ADDR) */
    bool close;        /* end the connection after the answer */
    int status;
    char addr[64];     /* the client: the peer, or from a trusted proxy's X-Forwarded-For */
    int retry_after_s; /* > 0: a Retry-After header on the answer */
    const char *allow; /* not NULL: an Allow header (the methods of a 405's path) */
    char request_id[24];
    int session_state;       /* 0 not looked up, 1 none, 2 present */
    bus_error_t session_err; /* code not OK: the registry could not say (session_state 1) */
    bool session_fresh;      /* ask the registry, not the cache (admin pages) */
    web_session_t session;
    bool session_with_user;                       /* the page shows the account: ask for it with the session */
    struct Portico__Registry__User *session_user; /* came with the session (NULL: ask user.get) */
    void *session_reply;                          /* what session_user lives in; freed with the request */
    char session_token[64];                       /* the cookie value: never logged */
    char *body;
    size_t body_len, body_cap; /* body_cap: bytes of body to wipe when freed */
    int body_state;            /* 0 unread, 1 read, -1 too large or failed */
    char set_cookie[WEB_MAX_SET_COOKIES][256];
    int nset_cookie;
    const char *referrer_policy;       /* NULL = same-origin */
    const char *extra_csp_form_action; /* origin allowed as form-action, or NULL */
} web_req_t;

typedef void (*web_handler_fn)(web_req_t *r);

/* A route: method ("GET", "POST" or NULL for any), path, and whether the
 * path is a prefix (then it ends with '/'). A path may hold {id}: a
 * positive decimal number, given to the handler in r->path_id. The first
 * route that matches wins; a handler is one page or action, never a
 * dispatcher of its own, so each has its own metrics label (name). */
typedef struct {
    const char *method;
    const char *path;
    bool prefix;
    web_handler_fn fn;
    const char *name;
} web_route_t;

/* Route tables of each page group; each ends with a zeroed entry. */
extern const web_route_t web_ops_routes[];
extern const web_route_t web_admin_routes[];
extern const web_route_t web_admin_integration_routes[];
extern const web_route_t web_admin_user_routes[];
extern const web_route_t web_login_routes[];
extern const web_route_t web_account_routes[];
extern const web_route_t web_static_routes[];

/* This thread's client of the registry and of the Bitbucket service, made
 * on the first call (clients.c; r->clients is not NULL). */
bus_client_t *web_registry(web_req_t *r);
bus_client_t *web_bitbucket(web_req_t *r);
/* bus_call_method to m's service: the registry and the Bitbucket service
 * with this thread's client, the broker through the broker queue. */
int web_call(web_req_t *r, const bus_method_t *m, const ProtobufCMessage *req, ProtobufCMessage **rep, int timeout_ms,
             bus_error_t *err);

/* ---- answering (http.c: transport only, no pages; reply.h has those) ---- */

/* Send a complete response with Portico's security headers. extra_headers is
 * NULL or CRLF-terminated header lines. */
void web_send(web_req_t *r, int status, const char *content_type, const char *body, size_t len,
              const char *extra_headers);
/* 303 See Other to a local path or an absolute URL we built ourselves. */
void web_redirect(web_req_t *r, const char *location);
int web_status_for(const bus_error_t *err);

/* Per-client limits (web_rate_ok in reply.h answers for you): 0, or the
 * seconds to wait (then r->retry_after_s is set for the answer the caller
 * sends). what names the budget ("login_start", ...). */
int web_rate_wait(web_req_t *r, const char *what, long per_minute, bool take);
/* Use one token of a budget after the fact (a wrong setup token). */
void web_rate_charge(web_req_t *r, const char *what, long per_minute);

/* ---- reading the request (http.c) ---- */

/* Form field from an x-www-form-urlencoded POST body (max 64 KiB).
 * Returns the decoded length, or one of formvar.h's WEB_VAR_* (-1 absent,
 * -2 longer than out, WEB_VAR_NUL). */
int web_form(web_req_t *r, const char *name, char *out, size_t out_size);
/* True when the body could not be read or was too large (answer 413). */
bool web_body_failed(web_req_t *r);
/* Wipe and free the body read for r: a form's client secret or setup
 * token is not left in freed memory. */
void web_body_free(web_req_t *r);
/* Query string parameter; same results as web_form. */
int web_query(web_req_t *r, const char *name, char *out, size_t out_size);
/* Cookie value (cookie.h: the exact name, sent once); -1 when absent,
 * sent twice or too long. */
int web_cookie(web_req_t *r, const char *name, char *out, size_t out_size);
const char *web_header(web_req_t *r, const char *name);
/* The numeric id after prefix in the path ("/admin/integrations/12/edit"
 * with prefix "/admin/integrations/" gives 12 and rest "/edit"). -1 when
 * it is not a positive number. */
int64_t web_path_id(web_req_t *r, const char *prefix, const char **rest);

/* ---- time ---- */
/* "2026-11-29 15:04 UTC" from epoch seconds. */
void web_format_time(int64_t epoch_s, char *out, size_t out_size);

#endif
