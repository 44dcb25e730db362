#include "bb_json.h"

#include "bb_form.h"
#include "bb_header.h"
#include "bb_text.h"
#include "envelope.pb-c.h"
#include "url.h"

#include <ctype.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define C_UNAUTHORIZED PORTICO__ERROR_CODE__UNAUTHORIZED
#define C_UPSTREAM PORTICO__ERROR_CODE__UPSTREAM
#define C_INTERNAL PORTICO__ERROR_CODE__INTERNAL

#define MAX_USERNAME 255
#define MAX_TOKEN 4096
#define MAX_PAGE_ITEMS 1000

/* ---- jansson's memory while a decoder runs ----
 *
 * jansson allocates every value, key and string of a document one by one
 * and frees them one by one again: a page of 25 repositories is some
 * 2,000 mallocs and frees, a third of this service's CPU per login. While
 * one of the decoders below runs, jansson takes its memory from one block
 * instead (a pointer bump; freeing does nothing), and when the decoder is
 * done the part it used is handed out again. A token answer's part is
 * wiped first (jansson used to free those strings unwiped).
 * What does not fit in the block (a larger answer) comes from malloc as
 * before. Outside a decoder, or on a thread that does not hold the block,
 * jansson's memory is plain malloc and free. The decoders keep nothing of
 * jansson's past their return (what they keep is strdup'ed). */

#define ARENA_SIZE (256 * 1024)
#define ARENA_ALIGN 16

static unsigned char s_arena[ARENA_SIZE] __attribute__((aligned(ARENA_ALIGN)));
static size_t s_arena_used;
static bool s_arena_secret; /* wipe what was used before handing it out again */
static atomic_flag s_arena_taken = ATOMIC_FLAG_INIT;
static _Thread_local int s_arena_depth; /* > 0: this thread holds the block */

static bool s_in_arena(const void *p)
{
    return (const unsigned char *)p >= s_arena && (const unsigned char *)p < s_arena + ARENA_SIZE;
}

static void *s_json_malloc(size_t n)
{
    if (s_arena_depth > 0) {
        size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
        if (need >= n && need <= ARENA_SIZE - s_arena_used) {
            void *p = s_arena + s_arena_used;
            s_arena_used += need;
            return p;
        }
    }
    return malloc(n);
}

static void s_json_free(void *p)
{
    if (!s_in_arena(p))
        free(p);
}

/* Before main, so no thread is using jansson while its allocator changes.
 * Not under AddressSanitizer (the fuzzers): there jansson's memory stays
 * malloc's, where overruns are caught. */
#if defined(__SANITIZE_ADDRESS__)
#define BB_JSON_ARENA 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BB_JSON_ARENA 0
#endif
#endif
#ifndef BB_JSON_ARENA
#define BB_JSON_ARENA 1
#endif

__attribute__((constructor)) static void s_json_alloc_init(void)
{
    if (BB_JSON_ARENA)
        json_set_alloc_funcs(s_json_malloc, s_json_free);
}

/* Around a decoder. Nested calls share the outer one's block; a second
 * thread meanwhile gets malloc. */
static void s_arena_enter(void)
{
    if (s_arena_depth > 0 || !atomic_flag_test_and_set(&s_arena_taken))
        s_arena_depth++;
}

static void s_arena_leave(bool secret)
{
    if (s_arena_depth == 0)
        return;
    s_arena_secret |= secret;
    if (--s_arena_depth > 0)
        return;
    if (s_arena_secret)
        explicit_bzero(s_arena, s_arena_used);
    s_arena_secret = false;
    s_arena_used = 0;
    atomic_flag_clear(&s_arena_taken);
}

/* ---- JSON helpers ---- */

static json_t *s_parse(const char *body, size_t len)
{
    if (!body || !len)
        return NULL;
    json_error_t jerr;
    return json_loadb(body, len, 0, &jerr);
}

