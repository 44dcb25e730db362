#include "bb_oauth1.h"

#include "crypto.h"
#include "sbuf.h"
#include "url.h"

#include <ctype.h>
#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Bounds on what we sign: our own requests stay far below these. */
#define MAX_PARAMS 128
#define MAX_VALUE 8192

static void s_why(char *why, size_t why_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void s_why(char *why, size_t why_size, const char *fmt, ...)
{
    if (!why || !why_size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_size, fmt, ap);
    va_end(ap);
}

/* ---- building strings (sbuf_t wipes what it lets go of) ---- */

/* RFC 5849 §3.6: RFC 3986 unreserved characters stay, every other byte is
 * %XX with upper-case hex. common/url.h's url_encode is exactly that. */
static void s_buf_encode(sbuf_t *b, const char *s)
{
    size_t n = strlen(s);
    char stackbuf[512];
    char *tmp = 3 * n + 1 <= sizeof stackbuf ? stackbuf : malloc(3 * n + 1);
    if (!tmp) {
        b->failed = true;
        return;
    }
    if (url_encode(s, tmp, 3 * n + 1) < 0)
        b->failed = true;
    else
        sbuf_puts(b, tmp);
    explicit_bzero(tmp, 3 * n + 1);
    if (tmp != stackbuf)
        free(tmp);
}

/* ---- parameters ---- */

typedef struct {
    char *name; /* percent-encoded */
    char *value;
} enc_param_t;

typedef struct {
    enc_param_t items[MAX_PARAMS];
    size_t count;
} enc_params_t;

static char *s_encode(const char *s)
{
    sbuf_t b = {0};
    s_buf_encode(&b, s);
    return sbuf_take(&b);
}

static int s_params_add(enc_params_t *p, const char *name, const char *value)
{
    if (p->count == MAX_PARAMS)
        return -1;
    char *n = s_encode(name), *v = s_encode(value);
    if (!n || !v) {
        free(n);
        free(v);
        return -1;
    }
    p->items[p->count].name = n;
    p->items[p->count].value = v;
    p->count++;
    return 0;
}

static void s_params_free(enc_params_t *p)
{
    for (size_t i = 0; i < p->count; i++) {
        explicit_bzero(p->items[i].value, strlen(p->items[i].value));
        free(p->items[i].name);
        free(p->items[i].value);
    }
    p->count = 0;
}

/* Add the pairs of an application/x-www-form-urlencoded string (a query or
 * a body), decoded as HTML forms decode them: '+' is a space (§3.4.1.3.1).
 * A pair without '=' is a name with an empty value. */
static int s_params_add_form(enc_params_t *p, const char *form, char *why, size_t why_size)
{
    const char *s = form;
    while (*s) {
        size_t n = strcspn(s, "&");
        if (n > 0) {
            if (n > MAX_VALUE) {
                s_why(why, why_size, "a request parameter is too long to sign");
                return -1;
            }
            char pair[MAX_VALUE + 1], name[MAX_VALUE + 1], value[MAX_VALUE + 1];
            memcpy(pair, s, n);
            pair[n] = '\0';
            char *eq = strchr(pair, '=');
            const char *raw_value = "";
            if (eq) {
                *eq = '\0';
                raw_value = eq + 1;
            }
            if (url_decode(pair, true, name, sizeof name) < 0 || url_decode(raw_value, true, value, sizeof value) < 0) {
                s_why(why, why_size, "a request parameter is not well percent-encoded");
                return -1;
            }
            int rc = s_params_add(p, name, value);
            explicit_bzero(pair, sizeof pair);
            explicit_bzero(value, sizeof value);
            if (rc < 0) {
                s_why(why, why_size, "too many request parameters to sign");
                return -1;
            }
        }
        s += n;
        if (*s == '&')
            s++;
    }
    return 0;
}

static int s_param_cmp(const void *a, const void *b)
{
    const enc_param_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

/* §3.4.1.2: scheme and host lower case, the port only when it is not the
 * scheme's default, the path as sent, no query or fragment. */
static char *s_base_uri(const char *url, char **query, char *why, size_t why_size)
{
    char *out = NULL, *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    CURLU *u = curl_url();
    *query = NULL;
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
        s_why(why, why_size, "the request URL cannot be parsed");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
        s_why(why, why_size, "the request URL cannot be parsed");
        goto out;
    }
    curl_url_get(u, CURLUPART_PORT, &port, CURLU_NO_DEFAULT_PORT);
    char *q = NULL;
    if (curl_url_get(u, CURLUPART_QUERY, &q, 0) == CURLUE_OK && q) {
        *query = strdup(q);
        curl_free(q);
        if (!*query)
            goto out;
    }
    for (char *c = scheme; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    for (char *c = host; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    sbuf_t b = {0};
    sbuf_puts(&b, scheme);
    sbuf_puts(&b, "://");
    sbuf_puts(&b, host);
    if (port) {
        sbuf_puts(&b, ":");
        sbuf_puts(&b, port);
    }
    sbuf_puts(&b, path && *path ? path : "/");
    out = sbuf_take(&b);
out:
    if (!out) {
        free(*query);
        *query = NULL;
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return out;
}

char *bb_oauth1_base_string(const char *method, const char *url, const char *form_body, const bb_oauth1_param_t *oauth,
                            size_t n_oauth, char *why, size_t why_size)
{
    char *out = NULL, *query = NULL;
    enc_params_t *params = calloc(1, sizeof *params);
    char *uri = NULL;
    if (!params) {
        s_why(why, why_size, "out of memory");
        goto out;
    }
    uri = s_base_uri(url, &query, why, why_size);
    if (!uri)
        goto out;
    if (query && s_params_add_form(params, query, why, why_size) < 0)
        goto out;
    if (form_body && s_params_add_form(params, form_body, why, why_size) < 0)
        goto out;
    for (size_t i = 0; i < n_oauth; i++) {
        if (!oauth[i].value)
            continue;
        if (s_params_add(params, oauth[i].name, oauth[i].value) < 0) {
            s_why(why, why_size, "too many request parameters to sign");
            goto out;
        }
    }
    qsort(params->items, params->count, sizeof params->items[0], s_param_cmp);

    sbuf_t norm = {0};
    for (size_t i = 0; i < params->count; i++) {
        if (i)
            sbuf_puts(&norm, "&");
        sbuf_puts(&norm, params->items[i].name);
        sbuf_puts(&norm, "=");
        sbuf_puts(&norm, params->items[i].value);
    }
    char *normalized = sbuf_take(&norm);
    if (!normalized) {
        s_why(why, why_size, "out of memory");
        goto out;
    }
    sbuf_t b = {0};
    for (const char *m = method; *m; m++) {
        char c = (char)toupper((unsigned char)*m);
        sbuf_append(&b, &c, 1);
    }
    sbuf_puts(&b, "&");
    s_buf_encode(&b, uri);
    sbuf_puts(&b, "&");
    s_buf_encode(&b, normalized);
    explicit_bzero(normalized, strlen(normalized));
    free(normalized);
    out = sbuf_take(&b);
    if (!out)
        s_why(why, why_size, "out of memory");
out:
    if (params) {
        s_params_free(params);
        free(params);
    }
    free(query);
    free(uri);
    return out;
}

/* Never prompt on a terminal for an encrypted key's password. */
static int s_no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

char *bb_oauth1_rsa_sha1_sign(const char *private_key_pem, const char *data, size_t len, char *why, size_t why_size)
{
    char *out = NULL;
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    EVP_PKEY *pkey = NULL;
    EVP_MD_CTX *ctx = NULL;
    BIO *bio = NULL;
    if (!private_key_pem || !*private_key_pem) {
        s_why(why, why_size, "the integration has no OAuth 1 private key");
        goto out;
    }
    bio = BIO_new_mem_buf(private_key_pem, -1);
    if (bio)
        pkey = PEM_read_bio_PrivateKey(bio, NULL, s_no_password, NULL);
    if (!pkey) {
        s_why(why, why_size, "the OAuth 1 private key of the integration is not a readable, unencrypted PEM key");
        goto out;
    }
    if (!EVP_PKEY_is_a(pkey, "RSA")) {
        s_why(why, why_size, "the OAuth 1 private key of the integration is not an RSA key");
        goto out;
    }
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha1(), NULL, pkey) != 1 ||
        EVP_DigestSign(ctx, NULL, &sig_len, (const unsigned char *)data, len) != 1 || !(sig = malloc(sig_len)) ||
        EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)data, len) != 1) {
        s_why(why, why_size, "the request could not be signed with the OAuth 1 private key");
        goto out;
    }
    size_t b64_size = 4 * ((sig_len + 2) / 3) + 1;
    out = malloc(b64_size);
    if (!out || crypto_b64_encode(sig, sig_len, out, b64_size) < 0) {
        free(out);
        out = NULL;
        s_why(why, why_size, "out of memory");
    }
out:
    ERR_clear_error();
    free(sig);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    return out;
}

