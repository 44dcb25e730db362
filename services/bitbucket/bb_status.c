#include "bb_status.h"

#include "bb_header.h"
#include "bb_text.h"
#include "envelope.pb-c.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define C_BAD_REQUEST PORTICO__ERROR_CODE__BAD_REQUEST
#define C_NOT_FOUND PORTICO__ERROR_CODE__NOT_FOUND
#define C_UNAVAILABLE PORTICO__ERROR_CODE__UNAVAILABLE
#define C_UNAUTHORIZED PORTICO__ERROR_CODE__UNAUTHORIZED
#define C_FORBIDDEN PORTICO__ERROR_CODE__FORBIDDEN
#define C_RATE_LIMITED PORTICO__ERROR_CODE__RATE_LIMITED
#define C_UPSTREAM PORTICO__ERROR_CODE__UPSTREAM

const char *bb_response_host(const bb_response_t *r)
{
    return r->host && *r->host ? r->host : "the server";
}

/* A short machine-readable word from outside: [A-Za-z0-9_.-] only. */
static void s_token_word(const char *in, char *out, size_t out_size)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 1 < out_size; p++)
        if (isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '-')
            out[o++] = *p;
    out[o] = '\0';
}

/* An error answer's JSON, when it is short enough to parse whole (a page's
 * error may be as long as a page). */
static json_t *s_error_json(const char *body, size_t body_len)
{
    return body && body_len && body_len <= BB_MAX_SMALL_BODY ? json_loadb(body, body_len, 0, NULL) : NULL;
}

void bb_errors_message(const char *body, size_t body_len, char *out, size_t out_size)
{
    if (!out_size)
        return;
    out[0] = '\0';
    json_t *root = s_error_json(body, body_len);
    if (!json_is_object(root)) {
        json_decref(root);
        return;
    }
    const char *msg = NULL;
    json_t *errors = json_object_get(root, "errors");
    if (json_is_array(errors) && json_array_size(errors) > 0) {
        json_t *first = json_array_get(errors, 0);
        if (json_is_object(first))
            msg = json_string_value(json_object_get(first, "message"));
    }
    if (!msg)
        msg = json_string_value(json_object_get(root, "message"));
    if (msg)
        bb_safe_text(msg, strlen(msg), out, out_size > 161 ? 161 : out_size);
    json_decref(root);
}

void bb_oauth1_problem_error(const char *problem, long status, const char *host, bus_error_t *err)
{
    int code = status == 400 ? C_BAD_REQUEST : C_UNAUTHORIZED;
    const char *m;
    if (!strcmp(problem, "timestamp_refused"))
        m = "Bitbucket refused the request's timestamp: the clocks of Portico and Bitbucket must agree "
            "(within a few minutes); check time synchronisation (NTP) on both machines";
    else if (!strcmp(problem, "signature_invalid"))
        m = "Bitbucket could not verify the OAuth signature: check that the application link's public key "
            "matches the integration's key and that no proxy rewrites the Host header";
    else if (!strcmp(problem, "consumer_key_unknown"))
        m = "Bitbucket does not know the consumer key: check the Consumer Key in the application link's "
            "incoming authentication";
    else if (!strcmp(problem, "nonce_used"))
        m = "Bitbucket has already seen this request's nonce; try again";
    else if (!strcmp(problem, "token_rejected"))
        m = "Bitbucket rejected the OAuth token: it is unknown, was already used or has been revoked";
    else if (!strcmp(problem, "token_expired"))
        m = "the OAuth token has expired; sign in again";
    else if (!strcmp(problem, "permission_denied"))
        m = "access was denied: the user did not allow access, or the token does not permit this request";
    else if (!strcmp(problem, "signature_method_rejected"))
        m = "Bitbucket does not accept RSA-SHA1 signatures from this consumer";
    else if (!strcmp(problem, "parameter_absent") || !strcmp(problem, "parameter_rejected"))
        m = "Bitbucket reports a missing or refused OAuth parameter";
    else if (!strcmp(problem, "version_rejected"))
        m = "Bitbucket does not accept this OAuth version";
    else
        m = NULL;
    /* Only the problems above (and permission_unknown, which needs no
     * wording here) name a detail; any other is OAUTH1_PROBLEM. */
    int detail = m || !strcmp(problem, "permission_unknown") ? bus_detail_parse(problem, DETAIL(OAUTH1_PROBLEM))
                                                             : DETAIL(OAUTH1_PROBLEM);
    if (m)
        bus_error_set(err, code, detail, "%s (oauth_problem %s from %s)", m, problem, host);
    else
        bus_error_set(err, code, detail, "Bitbucket at %s refused the OAuth request (oauth_problem %s)", host, problem);
}