/* A string member as a fresh string: "" when absent or null, -1 when it
 * has the wrong type or is too long (numbers are accepted as text). */
static int s_get_str(json_t *obj, const char *key, size_t max, char **out)
{
    *out = NULL;
    json_t *v = json_object_get(obj, key);
    char num[32];
    const char *s = "";
    if (json_is_string(v)) {
        s = json_string_value(v);
        if (json_string_length(v) > max || strlen(s) != json_string_length(v))
            return -1;
    } else if (json_is_integer(v)) {
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        s = num;
    } else if (v && !json_is_null(v)) {
        return -1;
    }
    *out = strdup(s);
    return *out ? 0 : -1;
}

/* An integer member: integers, and decimal strings (some proxies and old
 * versions quote ids). -1 when absent or unusable. */
static int s_get_int(json_t *obj, const char *key, long long min, long long max, long long *out)
{
    json_t *v = json_object_get(obj, key);
    long long n;
    if (json_is_integer(v)) {
        n = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        if (!*s || json_string_length(v) > 20 || !isdigit((unsigned char)s[0]))
            return -1;
        n = strtoll(s, &end, 10);
        if (*end)
            return -1;
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= (double)min && d <= (double)max) || d != (double)(long long)d)
            return -1;
        n = (long long)d;
    } else {
        return -1;
    }
    if (n < min || n > max)
        return -1;
    *out = n;
    return 0;
}

/* A boolean member; def when absent or null; -1 when of another type. */
static int s_get_bool(json_t *obj, const char *key, bool def, bool *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v))
        return -1;
    *out = json_is_true(v);
    return 0;
}

static void s_free_str(char **s)
{
    if (*s && *s != protobuf_c_empty_string)
        free(*s);
    *s = (char *)(uintptr_t)protobuf_c_empty_string;
}

static void s_wipe_str(char **s)
{
    if (*s && *s != protobuf_c_empty_string)
        explicit_bzero(*s, strlen(*s));
    s_free_str(s);
}

static bool s_success(long status)
{
    return status >= 200 && status <= 299;
}

static void s_bad_response(const bb_response_t *r, bus_error_t *err, const char *what)
{
    bus_error_set(err, C_UPSTREAM, DETAIL(BAD_RESPONSE), "Bitbucket at %s sent %s Portico cannot read",
                  bb_response_host(r), what);
}

/* ---- server.info ---- */

void bb_server_info_clear(Portico__Bitbucket__ServerInfoReply *m)
{
    s_free_str(&m->version);
    s_free_str(&m->build_number);
    s_free_str(&m->display_name);
}

static int s_decode_server_info(const bb_response_t *r, Portico__Bitbucket__ServerInfoReply *out, bus_error_t *err)
{
    portico__bitbucket__server_info_reply__init(out);
    if (!s_success(r->status)) {
        /* Bitbucket serves this resource to anyone: a 4xx other than
         * "who are you" or "slow down" means it is some other server. */
        long st = r->status;
        if (st >= 400 && st <= 499 && st != 401 && st != 403 && st != 429)
            goto not_bitbucket;
        bb_error_from_response(BB_API_SERVER_INFO, r, err);
        return -1;
    }
    json_t *root = s_parse(r->body, r->body_len);
    json_t *version = json_is_object(root) ? json_object_get(root, "version") : NULL;
    if (!json_is_string(version) || json_string_length(version) == 0 || json_string_length(version) > 64 ||
        s_get_str(root, "version", 64, &out->version) < 0 ||
        s_get_str(root, "buildNumber", 64, &out->build_number) < 0 ||
        s_get_str(root, "displayName", 256, &out->display_name) < 0) {
        json_decref(root);
        bb_server_info_clear(out);
        goto not_bitbucket;
    }
    json_decref(root);
    return 0;
not_bitbucket:
    bus_error_set(err, C_UPSTREAM, DETAIL(NOT_BITBUCKET),
                  "this does not look like a Bitbucket Data Center / Server instance: %s did not answer like one; "
                  "check the base URL, including any context path such as /bitbucket",
                  bb_response_host(r));
    return -1;
}

