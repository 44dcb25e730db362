#include "bb_url.h"

#include "url.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bb_form_add(sbuf_t *form, const char *name, const char *value)
{
    if (form->len)
        sbuf_puts(form, "&");
    sbuf_urlenc(form, name);
    sbuf_puts(form, "=");
    sbuf_urlenc(form, value);
}

void bb_form_add_int(sbuf_t *form, const char *name, long value)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", value);
    bb_form_add(form, name, buf);
}

void bb_path_segment(sbuf_t *path, const char *segment)
{
    if (!strcmp(segment, ".") || !strcmp(segment, "..")) {
        for (const char *p = segment; *p; p++)
            sbuf_puts(path, "%2E");
        return;
    }
    sbuf_urlenc(path, segment);
}

char *bb_url_join(const char *base, const char *path)
{
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    while (*path == '/')
        path++;
    sbuf_t s;
    sbuf_init(&s);
    sbuf_append(&s, base, blen);
    sbuf_puts(&s, "/");
    sbuf_puts(&s, path);
    return sbuf_take(&s);
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
