/* portico-web: the edge. civetweb serves the pages; each worker thread owns
 * its bus clients; the broker queue thread spreads login work over every
 * connected broker worker. */
#include "reply.h"

#include "crypto.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "presence.h"
#include "service.h"
#include "url.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

/* Clients the rate limits remember at once (beyond that, the quietest are
 * forgotten: see ratelimit.h). */
#define LIMIT_SLOTS 65536

/* What the cache may hold at most. */
#define CACHE_MAX_ENTRIES 65536
#define CACHE_MAX_BYTES (64L * 1024 * 1024)

static void s_forwarded_for(web_req_t *r);

/* The client of this request: the peer, unless the peer is a trusted
 * proxy; then the right-most X-Forwarded-For entry that is not one (what
 * the proxies nearest to us saw; entries further left are whatever the
 * client chose to send). false when a request on the public side did not
 * come through the gate (its header, with the gate's secret token, on the
 * connection's first request): someone on this machine connected to
 * civetweb's loopback port directly, past the gate's limits. */
static bool s_client_addr(web_req_t *r)
{
    bool gated = !web_gate;
    snprintf(r->addr, sizeof r->addr, "%s", r->ri->remote_addr);
    /* Through the gate civetweb sees loopback: the gate names the client
     * on a connection's first request; later ones on it are the same. The
     * operations port has a gate of its own, which names nobody here. */
    if (web_gate && !r->ops) {
        char client[64];
        char *known = mg_get_user_connection_data(r->conn);
        if (gate_client(web_gate, mg_get_header(r->conn, GATE_HEADER), client, sizeof client)) {
            snprintf(r->addr, sizeof r->addr, "%s", client);
            if (!known && (known = malloc(sizeof client)))
                mg_set_user_connection_data(r->conn, known);
            if (known)
                snprintf(known, sizeof client, "%s", client);
            gated = true;
        } else if (known) {
            snprintf(r->addr, sizeof r->addr, "%s", known);
            gated = true;
        }
    }
    s_forwarded_for(r);
    return gated;
}

/* One entry of X-Forwarded-For, taken from the right: the client it names
 * becomes the request's. false: no entry to believe further left (it is
 * not an address, or not one of the trusted proxies). */
static bool s_forwarded_hop(web_req_t *r, const char *item, size_t n)
{
    while (n && (*item == ' ' || *item == '\t')) {
        item++;
        n--;
    }
    while (n && (item[n - 1] == ' ' || item[n - 1] == '\t'))
        n--;
    char ip[64];
    if (!n || n >= sizeof ip)
        return false;
    memcpy(ip, item, n);
    ip[n] = '\0';
    if (!netaddr_is_ip(ip))
        return false; /* garbage: believe nothing further */
    snprintf(r->addr, sizeof r->addr, "%s", ip);
    return netaddr_list_contains(&web_cfg.trusted_proxies, ip);
}

/* Behind a trusted proxy: the client that proxy names (s_client_addr).
 * Every X-Forwarded-For counts, as one list in their order (RFC 9110
 * 5.3): HAProxy adds its own header after the client's rather than
 * joining them, and a client's header would otherwise name the client.
 * Read whole, from the right, however long the client made its part. */
static void s_forwarded_for(web_req_t *r)
{
    if (!web_cfg.trusted_proxies.n || !netaddr_list_contains(&web_cfg.trusted_proxies, r->addr))
        return;
    const struct mg_request_info *ri = mg_get_request_info(r->conn);
    for (int h = ri->num_headers - 1; h >= 0; h--) {
        if (strcasecmp(ri->http_headers[h].name, "X-Forwarded-For"))
            continue;
        const char *v = ri->http_headers[h].value;
        size_t end = strlen(v);
        for (;;) {
            size_t start = end;
            while (start > 0 && v[start - 1] != ',')
                start--;
            if (!s_forwarded_hop(r, v + start, end - start))
                return;
            if (!start)
                break;
            end = start - 1;
        }
    }
}

/* ---- per-thread bus clients ---- */

static void *s_thread_init(const struct mg_context *ctx, int thread_type)
{
    (void)ctx;
    if (thread_type != 1) /* only request worker threads talk to the bus */
        return NULL;
    /* The clients themselves come on first use (web_registry, ...). */
    return calloc(1, sizeof(web_clients_t));
}

