#include "crypto.h"

#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SEAL_VERSION 1
#define MAX_KEYS 8

struct crypto_keyring_t {
    uint8_t keys[MAX_KEYS][CRYPTO_KEY_SIZE];
    uint32_t ids[MAX_KEYS];
    int count;
    int primary;
};

int crypto_random(void *buf, size_t n)
{
    return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

int crypto_random_token(size_t nbytes, char *out, size_t out_size)
{
    uint8_t raw[128];
    if (nbytes > sizeof raw || crypto_random(raw, nbytes) < 0)
        return -1;
    int n = crypto_b64url_encode(raw, nbytes, out, out_size);
    OPENSSL_cleanse(raw, sizeof raw);
    return n;
}

static const char s_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char s_b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int s_encode(const char *alphabet, bool pad, const uint8_t *in, size_t n, char *out, size_t out_size)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        size_t left = n - i;
        if (left > 1)
            v |= (uint32_t)in[i + 1] << 8;
        if (left > 2)
            v |= in[i + 2];
        size_t chars = left >= 3 ? 4 : left + 1;
        if (o + (pad ? 4 : chars) >= out_size)
            return -1;
        for (size_t k = 0; k < chars; k++)
            out[o++] = alphabet[(v >> (18 - 6 * k)) & 63];
        if (pad)
            for (size_t k = chars; k < 4; k++)
                out[o++] = '=';
    }
    if (o >= out_size)
        return -1;
    out[o] = '\0';
    return (int)o;
}

int crypto_b64url_encode(const void *in, size_t n, char *out, size_t out_size)
{
    return s_encode(s_b64url, false, in, n, out, out_size);
}

int crypto_b64_encode(const void *in, size_t n, char *out, size_t out_size)
{
    return s_encode(s_b64, true, in, n, out, out_size);
}

static int s_value(char c, bool url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

static int s_decode(const char *in, bool url, bool skip_space, uint8_t *out, size_t out_size)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    bool padding = false;
    for (const char *p = in; *p; p++) {
        if (skip_space && isspace((unsigned char)*p))
            continue;
        if (*p == '=') {
            padding = true;
            continue;
        }
        int v = s_value(*p, url);
        if (v < 0 || padding)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= out_size)
                return -1;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* Leftover bits must be zero and fewer than a byte's worth of symbols. */
    if (bits >= 6 || (acc & ((1u << bits) - 1)))
        return -1;
    return (int)o;
}

int crypto_b64url_decode(const char *in, void *out, size_t out_size)
{
    return s_decode(in, true, false, out, out_size);
}

int crypto_b64_decode(const char *in, void *out, size_t out_size)
{
    return s_decode(in, false, true, out, out_size);
}

/* OpenSSL 3 looks an algorithm up by name in its provider store (a locked
 * search and a reference taken and dropped) at every one-shot SHA256() and
 * every cipher init with EVP_aes_256_gcm(): a few per request in the web
 * and the registry. Fetched once here and kept for the process's life;
 * should a fetch fail, the calls fall back to the implicit lookup. */
static EVP_MD *s_sha256_md;
static EVP_CIPHER *s_gcm_cipher;
static pthread_once_t s_fetch_once = PTHREAD_ONCE_INIT;

