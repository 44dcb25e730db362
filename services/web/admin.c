/* The Admin section's front door: who may enter (admin_enter), the Setup
 * Mode token form, the banner, the integrations list and Finish setup.
 *
 * Two kinds of visitor get in: a signed-in admin, and, while Setup Mode is
 * on, someone who gave the setup token (a session with setup = true and no
 * account). The setup token form is used before any session exists, so its
 * CSRF defence cannot be bound to a session: it is a double-submit pair, a
 * random HttpOnly SameSite=Lax cookie set with the form and a field derived
 * from it, checked together with Origin / Sec-Fetch-Site. */
#include "admin.h"

#include "crypto.h"
#include "log.h"
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small shared helpers ---- */

const char *admin_path(web_req_t *r)
{
    return r->path ? r->path : "/";
}

bool admin_is_post(web_req_t *r)
{
    return strcmp(r->ri->request_method, "POST") == 0;
}

int64_t admin_parse_id(const char *s)
{
    int64_t id = 0;
    int digits = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || ++digits > 15)
            return 0;
        id = id * 10 + (*s - '0');
    }
    return id;
}

/* Methods that only read. */
static bool s_reads(const char *method)
{
    size_t n = strlen(method);
    return (n > 4 && !strcmp(method + n - 4, ".get")) || (n > 5 && !strcmp(method + n - 5, ".list"));
}

int admin_registry(web_req_t *r, const bus_method_t *m, const ProtobufCMessage *req, ProtobufCMessage **rep,
                   bus_error_t *err)
{
    const char *method = m->name;
    int rc = bus_call_method(web_registry(r), m, req, rep, (int)web_cfg.bus_timeout_ms, err);
    /* An admin change (roles, sessions ended, Setup Mode, integrations) may
     * touch any cached session, account or repository list: forget them
     * all. Admin changes are rare; a few lookups more are cheap. Also after
     * a failure: the change may have happened all the same. */
    if (!s_reads(method))
        web_cache_forget_all();
    return rc;
}

int admin_broker(web_req_t *r, const bus_method_t *m, const ProtobufCMessage *req, ProtobufCMessage **rep,
                 bus_error_t *err)
{
    (void)r;
    return brokerq_call(web_brokerq, m, req, rep, (int)web_cfg.login_timeout_ms, err);
}

void admin_callback_url(int64_t id, char *out, size_t out_size)
{
    snprintf(out, out_size, "%s/oauth/callback/%lld", web_cfg.public_url, (long long)id);
}

/* ---- the Setup Mode token form ---- */

static const char *s_setup_cookie(void)
{
    return web_cfg.secure ? "__Host-portico_setup_csrf" : "portico_setup_csrf";
}

/* The form field that goes with a setup CSRF cookie value. */
static void s_setup_csrf_field(const char *cookie, char *out, size_t out_size)
{
    web_csrf_derive("portico-setup-form", cookie, out, out_size);
}

static void s_setup_form(web_req_t *r, int status, const char *error)
{
    char cookie[64];
    if (web_cookie(r, s_setup_cookie(), cookie, sizeof cookie) != 43) {
        if (crypto_random_token(32, cookie, sizeof cookie) < 0) {
            web_error_page(r, 500, "Something went wrong", "Portico could not prepare the form.", "Try again.");
            return;
        }
        web_add_cookie(r, s_setup_cookie(), cookie, 3600, "/");
    }
    char field[48];
    s_setup_csrf_field(cookie, field, sizeof field);
    const web_session_t *s = web_session(r);
    tmpl_ctx_t *c = web_page_ctx(r, "Setup Mode");
    tmpl_set_bool(c, "logged_in", s && s->user_id);
    tmpl_set(c, "setup_csrf", field);
    tmpl_set_int(c, "max", ADMIN_MAX_SETUP_TOKEN);
    if (error)
        page_notice(c, "error", error);
    web_page(r, status, "setup_form", &c);
}

static int s_settings(web_req_t *r, Portico__Registry__Settings **out, bus_error_t *err)
{
    return admin_registry(r, &registry_m_settings_get, NULL, (ProtobufCMessage **)out, err);
}

