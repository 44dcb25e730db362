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
#include "login_pages.h"
#include "reply.h"

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

/* The enabled integrations, for every login page: kept in web_cache as
 * long as a session is (an admin change through this web forgets it at
 * once, one elsewhere shows within that time). */
static Portico__Registry__ListIntegrationsReply *s_enabled_integrations(web_req_t *r, bus_error_t *err)
{
    static const uint8_t key[] = "integrations";
    bool cached = web_cache && web_cfg.session_cache_ms > 0;
    if (cached) {
        size_t n = 0;
        uint8_t *packed = webcache_get_copy(web_cache, key, sizeof key, web_cache_now(), &n);
        if (packed) {
            Portico__Registry__ListIntegrationsReply *hit =
                portico__registry__list_integrations_reply__unpack(NULL, n, packed);
            free(packed);
            if (hit)
                return hit;
        }
    }
    uint64_t epoch = cached ? webcache_epoch(web_cache) : 0;
    Portico__Registry__ListIntegrationsRequest q = PORTICO__REGISTRY__LIST_INTEGRATIONS_REQUEST__INIT;
    q.only_enabled = true;
    Portico__Registry__ListIntegrationsReply *rep = NULL;
    if (registry_call_integration_list(web_registry(r), &q, &rep, (int)web_cfg.bus_timeout_ms, err) < 0)
        return NULL;
    size_t n = cached ? portico__registry__list_integrations_reply__get_packed_size(rep) : 0;
    uint8_t *packed = cached ? malloc(n ? n : 1) : NULL;
    if (packed) {
        portico__registry__list_integrations_reply__pack(rep, packed);
        webcache_put(web_cache, epoch, key, sizeof key, 0, packed, n, web_cache_now() + web_cfg.session_cache_ms);
        free(packed);
    }
    return rep;
}

static Portico__Registry__Settings *s_settings(web_req_t *r)
{
    Portico__Registry__Settings *rep = NULL;
    bus_error_t err;
    if (registry_call_settings_get(web_registry(r), NULL, &rep, (int)web_cfg.bus_timeout_ms, &err) < 0)
        return NULL;
    return rep;
}

/* The values of the "Log in with ..." links (templates/login_list.html),
 * or of what to do when there are none. */
static void s_login_list(tmpl_ctx_t *c, web_req_t *r, const char *return_to)
{
    bus_error_t err;
    tmpl_set_list(c, "logins");
    tmpl_set_bool(c, "nobody", false);
    tmpl_set_bool(c, "setup_mode", false);
    Portico__Registry__ListIntegrationsReply *list = s_enabled_integrations(r, &err);
    tmpl_set_bool(c, "list_loaded", list != NULL);
    if (!list) {
        page_notice(c, "error",
                    "Portico cannot list its Bitbucket integrations right now: one of its services is not "
                    "answering. Wait a moment and reload this page.");
        return;
    }
    sbuf_t enc;
    sbuf_init(&enc);
    sbuf_urlenc(&enc, return_to);
    tmpl_set(c, "return_enc", enc.data ? enc.data : "");
    sbuf_free(&enc);
    size_t shown = 0;
    for (size_t i = 0; i < list->n_integrations; i++) {
        const Portico__Registry__Integration *in = list->integrations[i];
        if (!in || !in->enabled)
            continue;
        tmpl_ctx_t *item = tmpl_add(c, "logins");
        tmpl_set_int(item, "login_id", (long long)in->id);
        tmpl_set(item, "login_name", in->name[0] ? in->name : in->base_url);
        shown++;
    }
    protobuf_c_message_free_unpacked(&list->base, NULL);
    if (shown)
        return;
    tmpl_set_bool(c, "nobody", true);
    Portico__Registry__Settings *st = s_settings(r);
    tmpl_set_bool(c, "setup_mode", st && st->setup_mode);
    if (st)
        protobuf_c_message_free_unpacked(&st->base, NULL);
}

/* The page for a login that did not work: what happened and what to do,
 * from the error's code and detail (login_pages.c), never its internals. */
static void s_login_error(web_req_t *r, const bus_error_t *err)
{
    const login_page_t *p = login_page_for(err->code, err->detail);
    int status = p->status ? p->status : web_status_for(err);
    const char *title = p->title, *what = p->what, *next_step = p->next_step;
    char what_buf[400];
    if (p->retry_after_s > 0)
        r->retry_after_s = p->retry_after_s;
    if (p->message == LOGIN_PAGE_MESSAGE_WHAT) {
        snprintf(what_buf, sizeof what_buf, "%s.", err->message);
        what = what_buf;
    } else if (p->message == LOGIN_PAGE_MESSAGE_NEXT_STEP && err->message[0]) {
        snprintf(what_buf, sizeof what_buf, "%s", err->message);
        next_step = what_buf;
    }
    log_info("login error page", "code=%s detail=%s status=%d", bus_code_name(err->code), bus_detail_name(err->detail),
             status);
    /* The error page itself offers the way back (templates/login_error.html). */
    tmpl_ctx_t *c = web_page_ctx(r, title);
    tmpl_set(c, "what", what);
    tmpl_set(c, "next_step", next_step);
    tmpl_set(c, "request_id", r->request_id);
    web_page(r, status, "login_error", &c);
}