/* The detail of a token endpoint's error word: one of RFC 6749 §5.2's, else
 * OAUTH2_ERROR (the word itself goes to the message, reduced to safe
 * characters). */
static int s_oauth2_token_detail(const char *word)
{
    static const char *const rfc[] = {"invalid_request",     "invalid_client",         "invalid_grant",
                                      "unauthorized_client", "unsupported_grant_type", "invalid_scope"};
    for (size_t i = 0; i < sizeof rfc / sizeof rfc[0]; i++)
        if (!strcmp(word, rfc[i]))
            return bus_detail_parse(word, DETAIL(OAUTH2_ERROR));
    return DETAIL(OAUTH2_ERROR);
}

/* RFC 6749 §5.2 {"error","error_description"}; 0 when the body is one. */
int bb_oauth2_error(const bb_response_t *r, bus_error_t *err)
{
    json_t *root = s_error_json(r->body, r->body_len);
    const char *e = json_is_object(root) ? json_string_value(json_object_get(root, "error")) : NULL;
    const char *d = json_is_object(root) ? json_string_value(json_object_get(root, "error_description")) : NULL;
    int rc = bb_oauth2_error_words(r, e, d, err);
    json_decref(root);
    return rc;
}

int bb_oauth2_error_words(const bb_response_t *r, const char *e, const char *d, bus_error_t *err)
{
    if (!e || !*e)
        return -1;
    char word[64], desc[160] = "";
    s_token_word(e, word, sizeof word);
    if (!word[0])
        snprintf(word, sizeof word, "oauth2_error");
    if (d)
        bb_safe_text(d, strlen(d), desc, sizeof desc);
    if (!strcmp(word, "invalid_grant"))
        bus_error_set(err, C_UNAUTHORIZED, DETAIL(INVALID_GRANT),
                      "Bitbucket refused the authorization code or refresh token: it expired, was already used "
                      "or revoked, or the redirect URI does not match%s%s",
                      desc[0] ? ": " : "", desc);
    else if (!strcmp(word, "invalid_client"))
        bus_error_set(err, C_UNAUTHORIZED, DETAIL(INVALID_CLIENT),
                      "Bitbucket refused the client ID or secret of the integration: check them against the "
                      "application link%s%s",
                      desc[0] ? ": " : "", desc);
    else
        bus_error_set(err, C_UPSTREAM, s_oauth2_token_detail(word),
                      "Bitbucket at %s refused the token request (%s)%s%s", bb_response_host(r), word,
                      desc[0] ? ": " : "", desc);
    return 0;
}

