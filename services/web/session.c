/* Sessions and CSRF. The cookie holds 256 random bits; the registry stores
 * only their SHA-256. The CSRF token is derived from the cookie value, so it
 * is bound to the session and needs no storage of its own.
 *
 * The session cache. A session the registry confirmed is remembered in
 * web_cache under the SHA-256 of its cookie (never the cookie) for
 * PORTICO_SESSION_CACHE_SECONDS (5 s), and never past the idle expiry the
 * registry gave with it (which the absolute lifetime also bounds). Only
 * sessions that exist are remembered. What this web changes is forgotten at
 * once: logout and the rotation at login forget that user's entries, and
 * every admin action (ending a user's sessions, granting or revoking admin,
 * Setup Mode, integrations) forgets everything; a lookup that was on its
 * way during such a change is not stored (webcache's epoch). Admin pages
 * always ask the registry. So the only staleness is for changes made
 * elsewhere (the registry's CLI, or the database by hand): a session ended
 * or a role or Setup Mode changed there is still seen as before by
 * non-admin pages of this web for at most the cache time. While requests
 * are answered from the cache the registry does not see them, so the idle
 * timeout slides at least once per cache time instead of on every request. */
#include "bus_methods.h"
#include "session.h"

#include "crypto.h"
#include "log.h"
#include "metrics.h"
#include "registry.pb-c.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t web_cache_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void web_cache_forget_user(int64_t user_id)
{
    if (web_cache)
        webcache_remove_owner(web_cache, user_id);
}

void web_cache_forget_all(void)
{
    if (web_cache)
        webcache_clear(web_cache);
}

/* 's' and the SHA-256 of the cookie. */
static void s_cache_key(const uint8_t hash[32], uint8_t key[33])
{
    key[0] = 's';
    memcpy(key + 1, hash, 32);
}

/* Forget the cached session. fence: also fail the puts in flight (a
 * session ended here); without, only when it was cached (webcache_forget:
 * a made-up cookie must not disturb the cache). */
static void s_forget_session(const uint8_t hash[32], bool fence)
{
    uint8_t key[33];
    if (!web_cache)
        return;
    s_cache_key(hash, key);
    if (fence)
        webcache_remove(web_cache, key, sizeof key);
    else
        webcache_forget(web_cache, key, sizeof key);
}

void web_csrf_derive(const char *purpose, const char *secret, char *out, size_t out_size)
{
    char input[128];
    snprintf(input, sizeof input, "%s:%s", purpose, secret);
    uint8_t d[32];
    crypto_sha256(input, strlen(input), d);
    crypto_b64url_encode(d, 24, out, out_size);
}

/* The CSRF token of a session: derived from its cookie, so it needs no
 * storage and ends with the session. */
static void s_csrf_for(const char *token, char *out, size_t out_size)
{
    web_csrf_derive("portico-csrf", token, out, out_size);
}

static void s_hash_token(const char *token, uint8_t out[32])
{
    crypto_sha256(token, strlen(token), out);
}

int web_session_local(web_req_t *r, uint8_t hash[32], uint64_t *epoch)
{
    if (r->session_state)
        return r->session_state == 2 ? 1 : -1;
    r->session_state = 1;
    r->session_err.code = PORTICO__ERROR_CODE__OK;
    char token[64];
    int n = web_cookie(r, web_cfg.session_cookie, token, sizeof token);
    if (n != 43) /* 32 bytes in base64url */
        return -1;
    uint8_t key[33];
    s_hash_token(token, hash);
    s_cache_key(hash, key);
    web_session_t *s = &r->session;
    bool cached = web_cache && web_cfg.session_cache_ms > 0;
    if (cached && !r->session_fresh &&
        webcache_get(web_cache, key, sizeof key, web_cache_now(), s, sizeof *s) == (long)sizeof *s) {
        metrics_inc("portico_web_cache_total", "cache=\"session\",result=\"hit\"", 1);
        snprintf(r->session_token, sizeof r->session_token, "%s", token);
        s_csrf_for(token, s->csrf, sizeof s->csrf);
        r->session_state = 2;
        return 1;
    }
    if (cached)
        metrics_inc("portico_web_cache_total", "cache=\"session\",result=\"miss\"", 1);
    *epoch = cached ? webcache_epoch(web_cache) : 0;
    return 0;
}

