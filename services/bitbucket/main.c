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
 *   PORTICO_LOG_LEVEL                       info
 * Outbound proxies: libcurl's http_proxy / https_proxy / no_proxy. */
#include "bb_server.h"
#include "bus.h"
#include "config.h"
#include "health.h"
#include "log.h"
#include "service.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_BIND "tcp://127.0.0.1:5552"
#define DEFAULT_HEALTH "127.0.0.1:8082"
#define DRAIN_MS 4000 /* stop within 5 s of SIGTERM */

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
    curl_global_cleanup();
    return rc;
}