void bb_error_from_response(bb_api_t api, const bb_response_t *r, bus_error_t *err)
{
    const char *host = bb_response_host(r);
    long st = r->status;
    char msg[161], problem[64];
    bb_errors_message(r->body, r->body_len, msg, sizeof msg);
    const char *sep = msg[0] ? ": " : "";

    if (st >= 400 && st < 500 && st != 429 &&
        bb_oauth_problem(r->www_authenticate, r->body, r->body_len, problem, sizeof problem) == 0) {
        bb_oauth1_problem_error(problem, st, host, err);
        return;
    }
    if (api == BB_API_OAUTH2_TOKEN && st >= 400 && st < 500 && st != 429 && bb_oauth2_error(r, err) == 0)
        return;

    if (st == 429) {
        int wait = bb_retry_after_seconds(r->retry_after, time(NULL));
        if (wait >= 0)
            bus_error_set(err, C_RATE_LIMITED, DETAIL(RATE_LIMITED),
                          "Bitbucket at %s is rate limiting requests; try again in %d s", host, wait);
        else
            bus_error_set(err, C_RATE_LIMITED, DETAIL(RATE_LIMITED),
                          "Bitbucket at %s is rate limiting requests; try again later", host);
        err->retry_after_s = wait;
        return;
    }
    if (st >= 500 && st <= 599) {
        bus_error_set(err, C_UNAVAILABLE, DETAIL(SERVER_ERROR), "Bitbucket at %s answered %ld (a server error)%s%s",
                      host, st, sep, msg);
        return;
    }
    if (st >= 300 && st <= 399) {
        char where[160] = "";
        if (r->location)
            bb_safe_text(r->location, strlen(r->location), where, sizeof where);
        bus_error_set(err, C_UPSTREAM, DETAIL(REDIRECT),
                      "Bitbucket at %s redirected the request%s%s; check the base URL of the integration", host,
                      where[0] ? " to " : "", where);
        return;
    }
    if (st == 404) {
        switch (api) {
        case BB_API_SERVER_INFO:
            bus_error_set(err, C_UPSTREAM, DETAIL(NOT_BITBUCKET),
                          "this does not look like a Bitbucket Data Center / Server instance: %s has no "
                          "application-properties resource; check the base URL, including any context path "
                          "such as /bitbucket",
                          host);
            return;
        case BB_API_OAUTH2_TOKEN:
            bus_error_set(err, C_UPSTREAM, DETAIL(NO_OAUTH2),
                          "Bitbucket at %s has no OAuth 2.0 token endpoint (Bitbucket 7.20 or newer is needed, "
                          "or the base URL is wrong)",
                          host);
            return;
        case BB_API_OAUTH1:
            bus_error_set(err, C_UPSTREAM, DETAIL(NO_OAUTH1),
                          "Bitbucket at %s has no OAuth 1 endpoint here; check the base URL of the integration", host);
            return;
        case BB_API_WHOAMI:
            bus_error_set(err, C_UPSTREAM, DETAIL(NO_WHOAMI),
                          "Bitbucket at %s has no whoami servlet; check the base URL of the integration", host);
            return;
        case BB_API_REST:
            break;
        }
        bus_error_set(err, C_NOT_FOUND, DETAIL(NOT_FOUND), "Bitbucket at %s found no such resource%s%s", host, sep,
                      msg);
        return;
    }
    if (st == 401) {
        bus_error_set(err, C_UNAUTHORIZED, DETAIL(UNAUTHORIZED),
                      "Bitbucket at %s did not accept the credentials (it may have expired or been revoked)%s%s", host,
                      sep, msg);
        return;
    }
    if (st == 403) {
        bus_error_set(err, C_FORBIDDEN, DETAIL(FORBIDDEN), "Bitbucket at %s refused access%s%s", host, sep, msg);
        return;
    }
    if (st == 400) {
        bus_error_set(err, C_BAD_REQUEST, DETAIL(BAD_REQUEST), "Bitbucket at %s refused the request as malformed%s%s",
                      host, sep, msg);
        return;
    }
    if (st >= 200 && st <= 299) {
        bus_error_set(err, C_UPSTREAM, DETAIL(BAD_RESPONSE), "Bitbucket at %s sent an answer Portico cannot read",
                      host);
        return;
    }
    bus_error_set(err, C_UPSTREAM, DETAIL(UNEXPECTED_STATUS), "Bitbucket at %s answered with unexpected status %ld%s%s",
                  host, st, sep, msg);
}
