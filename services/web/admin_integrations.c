/* Integrations: Add Integration (a two-step form without JavaScript, one
 * step with it), Create Integration, the integration page, edit, Test
 * connection, enable/disable and delete.
 *
 * The Add Integration form reserves the integration's id on its first GET,
 * so the callback URL it shows is the one the login flow will use; the id
 * travels in a hidden field until Create Integration. Before anything is
 * stored, the broker checks the base URL against the real instance. */
#include "admin.h"
#include "admin_access.h"
#include "iform.h"

#include "log.h"
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The form's fields from the request body (iform_get_fn). */
static int s_form_get(void *r, const char *name, char *out, size_t out_size)
{
    return web_form(r, name, out, out_size);
}

/* ---- rendering the forms (templates/integration_new.html, _edit.html) ---- */

/* What both forms show of the model: values, errors, limits, the notice. */
static void s_form_values(tmpl_ctx_t *c, const iform_t *f, const char *invalid_text)
{
    tmpl_set_int(c, "id", (long long)f->id);
    tmpl_set(c, "base_url", f->base_url);
    tmpl_set(c, "e_base", f->e_base);
    tmpl_set(c, "client_id", f->client_id);
    tmpl_set(c, "e_client_id", f->e_client_id);
    tmpl_set(c, "e_secret", f->e_secret);
    tmpl_set(c, "name", f->name);
    tmpl_set(c, "e_name", f->e_name);
    tmpl_set(c, "ca_pem", f->ca_pem);
    tmpl_set(c, "e_ca", f->e_ca);
    tmpl_set_bool(c, "oauth2", f->oauth_version == 2);
    tmpl_set_int(c, "max_base", ADMIN_MAX_BASE_URL);
    tmpl_set_int(c, "max_client_id", ADMIN_MAX_CLIENT_ID);
    tmpl_set_int(c, "max_secret", ADMIN_MAX_CLIENT_SECRET);
    tmpl_set_int(c, "max_name", ADMIN_MAX_NAME);
    if (f->e_top[0])
        page_notice(c, "error", f->e_top);
    else if (iform_has_errors(f))
        page_notice(c, "error", invalid_text);
}

static void s_render_form(web_req_t *r, const admin_ctx_t *a, const iform_t *f, bool step2, int status)
{
    char callback[700];
    admin_callback_url(f->id, callback, sizeof callback);
    tmpl_ctx_t *c = admin_page_ctx(r, a, "Add Integration", "integrations");
    s_form_values(c, f, "The integration was not created. Correct the fields marked below and send the form again.");
    tmpl_set_bool(c, "step2", step2);
    tmpl_set_bool(c, "oauth1", f->oauth_version == 1);
    tmpl_set(c, "e_oauth", f->e_oauth);
    tmpl_set(c, "callback", callback);
    tmpl_set_bool(c, "base_ok", f->base_ok);
    tmpl_set(c, "applinks", f->base_ok ? f->base_norm : "");
    tmpl_set_bool(c, "secret_typed", f->secret_typed);
    tmpl_set_bool(c, "more_open", f->name[0] || f->ca_pem[0] || f->e_name[0] || f->e_ca[0]);
    tmpl_set(c, "warning", f->warning);
    web_page(r, status, "integration_new", &c);
}

/* A reserved id is not an admin change: nothing cached depends on it, so
 * this calls the registry directly, not through admin_registry, which
 * forgets every cache (the form is a GET, which a link from another site
 * can open in an admin's browser). */
static int64_t s_reserve_id(web_req_t *r, bus_error_t *err)
{
    Portico__Registry__ReserveIdReply *rep = NULL;
    if (registry_call_integration_reserve_id(web_registry(r), NULL, &rep, (int)web_cfg.bus_timeout_ms, err) < 0)
        return -1;
    int64_t id = rep->id;
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    if (id <= 0) {
        err->code = PORTICO__ERROR_CODE__INTERNAL;
        snprintf(err->message, sizeof err->message, "no id was reserved");
        return -1;
    }
    return id;
}

