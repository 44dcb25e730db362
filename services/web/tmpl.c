/* The template engine (tmpl.h). Templates are checked once, when the set
 * is loaded, and then interpreted from their text on every render: pages
 * are small, and a second representation would be one more thing to keep
 * right. */
#include "tmpl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 16 /* nested sections, and templates including templates */
#define MAX_NAME 64

typedef enum { T_TEXT, T_VAR, T_RAW, T_OPEN, T_INVERT, T_CLOSE, T_PARTIAL, T_COMMENT, T_VARS, T_END } tag_kind_t;

typedef struct {
    tag_kind_t kind;
    const char *text; /* T_TEXT: the text; otherwise the whole tag */
    size_t text_len;
    char name[MAX_NAME];
    const char *args; /* T_VARS: the declared names */
    size_t args_len;
    const char *next; /* where the next token starts */
} token_t;

typedef struct {
    const char *name;
    const char *text;
    const char *body; /* after the {{!vars}} line */
    const char *vars; /* the declared names, space separated */
    size_t vars_len;
} tmpl_t;

struct tmpl_lib {
    tmpl_t *items;
    size_t n;
};

typedef enum { V_TEXT, V_HTML, V_BOOL, V_LIST } val_kind_t;

typedef struct val {
    struct val *next;
    char *name;
    val_kind_t kind;
    char *s;
    bool on;
    tmpl_ctx_t **items;
    size_t n, cap;
} val_t;

struct tmpl_ctx {
    val_t *vals;
    const tmpl_ctx_t *parent;
    bool failed;
};

