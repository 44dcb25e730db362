#include "bb_methods.h"

#include "bb_login.h"
#include "bb_oauth1.h"
#include "bb_url.h"
#include "bitbucket.pb-c.h"
#include "envelope.pb-c.h"
#include "log.h"
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define C_BAD_REQUEST PORTICO__ERROR_CODE__BAD_REQUEST
#define C_UPSTREAM PORTICO__ERROR_CODE__UPSTREAM
#define C_INTERNAL PORTICO__ERROR_CODE__INTERNAL

#define MAX_FIELD_LEN 8192  /* any one string field of a request */
#define MAX_PEM (64 * 1024) /* CA bundles and keys */

/* ---- plan helpers ---- */

static bool s_empty(const char *s)
{
    return !s || !*s;
}

/* Fields from the bus are trusted to be well-formed protobuf, not more. */
static int s_check(const char *value, int field, size_t max, bool required, bus_error_t *err)
{
    if (required && s_empty(value)) {
        bus_error_set(err, C_BAD_REQUEST, field, "%s is missing", bus_detail_name(field));
        return -1;
    }
    if (value && strlen(value) > max) {
        bus_error_set(err, C_BAD_REQUEST, field, "%s is too long", bus_detail_name(field));
        return -1;
    }
    return 0;
}

/* A value that goes into an HTTP header: printable ASCII, no spaces. */
static int s_check_header_value(const char *value, int field, bus_error_t *err)
{
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f) {
            bus_error_set(err, C_BAD_REQUEST, field, "%s contains characters that cannot be sent",
                          bus_detail_name(field));
            return -1;
        }
    }
    return 0;
}

static char *s_dup(const char *s)
{
    return strdup(s ? s : "");
}

/* The last base URL that was normalised, and what it gave. The requests of
 * a login.exchange, and most requests in a row, name the same integration,
 * and normalising is a URL parse with a dozen allocations each time; the
 * result depends on the input alone. Only this (the loop's) thread plans. */
static _Thread_local struct {
    char in[2100];
    char base[2100];
} s_last_base;

static int s_normalize_base(const char *in, char *base, size_t base_size, char *why, size_t why_size)
{
    size_t n = strlen(in);
    if (n < sizeof s_last_base.in && s_last_base.in[0] && !strcmp(in, s_last_base.in)) {
        snprintf(base, base_size, "%s", s_last_base.base);
        return 0;
    }
    if (url_normalize_base(in, base, base_size, why, why_size) < 0)
        return -1;
    if (n < sizeof s_last_base.in && strlen(base) < sizeof s_last_base.base) {
        memcpy(s_last_base.in, in, n + 1);
        snprintf(s_last_base.base, sizeof s_last_base.base, "%s", base);
    }
    return 0;
}

/* Base URL, CA and the request's URL: base + path (+ query). */
static int s_conn(const Portico__Bitbucket__Conn *conn, const char *path, const char *query, bb_plan_t *plan,
                  bus_error_t *err)
{
    char base[2100], why[200] = "";
    if (!conn || s_empty(conn->base_url)) {
        bus_error_set(err, C_BAD_REQUEST, DETAIL(BASE_URL), "the base URL of the integration is missing");
        return -1;
    }
    if (s_normalize_base(conn->base_url, base, sizeof base, why, sizeof why) < 0) {
        bus_error_set(err, C_BAD_REQUEST, DETAIL(BASE_URL), "the base URL of the integration is not usable: %s", why);
        return -1;
    }
    if (conn->ca_cert_pem && strlen(conn->ca_cert_pem) > MAX_PEM) {
        bus_error_set(err, C_BAD_REQUEST, DETAIL(CA_CERT_PEM), "the CA certificate of the integration is too long");
        return -1;
    }
    char *joined = bb_url_join(base, path);
    sbuf_t url = {0};
    sbuf_puts(&url, joined);
    if (query && *query) {
        sbuf_puts(&url, "?");
        sbuf_puts(&url, query);
    }
    free(joined);
    plan->url = sbuf_take(&url);
    plan->ca_pem = s_empty(conn->ca_cert_pem) ? NULL : strdup(conn->ca_cert_pem);
    plan->integration_id = conn->integration_id;
    bb_url_host(base, plan->host, sizeof plan->host);
    if (!plan->url || (!s_empty(conn->ca_cert_pem) && !plan->ca_pem)) {
        bus_error_set(err, C_INTERNAL, DETAIL(NONE), "out of memory");
        return -1;
    }
    return 0;
}

