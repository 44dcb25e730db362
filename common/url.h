/* url: the URL rules Portico applies, built on libcurl's URL parser. */
#ifndef PORTICO_URL_H
#define PORTICO_URL_H

#include <stdbool.h>
#include <stddef.h>

/* Normalise a base URL (a Bitbucket instance or Portico's public URL):
 * http or https only, a host, no user info, query or fragment; one trailing
 * slash removed, context path kept, scheme and host lower-cased.
 * 0 on success; -1 with a sentence for the user in why. */
int url_normalize_base(const char *in, char *out, size_t out_size, char *why, size_t why_size);

/* True when s may be used as a post-login redirect: a local path that
 * starts with a single '/', no scheme, no backslash, no control bytes. */
bool url_is_local_path(const char *s);

/* Percent-encode everything outside RFC 3986's unreserved set.
 * Returns the length written, or -1 when out is too small. */
int url_encode(const char *in, char *out, size_t out_size);

/* Decode %XX (and '+' as space when plus_is_space). -1 on bad escapes or
 * when out is too small. Refuses encoded NUL bytes. */
int url_decode(const char *in, bool plus_is_space, char *out, size_t out_size);

/* True when url is https. */
bool url_is_https(const char *url);

#endif