static void s_err(char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void s_err(char *err, size_t err_size, const char *fmt, ...)
{
    if (!err || !err_size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
}

static bool s_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* The next token of [p, end). -1 on a malformed tag (err says which). */
static int s_next(const char *p, const char *end, token_t *t, const char *tname, char *err, size_t err_size)
{
    memset(t, 0, sizeof *t);
    if (p >= end) {
        t->kind = T_END;
        t->next = end;
        return 0;
    }
    const char *open = p;
    while (open + 1 < end && !(open[0] == '{' && open[1] == '{'))
        open++;
    if (open + 1 >= end || open > p) {
        t->kind = T_TEXT;
        t->text = p;
        t->text_len = (open + 1 >= end ? end : open) - p;
        t->next = p + t->text_len;
        return 0;
    }
    bool raw = open + 2 < end && open[2] == '{';
    const char *in = open + (raw ? 3 : 2);
    const char *close = in;
    const char *closer = raw ? "}}}" : "}}";
    size_t cl = strlen(closer);
    while (close + cl <= end && strncmp(close, closer, cl) != 0)
        close++;
    if (close + cl > end) {
        s_err(err, err_size, "template %s: a tag is not closed", tname);
        return -1;
    }
    t->text = open;
    t->text_len = (size_t)(close + cl - open);
    t->next = close + cl;
    char sigil = raw ? 0 : *in;
    if (raw)
        t->kind = T_RAW;
    else if (sigil == '!') {
        t->kind = strncmp(in, "!vars", 5) == 0 && (in + 5 == close || in[5] == ' ') ? T_VARS : T_COMMENT;
        t->args = in + 5;
        t->args_len = (size_t)(close - t->args);
        return 0;
    } else if (sigil == '#')
        t->kind = T_OPEN;
    else if (sigil == '^')
        t->kind = T_INVERT;
    else if (sigil == '/')
        t->kind = T_CLOSE;
    else if (sigil == '>')
        t->kind = T_PARTIAL;
    else
        t->kind = T_VAR;
    const char *n = in + (t->kind == T_VAR || t->kind == T_RAW ? 0 : 1);
    while (n < close && *n == ' ')
        n++;
    const char *ne = close;
    while (ne > n && ne[-1] == ' ')
        ne--;
    size_t len = (size_t)(ne - n);
    bool ok = len > 0 && len < MAX_NAME;
    for (const char *c = n; ok && c < ne; c++)
        ok = s_name_char(*c);
    if (!ok) {
        s_err(err, err_size, "template %s: bad tag %.*s", tname, (int)t->text_len, t->text);
        return -1;
    }
    memcpy(t->name, n, len);
    t->name[len] = '\0';
    return 0;
}

static bool s_declared(const tmpl_t *t, const char *name)
{
    size_t nl = strlen(name);
    const char *p = t->vars, *end = t->vars + t->vars_len;
    while (p < end) {
        while (p < end && *p == ' ')
            p++;
        const char *w = p;
        while (p < end && *p != ' ')
            p++;
        if ((size_t)(p - w) == nl && !strncmp(w, name, nl))
            return true;
    }
    return false;
}

static const tmpl_t *s_find(const tmpl_lib_t *lib, const char *name)
{
    for (size_t i = 0; lib && i < lib->n; i++)
        if (!strcmp(lib->items[i].name, name))
            return &lib->items[i];
    return NULL;
}

/* Everything that can be known without values: the declaration, tags,
 * balanced sections, declared names, included templates that exist. */
static int s_check(const tmpl_lib_t *lib, tmpl_t *t, char *err, size_t err_size)
{
    const char *end = t->text + strlen(t->text);
    token_t tok;
    if (s_next(t->text, end, &tok, t->name, err, err_size) < 0)
        return -1;
    if (tok.kind != T_VARS) {
        s_err(err, err_size, "template %s: does not start with {{!vars ...}}", t->name);
        return -1;
    }
    t->vars = tok.args;
    t->vars_len = tok.args_len;
    t->body = tok.next;
    char stack[MAX_DEPTH][MAX_NAME];
    int depth = 0;
    for (const char *p = t->body;;) {
        if (s_next(p, end, &tok, t->name, err, err_size) < 0)
            return -1;
        p = tok.next;
        switch (tok.kind) {
        case T_END:
            if (depth) {
                s_err(err, err_size, "template %s: {{#%s}} is not closed", t->name, stack[depth - 1]);
                return -1;
            }
            return 0;
        case T_VARS:
            s_err(err, err_size, "template %s: a second {{!vars}}", t->name);
            return -1;
        case T_PARTIAL:
            if (!s_find(lib, tok.name)) {
                s_err(err, err_size, "template %s: includes unknown template %s", t->name, tok.name);
                return -1;
            }
            break;
        case T_OPEN:
        case T_INVERT:
            if (depth == MAX_DEPTH) {
                s_err(err, err_size, "template %s: sections nested too deep", t->name);
                return -1;
            }
            snprintf(stack[depth++], MAX_NAME, "%s", tok.name);
            __attribute__((fallthrough)); /* the name must be declared too */
        case T_VAR:
        case T_RAW:
            if (!s_declared(t, tok.name)) {
                s_err(err, err_size, "template %s: unknown variable %s (not in its {{!vars}})", t->name, tok.name);
                return -1;
            }
            break;
        case T_CLOSE:
            if (!depth || strcmp(stack[depth - 1], tok.name) != 0) {
                s_err(err, err_size, "template %s: {{/%s}} closes nothing open", t->name, tok.name);
                return -1;
            }
            depth--;
            break;
        default:
            break;
        }
    }
}

tmpl_lib_t *tmpl_lib_new(const tmpl_source_t *sources, char *err, size_t err_size)
{
    tmpl_lib_t *self = calloc(1, sizeof *self);
    size_t n = 0;
    while (sources[n].name)
        n++;
    if (!self || !(self->items = calloc(n ? n : 1, sizeof *self->items))) {
        s_err(err, err_size, "out of memory");
        tmpl_lib_destroy(&self);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (s_find(self, sources[i].name)) {
            s_err(err, err_size, "template %s: defined twice", sources[i].name);
            tmpl_lib_destroy(&self);
            return NULL;
        }
        self->items[self->n].name = sources[i].name;
        self->items[self->n].text = sources[i].text;
        self->n++;
    }
    for (size_t i = 0; i < self->n; i++) {
        if (s_check(self, &self->items[i], err, err_size) < 0) {
            tmpl_lib_destroy(&self);
            return NULL;
        }
    }
    return self;
}

void tmpl_lib_destroy(tmpl_lib_t **self_p)
{
    if (!*self_p)
        return;
    free((*self_p)->items);
    free(*self_p);
    *self_p = NULL;
}

bool tmpl_lib_has(const tmpl_lib_t *self, const char *name)
{
    return s_find(self, name) != NULL;
}

/* ---- values ---- */

tmpl_ctx_t *tmpl_ctx_new(void)
{
    return calloc(1, sizeof(tmpl_ctx_t));
}

static void s_val_clear(val_t *v)
{
    free(v->s);
    v->s = NULL;
    for (size_t i = 0; i < v->n; i++)
        tmpl_ctx_destroy(&v->items[i]);
    free(v->items);
    v->items = NULL;
    v->n = v->cap = 0;
}

void tmpl_ctx_destroy(tmpl_ctx_t **self_p)
{
    tmpl_ctx_t *self = *self_p;
    if (!self)
        return;
    for (val_t *v = self->vals, *next; v; v = next) {
        next = v->next;
        s_val_clear(v);
        free(v->name);
        free(v);
    }
    free(self);
    *self_p = NULL;
}

/* The value called name in self (not its parents), emptied, or a new one. */
static val_t *s_slot(tmpl_ctx_t *self, const char *name, val_kind_t kind)
{
    if (!self)
        return NULL;
    for (val_t *v = self->vals; v; v = v->next) {
        if (!strcmp(v->name, name)) {
            s_val_clear(v);
            v->kind = kind;
            return v;
        }
    }
    val_t *v = calloc(1, sizeof *v);
    if (!v || !(v->name = strdup(name))) {
        free(v);
        self->failed = true;
        return NULL;
    }
    v->kind = kind;
    v->next = self->vals;
    self->vals = v;
    return v;
}

static void s_set_string(tmpl_ctx_t *self, const char *name, val_kind_t kind, const char *s, size_t len)
{
    val_t *v = s_slot(self, name, kind);
    if (!v)
        return;
    v->s = strndup(s ? s : "", s ? len : 0);
    if (!v->s)
        self->failed = true;
}

void tmpl_set(tmpl_ctx_t *self, const char *name, const char *text)
{
    s_set_string(self, name, V_TEXT, text, text ? strlen(text) : 0);
}

void tmpl_setf(tmpl_ctx_t *self, const char *name, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        if (self)
            self->failed = true;
        return;
    }
    s_set_string(self, name, V_TEXT, s, (size_t)n);
    free(s);
}

void tmpl_set_int(tmpl_ctx_t *self, const char *name, long long value)
{
    tmpl_setf(self, name, "%lld", value);
}

void tmpl_set_bool(tmpl_ctx_t *self, const char *name, bool on)
{
    val_t *v = s_slot(self, name, V_BOOL);
    if (v)
        v->on = on;
}

void tmpl_set_list(tmpl_ctx_t *self, const char *name)
{
    s_slot(self, name, V_LIST);
}

tmpl_ctx_t *tmpl_add(tmpl_ctx_t *self, const char *list)
{
    if (!self)
        return NULL;
    val_t *v = NULL;
    for (v = self->vals; v && strcmp(v->name, list) != 0; v = v->next)
        ;
    if (!v || v->kind != V_LIST)
        v = s_slot(self, list, V_LIST);
    if (!v)
        return NULL;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        tmpl_ctx_t **items = realloc(v->items, cap * sizeof *items);
        if (!items) {
            self->failed = true;
            return NULL;
        }
        v->items = items;
        v->cap = cap;
    }
    tmpl_ctx_t *item = tmpl_ctx_new();
    if (!item) {
        self->failed = true;
        return NULL;
    }
    item->parent = self;
    v->items[v->n++] = item;
    return item;
}

