/* Logging in with Bitbucket: the home page, the login list, the start of a
 * login, the OAuth callback and logout.
 *
 * A login is started with a GET link (CSP form-action 'self' would block a
 * form POST that redirects to Bitbucket). The start sets a browser-binding
 * cookie and hands only its SHA-256 to the broker; the callback hands the
 * hash again, so a callback URL opened in another browser (login CSRF, a
 * leaked URL) is refused. Everything else about the login (state, PKCE,
 * OAuth 1 request tokens, tokens) stays in the broker and the registry. */
#include "bus_methods.h"
#include "web.h"

#include "broker.pb-c.h"
#include "crypto.h"
#include "log.h"
#include "registry.pb-c.h"
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_RETURN_TO "/account"
#define BINDING_LEN 43 /* 32 random bytes in base64url */

/* ---- helpers ---- */

static bool s_b64url_token(const char *s, size_t len)
{
    if (strlen(s) != len)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_'))
            return false;
    return true;
}

/* The integration id after prefix in the request path ("/login/start/12");
 * -1 unless nothing follows the digits. */
static int64_t s_path_id(web_req_t *r, const char *prefix)
{
    const char *rest = NULL;
    int64_t id = web_path_id(r, prefix, &rest);
    return id > 0 && rest && !*rest ? id : -1;
}

/* return_to from the query, when it is a local path; else the default. */
static void s_return_to(web_req_t *r, char *out, size_t out_size)
{
    char v[1100];
    if (web_query(r, "return_to", v, sizeof v) > 0 && url_is_local_path(v))
        snprintf(out, out_size, "%s", v);
    else
        snprintf(out, out_size, "%s", DEFAULT_RETURN_TO);
}

static Portico__Registry__ListIntegrationsReply *s_enabled_integrations(web_req_t *r, bus_error_t *err)
{
    Portico__Registry__ListIntegrationsRequest q = PORTICO__REGISTRY__LIST_INTEGRATIONS_REQUEST__INIT;
    q.only_enabled = true;
    Portico__Registry__ListIntegrationsReply *rep = NULL;
    if (registry_call_integration_list(r->clients->registry, &q, &rep, (int)web_cfg.bus_timeout_ms, err) < 0)
        return NULL;
    return rep;
}

static Portico__Registry__Settings *s_settings(web_req_t *r)
{
    Portico__Registry__Settings *rep = NULL;
    bus_error_t err;
    if (registry_call_settings_get(r->clients->registry, NULL, &rep, (int)web_cfg.bus_timeout_ms, &err) < 0)
        return NULL;
    return rep;
}

/* The "Log in with ..." links, or what to do when there are none. */
static void s_login_list(sbuf_t *b, web_req_t *r, const char *return_to)
{
    bus_error_t err;
    Portico__Registry__ListIntegrationsReply *list = s_enabled_integrations(r, &err);
    if (!list) {
        page_notice(b, "error",
                    "Portico cannot list its Bitbucket integrations right now: one of its services is not "
                    "answering. Wait a moment and reload this page.");
        return;
    }
    size_t shown = 0;
    sbuf_puts(b, "<div class=\"login-list\">");
    for (size_t i = 0; i < list->n_integrations; i++) {
        const Portico__Registry__Integration *in = list->integrations[i];
        if (!in || !in->enabled)
            continue;
        sbuf_printf(b, "<a class=\"button\" href=\"%s/login/start/%lld?return_to=", web_cfg.public_path,
                    (long long)in->id);
        sbuf_urlenc(b, return_to);
        sbuf_puts(b, "\">Log in with ");
        sbuf_html(b, in->name[0] ? in->name : in->base_url);
        sbuf_puts(b, "</a>");
        shown++;
    }
    sbuf_puts(b, "</div>");
    protobuf_c_message_free_unpacked(&list->base, NULL);
    if (shown)
        return;
    Portico__Registry__Settings *st = s_settings(r);
    if (st && st->setup_mode)
        sbuf_printf(b,
                    "<p>Nobody can log in yet: Portico has no Bitbucket integration. Portico is in Setup Mode: "
                    "open <a href=\"%s/admin\">the Admin section</a> with the setup token (on the registry's "
                    "machine, <code>portico-registry setup-token</code> shows it) and add an integration.</p>",
                    web_cfg.public_path);
    else
        sbuf_puts(b, "<p>Nobody can log in right now: there is no enabled Bitbucket integration. Ask a Portico "
                     "admin to add or enable one.</p>");
    if (st)
        protobuf_c_message_free_unpacked(&st->base, NULL);
}