/* ---- oauth2.token ---- */

void bb_token_clear(Portico__Bitbucket__TokenReply *m)
{
    s_wipe_str(&m->access_token);
    s_wipe_str(&m->refresh_token);
    s_free_str(&m->scope);
    s_free_str(&m->token_type);
    m->expires_in = 0;
}

static int s_decode_token(const bb_response_t *r, Portico__Bitbucket__TokenReply *out, bus_error_t *err)
{
    portico__bitbucket__token_reply__init(out);
    if (!s_success(r->status)) {
        bb_error_from_response(BB_API_OAUTH2_TOKEN, r, err);
        return -1;
    }
    json_t *root = s_parse(r->body, r->body_len);
    if (!json_is_object(root)) {
        json_decref(root);
        s_bad_response(r, err, "a token answer");
        return -1;
    }
    json_t *at = json_object_get(root, "access_token");
    if (!json_is_string(at) || json_string_length(at) == 0) {
        /* Some servers answer an error with 200. */
        bb_response_t as400 = *r;
        as400.status = 400;
        if (bb_oauth2_error(&as400, err) != 0)
            s_bad_response(r, err, "a token answer without an access token");
        json_decref(root);
        return -1;
    }
    long long expires = 0;
    json_t *scope = json_object_get(root, "scope");
    /* GCM's Data Center client reads "scopes"; accept either. */
    const char *scope_key = scope ? "scope" : "scopes";
    if (s_get_str(root, "access_token", MAX_TOKEN, &out->access_token) < 0 ||
        s_get_str(root, "refresh_token", MAX_TOKEN, &out->refresh_token) < 0 ||
        s_get_str(root, "token_type", 64, &out->token_type) < 0 ||
        s_get_str(root, scope_key, BB_MAX_FIELD, &out->scope) < 0) {
        json_decref(root);
        bb_token_clear(out);
        s_bad_response(r, err, "a token answer with fields of the wrong type");
        return -1;
    }
    if (json_object_get(root, "expires_in") && s_get_int(root, "expires_in", 0, 10LL * 365 * 86400, &expires) < 0) {
        json_decref(root);
        bb_token_clear(out);
        s_bad_response(r, err, "a token answer with an unusable expires_in");
        return -1;
    }
    out->expires_in = expires;
    json_decref(root);
    if (out->token_type[0] && strcasecmp(out->token_type, "bearer") != 0) {
        char tt[64];
        bb_safe_text(out->token_type, strlen(out->token_type), tt, sizeof tt);
        bb_token_clear(out);
        bus_error_set(err, C_UPSTREAM, DETAIL(TOKEN_TYPE),
                      "Bitbucket at %s issued a token of type \"%s\", but Portico only uses bearer tokens",
                      bb_response_host(r), tt);
        return -1;
    }
    return 0;
}

/* ---- whoami ---- */

void bb_whoami_clear(Portico__Bitbucket__WhoAmIReply *m)
{
    s_free_str(&m->username);
    m->user_id = 0;
}

/* A username is one line of printable UTF-8. */
static bool s_username_ok(const char *s, size_t n)
{
    if (n == 0 || n > MAX_USERNAME || !bb_utf8_valid(s, n))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '<' || c == '>')
            return false;
    }
    return true;
}

static char *s_whoami_body(const bb_response_t *r)
{
    if (!r->body || r->body_len > 4096)
        return NULL;
    const char *p = r->body, *end = r->body + r->body_len;
    while (p < end && isspace((unsigned char)*p))
        p++;
    while (end > p && isspace((unsigned char)end[-1]))
        end--;
    if (!s_username_ok(p, (size_t)(end - p)) || memchr(p, '\0', (size_t)(end - p)))
        return NULL;
    return bb_text_dup(p, (size_t)(end - p));
}

