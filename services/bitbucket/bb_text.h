/* bb_text: strings that come from Bitbucket: checked as UTF-8, made safe
 * to show in a message, copied with their length.
 *
 * Pure functions, no I/O: unit tested in tests/unit/test_bb_text.c. */
#ifndef PORTICO_BB_TEXT_H
#define PORTICO_BB_TEXT_H

#include <stdbool.h>
#include <stddef.h>

bool bb_utf8_valid(const char *s, size_t n);
/* Copy text for a message: control characters become spaces, runs of
 * spaces collapse, cut at a UTF-8 character boundary, and what looks like
 * a token, code or secret is replaced (bb_redact_opaque): a server or proxy
 * that echoes what it was sent must not put it in Portico's messages and
 * logs. */
void bb_safe_text(const char *in, size_t n, char *out, size_t out_size);
/* n bytes as a fresh NUL-terminated string (NUL bytes inside are kept, for
 * the caller to refuse); NULL when out of memory. */
char *bb_text_dup(const char *p, size_t n);
/* A copy of text in which each run of [A-Za-z0-9_~+/-] and %XX escapes of
 * 16 or more characters that mixes upper and lower case with digits, or
 * is hex (and '-') of 32 or more with a digit, becomes "[redacted]", as
 * does the value of each name=value whose name contains secret, token,
 * code, verifier or password, whatever it looks like. Fresh; NULL when out
 * of memory. */
char *bb_redact_opaque(const char *text);

#endif
