/* portico-bitbucket: every outbound HTTP call to Bitbucket.
 *
 *   portico-bitbucket               serve (configuration from PORTICO_* variables)
 *   portico-bitbucket healthcheck   exit 0 when the running service is ready
 *
 * Configuration: bb_config.h; and
 *   PORTICO_LOG_LEVEL                       info
 * Outbound proxies: libcurl's http_proxy / https_proxy / no_proxy. */
#include "bb_config.h"
#include "bb_egress.h"
#include "bb_server.h"
#include "bus.h"
#include "log.h"
#include "service.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bb_config_t s_cfg;

/* The host of "tcp://host:port" or "host:port"; "" for a wildcard. */
static void s_endpoint_host(const char *v, char *out, size_t out_size)
{
    const char *p = strstr(v, "://");
    p = p ? p + 3 : v;
    size_t n = strlen(p);
    const char *colon = strrchr(p, ':');
    if (colon)
        n = (size_t)(colon - p);
    if (n >= 2 && p[0] == '[' && p[n - 1] == ']') {
        p++;
        n -= 2;
    }
    snprintf(out, out_size, "%.*s", (int)n, p);
    if (!strcmp(out, "*") || !strcmp(out, "0.0.0.0") || !strcmp(out, "::"))
        out[0] = '\0';
}

/* The egress policy: PORTICO_BITBUCKET_ALLOW, and what is Portico's own:
 * this host's interfaces, the hosts of the Portico addresses in the
 * environment, and PORTICO_OWN_HOSTS. */
static bb_egress_t *s_egress_load(const char *allow, const char *own, bool quiet, bool *partial,
                                  const atomic_bool *stop)
{
    char why[300], host[256];
    bb_egress_t *e = bb_egress_new();
    if (!e)
        return NULL;
    if (bb_egress_allow(e, allow, why, sizeof why) < 0) {
        bb_egress_destroy(&e); /* checked at start: bb_config.c */
        return NULL;
    }
    *partial = false;
    if (bb_egress_own_interfaces(e) < 0) {
        *partial = true;
        if (!quiet)
            log_warn("could not list this host's addresses; they are not refused as Bitbucket", NULL);
    }
    static const char *const vars[] = {
        "PORTICO_REGISTRY_ENDPOINT", "PORTICO_BITBUCKET_ENDPOINT", "PORTICO_BROKER_ENDPOINT", "PORTICO_REGISTRY_BIND",
        "PORTICO_BROKER_BIND",       "PORTICO_HTTP_ADDR",          "PORTICO_OPS_ADDR"};
    /* Each name may wait for the resolver: a stop asked meanwhile ends the
     * read (the caller drops what it got). */
    for (size_t i = 0; i < sizeof vars / sizeof vars[0] && !(stop && atomic_load(stop)); i++) {
        const char *v = getenv(vars[i]);
        /* Unix sockets and in-process endpoints name no host. */
        if (!v || !*v || !strncmp(v, "ipc://", 6) || !strncmp(v, "inproc://", 9))
            continue;
        s_endpoint_host(v, host, sizeof host);
        if (host[0] && bb_egress_own_host(e, host) < 0) {
            *partial = true;
            if (!quiet)
                log_warn("could not resolve a Portico address; it is not refused as Bitbucket", "variable=%s", vars[i]);
        }
    }
    for (const char *p = own; *p && !(stop && atomic_load(stop));) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t n = strcspn(p, ", ");
        if (!n)
            break;
        snprintf(host, sizeof host, "%.*s", (int)(n < sizeof host ? n : sizeof host - 1), p);
        p += n;
        if (bb_egress_own_host(e, host) < 0) {
            *partial = true;
            if (!quiet)
                log_warn("could not resolve a host of PORTICO_OWN_HOSTS; it is not refused as Bitbucket", "host=\"%s\"",
                         host);
        }
    }
    return e;
}

/* Portico's own addresses change: a container that starts again gets new
 * ones, a name resolves later (Swarm publishes it once the task is
 * healthy), an interface is added. Read them again every BB_OWN_REFRESH_S
 * seconds. A read that could not resolve everything keeps the addresses
 * known before as well. The policy replaced is freed one round later: a
 * check that read it just before the swap is long done by then. */
typedef struct {
    bb_egress_t *current, *retired;
    pthread_t thread;
    bool running;
    atomic_bool stop;
} own_refresh_t;

static void *s_own_refresh(void *arg)
{
    own_refresh_t *r = arg;
    for (;;) {
        for (int i = 0; i < BB_OWN_REFRESH_S * 4 && !atomic_load(&r->stop); i++)
            usleep(250 * 1000);
        if (atomic_load(&r->stop))
            break;
        bool partial;
        bb_egress_t *next = s_egress_load(s_cfg.allow, s_cfg.own_hosts, true, &partial, &r->stop);
        if (!next || atomic_load(&r->stop) || (partial && bb_egress_own_add_all(next, r->current) < 0)) {
            bb_egress_destroy(&next);
            continue;
        }
        if (!bb_egress_own_same(next, r->current))
            log_info("Portico's own addresses changed; calls to them are refused", "addresses=%zu",
                     bb_egress_own_count(next));
        bb_egress_set_global(next);
        bb_egress_destroy(&r->retired);
        r->retired = r->current;
        r->current = next;
    }
    return NULL;
}

static int s_load_config(config_error_t *err)
{
    if (bb_config_load(&s_cfg, err) < 0)
        return -1;
    s_cfg.server.drain_ms = SERVICE_DRAIN_MS;
    return 0;
}

static const char *s_health_addr(void)
{
    return s_cfg.health_addr;
}

static int s_run(void)
{
    /* Before any thread starts (the health endpoint runs threads). */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("could not initialise libcurl", NULL);
        return 1;
    }
    int rc = 1;
    bb_server_t *server = NULL;
    own_refresh_t own = {0};
    bool partial;
    own.current = s_egress_load(s_cfg.allow, s_cfg.own_hosts, false, &partial, NULL);
    if (!own.current)
        goto out;
    bb_egress_set_global(own.current);
    own.running = service_thread_start(&own.thread, "own-addresses", s_own_refresh, &own) == 0;
    server = bb_server_new(&s_cfg.server);
    if (!server)
        goto out;
    char instance[96];
    service_instance_name(instance, sizeof instance);
    bus_set_identity("bitbucket", instance, bb_server_ready, server);
    if (service_health_start(s_cfg.health_addr, bb_server_ready, server) < 0)
        goto out;
    rc = bb_server_run(server);
out:
    /* The health endpoint asks the server: close it first. */
    service_health_stop();
    bb_server_destroy(&server);
    if (own.running) {
        atomic_store(&own.stop, true);
        pthread_join(own.thread, NULL);
    }
    bb_egress_set_global(NULL);
    bb_egress_destroy(&own.current);
    bb_egress_destroy(&own.retired);
    curl_global_cleanup();
    return rc;
}

int main(int argc, char **argv)
{
    static const service_def_t bitbucket = {
        .name = "bitbucket",
        .load_config = s_load_config,
        .health_addr = s_health_addr,
        .health_path = "/readyz",
        /* The broker calls it; the web only asks whether it is ready (ping). */
        .bus_serves = BUS_BROKER | BUS_WEB,
        .bus_calls = 0,
        .run = s_run,
    };
    return service_main(&bitbucket, argc, argv);
}
