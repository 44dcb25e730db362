/* The paged answers (repositories, users) are read with bb_pick (yajl)
 * instead of jansson: this test keeps the jansson decoders they replaced
 * (below, as they were) and runs both on a corpus (the fuzz seeds, the
 * shapes of the other tests, every field of a page with each wrong type,
 * missing, null and duplicated, nesting around jansson's depth limit, bad
 * UTF-8 and escapes, huge numbers, every truncation of a page and seeded
 * random mutations), comparing results, errors and every decoded field.
 * Two differences are allowed, each checked for what it is: a number too
 * big for jansson where a decoder does not look no longer fails the page
 * (the decoder makes the same of the body with a 0 there, and agrees with
 * jansson on that body), and a NUL byte jansson passed over is refused
 * (without the NUL bytes the two agree). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bitbucket/bb_json.h"
#include "bitbucket/bb_status.h"
#include "envelope.pb-c.h"

#include <ctype.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define C_UPSTREAM PORTICO__ERROR_CODE__UPSTREAM
#define C_INTERNAL PORTICO__ERROR_CODE__INTERNAL
#define MAX_USERNAME 255
#define MAX_PAGE_ITEMS 1000

/* ---- the jansson decoders, as they were ---- */

static bool s_success(long status)
{
    return status >= 200 && status <= 299;
}

static json_t *ref_parse(const char *body, size_t len)
{
    if (!body || !len)
        return NULL;
    json_error_t jerr;
    return json_loadb(body, len, 0, &jerr);
}

/* A string member as a fresh string: "" when absent or null, -1 when it
 * has the wrong type or is too long (numbers are accepted as text). */
static int ref_get_str(json_t *obj, const char *key, size_t max, char **out)
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
static int ref_get_int(json_t *obj, const char *key, long long min, long long max, long long *out)
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
static int ref_get_bool(json_t *obj, const char *key, bool def, bool *out)
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

static void ref_free_str(char **s)
{
    if (*s && *s != protobuf_c_empty_string)
        free(*s);
    *s = (char *)(uintptr_t)protobuf_c_empty_string;
}

static void ref_bad_response(const bb_response_t *r, bus_error_t *err, const char *what)
{
    bus_error_set(err, C_UPSTREAM, DETAIL(BAD_RESPONSE), "Bitbucket at %s sent %s Portico cannot read",
                  bb_response_host(r), what);
}

/* One user object; -1 when it is not one. */
static int ref_user_from_json(json_t *obj, Portico__Bitbucket__User *u)
{
    portico__bitbucket__user__init(u);
    long long id = 0;
    bool active = true;
    json_t *name = json_is_object(obj) ? json_object_get(obj, "name") : NULL;
    if (!json_is_string(name) || json_string_length(name) == 0)
        return -1;
    if (ref_get_str(obj, "name", MAX_USERNAME, &u->name) < 0 || ref_get_str(obj, "slug", MAX_USERNAME, &u->slug) < 0 ||
        ref_get_str(obj, "displayName", BB_MAX_FIELD, &u->display_name) < 0 ||
        ref_get_str(obj, "emailAddress", BB_MAX_FIELD, &u->email) < 0 ||
        ref_get_bool(obj, "active", true, &active) < 0 ||
        (json_object_get(obj, "id") && ref_get_int(obj, "id", 0, INT64_MAX, &id) < 0)) {
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
        ref_free_str(&u->slug);
        u->slug = slug;
    }
    u->id = id;
    u->active = active;
    return 0;
}