/* Credentials for the REST calls: a bearer token or OAuth 1. */
static int s_auth(const Portico__Bitbucket__Auth *auth, bb_plan_t *plan, bus_error_t *err)
{
    if (auth && !s_empty(auth->bearer)) {
        if (s_check(auth->bearer, DETAIL(AUTH_BEARER), MAX_FIELD_LEN, true, err) < 0 ||
            s_check_header_value(auth->bearer, DETAIL(AUTH_BEARER), err) < 0)
            return -1;
        plan->bearer = s_dup(auth->bearer);
        return plan->bearer ? 0 : -1;
    }
    const Portico__Bitbucket__OAuth1Credentials *o = auth ? auth->oauth1 : NULL;
    if (o && !s_empty(o->consumer_key)) {
        if (s_check(o->consumer_key, DETAIL(AUTH_OAUTH1_CONSUMER_KEY), 1024, true, err) < 0 ||
            s_check(o->private_key_pem, DETAIL(AUTH_OAUTH1_PRIVATE_KEY_PEM), MAX_PEM, true, err) < 0 ||
            s_check(o->token, DETAIL(AUTH_OAUTH1_TOKEN), MAX_FIELD_LEN, true, err) < 0)
            return -1;
        plan->oauth1 = true;
        plan->o1_consumer_key = s_dup(o->consumer_key);
        plan->o1_private_key = s_dup(o->private_key_pem);
        plan->o1_token = s_dup(o->token);
        return plan->o1_consumer_key && plan->o1_private_key && plan->o1_token ? 0 : -1;
    }
    bus_error_set(err, C_BAD_REQUEST, DETAIL(AUTH),
                  "no credentials were given (a bearer token or OAuth 1 credentials)");
    return -1;
}

/* max_body: BB_MAX_BODY for pages, which are read as they stream;
 * BB_MAX_SMALL_BODY for answers that are parsed whole (bb_status.h). */
static void s_get(bb_plan_t *plan, const char *kind, bb_api_t api, const char *accept, size_t max_body)
{
    plan->kind = kind;
    plan->api = api;
    plan->http_method = "GET";
    plan->idempotent = true;
    plan->accept = s_dup(accept);
    plan->max_body = max_body;
}

static void s_post(bb_plan_t *plan, const char *kind, bb_api_t api, const char *accept, size_t max_body)
{
    plan->kind = kind;
    plan->api = api;
    plan->http_method = "POST";
    plan->idempotent = false;
    plan->accept = s_dup(accept);
    plan->max_body = max_body;
}

int bb_plan_authorization(const bb_plan_t *plan, char **out, bus_error_t *err)
{
    *out = NULL;
    if (plan->bearer) {
        sbuf_t s = {0};
        sbuf_puts(&s, "Bearer ");
        sbuf_puts(&s, plan->bearer);
        *out = sbuf_take(&s);
        if (!*out) {
            bus_error_set(err, C_INTERNAL, DETAIL(NONE), "out of memory");
            return -1;
        }
        return 0;
    }
    if (plan->oauth1) {
        char why[200] = "";
        bb_oauth1_t o = {
            .consumer_key = plan->o1_consumer_key,
            .private_key_pem = plan->o1_private_key,
            .token = plan->o1_token,
            .callback = plan->o1_callback,
            .verifier = plan->o1_verifier,
        };
        *out = bb_oauth1_authorization(&o, plan->http_method, plan->url, plan->body, why, sizeof why);
        if (!*out) {
            bus_error_set(err, C_BAD_REQUEST, DETAIL(PRIVATE_KEY), "the request could not be signed: %s", why);
            return -1;
        }
    }
    return 0;
}