/* GET: a fresh form with a reserved id. POST ("Continue", the step without
 * JavaScript): the same form with the callback URL and the remaining
 * fields. Neither changes state beyond reserving the id. */
void admin_integration_new(web_req_t *r)
{
    admin_ctx_t a;
    if (!admin_enter(r, &a))
        return;
    iform_t f;
    if (iform_init(&f) < 0) {
        web_error_page(r, 500, "Something went wrong", "Portico ran out of memory.", "Try again.");
        return;
    }
    bool step2 = false;
    int status = 200;
    if (admin_is_post(r)) {
        iform_read_step1(&f, s_form_get, r);
        step2 = f.base_ok && !f.e_oauth[0];
        if (!step2)
            status = 400;
    }
    if (f.id <= 0) {
        bus_error_t err;
        f.id = s_reserve_id(r, &err);
        if (f.id < 0) {
            web_bus_error_page(r, &err, "Could not prepare a new integration");
            iform_free(&f);
            return;
        }
    }
    if (f.base_ok)
        snprintf(f.base_url, sizeof f.base_url, "%s", f.base_norm);
    s_render_form(r, &a, &f, step2, status);
    iform_free(&f);
}

void admin_integration_create(web_req_t *r)
{
    admin_ctx_t a;
    if (!admin_enter(r, &a))
        return;
    if (web_body_failed(r)) {
        web_error_page(r, 413, "Form too large",
                       "The form is larger than Portico accepts (64 KiB in all, CA certificate included).",
                       "Go back, shorten the CA certificate to the one authority that signed Bitbucket's "
                       "certificate, and send the form again.");
        return;
    }
    iform_t f;
    char secret[ADMIN_MAX_CLIENT_SECRET + 1] = "";
    if (iform_init(&f) < 0) {
        web_error_page(r, 500, "Something went wrong", "Portico ran out of memory.", "Try again.");
        return;
    }
    iform_read_create(&f, secret, sizeof secret, s_form_get, r);

    int status = 400;
    Portico__Broker__CheckIntegrationReply *chk = NULL;
    if (iform_has_errors(&f))
        goto render;

    Portico__Broker__CheckIntegrationRequest creq = PORTICO__BROKER__CHECK_INTEGRATION_REQUEST__INIT;
    creq.base_url = f.base_norm;
    creq.ca_cert_pem = f.ca_pem;
    creq.oauth_version = f.oauth_version;
    creq.actor = a.actor;
    bus_error_t err;
    if (admin_broker(r, &broker_m_integration_check, &creq.base, (ProtobufCMessage **)&chk, &err) < 0) {
        char q[100];
        log_info("integration check failed", "code=%s detail=%s", bus_code_name(err.code),
                 log_quote(bus_detail_name(err.detail), q, sizeof q));
        iform_check_failed(&f, &err);
        status = f.e_top[0] ? 503 : 400;
        goto render;
    }
    if (chk->warning[0] && f.oauth_version == 1 && !f.accept_warning) {
        iform_oauth1_warning(&f, chk->version, chk->warning);
        status = 200;
        goto render;
    }

    Portico__Registry__Integration in = PORTICO__REGISTRY__INTEGRATION__INIT;
    char name[ADMIN_MAX_NAME + 1];
    if (f.name[0])
        snprintf(name, sizeof name, "%s", f.name);
    else
        iform_default_name(f.base_norm, name, sizeof name);
    in.id = f.id;
    in.platform = f.platform;
    in.name = name;
    in.base_url = f.base_norm;
    in.oauth_version = f.oauth_version;
    in.client_id = f.oauth_version == 2 ? f.client_id : "";
    in.ca_cert_pem = f.ca_pem;
    in.enabled = true;
    in.bitbucket_version = chk->version;
    in.last_test_result = "ok";
    in.last_test_at = bus_now_ms() / 1000;
    in.created_by = a.actor;
    Portico__Registry__CreateIntegrationRequest req = PORTICO__REGISTRY__CREATE_INTEGRATION_REQUEST__INIT;
    req.integration = &in;
    req.client_secret = f.oauth_version == 2 ? secret : "";
    req.actor = a.actor;
    req.addr = r->addr;
    if (admin_registry(r, &registry_m_integration_create, &req.base, NULL, &err) < 0) {
        char q[100];
        log_info("integration create refused", "code=%s detail=%s", bus_code_name(err.code),
                 log_quote(bus_detail_name(err.detail), q, sizeof q));
        iform_store_failed(&f, &err);
        status = err.code == PORTICO__ERROR_CODE__CONFLICT ? 409 : 400;
        if (err.code != PORTICO__ERROR_CODE__BAD_REQUEST && err.code != PORTICO__ERROR_CODE__CONFLICT &&
            err.code != PORTICO__ERROR_CODE__NOT_FOUND)
            status = web_status_for(&err);
        goto render;
    }
    /* The check just passed: record it as the first test result. */
    Portico__Registry__SetTestResultRequest tr = PORTICO__REGISTRY__SET_TEST_RESULT_REQUEST__INIT;
    tr.id = f.id;
    tr.bitbucket_version = chk->version;
    tr.result = "ok";
    tr.actor = a.actor;
    if (admin_registry(r, &registry_m_integration_set_test_result, &tr.base, NULL, &err) < 0)
        log_warn("could not record the first test result", "id=%lld code=%s", (long long)f.id, bus_code_name(err.code));
    log_info("integration created", "id=%lld oauth=%d", (long long)f.id, f.oauth_version);
    char loc[64];
    snprintf(loc, sizeof loc, "/admin?created=%lld", (long long)f.id);
    web_redirect(r, loc);
    goto out;

render:
    if (f.base_ok)
        snprintf(f.base_url, sizeof f.base_url, "%s", f.base_norm);
    s_render_form(r, &a, &f, f.base_ok, status);
out:
    if (chk)
        protobuf_c_message_free_unpacked(&chk->base, NULL);
    explicit_bzero(secret, sizeof secret);
    iform_free(&f);
}