static char *s_whoami_header(const bb_response_t *r)
{
    if (!r->x_ausername)
        return NULL;
    const char *p = r->x_ausername;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' || p[n - 1] == '\n'))
        n--;
    if (n == 0 || n > 3 * MAX_USERNAME)
        return NULL;
    char raw[3 * MAX_USERNAME + 1], dec[3 * MAX_USERNAME + 1];
    memcpy(raw, p, n);
    raw[n] = '\0';
    /* Bitbucket encodes it like Java's URLEncoder: '+' is a space. */
    if (url_decode(raw, true, dec, sizeof dec) < 0 || !s_username_ok(dec, strlen(dec)))
        return NULL;
    return strdup(dec);
}

int bb_decode_whoami(const bb_response_t *r, Portico__Bitbucket__WhoAmIReply *out, bus_error_t *err)
{
    portico__bitbucket__who_am_ireply__init(out);
    if (!s_success(r->status)) {
        bb_error_from_response(BB_API_WHOAMI, r, err);
        return -1;
    }
    /* The servlet answers 200 whatever happened; an empty name means the
     * credentials were not applied (anonymous). X-AUSERNAME is what
     * Bitbucket's authentication filter asserts (URL-decoded here); the
     * plain-text body is the fallback. */
    char *name = s_whoami_header(r);
    if (!name)
        name = s_whoami_body(r);
    if (!name) {
        bus_error_set(err, C_UNAUTHORIZED, DETAIL(ANONYMOUS),
                      "Bitbucket at %s did not accept the credentials: the request was handled as anonymous",
                      bb_response_host(r));
        return -1;
    }
    out->username = name;
    if (r->x_auserid) {
        char id[32];
        size_t o = 0;
        for (const char *p = r->x_auserid; *p && o + 1 < sizeof id; p++)
            if (*p != '"' && *p != ' ')
                id[o++] = *p;
        id[o] = '\0';
        char *end;
        long long v = o ? strtoll(id, &end, 10) : 0;
        if (o && !*end && v > 0)
            out->user_id = v;
    }
    return 0;
}

/* ---- users ---- */

void bb_user_clear(Portico__Bitbucket__User *m)
{
    s_free_str(&m->name);
    s_free_str(&m->slug);
    s_free_str(&m->display_name);
    s_free_str(&m->email);
    m->id = 0;
    m->active = 0;
}

/* One user object; -1 when it is not one. */
static int s_user_from_json(json_t *obj, Portico__Bitbucket__User *u)
{
    portico__bitbucket__user__init(u);
    long long id = 0;
    bool active = true;
    json_t *name = json_is_object(obj) ? json_object_get(obj, "name") : NULL;
    if (!json_is_string(name) || json_string_length(name) == 0)
        return -1;
    if (s_get_str(obj, "name", MAX_USERNAME, &u->name) < 0 || s_get_str(obj, "slug", MAX_USERNAME, &u->slug) < 0 ||
        s_get_str(obj, "displayName", BB_MAX_FIELD, &u->display_name) < 0 ||
        s_get_str(obj, "emailAddress", BB_MAX_FIELD, &u->email) < 0 || s_get_bool(obj, "active", true, &active) < 0 ||
        (json_object_get(obj, "id") && s_get_int(obj, "id", 0, INT64_MAX, &id) < 0)) {
        bb_user_clear(u);
        return -1;
    }
    /* Missing slug: the name is the best guess (slugs differ only for
     * names with characters such as '@'). */
    if (!u->slug[0]) {
        char *slug = strdup(u->name);
        if (!slug) {
            bb_user_clear(u);
            return -1;
        }
        s_free_str(&u->slug);
        u->slug = slug;
    }
    u->id = id;
    u->active = active;
    return 0;
}

