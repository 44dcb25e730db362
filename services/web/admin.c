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
#include "admin_access.h"

#include "crypto.h"
#include "log.h"

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
    int rc = bus_call_method(r->clients->registry, m, req, rep, (int)web_cfg.bus_timeout_ms, err);
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
    return bus_call_method(r->clients->broker, m, req, rep, (int)web_cfg.login_timeout_ms, err);
}

void admin_callback_url(int64_t id, char *out, size_t out_size)
{
    snprintf(out, out_size, "%s/oauth/callback/%lld", web_cfg.public_url, (long long)id);
}

void admin_tfa_hint(sbuf_t *b)
{
    sbuf_puts(b, "<section class=\"card hint-card\"><h2>Two-factor app on Bitbucket</h2>"
                 "<p>If the <strong>U2F &amp; TOTP</strong> two-factor app is installed on this Bitbucket, it "
                 "blocks OAuth requests from applications it does not know. Add Portico to that app's OAuth "
                 "whitelist in Bitbucket's administration, or people will see their Bitbucket login fail "
                 "when they try to log in to Portico.</p></section>");
}

/* ---- the Setup Mode token form ---- */

static const char *s_setup_cookie(void)
{
    return web_cfg.secure ? "__Host-portico_setup_csrf" : "portico_setup_csrf";
}

/* The form field that goes with a setup CSRF cookie value. */
static void s_setup_csrf_field(const char *cookie, char *out, size_t out_size)
{
    char input[96];
    snprintf(input, sizeof input, "portico-setup-form:%s", cookie);
    uint8_t d[32];
    crypto_sha256(input, strlen(input), d);
    crypto_b64url_encode(d, 24, out, out_size);
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

    sbuf_t b;
    sbuf_init(&b);
    page_begin(&b, r, "Setup Mode");
    sbuf_puts(&b, "<section class=\"card narrow\"><h1>Setup Mode</h1>"
                  "<p>Portico has just been installed and is in Setup Mode. Enter the setup token to open the Admin "
                  "section and add your first Bitbucket integration. No account is needed yet.</p>");
    if (s && s->user_id) {
        sbuf_puts(&b, "<p class=\"muted\">You are logged in as ");
        sbuf_html(&b, s->display_name[0] ? s->display_name : s->user_name);
        sbuf_puts(&b, ", who is not an admin. The setup token replaces this session with a setup session.</p>");
    }
    if (error)
        page_notice(&b, "error", error);
    sbuf_printf(&b,
                "<form method=\"post\" action=\"%s/admin/setup-token\" autocomplete=\"off\">"
                "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
                "<label for=\"setup-token\">Setup token</label>"
                "<input type=\"password\" id=\"setup-token\" name=\"token\" maxlength=\"%d\" "
                "autocomplete=\"off\" spellcheck=\"false\" aria-describedby=\"setup-token-hint\" autofocus>"
                "<p class=\"hint\" id=\"setup-token-hint\">On the registry's machine, "
                "<code>portico-registry setup-token</code> shows it (it is kept in the file "
                "<code>PORTICO_SETUP_TOKEN_FILE</code>), or it is the value of "
                "<code>PORTICO_SETUP_TOKEN</code> if your operator set one.</p>"
                "<button type=\"submit\">Open the Admin section</button></form></section>",
                web_cfg.public_path, field, ADMIN_MAX_SETUP_TOKEN);
    page_end(&b);
    web_send_html(r, status, &b);
    sbuf_free(&b);
}

static int s_settings(web_req_t *r, Portico__Registry__Settings **out, bus_error_t *err)
{
    return admin_registry(r, &registry_m_settings_get, NULL, (ProtobufCMessage **)out, err);
}

