/* crypto: the few primitives Portico needs, on OpenSSL 3.
 *
 * Secrets at rest are sealed with AES-256-GCM under a keyring: each sealed
 * value starts with a version byte and the 4-byte id of the key that sealed
 * it, so values sealed under an older key still open while a rotation runs.
 * The additional data binds a value to where it is stored (for example
 * "integration:4:client_secret"), so ciphertexts cannot be swapped. */
#ifndef PORTICO_CRYPTO_H
#define PORTICO_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_KEY_SIZE 32
#define CRYPTO_NONCE_SIZE 12
#define CRYPTO_TAG_SIZE 16
#define CRYPTO_SEAL_OVERHEAD (1 + 4 + CRYPTO_NONCE_SIZE + CRYPTO_TAG_SIZE)

/* Bytes from the OS CSPRNG. 0 or -1. */
int crypto_random(void *buf, size_t n);
/* nbytes random bytes as base64url without padding. Length or -1. */
int crypto_random_token(size_t nbytes, char *out, size_t out_size);

/* base64url without padding. Length written (NUL-terminated) or -1. */
int crypto_b64url_encode(const void *in, size_t n, char *out, size_t out_size);
/* Accepts base64url with or without padding. Bytes written or -1. */
int crypto_b64url_decode(const char *in, void *out, size_t out_size);
/* Standard base64 with padding; whitespace ignored. Bytes written or -1. */
int crypto_b64_decode(const char *in, void *out, size_t out_size);
int crypto_b64_encode(const void *in, size_t n, char *out, size_t out_size);

void crypto_sha256(const void *data, size_t n, uint8_t out[32]);
/* Lower-case hex of bytes. */
void crypto_hex(const void *in, size_t n, char *out);
/* Constant-time comparison of two equal-length buffers. */
bool crypto_equal(const void *a, const void *b, size_t n);
/* Constant-time comparison of two strings of possibly different length. */
bool crypto_str_equal(const char *a, const char *b);

/* AES-256-GCM with a caller-chosen nonce: for known-answer tests only. */
int crypto_gcm_encrypt(const uint8_t key[CRYPTO_KEY_SIZE], const uint8_t *iv, size_t iv_len, const void *aad,
                       size_t aad_len, const void *plain, size_t n, uint8_t *cipher, uint8_t tag[CRYPTO_TAG_SIZE]);
int crypto_gcm_decrypt(const uint8_t key[CRYPTO_KEY_SIZE], const uint8_t *iv, size_t iv_len, const void *aad,
                       size_t aad_len, const uint8_t *cipher, size_t n, const uint8_t tag[CRYPTO_TAG_SIZE],
                       uint8_t *plain);

typedef struct crypto_keyring_t crypto_keyring_t;

crypto_keyring_t *crypto_keyring_new(void);
void crypto_keyring_destroy(crypto_keyring_t **self_p);
/* Add a key. The primary key seals; every key opens. Returns 0 or -1. */
int crypto_keyring_add(crypto_keyring_t *self, const uint8_t key[CRYPTO_KEY_SIZE], bool primary);
/* Read a key file: 32 bytes in base64 (standard or url), whitespace allowed.
 * A file that users other than its owner may write is logged as a warning. */
int crypto_keyring_add_file(crypto_keyring_t *self, const char *path, bool primary, char *why, size_t why_size);
uint32_t crypto_keyring_primary_id(const crypto_keyring_t *self);
/* Whether the keyring holds the key with this id (crypto_key_id). */
bool crypto_keyring_has(const crypto_keyring_t *self, uint32_t id);
uint32_t crypto_key_id(const uint8_t key[CRYPTO_KEY_SIZE]);

/* Seal plain under the primary key. *out is malloc'd; *out_n is
 * n + CRYPTO_SEAL_OVERHEAD. 0 or -1. */
int crypto_seal(const crypto_keyring_t *self, const void *plain, size_t n, const char *aad, uint8_t **out,
                size_t *out_n);
/* Open a sealed value. *plain is malloc'd and NUL-terminated for
 * convenience. 0, or -1 when the key is unknown or the value was altered. */
int crypto_open(const crypto_keyring_t *self, const uint8_t *sealed, size_t n, const char *aad, uint8_t **plain,
                size_t *plain_n);
/* The key id of a sealed value, or 0 when it is too short. */
uint32_t crypto_sealed_key_id(const uint8_t *sealed, size_t n);

#endif
