/* bb_oauth1: OAuth 1.0a request signing with RSA-SHA1 (RFC 5849), as the
 * Bitbucket Data Center / Server OAuth 1 provider expects it.
 *
 * The signature covers a base string built from the request itself (method,
 * URL with its query, form body and the oauth_* protocol parameters), so we
 * build it from exactly the URL and body that go on the wire. Bitbucket
 * rebuilds the URL from the Host header it receives; a proxy that rewrites
 * Host breaks every signature.
 *
 * Pure functions on OpenSSL 3, no I/O: tests/unit/test_bb_oauth1.c checks
 * them against RFC 5849's worked example. */
#ifndef PORTICO_BB_OAUTH1_H
#define PORTICO_BB_OAUTH1_H

#include <stdbool.h>
#include <stddef.h>

/* One protocol parameter, unencoded. */
typedef struct {
    const char *name;
    const char *value;
} bb_oauth1_param_t;

/* RFC 5849 §3.4.1 signature base string: method, URL (its query is part
 * of the parameters), form body (application/x-www-form-urlencoded, or NULL
 * when the request has none) and the oauth_* parameters without
 * oauth_signature. Fresh string, or NULL with a reason in why. */
char *bb_oauth1_base_string(const char *method, const char *url, const char *form_body, const bb_oauth1_param_t *oauth,
                            size_t n_oauth, char *why, size_t why_size);

/* RSASSA-PKCS1-v1_5 with SHA-1 over data, with a PEM RSA private key
 * (PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE KEY", not encrypted);
 * base64. Fresh string, or NULL with a reason in why. */
char *bb_oauth1_rsa_sha1_sign(const char *private_key_pem, const char *data, size_t len, char *why, size_t why_size);
/* True when signature_b64 is a valid RSA-SHA1 signature of data under the
 * PEM public key ("PUBLIC KEY"). */
bool bb_oauth1_rsa_sha1_verify(const char *public_key_pem, const char *data, size_t len, const char *signature_b64);

typedef struct {
    const char *consumer_key;
    const char *private_key_pem;
    const char *token;    /* oauth_token; NULL or "" for the request-token call */
    const char *callback; /* oauth_callback; request-token call only */
    const char *verifier; /* oauth_verifier; access-token call only */
    const char *nonce;    /* NULL: 128 random bits */
    long long timestamp;  /* 0: now */
} bb_oauth1_t;

/* The Authorization header value, "OAuth oauth_consumer_key=\"...\", ...",
 * signed for this request. Fresh string, or NULL with a reason in why (for
 * a log line and an error message: it never contains key material). */
char *bb_oauth1_authorization(const bb_oauth1_t *o, const char *method, const char *url, const char *form_body,
                              char *why, size_t why_size);

#endif