void admin_setup_token(web_req_t *r)
{
    if (!web_same_origin(r)) {
        char q[300];
        log_warn("refused a cross-site request", "path=%s", log_quote(r->ri->local_uri, q, sizeof q));
        web_error_page(r, 403, "Request refused", "This form was sent from another site.",
                       "Open Portico at its configured address and try again.");
        return;
    }
    if (web_body_failed(r)) {
        web_error_page(r, 413, "Form too large", "The form sent more data than Portico accepts.",
                       "Go back and send the form again.");
        return;
    }
    char cookie[64], field[64], want[48];
    bool cookie_ok = web_cookie(r, s_setup_cookie(), cookie, sizeof cookie) == 43;
    int fn = web_form(r, "csrf", field, sizeof field);
    if (cookie_ok)
        s_setup_csrf_field(cookie, want, sizeof want);
    if (!cookie_ok || fn <= 0 || !crypto_str_equal(field, want)) {
        log_warn("refused a setup token form without a valid CSRF token", NULL);
        web_error_page(r, 403, "Request refused",
                       "This form has expired or did not come from this browser. Portico needs its cookies to "
                       "accept the setup token.",
                       "Open /admin again, allow cookies for this site, and enter the token.");
        return;
    }

    /* Only wrong tokens use this client's budget: an address that made no
     * wrong attempt always gets its right token checked. */
    if (web_rate_wait(r, "setup_token", web_cfg.setup_failure_rate, false)) {
        s_setup_form(r, 429, "Too many attempts, wait a minute and try again.");
        return;
    }
    char token[ADMIN_MAX_SETUP_TOKEN + 1];
    int tn = web_form(r, "token", token, sizeof token);
    if (tn == 0 || tn == WEB_VAR_ABSENT) {
        s_setup_form(r, 400, "Enter the setup token.");
        return;
    }
    if (tn == WEB_VAR_TOO_LONG || tn == WEB_VAR_NUL) {
        web_rate_charge(r, "setup_token", web_cfg.setup_failure_rate);
        s_setup_form(r, 403, "This setup token is not right. Copy it again and paste it exactly.");
        return;
    }
    /* The registry starts the Setup Mode session itself, in the step that
     * accepts the token: the web sends only the new cookie's SHA-256. */
    char session[64];
    uint8_t session_hash[32];
    if (web_session_token(session, sizeof session, session_hash) < 0) {
        explicit_bzero(token, sizeof token);
        web_error_page(r, 500, "Something went wrong", "Portico could not start your session.", "Try again.");
        return;
    }
    Portico__Registry__CreateSessionRequest cs = PORTICO__REGISTRY__CREATE_SESSION_REQUEST__INIT;
    cs.token_hash.data = session_hash;
    cs.token_hash.len = sizeof session_hash;
    cs.setup = true;
    cs.idle_seconds = (int32_t)web_cfg.session_idle_s;
    cs.absolute_seconds = (int32_t)web_cfg.session_max_s;
    cs.addr = r->addr;
    Portico__Registry__CheckSetupTokenRequest req = PORTICO__REGISTRY__CHECK_SETUP_TOKEN_REQUEST__INIT;
    req.token = token;
    req.addr = r->addr;
    req.session = &cs;
    bus_error_t err;
    /* Not admin_registry, which empties every cache after a change: the
     * check changes nothing cached (a new Setup Mode session is not cached
     * yet), and anyone may send this form. */
    int rc = registry_call_settings_check_setup_token(web_registry(r), &req, NULL, (int)web_cfg.bus_timeout_ms, &err);
    explicit_bzero(token, sizeof token);
    if (rc < 0)
        explicit_bzero(session, sizeof session);
    if (rc < 0) {
        switch (err.code) {
        case PORTICO__ERROR_CODE__RATE_LIMITED:
            r->retry_after_s = 60;
            s_setup_form(r, 429, "Too many attempts, wait a minute and try again.");
            return;
        case PORTICO__ERROR_CODE__UNAVAILABLE:
        case PORTICO__ERROR_CODE__TIMEOUT:
        case PORTICO__ERROR_CODE__INTERNAL:
        case PORTICO__ERROR_CODE__UNKNOWN_METHOD:
            web_bus_error_page(r, &err, "Could not check the setup token");
            return;
        default:
            char q[100];
            log_info("setup token refused", "code=%s detail=%s", bus_code_name(err.code),
                     log_quote(bus_detail_name(err.detail), q, sizeof q));
            if (err.detail == DETAIL(SETUP_OFF)) {
                web_error_page(r, 403, "Setup Mode is off",
                               "The setup token no longer opens the Admin section: setup has been finished.",
                               "Log in with your Bitbucket account as an admin. If no admin can log in, your "
                               "operator can turn Setup Mode back on from the command line.");
                return;
            }
            if (err.detail == DETAIL(TOKEN_EXPIRED)) {
                s_setup_form(r, 403,
                             "This setup token has expired. Get a new one on the registry's machine with "
                             "`portico-registry setup-mode on` (it prints the new token).");
                return;
            }
            if (err.detail == DETAIL(BAD_TOKEN))
                web_rate_charge(r, "setup_token", web_cfg.setup_failure_rate);
            s_setup_form(r, 403, "This setup token is not right. Copy it again and paste it exactly.");
            return;
        }
    }
    web_session_started(r, 0, session);
    explicit_bzero(session, sizeof session);
    web_add_cookie(r, s_setup_cookie(), "", 0, "/");
    log_info("setup session started", NULL);
    web_redirect(r, "/admin");
}

