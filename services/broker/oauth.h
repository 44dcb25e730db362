/* The broker's method groups and what they share.
 *
 *   login.c     login.start, login.finish (the login state machines, for
 *               both OAuth versions), the OAuth 2 steps and the one route
 *               table
 *   login_oauth1.c  the OAuth 1.0a steps: request token, consume by
 *               request token, access token
 *   login_steps.c  the login states and contexts and what every step
 *               uses (failing, browser binding, the pending integration)
 *   identity.c  who the user is at Bitbucket (whoami, user.get, user.find)
 *   tokens.c    a usable access token for an identity: read, lease,
 *               refresh once, replace (the token state machine); OAuth 1
 *               tokens are only read: they are never refreshed
 *   repos.c     user.repositories
 *   check.c     integration.check
 *   calls.c     calling the registry and the bitbucket service
 *   oauth2.c    pure helpers: PKCE, the authorize URL, version numbers
 *   oauth1.c    pure helpers: the OAuth 1 authorize URL, oauth_problem
 *               answers explained
 *
 * Nothing here keeps state between requests: every login and every token
 * lives in the registry, so any broker worker can serve any step. */
#ifndef PORTICO_BROKER_OAUTH_H
#define PORTICO_BROKER_OAUTH_H

#include "broker.h"
#include "bus_methods.h"

#include "bitbucket.pb-c.h"
#include "broker.pb-c.h"
#include "registry.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The only scope Portico asks for. */
#define BROKER_SCOPE "REPO_READ"
/* 32 random bytes in base64url: state, PKCE verifier. */
#define BROKER_SECRET_BYTES 32
#define BROKER_B64_32 44 /* 43 characters and the NUL */
/* Time kept back from a request's deadline to answer it cleanly. */
#define BROKER_REPLY_MARGIN_MS 400
/* How long a refresh holds an identity's tokens at least; it holds them
 * longer when a Bitbucket call may take longer (s_lease_ms, tokens.c). */
#define BROKER_LEASE_MS 15000
#define BROKER_REPOS_DEFAULT_LIMIT 25
#define BROKER_REPOS_MAX_LIMIT 100

/* ---- oauth2.c: pure helpers (unit tested) ---- */

/* S256 challenge of a verifier: base64url(SHA-256(verifier)). 0 or -1. */
int oauth2_challenge(const char *verifier, char *out, size_t out_size);
/* {base}/rest/oauth2/latest/authorize?client_id=..&redirect_uri=..&
 * response_type=code&state=..&scope=REPO_READ&code_challenge=..&
 * code_challenge_method=S256, every value percent-encoded. Length or -1. */
int oauth2_authorize_url(const char *base_url, const char *client_id, const char *redirect_uri, const char *state,
                         const char *challenge, char *out, size_t out_size);
/* {public_url}/oauth/callback/{id}: the one redirect URI of an integration. */
int oauth2_redirect_uri(const char *public_url, int64_t integration_id, char *out, size_t out_size);
/* Compare dotted version numbers numerically ("7.9" < "7.21" < "8.0.1").
 * Missing parts count as 0; a non-numeric suffix ("8.9.0-rc1") is ignored.
 * <0, 0, >0. */
int oauth2_version_cmp(const char *a, const char *b);
/* True when s looks like a version number: digits and dots, starts with a digit. */
bool oauth2_version_valid(const char *s);
/* The RFC 6749 error codes an authorization response may carry; anything
 * else becomes "provider_error" so that what we echo is never free text. */
const char *oauth2_callback_error(const char *error);
/* Overwrite a secret before its memory goes back (NULL is fine). */
void oauth2_wipe(char *s);

/* ---- oauth1.c: pure helpers (unit tested) ---- */

/* {base}/plugins/servlet/oauth/authorize?oauth_token=.. (percent-encoded).
 * Length or -1. */
int oauth1_authorize_url(const char *base_url, const char *request_token, char *out, size_t out_size);
/* True for the verifier Bitbucket sends back when the user pressed Deny. */
bool oauth1_verifier_denied(const char *verifier);

/* What an oauth_problem (the bitbucket service puts its name in the error
 * detail) asks of whom. */
typedef enum {
    OAUTH1_PROBLEM_NONE,     /* not an oauth_problem Portico knows */
    OAUTH1_PROBLEM_LINK,     /* the application link's Incoming Authentication: an admin */
    OAUTH1_PROBLEM_CLOCK,    /* the clocks of Portico and Bitbucket: the operator */
    OAUTH1_PROBLEM_RETRY,    /* a one-off: try again */
    OAUTH1_PROBLEM_TOKEN,    /* the token is gone or was refused: the user logs in again */
    OAUTH1_PROBLEM_PROTOCOL, /* Bitbucket refused the request's form */
} oauth1_problem_t;
oauth1_problem_t oauth1_problem_kind(int detail);
/* A sentence that says what happened and what to do, at most 200
 * characters (it is also an integration's test result); NULL for a problem
 * Portico does not know. */
const char *oauth1_problem_message(int detail);

/* ---- calls.c ---- */

/* Calls of declared methods (registry_m_..., bitbucket_m_... from
 * bus_methods.h): *resp is of the method's reply type. */
int broker_registry_call(broker_worker_t *w, const bus_method_t *m, const ProtobufCMessage *req,
                         ProtobufCMessage **resp, bus_error_t *err);
/* A Bitbucket call ends early enough before the incoming request's deadline
 * that this worker can still answer with a clear error. */
