/* portico-bitbucket: every outbound HTTP call to Bitbucket.
 *
 *   portico-bitbucket               serve (configuration from PORTICO_* variables)
 *   portico-bitbucket healthcheck   exit 0 when the running service is ready
 *
 * Configuration, with defaults:
 *   PORTICO_BITBUCKET_BIND                  tcp://127.0.0.1:5552
 *   PORTICO_HEALTH_ADDR                     127.0.0.1:8082
 *   PORTICO_BITBUCKET_TIMEOUT_MS            10000  per HTTP request (less when the caller's deadline is nearer)
 *   PORTICO_BITBUCKET_CONNECT_TIMEOUT_MS    3000   connection and TLS handshake
 *   PORTICO_BITBUCKET_MAX_HOST_CONNECTIONS  16     parallel connections per Bitbucket host
 *   PORTICO_BITBUCKET_MAX_CALLS             1000   calls in flight before new ones get UNAVAILABLE "busy"
 *   PORTICO_BITBUCKET_ALLOW                 (none) host names, addresses, CIDR ranges allowed although
 *                                                  loopback, link-local or Portico's own (bb_egress.h)
 *   PORTICO_OWN_HOSTS                       (none) host names of Portico's other services (compose: web,
 *                                                  registry, broker, postgres), refused as Bitbucket
 *   PORTICO_LOG_LEVEL                       info
 * Outbound proxies: libcurl's http_proxy / https_proxy / no_proxy. */
#include "bb_egress.h"
#include "bb_server.h"
#include "bus.h"
#include "config.h"
#include "health.h"
#include "log.h"
#include "service.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_BIND "tcp://127.0.0.1:5552"
#define DEFAULT_HEALTH "127.0.0.1:8082"
#define DRAIN_MS 4000 /* stop within 5 s of SIGTERM */

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
 * environment, and PORTICO_OWN_HOSTS. Exits 2 on a bad value. */
static bb_egress_t *s_egress_load(void)
{
    char allow[4096], own[4096], why[300], host[256];
    config_string_or_die("PORTICO_BITBUCKET_ALLOW", "", allow, sizeof allow);
    config_string_or_die("PORTICO_OWN_HOSTS", "", own, sizeof own);
    bb_egress_t *e = bb_egress_new();
    if (!e)
        return NULL;
    if (bb_egress_allow(e, allow, why, sizeof why) < 0) {
        fprintf(stderr, "portico: configuration error: PORTICO_BITBUCKET_ALLOW: %s\n", why);
        exit(2);
    }
    if (bb_egress_own_interfaces(e) < 0)
        log_warn("could not list this host's addresses; they are not refused as Bitbucket", NULL);
    static const char *const vars[] = {
        "PORTICO_REGISTRY_ENDPOINT", "PORTICO_BITBUCKET_ENDPOINT", "PORTICO_BROKER_ENDPOINT", "PORTICO_REGISTRY_BIND",
        "PORTICO_BROKER_BIND",       "PORTICO_HTTP_ADDR",          "PORTICO_OPS_ADDR"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        /* Unix sockets and in-process endpoints name no host. */
        if (!v || !*v || !strncmp(v, "ipc://", 6) || !strncmp(v, "inproc://", 9))
            continue;
        s_endpoint_host(v, host, sizeof host);
        if (host[0] && bb_egress_own_host(e, host) < 0)
            log_warn("could not resolve a Portico address; it is not refused as Bitbucket", "variable=%s", vars[i]);
    }
    for (const char *p = own; *p;) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t n = strcspn(p, ", ");
        if (!n)
            break;
        snprintf(host, sizeof host, "%.*s", (int)(n < sizeof host ? n : sizeof host - 1), p);
        p += n;
        if (bb_egress_own_host(e, host) < 0)
            log_warn("could not resolve a host of PORTICO_OWN_HOSTS; it is not refused as Bitbucket", "host=\"%s\"",
                     host);
    }
    return e;
}

/* civetweb's mg_stop takes up to two seconds (its listener polls with that
 * timeout). Stopping the health endpoint as soon as SIGTERM arrives lets
 * that overlap the drain instead of coming after it. */
static void *s_health_stopper(void *arg)
{
    health_t **health = arg;
    while (!service_stopping())
        usleep(50 * 1000);
    health_destroy(health);
    return NULL;
}

int main(int argc, char **argv)
{
    char health_addr[128];
    if (argc >= 2 && !strcmp(argv[1], "bus-keygen"))
        return busauth_keygen_main("bitbucket", argc, argv);
    if (argc == 2 && !strcmp(argv[1], "healthcheck")) {
        config_addr_or_die("PORTICO_HEALTH_ADDR", DEFAULT_HEALTH, false, health_addr, sizeof health_addr);
        return health_check_url(health_addr);
    }
    if (argc != 1) {
        fprintf(stderr, "usage: portico-bitbucket [healthcheck]\n");
        return 2;
    }
    service_init_logging("bitbucket");
    bb_server_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    config_endpoint_or_die("PORTICO_BITBUCKET_BIND", DEFAULT_BIND, cfg.bind, sizeof cfg.bind);
    config_addr_or_die("PORTICO_HEALTH_ADDR", DEFAULT_HEALTH, false, health_addr, sizeof health_addr);
    cfg.timeout_ms = config_int_or_die("PORTICO_BITBUCKET_TIMEOUT_MS", 10000, 100, 300000);
    cfg.connect_timeout_ms = config_int_or_die("PORTICO_BITBUCKET_CONNECT_TIMEOUT_MS", 3000, 100, 60000);
    cfg.max_host_connections = config_int_or_die("PORTICO_BITBUCKET_MAX_HOST_CONNECTIONS", 16, 1, 256);
    cfg.max_calls = config_int_or_die("PORTICO_BITBUCKET_MAX_CALLS", 1000, 1, 100000);
    cfg.drain_ms = DRAIN_MS;

    service_install_signals();
    bus_init();
    /* The broker calls it; the web only asks whether it is ready (ping). */
    busauth_init_or_die("bitbucket", BUS_BROKER | BUS_WEB, 0);
    /* Before any thread starts (the health endpoint runs threads). */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("could not initialise libcurl", NULL);
        return 1;
    }
    int rc = 1;
    health_t *health = NULL;
    bb_egress_t *egress = s_egress_load();
    if (!egress)
        return 1;
    bb_egress_set_global(egress);
    bb_server_t *server = bb_server_new(&cfg);
    if (!server)
        goto out;
    char instance[96];
    service_instance_name(instance, sizeof instance);
    bus_set_identity("bitbucket", instance, bb_server_ready, server);
    health = health_new(health_addr, "bitbucket", bb_server_ready, server);
    if (!health)
        goto out;
    pthread_t stopper;
    bool stopper_running = pthread_create(&stopper, NULL, s_health_stopper, &health) == 0;
    rc = bb_server_run(server);
    service_request_stop();
    if (stopper_running)
        pthread_join(stopper, NULL);
out:
    health_destroy(&health);
    bb_server_destroy(&server);
    bb_egress_set_global(NULL);
    bb_egress_destroy(&egress);
    curl_global_cleanup();
    return rc;
}
