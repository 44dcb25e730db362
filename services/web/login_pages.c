#include "login_pages.h"

#include "buserr.h"

#include <stddef.h>

#define SLOTS 512
#define AGAIN "Start again from the login page."

typedef struct {
    bool listed;
    bool by_code;
    login_page_t page;
} entry_t;

#define BY_CODE                                                                                                        \
    {                                                                                                                  \
        .listed = true, .by_code = true                                                                                \
    }
#define PAGE(...)                                                                                                      \
    {                                                                                                                  \
        .listed = true, .page = { __VA_ARGS__ }                                                                        \
    }

static const entry_t s_by_detail[SLOTS] = {
    [DETAIL(STATE_MISSING)] = PAGE(.title = "Sign-in response incomplete",
                                   .what = "The answer from Bitbucket did not carry the sign-in state Portico needs to "
                                           "finish.",
                                   .next_step = AGAIN),
    [DETAIL(STATE_UNKNOWN)] =
        PAGE(.status = 400, .title = "This sign-in link has expired or was already used: start again",
             .what = "Each sign-in link works once, in the browser that started it, for a few "
                     "minutes.",
             .next_step = AGAIN),
    [DETAIL(STATE_EXPIRED)] =
        PAGE(.status = 400, .title = "This sign-in link has expired or was already used: start again",
             .what = "Each sign-in link works once, in the browser that started it, for a few "
                     "minutes.",
             .next_step = AGAIN),
    [DETAIL(BROWSER)] = PAGE(.title = "This sign-in was started in another browser",
                             .what = "For your safety, Portico finishes a sign-in only in the browser that started it "
                                     "(or when this browser kept its sign-in cookie).",
                             .next_step = "Start again from the login page, in this browser."),
    [DETAIL(INTEGRATION)] = PAGE(.title = "This sign-in belongs to another Bitbucket integration",
                                 .what = "The answer arrived at the callback of a different Bitbucket integration than "
                                         "the one the sign-in was started with, so Portico refused it.",
                                 .next_step = AGAIN),
    [DETAIL(DENIED)] = PAGE(.title = "You declined access in Bitbucket",
                            .what = "Portico needs read access to your repositories to sign you in, and Bitbucket "
                                    "reported that you chose Deny.",
                            .next_step = "To sign in, start again and choose Allow on Bitbucket's page."),
    [DETAIL(INVALID_CLIENT)] =
        PAGE(.title = "Bitbucket refused Portico's credentials",
             .what = "Bitbucket did not accept the Client ID and Client Secret that Portico has "
                     "for this integration.",
             .next_step = "Ask a Portico admin to check the integration's Client Secret (and Client "
                          "ID) against the application link in Bitbucket."),
    [DETAIL(INVALID_GRANT)] =
        PAGE(.title = "Bitbucket refused the sign-in code",
             .what = "Bitbucket's sign-in codes are valid for a few seconds only, and once.", .next_step = AGAIN),
    [DETAIL(TFA)] = PAGE(.title = "Bitbucket's two-factor plugin blocked the sign-in",
                         .what = "Bitbucket accepted the authorization, but then treated Portico as anonymous. The "
                                 "\"U2F & TOTP\" two-factor app for Bitbucket does this when its OAuth whitelist does "
                                 "not allow Portico.",
                         .next_step = "Ask your Bitbucket administrator to allow Portico in the OAuth whitelist of the "
                                      "\"U2F & TOTP\" two-factor app, then start again."),
    [DETAIL(ACCESS_RESTRICTED)] =
        PAGE(.status = 403, .message = LOGIN_PAGE_MESSAGE_NEXT_STEP, .title = "Access is restricted",
             .what = "The operator of this Portico lets only some people of this Bitbucket "
                     "sign in, and your Bitbucket account is not one of them. No Portico "
                     "account was created for you.",
             .next_step = "Ask a Portico admin for access."),
    [DETAIL(PENDING_BROWSER)] =
        PAGE(.status = 429, .retry_after_s = 60, .title = "Too many sign-ins in progress",
             .what = "This browser has started many sign-ins that have not finished yet.",
             .next_step = "Finish or abandon the sign-ins already open, wait a minute, and start "
                          "again."),
    [DETAIL(PENDING_TOTAL)] = PAGE(.status = 429, .retry_after_s = 60, .title = "Too many sign-ins in progress",
                                   .what = "Portico has too many unfinished sign-ins right now.",
                                   .next_step = "Finish or abandon the sign-ins already open, wait a minute, and start "
                                                "again."),
    [DETAIL(USER_INACTIVE)] = PAGE(.status = 403, .title = "Your Bitbucket account is not active",
                                   .what = "Bitbucket says the account you signed in with is deactivated, so Portico "
                                           "does not sign it in.",
                                   .next_step = "Ask your Bitbucket administrator to activate the account, then start "
                                                "again."),
    [DETAIL(INTEGRATION_UNKNOWN)] = PAGE(.status = 404, .title = "Unknown Bitbucket integration",
                                         .what = "There is no Bitbucket integration at this address; it may have been "
                                                 "deleted.",
                                         .next_step = AGAIN),
    [DETAIL(INTEGRATION_DISABLED)] = PAGE(.title = "This Bitbucket integration is disabled",
                                          .what = "A Portico admin has disabled logging in with this Bitbucket "
                                                  "integration.",
                                          .next_step = "Choose another integration on the login page, or ask a Portico "
                                                       "admin."),
#define NOT_ALLOWED                                                                                                    \
    PAGE(.title = "Bitbucket did not allow this sign-in",                                                              \
         .what = "Bitbucket refused what Portico asked for (read access to repositories).",                            \
         .next_step = "Ask your Bitbucket administrator to check that Portico's application link grants Repositories " \
                      "Read, then start again.")
    [DETAIL(INVALID_SCOPE)] = NOT_ALLOWED,
    [DETAIL(UNAUTHORIZED_CLIENT)] = NOT_ALLOWED,
#define NOT_COMPLETED                                                                                                  \
    PAGE(.title = "Bitbucket did not complete the sign-in",                                                            \
         .what = "Bitbucket sent Portico back without a usable answer.",                                               \
         .next_step = "Start again. If it keeps happening, ask your Bitbucket administrator to check Portico's "       \
                      "application link.")
    [DETAIL(CODE_MISSING)] = NOT_COMPLETED,
    [DETAIL(VERIFIER_MISSING)] = NOT_COMPLETED,
    [DETAIL(PROVIDER_ERROR)] = NOT_COMPLETED,
    [DETAIL(INVALID_REQUEST)] = NOT_COMPLETED,
    [DETAIL(UNSUPPORTED_RESPONSE_TYPE)] = NOT_COMPLETED,
    [DETAIL(SERVER_ERROR)] = NOT_COMPLETED,
    [DETAIL(TEMPORARILY_UNAVAILABLE)] = NOT_COMPLETED,
    [DETAIL(CONSUMER_KEY_UNKNOWN)] =
        PAGE(.status = 502, .title = "Bitbucket does not know Portico's consumer key yet",
             .what = "This integration signs in with OAuth 1, and Bitbucket did not recognise its consumer key: the "
                     "application link's Incoming Authentication in Bitbucket is missing or has another Consumer Key.",
             .next_step =
                 "Ask a Portico admin to finish the application link in Bitbucket (Incoming Authentication with "
                 "the Consumer Key and Public Key from the integration's page in Portico), then start again."),
#define SIGNATURE                                                                                                      \
    PAGE(.status = 502, .title = "Bitbucket could not verify Portico's signature",                                     \
         .what = "Bitbucket knows this integration's consumer key, but not with the public key Portico signs with: "   \
                 "the application link's Incoming Authentication has another Public Key (or a proxy in front of "      \
                 "Bitbucket rewrites the Host header).",                                                               \
         .next_step = "Ask a Portico admin to paste the Public Key from the integration's page in Portico into the "   \
                      "application link's Incoming Authentication in Bitbucket, then start again.")
    [DETAIL(SIGNATURE_INVALID)] = SIGNATURE,
    [DETAIL(SIGNATURE_METHOD_REJECTED)] = SIGNATURE,
    [DETAIL(TIMESTAMP_REFUSED)] =
        PAGE(.status = 502, .title = "The clocks of Portico and Bitbucket disagree",
             .what = "Bitbucket refused Portico's signed request because its time is too far from Bitbucket's own. "
                     "OAuth 1 works only when the clocks of Portico and Bitbucket agree within a few minutes.",
             .next_step =
                 "Ask your operator to synchronise the clocks of the Portico and Bitbucket servers (NTP), then "
                 "start again."),
    [DETAIL(NONCE_USED)] = PAGE(.status = 502, .title = "Bitbucket refused a repeated request",
                                .what = "Bitbucket has already seen one of Portico's signed requests for this sign-in.",
                                .next_step = AGAIN),
#define TOKEN_GONE                                                                                                     \
    PAGE(.status = 400, .title = "Bitbucket no longer accepts this sign-in",                                           \
         .what = "Bitbucket refused the sign-in's request token: it was already used, or the sign-in took too long.",  \
         .next_step = AGAIN)
    [DETAIL(TOKEN_REJECTED)] = TOKEN_GONE,
    [DETAIL(TOKEN_EXPIRED)] = TOKEN_GONE,
    [DETAIL(PERMISSION_UNKNOWN)] = TOKEN_GONE,
#define OAUTH1_REFUSED                                                                                                 \
    PAGE(.status = 502, .message = LOGIN_PAGE_MESSAGE_WHAT, .title = "Bitbucket refused Portico's OAuth 1 request",    \
         .next_step = "Ask a Portico admin to check the integration (Test connection on its page).")
    [DETAIL(PARAMETER_ABSENT)] = OAUTH1_REFUSED,
    [DETAIL(PARAMETER_REJECTED)] = OAUTH1_REFUSED,
    [DETAIL(VERSION_REJECTED)] = OAUTH1_REFUSED,
    [DETAIL(OAUTH1_KEYS)] = OAUTH1_REFUSED,
    [DETAIL(NO_OAUTH1)] = OAUTH1_REFUSED,
#define CANNOT_LOG_IN                                                                                                  \
    PAGE(.message = LOGIN_PAGE_MESSAGE_WHAT, .title = "This Bitbucket integration cannot be used to log in",           \
         .next_step = "Ask a Portico admin to check the integration.")
    [DETAIL(OAUTH_VERSION)] = CANNOT_LOG_IN,
    [DETAIL(CLIENT_ID)] = CANNOT_LOG_IN,

    /* The code's page: details that never reach the sign-in page, or
     * that say nothing a person could act on beyond what the code says. */
    [DETAIL(NONE)] = BY_CODE,
    [DETAIL(ROTATING)] = BY_CODE,
    [DETAIL(ABSOLUTE_SECONDS)] = BY_CODE,
    [DETAIL(ACCESS_RULES)] = BY_CODE,
    [DETAIL(ADDRESS_REFUSED)] = BY_CODE,
    [DETAIL(AFTER_ID)] = BY_CODE,
    [DETAIL(AMBIGUOUS)] = BY_CODE,
    [DETAIL(ANONYMOUS)] = BY_CODE,
    [DETAIL(AUTH)] = BY_CODE,
    [DETAIL(BAD_PAGING)] = BY_CODE,
    [DETAIL(BAD_REQUEST)] = BY_CODE,
    [DETAIL(BAD_RESPONSE)] = BY_CODE,
    [DETAIL(BAD_TOKEN)] = BY_CODE,
    [DETAIL(BASE_URL)] = BY_CODE,
    [DETAIL(BEFORE_ID)] = BY_CODE,
    [DETAIL(BODY)] = BY_CODE,
    [DETAIL(BROKER)] = BY_CODE,
    [DETAIL(BUSY)] = BY_CODE,
    [DETAIL(CALLER)] = BY_CODE,
    [DETAIL(CA_CERT_INVALID)] = BY_CODE,
    [DETAIL(CA_CERT_PEM)] = BY_CODE,
    [DETAIL(CERTIFICATE)] = BY_CODE,
    [DETAIL(CONNECTION)] = BY_CODE,
    [DETAIL(CREDENTIALS)] = BY_CODE,
    [DETAIL(DATABASE)] = BY_CODE,
    [DETAIL(DEADLINE)] = BY_CODE,
    [DETAIL(DISABLED)] = BY_CODE,
    [DETAIL(DUPLICATE)] = BY_CODE,
    [DETAIL(ENTRY)] = BY_CODE,
    [DETAIL(ENVELOPE)] = BY_CODE,
    [DETAIL(EXISTS)] = BY_CODE,
    [DETAIL(EXPIRED)] = BY_CODE,
    [DETAIL(EXPIRES_AT)] = BY_CODE,
    [DETAIL(FORBIDDEN)] = BY_CODE,
    [DETAIL(GRANT_TYPE)] = BY_CODE,
    [DETAIL(HANDSHAKE)] = BY_CODE,
    [DETAIL(IDENTITY)] = BY_CODE,
    [DETAIL(IDLE_SECONDS)] = BY_CODE,
    [DETAIL(KEY)] = BY_CODE,
    [DETAIL(LAST_ADMIN)] = BY_CODE,
    [DETAIL(LEASED)] = BY_CODE,
    [DETAIL(LEASE_LOST)] = BY_CODE,
    [DETAIL(LEASE_MS)] = BY_CODE,
    [DETAIL(LIMIT)] = BY_CODE,
    [DETAIL(LINKED)] = BY_CODE,
    [DETAIL(LOGIN_AGAIN)] = BY_CODE,
    [DETAIL(NOT_BITBUCKET)] = BY_CODE,
    [DETAIL(NOT_FOUND)] = BY_CODE,
    [DETAIL(NO_ADMIN)] = BY_CODE,
    [DETAIL(NO_IDENTITY)] = BY_CODE,
    [DETAIL(NO_OAUTH2)] = BY_CODE,
    [DETAIL(NO_TOKEN)] = BY_CODE,
    [DETAIL(NO_WHOAMI)] = BY_CODE,
    [DETAIL(OAUTH2_TOO_OLD)] = BY_CODE,
    [DETAIL(PENDING)] = BY_CODE,
    [DETAIL(PERMISSION)] = BY_CODE,
    [DETAIL(PLATFORM)] = BY_CODE,
    [DETAIL(PRIVATE_KEY)] = BY_CODE,
    [DETAIL(PROTOCOL)] = BY_CODE,
    [DETAIL(RATE_LIMITED)] = BY_CODE,
    [DETAIL(REDIRECT)] = BY_CODE,
    [DETAIL(REFRESH_WAIT)] = BY_CODE,
    [DETAIL(RESERVATION)] = BY_CODE,
    [DETAIL(RULES)] = BY_CODE,
    [DETAIL(SESSION)] = BY_CODE,
    [DETAIL(SETUP_OFF)] = BY_CODE,
    [DETAIL(SHUTTING_DOWN)] = BY_CODE,
    [DETAIL(START)] = BY_CODE,
    [DETAIL(STOPPING)] = BY_CODE,
    [DETAIL(TIMEOUT)] = BY_CODE,
    [DETAIL(TOKENS)] = BY_CODE,
    [DETAIL(TOKEN_TYPE)] = BY_CODE,
    [DETAIL(TOO_LARGE)] = BY_CODE,
    [DETAIL(TTL_SECONDS)] = BY_CODE,
    [DETAIL(UNAUTHORIZED)] = BY_CODE,
    [DETAIL(UNEXPECTED_STATUS)] = BY_CODE,
    [DETAIL(UNKNOWN)] = BY_CODE,
    [DETAIL(UNREACHABLE)] = BY_CODE,
    [DETAIL(USER)] = BY_CODE,
    [DETAIL(ACCESS_DENIED)] = BY_CODE,
    [DETAIL(UNSUPPORTED_GRANT_TYPE)] = BY_CODE,
    [DETAIL(OAUTH2_ERROR)] = BY_CODE,
    [DETAIL(PERMISSION_DENIED)] = BY_CODE,
    [DETAIL(OAUTH1_PROBLEM)] = BY_CODE,
    [DETAIL(ACCESS_TOKEN)] = BY_CODE,
    [DETAIL(ACTION)] = BY_CODE,
    [DETAIL(ACTOR)] = BY_CODE,
    [DETAIL(ADDR)] = BY_CODE,
    [DETAIL(AUTH_BEARER)] = BY_CODE,
    [DETAIL(AUTH_OAUTH1_CONSUMER_KEY)] = BY_CODE,
    [DETAIL(AUTH_OAUTH1_PRIVATE_KEY_PEM)] = BY_CODE,
    [DETAIL(AUTH_OAUTH1_TOKEN)] = BY_CODE,
    [DETAIL(BB_USER_ID)] = BY_CODE,
    [DETAIL(BITBUCKET_VERSION)] = BY_CODE,
    [DETAIL(BROWSER_HASH)] = BY_CODE,
    [DETAIL(CALLBACK)] = BY_CODE,
    [DETAIL(CA_CERT)] = BY_CODE,
    [DETAIL(CLIENT_SECRET)] = BY_CODE,
    [DETAIL(CODE)] = BY_CODE,
    [DETAIL(CODE_VERIFIER)] = BY_CODE,
    [DETAIL(CONSUMER_KEY)] = BY_CODE,
    [DETAIL(CONTACT)] = BY_CODE,
    [DETAIL(CREDENTIALS_CONSUMER_KEY)] = BY_CODE,
    [DETAIL(CREDENTIALS_PRIVATE_KEY_PEM)] = BY_CODE,
    [DETAIL(CREDENTIALS_TOKEN)] = BY_CODE,
    [DETAIL(DETAIL)] = BY_CODE,
    [DETAIL(DISPLAY_NAME)] = BY_CODE,
    [DETAIL(EMAIL)] = BY_CODE,
    [DETAIL(FILTER)] = BY_CODE,
    [DETAIL(GENERATION)] = BY_CODE,
    [DETAIL(HOLDER)] = BY_CODE,
    [DETAIL(ID)] = BY_CODE,
    [DETAIL(IDENTITY_ID)] = BY_CODE,
    [DETAIL(INTEGRATION_ID)] = BY_CODE,
    [DETAIL(NAME)] = BY_CODE,
    [DETAIL(OBJECT)] = BY_CODE,
    [DETAIL(PATTERNS)] = BY_CODE,
    [DETAIL(PRIVATE_KEY_PEM)] = BY_CODE,
    [DETAIL(PROJECT_KEY)] = BY_CODE,
    [DETAIL(REASON)] = BY_CODE,
    [DETAIL(REDIRECT_URI)] = BY_CODE,
    [DETAIL(REFRESH_TOKEN)] = BY_CODE,
    [DETAIL(REPO_SLUG)] = BY_CODE,
    [DETAIL(REQUEST_TOKEN)] = BY_CODE,
    [DETAIL(REQUEST_TOKEN_SECRET)] = BY_CODE,
    [DETAIL(RESOURCE)] = BY_CODE,
    [DETAIL(RESULT)] = BY_CODE,
    [DETAIL(RETURN_TO)] = BY_CODE,
    [DETAIL(SCOPE)] = BY_CODE,
    [DETAIL(SLUG)] = BY_CODE,
    [DETAIL(STATE_HASH)] = BY_CODE,
    [DETAIL(TOKEN_HASH)] = BY_CODE,
    [DETAIL(TOKEN_SECRET)] = BY_CODE,
    [DETAIL(USERNAME)] = BY_CODE,
    [DETAIL(USER_ID)] = BY_CODE,
    [DETAIL(VERIFIER)] = BY_CODE,
    [DETAIL(INSTANCE)] = BY_CODE,
    [DETAIL(VERSION)] = BY_CODE,
    [DETAIL(STATUS)] = BY_CODE,
};

