#include "secrets.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

crypto_keyring_t *secrets_load(const char *key_file, const char *previous_file, char *why, size_t why_size)
{
    if (!key_file || !*key_file) {
        snprintf(why, why_size,
                 "PORTICO_SECRET_KEY_FILE is not set: secrets are encrypted at rest with a key you keep outside "
                 "the database; make one with `head -c 32 /dev/urandom | base64 > /path/to/key` "
                 "(readable only by Portico) and set PORTICO_SECRET_KEY_FILE=/path/to/key");
        return NULL;
    }
    crypto_keyring_t *keys = crypto_keyring_new();
    if (!keys) {
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    char reason[300];
    if (crypto_keyring_add_file(keys, key_file, true, reason, sizeof reason) < 0) {
        snprintf(why, why_size, "PORTICO_SECRET_KEY_FILE: %s", reason);
        goto fail;
    }
    if (previous_file && *previous_file &&
        crypto_keyring_add_file(keys, previous_file, false, reason, sizeof reason) < 0) {
        snprintf(why, why_size, "PORTICO_SECRET_KEY_FILE_PREVIOUS: %s", reason);
        goto fail;
    }
    return keys;
fail:
    crypto_keyring_destroy(&keys);
    return NULL;
}

void secrets_aad(char *out, size_t out_size, const char *table, const char *row, const char *column)
{
    snprintf(out, out_size, "%s:%s:%s", table, row, column);
}

int secrets_seal(const crypto_keyring_t *keys, const char *plain, const char *aad, uint8_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!plain || !*plain)
        return 0;
    return crypto_seal(keys, plain, strlen(plain), aad, out, n);
}

char *secrets_open(const crypto_keyring_t *keys, const uint8_t *sealed, size_t n, const char *aad)
{
    if (!sealed)
        return strdup("");
    uint8_t *plain = NULL;
    size_t plain_n = 0;
    if (crypto_open(keys, sealed, n, aad, &plain, &plain_n) < 0)
        return NULL;
    /* A secret with a NUL inside would be cut short: treat it as altered. */
    if (memchr(plain, '\0', plain_n)) {
        OPENSSL_cleanse(plain, plain_n);
        free(plain);
        return NULL;
    }
    return (char *)plain;
}

void secrets_free(char *plain)
{
    if (!plain)
        return;
    OPENSSL_cleanse(plain, strlen(plain));
    free(plain);
}

void secrets_free_sealed(uint8_t *sealed, size_t n)
{
    if (sealed)
        OPENSSL_cleanse(sealed, n);
    free(sealed);
}
