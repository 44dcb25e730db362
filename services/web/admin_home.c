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
static void s_home_flash(tmpl_ctx_t *c, web_req_t *r, const Portico__Registry__ListIntegrationsReply *l)
{
    char v[24];
    tmpl_set(c, "created_name", "");
    tmpl_set(c, "created_id", "");
    tmpl_set_bool(c, "created_oauth1", false);
    if (web_query(r, "created", v, sizeof v) > 0) {
        const Portico__Registry__Integration *in = s_find(l, admin_parse_id(v));
        if (!in)
            return;
        tmpl_set(c, "created_name", in->name);
        tmpl_set_int(c, "created_id", (long long)in->id);
        tmpl_set_bool(c, "created_oauth1", in->oauth_version == 1);
    } else if (web_query(r, "deleted", v, sizeof v) > 0) {
        char users[24], text[200];
        int64_t n = web_query(r, "users", users, sizeof users) > 0 ? admin_parse_id(users) : 0;
        if (n > 0)
            snprintf(text, sizeof text,
                     "Integration deleted. %lld Portico account%s that could only log in through it %s removed.",
                     (long long)n, n == 1 ? "" : "s", n == 1 ? "was" : "were");
        else
            snprintf(text, sizeof text, "Integration deleted.");
        page_notice(c, "ok", text);
    } else if (web_query(r, "finished", v, sizeof v) > 0) {
        page_notice(c, "ok", "Setup finished. The setup token no longer works; admins log in with Bitbucket.");
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
    tmpl_ctx_t *c = admin_page_ctx(r, &a, "Admin", "integrations");
    s_home_flash(c, r, rep);
    tmpl_set_bool(c, "any", rep->n_integrations > 0);
    tmpl_set_list(c, "integrations");
    Portico__Registry__ListAccessReply *access = rep->n_integrations ? admin_access_list_load(r) : NULL;
    for (size_t i = 0; i < rep->n_integrations; i++) {
        const Portico__Registry__Integration *in = rep->integrations[i];
        tmpl_ctx_t *row = tmpl_add(c, "integrations");
        tmpl_set_int(row, "id", (long long)in->id);
        tmpl_set(row, "name", in->name[0] ? in->name : "(unnamed)");
        tmpl_set(row, "base_url", in->base_url);
        tmpl_set_int(row, "oauth_version", in->oauth_version);
        admin_integration_values(row, in);
        tmpl_set(row, "bb_version", in->bitbucket_version[0] ? in->bitbucket_version : "unknown");
        char text[400];
        tmpl_set_bool(row, "access_known", access != NULL);
        admin_access_short(access, in->id, text, sizeof text);
        tmpl_set(row, "access_short", text);
    }
    admin_access_list_free(&access);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    web_page(r, 200, "admin_home", &c);
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
    /* The setup session is over with Setup Mode (the registry deleted it in
     * the same transaction): say so, and end it here too. */
    bus_error_t end_err;
    (void)web_session_end(r, &end_err);
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
