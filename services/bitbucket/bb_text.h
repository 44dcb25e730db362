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
 * spaces collapse, cut at a UTF-8 character boundary. */
void bb_safe_text(const char *in, size_t n, char *out, size_t out_size);
/* n bytes as a fresh NUL-terminated string (NUL bytes inside are kept, for
 * the caller to refuse); NULL when out of memory. */
char *bb_text_dup(const char *p, size_t n);

#endif
