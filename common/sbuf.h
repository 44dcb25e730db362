/* sbuf: the one growing string buffer: pages, URLs, request bodies.
 *
 * A failed allocation is sticky: every later append is ignored and failed
 * stays set (sbuf_take returns NULL), so callers check once at the end.
 * The buffer may hold a secret (a token in a request body): memory it
 * lets go of, when growing or freed, is wiped first. A zeroed sbuf_t is an
 * empty buffer. */
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
/* Wipe and free; the buffer is empty afterwards. */
void sbuf_free(sbuf_t *b);
/* The content (fresh, NUL-terminated; "" when nothing was appended), or
 * NULL when an append failed. The buffer is empty afterwards. */
char *sbuf_take(sbuf_t *b);
void sbuf_reset(sbuf_t *b);
void sbuf_append(sbuf_t *b, const char *s, size_t n);
void sbuf_puts(sbuf_t *b, const char *s); /* NULL appends nothing */
void sbuf_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append text with & < > " ' escaped: safe in element content and in
 * double- or single-quoted attributes. */
void sbuf_html(sbuf_t *b, const char *text);
/* Append an escaped printf result. */
void sbuf_htmlf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append text percent-encoded (RFC 3986 unreserved kept). */
void sbuf_urlenc(sbuf_t *b, const char *text);

#endif
