/* bb_url: building what portico-bitbucket sends to Bitbucket.
 *
 * URLs are the integration's base URL (which may carry a context path such
 * as /bitbucket and, as typed by an admin, a trailing slash) joined with an
 * API path, never with a doubled slash: Bitbucket answers "//rest/..." with
 * a 404. Path segments and query values are percent-encoded; POST bodies
 * are application/x-www-form-urlencoded with every value percent-encoded.
 *
 * Strings are built with sbuf (sbuf.h). Pure functions, no I/O: unit tested in tests/unit/test_bb_url.c. */
#ifndef PORTICO_BB_URL_H
#define PORTICO_BB_URL_H

#include "sbuf.h"

#include <stdbool.h>
#include <stddef.h>

/* Append "name=value" to a form or query string, '&'-separated, both
 * percent-encoded. */
void bb_form_add(sbuf_t *form, const char *name, const char *value);
void bb_form_add_int(sbuf_t *form, const char *name, long value);

/* Append one path segment, percent-encoded; "." and ".." whole are
 * encoded too ("%2E"), or curl would resolve them as the path's own dot
 * segments (a user named ".." must not turn users/.. into the API's root). */
void bb_path_segment(sbuf_t *path, const char *segment);

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
