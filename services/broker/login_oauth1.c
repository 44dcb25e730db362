/* The OAuth 1.0a legs of the login (Bitbucket older than 7.21), as steps of
 * the state machines in login.c:
 *
 *   leg 1  O1_REQUEST_TOKEN  a request token, signed with the integration's
 *                            consumer key and RSA private key
 *   leg 2                    the user authorizes it in Bitbucket, which
 *                            redirects to the callback with oauth_token and
 *                            oauth_verifier (or oauth_verifier=denied)
 *   leg 3  O1_ACCESS_TOKEN   the request token and verifier for an access
 *                            token and its secret
 *
 * The request token is the only key to the pending login (an OAuth 1
 * callback carries no state), so the registry stores only its SHA-256 as
 * the lookup key and the token and secret encrypted. The private key, the
 * secrets and the tokens never go into a log line or an error message:
 * the bitbucket service signs, and its errors name only the oauth_problem. */
#include "login_oauth1.h"

#include "crypto.h"
#include "log.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The registry keeps request tokens and verifiers up to this long. */
#define MAX_O1_TOKEN_LEN 512

static void s_wipe_tokens(Portico__Bitbucket__OAuth1TokenReply **t)
{
    if (!*t)
        return;
    oauth2_wipe((*t)->token);
    oauth2_wipe((*t)->token_secret);
    protobuf_c_message_free_unpacked(&(*t)->base, NULL);
    *t = NULL;
}

/* An integration without its key pair cannot be used for OAuth 1. */
static int s_check_key(const Portico__Registry__Integration *in, const Portico__Registry__IntegrationSecrets *secrets,
                       bus_error_t *err)
{
    if (in->oauth_version != 1) {
        bus_error_set(err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(OAUTH_VERSION),
                      "this integration no longer uses OAuth 1: start the sign-in again");
        return -1;
    }
    if (!in->consumer_key[0] || !secrets || !secrets->private_key_pem[0]) {
        bus_error_set(err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(OAUTH1_KEYS),
                      "this OAuth 1 integration has no consumer key or key pair: ask an admin to recreate it");
        return -1;
    }
    return 0;
}

/* The private key is needed only for OAuth 1, so it is fetched only then. */
static int s_load_key(broker_worker_t *w, int64_t integration_id, Portico__Registry__GetIntegrationReply **integ,
                      bus_error_t *err)
{
    broker_integration_free(integ);
    if (broker_integration_load(w, integration_id, true, integ, err) < 0)
        return -1;
    return s_check_key((*integ)->integration, (*integ)->secrets, err);
}

/* A failed oauth1.* call, reworded: what the oauth_problem asks of whom. */
static void s_explain(bus_error_t *err, const char *base_url)
{
    broker_explain_bitbucket_error(err, base_url);
    if (err->code == PORTICO__ERROR_CODE__UPSTREAM && err->detail == DETAIL(NO_OAUTH1))
        snprintf(err->message, sizeof err->message,
                 "%s has no OAuth 1 endpoints: check the Base URL, including a context path such as /bitbucket",
                 base_url);
}

/* ---- login.start ---- */

start_state_t login_o1_start_load_key(start_ctx_t *c)
{
    return s_load_key(c->w, c->in->integration_id, &c->integ, &c->err) < 0 ? START_FAILED : START_O1_REQUEST_TOKEN;
}