/* ---- the integration page ---- */

static Portico__Registry__GetIntegrationReply *s_get(web_req_t *r, int64_t id)
{
    Portico__Registry__GetIntegrationRequest req = PORTICO__REGISTRY__GET_INTEGRATION_REQUEST__INIT;
    req.id = id;
    Portico__Registry__GetIntegrationReply *rep = NULL;
    bus_error_t err;
    if (admin_registry(r, &registry_m_integration_get, &req.base, (ProtobufCMessage **)&rep, &err) < 0) {
        if (err.code == PORTICO__ERROR_CODE__NOT_FOUND)
            web_error_page(r, 404, "Integration not found", "There is no integration with this number.",
                           "Go back to the Admin page; it may have been deleted.");
        else
            web_bus_error_page(r, &err, "Could not load the integration");
        return NULL;
    }
    if (!rep->integration) {
        protobuf_c_message_free_unpacked(&rep->base, NULL);
        web_error_page(r, 404, "Integration not found", "There is no integration with this number.",
                       "Go back to the Admin page; it may have been deleted.");
        return NULL;
    }
    return rep;
}

static void s_show_flash(tmpl_ctx_t *c, web_req_t *r)
{
    static const struct {
        const char *param, *value, *kind, *text;
    } msgs[] = {
        {"created", "1", "ok", "Integration created."},
        {"updated", "1", "ok", "Changes saved."},
        {"enabled", "1", "ok", "Integration enabled: people can log in with it again."},
        {"disabled", "1", "ok", "Integration disabled: nobody can log in with it until it is enabled again."},
        {"tested", "ok", "ok", "Connection works: Bitbucket answered."},
        {"tested", "warn", "warn",
         "Connection works, but this Bitbucket can no longer use OAuth 1 links for "
         "synchronisation. Consider switching to OAuth 2."},
        {"tested", "unreachable", "error",
         "Test failed: Portico could not connect to the base URL. Check that "
         "Bitbucket is up and reachable from Portico."},
        {"tested", "not_bitbucket", "error",
         "Test failed: the base URL did not answer as Bitbucket Data Center / "
         "Server. Check the URL and its context path."},
        {"tested", "tls", "error",
         "Test failed: the HTTPS certificate could not be verified. Set the CA "
         "certificate in Edit."},
        {"tested", "timeout", "error", "Test failed: Bitbucket did not answer in time."},
        {"tested", "too_old", "error", "Test failed: this Bitbucket is older than 7.21 and cannot use OAuth 2."},
        {"tested", "oauth1_link", "error",
         "Test failed: Bitbucket does not know this consumer key / public key yet. Finish the application link's "
         "Incoming Authentication with the Consumer Key and Public Key below."},
        {"tested", "clock", "error",
         "Test failed: Bitbucket refused the time of Portico's request. The clocks of Portico and Bitbucket must "
         "agree: synchronise both with NTP."},
        {"tested", "service", "error", "Test not run: a Portico service is not running. See the Status page."},
        {"tested", "failed", "error", "Test failed. See the last test result below."},
    };
    char v[24];
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++)
        if (web_query(r, msgs[i].param, v, sizeof v) > 0 && !strcmp(v, msgs[i].value)) {
            page_notice(c, msgs[i].kind, msgs[i].text);
            return;
        }
}

