/* The signed-in user's page: who you are in Portico and in Bitbucket, and
 * the repositories Bitbucket lets you read, one page at a time. Every value
 * that comes from Bitbucket or an admin is escaped.
 *
 * Both answers behind the page are kept in web_cache for a while, keyed by
 * the user id of the request's session: the account record (user.get) as
 * long as a session is (PORTICO_SESSION_CACHE_SECONDS, 5 s), the repository
 * list per integration, start and page size for
 * PORTICO_REPOSITORY_CACHE_SECONDS (30 s). Errors are never kept. They are
 * forgotten when the user logs in or out, and on any admin change (see
 * session.c); so a repository Bitbucket stopped listing for the user, or a
 * revoked Bitbucket authorization, shows for at most that long.
 *
 * With the repository cache off, a session the web does not hold is not
 * looked up on its own: the broker's list is asked with the session's hash
 * and the registry checks it in the call that reads the credentials
 * (s_with_session), one bus round trip less per page. */
#include "reply.h"

#include "bus_methods.h"

#include "broker.pb-c.h"
#include "log.h"
#include "metrics.h"
#include "registry.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_SIZE WEB_REPOS_PAGE_SIZE
#define MAX_START 10000000

static long s_query_long(web_req_t *r, const char *name, long max)
{
    char v[24];
    if (web_query(r, name, v, sizeof v) <= 0)
        return 0;
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (!end || *end || n < 0 || n > max)
        return 0;
    return n;
}

/* A table cell's text: a dash for nothing. */
static const char *s_cell(const char *text)
{
    return text && *text ? text : "—";
}

static void s_identities(tmpl_ctx_t *c, const Portico__Registry__User *u)
{
    tmpl_set_bool(c, "linked", u && u->n_identities);
    tmpl_set_list(c, "identities");
    for (size_t i = 0; u && i < u->n_identities; i++) {
        const Portico__Registry__Identity *id = u->identities[i];
        if (!id)
            continue;
        char when[40];
        web_format_time(id->last_login_at, when, sizeof when);
        tmpl_ctx_t *row = tmpl_add(c, "identities");
        tmpl_set(row, "integration", s_cell(id->integration_name));
        tmpl_set(row, "username", s_cell(id->username));
        tmpl_set(row, "name", s_cell(id->display_name));
        tmpl_set(row, "email", s_cell(id->email));
        tmpl_set(row, "when", when);
    }
}

/* A cache key: a kind letter and up to four numbers. */
typedef struct {
    uint8_t bytes[1 + 4 * 8];
    size_t len;
} cache_key_t;

static void s_key(cache_key_t *k, char kind, int n, const int64_t *v)
{
    k->bytes[0] = (uint8_t)kind;
    memcpy(k->bytes + 1, v, (size_t)n * sizeof *v);
    k->len = 1 + (size_t)n * sizeof *v;
}

/* A reply kept in web_cache (packed), or fetched with call and kept.
 * Returns the unpacked reply (free it), or NULL with err set. */
static ProtobufCMessage *s_cached_call(web_req_t *r, const bus_method_t *m, const ProtobufCMessage *req,
                                       const cache_key_t *key, int64_t owner, long ttl_ms, int timeout_ms,
                                       bus_error_t *err)
{
    const ProtobufCMessageDescriptor *desc = m->rep;
    bool cached = web_cache && ttl_ms > 0;
    bool repos = key->bytes[0] == 'r';
    const char *hit = repos ? "cache=\"repositories\",result=\"hit\"" : "cache=\"account\",result=\"hit\"";
    const char *miss = repos ? "cache=\"repositories\",result=\"miss\"" : "cache=\"account\",result=\"miss\"";
    if (cached) {
        size_t n = 0;
        uint8_t *packed = webcache_get_copy(web_cache, key->bytes, key->len, web_cache_now(), &n);
        if (packed) {
            ProtobufCMessage *kept = protobuf_c_message_unpack(desc, NULL, n, packed);
            free(packed);
            if (kept) {
                metrics_inc("portico_web_cache_total", hit, 1);
                return kept;
            }
        }
        metrics_inc("portico_web_cache_total", miss, 1);
    }
    uint64_t epoch = cached ? webcache_epoch(web_cache) : 0;
    ProtobufCMessage *rep = NULL;
    if (web_call(r, m, req, &rep, timeout_ms, err) < 0)
        return NULL;
    if (cached) {
        size_t n = protobuf_c_message_get_packed_size(rep);
        uint8_t *packed = malloc(n ? n : 1);
        if (packed) {
            protobuf_c_message_pack(rep, packed);
            webcache_put(web_cache, epoch, key->bytes, key->len, owner, packed, n, web_cache_now() + ttl_ms);
            free(packed);
        }
    }
    return rep;
}