static int s_decode_user(const bb_response_t *r, Portico__Bitbucket__User *out, bus_error_t *err)
{
    portico__bitbucket__user__init(out);
    if (!s_success(r->status)) {
        bb_error_from_response(BB_API_REST, r, err);
        return -1;
    }
    json_t *root = s_parse(r->body, r->body_len);
    int rc = s_user_from_json(root, out);
    json_decref(root);
    if (rc < 0)
        s_bad_response(r, err, "a user");
    return rc;
}

/* A paged answer: the values array, isLastPage and nextPageStart. */
static int s_page(const bb_response_t *r, json_t *root, long long start, json_t **values, bool *last, int32_t *next,
                  bus_error_t *err)
{
    *values = json_is_object(root) ? json_object_get(root, "values") : NULL;
    if (!json_is_array(*values)) {
        s_bad_response(r, err, "a page without values");
        return -1;
    }
    json_t *jlast = json_object_get(root, "isLastPage");
    json_t *jnext = json_object_get(root, "nextPageStart");
    long long n = 0;
    bool has_next = jnext && !json_is_null(jnext);
    if (has_next && s_get_int(root, "nextPageStart", 0, INT32_MAX, &n) < 0) {
        s_bad_response(r, err, "a page with an unusable nextPageStart");
        return -1;
    }
    if (jlast && !json_is_null(jlast)) {
        if (!json_is_boolean(jlast)) {
            s_bad_response(r, err, "a page with an unusable isLastPage");
            return -1;
        }
        *last = json_is_true(jlast);
    } else {
        *last = !has_next;
    }
    if (*last) {
        *next = 0;
        return 0;
    }
    if (!has_next || n <= start) {
        bus_error_set(err, C_UPSTREAM, DETAIL(BAD_PAGING),
                      "Bitbucket at %s sent a page that is not the last one but does not say where the next starts",
                      bb_response_host(r));
        return -1;
    }
    *next = (int32_t)n;
    return 0;
}

void bb_users_clear(Portico__Bitbucket__FindUsersReply *m)
{
    for (size_t i = 0; i < m->n_users; i++) {
        bb_user_clear(m->users[i]);
        free(m->users[i]);
    }
    free(m->users);
    m->users = NULL;
    m->n_users = 0;
}

static int s_decode_users(const bb_response_t *r, Portico__Bitbucket__FindUsersReply *out, size_t *skipped,
                          bus_error_t *err)
{
    portico__bitbucket__find_users_reply__init(out);
    out->n_users = 0; /* as init does; said here for static analysers */
    *skipped = 0;
    if (!s_success(r->status)) {
        bb_error_from_response(BB_API_REST, r, err);
        return -1;
    }
    json_t *root = s_parse(r->body, r->body_len);
    json_t *values = json_is_object(root) ? json_object_get(root, "values") : NULL;
    int rc = -1;
    /* Only the first page is used (the filter matches substrings and the
     * caller picks the exact name), so its paging fields do not matter. */
    if (!json_is_array(values)) {
        s_bad_response(r, err, "a page without values");
        goto out;
    }
    size_t n = json_array_size(values);
    if (n > MAX_PAGE_ITEMS)
        n = MAX_PAGE_ITEMS;
    out->users = calloc(n ? n : 1, sizeof *out->users);
    if (!out->users)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        Portico__Bitbucket__User *u = malloc(sizeof *u);
        if (!u)
            goto oom;
        if (s_user_from_json(json_array_get(values, i), u) < 0) {
            free(u);
            (*skipped)++;
            continue;
        }
        out->users[out->n_users++] = u;
    }
    rc = 0;
    goto out;
oom:
    bb_users_clear(out);
    bus_error_set(err, C_INTERNAL, DETAIL(NONE), "out of memory");
out:
    json_decref(root);
    return rc;
}

/* ---- repositories ---- */

static void s_repo_clear(Portico__Bitbucket__Repository *m)
{
    s_free_str(&m->project_key);
    s_free_str(&m->project_name);
    s_free_str(&m->slug);
    s_free_str(&m->name);
    s_free_str(&m->browse_url);
    s_free_str(&m->clone_http);
    s_free_str(&m->clone_ssh);
}

