/* login_steps: the login state machines' states and contexts, and the
 * helpers every step may use. login.c (the machines and the OAuth 2 steps),
 * login_oauth1.c (the OAuth 1 steps) and access.c (the access check) build
 * on it; it depends on none of them. */
#ifndef PORTICO_BROKER_LOGIN_STEPS_H
#define PORTICO_BROKER_LOGIN_STEPS_H

#include "oauth.h"

#define LOGIN_DEFAULT_RETURN_TO "/account"

/* ---- login.start ---- */

typedef enum {
    START_MAKE_SECRETS,  /* state and PKCE verifier */
    START_STORE_PENDING, /* stored when the integration takes OAuth 2 logins */
    START_CHECK_INTEGRATION,
    START_AUTHORIZE_URL, /* OAuth 2 */
    START_O1_LOAD_KEY,   /* OAuth 1 */
    START_O1_REQUEST_TOKEN,
    START_O1_STORE_PENDING,
    START_STARTED,
    START_FAILED,
} start_state_t;

typedef struct {
    broker_worker_t *w;
    const Portico__Broker__StartLoginRequest *in;
    Portico__Registry__CreatePendingReply *created; /* OAuth 2: what pending.create found */
    Portico__Registry__GetIntegrationReply *integ;  /* OAuth 1: the integration with its key */
    char return_to[1100];
    char state[BROKER_B64_32];
    char verifier[BROKER_B64_32];
    char challenge[BROKER_B64_32];
    char redirect_uri[700];
    char authorize_url[4096];
    Portico__Bitbucket__OAuth1TokenReply *request; /* OAuth 1 request token and secret */
    bus_error_t err;
} start_ctx_t;

/* ---- login.finish ---- */

typedef enum {
    FIN_CONSUME,
    FIN_CALLBACK_ERROR, /* OAuth 2: error= on the callback */
    FIN_LOAD_CLIENT,    /* OAuth 2 */
    FIN_EXCHANGE,       /* OAuth 2 */
    FIN_O1_DENIED,      /* OAuth 1: oauth_verifier=denied */
    FIN_O1_LOAD_KEY,
    FIN_O1_ACCESS_TOKEN,
    FIN_IDENTIFY,
    FIN_CHECK_ACCESS, /* the integration's access rules (access.c) */
    FIN_LINK_USER,    /* user, identity, tokens and session in one transaction */
    FIN_DONE,
    FIN_FAILED,
} fin_state_t;

typedef struct {
    broker_worker_t *w;
    const Portico__Broker__FinishLoginRequest *in;
    int oauth_version;                        /* 1 when the callback carried oauth_token */
    Portico__Registry__PendingLogin *pending; /* owned by consumed */
    Portico__Registry__ConsumePendingReply *consumed;
    /* The integration and its secrets: those that came with the pending
     * login, or integ when the registry did not send them. */
    const Portico__Registry__Integration *integration;
    const Portico__Registry__IntegrationSecrets *secrets;
    Portico__Registry__GetIntegrationReply *integ;
    /* What login.exchange answered; its tokens move to tokens / o1_tokens. */
    Portico__Bitbucket__LoginExchangeReply *exchanged;
    Portico__Bitbucket__TokenReply *tokens;          /* OAuth 2 */
    Portico__Bitbucket__OAuth1TokenReply *o1_tokens; /* OAuth 1 access token and secret */
    Portico__Registry__LoginReply *login;
    broker_identity_t who;
    bool audit; /* the failure involved a real pending login: record it */
    /* The pending login as read (keep): user.login deletes it in the
     * login's transaction, or a failure burns it (login_pending_burn). */
    bool kept;
    Portico__Registry__ConsumePendingRequest finish;
    uint8_t finish_state[32], finish_browser[32];
    bus_error_t err;
} fin_ctx_t;

fin_state_t login_fail(fin_ctx_t *c, int code, int detail, const char *message);
/* Ask the registry for the pending login q names. A login that can still
 * succeed is only read (keep) and remembered in c->finish for user.login,
 * which deletes it in its own transaction; one that will fail anyway (a
 * denial, an error on the callback) is deleted now. 0, or -1 with c->err. */
int login_pending_read(fin_ctx_t *c, Portico__Registry__ConsumePendingRequest *q, bool can_succeed);
/* The browser binding to ask the registry with. Without a binding cookie
 * (another browser, or the cookie was cleared after a login that worked)
 * it is a random hash that matches no login, so the registry still says
 * "unknown" for a replay and "browser" for a login waiting for the browser
 * that started it. scratch holds that random hash. 0, or -1 on failure. */
int login_browser_hash(const fin_ctx_t *c, uint8_t scratch[32], ProtobufCBinaryData *out);
/* Point c->integration and c->secrets at the integration that came with the
 * pending login, or load it (with secrets) when it did not. 0, or -1 with
 * c->err set (unknown or disabled integration). */
int login_integration(fin_ctx_t *c);
/* The registry's answer to pending.consume, reworded for the callback page. */
fin_state_t login_consume_failed(fin_ctx_t *c);

#endif
