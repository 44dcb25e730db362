/* Sessions and CSRF. The cookie holds 256 random bits; the registry stores
 * only their SHA-256. The CSRF token is derived from the cookie value, so it
 * is bound to the session and needs no storage of its own. */
#include "web.h"

#include "crypto.h"
#include "log.h"
#include "registry.pb-c.h"

#include <stdio.h>
#include <string.h>

static void s_csrf_for(const char *token, char *out, size_t out_size)
{
    char input[96];
    snprintf(input, sizeof input, "portico-csrf:%s", token);
    uint8_t d[32];
    crypto_sha256(input, strlen(input), d);
    crypto_b64url_encode(d, 24, out, out_size);
}

static void s_hash_token(const char *token, uint8_t out[32])
{
    crypto_sha256(token, strlen(token), out);
}

const web_session_t *web_session(web_req_t *r)
{
    if (r->session_state)
        return r->session_state == 2 ? &r->session : NULL;
    r->session_state = 1;
    char token[64];
    int n = web_cookie(r, web_cfg.session_cookie, token, sizeof token);
    if (n != 43) /* 32 bytes in base64url */
        return NULL;
    uint8_t hash[32];
    s_hash_token(token, hash);
    Portico__Registry__LookupSessionRequest req = PORTICO__REGISTRY__LOOKUP_SESSION_REQUEST__INIT;
    req.token_hash.data = hash;
    req.token_hash.len = sizeof hash;
    Portico__Registry__LookupSessionReply *rep = NULL;
    bus_error_t err;
    if (bus_call(r->clients->registry, "session.lookup", &req.base,
                 &portico__registry__lookup_session_reply__descriptor, (ProtobufCMessage **)&rep,
                 (int)web_cfg.bus_timeout_ms, &err) < 0)
        return NULL;
    if (rep->session) {
        web_session_t *s = &r->session;
        s->user_id = rep->session->user_id;
        s->setup = rep->session->setup;
        s->is_admin = rep->session->is_admin;
        s->setup_mode = rep->session->setup_mode;
        snprintf(s->user_name, sizeof s->user_name, "%s", rep->session->user_name);
        snprintf(s->display_name, sizeof s->display_name, "%s", rep->session->display_name);
        snprintf(r->session_token, sizeof r->session_token, "%s", token);
        s_csrf_for(token, s->csrf, sizeof s->csrf);
        r->session_state = 2;
    }
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    return r->session_state == 2 ? &r->session : NULL;
}

void web_add_cookie(web_req_t *r, const char *name, const char *value, long max_age_s, const char *path)
{
    if (r->nset_cookie == WEB_MAX_SET_COOKIES)
        return;
    snprintf(r->set_cookie[r->nset_cookie++], sizeof r->set_cookie[0],
             "%s=%s; Path=%s; Max-Age=%ld; HttpOnly; SameSite=Lax%s", name, value, path ? path : "/", max_age_s,
             web_cfg.secure ? "; Secure" : "");
}

static void s_delete_on_server(web_req_t *r, const char *token)
{
    uint8_t hash[32];
    s_hash_token(token, hash);
    Portico__Registry__DeleteSessionRequest req = PORTICO__REGISTRY__DELETE_SESSION_REQUEST__INIT;
    req.token_hash.data = hash;
    req.token_hash.len = sizeof hash;
    bus_error_t err;
    if (bus_call(r->clients->registry, "session.delete", &req.base, NULL, NULL, (int)web_cfg.bus_timeout_ms, &err) < 0)
        log_warn("could not end session", "code=%s", bus_code_name(err.code));
}

int web_session_start(web_req_t *r, int64_t user_id, bool setup, bus_error_t *err)
{
    char old[64];
    if (web_cookie(r, web_cfg.session_cookie, old, sizeof old) == 43)
        s_delete_on_server(r, old);
    char token[64];
    if (crypto_random_token(32, token, sizeof token) < 0) {
        snprintf(err->message, sizeof err->message, "could not create a session");
        err->code = PORTICO__ERROR_CODE__INTERNAL;
        return -1;
    }
    uint8_t hash[32];
    s_hash_token(token, hash);
    Portico__Registry__CreateSessionRequest req = PORTICO__REGISTRY__CREATE_SESSION_REQUEST__INIT;
    req.token_hash.data = hash;
    req.token_hash.len = sizeof hash;
    req.user_id = user_id;
    req.setup = setup;
    req.idle_seconds = (int32_t)web_cfg.session_idle_s;
    req.absolute_seconds = (int32_t)web_cfg.session_max_s;
    req.addr = r->addr;
    if (bus_call(r->clients->registry, "session.create", &req.base, NULL, NULL, (int)web_cfg.bus_timeout_ms, err) < 0)
        return -1;
    web_add_cookie(r, web_cfg.session_cookie, token, web_cfg.session_max_s, "/");
    snprintf(r->session_token, sizeof r->session_token, "%s", token);
    r->session_state = 0; /* look it up again if asked */
    return 0;
}

void web_session_end(web_req_t *r)
{
    char token[64];
    if (web_cookie(r, web_cfg.session_cookie, token, sizeof token) == 43)
        s_delete_on_server(r, token);
    web_add_cookie(r, web_cfg.session_cookie, "", 0, "/");
    r->session_state = 1;
}

bool web_same_origin(web_req_t *r)
{
    const char *site = web_header(r, "Sec-Fetch-Site");
    if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
        return false;
    const char *origin = web_header(r, "Origin");
    if (!origin)
        return true; /* non-browser clients; the CSRF token still applies */
    return strcmp(origin, web_cfg.public_origin) == 0;
}

bool web_post_ok(web_req_t *r)
{
    if (!web_same_origin(r)) {
        log_warn("refused a cross-site request", "path=%s", r->ri->local_uri);
        web_error_page(r, 403, "Request refused",
                       "This form was sent from another site, or from an address other than the one Portico is "
                       "configured for.",
                       "Open Portico at its configured address and try again.");
        return false;
    }
    const web_session_t *s = web_session(r);
    char token[64];
    int n = web_form(r, "csrf", token, sizeof token);
    if (!s || n <= 0 || !crypto_str_equal(token, s->csrf)) {
        log_warn("refused a request without a valid CSRF token", "path=%s", r->ri->local_uri);
        web_error_page(r, 403, "Request refused", "This form has expired or did not come from this Portico session.",
                       "Go back, reload the page and send the form again.");
        return false;
    }
    return true;
}
