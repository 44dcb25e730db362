/* OAuth 1.0a signing (services/bitbucket/bb_oauth1.c): RFC 5849's worked
 * example, percent-encoding edge cases, the wiki.oauth.net RSA-SHA1 test
 * vector, and sign/verify round trips with freshly generated keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bitbucket/bb_oauth1.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>

static char *s_base(const char *method, const char *url, const char *body, const bb_oauth1_param_t *p, size_t n)
{
    char why[200] = "";
    char *b = bb_oauth1_base_string(method, url, body, p, n, why, sizeof why);
    if (!b)
        print_error("base string failed: %s\n", why);
    return b;
}

/* RFC 5849 §3.4.1.1, with its exact expected base string. */
static void test_rfc5849_example(void **state)
{
    (void)state;
    const bb_oauth1_param_t p[] = {
        {"oauth_consumer_key", "9djdj82h48djs9d2"},
        {"oauth_token", "kkk9d7dh3k39sjv7"},
        {"oauth_signature_method", "HMAC-SHA1"},
        {"oauth_timestamp", "137131201"},
        {"oauth_nonce", "7d8f3e4a"},
    };
    char *b = s_base("POST", "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b", "c2&a3=2+q", p, 5);
    assert_non_null(b);
    assert_string_equal(b, "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q"
                           "%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_"
                           "key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m"
                           "ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk"
                           "9d7dh3k39sjv7");
    free(b);
}

/* §3.4.1.2: scheme and host lower-cased, default port dropped, other
 * ports kept, an empty path is "/". */
static void test_base_uri(void **state)
{
    (void)state;
    char *b = s_base("get", "HTTP://EXAMPLE.COM:80/r%20v/X?id=123", NULL, NULL, 0);
    assert_string_equal(b, "GET&http%3A%2F%2Fexample.com%2Fr%2520v%2FX&id%3D123");
    free(b);
    b = s_base("GET", "https://www.example.net:8080/?q=1", NULL, NULL, 0);
    assert_string_equal(b, "GET&https%3A%2F%2Fwww.example.net%3A8080%2F&q%3D1");
    free(b);
    b = s_base("GET", "https://h.example:443", NULL, NULL, 0);
    assert_string_equal(b, "GET&https%3A%2F%2Fh.example%2F&");
    free(b);
    b = s_base("POST", "http://127.0.0.1:7990/bitbucket/plugins/servlet/oauth/request-token", "", NULL, 0);
    assert_string_equal(b, "POST&http%3A%2F%2F127.0.0.1%3A7990%2Fbitbucket%2Fplugins%2Fservlet%2Foauth"
                           "%2Frequest-token&");
    free(b);
}

/* Space is %20 (never '+'), '+' is %2B, '~' stays, UTF-8 bytes are each
 * %XX in upper case; parameters with one name sort by value. */
static void test_encoding_edges(void **state)
{
    (void)state;
    const bb_oauth1_param_t p[] = {{"oauth_callback", "http://c.example/cb?x=a b+c~d"}};
    char *b = s_base("GET", "http://e.example/p?s=a%20b&plus=a%2Bb&tilde=~x&utf=%C3%A9%E2%82%AC&f=a+b", NULL, p, 1);
    assert_non_null(b);
    /* normalized: f=a%20b&oauth_callback=...&plus=a%2Bb&s=a%20b&tilde=~x&utf=%C3%A9%E2%82%AC, then encoded again */
    assert_string_equal(b, "GET&http%3A%2F%2Fe.example%2Fp&"
                           "f%3Da%2520b%26"
                           "oauth_callback%3Dhttp%253A%252F%252Fc.example%252Fcb%253Fx%253Da%2520b%252Bc~d%26"
                           "plus%3Da%252Bb%26"
                           "s%3Da%2520b%26"
                           "tilde%3D~x%26"
                           "utf%3D%25C3%25A9%25E2%2582%25AC");
    free(b);

    b = s_base("GET", "http://e.example/p?a=z&a=b&a=m&A=1&a=", NULL, NULL, 0);
    assert_string_equal(b, "GET&http%3A%2F%2Fe.example%2Fp&A%3D1%26a%3D%26a%3Db%26a%3Dm%26a%3Dz");
    free(b);

    /* Sorting is on the encoded bytes: "a%20" < "a+" can only be decided
     * after encoding (%2B > %20). */
    b = s_base("GET", "http://e.example/p?k=a%2B&k=a%20", NULL, NULL, 0);
    assert_string_equal(b, "GET&http%3A%2F%2Fe.example%2Fp&k%3Da%2520%26k%3Da%252B");
    free(b);
}

