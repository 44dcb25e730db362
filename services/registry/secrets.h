/* secrets: sealing the values a raw look at the database must not reveal.
 *
 * Every secret is stored as crypto_seal output (AES-256-GCM, key id in the
 * value) with additional data naming where it lives, "table:row:column",
 * so a value copied to another row or column no longer opens. An empty
 * secret is stored as SQL NULL. */
#ifndef PORTICO_REGISTRY_SECRETS_H
#define PORTICO_REGISTRY_SECRETS_H

#include "crypto.h"

#include <stddef.h>
#include <stdint.h>

/* The keyring from PORTICO_SECRET_KEY_FILE (seals and opens) and
 * PORTICO_SECRET_KEY_FILE_PREVIOUS (opens only). NULL with a message in
 * why, which tells how to make a key when none is configured. */
crypto_keyring_t *secrets_load(const char *key_file, const char *previous_file, char *why, size_t why_size);

/* "table:row:column" */
void secrets_aad(char *out, size_t out_size, const char *table, const char *row, const char *column);

/* Seal plain. An empty or NULL plain gives *out = NULL, *n = 0. 0 or -1. */
int secrets_seal(const crypto_keyring_t *keys, const char *plain, const char *aad, uint8_t **out, size_t *n);
/* Open a sealed value: a fresh string (free with secrets_free), "" for
 * NULL input, NULL when the key is unknown or the value was altered. */
char *secrets_open(const crypto_keyring_t *keys, const uint8_t *sealed, size_t n, const char *aad);
/* Wipe and free a string that held a secret. */
void secrets_free(char *plain);
/* Wipe and free sealed bytes (they are not secret; this is for symmetry). */
void secrets_free_sealed(uint8_t *sealed, size_t n);

#endif
