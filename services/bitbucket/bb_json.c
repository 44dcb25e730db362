#include "bb_json.h"

#include "bb_form.h"
#include "bb_header.h"
#include "bb_pick.h"
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
 * and frees them one by one again (the paged answers, where that was a
 * third of this service's CPU per login, no longer go through it). While
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

/* A member as one value for the rules in bb_pick.h, which the paged
 * answers (read without jansson) share. */
static bb_jv_t s_member(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    bb_jv_t o = {.type = BB_JV_ABSENT};
    if (!v)
        return o;
    switch (json_typeof(v)) {
    case JSON_NULL:
        o.type = BB_JV_NULL;
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        o.type = BB_JV_BOOL;
        o.b = json_is_true(v);
        break;
    case JSON_INTEGER:
        o.type = BB_JV_INT;
        o.i = json_integer_value(v);
        break;
    case JSON_REAL:
        o.type = BB_JV_REAL;
        o.d = json_real_value(v);
        break;
    case JSON_STRING:
        o.type = BB_JV_STRING;
        o.s = json_string_value(v);
        o.len = json_string_length(v);
        break;
    case JSON_OBJECT:
        o.type = BB_JV_OBJECT;
        break;
    case JSON_ARRAY:
        o.type = BB_JV_ARRAY;
        break;
    }
    return o;
}

/* A string member as a fresh string (bb_jv_str). */
static int s_get_str(json_t *obj, const char *key, size_t max, char **out)
{
    bb_jv_t v = s_member(obj, key);
    return bb_jv_str(&v, max, out);
}

/* An integer member (bb_jv_int). */
static int s_get_int(json_t *obj, const char *key, long long min, long long max, long long *out)
{
    bb_jv_t v = s_member(obj, key);
    return bb_jv_int(&v, min, max, out);
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
        /* Some servers answer an error with 200. Read from the tree at
         * hand: parsing the body again would hold it twice. */
        const char *e = json_string_value(json_object_get(root, "error"));
        const char *d = json_string_value(json_object_get(root, "error_description"));
        if (bb_oauth2_error_words(r, e, d, err) != 0)
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

/* X-AUSERID: Bitbucket's record id of the user, a plain positive integer
 * (in double quotes on some versions). -1 for anything else. */
static int s_whoami_user_id(const char *h, long long *id)
{
    const char *p = h, *end = h + strlen(h);
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
        end--;
    if (end - p >= 2 && *p == '"' && end[-1] == '"') {
        p++;
        end--;
    }
    long long v = 0;
    if (p == end)
        return -1;
    for (; p < end; p++) {
        if (!isdigit((unsigned char)*p) || v > (INT64_MAX - (*p - '0')) / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v <= 0)
        return -1;
    *id = v;
    return 0;
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
    /* Absent, the broker has no id to compare with the user's record; one
     * that is there but unreadable (a list, a word, 0) is no reason to
     * skip that comparison. */
    long long id = 0;
    if (r->x_auserid && s_whoami_user_id(r->x_auserid, &id) < 0) {
        bb_whoami_clear(out);
        s_bad_response(r, err, "an X-AUSERID header");
        return -1;
    }
    out->user_id = id;
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

/* What a user is read from, on a single user and on a page of them. */
enum { U_NAME, U_SLUG, U_DISPLAY_NAME, U_EMAIL, U_ACTIVE, U_ID, U_FIELDS };
static const char *const s_user_keys[U_FIELDS] = {"name", "slug", "displayName", "emailAddress", "active", "id"};

/* One user from its fields; -1 when it is not one. */
static int s_user_from_fields(const bb_jv_t *f, Portico__Bitbucket__User *u)
{
    portico__bitbucket__user__init(u);
    long long id = 0;
    bool active = true;
    if (f[U_NAME].type != BB_JV_STRING || f[U_NAME].len == 0)
        return -1;
    if (bb_jv_str(&f[U_NAME], MAX_USERNAME, &u->name) < 0 || bb_jv_str(&f[U_SLUG], MAX_USERNAME, &u->slug) < 0 ||
        bb_jv_str(&f[U_DISPLAY_NAME], BB_MAX_FIELD, &u->display_name) < 0 ||
        bb_jv_str(&f[U_EMAIL], BB_MAX_FIELD, &u->email) < 0 || bb_jv_bool(&f[U_ACTIVE], true, &active) < 0 ||
        (f[U_ID].type != BB_JV_ABSENT && bb_jv_int(&f[U_ID], 0, INT64_MAX, &id) < 0)) {
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

/* One user object; -1 when it is not one. */
static int s_user_from_json(json_t *obj, Portico__Bitbucket__User *u)
{
    bb_jv_t f[U_FIELDS];
    for (int i = 0; i < U_FIELDS; i++)
        f[i] = s_member(obj, s_user_keys[i]);
    return s_user_from_fields(f, u);
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

/* ---- paged answers ----
 *
 * A page of repositories or users is the largest answer (25 repositories
 * are some 16 KB) and is read at every login, of which a decoder keeps a
 * few fields per entry: these are read with bb_pick (yajl's callback
 * parser, nothing built) instead of jansson, which spent about half a
 * millisecond per page building and freeing a tree. Acceptance is
 * jansson's, field by field: the same rules (bb_jv_*), the last of
 * duplicate keys wins, and every answer gets the result and error it got
 * when it was parsed with jansson (tests/unit/test_bb_page_diff.c checks
 * this against the jansson decoders), with two deliberate differences:
 * (a) a number too big for a long long or a double in a field the decoder
 * does not read no longer fails the page (jansson refused the whole
 * document; a server's extra field is none of Portico's business), while
 * one in a field that is read still fails it as before; (b) a NUL byte
 * right after a number or a literal, which jansson passed over (its
 * look-ahead puts the byte back as the end of its buffer), is refused: a
 * NUL is not JSON anywhere. */

/* A value kept past its event (bb_pick's strings are borrowed): a string
 * in the body is pointed at, one yajl decoded (escapes) is copied. */
typedef struct {
    bb_jv_t v;
    char *own;
} s_kept_t;

/* The parts of a page both decoders share: node 0 is the document, 1 its
 * values array, 2 each element of it. */
enum { P_ROOT, P_VALUES, P_ITEM };

typedef struct {
    const char *body;
    size_t body_len;
    bb_jv_type_t root, values; /* types (of the last "values") */
    size_t index;              /* elements of values so far */
    size_t skipped;
    bool in_item; /* inside an element that is an object, within the first MAX_PAGE_ITEMS */
} s_page_t;

static void s_unkeep(s_kept_t *k)
{
    free(k->own);
    k->own = NULL;
    k->v = (bb_jv_t){.type = BB_JV_ABSENT};
}

static int s_keep(const s_page_t *pg, s_kept_t *k, const bb_jv_t *v)
{
    s_unkeep(k);
    k->v = *v;
    uintptr_t s = (uintptr_t)v->s, b = (uintptr_t)pg->body;
    if (v->type != BB_JV_STRING || (s >= b && s + v->len <= b + pg->body_len))
        return 0;
    k->own = bb_text_dup(v->s, v->len);
    k->v.s = k->own;
    return k->own ? 0 : -1;
}

/* Moves *from into *to (from is left absent). */
static void s_move(s_kept_t *to, s_kept_t *from)
{
    s_unkeep(to);
    *to = *from;
    from->own = NULL;
    from->v = (bb_jv_t){.type = BB_JV_ABSENT};
}

/* Room for one more in *arr_p (an array of n pointers, room for *cap),
 * and a fresh entry of size bytes to put there; NULL when out of memory. */
static void *s_entry_new(void *arr_p, size_t n, size_t *cap, size_t size)
{
    void *arr;
    memcpy(&arr, arr_p, sizeof arr);
    if (!arr)
        *cap = 0; /* a duplicate "values" started the array over */
    if (!arr || n >= *cap) {
        size_t c = *cap ? *cap * 2 : 32;
        void *na = realloc(arr, c * sizeof(void *));
        if (!na)
            return NULL;
        memcpy(arr_p, &na, sizeof na);
        *cap = c;
    }
    return malloc(size);
}

/* The page-level events: 1 when node was one, with *new_values when a
 * (or another) "values" begins and *item_start when an element that is
 * an object begins. */
static int s_page_event(s_page_t *pg, int node, const bb_jv_t *v, bool *new_values, bool *item_start)
{
    *new_values = *item_start = false;
    switch (node) {
    case P_ROOT:
        pg->root = v->type;
        return 1;
    case P_VALUES:
        /* A duplicate key: the last one is the one read. */
        pg->values = v->type;
        pg->index = 0;
        pg->skipped = 0;
        pg->in_item = false;
        *new_values = true;
        return 1;
    case P_ITEM:
        pg->in_item = false;
        if (pg->index++ >= MAX_PAGE_ITEMS)
            return 1;
        if (v->type == BB_JV_OBJECT)
            pg->in_item = *item_start = true;
        else
            pg->skipped++;
        return 1;
    default:
        return 0;
    }
}

/* A paged answer's end: values, isLastPage and nextPageStart (absent for
 * users, who read only the first page). */
static int s_page_end(const bb_response_t *r, const s_page_t *pg, const bb_jv_t *jlast, const bb_jv_t *jnext,
                      long long start, bool *last, int32_t *next, bus_error_t *err)
{
    if (pg->root != BB_JV_OBJECT || pg->values != BB_JV_ARRAY) {
        s_bad_response(r, err, "a page without values");
        return -1;
    }
    long long n = 0;
    bool has_next = jnext->type != BB_JV_ABSENT && jnext->type != BB_JV_NULL;
    if (has_next && bb_jv_int(jnext, 0, INT32_MAX, &n) < 0) {
        s_bad_response(r, err, "a page with an unusable nextPageStart");
        return -1;
    }
    if (jlast->type != BB_JV_ABSENT && jlast->type != BB_JV_NULL) {
        if (jlast->type != BB_JV_BOOL) {
            s_bad_response(r, err, "a page with an unusable isLastPage");
            return -1;
        }
        *last = jlast->b;
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

/* ---- a page of users ---- */

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

/* The page's nodes: a user's fields follow P_ITEM in s_user_keys' order. */
#define U_NODE(field) (P_ITEM + 1 + (field))
enum { U_NODES = U_NODE(U_FIELDS) };

static const bb_pick_node_t s_user_nodes[U_NODES] = {
    [P_ROOT] = {-1, NULL},
    [P_VALUES] = {P_ROOT, "values"},
    [P_ITEM] = {P_VALUES, NULL},
    [U_NODE(U_NAME)] = {P_ITEM, "name"},
    [U_NODE(U_SLUG)] = {P_ITEM, "slug"},
    [U_NODE(U_DISPLAY_NAME)] = {P_ITEM, "displayName"},
    [U_NODE(U_EMAIL)] = {P_ITEM, "emailAddress"},
    [U_NODE(U_ACTIVE)] = {P_ITEM, "active"},
    [U_NODE(U_ID)] = {P_ITEM, "id"},
};

typedef struct {
    s_page_t pg;
    s_kept_t f[U_FIELDS]; /* the current user's */
    Portico__Bitbucket__FindUsersReply *out;
    size_t cap;
} s_users_t;

static void s_users_item_reset(s_users_t *u)
{
    for (int i = 0; i < U_FIELDS; i++)
        s_unkeep(&u->f[i]);
}

static int s_users_value(void *ctx, int node, const bb_jv_t *v)
{
    s_users_t *u = ctx;
    bool new_values, item_start;
    if (s_page_event(&u->pg, node, v, &new_values, &item_start)) {
        if (new_values)
            bb_users_clear(u->out);
        if (item_start)
            s_users_item_reset(u);
        return 0;
    }
    return u->pg.in_item ? s_keep(&u->pg, &u->f[node - U_NODE(0)], v) : 0;
}

static int s_users_close(void *ctx, int node)
{
    s_users_t *u = ctx;
    if (node != P_ITEM || !u->pg.in_item)
        return 0;
    u->pg.in_item = false;
    Portico__Bitbucket__FindUsersReply *out = u->out;
    Portico__Bitbucket__User *m = s_entry_new(&out->users, out->n_users, &u->cap, sizeof *m);
    if (!m)
        return -1;
    bb_jv_t f[U_FIELDS];
    for (int i = 0; i < U_FIELDS; i++)
        f[i] = u->f[i].v;
    if (s_user_from_fields(f, m) < 0) {
        free(m);
        u->pg.skipped++;
    } else {
        out->users[out->n_users++] = m;
    }
    s_users_item_reset(u);
    return 0;
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
    s_users_t u = {.pg = {.body = r->body, .body_len = r->body_len}, .out = out};
    for (int i = 0; i < U_FIELDS; i++)
        u.f[i].v.type = BB_JV_ABSENT;
    bb_pick_t pick = {s_user_nodes, U_NODES, s_users_value, s_users_close, &u};
    int rc = bb_pick(&pick, r->body, r->body_len);
    s_users_item_reset(&u);
    if (rc == -2)
        goto oom;
    if (rc < 0)
        u.pg.root = BB_JV_ABSENT; /* not JSON: as jansson gave no document */
    /* Only the first page is used (the filter matches substrings and the
     * caller picks the exact name), so its paging fields are not read. */
    bb_jv_t absent = {.type = BB_JV_ABSENT};
    bool last;
    int32_t next;
    if (s_page_end(r, &u.pg, &absent, &absent, 0, &last, &next, err) < 0) {
        bb_users_clear(out);
        return -1;
    }
    if (!out->users && !(out->users = calloc(1, sizeof *out->users)))
        goto oom;
    *skipped = u.pg.skipped;
    return 0;
oom:
    bb_users_clear(out);
    bus_error_set(err, C_INTERNAL, DETAIL(NONE), "out of memory");
    return -1;
}

/* ---- a page of repositories ---- */

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

enum {
    R_SLUG = P_ITEM + 1,
    R_NAME,
    R_PUBLIC,
    R_PROJECT,
    R_PROJECT_KEY,
    R_PROJECT_NAME,
    R_LINKS,
    R_SELF,
    R_SELF_ENTRY,
    R_SELF_HREF,
    R_CLONE,
    R_CLONE_ENTRY,
    R_CLONE_NAME,
    R_CLONE_HREF,
    R_LAST,
    R_NEXT,
    R_COUNT
};

static const bb_pick_node_t s_repo_nodes[R_COUNT] = {
    [P_ROOT] = {-1, NULL},
    [P_VALUES] = {P_ROOT, "values"},
    [P_ITEM] = {P_VALUES, NULL},
    [R_SLUG] = {P_ITEM, "slug"},
    [R_NAME] = {P_ITEM, "name"},
    [R_PUBLIC] = {P_ITEM, "public"},
    [R_PROJECT] = {P_ITEM, "project"},
    [R_PROJECT_KEY] = {R_PROJECT, "key"},
    [R_PROJECT_NAME] = {R_PROJECT, "name"},
    [R_LINKS] = {P_ITEM, "links"},
    [R_SELF] = {R_LINKS, "self"},
    [R_SELF_ENTRY] = {R_SELF, NULL},
    [R_SELF_HREF] = {R_SELF_ENTRY, "href"},
    [R_CLONE] = {R_LINKS, "clone"},
    [R_CLONE_ENTRY] = {R_CLONE, NULL},
    [R_CLONE_NAME] = {R_CLONE_ENTRY, "name"},
    [R_CLONE_HREF] = {R_CLONE_ENTRY, "href"},
    [R_LAST] = {P_ROOT, "isLastPage"},
    [R_NEXT] = {P_ROOT, "nextPageStart"},
};

/* The links a repository has, each the href of the first entry of
 * links.self (any) or links.clone (by name) that is an object with a
 * string href. */
enum { L_SELF, L_HTTP, L_SSH, L_HTTPS, L_COUNT };
static const char *const s_clone_names[L_COUNT] = {NULL, "http", "ssh", "https"};

typedef struct {
    s_page_t pg;
    s_kept_t f[R_COUNT]; /* by node: the current repository's fields, the entry's, the page's */
    bool entry;          /* inside a links entry that is an object */
    bool found[L_COUNT];
    s_kept_t link[L_COUNT];
    Portico__Bitbucket__ListReposReply *out;
    size_t cap;
} s_repos_t;

static void s_repos_links_reset(s_repos_t *p, int from, int to)
{
    for (int i = from; i <= to; i++) {
        p->found[i] = false;
        s_unkeep(&p->link[i]);
    }
}

static void s_repos_item_reset(s_repos_t *p)
{
    for (int i = R_SLUG; i < R_LAST; i++)
        s_unkeep(&p->f[i]);
    s_repos_links_reset(p, L_SELF, L_HTTPS);
    p->entry = false;
}

static int s_repos_value(void *ctx, int node, const bb_jv_t *v)
{
    s_repos_t *p = ctx;
    bool new_values, item_start;
    if (s_page_event(&p->pg, node, v, &new_values, &item_start)) {
        if (new_values)
            bb_repos_clear(p->out);
        if (item_start)
            s_repos_item_reset(p);
        return 0;
    }
    if (node == R_LAST || node == R_NEXT)
        return s_keep(&p->pg, &p->f[node], v);
    if (!p->pg.in_item)
        return 0;
    /* An object met again (a duplicate key) starts over. */
    switch (node) {
    case R_PROJECT:
        s_unkeep(&p->f[R_PROJECT_KEY]);
        s_unkeep(&p->f[R_PROJECT_NAME]);
        break;
    case R_LINKS:
        s_repos_links_reset(p, L_SELF, L_HTTPS);
        break;
    case R_SELF:
        s_repos_links_reset(p, L_SELF, L_SELF);
        break;
    case R_CLONE:
        s_repos_links_reset(p, L_HTTP, L_HTTPS);
        break;
    case R_SELF_ENTRY:
    case R_CLONE_ENTRY:
        s_unkeep(&p->f[R_SELF_HREF]);
        s_unkeep(&p->f[R_CLONE_NAME]);
        s_unkeep(&p->f[R_CLONE_HREF]);
        p->entry = v->type == BB_JV_OBJECT;
        return 0;
    default:
        break;
    }
    return s_keep(&p->pg, &p->f[node], v);
}

/* The end of a links entry: the first that fits each link is taken. */
static void s_repos_entry_end(s_repos_t *p, int node)
{
    if (node == R_SELF_ENTRY) {
        if (!p->found[L_SELF] && p->f[R_SELF_HREF].v.type == BB_JV_STRING) {
            p->found[L_SELF] = true;
            s_move(&p->link[L_SELF], &p->f[R_SELF_HREF]);
        }
        return;
    }
    const bb_jv_t *name = &p->f[R_CLONE_NAME].v;
    if (name->type != BB_JV_STRING || p->f[R_CLONE_HREF].v.type != BB_JV_STRING)
        return;
    for (int l = L_HTTP; l < L_COUNT; l++) {
        if (!p->found[l] && name->len == strlen(s_clone_names[l]) &&
            memcmp(name->s, s_clone_names[l], name->len) == 0) {
            p->found[l] = true;
            s_move(&p->link[l], &p->f[R_CLONE_HREF]);
            return;
        }
    }
}

static int s_repos_link(const s_repos_t *p, int l, char **out)
{
    if (p->found[l])
        return bb_jv_str(&p->link[l].v, BB_MAX_FIELD, out);
    *out = strdup("");
    return *out ? 0 : -1;
}

/* One repository, by the rules of the jansson decoder it replaces; -1 when
 * it is not one. */
static int s_repo_from_fields(const s_repos_t *p, Portico__Bitbucket__Repository *m)
{
    const s_kept_t *f = p->f;
    portico__bitbucket__repository__init(m);
    bool pub = false;
    if (f[R_SLUG].v.type != BB_JV_STRING || f[R_SLUG].v.len == 0 || f[R_PROJECT].v.type != BB_JV_OBJECT ||
        f[R_PROJECT_KEY].v.type != BB_JV_STRING || f[R_PROJECT_KEY].v.len == 0)
        return -1;
    if (bb_jv_str(&f[R_SLUG].v, BB_MAX_FIELD, &m->slug) < 0 || bb_jv_str(&f[R_NAME].v, BB_MAX_FIELD, &m->name) < 0 ||
        bb_jv_bool(&f[R_PUBLIC].v, false, &pub) < 0 ||
        bb_jv_str(&f[R_PROJECT_KEY].v, BB_MAX_FIELD, &m->project_key) < 0 ||
        bb_jv_str(&f[R_PROJECT_NAME].v, BB_MAX_FIELD, &m->project_name) < 0 ||
        s_repos_link(p, L_SELF, &m->browse_url) < 0 || s_repos_link(p, L_HTTP, &m->clone_http) < 0 ||
        s_repos_link(p, L_SSH, &m->clone_ssh) < 0)
        goto bad;
    if (!m->clone_http[0]) {
        /* Some versions name the HTTPS clone link "https". */
        s_free_str(&m->clone_http);
        if (s_repos_link(p, L_HTTPS, &m->clone_http) < 0)
            goto bad;
    }
    if (!m->name[0]) {
        s_free_str(&m->name);
        m->name = strdup(m->slug);
        if (!m->name)
            goto bad;
    }
    m->public_ = pub;
    return 0;
bad:
    s_repo_clear(m);
    return -1;
}

static int s_repos_close(void *ctx, int node)
{
    s_repos_t *p = ctx;
    if (!p->pg.in_item)
        return 0;
    if ((node == R_SELF_ENTRY || node == R_CLONE_ENTRY) && p->entry) {
        s_repos_entry_end(p, node);
        p->entry = false;
        return 0;
    }
    if (node != P_ITEM)
        return 0;
    p->pg.in_item = false;
    Portico__Bitbucket__ListReposReply *out = p->out;
    Portico__Bitbucket__Repository *m = s_entry_new(&out->repositories, out->n_repositories, &p->cap, sizeof *m);
    if (!m)
        return -1;
    if (s_repo_from_fields(p, m) < 0) {
        free(m);
        p->pg.skipped++;
    } else {
        out->repositories[out->n_repositories++] = m;
    }
    s_repos_item_reset(p);
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
    s_repos_t p = {.pg = {.body = r->body, .body_len = r->body_len}, .out = out};
    for (int i = 0; i < R_COUNT; i++)
        p.f[i].v.type = BB_JV_ABSENT;
    for (int i = 0; i < L_COUNT; i++)
        p.link[i].v.type = BB_JV_ABSENT;
    bb_pick_t pick = {s_repo_nodes, R_COUNT, s_repos_value, s_repos_close, &p};
    int rc = bb_pick(&pick, r->body, r->body_len);
    bool last = false;
    int32_t next = 0;
    s_repos_item_reset(&p);
    if (rc == -2)
        goto oom;
    if (rc < 0)
        p.pg.root = BB_JV_ABSENT; /* not JSON: as jansson gave no document */
    if (s_page_end(r, &p.pg, &p.f[R_LAST].v, &p.f[R_NEXT].v, start, &last, &next, err) < 0)
        goto fail;
    if (!out->repositories && !(out->repositories = calloc(1, sizeof *out->repositories)))
        goto oom;
    out->is_last_page = last;
    out->next_page_start = next;
    *skipped = p.pg.skipped;
    s_unkeep(&p.f[R_LAST]);
    s_unkeep(&p.f[R_NEXT]);
    return 0;
oom:
    bus_error_set(err, C_INTERNAL, DETAIL(NONE), "out of memory");
fail:
    bb_repos_clear(out);
    s_unkeep(&p.f[R_LAST]);
    s_unkeep(&p.f[R_NEXT]);
    return -1;
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
        /* At most ten years, as an OAuth 2 expires_in: the broker adds it
         * to the time now. Longer counts as not said. */
        if (*expires && !*end && v > 0 && v <= 10LL * 365 * 86400)
            out->expires_in = v;
        free(expires);
    }
    return 0;
}

/* ---- the decoders; those that use jansson, with it in the block above ---- */

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
    return s_decode_users(r, out, skipped, err);
}

int bb_decode_repos(const bb_response_t *r, int32_t start, Portico__Bitbucket__ListReposReply *out, size_t *skipped,
                    bus_error_t *err)
{
    return s_decode_repos(r, start, out, skipped, err);
}