static void test_bad_input(void **state)
{
    (void)state;
    char why[200] = "";
    assert_null(bb_oauth1_base_string("GET", "not a url", NULL, NULL, 0, why, sizeof why));
    assert_true(why[0]);
    why[0] = '\0';
    assert_null(bb_oauth1_base_string("GET", "http://e.example/p?a=%zz", NULL, NULL, 0, why, sizeof why));
    assert_true(why[0]);
    assert_null(bb_oauth1_base_string("GET", "http://e.example/p", "a=%00", NULL, 0, why, sizeof why));
    assert_null(bb_oauth1_rsa_sha1_sign("", "x", 1, why, sizeof why));
    assert_null(bb_oauth1_rsa_sha1_sign("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "x", 1, why,
                                        sizeof why));
    assert_non_null(strstr(why, "PEM"));
}

/* http://wiki.oauth.net/TestCases, "RSA-SHA1": a published vector. */
static const char s_wiki_key[] = "-----BEGIN PRIVATE KEY-----\n"
                                 "MIICdgIBADANBgkqhkiG9w0BAQEFAASCAmAwggJcAgEAAoGBALRiMLAh9iimur8V\n"
                                 "A7qVvdqxevEuUkW4K+2KdMXmnQbG9Aa7k7eBjK1S+0LYmVjPKlJGNXHDGuy5Fw/d\n"
                                 "7rjVJ0BLB+ubPK8iA/Tw3hLQgXMRRGRXXCn8ikfuQfjUS1uZSatdLB81mydBETlJ\n"
                                 "hI6GH4twrbDJCR2Bwy/XWXgqgGRzAgMBAAECgYBYWVtleUzavkbrPjy0T5FMou8H\n"
                                 "X9u2AC2ry8vD/l7cqedtwMPp9k7TubgNFo+NGvKsl2ynyprOZR1xjQ7WgrgVB+mm\n"
                                 "uScOM/5HVceFuGRDhYTCObE+y1kxRloNYXnx3ei1zbeYLPCHdhxRYW7T0qcynNmw\n"
                                 "rn05/KO2RLjgQNalsQJBANeA3Q4Nugqy4QBUCEC09SqylT2K9FrrItqL2QKc9v0Z\n"
                                 "zO2uwllCbg0dwpVuYPYXYvikNHHg+aCWF+VXsb9rpPsCQQDWR9TT4ORdzoj+Nccn\n"
                                 "qkMsDmzt0EfNaAOwHOmVJ2RVBspPcxt5iN4HI7HNeG6U5YsFBb+/GZbgfBT3kpNG\n"
                                 "WPTpAkBI+gFhjfJvRw38n3g/+UeAkwMI2TJQS4n8+hid0uus3/zOjDySH3XHCUno\n"
                                 "cn1xOJAyZODBo47E+67R4jV1/gzbAkEAklJaspRPXP877NssM5nAZMU0/O/NGCZ+\n"
                                 "3jPgDUno6WbJn5cqm8MqWhW1xGkImgRk+fkDBquiq4gPiT898jusgQJAd5Zrr6Q8\n"
                                 "AO/0isr/3aa6O6NLQxISLKcPDk2NOccAfS/xOtfOz4sJYM3+Bs4Io9+dZGSDCA54\n"
                                 "Lw03eHTNQghS0A==\n"
                                 "-----END PRIVATE KEY-----\n";

static void test_wiki_rsa_sha1_vector(void **state)
{
    (void)state;
    const bb_oauth1_param_t p[] = {
        {"oauth_consumer_key", "dpf43f3p2l4k3l03"},
        {"oauth_nonce", "13917289812797014437"},
        {"oauth_signature_method", "RSA-SHA1"},
        {"oauth_timestamp", "1196666512"},
        {"oauth_version", "1.0"},
    };
    char *b = s_base("GET", "http://photos.example.net/photos?file=vacaction.jpg&size=original", NULL, p, 5);
    assert_string_equal(b, "GET&http%3A%2F%2Fphotos.example.net%2Fphotos&file%3Dvacaction.jpg%26oauth_consumer_key%"
                           "3Ddpf43f3p2l4k3l03%26oauth_nonce%3D13917289812797014437%26oauth_signature_method%3DRSA-"
                           "SHA1%26oauth_timestamp%3D1196666512%26oauth_version%3D1.0%26size%3Doriginal");
    char why[200];
    char *sig = bb_oauth1_rsa_sha1_sign(s_wiki_key, b, strlen(b), why, sizeof why);
    assert_non_null(sig);
    assert_string_equal(sig, "jvTp/wX1TYtByB1m+Pbyo0lnCOLIsyGCH7wke8AUs3BpnwZJtAuEJkvQL2/9n4s5wUmUl4aCI4BwpraNx4RtE"
                             "XMe5qg5T1LVTGliMRpKasKsW//e+RinhejgCuzoH26dyF8iY2ZZ/5D1ilgeijhV/vBka5twt399mXwaYdCwFYE=");
    free(sig);
    free(b);
}