void bb_repos_clear(Portico__Bitbucket__ListReposReply *m)
{
    for (size_t i = 0; i < m->n_repositories; i++) {
        s_repo_clear(m->repositories[i]);
        free(m->repositories[i]);
    }
    free(m->repositories);
    m->repositories = NULL;
    m->n_repositories = 0;
    m->is_last_page = 0;
    m->next_page_start = 0;
}

/* links.<rel>: an array of {href, name}; the href of the first entry with
 * this name (any entry when name is NULL). "" when there is none. */
static int s_link(json_t *obj, const char *rel, const char *name, char **out)
{
    *out = NULL;
    json_t *links = json_object_get(obj, "links");
    json_t *arr = json_is_object(links) ? json_object_get(links, rel) : NULL;
    size_t i;
    json_t *item;
    if (json_is_array(arr)) {
        json_array_foreach(arr, i, item)
        {
            if (!json_is_object(item))
                continue;
            const char *n = json_string_value(json_object_get(item, "name"));
            if (name && (!n || strcmp(n, name) != 0))
                continue;
            json_t *href = json_object_get(item, "href");
            if (!json_is_string(href))
                continue;
            return s_get_str(item, "href", BB_MAX_FIELD, out);
        }
    }
    *out = strdup("");
    return *out ? 0 : -1;
}

static int s_repo_from_json(json_t *obj, Portico__Bitbucket__Repository *m)
{
    portico__bitbucket__repository__init(m);
    bool pub = false;
    json_t *slug = json_is_object(obj) ? json_object_get(obj, "slug") : NULL;
    json_t *project = json_is_object(obj) ? json_object_get(obj, "project") : NULL;
    json_t *key = json_is_object(project) ? json_object_get(project, "key") : NULL;
    if (!json_is_string(slug) || json_string_length(slug) == 0 || !json_is_string(key) || json_string_length(key) == 0)
        return -1;
    if (s_get_str(obj, "slug", BB_MAX_FIELD, &m->slug) < 0 || s_get_str(obj, "name", BB_MAX_FIELD, &m->name) < 0 ||
        s_get_bool(obj, "public", false, &pub) < 0 || s_get_str(project, "key", BB_MAX_FIELD, &m->project_key) < 0 ||
        s_get_str(project, "name", BB_MAX_FIELD, &m->project_name) < 0 ||
        s_link(obj, "self", NULL, &m->browse_url) < 0 || s_link(obj, "clone", "http", &m->clone_http) < 0 ||
        s_link(obj, "clone", "ssh", &m->clone_ssh) < 0) {
        s_repo_clear(m);
        return -1;
    }
    if (!m->clone_http[0]) {
        /* Some versions name the HTTPS clone link "https". */
        s_free_str(&m->clone_http);
        if (s_link(obj, "clone", "https", &m->clone_http) < 0) {
            s_repo_clear(m);
            return -1;
        }
    }
    if (!m->name[0]) {
        char *n = strdup(m->slug);
        if (!n) {
            s_repo_clear(m);
            return -1;
        }
        s_free_str(&m->name);
        m->name = n;
    }
    m->public_ = pub;
    return 0;
}

static int s_decode_repos(const bb_response_t *r, int32_t start, Portico__Bitbucket__ListReposReply *out,
                          size_t *skipped, bus_error_t *err)
{
    portico__bitbucket__list_repos_reply__init(out);
    out->n_repositories = 0; /* as init does; said here for static analysers */
    *skipped = 0;
    if (!s_success(r->status)) {
        bb_error_from_response(BB_API_REST, r, err);
        return -1;
    }
    json_t *root = s_parse(r->body, r->body_len), *values;
    bool last;
    int32_t next;
    int rc = -1;
    if (s_page(r, root, start, &values, &last, &next, err) < 0)
        goto out;
    size_t n = json_array_size(values);
    if (n > MAX_PAGE_ITEMS)
        n = MAX_PAGE_ITEMS;
    out->repositories = calloc(n ? n : 1, sizeof *out->repositories);
    if (!out->repositories)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        Portico__Bitbucket__Repository *m = malloc(sizeof *m);
        if (!m)
            goto oom;
        if (s_repo_from_json(json_array_get(values, i), m) < 0) {
            free(m);
            (*skipped)++;
            continue;
        }
        out->repositories[out->n_repositories++] = m;
    }
    out->is_last_page = last;
    out->next_page_start = next;
    rc = 0;
    goto out;