static void s_fetch(void)
{
    s_sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    s_gcm_cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

void crypto_sha256(const void *data, size_t n, uint8_t out[32])
{
    pthread_once(&s_fetch_once, s_fetch);
    if (!s_sha256_md || EVP_Digest(data, n, out, NULL, s_sha256_md, NULL) != 1)
        SHA256(data, n, out);
}

void crypto_hex(const void *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *b = in;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

bool crypto_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

bool crypto_str_equal(const char *a, const char *b)
{
    /* Compare digests so the time does not depend on where the strings differ
     * nor on the secret's length. */
    uint8_t da[32], db[32];
    crypto_sha256(a, strlen(a), da);
    crypto_sha256(b, strlen(b), db);
    return CRYPTO_memcmp(da, db, 32) == 0;
}

static int s_gcm(bool enc, const uint8_t *key, const uint8_t *iv, size_t iv_len, const void *aad, size_t aad_len,
                 const uint8_t *in, size_t n, uint8_t *out, uint8_t *tag)
{
    int rc = -1, len = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return -1;
    pthread_once(&s_fetch_once, s_fetch);
    if (EVP_CipherInit_ex(ctx, s_gcm_cipher ? s_gcm_cipher : EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1)
        goto out;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, (int)iv_len, NULL) != 1)
        goto out;
    if (EVP_CipherInit_ex(ctx, NULL, NULL, key, iv, enc) != 1)
        goto out;
    if (aad_len && EVP_CipherUpdate(ctx, NULL, &len, aad, (int)aad_len) != 1)
        goto out;
    if (n && EVP_CipherUpdate(ctx, out, &len, in, (int)n) != 1)
        goto out;
    if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CRYPTO_TAG_SIZE, tag) != 1)
        goto out;
    if (EVP_CipherFinal_ex(ctx, out + (n ? len : 0), &len) != 1)
        goto out;
    if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CRYPTO_TAG_SIZE, tag) != 1)
        goto out;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int crypto_gcm_encrypt(const uint8_t key[CRYPTO_KEY_SIZE], const uint8_t *iv, size_t iv_len, const void *aad,
                       size_t aad_len, const void *plain, size_t n, uint8_t *cipher, uint8_t tag[CRYPTO_TAG_SIZE])
{
    return s_gcm(true, key, iv, iv_len, aad, aad_len, plain, n, cipher, tag);
}

int crypto_gcm_decrypt(const uint8_t key[CRYPTO_KEY_SIZE], const uint8_t *iv, size_t iv_len, const void *aad,
                       size_t aad_len, const uint8_t *cipher, size_t n, const uint8_t tag[CRYPTO_TAG_SIZE],
                       uint8_t *plain)
{
    return s_gcm(false, key, iv, iv_len, aad, aad_len, cipher, n, plain, (uint8_t *)(uintptr_t)tag);
}

crypto_keyring_t *crypto_keyring_new(void)
{
    crypto_keyring_t *self = calloc(1, sizeof *self);
    if (self)
        self->primary = -1;
    return self;
}

void crypto_keyring_destroy(crypto_keyring_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    OPENSSL_cleanse(*self_p, sizeof **self_p);
    free(*self_p);
    *self_p = NULL;
}

uint32_t crypto_key_id(const uint8_t key[CRYPTO_KEY_SIZE])
{
    /* A digest of a digest: the id says which key without helping to find it. */
    uint8_t d[32];
    crypto_sha256(key, CRYPTO_KEY_SIZE, d);
    crypto_sha256(d, sizeof d, d);
    uint32_t id = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
    return id ? id : 1;
}

int crypto_keyring_add(crypto_keyring_t *self, const uint8_t key[CRYPTO_KEY_SIZE], bool primary)
{
    uint32_t id = crypto_key_id(key);
    int slot = -1;
    for (int i = 0; i < self->count; i++)
        if (self->ids[i] == id)
            slot = i;
    if (slot < 0) {
        if (self->count == MAX_KEYS)
            return -1;
        slot = self->count++;
        memcpy(self->keys[slot], key, CRYPTO_KEY_SIZE);
        self->ids[slot] = id;
    }
    if (primary)
        self->primary = slot;
    return 0;
}