/* A Details value: a dash for nothing. */
static const char *s_dash(const char *text)
{
    return text && *text ? text : "—";
}

/* "2026-11-29 15:04 UTC by someone" */
static void s_when_by(int64_t at, const char *by, char *out, size_t out_size)
{
    char when[40];
    web_format_time(at, when, sizeof when);
    snprintf(out, out_size, "%s%s%s", when, by[0] ? " by " : "", by);
}

static void s_show(web_req_t *r, admin_ctx_t *a, int64_t id)
{
    Portico__Registry__GetIntegrationReply *rep = s_get(r, id);
    if (!rep)
        return;
    const Portico__Registry__Integration *in = rep->integration;
    Portico__Registry__AccessRules *access = admin_access_load(r, in->id);
    char callback[700], text[400], v[16];
    admin_callback_url(in->id, callback, sizeof callback);
    tmpl_ctx_t *c = admin_page_ctx(r, a, in->name[0] ? in->name : "Integration", "integrations");
    s_show_flash(c, r);
    tmpl_set_int(c, "id", (long long)in->id);
    tmpl_set(c, "title_name", in->name[0] ? in->name : "(unnamed)");
    admin_integration_values(c, in);
    tmpl_set(c, "platform", "Bitbucket Data Center / Server");
    tmpl_set(c, "base_url", s_dash(in->base_url));
    tmpl_set(c, "oauth_text", in->oauth_version == 1 ? "OAuth 1" : "OAuth 2");
    tmpl_set_bool(c, "oauth2", in->oauth_version == 2);
    tmpl_set_bool(c, "oauth1", in->oauth_version == 1);
    tmpl_set(c, "client_id", s_dash(in->client_id));
    tmpl_set_bool(c, "has_secret", in->has_client_secret);
    tmpl_set(c, "bb_version", in->bitbucket_version[0] ? in->bitbucket_version : "unknown");
    tmpl_set(c, "ca_text", in->ca_cert_pem[0] ? "custom CA certificate set" : "the system's trusted CAs");
    tmpl_set_int(c, "linked", (long long)in->identity_count);
    admin_access_values(c, access, web_query(r, "access", v, sizeof v) > 0 && !strcmp(v, "saved"));
    s_when_by(in->created_at, in->created_by, text, sizeof text);
    tmpl_set(c, "created", s_dash(text));
    text[0] = '\0';
    if (in->updated_at > 0)
        s_when_by(in->updated_at, in->updated_by, text, sizeof text);
    tmpl_set(c, "changed", text);
    tmpl_set(c, "callback", callback);
    tmpl_set(c, "applinks", in->base_url);
    tmpl_set(c, "consumer_key", in->consumer_key);
    tmpl_set(c, "public_key", in->public_key_pem);
    admin_access_free(&access);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    web_page(r, 200, "integration_show", &c);
}