/* Why the repositories are missing, for the notice. */
static void s_repositories_failed(tmpl_ctx_t *c, const Portico__Registry__User *u, int64_t integration_id,
                                  const bus_error_t *err)
{
    int64_t again = integration_id;
    for (size_t i = 0; !again && i < u->n_identities; i++)
        if (u->identities[i])
            again = u->identities[i]->integration_id;
    char dq[100];
    log_info("repositories unavailable", "code=%s detail=%s", bus_code_name(err->code),
             log_quote(bus_detail_name(err->detail), dq, sizeof dq));
    if (err->detail == DETAIL(LOGIN_AGAIN)) {
        page_notice(c, "error", "Your Bitbucket authorization has expired or was revoked: log in again.");
        tmpl_set_bool(c, "login_again", true);
        tmpl_set_int(c, "again_id", (long long)again);
    } else if (err->detail == DETAIL(TFA)) {
        page_notice(c, "error",
                    "Bitbucket treated Portico as anonymous: the \"U2F & TOTP\" two-factor app blocks OAuth "
                    "requests unless its OAuth whitelist allows Portico. Ask your Bitbucket administrator to "
                    "allow Portico there.");
    } else if (err->detail == DETAIL(INTEGRATION_DISABLED)) {
        page_notice(c, "warn", "The Bitbucket integration of your account is disabled: ask a Portico admin.");
    } else if (err->detail == DETAIL(INVALID_CLIENT)) {
        page_notice(c, "error",
                    "Bitbucket refused Portico's client credentials: ask a Portico admin to check the "
                    "integration's Client Secret.");
    } else if (err->code == PORTICO__ERROR_CODE__UNAVAILABLE || err->code == PORTICO__ERROR_CODE__TIMEOUT ||
               err->code == PORTICO__ERROR_CODE__TLS || err->code == PORTICO__ERROR_CODE__RATE_LIMITED ||
               err->code == PORTICO__ERROR_CODE__UPSTREAM) {
        char text[400];
        snprintf(text, sizeof text,
                 "Portico could not get your repositories from Bitbucket right now (%s). "
                 "Reload the page in a moment.",
                 err->code == PORTICO__ERROR_CODE__TIMEOUT        ? "Bitbucket did not answer in time"
                 : err->code == PORTICO__ERROR_CODE__UNAVAILABLE  ? "a service is not reachable"
                 : err->code == PORTICO__ERROR_CODE__TLS          ? "the secure connection failed"
                 : err->code == PORTICO__ERROR_CODE__RATE_LIMITED ? "Bitbucket is limiting requests"
                                                                  : "Bitbucket answered something unexpected");
        page_notice(c, "error", text);
    } else {
        page_notice(c, "error", "Portico could not get your repositories. Reload the page in a moment.");
    }
}

static void s_prime(uint64_t epoch, const cache_key_t *key, int64_t owner, const ProtobufCMessage *m, long ttl_ms)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *packed = malloc(n ? n : 1);
    if (!packed)
        return;
    protobuf_c_message_pack(m, packed);
    webcache_put(web_cache, epoch, key->bytes, key->len, owner, packed, n, web_cache_now() + ttl_ms);
    free(packed);
}

void web_account_prime(const Portico__Registry__User *u, const Portico__Broker__RepositoriesReply *repos)
{
    if (!web_cache || !u || u->id <= 0)
        return;
    uint64_t epoch = webcache_epoch(web_cache);
    cache_key_t key;
    if (web_cfg.session_cache_ms > 0) {
        Portico__Registry__GetUserReply rep = PORTICO__REGISTRY__GET_USER_REPLY__INIT;
        rep.user = (Portico__Registry__User *)(uintptr_t)u;
        s_key(&key, 'u', 1, (const int64_t[]){u->id});
        s_prime(epoch, &key, u->id, &rep.base, web_cfg.session_cache_ms);
    }
    if (repos && web_cfg.repos_cache_ms > 0) {
        s_key(&key, 'r', 4, (const int64_t[]){u->id, 0, 0, PAGE_SIZE});
        s_prime(epoch, &key, u->id, &repos->base, web_cfg.repos_cache_ms);
    }
}

