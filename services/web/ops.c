/* What operators look at: /healthz, /readyz, /metrics, and the admins'
 * /admin/status page, all from the same readiness probe. */
#include "bus_methods.h"
#include "presence.h"
#include "reply.h"

#include "endpoints.h"
#include "log.h"
#include "metrics.h"
#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    bool registry_ok, bitbucket_ok;
    char registry_status[160], bitbucket_status[160];
    int workers;
} readiness_t;

static bool s_ping(bus_client_t *c, char *status, size_t status_size)
{
    Portico__PingReply *rep = NULL;
    bus_error_t err;
    if (!c || bus_call(c, "ping", NULL, &portico__ping_reply__descriptor, (ProtobufCMessage **)&rep, 1000, &err) < 0) {
        snprintf(status, status_size, "%s", c ? err.message : "no connection");
        return false;
    }
    bool ok = rep->ready;
    snprintf(status, status_size, "%s", ok ? "ok" : rep->status);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    return ok;
}

static bool s_probe(web_req_t *r, readiness_t *st)
{
    st->registry_ok = s_ping(web_registry(r), st->registry_status, sizeof st->registry_status);
    st->bitbucket_ok = s_ping(web_bitbucket(r), st->bitbucket_status, sizeof st->bitbucket_status);
    st->workers = brokerq_workers(web_brokerq);
    return st->registry_ok && st->bitbucket_ok && st->workers > 0;
}

static void h_healthz(web_req_t *r)
{
    web_send(r, 200, "text/plain; charset=utf-8", "ok\n", 3, NULL);
}

static void h_readyz(web_req_t *r)
{
    /* Stopping (service.h: leaving): say so at once, so the load balancer
     * sends new browsers elsewhere while this web still serves. */
    if (service_leaving()) {
        web_send(r, 503, "text/plain; charset=utf-8", "stopping\n", 9, NULL);
        return;
    }
    readiness_t st;
    bool ready = s_probe(r, &st);
    if (!r->ops) {
        /* The public port says only yes or no: which service is down, and
         * why, is for operators (PORTICO_OPS_ADDR). */
        web_send(r, ready ? 200 : 503, "text/plain; charset=utf-8", ready ? "ready\n" : "not ready\n", ready ? 6 : 10,
                 NULL);
        return;
    }
    sbuf_t b;
    sbuf_init(&b);
    sbuf_printf(&b, "%s\nregistry: %s\nbitbucket: %s\nbroker: %s (%d workers connected)\n",
                ready ? "ready" : "not ready", st.registry_ok ? "ok" : st.registry_status,
                st.bitbucket_ok ? "ok" : st.bitbucket_status, st.workers > 0 ? "ok" : "no workers connected",
                st.workers);
    web_send(r, ready ? 200 : 503, "text/plain; charset=utf-8", b.data, b.len, NULL);
    sbuf_free(&b);
}

static void h_metrics(web_req_t *r)
{
    if (!r->ops) {
        web_error_page(r, 404, "Page not found", "There is no page at this address.",
                       "Check the link, or start from the home page.");
        return;
    }
    metrics_set("portico_broker_workers_connected", NULL, brokerq_workers(web_brokerq));
    char *text = metrics_render();
    web_send(r, 200, "text/plain; version=0.0.4; charset=utf-8", text ? text : "", text ? strlen(text) : 0, NULL);
    free(text);
}

/* The rows of the Status page (templates/status.html). */
static void s_status_row(tmpl_ctx_t *c, const char *name, bool ok, const char *status)
{
    tmpl_ctx_t *row = tmpl_add(c, "services");
    tmpl_set(row, "name", name);
    tmpl_set(row, "badge", ok ? "ok" : "off");
    tmpl_set(row, "state", ok ? "ready" : "not ready");
    tmpl_set(row, "detail", status);
}

/* An instance row; address NULL: a row about the service, not one instance. */
static void s_instance_row(tmpl_ctx_t *c, const char *service, const char *instance, const char *version,
                           const char *address, const char *badge, const char *state, const char *detail)
{
    tmpl_ctx_t *row = tmpl_add(c, "instances");
    tmpl_set_bool(row, "wide", address == NULL);
    tmpl_set(row, "service", service);
    tmpl_set(row, "instance", instance ? instance : "");
    tmpl_set(row, "version", version ? version : "");
    tmpl_set(row, "address", address ? address : "");
    tmpl_set(row, "badge", badge);
    tmpl_set(row, "state", state);
    tmpl_set(row, "detail", detail);
}

/* Every web that reported to the registry lately (presence.h), this one
 * first; this one alone when the registry does not answer. */