/* ---- server.info ---- */

static int s_server_info_prepare(const ProtobufCMessage *msg, bb_plan_t *plan, bus_error_t *err)
{
    const Portico__Bitbucket__ServerInfoRequest *m = (const Portico__Bitbucket__ServerInfoRequest *)msg;
    s_get(plan, "server.info", BB_API_SERVER_INFO, "application/json", BB_MAX_SMALL_BODY);
    return s_conn(m->conn, "/rest/api/1.0/application-properties", NULL, plan, err);
}

static int s_server_info_finish(const bb_plan_t *plan, const bb_response_t *r, bus_reply_t *reply, bus_error_t *err,
                                char *note, size_t note_size)
{
    (void)plan;
    Portico__Bitbucket__ServerInfoReply out;
    if (bb_decode_server_info(r, &out, err) < 0)
        return -1;
    char q[100];
    snprintf(note, note_size, "version=%s", log_quote(out.version, q, sizeof q));
    bus_reply_ok(reply, &out.base);
    bb_server_info_clear(&out);
    return 0;
}

/* ---- oauth2.token ---- */

static int s_token_prepare(const ProtobufCMessage *msg, bb_plan_t *plan, bus_error_t *err)
{
    const Portico__Bitbucket__TokenRequest *m = (const Portico__Bitbucket__TokenRequest *)msg;
    s_post(plan, "oauth2.token", BB_API_OAUTH2_TOKEN, "application/json", BB_MAX_SMALL_BODY);
    bool code_grant = m->grant_type && !strcmp(m->grant_type, "authorization_code");
    bool refresh_grant = m->grant_type && !strcmp(m->grant_type, "refresh_token");
    if (!code_grant && !refresh_grant) {
        bus_error_set(err, C_BAD_REQUEST, DETAIL(GRANT_TYPE), "grant_type must be authorization_code or refresh_token");
        return -1;
    }
    if (s_check(m->client_id, DETAIL(CLIENT_ID), 1024, true, err) < 0 ||
        s_check(m->client_secret, DETAIL(CLIENT_SECRET), MAX_FIELD_LEN, true, err) < 0 ||
        s_check(m->redirect_uri, DETAIL(REDIRECT_URI), MAX_FIELD_LEN, true, err) < 0 ||
        s_check(m->code, DETAIL(CODE), MAX_FIELD_LEN, code_grant, err) < 0 ||
        s_check(m->code_verifier, DETAIL(CODE_VERIFIER), 1024, false, err) < 0 ||
        s_check(m->refresh_token, DETAIL(REFRESH_TOKEN), MAX_FIELD_LEN, refresh_grant, err) < 0)
        return -1;
    if (s_conn(m->conn, "/rest/oauth2/latest/token", NULL, plan, err) < 0)
        return -1;
    /* client_secret_post; redirect_uri on refresh too (Data Center checks
     * it there and answers a bare invalid_grant without it). Nothing
     * secret ever goes into the URL. */
    sbuf_t form = {0};
    bb_form_add(&form, "grant_type", m->grant_type);
    if (code_grant) {
        bb_form_add(&form, "code", m->code);
        if (!s_empty(m->code_verifier))
            bb_form_add(&form, "code_verifier", m->code_verifier);
    } else {
        bb_form_add(&form, "refresh_token", m->refresh_token);
    }
    bb_form_add(&form, "redirect_uri", m->redirect_uri);
    bb_form_add(&form, "client_id", m->client_id);
    bb_form_add(&form, "client_secret", m->client_secret);
    plan->body = sbuf_take(&form);
    if (!plan->body) {
        bus_error_set(err, C_INTERNAL, DETAIL(NONE), "out of memory");
        return -1;
    }
    return 0;
}

static int s_token_finish(const bb_plan_t *plan, const bb_response_t *r, bus_reply_t *reply, bus_error_t *err,
                          char *note, size_t note_size)
{
    (void)plan;
    Portico__Bitbucket__TokenReply out;
    if (bb_decode_token(r, &out, err) < 0)
        return -1;
    snprintf(note, note_size, "expires_in=%lld", (long long)out.expires_in);
    bus_reply_ok(reply, &out.base);
    bb_token_clear(&out);
    return 0;
}