static void s_redirect_id(web_req_t *r, int64_t id, const char *query)
{
    char loc[128];
    snprintf(loc, sizeof loc, "/admin/integrations/%lld%s%s", (long long)id, query ? "?" : "", query ? query : "");
    web_redirect(r, loc);
}

static void s_test(web_req_t *r, admin_ctx_t *a, int64_t id)
{
    Portico__Registry__GetIntegrationReply *rep = s_get(r, id);
    if (!rep)
        return;
    const Portico__Registry__Integration *in = rep->integration;
    Portico__Broker__CheckIntegrationRequest req = PORTICO__BROKER__CHECK_INTEGRATION_REQUEST__INIT;
    req.base_url = in->base_url;
    req.ca_cert_pem = in->ca_cert_pem;
    req.oauth_version = in->oauth_version;
    req.integration_id = in->id;
    req.actor = a->actor;
    Portico__Broker__CheckIntegrationReply *chk = NULL;
    bus_error_t err;
    char q[48];
    if (admin_broker(r, &broker_m_integration_check, &req.base, (ProtobufCMessage **)&chk, &err) < 0) {
        snprintf(q, sizeof q, "tested=%s", iform_test_code(&err));
    } else {
        snprintf(q, sizeof q, "tested=%s", chk->warning[0] ? "warn" : "ok");
        protobuf_c_message_free_unpacked(&chk->base, NULL);
    }
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    s_redirect_id(r, id, q);
}

static void s_set_enabled(web_req_t *r, admin_ctx_t *a, int64_t id, bool on)
{
    Portico__Registry__UpdateIntegrationRequest req = PORTICO__REGISTRY__UPDATE_INTEGRATION_REQUEST__INIT;
    req.id = id;
    req.set_enabled = true;
    req.enabled = on;
    req.actor = a->actor;
    req.addr = r->addr;
    bus_error_t err;
    if (admin_registry(r, &registry_m_integration_update, &req.base, NULL, &err) < 0) {
        web_bus_error_page(r, &err, on ? "Could not enable the integration" : "Could not disable the integration");
        return;
    }
    s_redirect_id(r, id, on ? "enabled=1" : "disabled=1");
}

/* ---- delete ---- */

static void s_delete_page(web_req_t *r, admin_ctx_t *a, int64_t id)
{
    Portico__Registry__GetIntegrationReply *rep = s_get(r, id);
    if (!rep)
        return;
    const Portico__Registry__Integration *in = rep->integration;
    tmpl_ctx_t *c = admin_page_ctx(r, a, "Delete integration", "integrations");
    tmpl_set_int(c, "id", (long long)in->id);
    tmpl_set(c, "title_name", in->name);
    tmpl_set_int(c, "identity_count", (long long)in->identity_count);
    tmpl_set_bool(c, "one_identity", in->identity_count == 1);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    web_page(r, 200, "integration_delete", &c);
}

static void s_delete(web_req_t *r, admin_ctx_t *a, int64_t id)
{
    Portico__Registry__DeleteIntegrationRequest req = PORTICO__REGISTRY__DELETE_INTEGRATION_REQUEST__INIT;
    req.id = id;
    req.actor = a->actor;
    req.addr = r->addr;
    Portico__Registry__DeleteIntegrationReply *rep = NULL;
    bus_error_t err;
    if (admin_registry(r, &registry_m_integration_delete, &req.base, (ProtobufCMessage **)&rep, &err) < 0) {
        web_bus_error_page(r, &err, "Could not delete the integration");
        return;
    }
    char loc[80];
    snprintf(loc, sizeof loc, "/admin?deleted=1&users=%lld", (long long)rep->users_removed);
    log_info("integration deleted", "id=%lld identities=%lld users=%lld", (long long)id,
             (long long)rep->identities_removed, (long long)rep->users_removed);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    web_redirect(r, loc);
}