/* ---- rendering ---- */

static const val_t *s_lookup(const tmpl_ctx_t *ctx, const char *name)
{
    for (; ctx; ctx = ctx->parent)
        for (const val_t *v = ctx->vals; v; v = v->next)
            if (!strcmp(v->name, name))
                return v;
    return NULL;
}

static bool s_failed(const tmpl_ctx_t *ctx)
{
    for (; ctx; ctx = ctx->parent)
        if (ctx->failed)
            return true;
    return false;
}

/* The end of the section opened just before p: where its {{/name}} tag
 * starts, and in *after where it ends. The template was checked. */
static const char *s_section_end(const tmpl_t *t, const char *p, const char *end, const char **after)
{
    int depth = 1;
    token_t tok;
    while (s_next(p, end, &tok, t->name, NULL, 0) == 0 && tok.kind != T_END) {
        if (tok.kind == T_OPEN || tok.kind == T_INVERT)
            depth++;
        else if (tok.kind == T_CLOSE && --depth == 0) {
            *after = tok.next;
            return tok.text;
        }
        p = tok.next;
    }
    *after = end;
    return end;
}

static int s_render(const tmpl_lib_t *lib, const tmpl_t *t, const char *p, const char *end, const tmpl_ctx_t *ctx,
                    sbuf_t *out, int depth, char *err, size_t err_size)
{
    if (depth > MAX_DEPTH) {
        s_err(err, err_size, "template %s: nested too deep", t->name);
        return -1;
    }
    token_t tok;
    while (p < end) {
        if (s_next(p, end, &tok, t->name, err, err_size) < 0)
            return -1;
        p = tok.next;
        const val_t *v = NULL;
        if (tok.kind == T_VAR || tok.kind == T_RAW || tok.kind == T_OPEN || tok.kind == T_INVERT) {
            v = s_lookup(ctx, tok.name);
            if (!v) {
                s_err(err, err_size, "template %s: no value for %s", t->name, tok.name);
                return -1;
            }
        }
        switch (tok.kind) {
        case T_TEXT:
            sbuf_append(out, tok.text, tok.text_len);
            break;
        case T_VAR:
            if (v->kind != V_TEXT) {
                s_err(err, err_size, "template %s: {{%s}} is not text%s", t->name, tok.name,
                      v->kind == V_HTML ? " (a rendered template: use {{{...}}})" : "");
                return -1;
            }
            sbuf_html(out, v->s);
            break;
        case T_RAW:
            if (v->kind != V_HTML) {
                s_err(err, err_size, "template %s: {{{%s}}} is not a rendered template; plain text is always escaped",
                      t->name, tok.name);
                return -1;
            }
            sbuf_puts(out, v->s);
            break;
        case T_OPEN:
        case T_INVERT: {
            const char *after;
            const char *body_end = s_section_end(t, p, end, &after);
            bool inverted = tok.kind == T_INVERT;
            if (v->kind == V_LIST && !inverted) {
                for (size_t i = 0; i < v->n; i++)
                    if (s_render(lib, t, p, body_end, v->items[i], out, depth + 1, err, err_size) < 0)
                        return -1;
            } else {
                bool on = v->kind == V_BOOL ? v->on : v->kind == V_LIST ? v->n > 0 : v->s[0] != '\0';
                if (on != inverted && s_render(lib, t, p, body_end, ctx, out, depth + 1, err, err_size) < 0)
                    return -1;
            }
            p = after;
            break;
        }
        case T_PARTIAL: {
            const tmpl_t *inc = s_find(lib, tok.name);
            if (s_render(lib, inc, inc->body, inc->text + strlen(inc->text), ctx, out, depth + 1, err, err_size) < 0)
                return -1;
            break;
        }
        default:
            break;
        }
    }
    return 0;
}

int tmpl_render(const tmpl_lib_t *lib, const char *template_name, const tmpl_ctx_t *values, sbuf_t *out, char *err,
                size_t err_size)
{
    const tmpl_t *t = s_find(lib, template_name);
    if (!t) {
        s_err(err, err_size, "no template %s", template_name);
        return -1;
    }
    if (values && s_failed(values)) {
        s_err(err, err_size, "template %s: out of memory", template_name);
        return -1;
    }
    if (s_render(lib, t, t->body, t->text + strlen(t->text), values, out, 0, err, err_size) < 0)
        return -1;
    if (out->failed) {
        s_err(err, err_size, "template %s: out of memory", template_name);
        return -1;
    }
    return 0;
}

int tmpl_set_render(tmpl_ctx_t *self, const char *name, const tmpl_lib_t *lib, const char *template_name,
                    const tmpl_ctx_t *values, char *err, size_t err_size)
{
    sbuf_t b;
    sbuf_init(&b);
    int rc = tmpl_render(lib, template_name, values, &b, err, err_size);
    if (rc == 0)
        s_set_string(self, name, V_HTML, b.data ? b.data : "", b.len);
    sbuf_free(&b);
    return rc;
}
