/* What operators look at: /healthz, /readyz, /metrics, and the admins'
 * /admin/status page, all from the same readiness probe. */
#include "bus_methods.h"
#include "presence.h"
#include "web.h"

#include "endpoints.h"
#include "log.h"
#include "metrics.h"

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
    st->registry_ok = s_ping(r->clients->registry, st->registry_status, sizeof st->registry_status);
    st->bitbucket_ok = s_ping(r->clients->bitbucket, st->bitbucket_status, sizeof st->bitbucket_status);
    st->workers = brokerq_workers(web_brokerq);
    return st->registry_ok && st->bitbucket_ok && st->workers > 0;
}

static void h_healthz(web_req_t *r)
{
    web_send(r, 200, "text/plain; charset=utf-8", "ok\n", 3, NULL);
}

static void h_readyz(web_req_t *r)
{
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

static void s_status_row(sbuf_t *b, const char *name, bool ok, const char *status)
{
    sbuf_printf(b, "<tr><td>%s</td><td><span class=\"badge %s\">%s</span></td><td>", name, ok ? "ok" : "off",
                ok ? "ready" : "not ready");
    sbuf_html(b, status);
    sbuf_puts(b, "</td></tr>");
}

/* Every web that reported to the registry lately (presence.h), this one
 * first; this one alone when the registry does not answer. */
static void s_web_rows(sbuf_t *b, web_req_t *r)
{
    sbuf_puts(b, "<tr><td>web</td><td>");
    sbuf_html(b, bus_instance());
    sbuf_puts(b, "</td><td>");
    sbuf_html(b, bus_version());
    sbuf_puts(b,
              "</td><td>this web</td><td><span class=\"badge ok\">ready</span></td><td>answering this page</td></tr>");
    Portico__Registry__ListInstancesReply *rep = NULL;
    bus_error_t err = {0};
    if (!r->clients || registry_call_instance_list(r->clients->registry, NULL, &rep, 2000, &err) < 0) {
        sbuf_puts(b, "<tr><td>web</td><td colspan=\"3\"></td><td><span class=\"badge off\">unknown</span></td><td>"
                     "other webs: ");
        sbuf_html(b, r->clients ? err.message : "no connection");
        sbuf_puts(b, "</td></tr>");
        return;
    }
    for (size_t i = 0; i < rep->n_instances; i++) {
        const Portico__Registry__WebInstance *w = rep->instances[i];
        if (!strcmp(w->instance, bus_instance()))
            continue;
        bool fresh = w->seen_seconds_ago <= PRESENCE_STALE_S;
        bool ok = fresh && w->ready;
        sbuf_puts(b, "<tr><td>web</td><td>");
        sbuf_html(b, w->instance);
        sbuf_puts(b, "</td><td>");
        sbuf_html(b, w->version);
        sbuf_printf(b, "</td><td>reported %llds ago</td><td><span class=\"badge %s\">%s</span></td><td>",
                    (long long)w->seen_seconds_ago, ok ? "ok" : "off",
                    ok      ? "ready"
                    : fresh ? "not ready"
                            : "gone");
        sbuf_html(b, fresh ? w->status : "not heard from");
        sbuf_puts(b, "</td></tr>");
    }
    protobuf_c_message_free_unpacked(&rep->base, NULL);
}

/* One row per instance behind an endpoint setting: each address is asked
 * on its own connection, so every instance answers for itself. */
static void s_instance_rows(sbuf_t *b, const char *service, const char *spec)
{
    char eps[ENDPOINTS_MAX][ENDPOINTS_LEN];
    int n = endpoints_resolve_once(spec, eps, ENDPOINTS_MAX);
    if (n <= 0)
        sbuf_printf(b,
                    "<tr><td>%s</td><td colspan=\"3\"></td><td><span class=\"badge off\">not found</span></td>"
                    "<td>no instance behind the configured endpoint</td></tr>",
                    service);
    for (int i = 0; i < n; i++) {
        bus_client_t *c = bus_client_new(eps[i], service);
        Portico__PingReply *rep = NULL;
        bus_error_t err = {0};
        int rc =
            c ? bus_call(c, "ping", NULL, &portico__ping_reply__descriptor, (ProtobufCMessage **)&rep, 1000, &err) : -1;
        bool ok = rc == 0 && rep->ready;
        sbuf_printf(b, "<tr><td>%s</td><td>", service);
        sbuf_html(b, rc == 0 ? rep->instance : "");
        sbuf_puts(b, "</td><td>");
        sbuf_html(b, rc == 0 ? rep->version : "");
        sbuf_puts(b, "</td><td>");
        sbuf_html(b, eps[i]);
        sbuf_printf(b, "</td><td><span class=\"badge %s\">%s</span></td><td>", ok ? "ok" : "off",
                    ok ? "ready" : "not ready");
        sbuf_html(b, rc == 0 ? rep->status : c ? err.message : "no connection");
        sbuf_puts(b, "</td></tr>");
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
    sbuf_t b;
    sbuf_init(&b);
    page_begin(&b, r, "Status");
    sbuf_printf(&b, "<h1>Status</h1><p>Portico is <span class=\"badge %s\">%s</span></p>", ready ? "ok" : "off",
                ready ? "ready" : "not ready");
    sbuf_puts(&b,
              "<section class=\"card\"><h2>Services</h2><table><tr><th>Service</th><th>State</th><th>Detail</th></tr>");
    s_status_row(&b, "web", true, "ok");
    s_status_row(&b, "registry", st.registry_ok, st.registry_status);
    s_status_row(&b, "bitbucket", st.bitbucket_ok, st.bitbucket_status);
    char detail[64];
    snprintf(detail, sizeof detail, "%d workers in %d instances", st.workers, n);
    s_status_row(&b, "broker", st.workers > 0, detail);
    sbuf_puts(&b, "</table></section><section class=\"card\"><h2>Instances</h2><table><tr><th>Service</th>"
                  "<th>Instance</th><th>Version</th><th>Address</th><th>State</th><th>Detail</th></tr>");
    s_web_rows(&b, r);
    s_instance_rows(&b, "registry", web_cfg.registry_endpoint);
    s_instance_rows(&b, "bitbucket", web_cfg.bitbucket_endpoint);
    for (int i = 0; i < n; i++) {
        sbuf_puts(&b, "<tr><td>broker</td><td>");
        sbuf_html(&b, inst[i].instance);
        sbuf_printf(&b,
                    "</td><td></td><td>connected to this web</td><td><span class=\"badge ok\">ready</span></td>"
                    "<td>%d workers, %d busy</td></tr>",
                    inst[i].workers, inst[i].busy);
    }
    sbuf_puts(&b, "</table></section><section class=\"card\"><h2>Broker instances</h2>"
                  "<table><tr><th>Instance</th><th>Workers</th><th>Busy</th><th>Requests handled</th></tr>");
    for (int i = 0; i < n; i++) {
        sbuf_puts(&b, "<tr><td>");
        sbuf_html(&b, inst[i].instance);
        sbuf_printf(&b, "</td><td>%d</td><td>%d</td><td>%llu</td></tr>", inst[i].workers, inst[i].busy,
                    (unsigned long long)inst[i].handled);
    }
    if (n == 0)
        sbuf_puts(&b, "<tr><td colspan=\"4\">No broker is connected: nobody can log in until one starts.</td></tr>");
    sbuf_puts(&b, "</table></section><p class=\"muted\">The same data is at <code>/readyz</code> and "
                  "<code>/metrics</code> on the operations address (<code>PORTICO_OPS_ADDR</code>).</p>");
    page_end(&b);
    web_send_html(r, 200, &b);
    sbuf_free(&b);
}

const web_route_t web_ops_routes[] = {
    {"GET", "/healthz", false, h_healthz, "healthz"},
    {"GET", "/readyz", false, h_readyz, "readyz"},
    {"GET", "/metrics", false, h_metrics, "metrics"},
    {"GET", "/admin/status", false, h_status, "admin_status"},
    {0},
};