static void s_web_rows(tmpl_ctx_t *c, web_req_t *r)
{
    s_instance_row(c, "web", bus_instance(), bus_version(), "this web", "ok", "ready", "answering this page");
    Portico__Registry__ListInstancesReply *rep = NULL;
    bus_error_t err = {0};
    if (!r->clients || registry_call_instance_list(web_registry(r), NULL, &rep, 2000, &err) < 0) {
        char detail[sizeof err.message + 16];
        snprintf(detail, sizeof detail, "other webs: %s", r->clients ? err.message : "no connection");
        s_instance_row(c, "web", NULL, NULL, NULL, "off", "unknown", detail);
        return;
    }
    for (size_t i = 0; i < rep->n_instances; i++) {
        const Portico__Registry__WebInstance *w = rep->instances[i];
        if (!strcmp(w->instance, bus_instance()))
            continue;
        bool fresh = w->seen_seconds_ago <= PRESENCE_STALE_S;
        bool ok = fresh && w->ready;
        char seen[48];
        snprintf(seen, sizeof seen, "reported %llds ago", (long long)w->seen_seconds_ago);
        s_instance_row(c, "web", w->instance, w->version, seen, ok ? "ok" : "off",
                       ok      ? "ready"
                       : fresh ? "not ready"
                               : "gone",
                       fresh ? w->status : "not heard from");
    }
    protobuf_c_message_free_unpacked(&rep->base, NULL);
}

/* One row per instance behind an endpoint setting: each address is asked
 * on its own connection, so every instance answers for itself. */
static void s_instance_rows(tmpl_ctx_t *t, const char *service, const char *spec)
{
    char eps[ENDPOINTS_MAX][ENDPOINTS_LEN];
    int n = endpoints_resolve_once(spec, eps, ENDPOINTS_MAX);
    if (n <= 0)
        s_instance_row(t, service, NULL, NULL, NULL, "off", "not found", "no instance behind the configured endpoint");
    for (int i = 0; i < n; i++) {
        bus_client_t *c = bus_client_new(eps[i], service);
        Portico__PingReply *rep = NULL;
        bus_error_t err = {0};
        int rc =
            c ? bus_call(c, "ping", NULL, &portico__ping_reply__descriptor, (ProtobufCMessage **)&rep, 1000, &err) : -1;
        bool ok = rc == 0 && rep->ready;
        s_instance_row(t, service, rc == 0 ? rep->instance : "", rc == 0 ? rep->version : "", eps[i], ok ? "ok" : "off",
                       ok ? "ready" : "not ready",
                       rc == 0 ? rep->status
                       : c     ? err.message
                               : "no connection");
        if (rep)
            protobuf_c_message_free_unpacked(&rep->base, NULL);
        bus_client_destroy(&c);
    }
}

static void h_status(web_req_t *r)
{
    const web_session_t *s = web_session(r);
    if (!s || !(s->is_admin || (s->setup && s->setup_mode))) {
        web_redirect(r, "/admin");
        return;
    }
    readiness_t st;
    bool ready = s_probe(r, &st);
    brokerq_instance_t inst[64];
    int n = brokerq_instances(web_brokerq, inst, 64);
    tmpl_ctx_t *c = web_page_ctx(r, "Status");
    tmpl_set(c, "ready_badge", ready ? "ok" : "off");
    tmpl_set(c, "ready_state", ready ? "ready" : "not ready");
    tmpl_set_list(c, "services");
    s_status_row(c, "web", true, "ok");
    s_status_row(c, "registry", st.registry_ok, st.registry_status);
    s_status_row(c, "bitbucket", st.bitbucket_ok, st.bitbucket_status);
    char detail[64];
    snprintf(detail, sizeof detail, "%d workers in %d instances", st.workers, n);
    s_status_row(c, "broker", st.workers > 0, detail);
    tmpl_set_list(c, "instances");
    s_web_rows(c, r);
    s_instance_rows(c, "registry", web_cfg.registry_endpoint);
    s_instance_rows(c, "bitbucket", web_cfg.bitbucket_endpoint);
    tmpl_set_list(c, "brokers");
    for (int i = 0; i < n; i++) {
        snprintf(detail, sizeof detail, "%d workers, %d busy", inst[i].workers, inst[i].busy);
        s_instance_row(c, "broker", inst[i].instance, "", "connected to this web", "ok", "ready", detail);
        tmpl_ctx_t *b = tmpl_add(c, "brokers");
        tmpl_set(b, "instance", inst[i].instance);
        tmpl_set_int(b, "workers", inst[i].workers);
        tmpl_set_int(b, "busy", inst[i].busy);
        tmpl_setf(b, "handled", "%llu", (unsigned long long)inst[i].handled);
    }
    web_page(r, 200, "status", &c);
}

const web_route_t web_ops_routes[] = {
    {"GET", "/healthz", false, h_healthz, "healthz"},
    {"GET", "/readyz", false, h_readyz, "readyz"},
    {"GET", "/metrics", false, h_metrics, "metrics"},
    {"GET", "/admin/status", false, h_status, "admin_status"},
    {0},
};
