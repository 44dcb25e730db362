/* crypto: known-answer vectors (NIST/McGrew-Viega GCM test cases, FIPS 180-2
 * SHA-256, RFC 4648 base64) and the keyring's seal/open contract. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static size_t s_unhex(const char *hex, uint8_t *out)
{
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return n;
}

typedef struct {
    const char *key, *iv, *plain, *aad, *cipher, *tag;
} gcm_vector_t;

/* The Galois/Counter Mode spec's AES-256 test cases 13-16 (also in NIST's
 * gcmEncryptExtIV256 set). */
static const gcm_vector_t s_vectors[] = {
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000", "", "", "",
     "530f8afbc74536b9a963b4f1c4cb738b"},
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "00000000000000000000000000000000", "", "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
    {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657"
     "ba637b391aafd255",
     "",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0a"
     "bcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657"
     "ba637b39",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0a"
     "bcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

static void test_gcm_known_answers(void **state)
{
    (void)state;
    for (size_t v = 0; v < sizeof s_vectors / sizeof s_vectors[0]; v++) {
        const gcm_vector_t *t = &s_vectors[v];
        uint8_t key[32], iv[12], plain[128], aad[64], cipher[128], tag[16], want_c[128], want_t[16], back[128];
        s_unhex(t->key, key);
        size_t ivn = s_unhex(t->iv, iv);
        size_t pn = s_unhex(t->plain, plain);
        size_t an = s_unhex(t->aad, aad);
        s_unhex(t->cipher, want_c);
        s_unhex(t->tag, want_t);
        assert_int_equal(crypto_gcm_encrypt(key, iv, ivn, aad, an, plain, pn, cipher, tag), 0);
        assert_memory_equal(cipher, want_c, pn);
        assert_memory_equal(tag, want_t, 16);
        assert_int_equal(crypto_gcm_decrypt(key, iv, ivn, aad, an, cipher, pn, tag, back), 0);
        assert_memory_equal(back, plain, pn);
        /* One flipped bit in the tag must be refused. */
        tag[0] ^= 1;
        assert_int_equal(crypto_gcm_decrypt(key, iv, ivn, aad, an, cipher, pn, tag, back), -1);
    }
}

static void test_sha256(void **state)
{
    (void)state;
    uint8_t d[32], want[32];
    char hex[65];
    crypto_sha256("abc", 3, d);
    s_unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", want);
    assert_memory_equal(d, want, 32);
    crypto_sha256("", 0, d);
    crypto_hex(d, 32, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_base64(void **state)
{
    (void)state;
    /* RFC 4648 section 10. */
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *std[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    const char *url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    char out[32];
    uint8_t back[32];
    for (int i = 0; i < 7; i++) {
        assert_int_equal(crypto_b64_encode(in[i], strlen(in[i]), out, sizeof out), (int)strlen(std[i]));
        assert_string_equal(out, std[i]);
        assert_int_equal(crypto_b64url_encode(in[i], strlen(in[i]), out, sizeof out), (int)strlen(url[i]));
        assert_string_equal(out, url[i]);
        assert_int_equal(crypto_b64_decode(std[i], back, sizeof back), (int)strlen(in[i]));
        assert_memory_equal(back, in[i], strlen(in[i]));
        assert_int_equal(crypto_b64url_decode(url[i], back, sizeof back), (int)strlen(in[i]));
    }
    uint8_t bytes[] = {0xfb, 0xff, 0xfe};
    crypto_b64url_encode(bytes, 3, out, sizeof out);
    assert_string_equal(out, "-__-");
    crypto_b64_encode(bytes, 3, out, sizeof out);
    assert_string_equal(out, "+//+");
    /* Garbage and non-canonical trailing bits are refused. */
    assert_int_equal(crypto_b64url_decode("ab$c", back, sizeof back), -1);
    assert_int_equal(crypto_b64url_decode("Zh", back, sizeof back), -1);
    assert_int_equal(crypto_b64url_decode("A", back, sizeof back), -1);
    /* Output buffer too small. */
    assert_int_equal(crypto_b64url_encode("foobar", 6, out, 4), -1);
    assert_int_equal(crypto_b64_decode("Zm9vYmFy", back, 2), -1);
}

static void test_random_and_equal(void **state)
{
    (void)state;
    char a[64], b[64];
    assert_int_equal(crypto_random_token(32, a, sizeof a), 43);
    assert_int_equal(crypto_random_token(32, b, sizeof b), 43);
    assert_string_not_equal(a, b);
    assert_true(crypto_str_equal("same", "same"));
    assert_false(crypto_str_equal("same", "samf"));
    assert_false(crypto_str_equal("same", "same-but-longer"));
    assert_true(crypto_equal("abc", "abc", 3));
    assert_false(crypto_equal("abc", "abd", 3));
}

static void test_keyring_seal_open(void **state)
{
    (void)state;
    uint8_t k1[32], k2[32];
    memset(k1, 1, 32);
    memset(k2, 2, 32);
    crypto_keyring_t *old = crypto_keyring_new(), *both = crypto_keyring_new(), *fresh = crypto_keyring_new();
    crypto_keyring_add(old, k1, true);
    crypto_keyring_add(both, k1, false);
    crypto_keyring_add(both, k2, true);
    crypto_keyring_add(fresh, k2, true);
    assert_int_not_equal(crypto_key_id(k1), crypto_key_id(k2));

    const char *secret = "client-secret-value";
    uint8_t *sealed = NULL, *plain = NULL;
    size_t n = 0, pn = 0;
    assert_int_equal(crypto_seal(old, secret, strlen(secret), "integration:1:client_secret", &sealed, &n), 0);
    assert_int_equal(n, strlen(secret) + CRYPTO_SEAL_OVERHEAD);
    assert_null(memmem(sealed, n, secret, strlen(secret)));
    assert_int_equal(crypto_sealed_key_id(sealed, n), crypto_key_id(k1));
    /* The old key opens it from a ring that also has the new primary key. */
    assert_int_equal(crypto_open(both, sealed, n, "integration:1:client_secret", &plain, &pn), 0);
    assert_int_equal(pn, strlen(secret));
    assert_string_equal((char *)plain, secret);
    free(plain);
    /* Another row's AAD, a ring without the key, or a changed byte: refused. */
    assert_int_equal(crypto_open(both, sealed, n, "integration:2:client_secret", &plain, &pn), -1);
    assert_int_equal(crypto_open(fresh, sealed, n, "integration:1:client_secret", &plain, &pn), -1);
    sealed[n - 1] ^= 0x80;
    assert_int_equal(crypto_open(both, sealed, n, "integration:1:client_secret", &plain, &pn), -1);
    assert_int_equal(crypto_open(both, sealed, 3, "x", &plain, &pn), -1);
    free(sealed);
    /* Two seals of the same value differ (random nonce). */
    uint8_t *s1, *s2;
    size_t n1, n2;
    crypto_seal(fresh, "x", 1, NULL, &s1, &n1);
    crypto_seal(fresh, "x", 1, NULL, &s2, &n2);
    assert_memory_not_equal(s1, s2, n1);
    free(s1);
    free(s2);
    crypto_keyring_destroy(&old);
    crypto_keyring_destroy(&both);
    crypto_keyring_destroy(&fresh);
    assert_null(old);
}

static void test_key_file(void **state)
{
    (void)state;
    char path[] = "/tmp/portico-key-XXXXXX";
    int fd = mkstemp(path);
    const char *good = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n";
    assert_true(write(fd, good, strlen(good)) > 0);
    close(fd);
    crypto_keyring_t *kr = crypto_keyring_new();
    char why[200];
    assert_int_equal(crypto_keyring_add_file(kr, path, true, why, sizeof why), 0);
    uint8_t k1[32];
    memset(k1, 1, 32);
    assert_int_equal(crypto_keyring_primary_id(kr), crypto_key_id(k1));
    FILE *f = fopen(path, "w");
    fputs("too short\n", f);
    fclose(f);
    assert_int_equal(crypto_keyring_add_file(kr, path, true, why, sizeof why), -1);
    assert_non_null(strstr(why, "32 bytes"));
    unlink(path);
    assert_int_equal(crypto_keyring_add_file(kr, path, true, why, sizeof why), -1);
    crypto_keyring_destroy(&kr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gcm_known_answers),
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_random_and_equal),
        cmocka_unit_test(test_keyring_seal_open),
        cmocka_unit_test(test_key_file),
    };
    return cmocka_run_group_tests_name("crypto", tests, NULL, NULL);
}
