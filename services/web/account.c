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
 * revoked Bitbucket authorization, shows for at most that long. */
#include "web.h"

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

static void s_cell(sbuf_t *b, const char *text)
{
    sbuf_puts(b, "<td>");
    sbuf_html(b, text && *text ? text : "—");
    sbuf_puts(b, "</td>");
}

static void s_identities(sbuf_t *b, const Portico__Registry__User *u)
{
    sbuf_puts(b, "<section class=\"card\"><h2>Linked Bitbucket account</h2>");
    if (!u || !u->n_identities) {
        sbuf_printf(b,
                    "<p>No Bitbucket account is linked yet. <a href=\"%s/login?return_to=/account\">Log in with "
                    "Bitbucket</a> to link one.</p></section>",
                    web_cfg.public_path);
        return;
    }
    sbuf_puts(b, "<table class=\"identities\"><tr><th>Bitbucket</th><th>Username</th><th>Display name</th>"
                 "<th>Email</th><th>Last login</th></tr>");
    for (size_t i = 0; i < u->n_identities; i++) {
        const Portico__Registry__Identity *id = u->identities[i];
        if (!id)
            continue;
        char when[40];
        web_format_time(id->last_login_at, when, sizeof when);
        sbuf_puts(b, "<tr>");
        s_cell(b, id->integration_name);
        s_cell(b, id->username);
        s_cell(b, id->display_name);
        s_cell(b, id->email);
        s_cell(b, when);
        sbuf_puts(b, "</tr>");
    }
    sbuf_puts(b, "</table></section>");
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
static ProtobufCMessage *s_cached_call(bus_client_t *client, const char *method, const ProtobufCMessage *req,
                                       const ProtobufCMessageDescriptor *desc, const cache_key_t *key, int64_t owner,
                                       long ttl_ms, int timeout_ms, bus_error_t *err)
{
    bool cached = web_cache && ttl_ms > 0;
    bool repos = key->bytes[0] == 'r';
    const char *hit = repos ? "cache=\"repositories\",result=\"hit\"" : "cache=\"account\",result=\"hit\"";
    const char *miss = repos ? "cache=\"repositories\",result=\"miss\"" : "cache=\"account\",result=\"miss\"";
    if (cached) {
        size_t n = 0;
        uint8_t *packed = webcache_get_copy(web_cache, key->bytes, key->len, web_cache_now(), &n);
        if (packed) {
            ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, n, packed);
            free(packed);
            if (m) {
                metrics_inc("portico_web_cache_total", hit, 1);
                return m;
            }
        }
        metrics_inc("portico_web_cache_total", miss, 1);
    }
    uint64_t epoch = cached ? webcache_epoch(web_cache) : 0;
    ProtobufCMessage *rep = NULL;
    if (bus_call(client, method, req, desc, &rep, timeout_ms, err) < 0)
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

/* The repositories part, or a notice saying why it is missing. */
static void s_repositories(sbuf_t *b, web_req_t *r, const Portico__Registry__User *u, int64_t integration_id,
                           long start)
{
    sbuf_puts(b, "<section class=\"card\" id=\"repositories\"><h2>Repositories you can read</h2>");
    if (!u || !u->n_identities) {
        sbuf_puts(b, "<p>Link a Bitbucket account to see your repositories.</p></section>");
        return;
    }
    Portico__Broker__RepositoriesRequest q = PORTICO__BROKER__REPOSITORIES_REQUEST__INIT;
    q.user_id = u->id;
    q.integration_id = integration_id;
    q.start = (int32_t)start;
    q.limit = PAGE_SIZE;
    cache_key_t key;
    s_key(&key, 'r', 4, (const int64_t[]){q.user_id, q.integration_id, q.start, q.limit});
    bus_error_t err;
    Portico__Broker__RepositoriesReply *rep = (Portico__Broker__RepositoriesReply *)s_cached_call(
        r->clients->broker, "user.repositories", &q.base, &portico__broker__repositories_reply__descriptor, &key, u->id,
        web_cfg.repos_cache_ms, (int)web_cfg.login_timeout_ms, &err);
    if (!rep) {
        int64_t again = integration_id;
        for (size_t i = 0; !again && i < u->n_identities; i++)
            if (u->identities[i])
                again = u->identities[i]->integration_id;
        char dq[100];
        log_info("repositories unavailable", "code=%s detail=%s", bus_code_name(err.code),
                 log_quote(err.detail, dq, sizeof dq));
        if (!strcmp(err.detail, "login_again")) {
            page_notice(b, "error", "Your Bitbucket authorization has expired or was revoked: log in again.");
            sbuf_printf(b,
                        "<p><a class=\"button\" href=\"%s/login/start/%lld?return_to=/account\">Log in again</a></p>",
                        web_cfg.public_path, (long long)again);
        } else if (!strcmp(err.detail, "tfa")) {
            page_notice(b, "error",
                        "Bitbucket treated Portico as anonymous: the \"U2F & TOTP\" two-factor app blocks OAuth "
                        "requests unless its OAuth whitelist allows Portico. Ask your Bitbucket administrator to "
                        "allow Portico there.");
        } else if (!strcmp(err.detail, "integration_disabled")) {
            page_notice(b, "warn", "The Bitbucket integration of your account is disabled: ask a Portico admin.");
        } else if (!strcmp(err.detail, "invalid_client")) {
            page_notice(b, "error",
                        "Bitbucket refused Portico's client credentials: ask a Portico admin to check the "
                        "integration's Client Secret.");
        } else if (err.code == PORTICO__ERROR_CODE__UNAVAILABLE || err.code == PORTICO__ERROR_CODE__TIMEOUT ||
                   err.code == PORTICO__ERROR_CODE__TLS || err.code == PORTICO__ERROR_CODE__RATE_LIMITED ||
                   err.code == PORTICO__ERROR_CODE__UPSTREAM) {
            char text[400];
            snprintf(text, sizeof text,
                     "Portico could not get your repositories from Bitbucket right now (%s). "
                     "Reload the page in a moment.",
                     err.code == PORTICO__ERROR_CODE__TIMEOUT        ? "Bitbucket did not answer in time"
                     : err.code == PORTICO__ERROR_CODE__UNAVAILABLE  ? "a service is not reachable"
                     : err.code == PORTICO__ERROR_CODE__TLS          ? "the secure connection failed"
                     : err.code == PORTICO__ERROR_CODE__RATE_LIMITED ? "Bitbucket is limiting requests"
                                                                     : "Bitbucket answered something unexpected");
            page_notice(b, "error", text);
        } else {
            page_notice(b, "error", "Portico could not get your repositories. Reload the page in a moment.");
        }
        sbuf_puts(b, "</section>");
        return;
    }
    sbuf_puts(b, "<p class=\"muted\">From ");
    sbuf_html(b, rep->integration_name);
    sbuf_puts(b, ", as ");
    sbuf_html(b, rep->bitbucket_username);
    sbuf_puts(b, ".</p>");
    if (!rep->n_repositories) {
        sbuf_puts(b, start ? "<p>No more repositories.</p>" : "<p>Bitbucket lists no repository you can read.</p>");
    } else {
        sbuf_puts(b, "<table class=\"repositories\"><tr><th>Project</th><th>Repository</th><th>Visibility</th>"
                     "<th>Clone URL</th></tr>");
        for (size_t i = 0; i < rep->n_repositories; i++) {
            const Portico__Broker__Repository *it = rep->repositories[i];
            sbuf_puts(b, "<tr>");
            s_cell(b, it->project_name[0] ? it->project_name : it->project_key);
            s_cell(b, it->name[0] ? it->name : it->slug);
            s_cell(b, it->public_ ? "public" : "private");
            sbuf_puts(b, "<td><code>");
            sbuf_html(b, it->clone_http[0] ? it->clone_http : it->clone_ssh);
            sbuf_puts(b, "</code></td></tr>");
        }
        sbuf_puts(b, "</table>");
    }
    sbuf_puts(b, "<nav class=\"pager\">");
    if (start > 0)
        sbuf_printf(b, "<a class=\"button secondary\" href=\"%s/account?start=0#repositories\">First page</a> ",
                    web_cfg.public_path);
    if (!rep->is_last_page && rep->next_page_start > start)
        sbuf_printf(b, "<a class=\"button\" rel=\"next\" href=\"%s/account?start=%d#repositories\">Next page</a>",
                    web_cfg.public_path, rep->next_page_start);
    sbuf_puts(b, "</nav></section>");
    protobuf_c_message_free_unpacked(&rep->base, NULL);
}

static void h_account(web_req_t *r)
{
    const web_session_t *s = web_session(r);
    if (!s || !s->user_id) {
        web_redirect(r, "/login?return_to=/account");
        return;
    }
    long start = s_query_long(r, "start", MAX_START);
    int64_t integration_id = s_query_long(r, "integration", 1000000000L);

    Portico__Registry__GetUserRequest q = PORTICO__REGISTRY__GET_USER_REQUEST__INIT;
    q.id = s->user_id;
    cache_key_t key;
    s_key(&key, 'u', 1, (const int64_t[]){q.id});
    bus_error_t err;
    Portico__Registry__GetUserReply *rep = (Portico__Registry__GetUserReply *)s_cached_call(
        r->clients->registry, "user.get", &q.base, &portico__registry__get_user_reply__descriptor, &key, q.id,
        web_cfg.session_cache_ms, (int)web_cfg.bus_timeout_ms, &err);
    if (!rep) {
        web_bus_error_page(r, &err, "Portico could not load your account");
        return;
    }
    const Portico__Registry__User *u = rep->user;
    sbuf_t b;
    sbuf_init(&b);
    page_begin(&b, r, "Your account");
    sbuf_puts(&b, "<h1>Your account</h1><section class=\"card\"><h2>Portico</h2><table class=\"who\">");
    sbuf_puts(&b, "<tr><th>User</th>");
    s_cell(&b, u ? u->name : s->user_name);
    sbuf_puts(&b, "</tr><tr><th>Display name</th>");
    s_cell(&b, u ? u->display_name : s->display_name);
    sbuf_puts(&b, "</tr><tr><th>Role</th><td>");
    if (u ? u->is_admin : s->is_admin)
        sbuf_printf(&b, "<span class=\"badge ok\">admin</span> <a href=\"%s/admin\">Admin section</a>",
                    web_cfg.public_path);
    else
        sbuf_puts(&b, "<span class=\"badge\">user</span>");
    sbuf_puts(&b, "</td></tr></table></section>");
    s_identities(&b, u);
    s_repositories(&b, r, u, integration_id, start);
    page_end(&b);
    web_send_html(r, 200, &b);
    sbuf_free(&b);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
}

const web_route_t web_account_routes[] = {
    {"GET", "/account", false, h_account, "account"},
    {0},
};