/* ---- whoami ---- */

static int s_whoami_prepare(const ProtobufCMessage *msg, bb_plan_t *plan, bus_error_t *err)
{
    const Portico__Bitbucket__WhoAmIRequest *m = (const Portico__Bitbucket__WhoAmIRequest *)msg;
    s_get(plan, "whoami", BB_API_WHOAMI, "text/plain, */*", BB_MAX_SMALL_BODY);
    if (s_auth(m->auth, plan, err) < 0)
        return -1;
    return s_conn(m->conn, "/plugins/servlet/applinks/whoami", NULL, plan, err);
}

static int s_whoami_finish(const bb_plan_t *plan, const bb_response_t *r, bus_reply_t *reply, bus_error_t *err,
                           char *note, size_t note_size)
{
    (void)plan;
    Portico__Bitbucket__WhoAmIReply out;
    if (bb_decode_whoami(r, &out, err) < 0)
        return -1;
    snprintf(note, note_size, "user_id=%lld", (long long)out.user_id);
    bus_reply_ok(reply, &out.base);
    bb_whoami_clear(&out);
    return 0;
}

/* ---- user.get ---- */

static int s_user_get_prepare(const ProtobufCMessage *msg, bb_plan_t *plan, bus_error_t *err)
{
    const Portico__Bitbucket__GetUserRequest *m = (const Portico__Bitbucket__GetUserRequest *)msg;
    s_get(plan, "user.get", BB_API_REST, "application/json", BB_MAX_SMALL_BODY);
    if (s_check(m->slug, DETAIL(SLUG), 255, true, err) < 0 || s_auth(m->auth, plan, err) < 0)
        return -1;
    sbuf_t path = {0};
    sbuf_puts(&path, "/rest/api/1.0/users/");
    bb_path_segment(&path, m->slug);
    char *p = sbuf_take(&path);
    if (!p) {
        bus_error_set(err, C_INTERNAL, DETAIL(NONE), "out of memory");
        return -1;
    }
    int rc = s_conn(m->conn, p, NULL, plan, err);
    free(p);
    return rc;
}

static int s_user_get_finish(const bb_plan_t *plan, const bb_response_t *r, bus_reply_t *reply, bus_error_t *err,
                             char *note, size_t note_size)
{
    (void)plan;
    (void)note;
    (void)note_size;
    Portico__Bitbucket__User user;
    if (bb_decode_user(r, &user, err) < 0)
        return -1;
    Portico__Bitbucket__GetUserReply out = PORTICO__BITBUCKET__GET_USER_REPLY__INIT;
    out.user = &user;
    bus_reply_ok(reply, &out.base);
    bb_user_clear(&user);
    return 0;
}

/* ---- user.find ---- */

static int s_user_find_prepare(const ProtobufCMessage *msg, bb_plan_t *plan, bus_error_t *err)
{
    const Portico__Bitbucket__FindUsersRequest *m = (const Portico__Bitbucket__FindUsersRequest *)msg;
    s_get(plan, "user.find", BB_API_REST, "application/json", BB_MAX_BODY);
    if (s_check(m->filter, DETAIL(FILTER), 255, true, err) < 0 || s_auth(m->auth, plan, err) < 0)
        return -1;
    sbuf_t q = {0};
    bb_form_add(&q, "filter", m->filter);
    bb_form_add_int(&q, "limit", 100);
    char *query = sbuf_take(&q);
    if (!query) {
        bus_error_set(err, C_INTERNAL, DETAIL(NONE), "out of memory");
        return -1;
    }
    int rc = s_conn(m->conn, "/rest/api/1.0/users", query, plan, err);
    free(query);
    return rc;
}

