/* The Admin section's home: the integrations list, Finish setup, and the
 * section's route table. Kept apart from admin.c (the guard and layout every
 * admin page uses) so that the pages depend on admin.c and this file on
 * the pages, never in a circle. */
#include "admin.h"
#include "admin_access.h"

#include "log.h"

#include <stdio.h>
#include <string.h>

static const Portico__Registry__Integration *s_find(const Portico__Registry__ListIntegrationsReply *l, int64_t id)
{
    for (size_t i = 0; l && i < l->n_integrations; i++)
        if (l->integrations[i]->id == id)
            return l->integrations[i];
    return NULL;
}

/* Confirmations after a redirect: fixed texts chosen by the query, never
 * the query's own text. */
static void s_home_flash(sbuf_t *b, web_req_t *r, const Portico__Registry__ListIntegrationsReply *l)
{
    char v[24];
    if (web_query(r, "created", v, sizeof v) > 0) {
        const Portico__Registry__Integration *in = s_find(l, admin_parse_id(v));
        if (!in)
            return;
        sbuf_puts(b, "<div class=\"notice ok\" role=\"status\">Integration <strong>");
        sbuf_html(b, in->name);
        if (in->oauth_version == 1)
            sbuf_printf(b,
                        "</strong> created. One step is left: <a href=\"%s/admin/integrations/%lld\">open it</a> "
                        "and paste its Consumer Key and Public Key into the application link's Incoming "
                        "Authentication in Bitbucket.</div>",
                        web_cfg.public_path, (long long)in->id);
        else
            sbuf_puts(b, "</strong> created. People can now log in with their Bitbucket account.</div>");
    } else if (web_query(r, "deleted", v, sizeof v) > 0) {
        char users[24];
        int64_t n = web_query(r, "users", users, sizeof users) > 0 ? admin_parse_id(users) : 0;
        if (n > 0)
            sbuf_printf(b,
                        "<div class=\"notice ok\" role=\"status\">Integration deleted. %lld Portico account%s "
                        "that could only log in through it %s removed.</div>",
                        (long long)n, n == 1 ? "" : "s", n == 1 ? "was" : "were");
        else
            page_notice_out(b, "ok", "Integration deleted.");
    } else if (web_query(r, "finished", v, sizeof v) > 0) {
        page_notice_out(b, "ok", "Setup finished. The setup token no longer works; admins log in with Bitbucket.");
    }
}

static void h_home(web_req_t *r)
{
    admin_ctx_t a;
    if (!admin_enter(r, &a))
        return;
    Portico__Registry__ListIntegrationsRequest req = PORTICO__REGISTRY__LIST_INTEGRATIONS_REQUEST__INIT;
    Portico__Registry__ListIntegrationsReply *rep = NULL;
    bus_error_t err;
    if (admin_registry(r, &registry_m_integration_list, &req.base, (ProtobufCMessage **)&rep, &err) < 0) {
        web_bus_error_page(r, &err, "Could not load the integrations");
        return;
    }
    sbuf_t b;
    sbuf_init(&b);
    admin_page_begin(&b, r, &a, "Admin", "integrations");
    s_home_flash(&b, r, rep);
    sbuf_printf(&b,
                "<div class=\"title-row\"><h1>Integrations</h1>"
                "<a class=\"button\" href=\"%s/admin/integrations/new\">Add Integration</a></div>",
                web_cfg.public_path);
    if (rep->n_integrations == 0) {
        sbuf_puts(&b, "<section class=\"card empty\"><p><strong>No integration yet.</strong></p>"
                      "<p>An integration connects Portico to a Bitbucket Data Center / Server instance, so people "
                      "can log in with their Bitbucket account. Press <em>Add Integration</em> to connect the "
                      "first one.</p></section>");
    } else {
        Portico__Registry__ListAccessReply *access = admin_access_list_load(r);
        sbuf_puts(&b, "<div class=\"table-wrap\"><table class=\"integrations\"><thead><tr><th>Name</th>"
                      "<th>Base URL</th><th>OAuth</th><th>State</th><th>Last test</th><th>Bitbucket</th>"
                      "<th>Who may log in</th></tr></thead><tbody>");
        for (size_t i = 0; i < rep->n_integrations; i++) {
            const Portico__Registry__Integration *in = rep->integrations[i];
            sbuf_printf(&b, "<tr data-integration-id=\"%lld\"><td><a href=\"%s/admin/integrations/%lld\">",
                        (long long)in->id, web_cfg.public_path, (long long)in->id);
            sbuf_html(&b, in->name[0] ? in->name : "(unnamed)");
            sbuf_puts(&b, "</a></td><td class=\"url\">");
            sbuf_html(&b, in->base_url);
            sbuf_printf(&b, "</td><td>OAuth %d</td><td>", in->oauth_version);
            admin_integration_state(&b, in);
            sbuf_puts(&b, "</td><td>");
            admin_test_result(&b, in);
            sbuf_puts(&b, "</td><td>");
            sbuf_html(&b, in->bitbucket_version[0] ? in->bitbucket_version : "unknown");
            sbuf_puts(&b, "</td>");
            admin_access_list_cell(&b, access, in->id);
            sbuf_puts(&b, "</tr>");
        }
        sbuf_puts(&b, "</tbody></table></div>");
        admin_access_list_free(&access);
    }
    admin_page_end(&b);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    web_send_html(r, 200, &b);
    sbuf_free(&b);
}

/* ---- Finish setup ---- */

static void h_finish_setup(web_req_t *r)
{
    admin_ctx_t a;
    if (!admin_enter(r, &a))
        return;
    if (!a.setup_mode) {
        web_redirect(r, "/admin");
        return;
    }
    if (!a.admin_exists) {
        web_error_page(r, 409, "No admin yet", "Finishing setup now would leave nobody able to open the Admin section.",
                       "Log in with Bitbucket first: the first person to log in while Setup Mode is on becomes an "
                       "admin. Then finish setup.");
        return;
    }
    Portico__Registry__SetSetupModeRequest req = PORTICO__REGISTRY__SET_SETUP_MODE_REQUEST__INIT;
    req.on = false;
    req.actor = a.actor;
    req.addr = r->addr;
    bus_error_t err;
    if (admin_registry(r, &registry_m_settings_set_setup_mode, &req.base, NULL, &err) < 0) {
        web_bus_error_page(r, &err, "Could not finish setup");
        return;
    }
    log_info("setup mode finished", NULL);
    if (!a.setup_actor) {
        web_redirect(r, "/admin?finished=1");
        return;
    }
    /* The setup session is over with Setup Mode: say so, and end it here too. */
    web_session_end(r);
    tmpl_ctx_t *c = web_page_ctx(r, "Setup finished");
    web_page(r, 200, "setup_finished", &c);
}

const web_route_t web_admin_routes[] = {
    {"GET", "/admin", false, h_home, "admin"},
    {"POST", "/admin/setup-token", false, admin_setup_token, "admin_setup_token"},
    {"POST", "/admin/finish-setup", false, h_finish_setup, "admin_finish_setup"},
    {"GET", "/admin/integrations/new", false, admin_integration_new, "admin_integration_new"},
    {"POST", "/admin/integrations/new", false, admin_integration_new, "admin_integration_new"},
    {"POST", "/admin/integrations", false, admin_integration_create, "admin_integration_create"},
    {"GET", "/admin/users", false, admin_users, "admin_users"},
    {"GET", "/admin/audit", false, admin_audit, "admin_audit"},
    {0},
};