static void h_setup_token(web_req_t *r)
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
    if (tn == 0 || tn == -1) {
        s_setup_form(r, 400, "Enter the setup token.");
        return;
    }
    if (tn == -2) {
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
    int rc = admin_registry(r, &registry_m_settings_check_setup_token, &req.base, NULL, &err);
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
    sbuf_urlenc(&loc, admin_is_post(r) ? "/admin" : admin_path(r));
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

static void s_setup_banner(sbuf_t *b, web_req_t *r, const admin_ctx_t *a)
{
    sbuf_puts(b, "<section class=\"banner\" role=\"status\"><div><strong>Setup Mode is on.</strong> "
                 "Anyone holding the setup token can open this Admin section without an account. ");
    if (a->admin_exists) {
        sbuf_puts(b, "An admin account exists now: finish setup to close this door. Afterwards the setup token "
                     "stops working and only admins, logged in with Bitbucket, can come here.</div>");
        sbuf_printf(b,
                    "<form method=\"post\" action=\"%s/admin/finish-setup\" class=\"banner-action\" "
                    "data-confirm=\"Finish setup? The setup token will stop working.\">",
                    web_cfg.public_path);
        page_csrf(b, r);
        sbuf_puts(b, "<button type=\"submit\">Finish setup</button></form>");
    } else {
        sbuf_printf(b,
                    "Add an integration, then <a href=\"%s/login\">log in with Bitbucket</a> in this "
                    "browser: your Bitbucket account becomes the first admin (logins from other browsers do "
                    "not). Once an admin exists you can finish setup here.</div>",
                    web_cfg.public_path);
    }
    sbuf_puts(b, "</section>");
}

void admin_page_begin(sbuf_t *b, web_req_t *r, const admin_ctx_t *a, const char *title, const char *current)
{
    page_begin(b, r, title);
    if (a->setup_mode)
        s_setup_banner(b, r, a);
    static const struct {
        const char *key, *path, *label;
    } nav[] = {{"integrations", "/admin", "Integrations"},
               {"users", "/admin/users", "Users"},
               {"audit", "/admin/audit", "Audit log"},
               {"status", "/admin/status", "Status"}};
    sbuf_puts(b, "<nav class=\"subnav\" aria-label=\"Admin\">");
    for (size_t i = 0; i < sizeof nav / sizeof nav[0]; i++)
        sbuf_printf(b, "<a href=\"%s%s\"%s>%s</a>", web_cfg.public_path, nav[i].path,
                    current && !strcmp(current, nav[i].key) ? " aria-current=\"page\"" : "", nav[i].label);
    sbuf_puts(b, "</nav>");
}

void admin_page_end(sbuf_t *b)
{
    page_end(b);
}

/* ---- the integrations list ---- */

void admin_integration_state(sbuf_t *b, const Portico__Registry__Integration *in)
{
    sbuf_printf(b, "<span class=\"badge %s\">%s</span>", in->enabled ? "ok" : "off",
                in->enabled ? "enabled" : "disabled");
}

void admin_test_result(sbuf_t *b, const Portico__Registry__Integration *in)
{
    if (!in->last_test_result || !in->last_test_result[0]) {
        sbuf_puts(b, "<span class=\"muted\">not tested</span>");
        return;
    }
    bool ok = !strcmp(in->last_test_result, "ok");
    sbuf_printf(b, "<span class=\"badge %s\">", ok ? "ok" : "off");
    sbuf_html(b, ok ? "OK" : in->last_test_result);
    sbuf_puts(b, "</span>");
    if (in->last_test_at > 0) {
        char when[40];
        web_format_time(in->last_test_at, when, sizeof when);
        sbuf_printf(b, "<br><span class=\"muted small\">%s</span>", when);
    }
}

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
            page_notice(b, "ok", "Integration deleted.");
    } else if (web_query(r, "finished", v, sizeof v) > 0) {
        page_notice(b, "ok", "Setup finished. The setup token no longer works; admins log in with Bitbucket.");
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
    sbuf_t b;
    sbuf_init(&b);
    page_begin(&b, r, "Setup finished");
    sbuf_printf(&b,
                "<section class=\"card narrow\"><h1>Setup finished</h1>"
                "<p>Setup Mode is off. The setup token no longer opens the Admin section, and this setup "
                "session has ended.</p><p>From now on, log in with your Bitbucket account as an admin to "
                "manage Portico.</p><a class=\"button\" href=\"%s/login?return_to=%%2Fadmin\">Log in</a>"
                "</section>",
                web_cfg.public_path);
    page_end(&b);
    web_send_html(r, 200, &b);
    sbuf_free(&b);
}

const web_route_t web_admin_routes[] = {
    {"GET", "/admin", false, h_home, "admin"},
    {"POST", "/admin/setup-token", false, h_setup_token, "admin_setup_token"},
    {"POST", "/admin/finish-setup", false, h_finish_setup, "admin_finish_setup"},
    {"GET", "/admin/integrations/new", false, admin_integration_new, "admin_integration_new"},
    {"POST", "/admin/integrations/new", false, admin_integration_new, "admin_integration_new"},
    {"POST", "/admin/integrations", false, admin_integration_create, "admin_integration_create"},
    {NULL, "/admin/integrations/", true, admin_integration_dispatch, "admin_integration"},
    {"GET", "/admin/users", false, admin_users, "admin_users"},
    {"POST", "/admin/users/", true, admin_user_dispatch, "admin_user"},
    {"GET", "/admin/audit", false, admin_audit, "admin_audit"},
    {0},
};
