#include "bb_pick.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

/* ---- one value, the rules the decoders apply ---- */

int bb_jv_str(const bb_jv_t *v, size_t max, char **out)
{
    char num[32];
    const char *s = "";
    size_t n = 0;
    *out = NULL;
    if (v->type == BB_JV_STRING) {
        if (v->len > max || memchr(v->s, '\0', v->len))
            return -1;
        s = v->s;
        n = v->len;
    } else if (v->type == BB_JV_INT) {
        n = (size_t)snprintf(num, sizeof num, "%lld", v->i);
        s = num;
    } else if (v->type != BB_JV_ABSENT && v->type != BB_JV_NULL) {
        return -1;
    }
    *out = malloc(n + 1);
    if (!*out)
        return -1;
    memcpy(*out, s, n);
    (*out)[n] = '\0';
    return 0;
}

int bb_jv_int(const bb_jv_t *v, long long min, long long max, long long *out)
{
    long long n;
    if (v->type == BB_JV_INT) {
        n = v->i;
    } else if (v->type == BB_JV_STRING) {
        /* Some proxies and old versions quote ids. */
        char s[21], *end;
        if (v->len == 0 || v->len > 20 || !isdigit((unsigned char)v->s[0]) || memchr(v->s, '\0', v->len))
            return -1;
        memcpy(s, v->s, v->len);
        s[v->len] = '\0';
        n = strtoll(s, &end, 10);
        if (*end)
            return -1;
    } else if (v->type == BB_JV_REAL) {
        double d = v->d;
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

int bb_jv_bool(const bb_jv_t *v, bool def, bool *out)
{
    if (v->type == BB_JV_ABSENT || v->type == BB_JV_NULL) {
        *out = def;
        return 0;
    }
    if (v->type != BB_JV_BOOL)
        return -1;
    *out = v->b;
    return 0;
}

/* ---- what yajl lets through and jansson does not ---- */

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Eight bytes that need no look: ASCII, no control character, no '\'. */
static bool s_plain8(const unsigned char *p)
{
    uint64_t x;
    memcpy(&x, p, sizeof x);
    uint64_t ctl = (x - ONES * 0x20) & ~x;
    uint64_t bs = x ^ (ONES * '\\');
    bs = (bs - ONES) & ~bs;
    return ((x | ctl | bs) & HIGHS) == 0;
}

static long s_hex4(const unsigned char *p, size_t avail)
{
    long v = 0;
    if (avail < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* The length of the escape at p[0] == '\', 0 when jansson refuses it
 * (\u0000, an unpaired surrogate); what yajl refuses itself (a bad
 * escape letter, bad hex) is passed over. */
static size_t s_escape(const unsigned char *p, size_t avail)
{
    if (avail < 2 || p[1] != 'u')
        return avail < 2 ? 1 : 2;
    long v = s_hex4(p + 2, avail - 2);
    if (v < 0)
        return 2;
    if (v == 0 || (v >= 0xdc00 && v <= 0xdfff))
        return 0;
    if (v < 0xd800 || v > 0xdbff)
        return 6;
    long lo = (avail >= 8 && p[6] == '\\' && p[7] == 'u') ? s_hex4(p + 8, avail - 8) : -1;
    return lo >= 0xdc00 && lo <= 0xdfff ? 12 : 0;
}

/* The length of the UTF-8 character at p, 0 when it is not one (overlong,
 * a surrogate, past U+10FFFF, cut). */
static size_t s_utf8_char(const unsigned char *p, size_t avail)
{
    unsigned c = p[0], min;
    size_t len;
    if ((c & 0xe0) == 0xc0)
        len = 2, min = 0x80, c &= 0x1f;
    else if ((c & 0xf0) == 0xe0)
        len = 3, min = 0x800, c &= 0x0f;
    else if ((c & 0xf8) == 0xf0)
        len = 4, min = 0x10000, c &= 0x07;
    else
        return 0;
    if (avail < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    return len;
}

/* Over the whole text (jansson checks every byte it reads): strict UTF-8,
 * no control character but tab, CR and LF (yajl takes form feed and
 * vertical tab as white space), the escapes jansson refuses. Valid JSON
 * has a '\' only inside strings, so skipping each escape whole keeps this
 * scan in step with the strings. */
static bool s_prescan(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (n - i >= 8 && s_plain8(p + i)) {
            i += 8;
            continue;
        }
        unsigned c = p[i];
        size_t step = 1;
        if (c == '\\')
            step = s_escape(p + i, n - i);
        else if (c >= 0x80)
            step = s_utf8_char(p + i, n - i);
        else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            step = 0;
        if (step == 0)
            return false;
        i += step;
    }
    return true;
}

/* ---- the walk ---- */

#define MAX_TRACK 16 /* declared paths nest no deeper */

typedef struct {
    const bb_pick_t *p;
    int depth; /* open arrays and objects */
    int skip;  /* of which below an undeclared path */
    int track; /* of which declared: node[], is_obj[] */
    int node[MAX_TRACK];
    bool is_obj[MAX_TRACK];
    int key_node; /* the member whose key was just read, -1 when undeclared */
    bool stopped;
    yajl_handle h;
    size_t end; /* where the document ended, 0 before */
} s_walk_t;

static int s_child(const bb_pick_t *p, int parent, const char *key, size_t len)
{
    for (size_t i = 1; i < p->n_nodes; i++) {
        const bb_pick_node_t *n = &p->nodes[i];
        if (n->parent != parent)
            continue;
        if (!key ? !n->key : (n->key && strlen(n->key) == len && memcmp(n->key, key, len) == 0))
            return (int)i;
    }
    return -1;
}

/* The declared node of the value about to come, -1 for none. */
static int s_target(const s_walk_t *w)
{
    if (w->skip)
        return -1;
    if (w->track == 0)
        return 0;
    if (w->is_obj[w->track - 1])
        return w->key_node;
    return s_child(w->p, w->node[w->track - 1], NULL, 0);
}

/* A scalar: inside the depth limit and (as jansson reads without
 * JSON_DECODE_ANY) not the whole document. */
static int s_scalar(s_walk_t *w, const bb_jv_t *v)
{
    if (w->depth == 0 || w->depth + 1 > BB_PICK_MAX_DEPTH)
        return 0;
    int t = s_target(w);
    if (t >= 0 && w->p->value(w->p->ctx, t, v) < 0) {
        w->stopped = true;
        return 0;
    }
    return 1;
}

static int s_on_null(void *ctx)
{
    bb_jv_t v = {.type = BB_JV_NULL};
    return s_scalar(ctx, &v);
}

static int s_on_bool(void *ctx, int b)
{
    bb_jv_t v = {.type = BB_JV_BOOL, .b = b != 0};
    return s_scalar(ctx, &v);
}

/* A number as jansson reads it: an integer unless it has a fraction or an
 * exponent; one out of range refuses the document, but only where it is
 * read (the deliberate difference from jansson). */
static int s_on_number(void *ctx, const char *s, size_t len)
{
    s_walk_t *w = ctx;
    if (s_target(w) < 0)
        return w->depth > 0 && w->depth + 1 <= BB_PICK_MAX_DEPTH;
    char small[64], *text = len < sizeof small ? small : malloc(len + 1);
    if (!text) {
        w->stopped = true;
        return 0;
    }
    memcpy(text, s, len);
    text[len] = '\0';
    bb_jv_t v = {.type = BB_JV_INT};
    bool ok = true;
    errno = 0;
    if (strpbrk(text, ".eE")) {
        v.type = BB_JV_REAL;
        v.d = strtod(text, NULL);
        ok = !((v.d == HUGE_VAL || v.d == -HUGE_VAL) && errno == ERANGE);
    } else {
        v.i = strtoll(text, NULL, 10);
        ok = errno != ERANGE;
    }
    if (text != small)
        free(text);
    return ok ? s_scalar(w, &v) : 0;
}

static int s_on_string(void *ctx, const unsigned char *s, size_t len)
{
    bb_jv_t v = {.type = BB_JV_STRING, .s = (const char *)s, .len = len};
    return s_scalar(ctx, &v);
}

static int s_open(s_walk_t *w, bb_jv_type_t type)
{
    if (w->depth + 1 > BB_PICK_MAX_DEPTH)
        return 0;
    int t = s_target(w);
    w->depth++;
    w->key_node = -1;
    if (t < 0 || w->track == MAX_TRACK) {
        w->skip++;
        return 1;
    }
    bb_jv_t v = {.type = type};
    if (w->p->value(w->p->ctx, t, &v) < 0) {
        w->stopped = true;
        return 0;
    }
    w->node[w->track] = t;
    w->is_obj[w->track] = type == BB_JV_OBJECT;
    w->track++;
    return 1;
}

static int s_close(s_walk_t *w)
{
    if (--w->depth == 0)
        w->end = yajl_get_bytes_consumed(w->h);
    if (w->skip) {
        w->skip--;
        return 1;
    }
    int t = w->node[--w->track];
    if (w->p->close && w->p->close(w->p->ctx, t) < 0) {
        w->stopped = true;
        return 0;
    }
    return 1;
}

static int s_on_start_map(void *ctx)
{
    return s_open(ctx, BB_JV_OBJECT);
}

static int s_on_start_array(void *ctx)
{
    return s_open(ctx, BB_JV_ARRAY);
}

static int s_on_end(void *ctx)
{
    return s_close(ctx);
}

static int s_on_key(void *ctx, const unsigned char *key, size_t len)
{
    s_walk_t *w = ctx;
    if (!w->skip)
        w->key_node = s_child(w->p, w->node[w->track - 1], (const char *)key, len);
    return 1;
}

static const yajl_callbacks s_callbacks = {
    .yajl_null = s_on_null,
    .yajl_boolean = s_on_bool,
    .yajl_number = s_on_number,
    .yajl_string = s_on_string,
    .yajl_start_map = s_on_start_map,
    .yajl_map_key = s_on_key,
    .yajl_end_map = s_on_end,
    .yajl_start_array = s_on_start_array,
    .yajl_end_array = s_on_end,
};

/* What may follow the document. yajl's own check for trailing garbage
 * misses a token cut short at the end (an unterminated string after the
 * document passes), so bb_pick looks at the rest itself. */
static bool s_only_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return false;
    return true;
}

int bb_pick(const bb_pick_t *p, const char *body, size_t len)
{
    if (!body || !len || !s_prescan((const unsigned char *)body, len))
        return -1;
    s_walk_t w = {.p = p, .key_node = -1};
    yajl_handle h = yajl_alloc(&s_callbacks, NULL, &w);
    if (!h)
        return -2;
    w.h = h;
    /* yajl's defaults, said out loud: one document, nothing after it. */
    yajl_config(h, yajl_allow_comments, 0);
    yajl_config(h, yajl_allow_trailing_garbage, 0);
    yajl_config(h, yajl_allow_multiple_values, 0);
    yajl_config(h, yajl_allow_partial_values, 0);
    yajl_status st = yajl_parse(h, (const unsigned char *)body, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    yajl_free(h);
    if (w.stopped)
        return -2;
    return st == yajl_status_ok && s_only_space(body + w.end, len - w.end) ? 0 : -1;
}
