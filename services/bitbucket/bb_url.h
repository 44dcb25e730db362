/* bb_url: building what portico-bitbucket sends to Bitbucket.
 *
 * URLs are the integration's base URL (which may carry a context path such
 * as /bitbucket and, as typed by an admin, a trailing slash) joined with an
 * API path, never with a doubled slash: Bitbucket answers "//rest/..." with
 * a 404. Path segments and query values are percent-encoded; POST bodies
 * are application/x-www-form-urlencoded with every value percent-encoded.
 *
 * Pure functions, no I/O: unit tested in tests/unit/test_bb_url.c. */
#ifndef PORTICO_BB_URL_H
#define PORTICO_BB_URL_H

#include <stdbool.h>
#include <stddef.h>

/* A growable string. A failed allocation is sticky: every later append is
 * ignored and bb_str_take returns NULL, so callers check once at the end. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
    bool failed;
} bb_str_t;

void bb_str_append(bb_str_t *self, const char *p, size_t n);
void bb_str_puts(bb_str_t *self, const char *p);
void bb_str_printf(bb_str_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append p percent-encoded: everything outside RFC 3986's unreserved set. */
void bb_str_encode(bb_str_t *self, const char *p);
/* The string (fresh, NUL-terminated), or NULL when an append failed. The
 * bb_str_t is empty afterwards. */
char *bb_str_take(bb_str_t *self);
/* Wipe (the buffer may hold a secret) and free. */
void bb_str_clear(bb_str_t *self);

/* Append "name=value" to a form or query string, '&'-separated, both
 * percent-encoded. */
void bb_form_add(bb_str_t *form, const char *name, const char *value);
void bb_form_add_int(bb_str_t *form, const char *name, long value);

/* Join a base URL and an API path ("/rest/api/1.0/users"): exactly one
 * slash between them whatever trailing slashes the base has or leading
 * slashes the path has. Fresh string, NULL on allocation failure. */
char *bb_url_join(const char *base, const char *path);

/* "host" or "host:port" of an absolute URL, for messages and logs. */
void bb_url_host(const char *url, char *out, size_t out_size);
/* The path of an absolute URL without query or fragment, for logs. */
void bb_url_path(const char *url, char *out, size_t out_size);

/* Free a string that may hold a secret: wiped first. NULL is fine. */
void bb_free_secret(char *s);

#endif