/* ---- edit ---- */

static void s_render_edit(web_req_t *r, admin_ctx_t *a, const Portico__Registry__Integration *in, const iform_t *f,
                          int status)
{
    tmpl_ctx_t *c = admin_page_ctx(r, a, "Edit integration", "integrations");
    s_form_values(c, f, "Nothing was saved. Correct the fields marked below and save again.");
    tmpl_set_int(c, "id", (long long)in->id);
    tmpl_set(c, "title_name", in->name);
    tmpl_set_bool(c, "oauth2", in->oauth_version == 2);
    tmpl_set_bool(c, "has_secret", in->has_client_secret);
    web_page(r, status, "integration_edit", &c);
}

static void s_edit(web_req_t *r, admin_ctx_t *a, int64_t id)
{
    Portico__Registry__GetIntegrationReply *rep = s_get(r, id);
    if (!rep)
        return;
    const Portico__Registry__Integration *in = rep->integration;
    iform_t f;
    char secret[ADMIN_MAX_CLIENT_SECRET + 1] = "";
    if (iform_init(&f) < 0) {
        protobuf_c_message_free_unpacked(&rep->base, NULL);
        web_error_page(r, 500, "Something went wrong", "Portico ran out of memory.", "Try again.");
        return;
    }
    f.id = in->id;
    f.oauth_version = in->oauth_version;
    snprintf(f.ca_pem, ADMIN_MAX_CA_PEM + 1, "%s", in->ca_cert_pem);
    if (!admin_is_post(r)) {
        snprintf(f.name, sizeof f.name, "%s", in->name);
        snprintf(f.base_url, sizeof f.base_url, "%s", in->base_url);
        snprintf(f.client_id, sizeof f.client_id, "%s", in->client_id);
        s_render_edit(r, a, in, &f, 200);
        goto out;
    }
    if (web_body_failed(r)) {
        web_error_page(r, 413, "Form too large", "The form is larger than Portico accepts (64 KiB in all).",
                       "Go back, shorten the CA certificate, and save again.");
        goto out;
    }
    iform_read_edit(&f, secret, sizeof secret, s_form_get, r);
    if (iform_has_errors(&f)) {
        s_render_edit(r, a, in, &f, 400);
        goto out;
    }
    bus_error_t err;
    bool moved = strcmp(f.base_norm, in->base_url) != 0 || strcmp(f.ca_pem, in->ca_cert_pem) != 0;
    if (moved) {
        Portico__Broker__CheckIntegrationRequest creq = PORTICO__BROKER__CHECK_INTEGRATION_REQUEST__INIT;
        creq.base_url = f.base_norm;
        creq.ca_cert_pem = f.ca_pem;
        creq.oauth_version = in->oauth_version;
        creq.actor = a->actor;
        Portico__Broker__CheckIntegrationReply *chk = NULL;
        if (admin_broker(r, &broker_m_integration_check, &creq.base, (ProtobufCMessage **)&chk, &err) < 0) {
            iform_check_failed(&f, &err);
            snprintf(f.base_url, sizeof f.base_url, "%s", f.base_norm);
            s_render_edit(r, a, in, &f, 400);
            goto out;
        }
        protobuf_c_message_free_unpacked(&chk->base, NULL);
    }
    Portico__Registry__UpdateIntegrationRequest req = PORTICO__REGISTRY__UPDATE_INTEGRATION_REQUEST__INIT;
    req.id = in->id;
    req.name = f.name;
    req.base_url = f.base_norm;
    req.client_id = in->oauth_version == 2 ? f.client_id : "";
    req.client_secret = in->oauth_version == 2 ? secret : "";
    req.set_ca_cert = true;
    req.ca_cert_pem = f.ca_pem;
    req.actor = a->actor;
    req.addr = r->addr;
    if (admin_registry(r, &registry_m_integration_update, &req.base, NULL, &err) < 0) {
        iform_store_failed(&f, &err);
        snprintf(f.base_url, sizeof f.base_url, "%s", f.base_norm);
        s_render_edit(r, a, in, &f, err.code == PORTICO__ERROR_CODE__CONFLICT ? 409 : 400);
        goto out;
    }
    log_info("integration updated", "id=%lld secret_rotated=%s", (long long)in->id, secret[0] ? "yes" : "no");
    s_redirect_id(r, in->id, "updated=1");
out:
    explicit_bzero(secret, sizeof secret);
    iform_free(&f);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
}

