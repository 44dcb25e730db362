#include "health.h"

#include "gate.h"
#include "log.h"
#include "metrics.h"
#include "netaddr.h"

#include <civetweb.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct health_t {
    struct mg_context *ctx;
    gate_t *gate;
    char service[32];
    bus_ready_fn ready;
    void *arg;
};

static int s_handle(struct mg_connection *conn, void *cbdata)
{
    health_t *self = cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (strcmp(ri->request_method, "GET") && strcmp(ri->request_method, "HEAD")) {
        mg_send_http_error(conn, 405, "%s", "method not allowed\n");
        return 405;
    }
    if (!strcmp(ri->local_uri, "/healthz")) {
        mg_send_http_ok(conn, "text/plain; charset=utf-8", 3);
        mg_write(conn, "ok\n", 3);
        return 200;
    }
    if (!strcmp(ri->local_uri, "/readyz")) {
        char status[200] = "ok";
        bool ready = self->ready ? self->ready(self->arg, status, sizeof status) : true;
        char body[300];
        int n = snprintf(body, sizeof body, "%s %s: %s\n", self->service, ready ? "ready" : "not ready", status);
        mg_printf(conn,
                  "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
                  "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                  ready ? 200 : 503, ready ? "OK" : "Service Unavailable", n);
        mg_write(conn, body, (size_t)n);
        return ready ? 200 : 503;
    }
    if (!strcmp(ri->local_uri, "/metrics")) {
        char *text = metrics_render();
        size_t n = text ? strlen(text) : 0;
        mg_send_http_ok(conn, "text/plain; version=0.0.4; charset=utf-8", (long long)n);
        mg_write(conn, text ? text : "", n);
        free(text);
        return 200;
    }
    mg_send_http_error(conn, 404, "%s", "not found\n");
    return 404;
}

health_t *health_new(const char *addr, const char *service, bus_ready_fn ready, void *arg)
{
    health_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    snprintf(self->service, sizeof self->service, "%s", service);
    self->ready = ready;
    self->arg = arg;
    mg_init_library(0);
    /* civetweb on a loopback port of its own, behind a gate (gate.h): its
     * two threads see only whole requests, so clients that trickle their
     * headers cannot keep the health checks from being answered. */
    const char *options[] = {"listening_ports", "127.0.0.1:0", "num_threads", "2", "request_timeout_ms", "5000", NULL};
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    self->ctx = mg_start(&cb, NULL, options);
    struct mg_server_port port;
    memset(&port, 0, sizeof port);
    if (self->ctx)
        mg_set_request_handler(self->ctx, "/", s_handle, self);
    gate_config_t gc = {.listen_addr = addr,
                        .header_timeout_ms = HEALTH_HEADER_TIMEOUT_MS,
                        .keep_alive_ms = HEALTH_KEEP_ALIVE_MS,
                        .max_per_client = HEALTH_MAX_PER_CLIENT,
                        .max_total = HEALTH_MAX_TOTAL,
                        .listener = "health"};
    if (self->ctx && mg_get_server_ports(self->ctx, 1, &port) == 1)
        gc.backend_port = port.port;
    self->gate = gc.backend_port > 0 ? gate_new(&gc) : NULL;
    if (!self->gate) {
        log_error("could not listen for health checks (PORTICO_HEALTH_ADDR)", "addr=%s", addr);
        health_destroy(&self);
        return NULL;
    }
    log_info("health endpoint listening", "addr=%s", addr);
    return self;
}

void health_destroy(health_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gate_destroy(&(*self_p)->gate);
    if ((*self_p)->ctx)
        mg_stop((*self_p)->ctx);
    free(*self_p);
    *self_p = NULL;
}

static size_t s_discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

int health_check_url(const char *addr)
{
    return health_check(addr, "/readyz");
}

int health_check(const char *addr, const char *path)
{
    char url[300], host[128], own[64];
    const char *colon = strrchr(addr, ':');
    snprintf(host, sizeof host, "%.*s", colon ? (int)(colon - addr) : 0, addr);
    if (!colon)
        return 1;
    if (!strcmp(host, "0.0.0.0")) {
        /* A wildcard listen address is reached through loopback. */
        snprintf(url, sizeof url, "http://127.0.0.1%s%s", colon, path);
    } else if (host[0] != '[' && !netaddr_is_ip(host)) {
        /* A name or a range: the address of this machine the listener took
         * (gate.h), not another that shares the name (compose's aliases). */
        if (netaddr_own_address(host, own, sizeof own) < 0)
            return 1;
        snprintf(url, sizeof url, strchr(own, ':') ? "http://[%s]%s%s" : "http://%s%s%s", own, colon, path);
    } else {
        snprintf(url, sizeof url, "http://%s%s", addr, path);
    }
    CURL *c = curl_easy_init();
    if (!c)
        return 1;
    long status = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_discard);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status == 200 ? 0 : 1;
}