/* The page for a login that did not work: what happened and what to do,
 * from the error's code and detail, never its internals. */
static void s_login_error(web_req_t *r, const bus_error_t *err)
{
    const char *d = err->detail;
    int status = web_status_for(err);
    const char *title = "Sign-in did not work", *what = NULL, *todo = "Start again from the login page.";
    char what_buf[400];

    if (!strcmp(d, "state_missing")) {
        title = "Sign-in response incomplete";
        what = "The answer from Bitbucket did not carry the sign-in state Portico needs to finish.";
    } else if (!strcmp(d, "state_unknown") || !strcmp(d, "state_expired")) {
        status = 400;
        title = "This sign-in link has expired or was already used: start again";
        what = "Each sign-in link works once, in the browser that started it, for a few minutes.";
    } else if (!strcmp(d, "browser")) {
        title = "This sign-in was started in another browser";
        what = "For your safety, Portico finishes a sign-in only in the browser that started it (or when this "
               "browser kept its sign-in cookie).";
        todo = "Start again from the login page, in this browser.";
    } else if (!strcmp(d, "integration")) {
        title = "This sign-in belongs to another Bitbucket integration";
        what = "The answer arrived at the callback of a different Bitbucket integration than the one the sign-in "
               "was started with, so Portico refused it.";
    } else if (!strcmp(d, "denied")) {
        title = "You declined access in Bitbucket";
        what = "Portico needs read access to your repositories to sign you in, and Bitbucket reported that you "
               "chose Deny.";
        todo = "To sign in, start again and choose Allow on Bitbucket's page.";
    } else if (!strcmp(d, "invalid_client")) {
        title = "Bitbucket refused Portico's credentials";
        what = "Bitbucket did not accept the Client ID and Client Secret that Portico has for this integration.";
        todo = "Ask a Portico admin to check the integration's Client Secret (and Client ID) against the "
               "application link in Bitbucket.";
    } else if (!strcmp(d, "invalid_grant")) {
        title = "Bitbucket refused the sign-in code";
        what = "Bitbucket's sign-in codes are valid for a few seconds only, and once.";
    } else if (!strcmp(d, "tfa")) {
        title = "Bitbucket's two-factor plugin blocked the sign-in";
        what = "Bitbucket accepted the authorization, but then treated Portico as anonymous. The \"U2F & TOTP\" "
               "two-factor app for Bitbucket does this when its OAuth whitelist does not allow Portico.";
        todo = "Ask your Bitbucket administrator to allow Portico in the OAuth whitelist of the \"U2F & TOTP\" "
               "two-factor app, then start again.";
    } else if (!strcmp(d, "access_restricted")) {
        status = 403;
        title = "Access is restricted";
        what = "The operator of this Portico lets only some people of this Bitbucket sign in, and your Bitbucket "
               "account is not one of them. No Portico account was created for you.";
        snprintf(what_buf, sizeof what_buf, "%s", err->message[0] ? err->message : "Ask a Portico admin for access.");
        todo = what_buf;
    } else if (!strcmp(d, "pending_browser") || !strcmp(d, "pending_total")) {
        status = 429;
        r->retry_after_s = 60;
        title = "Too many sign-ins in progress";
        what = !strcmp(d, "pending_browser") ? "This browser has started many sign-ins that have not finished yet."
                                             : "Portico has too many unfinished sign-ins right now.";
        todo = "Finish or abandon the sign-ins already open, wait a minute, and start again.";
    } else if (!strcmp(d, "integration_unknown")) {
        status = 404;
        title = "Unknown Bitbucket integration";
        what = "There is no Bitbucket integration at this address; it may have been deleted.";
    } else if (!strcmp(d, "integration_disabled")) {
        title = "This Bitbucket integration is disabled";
        what = "A Portico admin has disabled logging in with this Bitbucket integration.";
        todo = "Choose another integration on the login page, or ask a Portico admin.";
    } else if (!strcmp(d, "invalid_scope") || !strcmp(d, "unauthorized_client")) {
        title = "Bitbucket did not allow this sign-in";
        what = "Bitbucket refused what Portico asked for (read access to repositories).";
        todo = "Ask your Bitbucket administrator to check that Portico's application link grants Repositories "
               "Read, then start again.";
    } else if (!strcmp(d, "code_missing") || !strcmp(d, "verifier_missing") || !strcmp(d, "provider_error") ||
               !strcmp(d, "invalid_request") || !strcmp(d, "unsupported_response_type") || !strcmp(d, "server_error") ||
               !strcmp(d, "temporarily_unavailable")) {
        title = "Bitbucket did not complete the sign-in";
        what = "Bitbucket sent Portico back without a usable answer.";
        todo = "Start again. If it keeps happening, ask your Bitbucket administrator to check Portico's "
               "application link.";
    } else if (!strcmp(d, "consumer_key_unknown")) {
        status = 502;
        title = "Bitbucket does not know Portico's consumer key yet";
        what = "This integration signs in with OAuth 1, and Bitbucket did not recognise its consumer key: the "
               "application link's Incoming Authentication in Bitbucket is missing or has another Consumer Key.";
        todo = "Ask a Portico admin to finish the application link in Bitbucket (Incoming Authentication with the "
               "Consumer Key and Public Key from the integration's page in Portico), then start again.";
    } else if (!strcmp(d, "signature_invalid") || !strcmp(d, "signature_method_rejected")) {
        status = 502;
        title = "Bitbucket could not verify Portico's signature";
        what = "Bitbucket knows this integration's consumer key, but not with the public key Portico signs with: "
               "the application link's Incoming Authentication has another Public Key (or a proxy in front of "
               "Bitbucket rewrites the Host header).";
        todo = "Ask a Portico admin to paste the Public Key from the integration's page in Portico into the "
               "application link's Incoming Authentication in Bitbucket, then start again.";
    } else if (!strcmp(d, "timestamp_refused")) {
        status = 502;
        title = "The clocks of Portico and Bitbucket disagree";
        what = "Bitbucket refused Portico's signed request because its time is too far from Bitbucket's own. "
               "OAuth 1 works only when the clocks of Portico and Bitbucket agree within a few minutes.";
        todo = "Ask your operator to synchronise the clocks of the Portico and Bitbucket servers (NTP), then start "
               "again.";
    } else if (!strcmp(d, "nonce_used")) {
        status = 502;
        title = "Bitbucket refused a repeated request";
        what = "Bitbucket has already seen one of Portico's signed requests for this sign-in.";
    } else if (!strcmp(d, "token_rejected") || !strcmp(d, "token_expired") || !strcmp(d, "permission_unknown")) {
        status = 400;
        title = "Bitbucket no longer accepts this sign-in";
        what = "Bitbucket refused the sign-in's request token: it was already used, or the sign-in took too long.";
    } else if (!strcmp(d, "parameter_absent") || !strcmp(d, "parameter_rejected") || !strcmp(d, "version_rejected") ||
               !strcmp(d, "oauth1_keys") || !strcmp(d, "no_oauth1")) {
        status = 502;
        title = "Bitbucket refused Portico's OAuth 1 request";
        snprintf(what_buf, sizeof what_buf, "%s.", err->message);
        what = what_buf;
        todo = "Ask a Portico admin to check the integration (Test connection on its page).";
    } else if (!strcmp(d, "oauth_version") || !strcmp(d, "client_id")) {
        title = "This Bitbucket integration cannot be used to log in";
        snprintf(what_buf, sizeof what_buf, "%s.", err->message);
        what = what_buf;
        todo = "Ask a Portico admin to check the integration.";
    } else {
        switch (err->code) {
        case PORTICO__ERROR_CODE__UNAVAILABLE:
            if (!strcmp(d, "unreachable")) {
                title = "Bitbucket is not reachable";
                what = "Portico could not connect to Bitbucket to finish your sign-in.";
            } else {
                title = "Sign-in is unavailable";
                what = "A Portico service needed for signing in is not running.";
            }
            todo = "Wait a moment and try again. If it keeps happening, tell your Portico operator.";
            break;
        case PORTICO__ERROR_CODE__TIMEOUT:
            title = "Bitbucket took too long to answer";
            what = "Portico waited for Bitbucket, but it did not answer in time.";
            todo = "Wait a moment and start again. If it keeps happening, tell your Bitbucket administrator.";
            break;
        case PORTICO__ERROR_CODE__TLS:
            title = "Secure connection to Bitbucket failed";
            what = "Portico could not verify Bitbucket's HTTPS certificate, so it did not send your sign-in.";
            todo = "Ask a Portico admin to check the integration's CA certificate.";
            break;
        case PORTICO__ERROR_CODE__RATE_LIMITED:
            title = "Bitbucket is limiting requests";
            what = "Bitbucket asked Portico to slow down.";
            todo = "Wait a minute and start again.";
            break;
        case PORTICO__ERROR_CODE__UPSTREAM:
            title = "Bitbucket answered something unexpected";
            what = "Portico could not use Bitbucket's answer to sign you in.";
            todo = "Start again. If it keeps happening, give the reference below to your Portico operator.";
            break;
        default:
            title = "Sign-in did not work";
            what = "Something went wrong while signing you in.";
            todo = "Start again. If it keeps happening, give the reference below to your Portico operator.";
            break;
        }
    }
    char q[100];
    log_info("login error page", "code=%s detail=%s status=%d", bus_code_name(err->code), log_quote(d, q, sizeof q),
             status);
    /* The error page itself offers the way back. */
    sbuf_t b;
    sbuf_init(&b);
    page_begin(&b, r, title);
    sbuf_puts(&b, "<section class=\"card error-page\"><h1>");
    sbuf_html(&b, title);
    sbuf_puts(&b, "</h1><p>");
    sbuf_html(&b, what);
    sbuf_puts(&b, "</p><p class=\"todo\">");
    sbuf_html(&b, todo);
    sbuf_printf(&b, "</p><p><a class=\"button\" href=\"%s/login\">Go to the login page</a></p>", web_cfg.public_path);
    sbuf_printf(&b, "<p class=\"muted\">Reference: %s</p></section>", r->request_id);
    page_end(&b);
    web_send_html(r, status, &b);
    sbuf_free(&b);
}