/* civetweb reuses a worker's connection object for its next connection:
 * forget the address with the connection. */
static void s_connection_close(const struct mg_connection *conn)
{
    free(mg_get_user_connection_data(conn));
    mg_set_user_connection_data(conn, NULL);
}

static void s_thread_exit(const struct mg_context *ctx, int thread_type, void *ptr)
{
    (void)ctx;
    (void)thread_type;
    web_clients_t *c = ptr;
    if (!c)
        return;
    bus_client_destroy(&c->registry);
    bus_client_destroy(&c->bitbucket);
    free(c);
}

/* ---- routing ---- */

/* web_admin_routes before the others under /admin: its exact paths
 * (/admin/integrations/new) come before their prefix routes. */
static const web_route_t *const s_tables[] = {web_ops_routes,       web_static_routes, web_login_routes,
                                              web_account_routes,   web_admin_routes,  web_admin_integration_routes,
                                              web_admin_user_routes};

/* path against a route's: literal text, and {id} for a positive decimal
 * number (put in *id). A prefix route matches the start of a path. */
static bool s_path_match(const web_route_t *rt, const char *path, int64_t *id)
{
    const char *p = rt->path, *q = path;
    while (*p) {
        if (!strncmp(p, "{id}", 4)) {
            int64_t v = 0;
            int digits = 0;
            while (*q >= '0' && *q <= '9' && digits < 15) {
                v = v * 10 + (*q++ - '0');
                digits++;
            }
            if (!digits || v <= 0 || (*q >= '0' && *q <= '9'))
                return false;
            *id = v;
            p += 4;
        } else if (*p++ != *q++) {
            return false;
        }
    }
    return rt->prefix || *q == '\0';
}

/* The route for method and path. None: *wrong_method when the path has
 * routes for other methods only, which *allow names (for a 405's Allow
 * header; the route tables have GET and POST only, and GET brings HEAD). */
static const web_route_t *s_match(const char *method, const char *path, bool *wrong_method, int64_t *id,
                                  const char **allow)
{
    bool get = false, post = false;
    *wrong_method = false;
    *allow = NULL;
    for (size_t t = 0; t < sizeof s_tables / sizeof s_tables[0]; t++) {
        for (const web_route_t *rt = s_tables[t]; rt->path; rt++) {
            /* A route for any method does not take a path that has
             * routes for other methods: that is a 405. */
            if (!s_path_match(rt, path, id) || (!rt->method && *wrong_method))
                continue;
            if (!rt->method || !strcmp(rt->method, method) || (!strcmp(method, "HEAD") && !strcmp(rt->method, "GET")))
                return rt;
            *wrong_method = true;
            get |= !strcmp(rt->method, "GET");
            post |= !strcmp(rt->method, "POST");
        }
    }
    if (*wrong_method)
        *allow = get && post ? "GET, HEAD, POST" : get ? "GET, HEAD" : "POST";
    return NULL;
}

/* The operations listener serves only these (from web_ops_routes). */
static bool s_ops_route(const web_route_t *rt)
{
    return rt && (!strcmp(rt->name, "healthz") || !strcmp(rt->name, "readyz") || !strcmp(rt->name, "metrics"));
}

/* A request id: 8 random bytes in hex. It only ties log lines together
 * (it is no secret), so each thread draws its random bytes 32 ids at a time:
 * every draw from the random generator costs microseconds. */
#define REQUEST_ID_BYTES 8
#define REQUEST_IDS_PER_DRAW 32
static void s_request_id(char *out)
{
    static __thread uint8_t pool[REQUEST_ID_BYTES * REQUEST_IDS_PER_DRAW];
    static __thread size_t used = sizeof pool;
    if (used == sizeof pool) {
        crypto_random(pool, sizeof pool);
        used = 0;
    }
    crypto_hex(pool + used, REQUEST_ID_BYTES, out);
    used += REQUEST_ID_BYTES;
}

/* A request whose body a proxy in front could frame otherwise than civetweb
 * does: both Content-Length and Transfer-Encoding, either one twice, or a
 * Content-Length that is not a plain number (civetweb reads "4x" as 4).
 * Such a body could carry a second request past the proxy (RFC 9112 6.3). */