/* Pages by code, for details without their own. */
static const login_page_t s_unreachable = {
    .title = "Bitbucket is not reachable",
    .what = "Portico could not connect to Bitbucket to finish your sign-in.",
    .next_step = "Wait a moment and try again. If it keeps happening, tell your Portico operator.",
};
static const login_page_t s_unavailable = {
    .title = "Sign-in is unavailable",
    .what = "A Portico service needed for signing in is not running.",
    .next_step = "Wait a moment and try again. If it keeps happening, tell your Portico operator.",
};
static const login_page_t s_timeout = {
    .title = "Bitbucket took too long to answer",
    .what = "Portico waited for Bitbucket, but it did not answer in time.",
    .next_step = "Wait a moment and start again. If it keeps happening, tell your Bitbucket administrator.",
};
static const login_page_t s_tls = {
    .title = "Secure connection to Bitbucket failed",
    .what = "Portico could not verify Bitbucket's HTTPS certificate, so it did not send your sign-in.",
    .next_step = "Ask a Portico admin to check the integration's CA certificate.",
};
static const login_page_t s_rate_limited = {
    .title = "Bitbucket is limiting requests",
    .what = "Bitbucket asked Portico to slow down.",
    .next_step = "Wait a minute and start again.",
};
static const login_page_t s_upstream = {
    .title = "Bitbucket answered something unexpected",
    .what = "Portico could not use Bitbucket's answer to sign you in.",
    .next_step = "Start again. If it keeps happening, give the reference below to your Portico operator.",
};
static const login_page_t s_generic = {
    .title = "Sign-in did not work",
    .what = "Something went wrong while signing you in.",
    .next_step = "Start again. If it keeps happening, give the reference below to your Portico operator.",
};

static const entry_t *s_entry(int detail)
{
    return detail >= 0 && detail < SLOTS && s_by_detail[detail].listed ? &s_by_detail[detail] : NULL;
}

bool login_page_listed(int detail)
{
    return s_entry(detail) != NULL;
}

bool login_page_own(int detail)
{
    const entry_t *e = s_entry(detail);
    return e && !e->by_code;
}

const login_page_t *login_page_for(int code, int detail)
{
    const entry_t *e = s_entry(detail);
    if (e && !e->by_code)
        return &e->page;
    switch (code) {
    case PORTICO__ERROR_CODE__UNAVAILABLE:
        return detail == DETAIL(UNREACHABLE) ? &s_unreachable : &s_unavailable;
    case PORTICO__ERROR_CODE__TIMEOUT:
        return &s_timeout;
    case PORTICO__ERROR_CODE__TLS:
        return &s_tls;
    case PORTICO__ERROR_CODE__RATE_LIMITED:
        return &s_rate_limited;
    case PORTICO__ERROR_CODE__UPSTREAM:
        return &s_upstream;
    default:
        return &s_generic;
    }
}