/* /admin/integrations/{id}[/edit|/test|/enable|/disable|/delete|/access]:
 * one handler per page or action, each behind the admin guard. */
#define ADMIN_ID_HANDLER(name, call)                                                                                   \
    static void name(web_req_t *r)                                                                                     \
    {                                                                                                                  \
        admin_ctx_t a;                                                                                                 \
        if (admin_enter(r, &a))                                                                                        \
            call;                                                                                                      \
    }

ADMIN_ID_HANDLER(h_show, s_show(r, &a, r->path_id))
ADMIN_ID_HANDLER(h_edit, s_edit(r, &a, r->path_id))
ADMIN_ID_HANDLER(h_test, s_test(r, &a, r->path_id))
ADMIN_ID_HANDLER(h_enable, s_set_enabled(r, &a, r->path_id, true))
ADMIN_ID_HANDLER(h_disable, s_set_enabled(r, &a, r->path_id, false))
ADMIN_ID_HANDLER(h_access, admin_access_edit(r, &a, r->path_id))
ADMIN_ID_HANDLER(h_delete_page, s_delete_page(r, &a, r->path_id))
ADMIN_ID_HANDLER(h_delete, s_delete(r, &a, r->path_id))

/* Anything else under /admin/integrations/ (a path no route has, for any
 * method: the router answers 405 to a known path with another method):
 * no such page. A GET or POST goes through admin_enter first, so that
 * someone not signed in is sent to log in, as on every admin page. */
static void h_other(web_req_t *r)
{
    int64_t id = web_path_id(r, "/admin/integrations/", NULL);
    bool post = admin_is_post(r);
    bool get = !post && (!strcmp(r->ri->request_method, "GET") || !strcmp(r->ri->request_method, "HEAD"));
    admin_ctx_t a;
    if (id <= 0 || (!post && !get) || admin_enter(r, &a))
        web_error_page(r, 404, "Page not found", "There is no page at this address.", "Start from the Admin page.");
}

const web_route_t web_admin_integration_routes[] = {
    {"GET", "/admin/integrations/{id}", false, h_show, "admin_integration_show"},
    {"GET", "/admin/integrations/{id}/edit", false, h_edit, "admin_integration_edit"},
    {"POST", "/admin/integrations/{id}/edit", false, h_edit, "admin_integration_save"},
    {"POST", "/admin/integrations/{id}/test", false, h_test, "admin_integration_test"},
    {"POST", "/admin/integrations/{id}/enable", false, h_enable, "admin_integration_enable"},
    {"POST", "/admin/integrations/{id}/disable", false, h_disable, "admin_integration_disable"},
    {"GET", "/admin/integrations/{id}/access", false, h_access, "admin_integration_access"},
    {"POST", "/admin/integrations/{id}/access", false, h_access, "admin_integration_access_save"},
    {"GET", "/admin/integrations/{id}/delete", false, h_delete_page, "admin_integration_delete_confirm"},
    {"POST", "/admin/integrations/{id}/delete", false, h_delete, "admin_integration_delete"},
    {NULL, "/admin/integrations/", true, h_other, "admin_integration_other"},
    {0},
};