/* The repositories part, or a notice saying why it is missing: from
 * given (the list that came with the session) or given_err (why that call
 * failed) when the page asked with the session, else asked here. */
static void s_repositories(tmpl_ctx_t *c, web_req_t *r, const Portico__Registry__User *u, int64_t integration_id,
                           long start, const Portico__Broker__RepositoriesReply *given, const bus_error_t *given_err)
{
    tmpl_set_bool(c, "repos_ok", false);
    tmpl_set_bool(c, "login_again", false);
    tmpl_set(c, "again_id", "");
    if (!u || !u->n_identities)
        return;
    Portico__Broker__RepositoriesReply *rep = NULL;
    bus_error_t err;
    if (given_err) {
        s_repositories_failed(c, u, integration_id, given_err);
        return;
    }
    if (given && !given->integration_id) {
        /* The session's user has no identity at that integration. */
        bus_error_set(&err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(NO_IDENTITY), "no identity there");
        s_repositories_failed(c, u, integration_id, &err);
        return;
    }
    if (!given) {
        Portico__Broker__RepositoriesRequest q = PORTICO__BROKER__REPOSITORIES_REQUEST__INIT;
        q.user_id = u->id;
        q.integration_id = integration_id;
        q.start = (int32_t)start;
        q.limit = PAGE_SIZE;
        cache_key_t key;
        s_key(&key, 'r', 4, (const int64_t[]){q.user_id, q.integration_id, q.start, q.limit});
        rep = (Portico__Broker__RepositoriesReply *)s_cached_call(r, &broker_m_user_repositories, &q.base, &key, u->id,
                                                                  web_cfg.repos_cache_ms, (int)web_cfg.login_timeout_ms,
                                                                  &err);
        if (!rep) {
            s_repositories_failed(c, u, integration_id, &err);
            return;
        }
        given = rep;
    }
    tmpl_set_bool(c, "repos_ok", true);
    tmpl_set(c, "from", given->integration_name);
    tmpl_set(c, "as", given->bitbucket_username);
    tmpl_set_bool(c, "has_repos", given->n_repositories > 0);
    tmpl_set(c, "empty_text", start ? "No more repositories." : "Bitbucket lists no repository you can read.");
    tmpl_set_list(c, "repos");
    for (size_t i = 0; i < given->n_repositories; i++) {
        const Portico__Broker__Repository *it = given->repositories[i];
        tmpl_ctx_t *row = tmpl_add(c, "repos");
        tmpl_set(row, "project", s_cell(it->project_name[0] ? it->project_name : it->project_key));
        tmpl_set(row, "name", s_cell(it->name[0] ? it->name : it->slug));
        tmpl_set(row, "visibility", it->public_ ? "public" : "private");
        tmpl_set(row, "clone", it->clone_http[0] ? it->clone_http : it->clone_ssh);
    }
    tmpl_set_bool(c, "first", start > 0);
    tmpl_set_bool(c, "next", !given->is_last_page && given->next_page_start > start);
    tmpl_set_int(c, "next_start", given->next_page_start);
    if (rep)
        protobuf_c_message_free_unpacked(&rep->base, NULL);
}

/* The session and the repositories in one broker call, which has the
 * registry check the session in the call that reads the user's
 * credentials: one bus round trip less than session.lookup and then the
 * list. Taken only when the repository cache is off (else the list usually
 * comes from the cache, and one session.lookup is cheaper). Returns the
 * reply (its session set), or NULL: with *gone when the session is not
 * live, else with err (the page then looks the session up alone and shows
 * err where the repositories would be). */