static int s_user_find_finish(const bb_plan_t *plan, const bb_response_t *r, bus_reply_t *reply, bus_error_t *err,
                              char *note, size_t note_size)
{
    Portico__Bitbucket__FindUsersReply out;
    size_t skipped = 0;
    if (bb_decode_users(r, &out, &skipped, err) < 0)
        return -1;
    snprintf(note, note_size, "users=%zu skipped=%zu", out.n_users, skipped);
    /* A reply over the bus's limit would be dropped by the receiver. */
    if (portico__bitbucket__find_users_reply__get_packed_size(&out) > BUS_MAX_MSG_SIZE - BB_REPLY_ROOM) {
        bb_users_clear(&out);
        bus_error_set(err, C_UPSTREAM, DETAIL(TOO_LARGE),
                      "the users from Bitbucket at %s that match the filter are too many to pass on; use a "
                      "narrower filter",
                      plan->host);
        return -1;
    }
    bus_reply_ok(reply, &out.base);
    bb_users_clear(&out);
    return 0;
}

/* ---- repos.list ---- */

static int s_repos_prepare(const ProtobufCMessage *msg, bb_plan_t *plan, bus_error_t *err)
{
    const Portico__Bitbucket__ListReposRequest *m = (const Portico__Bitbucket__ListReposRequest *)msg;
    s_get(plan, "repos.list", BB_API_REST, "application/json", BB_MAX_BODY);
    const char *perm = s_empty(m->permission) ? "REPO_READ" : m->permission;
    if (strcmp(perm, "REPO_READ") != 0 && strcmp(perm, "REPO_WRITE") != 0 && strcmp(perm, "REPO_ADMIN") != 0) {
        bus_error_set(err, C_BAD_REQUEST, DETAIL(PERMISSION), "permission must be REPO_READ, REPO_WRITE or REPO_ADMIN");
        return -1;
    }
    if (m->start < 0) {
        bus_error_set(err, C_BAD_REQUEST, DETAIL(START), "start must not be negative");
        return -1;
    }
    int32_t limit = m->limit <= 0 ? 25 : m->limit > 1000 ? 1000 : m->limit;
    if (s_auth(m->auth, plan, err) < 0)
        return -1;
    plan->start = m->start;
    sbuf_t q = {0};
    bb_form_add(&q, "permission", perm);
    bb_form_add_int(&q, "start", m->start);
    bb_form_add_int(&q, "limit", limit);
    char *query = sbuf_take(&q);
    if (!query) {
        bus_error_set(err, C_INTERNAL, DETAIL(NONE), "out of memory");
        return -1;
    }
    int rc = s_conn(m->conn, "/rest/api/1.0/repos", query, plan, err);
    free(query);
    return rc;
}

static int s_repos_finish(const bb_plan_t *plan, const bb_response_t *r, bus_reply_t *reply, bus_error_t *err,
                          char *note, size_t note_size)
{
    Portico__Bitbucket__ListReposReply out;
    size_t skipped = 0;
    if (bb_decode_repos(r, plan->start, &out, &skipped, err) < 0)
        return -1;
    snprintf(note, note_size, "repos=%zu skipped=%zu last=%d next=%d", out.n_repositories, skipped,
             (int)out.is_last_page, (int)out.next_page_start);
    if (portico__bitbucket__list_repos_reply__get_packed_size(&out) > BUS_MAX_MSG_SIZE - BB_REPLY_ROOM) {
        bb_repos_clear(&out);
        bus_error_set(err, C_UPSTREAM, DETAIL(TOO_LARGE),
                      "the page of repositories from Bitbucket at %s is too large to pass on; ask for fewer at once",
                      plan->host);
        return -1;
    }
    bus_reply_ok(reply, &out.base);
    bb_repos_clear(&out);
    return 0;
}

/* ---- OAuth 1 ---- */

