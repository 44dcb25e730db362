/* pki: the key material an integration carries: an OAuth 1 consumer key and
 * RSA key pair generated here, and a CA certificate an admin pastes in. */
#ifndef PORTICO_REGISTRY_PKI_H
#define PORTICO_REGISTRY_PKI_H

#include <stddef.h>

typedef struct {
    char consumer_key[64];
    char *public_pem;  /* "-----BEGIN PUBLIC KEY-----" (SubjectPublicKeyInfo) */
    char *private_pem; /* PKCS#8, unencrypted: seal it before storing */
} pki_oauth1_t;

/* A fresh 2048-bit RSA key pair and a random consumer key. 0 or -1. */
int pki_oauth1_generate(pki_oauth1_t *out);
/* Wipe the private key and free both. */
void pki_oauth1_clear(pki_oauth1_t *keys);

/* 0 when pem holds one or more X.509 certificates and nothing else that
 * looks like PEM; -1 with a sentence for the admin in why. */
int pki_check_ca_cert(const char *pem, char *why, size_t why_size);

#endif