/* ---- pages ---- */

static void h_home(web_req_t *r)
{
    const web_session_t *s = web_session(r);
    sbuf_t b;
    sbuf_init(&b);
    page_begin(&b, r, "Home");
    sbuf_puts(&b, "<h1>Portico</h1><section class=\"card\">");
    if (s && s->user_id) {
        sbuf_puts(&b, "<p>You are signed in as <strong>");
        sbuf_html(&b, s->display_name[0] ? s->display_name : s->user_name);
        sbuf_printf(&b, "</strong>.</p><p><a class=\"button\" href=\"%s/account\">Your account and repositories</a>",
                    web_cfg.public_path);
        if (s->is_admin)
            sbuf_printf(&b, " <a class=\"button secondary\" href=\"%s/admin\">Admin</a>", web_cfg.public_path);
        sbuf_puts(&b, "</p>");
    } else {
        sbuf_puts(&b, "<p>Log in with your Bitbucket account to see the repositories you can read.</p>");
        s_login_list(&b, r, DEFAULT_RETURN_TO);
    }
    sbuf_puts(&b, "</section>");
    page_end(&b);
    web_send_html(r, 200, &b);
    sbuf_free(&b);
}

static void h_login(web_req_t *r)
{
    char return_to[1100];
    s_return_to(r, return_to, sizeof return_to);
    const web_session_t *s = web_session(r);
    sbuf_t b;
    sbuf_init(&b);
    page_begin(&b, r, "Log in");
    sbuf_puts(&b, "<h1>Log in</h1><section class=\"card\">");
    if (s && s->user_id) {
        sbuf_puts(&b, "<p>You are already signed in as <strong>");
        sbuf_html(&b, s->display_name[0] ? s->display_name : s->user_name);
        sbuf_printf(&b, "</strong>: <a href=\"%s/account\">go to your account</a>, or log in again below.</p>",
                    web_cfg.public_path);
    }
    sbuf_puts(&b, "<p>Portico signs you in with your Bitbucket account. Bitbucket asks you to allow Portico to "
                  "read your repositories; Portico never sees your Bitbucket password.</p>");
    s_login_list(&b, r, return_to);
    sbuf_puts(&b, "</section>");
    page_end(&b);
    web_send_html(r, 200, &b);
    sbuf_free(&b);
}

