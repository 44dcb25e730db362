/* Pure OAuth 1.0a helpers: the authorize URL and what Bitbucket's
 * oauth_problem answers mean for the person who reads them. No bus, no
 * globals, so the unit tests can link this file alone (the signing itself
 * lives in the bitbucket service, services/bitbucket/bb_oauth1.c). */
#include "oauth.h"

#include "sbuf.h"

#include <string.h>

int oauth1_authorize_url(const char *base_url, const char *request_token, char *out, size_t out_size)
{
    if (!request_token || !request_token[0])
        return -1;
    sbuf_t b;
    sbuf_init(&b);
    sbuf_puts(&b, base_url);
    sbuf_puts(&b, "/plugins/servlet/oauth/authorize?oauth_token=");
    sbuf_urlenc(&b, request_token);
    int rc = -1;
    if (!b.failed && b.len < out_size) {
        memcpy(out, b.data, b.len + 1);
        rc = (int)b.len;
    }
    if (b.data)
        explicit_bzero(b.data, b.len);
    sbuf_free(&b);
    return rc;
}

bool oauth1_verifier_denied(const char *verifier)
{
    /* Bitbucket still redirects to the callback when the user presses
     * Deny, with this word in place of a verifier. */
    return verifier && !strcmp(verifier, "denied");
}

/* Each message fits the integration's "last test result" (200 characters)
 * and says what to do; tests/unit/test_oauth1.c checks both. */
static const struct {
    int detail;
    oauth1_problem_t kind;
    const char *message;
} s_problems[] = {
    {DETAIL(CONSUMER_KEY_UNKNOWN), OAUTH1_PROBLEM_LINK,
     "Bitbucket does not know this consumer key yet: finish the application link's Incoming Authentication with "
     "the Consumer Key and Public Key shown in Portico"},
    {DETAIL(SIGNATURE_INVALID), OAUTH1_PROBLEM_LINK,
     "Bitbucket does not know this public key yet: the application link's Incoming Authentication needs the "
     "Public Key shown in Portico (a proxy that rewrites Host breaks it too)"},
    {DETAIL(SIGNATURE_METHOD_REJECTED), OAUTH1_PROBLEM_LINK,
     "Bitbucket does not accept RSA-SHA1 signatures from this consumer: check the application link's Incoming "
     "Authentication"},
    {DETAIL(TIMESTAMP_REFUSED), OAUTH1_PROBLEM_CLOCK,
     "Bitbucket refused the time of Portico's request: the clocks of Portico and Bitbucket must agree within a "
     "few minutes; keep both synchronised with NTP"},
    {DETAIL(NONCE_USED), OAUTH1_PROBLEM_RETRY,
     "Bitbucket has already seen this signed request (nonce_used): try again"},
    {DETAIL(TOKEN_REJECTED), OAUTH1_PROBLEM_TOKEN,
     "Bitbucket no longer accepts this OAuth token: it was already used, has expired or was revoked"},
    {DETAIL(TOKEN_EXPIRED), OAUTH1_PROBLEM_TOKEN, "the OAuth token has expired: log in again"},
    {DETAIL(PERMISSION_DENIED), OAUTH1_PROBLEM_TOKEN,
     "access was denied: the user declined it in Bitbucket, or the authorization was revoked"},
    {DETAIL(PERMISSION_UNKNOWN), OAUTH1_PROBLEM_TOKEN, "Bitbucket has no decision of the user for this sign-in yet"},
    {DETAIL(PARAMETER_ABSENT), OAUTH1_PROBLEM_PROTOCOL,
     "Bitbucket reports a missing OAuth parameter (parameter_absent)"},
    {DETAIL(PARAMETER_REJECTED), OAUTH1_PROBLEM_PROTOCOL,
     "Bitbucket refused an OAuth parameter (parameter_rejected): check the Base URL and the callback URL"},
    {DETAIL(VERSION_REJECTED), OAUTH1_PROBLEM_PROTOCOL,
     "Bitbucket does not accept OAuth 1.0a requests (version_rejected)"},
};

oauth1_problem_t oauth1_problem_kind(int detail)
{
    for (size_t i = 0; i < sizeof s_problems / sizeof s_problems[0]; i++)
        if (detail == s_problems[i].detail)
            return s_problems[i].kind;
    return OAUTH1_PROBLEM_NONE;
}

const char *oauth1_problem_message(int detail)
{
    for (size_t i = 0; i < sizeof s_problems / sizeof s_problems[0]; i++)
        if (detail == s_problems[i].detail)
            return s_problems[i].message;
    return NULL;
}