static Portico__Broker__RepositoriesReply *s_with_session(web_req_t *r, const uint8_t hash[32], int64_t integration_id,
                                                          long start, bool *gone, bus_error_t *err)
{
    Portico__Broker__RepositoriesRequest q = PORTICO__BROKER__REPOSITORIES_REQUEST__INIT;
    q.session_hash.data = (uint8_t *)(uintptr_t)hash;
    q.session_hash.len = 32;
    q.integration_id = integration_id;
    q.start = (int32_t)start;
    q.limit = PAGE_SIZE;
    ProtobufCMessage *m = NULL;
    *gone = false;
    if (web_call(r, &broker_m_user_repositories, &q.base, &m, (int)web_cfg.login_timeout_ms, err) < 0) {
        *gone = err->code == PORTICO__ERROR_CODE__NOT_FOUND &&
                (err->detail == DETAIL(SESSION) || err->detail == DETAIL(SETUP_OFF));
        return NULL;
    }
    Portico__Broker__RepositoriesReply *rep = (Portico__Broker__RepositoriesReply *)m;
    if (!rep->session || !rep->session->session) {
        protobuf_c_message_free_unpacked(m, NULL);
        bus_error_set(err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "the broker answered without the session");
        return NULL;
    }
    return rep;
}

static void h_account(web_req_t *r)
{
    /* The page shows the whole account: when the session is looked up in
     * the registry, the account comes with it (no user.get). */
    r->session_with_user = true;
    long start = s_query_long(r, "start", MAX_START);
    int64_t integration_id = s_query_long(r, "integration", 1000000000L);
    uint8_t hash[32];
    uint64_t epoch = 0;
    Portico__Broker__RepositoriesReply *both = NULL;
    bus_error_t both_err;
    bool asked_both = false;
    const web_session_t *s = NULL;
    int known = web_session_local(r, hash, &epoch);
    if (known == 0 && web_cfg.repos_cache_ms <= 0) {
        bool gone = false;
        asked_both = true;
        both = s_with_session(r, hash, integration_id, start, &gone, &both_err);
        if (both || gone)
            s = web_session_confirmed(r, hash, epoch, both ? both->session->session : NULL);
        else
            s = web_session_lookup(r, hash, epoch);
    } else if (known == 0) {
        s = web_session_lookup(r, hash, epoch);
    } else {
        s = known > 0 ? &r->session : NULL;
    }
    if (!s && web_session_unknown(r, "Could not check your sign-in"))
        goto out;
    if (!s || !s->user_id) {
        web_redirect(r, "/login?return_to=/account");
        goto out;
    }

    Portico__Registry__GetUserRequest q = PORTICO__REGISTRY__GET_USER_REQUEST__INIT;
    q.id = s->user_id;
    cache_key_t key;
    s_key(&key, 'u', 1, (const int64_t[]){q.id});
    bus_error_t err;
    Portico__Registry__GetUserReply *rep = NULL;
    const Portico__Registry__User *u = both ? both->session->user : r->session_user;
    if (u && u->id != s->user_id)
        u = NULL;
    if (!u) {
        rep = (Portico__Registry__GetUserReply *)s_cached_call(
            r, &registry_m_user_get, &q.base, &key, q.id, web_cfg.session_cache_ms, (int)web_cfg.bus_timeout_ms, &err);
        if (!rep) {
            web_bus_error_page(r, &err, "Portico could not load your account");
            goto out;
        }
        u = rep->user;
    } else if (both && web_cache && web_cfg.session_cache_ms > 0) {
        Portico__Registry__GetUserReply kept = PORTICO__REGISTRY__GET_USER_REPLY__INIT;
        kept.user = (Portico__Registry__User *)(uintptr_t)u;
        s_prime(epoch, &key, u->id, &kept.base, web_cfg.session_cache_ms);
    }
    tmpl_ctx_t *c = web_page_ctx(r, "Your account");
    tmpl_set(c, "user", s_cell(u ? u->name : s->user_name));
    tmpl_set(c, "display_name", s_cell(u ? u->display_name : s->display_name));
    tmpl_set_bool(c, "admin", u ? u->is_admin : s->is_admin);
    s_identities(c, u);
    s_repositories(c, r, u, integration_id, start, both, asked_both && !both ? &both_err : NULL);
    if (rep)
        protobuf_c_message_free_unpacked(&rep->base, NULL);
    web_page(r, 200, "account", &c);
out:
    if (both)
        protobuf_c_message_free_unpacked(&both->base, NULL);
}

const web_route_t web_account_routes[] = {
    {"GET", "/account", false, h_account, "account"},
    {0},
};