static int s_o1_request_prepare(const ProtobufCMessage *msg, bb_plan_t *plan, bus_error_t *err)
{
    const Portico__Bitbucket__OAuth1RequestTokenRequest *m = (const Portico__Bitbucket__OAuth1RequestTokenRequest *)msg;
    s_post(plan, "oauth1.request_token", BB_API_OAUTH1, "*/*", BB_MAX_SMALL_BODY);
    if (s_check(m->consumer_key, DETAIL(CONSUMER_KEY), 1024, true, err) < 0 ||
        s_check(m->private_key_pem, DETAIL(PRIVATE_KEY_PEM), MAX_PEM, true, err) < 0 ||
        s_check(m->callback, DETAIL(CALLBACK), MAX_FIELD_LEN, true, err) < 0)
        return -1;
    plan->oauth1 = true;
    plan->o1_consumer_key = s_dup(m->consumer_key);
    plan->o1_private_key = s_dup(m->private_key_pem);
    plan->o1_callback = s_dup(m->callback);
    plan->body = s_dup("");
    if (!plan->o1_consumer_key || !plan->o1_private_key || !plan->o1_callback || !plan->body) {
        bus_error_set(err, C_INTERNAL, DETAIL(NONE), "out of memory");
        return -1;
    }
    return s_conn(m->conn, "/plugins/servlet/oauth/request-token", NULL, plan, err);
}

static int s_o1_access_prepare(const ProtobufCMessage *msg, bb_plan_t *plan, bus_error_t *err)
{
    const Portico__Bitbucket__OAuth1AccessTokenRequest *m = (const Portico__Bitbucket__OAuth1AccessTokenRequest *)msg;
    s_post(plan, "oauth1.access_token", BB_API_OAUTH1, "*/*", BB_MAX_SMALL_BODY);
    const Portico__Bitbucket__OAuth1Credentials *c = m->credentials;
    if (!c) {
        bus_error_set(err, C_BAD_REQUEST, DETAIL(CREDENTIALS), "credentials is missing");
        return -1;
    }
    if (s_check(c->consumer_key, DETAIL(CREDENTIALS_CONSUMER_KEY), 1024, true, err) < 0 ||
        s_check(c->private_key_pem, DETAIL(CREDENTIALS_PRIVATE_KEY_PEM), MAX_PEM, true, err) < 0 ||
        s_check(c->token, DETAIL(CREDENTIALS_TOKEN), MAX_FIELD_LEN, true, err) < 0 ||
        s_check(m->verifier, DETAIL(VERIFIER), MAX_FIELD_LEN, true, err) < 0)
        return -1;
    plan->oauth1 = true;
    plan->o1_consumer_key = s_dup(c->consumer_key);
    plan->o1_private_key = s_dup(c->private_key_pem);
    plan->o1_token = s_dup(c->token);
    plan->o1_verifier = s_dup(m->verifier);
    plan->body = s_dup("");
    if (!plan->o1_consumer_key || !plan->o1_private_key || !plan->o1_token || !plan->o1_verifier || !plan->body) {
        bus_error_set(err, C_INTERNAL, DETAIL(NONE), "out of memory");
        return -1;
    }
    return s_conn(m->conn, "/plugins/servlet/oauth/access-token", NULL, plan, err);
}

static int s_o1_token_finish(const bb_plan_t *plan, const bb_response_t *r, bus_reply_t *reply, bus_error_t *err,
                             char *note, size_t note_size)
{
    (void)plan;
    Portico__Bitbucket__OAuth1TokenReply out;
    if (bb_decode_oauth1_token(r, &out, err) < 0)
        return -1;
    snprintf(note, note_size, "expires_in=%lld", (long long)out.expires_in);
    bus_reply_ok(reply, &out.base);
    bb_oauth1_token_clear(&out);
    return 0;
}

/* ---- resource.readable (access rules) ---- */