/* A paged answer: the values array, isLastPage and nextPageStart. */
static int ref_page(const bb_response_t *r, json_t *root, long long start, json_t **values, bool *last, int32_t *next,
                    bus_error_t *err)
{
    *values = json_is_object(root) ? json_object_get(root, "values") : NULL;
    if (!json_is_array(*values)) {
        ref_bad_response(r, err, "a page without values");
        return -1;
    }
    json_t *jlast = json_object_get(root, "isLastPage");
    json_t *jnext = json_object_get(root, "nextPageStart");
    long long n = 0;
    bool has_next = jnext && !json_is_null(jnext);
    if (has_next && ref_get_int(root, "nextPageStart", 0, INT32_MAX, &n) < 0) {
        ref_bad_response(r, err, "a page with an unusable nextPageStart");
        return -1;
    }
    if (jlast && !json_is_null(jlast)) {
        if (!json_is_boolean(jlast)) {
            ref_bad_response(r, err, "a page with an unusable isLastPage");
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

static int ref_decode_users(const bb_response_t *r, Portico__Bitbucket__FindUsersReply *out, size_t *skipped,
                            bus_error_t *err)
{
    portico__bitbucket__find_users_reply__init(out);
    out->n_users = 0; /* as init does; said here for static analysers */
    *skipped = 0;
    if (!s_success(r->status)) {
        bb_error_from_response(BB_API_REST, r, err);
        return -1;
    }
    json_t *root = ref_parse(r->body, r->body_len);
    json_t *values = json_is_object(root) ? json_object_get(root, "values") : NULL;
    int rc = -1;
    /* Only the first page is used (the filter matches substrings and the
     * caller picks the exact name), so its paging fields do not matter. */
    if (!json_is_array(values)) {
        ref_bad_response(r, err, "a page without values");
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
        if (ref_user_from_json(json_array_get(values, i), u) < 0) {
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

static void ref_repo_clear(Portico__Bitbucket__Repository *m)
{
    ref_free_str(&m->project_key);
    ref_free_str(&m->project_name);
    ref_free_str(&m->slug);
    ref_free_str(&m->name);
    ref_free_str(&m->browse_url);
    ref_free_str(&m->clone_http);
    ref_free_str(&m->clone_ssh);
}

/* links.<rel>: an array of {href, name}; the href of the first entry with
 * this name (any entry when name is NULL). "" when there is none. */
static int ref_link(json_t *obj, const char *rel, const char *name, char **out)
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
            return ref_get_str(item, "href", BB_MAX_FIELD, out);
        }
    }
    *out = strdup("");
    return *out ? 0 : -1;
}

static int ref_repo_from_json(json_t *obj, Portico__Bitbucket__Repository *m)
{
    portico__bitbucket__repository__init(m);
    bool pub = false;
    json_t *slug = json_is_object(obj) ? json_object_get(obj, "slug") : NULL;
    json_t *project = json_is_object(obj) ? json_object_get(obj, "project") : NULL;
    json_t *key = json_is_object(project) ? json_object_get(project, "key") : NULL;
    if (!json_is_string(slug) || json_string_length(slug) == 0 || !json_is_string(key) || json_string_length(key) == 0)
        return -1;
    if (ref_get_str(obj, "slug", BB_MAX_FIELD, &m->slug) < 0 || ref_get_str(obj, "name", BB_MAX_FIELD, &m->name) < 0 ||
        ref_get_bool(obj, "public", false, &pub) < 0 ||
        ref_get_str(project, "key", BB_MAX_FIELD, &m->project_key) < 0 ||
        ref_get_str(project, "name", BB_MAX_FIELD, &m->project_name) < 0 ||
        ref_link(obj, "self", NULL, &m->browse_url) < 0 || ref_link(obj, "clone", "http", &m->clone_http) < 0 ||
        ref_link(obj, "clone", "ssh", &m->clone_ssh) < 0) {
        ref_repo_clear(m);
        return -1;
    }
    if (!m->clone_http[0]) {
        /* Some versions name the HTTPS clone link "https". */
        ref_free_str(&m->clone_http);
        if (ref_link(obj, "clone", "https", &m->clone_http) < 0) {
            ref_repo_clear(m);
            return -1;
        }
    }
    if (!m->name[0]) {
        char *n = strdup(m->slug);
        if (!n) {
            ref_repo_clear(m);
            return -1;
        }
        ref_free_str(&m->name);
        m->name = n;
    }
    m->public_ = pub;
    return 0;
}

static int ref_decode_repos(const bb_response_t *r, int32_t start, Portico__Bitbucket__ListReposReply *out,
                            size_t *skipped, bus_error_t *err)
{
    portico__bitbucket__list_repos_reply__init(out);
    out->n_repositories = 0; /* as init does; said here for static analysers */
    *skipped = 0;
    if (!s_success(r->status)) {
        bb_error_from_response(BB_API_REST, r, err);
        return -1;
    }
    json_t *root = ref_parse(r->body, r->body_len), *values;
    bool last;
    int32_t next;
    int rc = -1;
    if (ref_page(r, root, start, &values, &last, &next, err) < 0)
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
        if (ref_repo_from_json(json_array_get(values, i), m) < 0) {
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

/* ---- comparing ---- */

typedef struct {
    size_t bodies; /* compared */
    size_t exempt; /* jansson refused a huge number the decoders do not read */
    size_t ok;     /* bodies where the repositories decoder succeeded */
    size_t nul;    /* jansson passed over a NUL byte */
} s_stats_t;

static s_stats_t s_stats;

static void s_show(const char *body, size_t len)
{
    fprintf(stderr, "body (%zu bytes): ", len);
    for (size_t i = 0; i < len && i < 600; i++) {
        unsigned char c = (unsigned char)body[i];
        if (c >= 0x20 && c < 0x7f)
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fputc('\n', stderr);
}

static bool s_jansson_number_overflow(const char *body, size_t len)
{
    json_error_t e;
    json_t *j = json_loadb(body, len, 0, &e);
    json_decref(j);
    return !j && json_error_code(&e) == json_error_numeric_overflow;
}

static void s_same_error(const char *what, int rc_ref, int rc_new, const bus_error_t *a, const bus_error_t *b,
                         const char *body, size_t len)
{
    if (rc_ref != rc_new) {
        s_show(body, len);
        fail_msg("%s: jansson gave %d (%s), bb_pick %d (%s)", what, rc_ref, rc_ref ? a->message : "", rc_new,
                 rc_new ? b->message : "");
    }
    if (rc_ref == 0)
        return;
    if (a->code != b->code || a->detail != b->detail || strcmp(a->message, b->message) != 0) {
        s_show(body, len);
        fail_msg("%s: errors differ: %d/%d \"%s\" vs %d/%d \"%s\"", what, a->code, a->detail, a->message, b->code,
                 b->detail, b->message);
    }
}

static void s_compare(const char *text, size_t len, int32_t start);

/* The second difference: jansson passes over a NUL byte right after a
 * number or a literal (its look-ahead puts the byte back, where its
 * buffer reads it as its own end); a NUL is not JSON and the page
 * decoders refuse it. true when jansson took the document: then both page
 * decoders must refuse it, and agree with jansson once the NUL bytes are
 * gone. */
static bool s_jansson_passes_nul(const bb_response_t *r, int32_t start)
{
    json_error_t e;
    json_t *j = json_loadb(r->body, r->body_len, 0, &e);
    if (!j)
        return false;
    json_decref(j);
    s_stats.nul++;
    Portico__Bitbucket__ListReposReply repos;
    Portico__Bitbucket__FindUsersReply users;
    bus_error_t err;
    size_t skipped;
    if (bb_decode_repos(r, start, &repos, &skipped, &err) != -1 || !strstr(err.message, "a page without values") ||
        bb_decode_users(r, &users, &skipped, &err) != -1 || !strstr(err.message, "a page without values")) {
        s_show(r->body, r->body_len);
        fail_msg("a NUL byte was not refused");
    }
    char *clean = malloc(r->body_len + 1);
    assert_non_null(clean);
    size_t n = 0;
    for (size_t i = 0; i < r->body_len; i++)
        if (r->body[i])
            clean[n++] = r->body[i];
    s_compare(clean, n, start);
    free(clean);
    return true;
}

/* What the page decoders make of a body, in brief. */
typedef struct {
    int rc_repos, rc_users;
    bus_error_t err_repos, err_users;
    size_t n_repos, n_users, skipped_repos, skipped_users;
} s_brief_t;

static void s_brief(const bb_response_t *r, int32_t start, s_brief_t *b)
{
    Portico__Bitbucket__ListReposReply repos;
    Portico__Bitbucket__FindUsersReply users;
    memset(b, 0, sizeof *b);
    b->rc_repos = bb_decode_repos(r, start, &repos, &b->skipped_repos, &b->err_repos);
    if (b->rc_repos == 0) {
        b->n_repos = repos.n_repositories;
        bb_repos_clear(&repos);
    }
    b->rc_users = bb_decode_users(r, &users, &b->skipped_users, &b->err_users);
    if (b->rc_users == 0) {
        b->n_users = users.n_users;
        bb_users_clear(&users);
    }
}

static bool s_brief_same_repos(const s_brief_t *a, const s_brief_t *b)
{
    return a->rc_repos == b->rc_repos && a->n_repos == b->n_repos && a->skipped_repos == b->skipped_repos &&
           (a->rc_repos == 0 || strcmp(a->err_repos.message, b->err_repos.message) == 0);
}

static bool s_brief_same_users(const s_brief_t *a, const s_brief_t *b)
{
    return a->rc_users == b->rc_users && a->n_users == b->n_users && a->skipped_users == b->skipped_users &&
           (a->rc_users == 0 || strcmp(a->err_users.message, b->err_users.message) == 0);
}

/* The deliberate difference: jansson refuses a whole document for a number
 * too big for it, wherever it is. The body with a 0 in that number's
 * place (fresh), or NULL when jansson did not refuse it for that. A
 * decoder that does not read the number makes the same of both bodies;
 * one that reads it fails the page as jansson did. */
static char *s_huge_number_zeroed(const bb_response_t *r, size_t *len)
{
    json_error_t e;
    json_t *j = json_loadb(r->body, r->body_len, 0, &e);
    json_decref(j);
    if (j || json_error_code(&e) != json_error_numeric_overflow)
        return NULL;
    /* jansson stops right after the number. */
    size_t end = (size_t)e.position, at = end;
    while (at > 0 && strchr("0123456789.eE+-", r->body[at - 1]))
        at--;
    assert_true(end <= r->body_len && at < end);
    char *zero = malloc(r->body_len + 1);
    assert_non_null(zero);
    memcpy(zero, r->body, at);
    zero[at] = '0';
    memcpy(zero + at + 1, r->body + end, r->body_len - end);
    *len = r->body_len - (end - at) + 1;
    return zero;
}

/* Whether the decoders make the same of the body with the huge number as
 * of the one with a 0 for it (*repos, *users). */
static void s_huge_number_unread(const bb_response_t *r, const char *zero, size_t zero_len, int32_t start, bool *repos,
                                 bool *users)
{
    bb_response_t r0 = *r;
    r0.body = zero;
    r0.body_len = zero_len;
    s_brief_t huge, zeroed;
    s_brief(r, start, &huge);
    s_brief(&r0, start, &zeroed);
    *repos = s_brief_same_repos(&huge, &zeroed);
    *users = s_brief_same_users(&huge, &zeroed);
}

#define SAME_STR(x, y)                                                                                                 \
    do {                                                                                                               \
        if (strcmp((x), (y)) != 0) {                                                                                   \
            s_show(body, len);                                                                                         \
            fail_msg("field %s: \"%s\" vs \"%s\"", #x, (x), (y));                                                      \
        }                                                                                                              \
    } while (0)
#define SAME_NUM(x, y)                                                                                                 \
    do {                                                                                                               \
        if ((long long)(x) != (long long)(y)) {                                                                        \
            s_show(body, len);                                                                                         \
            fail_msg("field %s: %lld vs %lld", #x, (long long)(x), (long long)(y));                                    \
        }                                                                                                              \
    } while (0)

/* Both decoders on one body; a difference fails the test. */
static void s_compare(const char *text, size_t len, int32_t start)
{
    /* An exact copy, so that nothing reads past it unnoticed. */
    char *body = malloc(len ? len : 1);
    assert_non_null(body);
    memcpy(body, text, len);
    bb_response_t r;
    memset(&r, 0, sizeof r);
    r.status = 200;
    r.body = body;
    r.body_len = len;
    r.host = "git.example.com";
    s_stats.bodies++;
    if (memchr(body, '\0', len) && s_jansson_passes_nul(&r, start)) {
        free(body);
        return;
    }
    size_t zero_len = 0;
    char *zero = s_huge_number_zeroed(&r, &zero_len);
    bool unread_repos = false, unread_users = false;
    if (zero)
        s_huge_number_unread(&r, zero, zero_len, start, &unread_repos, &unread_users);

    Portico__Bitbucket__ListReposReply ra, rb;
    bus_error_t ea, eb;
    size_t sa = 0, sb = 0;
    int rc_a = ref_decode_repos(&r, start, &ra, &sa, &ea);
    int rc_b = bb_decode_repos(&r, start, &rb, &sb, &eb);
    if (!unread_repos)
        s_same_error("repositories", rc_a, rc_b, &ea, &eb, body, len);
    if (rc_a == 0 && rc_b == 0) {
        s_stats.ok++;
        SAME_NUM(sa, sb);
        SAME_NUM(ra.n_repositories, rb.n_repositories);
        SAME_NUM(ra.is_last_page, rb.is_last_page);
        SAME_NUM(ra.next_page_start, rb.next_page_start);
        for (size_t i = 0; i < ra.n_repositories; i++) {
            const Portico__Bitbucket__Repository *x = ra.repositories[i], *y = rb.repositories[i];
            SAME_STR(x->slug, y->slug);
            SAME_STR(x->name, y->name);
            SAME_STR(x->project_key, y->project_key);
            SAME_STR(x->project_name, y->project_name);
            SAME_STR(x->browse_url, y->browse_url);
            SAME_STR(x->clone_http, y->clone_http);
            SAME_STR(x->clone_ssh, y->clone_ssh);
            SAME_NUM(x->public_, y->public_);
        }
    }
    if (rc_a == 0)
        bb_repos_clear(&ra);
    if (rc_b == 0)
        bb_repos_clear(&rb);

    Portico__Bitbucket__FindUsersReply ua, ub;
    rc_a = ref_decode_users(&r, &ua, &sa, &ea);
    rc_b = bb_decode_users(&r, &ub, &sb, &eb);
    if (!unread_users)
        s_same_error("users", rc_a, rc_b, &ea, &eb, body, len);
    if (rc_a == 0 && rc_b == 0) {
        SAME_NUM(sa, sb);
        SAME_NUM(ua.n_users, ub.n_users);
        for (size_t i = 0; i < ua.n_users; i++) {
            const Portico__Bitbucket__User *x = ua.users[i], *y = ub.users[i];
            SAME_STR(x->name, y->name);
            SAME_STR(x->slug, y->slug);
            SAME_STR(x->display_name, y->display_name);
            SAME_STR(x->email, y->email);
            SAME_NUM(x->id, y->id);
            SAME_NUM(x->active, y->active);
        }
    }
    if (rc_a == 0)
        bb_users_clear(&ua);
    if (rc_b == 0)
        bb_users_clear(&ub);
    if (zero && (unread_repos || unread_users)) {
        s_stats.exempt++;
        s_compare(zero, zero_len, start);
    }
    free(zero);
    free(body);
}

static void s_compare_str(const char *body)
{
    s_compare(body, strlen(body), 0);
    s_compare(body, strlen(body), 25);
}

/* ---- a page with slots ----
 *
 * A template: "{X}" is slot X, replaced by its member text (which may hold
 * slots itself). A variation replaces one slot. */

typedef struct {
    char name;
    const char *text;
} s_slot_t;

/* Repositories: the second entry is made of slots, the others are fixed.
 * The users' fields are in the same entry, so one body serves both. */
static const s_slot_t s_slots[] = {
    {'P', "{\"size\":3,\"limit\":25,{L},\"values\":[{0},{R},\"x\",{0}],\"start\":25,{N}}"},
    {'0',
     "{\"slug\":\"a\",\"name\":\"A\",\"project\":{\"key\":\"K\"},\"public\":true,"
     "\"links\":{\"clone\":[{\"href\":\"ssh://h/a.git\",\"name\":\"ssh\"}],\"self\":[{\"href\":\"https://h/a\"}]}}"},
    {'R', "{{S},\"id\":7,{M},\"scmId\":\"git\",\"state\":\"AVAILABLE\",\"statusMessage\":\"Available\",{p},{B},{K},"
          "{D},{E},{A},{I}}"},
    {'S', "\"slug\":\"portico\""},
    {'M', "\"name\":\"Portico\""},
    {'p', "\"project\":{{k},\"id\":1,{n},\"public\":false,\"type\":\"NORMAL\"}"},
    {'k', "\"key\":\"PRJ\""},
    {'n', "\"name\":\"Project\""},
    {'B', "\"public\":false"},
    {'K', "\"links\":{{C},{F}}"},
    {'C', "\"clone\":[{c},{h},{t}]"},
    {'c', "{\"href\":\"ssh://git@h:7999/prj/portico.git\",\"name\":\"ssh\"}"},
    {'h', "{{H},{Q}}"},
    {'H', "\"href\":\"https://h/scm/prj/portico.git\""},
    {'Q', "\"name\":\"http\""},
    {'t', "{\"href\":\"https://h/tls.git\",\"name\":\"https\"}"},
    {'F', "\"self\":[{f}]"},
    {'f', "{{G}}"},
    {'G', "\"href\":\"https://h/projects/PRJ/repos/portico/browse\""},
    {'D', "\"displayName\":\"Jane\""},
    {'E', "\"emailAddress\":\"jane@example.com\""},
    {'A', "\"active\":true"},
    {'I', "\"x-id\":1"},
    {'L', "\"isLastPage\":false"},
    {'N', "\"nextPageStart\":50"},
};
#define N_SLOTS (sizeof s_slots / sizeof s_slots[0])

typedef struct {
    char *s;
    size_t len, cap;
} s_buf_t;

static void s_put(s_buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        assert_non_null(b->s);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void s_expand(s_buf_t *b, const char *tpl, char slot, const char *text)
{
    for (const char *p = tpl; *p; p++) {
        if (p[0] == '{' && p[1] && p[2] == '}') {
            const char *t = NULL;
            if (p[1] == slot)
                t = text;
            for (size_t i = 0; !t && i < N_SLOTS; i++)
                if (s_slots[i].name == p[1])
                    t = s_slots[i].text;
            if (t) {
                s_expand(b, t, slot, text);
                p += 2;
                continue;
            }
        }
        s_put(b, p, 1);
    }
}

/* The page with slot replaced by text (slot 0: none). Fresh. */
static char *s_page_with(char slot, const char *text)
{
    s_buf_t b = {0};
    s_expand(&b, "{P}", slot, text);
    return b.s;
}

/* A member's key: the text up to its first ':' (for slots that are
 * members). NULL when the slot is not a member (an array entry). */
static char *s_member_key(const char *member)
{
    if (member[0] != '"')
        return NULL;
    const char *colon = strstr(member, "\":");
    if (!colon)
        return NULL;
    size_t n = (size_t)(colon - member) + 1;
    char *k = malloc(n + 1);
    assert_non_null(k);
    memcpy(k, member, n);
    k[n] = '\0';
    return k;
}

static const char *s_values[] = {
    "\"x\"",
    "\"\"",
    "0",
    "5",
    "-1",
    "25",
    "50",
    "5.0",
    "25.0",
    "2.5",
    "-0",
    "-0.0",
    "1e1",
    "2.5e1",
    "1e400",
    "-1e400",
    "1e-400",
    "99999999999999999999",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "2147483647",
    "2147483648",
    "true",
    "false",
    "null",
    "[]",
    "{}",
    "[1]",
    "{\"a\":1}",
    "[\"http\"]",
    "\"\\u0000\"",
    "\"a\\u0000b\"",
    "\"\\uD800\"",
    "\"\\uDC00\"",
    "\"\\uD83D\\uDE00\"",
    "\"\\uD800\\u0041\"",
    "\"a\\/b\"",
    "\"\\u00e9\"",
    "\"\xc3\xa9\"",
    "\"25\"",
    "\"50\"",
    "\" 25\"",
    "\"+5\"",
    "\"-5\"",
    "\"12345678901234567890\"",
    "\"123456789012345678901\"",
    "\"99999999999999999999\"",
    "\"5x\"",
    "\"0\"",
    "\"http\"",
    "\"ssh\"",
    "\"https\"",
    "\"ht\\u0074p\"",
    "\"tr\\u0075e\"",
    "{\"href\":\"x\",\"name\":\"http\"}",
    "[{\"href\":\"x\",\"name\":\"http\"}]",
    "[{\"href\":\"y\"},{\"href\":\"z\",\"name\":\"http\"}]",
    "[null,{\"href\":5,\"name\":\"http\"},{\"href\":\"w\"}]",
    "{\"key\":\"K2\",\"name\":\"N2\"}",
    "{\"key\":5}",
    "{\"key\":\"\"}",
};

/* A string of n characters c, quoted. */
static char *s_long(size_t n, char c)
{
    char *s = malloc(n + 3);
    assert_non_null(s);
    s[0] = '"';
    memset(s + 1, c, n);
    s[n + 1] = '"';
    s[n + 2] = '\0';
    return s;
}

/* Every slot: each value, missing, duplicated before and after, long. */
static void test_fields(void **state)
{
    (void)state;
    char *page = s_page_with(0, NULL);
    s_compare_str(page);
    free(page);
    char *longs[] = {s_long(255, 'u'), s_long(256, 'u'), s_long(4096, 'l'), s_long(4097, 'l')};
    for (size_t i = 0; i < N_SLOTS; i++) {
        const s_slot_t *sl = &s_slots[i];
        char *key = s_member_key(sl->text);
        char text[8192];
        for (size_t v = 0; v < sizeof s_values / sizeof s_values[0] + 4; v++) {
            const char *val = v < sizeof s_values / sizeof s_values[0]
                                  ? s_values[v]
                                  : longs[v - sizeof s_values / sizeof s_values[0]];
            if (key)
                snprintf(text, sizeof text, "%s:%s", key, val);
            else
                snprintf(text, sizeof text, "%s", val);
            page = s_page_with(sl->name, text);
            s_compare_str(page);
            free(page);
            if (!key)
                continue;
            /* Duplicates: the last one counts. */
            snprintf(text, sizeof text, "%s,%s:%s", sl->text, key, val);
            page = s_page_with(sl->name, text);
            s_compare_str(page);
            free(page);
            snprintf(text, sizeof text, "%s:%s,%s", key, val, sl->text);
            page = s_page_with(sl->name, text);
            s_compare_str(page);
            free(page);
        }
        /* Missing. */
        page = s_page_with(sl->name, key ? "\"_gone\":0" : "0");
        s_compare_str(page);
        free(page);
        free(key);
    }
    for (size_t i = 0; i < 4; i++)
        free(longs[i]);
}

/* Text inside strings and keys: bad UTF-8, escapes, control characters. */
static void test_text(void **state)
{
    (void)state;
    static const char *bits[] = {
        "\xc0\x80",
        "\xc1\xbf",
        "\xed\xa0\x80",
        "\xed\xbf\xbf",
        "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80",
        "\xf8\x88\x80\x80\x80",
        "\x80",
        "\xbf",
        "\xe2\x82",
        "\xe2\x82\x28",
        "\xff",
        "\xfe",
        "\xc3\xa9",
        "\xe2\x82\xac",
        "\xf0\x9f\x98\x80",
        "\xf4\x8f\xbf\xbf",
        "\xef\xbb\xbf",
        "\x01",
        "\x1f",
        "\t",
        "\n",
        "\r",
        "\x0b",
        "\x0c",
        "\x7f",
        "\\u0000",
        "\\uD800",
        "\\uDC00",
        "\\uDBFF\\uDFFF",
        "\\uD800\\u0041",
        "\\uD800\\uD800",
        "\\uD83D\\uDE00",
        "\\uD83D\\ude00",
        "\\uD800\\",
        "\\uD800\\u",
        "\\uD800\\uDC0",
        "\\uD800x",
        "\\x",
        "\\'",
        "\\u12",
        "\\u12G4",
        "\\\\u0000",
        "\\\\\\u0000",
        "\\\"",
        "\\/",
        "\\b\\f\\n\\r\\t",
        "\\U0041",
        "\\u0041",
        "\\u00",
        "\\",
        "\\\\",
    };
    static const char *where[] = {"\"slug\":\"a%sb\"", "\"statusMessage\":\"a%sb\"", "\"sl%sug\":\"x\"",
                                  "\"x%sy\":1",        "\"href\":\"a%sb\"",          "\"name\":\"%s\""};
    static const char slots[] = {'S', 'S', 'S', 'S', 'H', 'Q'};
    for (size_t b = 0; b < sizeof bits / sizeof bits[0]; b++) {
        for (size_t w = 0; w < sizeof where / sizeof where[0]; w++) {
            char text[256];
            snprintf(text, sizeof text, where[w], bits[b]);
            char *page = s_page_with(slots[w], text);
            s_compare_str(page);
            free(page);
        }
    }
}

/* Around the document: white space, what follows, what it is. */
static void test_document(void **state)
{
    (void)state;
    static const char *bodies[] = {
        "",
        " ",
        "\n",
        "{}",
        "[]",
        "null",
        "1",
        "\"values\"",
        "{\"values\":[]}",
        "{\"values\":[]} ",
        " \t\r\n{\"values\":[]}\n",
        "{\"values\":[]}x",
        "{\"values\":[]}{}",
        "{\"values\":[]},",
        "{\"values\":[]}]",
        "{\"values\":[]} \"abc",
        "{\"values\":[]}\"",
        "{\"values\":[]} \"\\u00",
        "{\"values\":[]} \"a\\",
        "{\"values\":[]} tru",
        "{\"values\":[]} -",
        "{\"values\":[]} 1",
        "{\"values\":[]} 1.",
        "{\"values\":[]} [",
        "{\"values\":[]} {",
        "{\"values\":[]} \"x\"",
        "{\"values\":[]}\n\r\t ",
        "\xef\xbb\xbf{\"values\":[]}",
        "{\"values\":[]}\x0b",
        "\x0c{\"values\":[]}",
        "{\"values\":\x0b[]}",
        "{\"values\":[]}/* c */",
        "/* c */{\"values\":[]}",
        "{\"values\":[]}// c",
        "{\"values\":[],}",
        "{\"values\":[1,]}",
        "{,\"values\":[]}",
        "{\"values\" []}",
        "{values:[]}",
        "{'values':[]}",
        "{\"values\":[01]}",
        "{\"values\":[1.]}",
        "{\"values\":[.5]}",
        "{\"values\":[-]}",
        "{\"values\":[+1]}",
        "{\"values\":[0x10]}",
        "{\"values\":[1e]}",
        "{\"values\":[1e+]}",
        "{\"values\":[NaN]}",
        "{\"values\":[Infinity]}",
        "{\"values\":[tru]}",
        "{\"values\":[True]}",
        "{\"values\":[nul]}",
        "{\"values\":[],\"isLastPage\":true}",
        "{\"values\":[],\"isLastPage\":false}",
        "{\"values\":[],\"isLastPage\":false,\"nextPageStart\":1}",
        "{\"values\":[],\"nextPageStart\":null}",
        "{\"values\":[],\"nextPageStart\":30}",
        "{\"values\":[],\"nextPageStart\":\"30\"}",
        "{\"values\":[],\"nextPageStart\":30.5}",
        "{\"values\":[],\"nextPageStart\":-1}",
        "{\"values\":[],\"isLastPage\":null,\"nextPageStart\":null}",
        "{\"values\":[],\"isLastPage\":\"true\"}",
        "{\"values\":[],\"values\":{}}",
        "{\"values\":{},\"values\":[]}",
        "{\"values\":[{\"name\":\"u\"}],\"values\":[]}",
        "{\"values\":[],\"ignored\":99999999999999999999}",
        "{\"values\":[\"too big\\u0000\"]}",
        "{\"limit\":2333333333333333333333,\"isLastPage\":false,\"values\":[]}",
        "{\"values\":[],\"ignored\":[1e999]}",
        "{\"values\":[],\"nextPageStart\":99999999999999999999}",
        "{\"values\":[],\"nextPageStart\":1e999}",
        "{\"values\":[{\"name\":\"u\",\"id\":1e999}]}",
        "{\"values\":[{\"name\":\"u\",\"size\":1e999}]}",
        "{\"values\":[{\"slug\":99999999999999999999,\"project\":{\"key\":\"K\"}}]}",
        "{\"values\":[\"a\",1,null,true,[],[{}],{}]}",
        "{\"values\":[{\"name\":\"u\"}]}\x00",
        "{\"values\":[{\"name\":\"u\",\"id\":null}]}",
        "{\"values\":[{\"name\":\"u\",\"id\":-1}]}",
        "{\"values\":[{\"name\":\"u\",\"id\":\"7\"}]}",
        "{\"values\":[{\"name\":\"u\",\"slug\":\"\"}]}",
        "{\"values\":[{\"name\":\"u\",\"active\":0}]}",
        "{\"values\":[{\"name\":\"u\",\"active\":false}]}",
        "{\"values\":[{\"name\":5}]}",
        "{\"values\":[{\"name\":\"\"}]}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        s_compare_str(bodies[i]);
    /* "values" many times over, each with entries: only the last counts. */
    s_buf_t b = {0};
    s_put(&b, "{", 1);
    for (int i = 0; i < 64; i++) {
        char part[128];
        int n = snprintf(part, sizeof part,
                         "\"values\":[{\"name\":\"u%d\",\"slug\":\"s\",\"project\":{\"key\":\"K\"}}],", i);
        s_put(&b, part, (size_t)n);
    }
    s_put(&b, "\"isLastPage\":true}", 18);
    s_compare(b.s, b.len, 0);
    free(b.s);
    /* With a NUL byte inside and after. */
    s_compare("{\"values\":[]}\0", 14, 0);
    s_compare("{\"values\":[],\"isLastPage\":false,\"x\":14\0}", 40, 0);
    s_compare("{\"values\":[null\0]}", 18, 0);
    s_compare("{\"values\":[\"a\0b\"]}", 18, 0);
    s_compare("{\"val\0ues\":[]}", 14, 0);
    /* No body at all. */
    bb_response_t r;
    memset(&r, 0, sizeof r);
    r.status = 200;
    r.host = "git.example.com";
    Portico__Bitbucket__ListReposReply out;
    bus_error_t err;
    size_t skipped;
    assert_int_equal(bb_decode_repos(&r, 0, &out, &skipped, &err), -1);
    assert_non_null(strstr(err.message, "a page without values"));
}

/* The deliberate difference, said by itself: a huge number where nothing
 * is read does not fail the page; where something is read it does. */
static void test_huge_numbers(void **state)
{
    (void)state;
    const char *ok[] = {"{\"values\":[{\"name\":\"u\",\"size\":1e999}],\"x\":99999999999999999999}",
                        "{\"values\":[{\"name\":\"u\",\"links\":{\"self\":[{\"href\":\"h\",\"n\":-1e400}]}}]}"};
    for (size_t i = 0; i < 2; i++) {
        bb_response_t r;
        memset(&r, 0, sizeof r);
        r.status = 200;
        r.body = ok[i];
        r.body_len = strlen(ok[i]);
        r.host = "git.example.com";
        Portico__Bitbucket__FindUsersReply out;
        bus_error_t err;
        size_t skipped;
        assert_int_equal(bb_decode_users(&r, &out, &skipped, &err), 0);
        assert_int_equal(out.n_users, 1);
        assert_string_equal(out.users[0]->name, "u");
        bb_users_clear(&out);
        assert_true(s_jansson_number_overflow(ok[i], strlen(ok[i])));
    }
    const char *bad = "{\"values\":[{\"name\":\"u\",\"id\":99999999999999999999}]}";
    bb_response_t r;
    memset(&r, 0, sizeof r);
    r.status = 200;
    r.body = bad;
    r.body_len = strlen(bad);
    r.host = "git.example.com";
    Portico__Bitbucket__FindUsersReply out;
    bus_error_t err;
    size_t skipped;
    assert_int_equal(bb_decode_users(&r, &out, &skipped, &err), -1);
    assert_non_null(strstr(err.message, "a page without values"));
}

/* Nesting on either side of jansson's limit (2048), where nothing is
 * read, as an entry, and inside a field that is read. */
static void test_depth(void **state)
{
    (void)state;
    static const char *shapes[][4] = {
        /* prefix, open, inner, close; the body is prefix open^n inner close^n suffix */
        {"{\"values\":[],\"x\":", "[", "", "]"},
        {"{\"values\":[],\"x\":", "[", "1", "]"},
        {"{\"values\":[],\"x\":", "{\"a\":", "1", "}"},
        {"{\"values\":[],\"x\":", "{\"a\":", "{}", "}"},
        {"{\"values\":", "[", "", "]"},
        {"{\"values\":[{\"name\":\"u\",\"slug\":", "[", "\"s\"", "]"},
        {"{\"values\":[{\"name\":\"u\",\"links\":", "{\"self\":", "[]", "}"},
    };
    static const char *suffix[] = {"}", "}", "}", "}", "}", "}]}", "}]}"};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (int n = 2040; n <= 2050; n++) {
            s_buf_t b = {0};
            s_put(&b, shapes[s][0], strlen(shapes[s][0]));
            for (int i = 0; i < n; i++)
                s_put(&b, shapes[s][1], strlen(shapes[s][1]));
            s_put(&b, shapes[s][2], strlen(shapes[s][2]));
            for (int i = 0; i < n; i++)
                s_put(&b, shapes[s][3], strlen(shapes[s][3]));
            s_put(&b, suffix[s], strlen(suffix[s]));
            s_compare(b.s, b.len, 0);
            free(b.s);
        }
    }
    /* Far deeper than any limit: refused, no crash. */
    size_t n = 200000;
    char *deep = malloc(2 * n + 32);
    assert_non_null(deep);
    size_t o = (size_t)sprintf(deep, "{\"values\":[],\"x\":");
    memset(deep + o, '[', n);
    o += n;
    memset(deep + o, ']', n);
    o += n;
    deep[o++] = '}';
    s_compare(deep, o, 0);
    free(deep);
}

/* Every truncation of a whole page, and seeded random mutations of it. */
static void test_truncations_and_mutations(void **state)
{
    (void)state;
    char *page = s_page_with(0, NULL);
    size_t len = strlen(page);
    for (size_t i = 0; i <= len; i++)
        s_compare(page, i, 25);
    static const char alphabet[] = "{}[],:\"\\ 019.eE+-tfnulx\x80\xc3\xa9\xff\x0b\x00";
    uint32_t seed = 12345;
    char *m = malloc(len + 64);
    assert_non_null(m);
    for (int round = 0; round < 20000; round++) {
        memcpy(m, page, len);
        size_t n = len;
        int edits = 1 + (int)((seed = seed * 1103515245 + 12345) >> 16) % 3;
        for (int e = 0; e < edits; e++) {
            seed = seed * 1103515245 + 12345;
            size_t at = (seed >> 8) % n;
            seed = seed * 1103515245 + 12345;
            char c = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
            switch ((seed >> 4) % 3) {
            case 0:
                m[at] = c;
                break;
            case 1:
                memmove(m + at + 1, m + at, n - at);
                m[at] = c;
                n++;
                break;
            default:
                memmove(m + at, m + at + 1, n - at - 1);
                n--;
                break;
            }
        }
        s_compare(m, n, 25);
    }
    free(m);
    free(page);
}

/* The fuzz seeds: the body as the fuzz target cuts it, and the whole file. */
static void test_fuzz_corpus(void **state)
{
    (void)state;
    const char *dir = "tests/fuzz/corpus/fuzz_bb_json";
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot open %s (run from the top of the tree)", dir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        char buf[65536];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        s_compare(buf, n, 0);
        if (n >= 2) {
            const char *nul = memchr(buf + 2, 0, n - 2);
            const char *body = nul ? nul + 1 : buf + 2;
            s_compare(body, n - (size_t)(body - buf), 0);
        }
        files++;
    }
    closedir(d);
    assert_true(files > 5);
}

/* The comparisons above must have exercised both outcomes. */
static void test_coverage(void **state)
{
    (void)state;
    if (s_stats.bodies < 25000 || s_stats.ok < 1000 || s_stats.exempt == 0 || s_stats.nul == 0)
        fail_msg("compared %zu bodies, %zu decoded, %zu exempt, %zu NUL", s_stats.bodies, s_stats.ok, s_stats.exempt,
                 s_stats.nul);
    printf("compared %zu bodies: %zu decoded, %zu with a huge number, %zu with a NUL byte\n", s_stats.bodies,
           s_stats.ok, s_stats.exempt, s_stats.nul);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),      cmocka_unit_test(test_text),
        cmocka_unit_test(test_document),    cmocka_unit_test(test_huge_numbers),
        cmocka_unit_test(test_depth),       cmocka_unit_test(test_truncations_and_mutations),
        cmocka_unit_test(test_fuzz_corpus), cmocka_unit_test(test_coverage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
