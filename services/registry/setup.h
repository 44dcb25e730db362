/* setup: the setup token that guards Setup Mode.
 *
 * Only its SHA-256 is stored, with an expiry (PORTICO_SETUP_TOKEN_TTL_HOURS).
 * A generated token (32 random bytes, base64url) is never logged: it is
 * written to PORTICO_SETUP_TOKEN_FILE (mode 0600), which `portico-registry
 * setup-token` shows. An operator may instead preset one in
 * PORTICO_SETUP_TOKEN, which replaces the stored hash whenever it changes.
 * Every new token ends every Setup Mode session: whoever proved the old
 * one holds nothing any more. */
#ifndef PORTICO_REGISTRY_SETUP_H
#define PORTICO_REGISTRY_SETUP_H

#include "db.h"
#include "options.h"

#include <stddef.h>

/* At start, after migrations: adopt the preset token, or generate one when
 * none was ever made and write it to the token file. 0 or -1. */
int setup_token_init(db_t *db, const reg_options_t *opts);

/* For `setup-mode on`: store the preset token's hash, or a new token's,
 * with a fresh expiry; end every Setup Mode session; write a new token to
 * the token file and return it in out (empty when the preset is used).
 * 0 or -1. */
int setup_token_issue(db_t *db, const reg_options_t *opts, const char *actor, char *out, size_t out_size);

/* `portico-registry setup-token`: print the current token from the token
 * file with its expiry, or say why there is none and how to get one.
 * Returns the exit status. */
int setup_token_show(db_t *db, const reg_options_t *opts);

#endif