int crypto_keyring_add_file(crypto_keyring_t *self, const char *path, bool primary, char *why, size_t why_size)
{
    int rc = -1;
    char text[256] = "";
    uint8_t key[64];
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, why_size, "could not open key file \"%s\": %s", path, strerror(errno));
        return -1;
    }
    /* Whoever may write the file can replace the key. A warning, not a
     * refusal: some mounts (a Windows drive seen from Linux) show every
     * file so. Read permission is not judged: compose's 0644 in a 0700
     * folder and Swarm's 0444 secrets are right where they are. */
    struct stat st;
    char q[200];
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)))
        log_warn("key file writable by other users", "file=%s mode=%04o fix=\"chmod go-w\"",
                 log_quote(path, q, sizeof q), (unsigned)(st.st_mode & 07777));
    size_t n = fread(text, 1, sizeof text - 1, f);
    bool more = fgetc(f) != EOF;
    fclose(f);
    text[n] = '\0';
    int k = more ? -1 : crypto_b64_decode(text, key, sizeof key);
    if (k < 0) {
        /* Also accept the url-safe alphabet, trimmed. */
        char trimmed[256];
        size_t t = 0;
        for (char *p = text; *p && t + 1 < sizeof trimmed; p++)
            if (!isspace((unsigned char)*p))
                trimmed[t++] = *p;
        trimmed[t] = '\0';
        k = more ? -1 : crypto_b64url_decode(trimmed, key, sizeof key);
    }
    if (k != CRYPTO_KEY_SIZE) {
        snprintf(why, why_size,
                 "key file \"%s\" must hold 32 bytes in base64 (make one with: head -c 32 /dev/urandom | base64)",
                 path);
        goto out;
    }
    if (crypto_keyring_add(self, key, primary) < 0) {
        snprintf(why, why_size, "too many keys");
        goto out;
    }
    rc = 0;
out:
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(text, sizeof text);
    return rc;
}

uint32_t crypto_keyring_primary_id(const crypto_keyring_t *self)
{
    return self->primary >= 0 ? self->ids[self->primary] : 0;
}

/* The index of the key with this id, or -1 (0 is no key's id). */
static int s_slot(const crypto_keyring_t *self, uint32_t id)
{
    for (int i = 0; id && i < self->count; i++)
        if (self->ids[i] == id)
            return i;
    return -1;
}

bool crypto_keyring_has(const crypto_keyring_t *self, uint32_t id)
{
    return s_slot(self, id) >= 0;
}

uint32_t crypto_sealed_key_id(const uint8_t *sealed, size_t n)
{
    if (n < CRYPTO_SEAL_OVERHEAD || sealed[0] != SEAL_VERSION)
        return 0;
    return (uint32_t)sealed[1] << 24 | (uint32_t)sealed[2] << 16 | (uint32_t)sealed[3] << 8 | sealed[4];
}

int crypto_seal(const crypto_keyring_t *self, const void *plain, size_t n, const char *aad, uint8_t **out,
                size_t *out_n)
{
    if (self->primary < 0)
        return -1;
    size_t total = n + CRYPTO_SEAL_OVERHEAD;
    uint8_t *buf = malloc(total);
    if (!buf)
        return -1;
    uint32_t id = self->ids[self->primary];
    buf[0] = SEAL_VERSION;
    buf[1] = (uint8_t)(id >> 24);
    buf[2] = (uint8_t)(id >> 16);
    buf[3] = (uint8_t)(id >> 8);
    buf[4] = (uint8_t)id;
    uint8_t *nonce = buf + 5, *cipher = nonce + CRYPTO_NONCE_SIZE, *tag = cipher + n;
    if (crypto_random(nonce, CRYPTO_NONCE_SIZE) < 0 ||
        crypto_gcm_encrypt(self->keys[self->primary], nonce, CRYPTO_NONCE_SIZE, aad, aad ? strlen(aad) : 0, plain, n,
                           cipher, tag) < 0) {
        free(buf);
        return -1;
    }
    *out = buf;
    *out_n = total;
    return 0;
}

int crypto_open(const crypto_keyring_t *self, const uint8_t *sealed, size_t n, const char *aad, uint8_t **plain,
                size_t *plain_n)
{
    int slot = s_slot(self, crypto_sealed_key_id(sealed, n));
    if (slot < 0)
        return -1;
    size_t len = n - CRYPTO_SEAL_OVERHEAD;
    uint8_t *buf = malloc(len + 1);
    if (!buf)
        return -1;
    const uint8_t *nonce = sealed + 5, *cipher = nonce + CRYPTO_NONCE_SIZE, *tag = cipher + len;
    if (crypto_gcm_decrypt(self->keys[slot], nonce, CRYPTO_NONCE_SIZE, aad, aad ? strlen(aad) : 0, cipher, len, tag,
                           buf) < 0) {
        OPENSSL_cleanse(buf, len + 1);
        free(buf);
        return -1;
    }
    buf[len] = '\0';
    *plain = buf;
    *plain_n = len;
    return 0;
}
