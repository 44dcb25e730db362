/* sbuf: a growing string buffer, with HTML escaping for page output. */
#ifndef PORTICO_SBUF_H
#define PORTICO_SBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *data;
    size_t len;
    size_t cap;
    bool failed; /* an allocation failed; the content is truncated */
} sbuf_t;

void sbuf_init(sbuf_t *b);
void sbuf_free(sbuf_t *b);
void sbuf_reset(sbuf_t *b);
void sbuf_append(sbuf_t *b, const char *s, size_t n);
void sbuf_puts(sbuf_t *b, const char *s);
void sbuf_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append text with & < > " ' escaped: safe in element content and in
 * double- or single-quoted attributes. */
void sbuf_html(sbuf_t *b, const char *text);
/* Append an escaped printf result. */
void sbuf_htmlf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append text percent-encoded (RFC 3986 unreserved kept). */
void sbuf_urlenc(sbuf_t *b, const char *text);

#endif