const web_session_t *web_session_confirmed(web_req_t *r, const uint8_t hash[32], uint64_t epoch,
                                           const Portico__Registry__Session *rs)
{
    bool cached = web_cache && web_cfg.session_cache_ms > 0;
    char token[64];
    if (!rs || web_cookie(r, web_cfg.session_cookie, token, sizeof token) != 43) {
        /* Gone (or unreadable): forget it here too, if it was cached. */
        if (cached)
            s_forget_session(hash, false);
        r->session_state = 1;
        return NULL;
    }
    web_session_t *s = &r->session;
    memset(s, 0, sizeof *s);
    s->user_id = rs->user_id;
    s->setup = rs->setup;
    s->is_admin = rs->is_admin;
    s->setup_mode = rs->setup_mode;
    snprintf(s->user_name, sizeof s->user_name, "%s", rs->user_name);
    snprintf(s->display_name, sizeof s->display_name, "%s", rs->display_name);
    if (cached) {
        /* Never past the idle expiry the registry just gave. */
        uint8_t key[33];
        s_cache_key(hash, key);
        int64_t now = web_cache_now(), left_ms = rs->expires_at * 1000 - bus_now_ms();
        int64_t ttl = left_ms < web_cfg.session_cache_ms ? left_ms : web_cfg.session_cache_ms;
        if (ttl > 0)
            webcache_put(web_cache, epoch, key, sizeof key, s->user_id, s, sizeof *s, now + ttl);
    }
    snprintf(r->session_token, sizeof r->session_token, "%s", token);
    s_csrf_for(token, s->csrf, sizeof s->csrf);
    r->session_state = 2;
    return s;
}

const web_session_t *web_session(web_req_t *r)
{
    uint8_t hash[32];
    uint64_t epoch = 0;
    int known = web_session_local(r, hash, &epoch);
    if (known)
        return known > 0 ? &r->session : NULL;
    return web_session_lookup(r, hash, epoch);
}

const web_session_t *web_session_lookup(web_req_t *r, const uint8_t hash[32], uint64_t epoch)
{
    Portico__Registry__LookupSessionRequest req = PORTICO__REGISTRY__LOOKUP_SESSION_REQUEST__INIT;
    req.token_hash.data = (uint8_t *)(uintptr_t)hash;
    req.token_hash.len = 32;
    req.with_user = r->session_with_user;
    Portico__Registry__LookupSessionReply *rep = NULL;
    bus_error_t err;
    if (registry_call_session_lookup(web_registry(r), &req, &rep, (int)web_cfg.bus_timeout_ms, &err) < 0) {
        /* Any failure other than "gone" is not an answer:
         * web_session_unknown() (reply.h) tells the pages. */
        if (err.code == PORTICO__ERROR_CODE__NOT_FOUND || err.code == PORTICO__ERROR_CODE__BAD_REQUEST)
            web_session_confirmed(r, hash, epoch, NULL);
        else
            r->session_err = err;
        return NULL;
    }
    const web_session_t *s = web_session_confirmed(r, hash, epoch, rep->session);
    web_session_release(r);
    if (s && rep->user && rep->user->id == s->user_id) {
        r->session_user = rep->user;
        r->session_reply = rep;
    } else {
        protobuf_c_message_free_unpacked(&rep->base, NULL);
    }
    return s;
}

void web_session_release(web_req_t *r)
{
    if (r->session_reply)
        protobuf_c_message_free_unpacked(r->session_reply, NULL);
    r->session_reply = NULL;
    r->session_user = NULL;
}

void web_add_cookie(web_req_t *r, const char *name, const char *value, long max_age_s, const char *path)
{
    if (r->nset_cookie == WEB_MAX_SET_COOKIES)
        return;
    snprintf(r->set_cookie[r->nset_cookie++], sizeof r->set_cookie[0],
             "%s=%s; Path=%s; Max-Age=%ld; HttpOnly; SameSite=Lax%s", name, value, path ? path : "/", max_age_s,
             web_cfg.secure ? "; Secure" : "");
}