static bool s_ambiguous_framing(const struct mg_request_info *ri)
{
    int cl = 0, te = 0;
    for (int i = 0; i < ri->num_headers; i++) {
        const char *name = ri->http_headers[i].name, *value = ri->http_headers[i].value;
        if (!strcasecmp(name, "Transfer-Encoding")) {
            te++;
        } else if (!strcasecmp(name, "Content-Length")) {
            cl++;
            if (!*value || value[strspn(value, "0123456789")] != '\0')
                return true;
        }
    }
    return cl > 1 || te > 1 || (cl && te);
}

static int s_handle(struct mg_connection *conn, void *cbdata)
{
    int64_t started = bus_now_ms();
    web_req_t r;
    memset(&r, 0, sizeof r);
    r.conn = conn;
    r.ri = mg_get_request_info(conn);
    r.clients = mg_get_thread_pointer(conn);
    r.route = "unknown";
    r.ops = cbdata != NULL;
    bool gated = s_client_addr(&r);
    s_request_id(r.request_id);
    log_set_request_id(r.request_id);

    const char *path = r.ri->local_uri;
    size_t pp = strlen(web_cfg.public_path);
    if (pp && !strncmp(path, web_cfg.public_path, pp) && (path[pp] == '/' || path[pp] == '\0'))
        path += pp; /* behind a proxy that keeps the prefix */
    if (!*path)
        path = "/";
    r.path = path;
    bool wrong_method = false;
    const char *allow;
    const web_route_t *rt = s_match(r.ri->request_method, path, &wrong_method, &r.path_id, &allow);
    if (r.ops && !s_ops_route(rt)) {
        rt = NULL;
        wrong_method = false;
    }
    if (s_ambiguous_framing(r.ri)) {
        /* Nothing after this request is read from its connection. */
        r.route = "bad_framing";
        r.close = true;
        static const char ambiguous[] = "the request's length is ambiguous\n";
        web_send(&r, 400, "text/plain; charset=utf-8", ambiguous, sizeof ambiguous - 1, NULL);
    } else if (!r.ops && !gated) {
        /* Not through the gate: answered with nothing of Portico's. */
        r.route = "not_gated";
        static const char refusal[] = "use Portico's public address\n";
        web_send(&r, 403, "text/plain; charset=utf-8", refusal, sizeof refusal - 1, NULL);
    } else if (!r.clients) {
        web_error_page(&r, 503, "Service unavailable", "This server thread has no connection to Portico's services.",
                       "Try again.");
    } else if (rt) {
        r.route = rt->name;
        /* Admin pages never trust a cached session. */
        r.session_fresh = !strncmp(rt->name, "admin", 5);
        rt->fn(&r);
        if (!r.status)
            web_error_page(&r, 500, "Something went wrong", "The page could not be produced.", "Try again.");
    } else if (wrong_method) {
        r.route = "method_not_allowed";
        r.allow = allow;
        web_send(&r, 405, "text/plain; charset=utf-8", "method not allowed\n", 19, NULL);
    } else {
        r.route = "not_found";
        web_error_page(&r, 404, "Page not found", "There is no page at this address.",
                       "Check the link, or start from the home page.");
    }
    web_session_release(&r);
    char labels[128];
    snprintf(labels, sizeof labels, "route=\"%s\",status=\"%d\"", r.route, r.status);
    metrics_inc("portico_http_requests_total", labels, 1);
    snprintf(labels, sizeof labels, "route=\"%s\"", r.route);
    double secs = (double)(bus_now_ms() - started) / 1000.0;
    metrics_observe("portico_http_request_seconds", labels, secs);
    char q[40];
    /* One line per request costs a write per request: answers that went
     * well are debug, the others info. */
    if (strcmp(r.route, "static") && strcmp(r.route, "metrics") && strcmp(r.route, "healthz"))
        log_write(r.status >= 400 || !r.status ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG, "http request",
                  "method=%s route=%s status=%d ms=%.1f", log_quote(r.ri->request_method, q, sizeof q), r.route,
                  r.status, secs * 1000.0);
    web_body_free(&r);
    log_set_request_id(NULL);
    return r.status ? r.status : 500;
}

/* Portico does its own sign-in: every request is "authorized" here. With
 * no handler of its own, civetweb looks for a .htpasswd file beside every
 * request's path (a failing stat per request). */
