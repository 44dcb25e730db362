/* Pure OAuth 2 helpers: no bus, no globals, so the unit tests can link
 * this file alone. */
#include "oauth.h"

#include "crypto.h"
#include "sbuf.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int oauth2_challenge(const char *verifier, char *out, size_t out_size)
{
    uint8_t d[32];
    crypto_sha256(verifier, strlen(verifier), d);
    return crypto_b64url_encode(d, sizeof d, out, out_size) < 0 ? -1 : 0;
}

static void s_param(sbuf_t *b, char sep, const char *name, const char *value)
{
    sbuf_append(b, &sep, 1);
    sbuf_puts(b, name);
    sbuf_puts(b, "=");
    sbuf_urlenc(b, value);
}

int oauth2_authorize_url(const char *base_url, const char *client_id, const char *redirect_uri, const char *state,
                         const char *challenge, char *out, size_t out_size)
{
    sbuf_t b;
    sbuf_init(&b);
    sbuf_puts(&b, base_url);
    sbuf_puts(&b, "/rest/oauth2/latest/authorize");
    s_param(&b, '?', "client_id", client_id);
    s_param(&b, '&', "redirect_uri", redirect_uri);
    s_param(&b, '&', "response_type", "code");
    s_param(&b, '&', "state", state);
    s_param(&b, '&', "scope", BROKER_SCOPE);
    s_param(&b, '&', "code_challenge", challenge);
    s_param(&b, '&', "code_challenge_method", "S256");
    int rc = -1;
    if (!b.failed && b.len < out_size) {
        memcpy(out, b.data, b.len + 1);
        rc = (int)b.len;
    }
    /* The buffer held the state: do not leave it in freed memory. */
    if (b.data)
        oauth2_wipe(b.data);
    sbuf_free(&b);
    return rc;
}

int oauth2_redirect_uri(const char *public_url, int64_t integration_id, char *out, size_t out_size)
{
    size_t n = strlen(public_url);
    while (n > 0 && public_url[n - 1] == '/')
        n--;
    int w = snprintf(out, out_size, "%.*s/oauth/callback/%" PRId64, (int)n, public_url, integration_id);
    return w < 0 || (size_t)w >= out_size ? -1 : w;
}

bool oauth2_version_valid(const char *s)
{
    if (!s || !isdigit((unsigned char)s[0]) || strlen(s) > 40)
        return false;
    const char *p = s;
    while (isdigit((unsigned char)*p) || *p == '.')
        p++;
    /* A build suffix such as "-rc1" or "-SNAPSHOT" is allowed, nothing else. */
    if (*p == '-')
        for (p++; *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
                return false;
    return *p == '\0';
}

static long s_part(const char **p)
{
    long v = 0;
    if (!isdigit((unsigned char)**p))
        return 0;
    while (isdigit((unsigned char)**p)) {
        if (v < 100000000)
            v = v * 10 + (**p - '0');
        (*p)++;
    }
    return v;
}

int oauth2_version_cmp(const char *a, const char *b)
{
    const char *pa = a ? a : "", *pb = b ? b : "";
    for (int i = 0; i < 6; i++) {
        long va = s_part(&pa), vb = s_part(&pb);
        if (va != vb)
            return va < vb ? -1 : 1;
        /* Only a dot followed by a digit continues a version. */
        bool more_a = pa[0] == '.' && isdigit((unsigned char)pa[1]);
        bool more_b = pb[0] == '.' && isdigit((unsigned char)pb[1]);
        if (!more_a && !more_b)
            return 0;
        if (more_a)
            pa++;
        else
            pa = "";
        if (more_b)
            pb++;
        else
            pb = "";
    }
    return 0;
}

const char *oauth2_callback_error(const char *error)
{
    static const char *const known[] = {"access_denied",          "invalid_request",           "unauthorized_client",
                                        "invalid_scope",          "unsupported_response_type", "server_error",
                                        "temporarily_unavailable"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (error && !strcmp(error, known[i]))
            return known[i];
    return "provider_error";
}

void oauth2_wipe(char *s)
{
    if (s)
        explicit_bzero(s, strlen(s));
}
