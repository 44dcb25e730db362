#include "pki.h"

#include "crypto.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RSA_BITS 2048

/* The contents of a memory BIO as a fresh string. */
static char *s_bio_string(BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    if (n <= 0)
        return NULL;
    char *out = malloc((size_t)n + 1);
    if (!out)
        return NULL;
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    return out;
}

int pki_oauth1_generate(pki_oauth1_t *out)
{
    int rc = -1;
    EVP_PKEY *pkey = NULL;
    BIO *pub = NULL, *priv = NULL;
    memset(out, 0, sizeof *out);

    char random[40];
    if (crypto_random_token(18, random, sizeof random) < 0)
        goto out;
    snprintf(out->consumer_key, sizeof out->consumer_key, "portico-%s", random);

    pkey = EVP_RSA_gen(RSA_BITS);
    pub = BIO_new(BIO_s_mem());
    priv = BIO_new(BIO_s_secmem());
    if (!pkey || !pub || !priv)
        goto out;
    if (PEM_write_bio_PUBKEY(pub, pkey) != 1)
        goto out;
    if (PEM_write_bio_PrivateKey(priv, pkey, NULL, NULL, 0, NULL, NULL) != 1)
        goto out;
    out->public_pem = s_bio_string(pub);
    out->private_pem = s_bio_string(priv);
    if (!out->public_pem || !out->private_pem)
        goto out;
    rc = 0;
out:
    if (rc < 0)
        pki_oauth1_clear(out);
    ERR_clear_error();
    EVP_PKEY_free(pkey);
    BIO_free(pub);
    BIO_free(priv);
    return rc;
}

void pki_oauth1_clear(pki_oauth1_t *keys)
{
    if (keys->private_pem) {
        OPENSSL_cleanse(keys->private_pem, strlen(keys->private_pem));
        free(keys->private_pem);
    }
    free(keys->public_pem);
    keys->private_pem = keys->public_pem = NULL;
}

int pki_check_ca_cert(const char *pem, char *why, size_t why_size)
{
    int rc = -1, count = 0;
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio) {
        snprintf(why, why_size, "out of memory");
        return -1;
    }
    for (;;) {
        X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (!cert)
            break;
        X509_free(cert);
        count++;
    }
    /* Reading stops at the end or at the first block that is not a
     * certificate; only the end is acceptable. */
    unsigned long err = ERR_peek_last_error();
    bool at_end = ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
    if (count == 0) {
        snprintf(why, why_size,
                 "This is not a PEM certificate: paste the CA certificate including the "
                 "-----BEGIN CERTIFICATE----- and -----END CERTIFICATE----- lines.");
        goto out;
    }
    if (!at_end || strstr(pem, "PRIVATE KEY")) {
        snprintf(why, why_size, "Part of the text is not a readable certificate: paste only certificates in PEM form.");
        goto out;
    }
    rc = 0;
out:
    ERR_clear_error();
    BIO_free(bio);
    return rc;
}