start_state_t login_o1_start_request_token(start_ctx_t *c)
{
    const Portico__Registry__Integration *in = c->integ->integration;
    if (oauth2_redirect_uri(broker_cfg.public_url, in->id, c->redirect_uri, sizeof c->redirect_uri) < 0) {
        bus_error_set(&c->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "the callback URL is too long");
        return START_FAILED;
    }
    Portico__Bitbucket__Conn conn;
    broker_conn_init(&conn, in);
    Portico__Bitbucket__OAuth1RequestTokenRequest q = PORTICO__BITBUCKET__OAUTH1_REQUEST_TOKEN_REQUEST__INIT;
    q.conn = &conn;
    q.consumer_key = in->consumer_key;
    q.private_key_pem = c->integ->secrets->private_key_pem;
    q.callback = c->redirect_uri;
    if (broker_bitbucket_call(c->w, &bitbucket_m_oauth1_request_token, &q.base, (ProtobufCMessage **)&c->request,
                              &c->err) < 0) {
        s_explain(&c->err, in->base_url);
        /* A link that is not finished is the admin's to fix: leave a trace
         * where admins look, not only on the user's error page. */
        oauth1_problem_t kind = oauth1_problem_kind(c->err.detail);
        if (kind == OAUTH1_PROBLEM_LINK || kind == OAUTH1_PROBLEM_CLOCK) {
            char object[48];
            snprintf(object, sizeof object, "integration:%" PRId64, in->id);
            broker_audit(c->w, "", "login.failed", object, c->in->addr, bus_detail_name(c->err.detail));
        }
        return START_FAILED;
    }
    if (!c->request->token[0] || strlen(c->request->token) > MAX_O1_TOKEN_LEN ||
        strlen(c->request->token_secret) > MAX_O1_TOKEN_LEN) {
        bus_error_set(&c->err, PORTICO__ERROR_CODE__UPSTREAM, DETAIL(NO_TOKEN),
                      "Bitbucket answered without a usable request token");
        return START_FAILED;
    }
    if (oauth1_authorize_url(in->base_url, c->request->token, c->authorize_url, sizeof c->authorize_url) < 0) {
        bus_error_set(&c->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "the authorization URL is too long");
        return START_FAILED;
    }
    return START_O1_STORE_PENDING;
}

start_state_t login_o1_start_store(start_ctx_t *c)
{
    /* No state hash: the request token is the key (the registry stores
     * its SHA-256), so an OAuth 2 callback can never consume this login. */
    Portico__Registry__PendingLogin p = PORTICO__REGISTRY__PENDING_LOGIN__INIT;
    p.integration_id = c->integ->integration->id;
    p.request_token = c->request->token;
    p.request_token_secret = c->request->token_secret;
    p.browser_hash = c->in->browser_hash;
    p.return_to = c->return_to;
    p.ttl_seconds = (int32_t)broker_cfg.pending_ttl_s;
    Portico__Registry__CreatePendingRequest q = PORTICO__REGISTRY__CREATE_PENDING_REQUEST__INIT;
    q.pending = &p;
    if (broker_registry_call(c->w, &registry_m_pending_create, &q.base, NULL, &c->err) < 0)
        return START_FAILED;
    return START_STARTED;
}

void login_o1_start_cleanup(start_ctx_t *c)
{
    s_wipe_tokens(&c->request);
}

/* ---- login.finish ---- */

fin_state_t login_o1_consume(fin_ctx_t *c)
{
    const Portico__Broker__FinishLoginRequest *in = c->in;
    c->oauth_version = 1;
    if (strlen(in->oauth_token) > MAX_O1_TOKEN_LEN)
        return login_fail(c, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(STATE_UNKNOWN),
                          "this sign-in link has expired or was already used: start again");
    uint8_t unmatchable[32];
    ProtobufCBinaryData browser_hash;
    if (login_browser_hash(c, unmatchable, &browser_hash) < 0)
        return login_fail(c, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "could not make random values");
    Portico__Registry__ConsumePendingRequest q = PORTICO__REGISTRY__CONSUME_PENDING_REQUEST__INIT;
    q.request_token = in->oauth_token;
    q.browser_hash = browser_hash;
    q.integration_id = in->integration_id;
    q.with_integration = true;
    bool can_succeed = !oauth1_verifier_denied(in->oauth_verifier) && in->oauth_verifier[0] &&
                       strlen(in->oauth_verifier) <= MAX_O1_TOKEN_LEN;
    if (login_pending_read(c, &q, can_succeed) < 0)
        return login_consume_failed(c);
    c->pending = c->consumed->pending;
    if (!c->pending || !c->pending->request_token[0])
        return login_fail(c, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(STATE_UNKNOWN),
                          "this sign-in link has expired or was already used: start again");
    c->audit = true;
    if (c->pending->integration_id != in->integration_id)
        return login_fail(c, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(INTEGRATION),
                          "this sign-in was started for another Bitbucket integration: start again");
    /* A denial or a broken answer consumed the login already: it cannot
     * be replayed. */
    if (oauth1_verifier_denied(in->oauth_verifier))
        return FIN_O1_DENIED;
    if (!in->oauth_verifier[0] || strlen(in->oauth_verifier) > MAX_O1_TOKEN_LEN)
        return login_fail(c, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(VERIFIER_MISSING),
                          "the answer from Bitbucket carried no verifier: start the sign-in again");
    return FIN_O1_LOAD_KEY;
}

