/* access_rules: who may log in through an integration, as pure checks.
 *
 * An integration may name one Bitbucket project ("KEY") or repository
 * ("KEY/slug") the user must be able to read, and a list of patterns the
 * user's name or e-mail address must match: exact names or addresses, or
 * "*@domain". A person must pass every rule that is set; with none set,
 * everyone with an account on that Bitbucket may log in. The registry
 * validates with these functions, the broker matches with them. */
#ifndef PORTICO_ACCESS_RULES_H
#define PORTICO_ACCESS_RULES_H

#include <stdbool.h>
#include <stddef.h>

#define ACCESS_MAX_PATTERNS 200
#define ACCESS_MAX_PATTERN 320
#define ACCESS_MAX_KEY 128
#define ACCESS_MAX_SLUG 128
#define ACCESS_MAX_RESOURCE (ACCESS_MAX_KEY + 1 + ACCESS_MAX_SLUG)
#define ACCESS_MAX_CONTACT 200

/* "" (no resource rule), "KEY" or "KEY/slug": a project key of letters,
 * digits, '_', '-', '.' (or a personal "~name"), a slug of letters, digits,
 * '_', '-', '.'. */
bool access_resource_valid(const char *resource);
/* Split a valid resource into its project key and repository slug ("" for
 * a project). 0, or -1 when it is not valid or does not fit. */
int access_resource_split(const char *resource, char *key, size_t key_size, char *slug, size_t slug_size);
/* An exact user name or e-mail address (no spaces, commas or control
 * characters, no '*'), or "*@domain". */
bool access_pattern_valid(const char *pattern);
/* True when username or email equals one of the exact patterns, or email
 * (or a username that is an address) ends in "@domain" of a "*@domain"
 * pattern; ASCII letters compare without regard to case. */
bool access_patterns_match(char *const *patterns, size_t n, const char *username, const char *email);

#endif
