/* bb_form: application/x-www-form-urlencoded bodies from Bitbucket (the
 * OAuth 1 token answers, oauth_problem in an error body).
 *
 * Pure functions, no I/O: unit tested in tests/unit/test_bb_form.c. */
#ifndef PORTICO_BB_FORM_H
#define PORTICO_BB_FORM_H

#include <stddef.h>

/* Value of name in an application/x-www-form-urlencoded body, decoded;
 * fresh string or NULL when absent or malformed. */
char *bb_form_get(const char *body, size_t body_len, const char *name);

#endif
