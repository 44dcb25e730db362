#include "bb_url.h"

#include "url.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool s_reserve(bb_str_t *self, size_t extra)
{
    if (self->failed)
        return false;
    if (extra > ((size_t)-1) / 4 - self->len) {
        self->failed = true;
        return false;
    }
    size_t need = self->len + extra + 1;
    if (need <= self->cap)
        return true;
    size_t cap = self->cap ? self->cap : 64;
    while (cap < need)
        cap *= 2;
    /* Not realloc: the old buffer may hold a secret and must be wiped. */
    char *data = malloc(cap);
    if (!data) {
        self->failed = true;
        return false;
    }
    if (self->data) {
        memcpy(data, self->data, self->len + 1);
        explicit_bzero(self->data, self->cap);
        free(self->data);
    } else {
        data[0] = '\0';
    }
    self->data = data;
    self->cap = cap;
    return true;
}

void bb_str_append(bb_str_t *self, const char *p, size_t n)
{
    if (!s_reserve(self, n))
        return;
    memcpy(self->data + self->len, p, n);
    self->len += n;
    self->data[self->len] = '\0';
}

void bb_str_puts(bb_str_t *self, const char *p)
{
    bb_str_append(self, p ? p : "", p ? strlen(p) : 0);
}

void bb_str_printf(bb_str_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        self->failed = true;
        return;
    }
    if (!s_reserve(self, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(self->data + self->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    self->len += (size_t)n;
}

void bb_str_encode(bb_str_t *self, const char *p)
{
    if (!p)
        return;
    size_t n = strlen(p);
    if (n > ((size_t)-1) / 8 || !s_reserve(self, 3 * n)) {
        self->failed = true;
        return;
    }
    int w = url_encode(p, self->data + self->len, self->cap - self->len);
    if (w < 0) {
        self->failed = true;
        return;
    }
    self->len += (size_t)w;
}

char *bb_str_take(bb_str_t *self)
{
    if (self->failed) {
        bb_str_clear(self);
        return NULL;
    }
    if (!self->data && !s_reserve(self, 0))
        return NULL;
    char *out = self->data;
    self->data = NULL;
    self->len = self->cap = 0;
    return out;
}

void bb_str_clear(bb_str_t *self)
{
    if (self->data) {
        explicit_bzero(self->data, self->cap);
        free(self->data);
    }
    memset(self, 0, sizeof *self);
}

void bb_form_add(bb_str_t *form, const char *name, const char *value)
{
    if (form->len)
        bb_str_puts(form, "&");
    bb_str_encode(form, name);
    bb_str_puts(form, "=");
    bb_str_encode(form, value ? value : "");
}

void bb_form_add_int(bb_str_t *form, const char *name, long value)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", value);
    bb_form_add(form, name, buf);
}

char *bb_url_join(const char *base, const char *path)
{
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    while (*path == '/')
        path++;
    bb_str_t s = {0};
    bb_str_append(&s, base, blen);
    bb_str_puts(&s, "/");
    bb_str_puts(&s, path);
    return bb_str_take(&s);
}

/* Where the authority starts ("scheme://" skipped) or the string itself. */
static const char *s_authority(const char *url)
{
    const char *p = strstr(url, "://");
    return p ? p + 3 : url;
}

void bb_url_host(const char *url, char *out, size_t out_size)
{
    if (!out_size)
        return;
    const char *a = s_authority(url ? url : "");
    size_t n = strcspn(a, "/?#");
    /* Never show user info, should a URL ever carry one. */
    const char *at = memchr(a, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - a);
        a = at + 1;
    }
    if (n >= out_size)
        n = out_size - 1;
    memcpy(out, a, n);
    out[n] = '\0';
}

void bb_url_path(const char *url, char *out, size_t out_size)
{
    if (!out_size)
        return;
    const char *a = s_authority(url ? url : "");
    const char *p = a + strcspn(a, "/?#");
    size_t n = *p == '/' ? strcspn(p, "?#") : 0;
    if (n == 0) {
        snprintf(out, out_size, "/");
        return;
    }
    if (n >= out_size)
        n = out_size - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

void bb_free_secret(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}