static int s_readable_prepare(const ProtobufCMessage *msg, bb_plan_t *plan, bus_error_t *err)
{
    const Portico__Bitbucket__ReadableRequest *m = (const Portico__Bitbucket__ReadableRequest *)msg;
    /* The answer (the project or repository) is not read; an error's
     * message is read only when it is short (bb_status.h). */
    s_get(plan, "resource.readable", BB_API_REST, "application/json", BB_MAX_BODY);
    if (s_check(m->project_key, DETAIL(PROJECT_KEY), 255, true, err) < 0 ||
        s_check(m->repo_slug, DETAIL(REPO_SLUG), 255, false, err) < 0 || s_auth(m->auth, plan, err) < 0)
        return -1;
    sbuf_t path = {0};
    sbuf_puts(&path, "/rest/api/1.0/projects/");
    bb_path_segment(&path, m->project_key);
    if (!s_empty(m->repo_slug)) {
        sbuf_puts(&path, "/repos/");
        bb_path_segment(&path, m->repo_slug);
    }
    char *p = sbuf_take(&path);
    if (!p) {
        bus_error_set(err, C_INTERNAL, DETAIL(NONE), "out of memory");
        return -1;
    }
    int rc = s_conn(m->conn, p, NULL, plan, err);
    free(p);
    return rc;
}

/* 2xx: readable. 403, 404, and a 401 that names an AuthorisationException
 * (the user may not see it, as opposed to credentials Bitbucket refused):
 * not readable. Anything else is the usual typed error. */
static int s_readable_finish(const bb_plan_t *plan, const bb_response_t *r, bus_reply_t *reply, bus_error_t *err,
                             char *note, size_t note_size)
{
    (void)plan;
    bool readable = r->status >= 200 && r->status <= 299;
    bool refused = r->status == 403 || r->status == 404 ||
                   (r->status == 401 && r->body && memmem(r->body, r->body_len, "AuthorisationException", 22));
    if (!readable && !refused) {
        bb_error_from_response(BB_API_REST, r, err);
        return -1;
    }
    Portico__Bitbucket__ReadableReply out = PORTICO__BITBUCKET__READABLE_REPLY__INIT;
    out.readable = readable;
    out.status = (int32_t)r->status;
    snprintf(note, note_size, "readable=%d status=%ld", (int)readable, r->status);
    bus_reply_ok(reply, &out.base);
    return 0;
}

/* ---- login.exchange (bb_login.c): the requests above, one after the other ---- */

static const bb_login_steps_t s_login_steps = {
    .token = s_token_prepare,
    .o1_access = s_o1_access_prepare,
    .whoami = s_whoami_prepare,
    .user_get = s_user_get_prepare,
    .repos = s_repos_prepare,
};

static int s_login_prepare(const ProtobufCMessage *msg, bb_plan_t *plan, bus_error_t *err)
{
    return bb_login_prepare(&s_login_steps, msg, plan, err);
}

const bb_method_t bb_methods[] = {
    {"server.info", &portico__bitbucket__server_info_request__descriptor, s_server_info_prepare, s_server_info_finish,
     NULL},
    {"oauth2.token", &portico__bitbucket__token_request__descriptor, s_token_prepare, s_token_finish, NULL},
    {"whoami", &portico__bitbucket__who_am_irequest__descriptor, s_whoami_prepare, s_whoami_finish, NULL},
    {"user.get", &portico__bitbucket__get_user_request__descriptor, s_user_get_prepare, s_user_get_finish, NULL},
    {"user.find", &portico__bitbucket__find_users_request__descriptor, s_user_find_prepare, s_user_find_finish, NULL},
    {"repos.list", &portico__bitbucket__list_repos_request__descriptor, s_repos_prepare, s_repos_finish, NULL},
    {"oauth1.request_token", &portico__bitbucket__oauth1_request_token_request__descriptor, s_o1_request_prepare,
     s_o1_token_finish, NULL},
    {"oauth1.access_token", &portico__bitbucket__oauth1_access_token_request__descriptor, s_o1_access_prepare,
     s_o1_token_finish, NULL},
    {"resource.readable", &portico__bitbucket__readable_request__descriptor, s_readable_prepare, s_readable_finish,
     NULL},
    {"login.exchange", &portico__bitbucket__login_exchange_request__descriptor, s_login_prepare, bb_login_finish,
     bb_login_next},
    {NULL, NULL, NULL, NULL, NULL},
};

const bb_method_t *bb_method_find(const char *name)
{
    for (const bb_method_t *m = bb_methods; m->name; m++)
        if (!strcmp(m->name, name))
            return m;
    return NULL;
}