static void h_login_start(web_req_t *r)
{
    /* Each start stores a pending login (and, for OAuth 1, makes a signed
     * call to Bitbucket): a budget per client. */
    if (!web_rate_ok(r, "login_start", web_cfg.login_rate, true))
        return;
    int64_t id = s_path_id(r, "/login/start/");
    if (id <= 0) {
        web_error_page(r, 404, "Page not found", "There is no Bitbucket integration at this address.",
                       "Start from the login page.");
        return;
    }
    char return_to[1100];
    s_return_to(r, return_to, sizeof return_to);

    /* Reuse this browser's binding while it is valid, so two logins started
     * in two tabs both finish; a browser without one gets a fresh value. */
    char binding[64];
    if (web_cookie(r, web_cfg.login_cookie, binding, sizeof binding) < 0 || !s_b64url_token(binding, BINDING_LEN)) {
        if (crypto_random_token(32, binding, sizeof binding) < 0) {
            web_error_page(r, 500, "Something went wrong", "Portico could not start the sign-in.", "Try again.");
            return;
        }
    }
    uint8_t hash[32];
    crypto_sha256(binding, strlen(binding), hash);

    Portico__Broker__StartLoginRequest q = PORTICO__BROKER__START_LOGIN_REQUEST__INIT;
    q.integration_id = id;
    q.return_to = return_to;
    q.browser_hash.data = hash;
    q.browser_hash.len = sizeof hash;
    q.addr = r->addr;
    Portico__Broker__StartLoginReply *rep = NULL;
    bus_error_t err;
    if (broker_call_login_start(r->clients->broker, &q, &rep, (int)web_cfg.login_timeout_ms, &err) < 0) {
        explicit_bzero(binding, sizeof binding);
        s_login_error(r, &err);
        return;
    }
    if (strncmp(rep->authorize_url, "https://", 8) != 0 && strncmp(rep->authorize_url, "http://", 7) != 0) {
        protobuf_c_message_free_unpacked(&rep->base, NULL);
        explicit_bzero(binding, sizeof binding);
        web_error_page(r, 502, "Something went wrong", "Portico could not build the address of Bitbucket.",
                       "Ask a Portico admin to check the integration's Base URL.");
        return;
    }
    /* The binding cookie lives as long as a pending login may. */
    web_add_cookie(r, web_cfg.login_cookie, binding, web_cfg.login_ttl_s, "/");
    explicit_bzero(binding, sizeof binding);
    web_redirect(r, rep->authorize_url);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
}