oom:
    bb_repos_clear(out);
    bus_error_set(err, C_INTERNAL, DETAIL(NONE), "out of memory");
out:
    json_decref(root);
    return rc;
}

/* ---- OAuth 1 tokens ---- */

void bb_oauth1_token_clear(Portico__Bitbucket__OAuth1TokenReply *m)
{
    s_wipe_str(&m->token);
    s_wipe_str(&m->token_secret);
    m->expires_in = 0;
}

static bool s_token_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_TOKEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

int bb_decode_oauth1_token(const bb_response_t *r, Portico__Bitbucket__OAuth1TokenReply *out, bus_error_t *err)
{
    portico__bitbucket__oauth1_token_reply__init(out);
    char problem[64];
    if (!s_success(r->status)) {
        bb_error_from_response(BB_API_OAUTH1, r, err);
        return -1;
    }
    if (bb_oauth_problem(NULL, r->body, r->body_len, problem, sizeof problem) == 0) {
        bb_oauth1_problem_error(problem, 401, bb_response_host(r), err);
        return -1;
    }
    char *token = bb_form_get(r->body, r->body_len, "oauth_token");
    char *secret = bb_form_get(r->body, r->body_len, "oauth_token_secret");
    char *expires = bb_form_get(r->body, r->body_len, "oauth_expires_in");
    if (!token || !secret || !s_token_ok(token) || !s_token_ok(secret)) {
        if (token)
            explicit_bzero(token, strlen(token));
        if (secret)
            explicit_bzero(secret, strlen(secret));
        free(token);
        free(secret);
        free(expires);
        s_bad_response(r, err, "an OAuth 1 token answer");
        return -1;
    }
    out->token = token;
    out->token_secret = secret;
    if (expires) {
        char *end;
        long long v = strtoll(expires, &end, 10);
        if (*expires && !*end && v > 0)
            out->expires_in = v;
        free(expires);
    }
    return 0;
}

/* ---- the JSON decoders, each with jansson in the block above ---- */

int bb_decode_server_info(const bb_response_t *r, Portico__Bitbucket__ServerInfoReply *out, bus_error_t *err)
{
    s_arena_enter();
    int rc = s_decode_server_info(r, out, err);
    s_arena_leave(false);
    return rc;
}

int bb_decode_token(const bb_response_t *r, Portico__Bitbucket__TokenReply *out, bus_error_t *err)
{
    s_arena_enter();
    int rc = s_decode_token(r, out, err);
    s_arena_leave(true);
    return rc;
}

int bb_decode_user(const bb_response_t *r, Portico__Bitbucket__User *out, bus_error_t *err)
{
    s_arena_enter();
    int rc = s_decode_user(r, out, err);
    s_arena_leave(false);
    return rc;
}

int bb_decode_users(const bb_response_t *r, Portico__Bitbucket__FindUsersReply *out, size_t *skipped, bus_error_t *err)
{
    s_arena_enter();
    int rc = s_decode_users(r, out, skipped, err);
    s_arena_leave(false);
    return rc;
}

int bb_decode_repos(const bb_response_t *r, int32_t start, Portico__Bitbucket__ListReposReply *out, size_t *skipped,
                    bus_error_t *err)
{
    s_arena_enter();
    int rc = s_decode_repos(r, start, out, skipped, err);
    s_arena_leave(false);
    return rc;
}