/* 0, or -1 when the registry could not be asked (err says why). The
 * cached copy is forgotten before and after: a lookup in between may have
 * had the session confirmed live and cached it again. */
static int s_delete_on_server(web_req_t *r, const char *token, bus_error_t *err)
{
    uint8_t hash[32];
    s_hash_token(token, hash);
    s_forget_session(hash, true);
    Portico__Registry__DeleteSessionRequest req = PORTICO__REGISTRY__DELETE_SESSION_REQUEST__INIT;
    req.token_hash.data = hash;
    req.token_hash.len = sizeof hash;
    int rc = registry_call_session_delete(web_registry(r), &req, NULL, (int)web_cfg.bus_timeout_ms, err);
    s_forget_session(hash, true);
    if (rc < 0 && err->code != PORTICO__ERROR_CODE__NOT_FOUND) {
        log_warn("could not end session", "code=%s", bus_code_name(err->code));
        return -1;
    }
    return 0;
}

int web_session_token(char *token, size_t token_size, uint8_t hash[32])
{
    if (crypto_random_token(32, token, token_size) < 0)
        return -1;
    s_hash_token(token, hash);
    return 0;
}

void web_session_started(web_req_t *r, int64_t user_id, const char *token)
{
    char old[64];
    bus_error_t err;
    if (web_cookie(r, web_cfg.session_cookie, old, sizeof old) == 43 && strcmp(old, token) != 0)
        (void)s_delete_on_server(r, old, &err); /* logged; the new session replaces it in this browser */
    /* A new login: what was cached about this user is from before it. */
    if (user_id)
        web_cache_forget_user(user_id);
    web_add_cookie(r, web_cfg.session_cookie, token, web_cfg.session_max_s, "/");
    snprintf(r->session_token, sizeof r->session_token, "%s", token);
    r->session_state = 0; /* look it up again if asked */
}

void web_session_prime(const char *token, const Portico__Registry__User *u)
{
    if (!web_cache || web_cfg.session_cache_ms <= 0 || !u || u->id <= 0)
        return;
    uint64_t epoch = webcache_epoch(web_cache);
    uint8_t hash[32], key[33];
    s_hash_token(token, hash);
    s_cache_key(hash, key);
    /* What session.lookup answers for a fresh user session; Setup Mode
     * matters only on admin pages, which always ask the registry. */
    web_session_t s;
    memset(&s, 0, sizeof s);
    s.user_id = u->id;
    s.is_admin = u->is_admin;
    snprintf(s.user_name, sizeof s.user_name, "%s", u->name);
    snprintf(s.display_name, sizeof s.display_name, "%s", u->display_name);
    int64_t ttl = web_cfg.session_cache_ms;
    if (ttl > web_cfg.session_idle_s * 1000)
        ttl = web_cfg.session_idle_s * 1000;
    webcache_put(web_cache, epoch, key, sizeof key, s.user_id, &s, sizeof s, web_cache_now() + ttl);
}

int web_session_end(web_req_t *r, bus_error_t *err)
{
    char token[64];
    int64_t user = r->session_state == 2 ? r->session.user_id : 0;
    int rc = 0;
    /* Logging out also forgets the user's cached account and repositories
     * (again once the session is gone, as above). */
    if (user)
        web_cache_forget_user(user);
    if (web_cookie(r, web_cfg.session_cookie, token, sizeof token) == 43)
        rc = s_delete_on_server(r, token, err);
    if (user)
        web_cache_forget_user(user);
    if (rc < 0)
        return -1; /* the cookie stays: the session may still be live */
    web_add_cookie(r, web_cfg.session_cookie, "", 0, "/");
    r->session_state = 1;
    return 0;
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

bool web_csrf_ok(web_req_t *r)
{
    const web_session_t *s = web_session(r);
    char token[64];
    int n = web_form(r, "csrf", token, sizeof token);
    return s && n > 0 && crypto_str_equal(token, s->csrf);
}