static int s_no_http_auth(struct mg_connection *conn, void *cbdata)
{
    (void)conn;
    (void)cbdata;
    return 1;
}

static void *s_stop_context(void *arg)
{
    mg_stop(arg);
    return NULL;
}

static int s_load_config(config_error_t *err)
{
    return web_config_load(&web_cfg, err);
}

static const char *s_health_addr(void)
{
    return web_cfg.http_addr;
}

static int s_run(void)
{
    char instance[96];
    service_instance_name(instance, sizeof instance);
    bus_set_identity("web", instance, NULL, NULL);
    /* The templates were checked at build; a broken one stops the start too. */
    char terr[300];
    if (page_templates_load(terr, sizeof terr) < 0) {
        log_error("could not load the page templates", "why=%s", terr);
        return 1;
    }
    metrics_help("portico_http_requests_total", "counter", "HTTP requests by route and status");
    metrics_help("portico_http_request_seconds", "histogram", "HTTP request latency by route");
    metrics_help("portico_bus_call_seconds", "histogram", "Bus call latency by service and method");
    metrics_help("portico_web_cache_total", "counter", "Web cache lookups by cache (session, account, repositories)");

    metrics_help("portico_http_rate_limited_total", "counter", "Requests refused by a per-client limit");
    web_limits = ratelimit_new(LIMIT_SLOTS);
    if (!web_limits)
        return 1;
    web_brokerq = brokerq_new(web_cfg.broker_bind);
    if (!web_brokerq)
        return 1;
    if (web_cfg.session_cache_ms || web_cfg.repos_cache_ms) {
        web_cache = webcache_new(CACHE_MAX_ENTRIES, CACHE_MAX_BYTES);
        if (!web_cache) {
            brokerq_destroy(&web_brokerq);
            return 1;
        }
    }
    /* Every connection the gate relays costs two descriptors. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    mg_init_library(0);
    char threads[16];
    snprintf(threads, sizeof threads, "%ld", web_cfg.threads);
    char keep_alive_ms[16];
    snprintf(keep_alive_ms, sizeof keep_alive_ms, "%d", WEB_KEEP_ALIVE_MS);
    /* tcp_nodelay: a response goes out in two writes (headers, body), and
     * with Nagle and delayed ACKs each keep-alive response waited ~40 ms. */
    /* civetweb serves from a private loopback port; the gate (gate.h)
     * holds the public one and hands over complete requests only. */
    const char *options[] = {"listening_ports",
                             "127.0.0.1:0",
                             "num_threads",
                             threads,
                             "request_timeout_ms",
                             "10000",
                             "enable_keep_alive",
                             "yes",
                             "keep_alive_timeout_ms",
                             keep_alive_ms,
                             "max_request_size",
                             "16384",
                             "tcp_nodelay",
                             "1",
                             NULL};
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.init_thread = s_thread_init;
    cb.exit_thread = s_thread_exit;
    cb.connection_close = s_connection_close;
    struct mg_context *ctx = mg_start(&cb, NULL, options);
    if (!ctx) {
        log_error("could not start civetweb on its private loopback port", NULL);
        brokerq_destroy(&web_brokerq);
        webcache_destroy(&web_cache);
        return 1;
    }
    mg_set_request_handler(ctx, "/", s_handle, NULL);
    mg_set_auth_handler(ctx, "/", s_no_http_auth, NULL);
    struct mg_server_port port;
    memset(&port, 0, sizeof port);
    gate_config_t gc = {.listen_addr = web_cfg.http_addr,
                        .header_timeout_ms = web_cfg.header_timeout_ms,
                        .keep_alive_ms = WEB_KEEP_ALIVE_MS,
                        .max_per_client = web_cfg.max_conns_per_client,
                        .max_total = web_cfg.max_conns,
                        .trusted = &web_cfg.trusted_proxies};
    if (mg_get_server_ports(ctx, 1, &port) == 1)
        gc.backend_port = port.port;
    web_gate = gc.backend_port > 0 ? gate_new(&gc) : NULL;
    if (!web_gate) {
        log_error("could not listen for HTTP (PORTICO_HTTP_ADDR)", "addr=%s", web_cfg.http_addr);
        mg_stop(ctx);
        brokerq_destroy(&web_brokerq);
        webcache_destroy(&web_cache);
        return 1;
    }
    /* Operations (/metrics, the detailed /readyz) on their own listener and
     * threads: private by default, and still answering when the public
     * port is busy. */
    const char *ops_options[] = {
        "listening_ports",  "127.0.0.1:0", "num_threads", "4", "request_timeout_ms", "10000", "enable_keep_alive", "no",
        "max_request_size", "8192",        NULL};
    struct mg_context *ops = mg_start(&cb, NULL, ops_options);
    if (ops) {
        mg_set_request_handler(ops, "/", s_handle, &web_cfg);
        mg_set_auth_handler(ops, "/", s_no_http_auth, NULL);
    }
    /* Behind a gate of its own, as the health listeners are (health.h):
     * slow clients cannot hold its threads. */
    gate_config_t ogc = {.listen_addr = web_cfg.ops_addr,
                         .header_timeout_ms = HEALTH_HEADER_TIMEOUT_MS,
                         .keep_alive_ms = HEALTH_KEEP_ALIVE_MS,
                         .max_per_client = HEALTH_MAX_PER_CLIENT,
                         .max_total = HEALTH_MAX_TOTAL,
                         .listener = "ops"};
    memset(&port, 0, sizeof port);
    if (ops && mg_get_server_ports(ops, 1, &port) == 1)
        ogc.backend_port = port.port;
    gate_t *ops_gate = ogc.backend_port > 0 ? gate_new(&ogc) : NULL;
    if (!ops_gate) {
        log_error("could not listen for operations (PORTICO_OPS_ADDR)", "addr=%s", web_cfg.ops_addr);
        if (ops)
            mg_stop(ops);
        gate_destroy(&web_gate);
        mg_stop(ctx);
        brokerq_destroy(&web_brokerq);
        webcache_destroy(&web_cache);
        return 1;
    }
    log_info("web listening", "addr=%s ops_addr=%s public_url=%s", web_cfg.http_addr, web_cfg.ops_addr,
             web_cfg.public_url);
    if (presence_start(web_cfg.registry_endpoint) < 0)
        log_error("could not start reporting this web to the registry", NULL);
    bool said_leaving = false;
    while (!service_stopping()) {
        /* SIGHUP: a new bus key (README: Bus keys). The web's bus clients
         * connect again with it between calls; the workers' port binds
         * again with it. */
        if (service_take_reload() && busauth_reload_secret() == 1) {
            log_info("the bus keys changed; binding the workers' port again", NULL);
            brokerq_rekey(web_brokerq);
        }
        if (service_leaving() && !said_leaving) {
            log_info("leaving: /readyz answers 503, serving on until the stop delay ends", NULL);
            said_leaving = true;
        }
        usleep(100 * 1000);
    }
    log_info("stopping", NULL);
    presence_stop();
    /* No new connections; the requests on their way are answered. */
    gate_drain(web_gate, SERVICE_DRAIN_MS);
    gate_destroy(&ops_gate);
    /* mg_stop waits up to its listener's poll interval: both at once. */
    pthread_t ops_stopper;
    bool stopping_ops = service_thread_start(&ops_stopper, "ops-stopper", s_stop_context, ops) == 0;
    if (!stopping_ops)
        mg_stop(ops);
    mg_stop(ctx); /* waits for requests in flight */
    if (stopping_ops)
        pthread_join(ops_stopper, NULL);
    /* Only now: a request civetweb still served asked it who its client is. */
    gate_destroy(&web_gate);
    brokerq_destroy(&web_brokerq);
    webcache_destroy(&web_cache);
    ratelimit_destroy(&web_limits);
    netaddr_list_free(&web_cfg.trusted_proxies);
    mg_exit_library();
    page_templates_free();
    log_info("stopped", NULL);
    return 0;
}

int main(int argc, char **argv)
{
    static const service_def_t web = {
        .name = "web",
        .load_config = s_load_config,
        .health_addr = s_health_addr,
        .health_path = "/healthz",
        /* Only broker workers may connect to the web's broker port. */
        .bus_serves = BUS_BROKER,
        .bus_calls = BUS_REGISTRY | BUS_BITBUCKET,
        .run = s_run,
    };
    return service_main(&web, argc, argv);
}