/* A fresh RSA key as PKCS#1 or PKCS#8 private PEM plus its public PEM. */
static void s_keypair(bool pkcs1, char **priv, char **pub)
{
    EVP_PKEY *pkey = EVP_RSA_gen(2048);
    assert_non_null(pkey);
    BIO *b = BIO_new(BIO_s_mem());
    if (pkcs1)
        assert_int_equal(PEM_write_bio_PrivateKey_traditional(b, pkey, NULL, NULL, 0, NULL, NULL), 1);
    else
        assert_int_equal(PEM_write_bio_PrivateKey(b, pkey, NULL, NULL, 0, NULL, NULL), 1);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    *priv = strndup(data, (size_t)n);
    BIO_free(b);
    b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(b, pkey), 1);
    n = BIO_get_mem_data(b, &data);
    *pub = strndup(data, (size_t)n);
    BIO_free(b);
    EVP_PKEY_free(pkey);
}

/* Pull one quoted parameter out of an Authorization header. */
static char *s_param(const char *header, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "%s=\"", name);
    const char *p = strstr(header, key);
    if (!p)
        return NULL;
    p += strlen(key);
    return strndup(p, strcspn(p, "\""));
}

static void s_percent_decode(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p == '%' && p[1] && p[2]) {
            char hex[3] = {p[1], p[2], 0};
            *o++ = (char)strtol(hex, NULL, 16);
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

static void s_round_trip(bool pkcs1)
{
    char *priv, *pub;
    s_keypair(pkcs1, &priv, &pub);
    char why[200] = "";
    bb_oauth1_t o = {.consumer_key = "portico-test",
                     .private_key_pem = priv,
                     .token = "tok en/+",
                     .verifier = "v3rifier",
                     .nonce = "abc123",
                     .timestamp = 1700000000};
    const char *url = "https://git.example.com/bitbucket/plugins/servlet/oauth/access-token?x=1";
    char *h = bb_oauth1_authorization(&o, "POST", url, "a=b", why, sizeof why);
    assert_non_null(h);
    assert_true(strncmp(h, "OAuth ", 6) == 0);
    assert_non_null(strstr(h, "oauth_signature_method=\"RSA-SHA1\""));
    assert_non_null(strstr(h, "oauth_version=\"1.0\""));
    assert_non_null(strstr(h, "oauth_token=\"tok%20en%2F%2B\""));
    assert_non_null(strstr(h, "oauth_verifier=\"v3rifier\""));
    assert_non_null(strstr(h, "oauth_timestamp=\"1700000000\""));
    assert_null(strstr(h, "oauth_callback"));

    /* What Bitbucket does: rebuild the base string, verify the signature. */
    const bb_oauth1_param_t p[] = {
        {"oauth_consumer_key", "portico-test"},
        {"oauth_nonce", "abc123"},
        {"oauth_signature_method", "RSA-SHA1"},
        {"oauth_timestamp", "1700000000"},
        {"oauth_token", "tok en/+"},
        {"oauth_verifier", "v3rifier"},
        {"oauth_version", "1.0"},
    };
    char *base = s_base("POST", url, "a=b", p, 7);
    char *sig = s_param(h, "oauth_signature");
    assert_non_null(sig);
    s_percent_decode(sig);
    assert_true(bb_oauth1_rsa_sha1_verify(pub, base, strlen(base), sig));
    /* Any change to what was signed breaks it. */
    base[strlen(base) - 1] ^= 1;
    assert_false(bb_oauth1_rsa_sha1_verify(pub, base, strlen(base), sig));
    free(base);
    free(sig);
    free(h);

    /* Random nonce and current time when not given. */
    bb_oauth1_t o2 = {.consumer_key = "k", .private_key_pem = priv, .callback = "https://portico.example/cb"};
    h = bb_oauth1_authorization(&o2, "POST", url, "", why, sizeof why);
    assert_non_null(h);
    char *nonce = s_param(h, "oauth_nonce");
    assert_int_equal(strlen(nonce), 32);
    assert_non_null(strstr(h, "oauth_callback=\"https%3A%2F%2Fportico.example%2Fcb\""));
    assert_null(strstr(h, "oauth_token"));
    free(nonce);
    free(h);
    free(priv);
    free(pub);
}

static void test_round_trip_pkcs1(void **state)
{
    (void)state;
    s_round_trip(true);
}

static void test_round_trip_pkcs8(void **state)
{
    (void)state;
    s_round_trip(false);
}

static void test_not_rsa(void **state)
{
    (void)state;
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(pkey);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, pkey, NULL, NULL, 0, NULL, NULL);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *pem = strndup(data, (size_t)n);
    char why[200] = "";
    assert_null(bb_oauth1_rsa_sha1_sign(pem, "x", 1, why, sizeof why));
    assert_non_null(strstr(why, "RSA"));
    free(pem);
    BIO_free(b);
    EVP_PKEY_free(pkey);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc5849_example),      cmocka_unit_test(test_base_uri),
        cmocka_unit_test(test_encoding_edges),       cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_wiki_rsa_sha1_vector), cmocka_unit_test(test_round_trip_pkcs1),
        cmocka_unit_test(test_round_trip_pkcs8),     cmocka_unit_test(test_not_rsa),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