int broker_bitbucket_call(broker_worker_t *w, const bus_method_t *m, const ProtobufCMessage *req,
                          ProtobufCMessage **resp, bus_error_t *err);
/* The same for a call that makes requests HTTP requests one after the other
 * (login.exchange): each may take PORTICO_BITBUCKET_TIMEOUT_MS, as when they
 * were calls of their own. */
int broker_bitbucket_call_requests(broker_worker_t *w, const bus_method_t *m, const ProtobufCMessage *req, int requests,
                                   ProtobufCMessage **resp, bus_error_t *err);
/* integration.get. An unknown integration is NOT_FOUND "integration_unknown",
 * a disabled one FORBIDDEN "integration_disabled". Free *out with
 * broker_integration_free (it wipes the secrets). */
int broker_integration_load(broker_worker_t *w, int64_t id, bool with_secrets,
                            Portico__Registry__GetIntegrationReply **out, bus_error_t *err);
void broker_integration_free(Portico__Registry__GetIntegrationReply **rep_p);
/* FORBIDDEN "integration_disabled" for a disabled integration. 0 or -1. */
int broker_integration_usable(const Portico__Registry__Integration *in, bus_error_t *err);
/* The bitbucket service's Conn for an integration (pointers borrowed). */
void broker_conn_init(Portico__Bitbucket__Conn *conn, const Portico__Registry__Integration *in);
/* The Auth for OAuth 1 signed calls: the integration's consumer key and
 * private key with the user's token (pointers borrowed). */
void broker_oauth1_auth(Portico__Bitbucket__Auth *auth, Portico__Bitbucket__OAuth1Credentials *cred,
                        const Portico__Registry__Integration *in, const Portico__Registry__IntegrationSecrets *secrets,
                        const char *token, const char *token_secret);
/* Answer with err's code, detail and message. */
void broker_reply_bus_error(bus_reply_t *reply, const bus_error_t *err);
/* audit.append; failures are logged, never fatal. Never pass a secret. */
void broker_audit(broker_worker_t *w, const char *actor, const char *action, const char *object, const char *addr,
                  const char *detail);
/* Reword a bitbucket service error for the person who will read it. */
void broker_explain_bitbucket_error(bus_error_t *err, const char *base_url);

/* ---- identity.c ---- */

typedef struct {
    int64_t bb_user_id;
    char username[256];
    char slug[256];
    char display_name[256];
    char email[320];
    bool active; /* Bitbucket's "active": false for a deactivated account */
} broker_identity_t;

/* Who the credentials in auth (an OAuth 2 bearer token or OAuth 1
 * credentials) belong to. UNAUTHORIZED "tfa" when Bitbucket answers as if
 * nobody were signed in right after handing out the token. known: what
 * login.exchange already asked (whoami, users/{name}), taken as those
 * calls' answers; NULL asks. 0 or -1. */
int broker_identify(broker_worker_t *w, const Portico__Bitbucket__Conn *conn, const Portico__Bitbucket__Auth *auth,
                    const Portico__Bitbucket__LoginExchangeReply *known, broker_identity_t *out, bus_error_t *err);

/* ---- tokens.c ---- */

typedef struct {
    char *access_token;  /* malloc'd, wiped on clear */
    char *refresh_token; /* malloc'd, wiped on clear */
    char *token_secret;  /* OAuth 1; malloc'd, wiped on clear */
    int64_t expires_at;
    int64_t generation;
    bool refreshed; /* a refresh happened (here or elsewhere) during this call */
} broker_tokens_t;

/* A usable access token for the identity. With force, the token in hand
 * was refused by Bitbucket: refresh unless someone already did. Refreshes
 * are serialised per identity through the registry's lease, so a refresh
 * token is used once. UNAUTHORIZED "login_again" when the pair is gone or
 * Bitbucket refused it. 0 or -1. */
int broker_tokens_get(broker_worker_t *w, int64_t identity_id, const Portico__Registry__GetIntegrationReply *integ,
                      bool force, broker_tokens_t *tok, bus_error_t *err);
/* OAuth 1: the stored access token and its secret. OAuth 1 tokens are not
 * refreshed: UNAUTHORIZED "login_again" when none is stored or it has
 * expired. 0 or -1. */
int broker_tokens_get_oauth1(broker_worker_t *w, int64_t identity_id, broker_tokens_t *tok, bus_error_t *err);
/* The same two, from a pair already read with the identity
 * (user.credentials; t NULL when none is stored): the registry is asked
 * again only for a refresh. */
int broker_tokens_from(broker_worker_t *w, int64_t identity_id, const Portico__Registry__GetIntegrationReply *integ,
                       const Portico__Registry__Tokens *t, int64_t generation, broker_tokens_t *tok, bus_error_t *err);
int broker_tokens_from_oauth1(int64_t identity_id, const Portico__Registry__Tokens *t, int64_t generation,
                              broker_tokens_t *tok, bus_error_t *err);
void broker_tokens_clear(broker_tokens_t *tok);

/* ---- the methods ---- */

void broker_login_start(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void broker_login_finish(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void broker_user_repositories(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void broker_integration_check(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);

/* ---- repos.c ---- */

/* out, as user.repositories answers, from Bitbucket's page list; *items and
 * *ptrs are allocated for out (free both after use). 0, or -1 out of memory. */
int broker_repos_reply(const Portico__Bitbucket__ListReposReply *list, const Portico__Registry__Integration *in,
                       const char *bitbucket_username, Portico__Broker__RepositoriesReply *out,
                       Portico__Broker__Repository **items, Portico__Broker__Repository ***ptrs);

#endif
