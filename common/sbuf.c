#include "sbuf.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sbuf_init(sbuf_t *b)
{
    memset(b, 0, sizeof *b);
}

void sbuf_free(sbuf_t *b)
{
    if (b->data) {
        explicit_bzero(b->data, b->cap);
        free(b->data);
    }
    memset(b, 0, sizeof *b);
}

void sbuf_reset(sbuf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static bool s_reserve(sbuf_t *b, size_t extra)
{
    if (b->failed)
        return false;
    if (extra > ((size_t)-1) / 4 - b->len) {
        b->failed = true;
        return false;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < need)
        cap *= 2;
    /* Not realloc: the old buffer may hold a secret and must be wiped. */
    char *d = malloc(cap);
    if (!d) {
        b->failed = true;
        return false;
    }
    if (b->data) {
        memcpy(d, b->data, b->len + 1);
        explicit_bzero(b->data, b->cap);
        free(b->data);
    } else {
        d[0] = '\0';
    }
    b->data = d;
    b->cap = cap;
    return true;
}

char *sbuf_take(sbuf_t *b)
{
    if (b->failed) {
        sbuf_free(b);
        return NULL;
    }
    if (!b->data && !s_reserve(b, 0))
        return NULL;
    char *out = b->data;
    memset(b, 0, sizeof *b);
    return out;
}

void sbuf_append(sbuf_t *b, const char *s, size_t n)
{
    if (!s_reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sbuf_puts(sbuf_t *b, const char *s)
{
    if (s)
        sbuf_append(b, s, strlen(s));
}

static void s_vprintf(sbuf_t *b, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, copy);
    va_end(copy);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        sbuf_append(b, small, (size_t)n);
        return;
    }
    if (!s_reserve(b, (size_t)n))
        return;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void sbuf_printf(sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vprintf(b, fmt, ap);
    va_end(ap);
}

void sbuf_html(sbuf_t *b, const char *text)
{
    if (!text)
        return;
    const char *run = text;
    for (const char *p = text; *p; p++) {
        const char *rep = NULL;
        switch (*p) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            continue;
        }
        sbuf_append(b, run, (size_t)(p - run));
        sbuf_puts(b, rep);
        run = p + 1;
    }
    sbuf_puts(b, run);
}

void sbuf_htmlf(sbuf_t *b, const char *fmt, ...)
{
    sbuf_t tmp;
    sbuf_init(&tmp);
    va_list ap;
    va_start(ap, fmt);
    s_vprintf(&tmp, fmt, ap);
    va_end(ap);
    sbuf_html(b, tmp.data ? tmp.data : "");
    sbuf_free(&tmp);
}

void sbuf_urlenc(sbuf_t *b, const char *text)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)text; p && *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            sbuf_append(b, (const char *)p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            sbuf_append(b, e, 3);
        }
    }
}