static void h_callback(web_req_t *r)
{
    /* The callback URL carries the code: it must not leak through Referer. */
    r->referrer_policy = "no-referrer";
    if (!web_rate_ok(r, "callback", web_cfg.callback_rate, true))
        return;
    int64_t id = s_path_id(r, "/oauth/callback/");
    if (id <= 0) {
        web_error_page(r, 404, "Page not found", "There is no Bitbucket integration at this address.",
                       "Start from the login page.");
        return;
    }
    /* OAuth 2 answers with state and code (or error); OAuth 1 with
     * oauth_token and oauth_verifier. The broker tells them apart. */
    char state[600], code[2100], error[80], oauth_token[600], verifier[600];
    bus_error_t err = {0};
    int ns = web_query(r, "state", state, sizeof state);
    if (web_query(r, "code", code, sizeof code) < 0)
        code[0] = '\0';
    if (web_query(r, "error", error, sizeof error) == -2)
        snprintf(error, sizeof error, "provider_error");
    int nt = web_query(r, "oauth_token", oauth_token, sizeof oauth_token);
    if (web_query(r, "oauth_verifier", verifier, sizeof verifier) < 0)
        verifier[0] = '\0';
    if (ns == -2 || nt == -2) {
        err.code = PORTICO__ERROR_CODE__NOT_FOUND;
        snprintf(err.detail, sizeof err.detail, "state_unknown");
        s_login_error(r, &err);
        return;
    }
    char binding[64];
    uint8_t hash[32];
    bool bound =
        web_cookie(r, web_cfg.login_cookie, binding, sizeof binding) >= 0 && s_b64url_token(binding, BINDING_LEN);
    if (bound)
        crypto_sha256(binding, strlen(binding), hash);
    explicit_bzero(binding, sizeof binding);

    Portico__Broker__FinishLoginRequest q = PORTICO__BROKER__FINISH_LOGIN_REQUEST__INIT;
    q.integration_id = id;
    q.state = state;
    q.code = code;
    q.error = error;
    q.oauth_token = oauth_token;
    q.oauth_verifier = verifier;
    q.browser_hash.data = bound ? hash : NULL;
    q.browser_hash.len = bound ? sizeof hash : 0;
    q.addr = r->addr;
    /* The new session (rotation at login) is started by the registry in the
     * login's own transaction: it gets only the SHA-256 of the cookie. */
    char session[64];
    uint8_t session_hash[32];
    if (web_session_token(session, sizeof session, session_hash) < 0) {
        web_error_page(r, 500, "Something went wrong", "Portico could not start your session.", "Try again.");
        return;
    }
    q.session_hash.data = session_hash;
    q.session_hash.len = sizeof session_hash;
    /* Setup Mode belongs to whoever proved the setup token: only a login in
     * the browser holding that Setup Mode session may make the first admin
     * (the binding cookie already ties this callback to the browser that
     * started the login). */
    const web_session_t *current = web_session(r);
    uint8_t setup_hash[32];
    if (current && current->setup && current->user_id == 0 && r->session_token[0]) {
        crypto_sha256(r->session_token, strlen(r->session_token), setup_hash);
        q.setup_session_hash.data = setup_hash;
        q.setup_session_hash.len = sizeof setup_hash;
    }
    q.session_idle_seconds = (int32_t)web_cfg.session_idle_s;
    q.session_absolute_seconds = (int32_t)web_cfg.session_max_s;
    Portico__Broker__FinishLoginReply *rep = NULL;
    int rc = broker_call_login_finish(r->clients->broker, &q, &rep, (int)web_cfg.login_timeout_ms, &err);
    explicit_bzero(code, sizeof code);
    explicit_bzero(state, sizeof state);
    explicit_bzero(oauth_token, sizeof oauth_token);
    explicit_bzero(verifier, sizeof verifier);
    if (rc < 0) {
        explicit_bzero(session, sizeof session);
        s_login_error(r, &err);
        return;
    }
    char return_to[1100];
    snprintf(return_to, sizeof return_to, "%s", url_is_local_path(rep->return_to) ? rep->return_to : DEFAULT_RETURN_TO);
    int64_t user_id = rep->user_id;
    bool started = rep->session_started;
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    /* Only the registry starts sessions, in the login's own transaction:
     * a worker's word ("signed in as user N") never starts one here. */
    if (!started || user_id <= 0) {
        explicit_bzero(session, sizeof session);
        log_warn("a login finished without a session", "integration=%lld", (long long)id);
        web_error_page(r, 502, "Sign-in failed", "Portico could not start your session.", "Try signing in again.");
        return;
    }
    web_session_started(r, user_id, session);
    explicit_bzero(session, sizeof session);
    web_add_cookie(r, web_cfg.login_cookie, "", 0, "/");
    log_info("signed in", "user=%lld integration=%lld", (long long)user_id, (long long)id);
    web_redirect(r, return_to);
}

static void h_logout(web_req_t *r)
{
    /* Without a session there is nothing to end (and no CSRF token to
     * check): just go home. */
    if (!web_session(r)) {
        web_session_end(r);
        web_redirect(r, "/");
        return;
    }
    if (!web_post_ok(r))
        return;
    web_session_end(r);
    web_redirect(r, "/");
}

const web_route_t web_login_routes[] = {
    {"GET", "/", false, h_home, "home"},
    {"GET", "/login", false, h_login, "login"},
    {"GET", "/login/start/", true, h_login_start, "login_start"},
    {"GET", "/oauth/callback/", true, h_callback, "oauth_callback"},
    {"POST", "/logout", false, h_logout, "logout"},
    {0},
};