fin_state_t login_o1_denied(fin_ctx_t *c)
{
    /* Bitbucket would answer the access-token request with
     * permission_denied; there is nothing to ask it. */
    return login_fail(c, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(DENIED), "you declined access in Bitbucket");
}

fin_state_t login_o1_load_key(fin_ctx_t *c)
{
    if (login_integration(c) < 0 || s_check_key(c->integration, c->secrets, &c->err) < 0)
        return FIN_FAILED;
    return FIN_O1_ACCESS_TOKEN;
}

fin_state_t login_o1_access_token(fin_ctx_t *c)
{
    const Portico__Registry__Integration *in = c->integration;
    Portico__Bitbucket__Conn conn;
    broker_conn_init(&conn, in);
    Portico__Bitbucket__OAuth1Credentials cred = PORTICO__BITBUCKET__OAUTH1_CREDENTIALS__INIT;
    cred.consumer_key = in->consumer_key;
    cred.private_key_pem = c->secrets->private_key_pem;
    cred.token = c->pending->request_token;
    cred.token_secret = c->pending->request_token_secret;
    Portico__Bitbucket__OAuth1AccessTokenRequest q = PORTICO__BITBUCKET__OAUTH1_ACCESS_TOKEN_REQUEST__INIT;
    q.conn = &conn;
    q.credentials = &cred;
    q.verifier = (char *)(uintptr_t)c->in->oauth_verifier;
    /* The access token, whoami and the user in one call (login.exchange). */
    Portico__Bitbucket__LoginExchangeRequest x = PORTICO__BITBUCKET__LOGIN_EXCHANGE_REQUEST__INIT;
    x.oauth1 = &q;
    if (broker_bitbucket_call_requests(c->w, &bitbucket_m_login_exchange, &x.base, 3,
                                       (ProtobufCMessage **)&c->exchanged, &c->err) < 0) {
        if (c->err.detail == DETAIL(PERMISSION_DENIED))
            return login_o1_denied(c);
        if (c->err.detail == DETAIL(TOKEN_REJECTED) || c->err.detail == DETAIL(TOKEN_EXPIRED))
            return login_fail(c, PORTICO__ERROR_CODE__BAD_REQUEST, c->err.detail,
                              "Bitbucket no longer accepts this sign-in (it was already used or took too long): "
                              "start again");
        s_explain(&c->err, in->base_url);
        return FIN_FAILED;
    }
    c->o1_tokens = c->exchanged->oauth1_tokens;
    c->exchanged->oauth1_tokens = NULL;
    if (!c->o1_tokens || !c->o1_tokens->token[0])
        return login_fail(c, PORTICO__ERROR_CODE__UPSTREAM, DETAIL(NO_TOKEN), "Bitbucket answered without a token");
    return FIN_IDENTIFY;
}

void login_o1_finish_cleanup(fin_ctx_t *c)
{
    if (c->pending) {
        oauth2_wipe(c->pending->request_token);
        oauth2_wipe(c->pending->request_token_secret);
    }
    s_wipe_tokens(&c->o1_tokens);
}