/* ---- the guard ---- */

static void s_login_redirect(web_req_t *r)
{
    sbuf_t loc;
    sbuf_init(&loc);
    sbuf_puts(&loc, "/login?return_to=");
    /* A path the login would not go back to (over 1 KiB) is not written
     * into the answer's head either. */
    const char *back = admin_path(r);
    sbuf_urlenc(&loc, admin_is_post(r) || !url_is_local_path(back) ? "/admin" : back);
    web_redirect(r, loc.data);
    sbuf_free(&loc);
}

bool admin_enter(web_req_t *r, admin_ctx_t *a)
{
    memset(a, 0, sizeof *a);
    if (admin_is_post(r) && web_body_failed(r) && web_same_origin(r)) {
        /* Otherwise the unreadable body would be reported as a missing CSRF token. */
        web_error_page(r, 413, "Form too large",
                       "The form is larger than Portico accepts (64 KiB in all, a CA certificate included).",
                       "Go back, shorten the longest field (usually the CA certificate: the one authority that "
                       "signed Bitbucket's certificate is enough), and send the form again.");
        return false;
    }
    if (admin_is_post(r) && !web_post_ok(r))
        return false;
    const web_session_t *s = web_session(r);
    if (s && s->setup && s->user_id == 0 && s->setup_mode) {
        a->s = s;
        a->setup_actor = true;
        snprintf(a->actor, sizeof a->actor, "setup-token");
    } else if (s && s->user_id && s->is_admin) {
        a->s = s;
        snprintf(a->actor, sizeof a->actor, "%s", s->user_name);
    } else if (!s && web_session_unknown(r, "Could not check your sign-in")) {
        return false;
    } else {
        Portico__Registry__Settings *st = NULL;
        bus_error_t err;
        if (s_settings(r, &st, &err) < 0) {
            web_bus_error_page(r, &err, "Could not read Portico's settings");
            return false;
        }
        bool setup_mode = st->setup_mode;
        protobuf_c_message_free_unpacked(&st->base, NULL);
        bool signed_in = s && s->user_id;
        if (setup_mode && !admin_is_post(r) && !strcmp(admin_path(r), "/admin"))
            s_setup_form(r, 200, NULL);
        else if (setup_mode && !admin_is_post(r))
            web_redirect(r, "/admin");
        else if (!signed_in && !admin_is_post(r))
            s_login_redirect(r);
        else if (!signed_in)
            web_error_page(r, 403, "Not signed in", "Your session has ended.", "Log in again and repeat the action.");
        else
            web_error_page(r, 403, "Admins only", "Only admins can open the Admin section.",
                           "Ask an admin to give your account the admin role, or log in with an admin account.");
        return false;
    }
    a->setup_mode = s->setup_mode;
    if (a->setup_mode) {
        Portico__Registry__Settings *st = NULL;
        bus_error_t err;
        if (s_settings(r, &st, &err) == 0) {
            a->admin_exists = st->admin_exists;
            protobuf_c_message_free_unpacked(&st->base, NULL);
        }
    }
    return true;
}

/* ---- layout ---- */

tmpl_ctx_t *admin_page_ctx(web_req_t *r, const admin_ctx_t *a, const char *title, const char *current)
{
    static const struct {
        const char *key, *path, *label;
    } nav[] = {{"integrations", "/admin", "Integrations"},
               {"users", "/admin/users", "Users"},
               {"audit", "/admin/audit", "Audit log"},
               {"status", "/admin/status", "Status"}};
    tmpl_ctx_t *c = web_page_ctx(r, title);
    tmpl_set_bool(c, "setup_mode", a->setup_mode);
    tmpl_set_bool(c, "admin_exists", a->admin_exists);
    tmpl_set_list(c, "nav");
    for (size_t i = 0; i < sizeof nav / sizeof nav[0]; i++) {
        tmpl_ctx_t *item = tmpl_add(c, "nav");
        tmpl_set(item, "href", nav[i].path);
        tmpl_set(item, "label", nav[i].label);
        tmpl_set_bool(item, "current", current && !strcmp(current, nav[i].key));
    }
    return c;
}

/* ---- the integrations list ---- */

void admin_integration_values(tmpl_ctx_t *c, const Portico__Registry__Integration *in)
{
    bool tested = in->last_test_result && in->last_test_result[0];
    bool ok = tested && !strcmp(in->last_test_result, "ok");
    char when[40] = "";
    if (tested && in->last_test_at > 0)
        web_format_time(in->last_test_at, when, sizeof when);
    tmpl_set_bool(c, "enabled", in->enabled);
    tmpl_set_bool(c, "tested", tested);
    tmpl_set_bool(c, "test_ok", ok);
    tmpl_set(c, "test_text", ok ? "OK" : tested ? in->last_test_result : "");
    tmpl_set(c, "test_when", when);
}