/* ---- pages ---- */

static void h_home(web_req_t *r)
{
    const web_session_t *s = web_session(r);
    tmpl_ctx_t *c = web_page_ctx(r, "Home");
    tmpl_set_bool(c, "signed_in", s && s->user_id);
    tmpl_set_bool(c, "is_admin", s && s->is_admin);
    if (!s || !s->user_id)
        s_login_list(c, r, DEFAULT_RETURN_TO);
    web_page(r, 200, "home", &c);
}

static void h_login(web_req_t *r)
{
    char return_to[1100];
    s_return_to(r, return_to, sizeof return_to);
    const web_session_t *s = web_session(r);
    tmpl_ctx_t *c = web_page_ctx(r, "Log in");
    tmpl_set_bool(c, "signed_in", s && s->user_id);
    s_login_list(c, r, return_to);
    web_page(r, 200, "login", &c);
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
    if (brokerq_call(web_brokerq, &broker_m_login_start, &q.base, (ProtobufCMessage **)&rep,
                     (int)web_cfg.login_timeout_ms, &err) < 0) {
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
        err.detail = DETAIL(STATE_UNKNOWN);
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
    /* With the caches on, the page after the login comes with the login. */
    if (web_cache && web_cfg.session_cache_ms > 0 && web_cfg.repos_cache_ms > 0)
        q.account_repositories = WEB_REPOS_PAGE_SIZE;
    Portico__Broker__FinishLoginReply *rep = NULL;
    int rc = brokerq_call(web_brokerq, &broker_m_login_finish, &q.base, (ProtobufCMessage **)&rep,
                          (int)web_cfg.login_timeout_ms, &err);
    explicit_bzero(code, sizeof code);
    explicit_bzero(state, sizeof state);
    explicit_bzero(oauth_token, sizeof oauth_token);
    explicit_bzero(verifier, sizeof verifier);
    if (rc < 0) {
        explicit_bzero(session, sizeof session);
        /* A sign-in link used again by a browser that is signed in already
         * (Back to Bitbucket's consent page and Allow once more, or a
         * double click on Allow) finished a moment ago: its account, not
         * "expired, start again". So does a second tab's login when the
         * first one's finished (and cleared the binding cookie they
         * shared): not "started in another browser". Nothing is signed in
         * here that was not. */
        bool used = err.detail == DETAIL(STATE_UNKNOWN) || err.detail == DETAIL(STATE_EXPIRED) ||
                    (!bound && err.detail == DETAIL(BROWSER));
        if (used && current && current->user_id > 0 && !current->setup) {
            web_redirect(r, DEFAULT_RETURN_TO);
            return;
        }
        s_login_error(r, &err);
        return;
    }
    char return_to[1100];
    snprintf(return_to, sizeof return_to, "%s", url_is_local_path(rep->return_to) ? rep->return_to : DEFAULT_RETURN_TO);
    int64_t user_id = rep->user_id;
    bool started = rep->session_started;
    /* Only the registry starts sessions, in the login's own transaction:
     * a worker's word ("signed in as user N") never starts one here. */
    if (!started || user_id <= 0) {
        protobuf_c_message_free_unpacked(&rep->base, NULL);
        explicit_bzero(session, sizeof session);
        log_warn("a login finished without a session", "integration=%lld", (long long)id);
        web_error_page(r, 502, "Sign-in failed", "Portico could not start your session.", "Try signing in again.");
        return;
    }
    web_session_started(r, user_id, session);
    if (rep->user && rep->user->id == user_id) {
        web_session_prime(session, rep->user);
        web_account_prime(rep->user, rep->repositories);
    }
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    explicit_bzero(session, sizeof session);
    web_add_cookie(r, web_cfg.login_cookie, "", 0, "/");
    log_debug("signed in", "user=%lld integration=%lld", (long long)user_id, (long long)id);
    web_redirect(r, return_to);
}

static void h_logout(web_req_t *r)
{
    /* Without a session there is nothing to end (and no CSRF token to
     * check): just go home. When the registry cannot say, nothing can be
     * ended either: saying "logged out" then would be a lie. */
    bus_error_t err;
    if (web_session(r)) {
        if (!web_post_ok(r))
            return;
    } else if (web_session_unknown(r, "Could not log you out")) {
        return;
    }
    if (web_session_end(r, &err) < 0) {
        web_bus_error_page(r, &err, "Could not log you out");
        return;
    }
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
