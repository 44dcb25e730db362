/* bb_header: the response headers whose values portico-bitbucket parses:
 * WWW-Authenticate (OAuth 1's oauth_problem) and Retry-After.
 *
 * Pure functions, no I/O: unit tested in tests/unit/test_bb_header.c. */
#ifndef PORTICO_BB_HEADER_H
#define PORTICO_BB_HEADER_H

#include <stddef.h>
#include <time.h>

/* Retry-After as seconds from now (delta-seconds or an HTTP date), capped
 * at one day; -1 when absent or unreadable. */
int bb_retry_after_seconds(const char *value, time_t now);
/* oauth_problem from a WWW-Authenticate: OAuth header, else from a
 * form-encoded body. Only [A-Za-z0-9_] survive. 0 when found, else -1. */
int bb_oauth_problem(const char *www_authenticate, const char *body, size_t body_len, char *out, size_t out_size);

#endif