bool bb_oauth1_rsa_sha1_verify(const char *public_key_pem, const char *data, size_t len, const char *signature_b64)
{
    bool ok = false;
    EVP_PKEY *pkey = NULL;
    EVP_MD_CTX *ctx = NULL;
    BIO *bio = BIO_new_mem_buf(public_key_pem, -1);
    size_t cap = strlen(signature_b64) + 4;
    unsigned char *sig = malloc(cap);
    if (!bio || !sig)
        goto out;
    pkey = PEM_read_bio_PUBKEY(bio, NULL, s_no_password, NULL);
    int n = crypto_b64_decode(signature_b64, sig, cap);
    if (!pkey || n <= 0)
        goto out;
    ctx = EVP_MD_CTX_new();
    if (ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha1(), NULL, pkey) == 1 &&
        EVP_DigestVerify(ctx, sig, (size_t)n, (const unsigned char *)data, len) == 1)
        ok = true;
out:
    ERR_clear_error();
    free(sig);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    return ok;
}

char *bb_oauth1_authorization(const bb_oauth1_t *o, const char *method, const char *url, const char *form_body,
                              char *why, size_t why_size)
{
    char nonce[33], timestamp[24];
    char *base = NULL, *signature = NULL, *out = NULL;
    if (!o->consumer_key || !*o->consumer_key) {
        s_why(why, why_size, "the integration has no OAuth 1 consumer key");
        return NULL;
    }
    if (o->nonce) {
        snprintf(nonce, sizeof nonce, "%s", o->nonce);
    } else {
        uint8_t raw[16];
        if (crypto_random(raw, sizeof raw) < 0) {
            s_why(why, why_size, "no random bytes for the OAuth 1 nonce");
            return NULL;
        }
        crypto_hex(raw, sizeof raw, nonce);
    }
    snprintf(timestamp, sizeof timestamp, "%lld", o->timestamp ? o->timestamp : (long long)time(NULL));

    /* Sorted by name: the header lists them in the same order. */
    bb_oauth1_param_t p[8];
    size_t n = 0;
    if (o->callback)
        p[n++] = (bb_oauth1_param_t){"oauth_callback", o->callback};
    p[n++] = (bb_oauth1_param_t){"oauth_consumer_key", o->consumer_key};
    p[n++] = (bb_oauth1_param_t){"oauth_nonce", nonce};
    p[n++] = (bb_oauth1_param_t){"oauth_signature_method", "RSA-SHA1"};
    p[n++] = (bb_oauth1_param_t){"oauth_timestamp", timestamp};
    if (o->token && *o->token)
        p[n++] = (bb_oauth1_param_t){"oauth_token", o->token};
    if (o->verifier)
        p[n++] = (bb_oauth1_param_t){"oauth_verifier", o->verifier};
    p[n++] = (bb_oauth1_param_t){"oauth_version", "1.0"};

    base = bb_oauth1_base_string(method, url, form_body, p, n, why, why_size);
    if (!base)
        goto out;
    signature = bb_oauth1_rsa_sha1_sign(o->private_key_pem, base, strlen(base), why, why_size);
    if (!signature)
        goto out;

    sbuf_t b = {0};
    sbuf_puts(&b, "OAuth ");
    for (size_t i = 0; i < n; i++) {
        s_buf_encode(&b, p[i].name);
        sbuf_puts(&b, "=\"");
        s_buf_encode(&b, p[i].value);
        sbuf_puts(&b, "\", ");
    }
    sbuf_puts(&b, "oauth_signature=\"");
    s_buf_encode(&b, signature);
    sbuf_puts(&b, "\"");
    out = sbuf_take(&b);
    if (!out)
        s_why(why, why_size, "out of memory");
out:
    if (base) {
        explicit_bzero(base, strlen(base));
        free(base);
    }
    free(signature);
    return out;
}
