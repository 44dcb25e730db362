/* setup: the setup token that guards Setup Mode.
 *
 * Only its SHA-256 is stored. At first start a token is generated (32
 * random bytes, base64url) and written to the log exactly once; an
 * operator may instead preset one in PORTICO_SETUP_TOKEN, which replaces
 * the stored hash whenever it is set. */
#ifndef PORTICO_REGISTRY_SETUP_H
#define PORTICO_REGISTRY_SETUP_H

#include "db.h"

#include <stddef.h>

/* At start, after migrations: adopt the preset token, or generate and log
 * one when none was ever made. 0 or -1. */
int setup_token_init(db_t *db, const char *preset);

/* For `setup-mode on`: store the preset token's hash, or a new token's and
 * return the token in out (empty when the preset is used). 0 or -1. */
int setup_token_issue(db_t *db, const char *preset, const char *actor, char *out, size_t out_size);

#endif
