/* The login, as two explicit state machines for both OAuth versions, and
 * the broker's one method table. The OAuth 1 steps are in login_oauth1.c.
 *
 * login.start (the browser is about to leave for Bitbucket):
 *
 *   MAKE_SECRETS ─▶ STORE_PENDING ─┬─ stored ─▶ AUTHORIZE_URL ──────────┬─▶ STARTED
 *                                  └─ not stored ─▶ CHECK_INTEGRATION   │
 *                                       └─ OAuth 1 ─▶ O1_LOAD_KEY       │
 *                                          ─▶ O1_REQUEST_TOKEN          │
 *                                          ─▶ O1_STORE_PENDING ─────────┘
 *
 *   The pending login goes to the registry, so whichever broker worker
 *   receives the callback can finish. OAuth 2: SHA-256 of state, PKCE
 *   verifier; the registry stores it only when the integration is enabled,
 *   uses OAuth 2 and has a client id, and answers with the integration in
 *   the same call (one round trip for the usual case). Otherwise
 *   CHECK_INTEGRATION says why, or goes on with OAuth 1: the request token
 *   and its secret (a request token signed with the integration's private
 *   key, oauth_callback = the integration's callback URL). Both: SHA-256 of
 *   the browser-binding cookie, integration, return path, expiry.
 *
 * login.finish (the browser is back on /oauth/callback/{id}):
 *
 *   CONSUME ─┬─ OAuth 2, error= ─▶ CALLBACK_ERROR ─────────────▶ FAILED
 *            ├─ OAuth 2 ─▶ LOAD_CLIENT ─▶ EXCHANGE ──────────────┐
 *            ├─ OAuth 1, oauth_verifier=denied ─▶ O1_DENIED ─▶ FAILED
 *            └─ OAuth 1 ─▶ O1_LOAD_KEY ─▶ O1_ACCESS_TOKEN ───────┤
 *                                                                ▼
 *                      IDENTIFY ─▶ CHECK_ACCESS ─▶ LINK_USER ─▶ DONE
 *                                    └─ refused ─▶ FAILED (no account)
 *
 *   The integration and its secrets come with the consumed pending login
 *   (LOAD_CLIENT and O1_LOAD_KEY only check them). LINK_USER records the
 *   user and identity, stores the tokens and starts the browser's new
 *   session (the web sends only the SHA-256 of its cookie) in one registry
 *   transaction.
 *
 *   The callback says which: OAuth 2 brings state (and code or error),
 *   OAuth 1 brings oauth_token and oauth_verifier. CONSUME is the single
 *   use of the pending login, found by the hash of state or of the request
 *   token: the registry deletes it as it hands it out, and refuses one
 *   that belongs to another browser or another integration without
 *   deleting it. The code (or verifier) is exchanged right after
 *   (Bitbucket's codes live about 10 s). Every step may end in FAILED with
 *   an error whose detail tells the web which page to show. */
#include "login_oauth1.h"

#include "access.h"
#include "login_steps.h"

#include "crypto.h"
#include "log.h"
#include "url.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STATE_LEN 512
#define MAX_CODE_LEN 2048
#define DEFAULT_RETURN_TO LOGIN_DEFAULT_RETURN_TO

/* ---- login.start ---- */

static start_state_t s_start_secrets(start_ctx_t *c)
{
    if (c->in->browser_hash.len != 32) {
        bus_error_set(&c->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(BROWSER), "the browser binding is missing");
        return START_FAILED;
    }
    if (c->in->integration_id <= 0) {
        bus_error_set(&c->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(INTEGRATION_UNKNOWN),
                      "there is no such integration");
        return START_FAILED;
    }
    if (crypto_random_token(BROKER_SECRET_BYTES, c->state, sizeof c->state) < 0 ||
        crypto_random_token(BROKER_SECRET_BYTES, c->verifier, sizeof c->verifier) < 0 ||
        oauth2_challenge(c->verifier, c->challenge, sizeof c->challenge) < 0) {
        bus_error_set(&c->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "could not make random values");
        return START_FAILED;
    }
    return START_STORE_PENDING;
}

static start_state_t s_start_store(start_ctx_t *c)
{
    uint8_t state_hash[32];
    crypto_sha256(c->state, strlen(c->state), state_hash);
    Portico__Registry__PendingLogin p = PORTICO__REGISTRY__PENDING_LOGIN__INIT;
    p.state_hash.data = state_hash;
    p.state_hash.len = sizeof state_hash;
    p.integration_id = c->in->integration_id;
    p.code_verifier = c->verifier;
    p.browser_hash = c->in->browser_hash;
    p.return_to = c->return_to;
    p.ttl_seconds = (int32_t)broker_cfg.pending_ttl_s;
    Portico__Registry__CreatePendingRequest q = PORTICO__REGISTRY__CREATE_PENDING_REQUEST__INIT;
    q.pending = &p;
    q.oauth2_integration = true;
    if (broker_registry_call(c->w, &registry_m_pending_create, &q.base, (ProtobufCMessage **)&c->created, &c->err) <
        0) {
        if (c->err.code == PORTICO__ERROR_CODE__NOT_FOUND)
            bus_error_set(&c->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(INTEGRATION_UNKNOWN),
                          "there is no such integration");
        return START_FAILED;
    }
    if (!c->created->integration) {
        bus_error_set(&c->err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(INTEGRATION_UNKNOWN),
                      "there is no such integration");
        return START_FAILED;
    }
    return c->created->stored ? START_AUTHORIZE_URL : START_CHECK_INTEGRATION;
}

/* Nothing was stored: say why, or go on with OAuth 1. */
static start_state_t s_start_check(start_ctx_t *c)
{
    const Portico__Registry__Integration *in = c->created->integration;
    if (!in->enabled) {
        bus_error_set(&c->err, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(INTEGRATION_DISABLED),
                      "this integration is disabled");
        return START_FAILED;
    }
    if (in->oauth_version == 1)
        return START_O1_LOAD_KEY;
    if (in->oauth_version != 2) {
        bus_error_set(&c->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(OAUTH_VERSION),
                      "this integration uses an OAuth version Portico does not know");
        return START_FAILED;
    }
    if (!in->client_id[0]) {
        bus_error_set(&c->err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(CLIENT_ID),
                      "this integration has no Client ID: ask an admin to complete it");
        return START_FAILED;
    }
    bus_error_set(&c->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "the sign-in could not be recorded");
    return START_FAILED;
}

static start_state_t s_start_authorize_url(start_ctx_t *c)
{
    const Portico__Registry__Integration *in = c->created->integration;
    if (oauth2_redirect_uri(broker_cfg.public_url, in->id, c->redirect_uri, sizeof c->redirect_uri) < 0 ||
        oauth2_authorize_url(in->base_url, in->client_id, c->redirect_uri, c->state, c->challenge, c->authorize_url,
                             sizeof c->authorize_url) < 0) {
        bus_error_set(&c->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "the authorization URL is too long");
        return START_FAILED;
    }
    return START_STARTED;
}

void broker_login_start(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    start_ctx_t c;
    memset(&c, 0, sizeof c);
    c.w = ctx;
    c.in = (const Portico__Broker__StartLoginRequest *)msg;
    /* The web checked it already; a second look costs nothing. */
    snprintf(c.return_to, sizeof c.return_to, "%s",
             url_is_local_path(c.in->return_to) ? c.in->return_to : DEFAULT_RETURN_TO);

    start_state_t st = START_MAKE_SECRETS;
    while (st != START_STARTED && st != START_FAILED) {
        switch (st) {
        case START_MAKE_SECRETS:
            st = s_start_secrets(&c);
            break;
        case START_STORE_PENDING:
            st = s_start_store(&c);
            break;
        case START_CHECK_INTEGRATION:
            st = s_start_check(&c);
            break;
        case START_AUTHORIZE_URL:
            st = s_start_authorize_url(&c);
            break;
        case START_O1_LOAD_KEY:
            st = login_o1_start_load_key(&c);
            break;
        case START_O1_REQUEST_TOKEN:
            st = login_o1_start_request_token(&c);
            break;
        case START_O1_STORE_PENDING:
            st = login_o1_start_store(&c);
            break;
        default:
            st = START_FAILED;
            break;
        }
    }
    if (st == START_STARTED) {
        Portico__Broker__StartLoginReply out = PORTICO__BROKER__START_LOGIN_REPLY__INIT;
        out.authorize_url = c.authorize_url;
        bus_reply_ok(reply, &out.base);
        log_debug("login started", "integration=%" PRId64 " oauth=%d", c.in->integration_id, c.request ? 1 : 2);
    } else {
        char q[100];
        log_info("login not started", "integration=%" PRId64 " code=%s detail=%s", c.in->integration_id,
                 bus_code_name(c.err.code), log_quote(bus_detail_name(c.err.detail), q, sizeof q));
        broker_reply_bus_error(reply, &c.err);
    }
    login_o1_start_cleanup(&c);
    if (c.created)
        protobuf_c_message_free_unpacked(&c.created->base, NULL);
    broker_integration_free(&c.integ);
    explicit_bzero(c.state, sizeof c.state);
    explicit_bzero(c.verifier, sizeof c.verifier);
    explicit_bzero(c.authorize_url, sizeof c.authorize_url);
}

/* ---- login.finish ---- */

static const char *const s_fin_names[] = {"consume",     "callback_error",  "load_client", "exchange",     "o1_denied",
                                          "o1_load_key", "o1_access_token", "identify",    "check_access", "link_user",
                                          "done",        "failed"};

/* A login that was only read and then failed is used up all the same: a
 * replayed callback finds nothing. */
static void s_pending_burn(fin_ctx_t *c)
{
    bus_error_t err;
    Portico__Registry__ConsumePendingReply *gone = NULL;
    if (broker_registry_call(c->w, &registry_m_pending_consume, &c->finish.base, (ProtobufCMessage **)&gone, &err) ==
        0) {
        if (gone->pending)
            oauth2_wipe(gone->pending->code_verifier);
        protobuf_c_message_free_unpacked(&gone->base, NULL);
    }
}

static fin_state_t s_fin_consume(fin_ctx_t *c)
{
    const Portico__Broker__FinishLoginRequest *in = c->in;
    if (!in->state[0] && in->oauth_token[0])
        return login_o1_consume(c);
    c->oauth_version = 2;
    if (!in->state[0])
        return login_fail(c, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(STATE_MISSING),
                          "the answer from Bitbucket carried no state: start the sign-in again");
    if (strlen(in->state) > MAX_STATE_LEN)
        return login_fail(c, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(STATE_UNKNOWN),
                          "this sign-in link has expired or was already used: start again");
    uint8_t unmatchable[32];
    ProtobufCBinaryData browser_hash;
    if (login_browser_hash(c, unmatchable, &browser_hash) < 0)
        return login_fail(c, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "could not make random values");
    uint8_t state_hash[32];
    crypto_sha256(in->state, strlen(in->state), state_hash);
    Portico__Registry__ConsumePendingRequest q = PORTICO__REGISTRY__CONSUME_PENDING_REQUEST__INIT;
    q.state_hash.data = state_hash;
    q.state_hash.len = sizeof state_hash;
    q.browser_hash = browser_hash;
    q.integration_id = in->integration_id;
    q.with_integration = true;
    bool can_succeed = !in->error[0] && in->code[0] && strlen(in->code) <= MAX_CODE_LEN;
    if (login_pending_read(c, &q, can_succeed) < 0)
        return login_consume_failed(c);
    c->pending = c->consumed->pending;
    if (!c->pending)
        return login_fail(c, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(STATE_UNKNOWN),
                          "this sign-in link has expired or was already used: start again");
    c->audit = true;
    /* The registry already compared these; a second look is cheap. */
    if (c->pending->integration_id != in->integration_id)
        return login_fail(c, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(INTEGRATION),
                          "this sign-in was started for another Bitbucket integration: start again");
    if (in->error[0])
        return FIN_CALLBACK_ERROR;
    if (!in->code[0] || strlen(in->code) > MAX_CODE_LEN)
        return login_fail(c, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(CODE_MISSING),
                          "the answer from Bitbucket carried no authorization code: start the sign-in again");
    return FIN_LOAD_CLIENT;
}

static fin_state_t s_fin_callback_error(fin_ctx_t *c)
{
    const char *error = oauth2_callback_error(c->in->error);
    if (!strcmp(error, "access_denied"))
        return login_fail(c, PORTICO__ERROR_CODE__FORBIDDEN, DETAIL(DENIED), "you declined access in Bitbucket");
    char text[200];
    snprintf(text, sizeof text, "Bitbucket did not complete the sign-in (%s)", error);
    return login_fail(c, PORTICO__ERROR_CODE__UPSTREAM, bus_detail_parse(error, DETAIL(PROVIDER_ERROR)), text);
}

static fin_state_t s_fin_load_client(fin_ctx_t *c)
{
    if (login_integration(c) < 0)
        return FIN_FAILED;
    if (c->integration->oauth_version != 2)
        return login_fail(c, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(OAUTH_VERSION),
                          "this integration no longer uses OAuth 2: start the sign-in again");
    return FIN_EXCHANGE;
}

/* The web asked for what the account page shows, and the login returns
 * there. */
static bool s_for_account(const fin_ctx_t *c)
{
    const char *to = url_is_local_path(c->pending->return_to) ? c->pending->return_to : DEFAULT_RETURN_TO;
    return c->in->account_repositories > 0 && !strcmp(to, "/account");
}

/* The exchange, whoami, the user and (for the account page) the first page
 * of repositories, in one call to the Bitbucket service (login.exchange). */
static fin_state_t s_fin_exchange(fin_ctx_t *c)
{
    const Portico__Registry__Integration *in = c->integration;
    char redirect_uri[700];
    if (oauth2_redirect_uri(broker_cfg.public_url, in->id, redirect_uri, sizeof redirect_uri) < 0)
        return login_fail(c, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "the callback URL is too long");
    Portico__Bitbucket__Conn conn;
    broker_conn_init(&conn, in);
    Portico__Bitbucket__TokenRequest q = PORTICO__BITBUCKET__TOKEN_REQUEST__INIT;
    q.conn = &conn;
    q.grant_type = "authorization_code";
    q.client_id = in->client_id;
    q.client_secret = c->secrets ? c->secrets->client_secret : "";
    q.redirect_uri = redirect_uri;
    q.code = c->in->code;
    q.code_verifier = c->pending->code_verifier;
    Portico__Bitbucket__LoginExchangeRequest x = PORTICO__BITBUCKET__LOGIN_EXCHANGE_REQUEST__INIT;
    x.oauth2 = &q;
    /* Listed with the new token before user.login says whether the account
     * page shows this identity: used only when it does (s_first_page). */
    if (s_for_account(c))
        x.repos_limit =
            c->in->account_repositories > BROKER_REPOS_MAX_LIMIT ? BROKER_REPOS_MAX_LIMIT : c->in->account_repositories;
    if (broker_bitbucket_call_requests(c->w, &bitbucket_m_login_exchange, &x.base, x.repos_limit ? 4 : 3,
                                       (ProtobufCMessage **)&c->exchanged, &c->err) < 0) {
        if (c->err.code == PORTICO__ERROR_CODE__UNAUTHORIZED && c->err.detail == DETAIL(INVALID_CLIENT))
            return login_fail(c, PORTICO__ERROR_CODE__UNAUTHORIZED, DETAIL(INVALID_CLIENT),
                              "Bitbucket refused Portico's client credentials: ask an admin to check the "
                              "integration's Client Secret");
        if (c->err.code == PORTICO__ERROR_CODE__UNAUTHORIZED || c->err.code == PORTICO__ERROR_CODE__BAD_REQUEST)
            return login_fail(c, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(INVALID_GRANT),
                              "Bitbucket refused the sign-in code (it is valid for a few seconds only): start again");
        broker_explain_bitbucket_error(&c->err, in->base_url);
        return FIN_FAILED;
    }
    /* The tokens are ours now (wiped in s_fin_cleanup). */
    c->tokens = c->exchanged->tokens;
    c->exchanged->tokens = NULL;
    if (!c->tokens || !c->tokens->access_token[0])
        return login_fail(c, PORTICO__ERROR_CODE__UPSTREAM, DETAIL(NO_TOKEN), "Bitbucket answered without a token");
    return FIN_IDENTIFY;
}

static fin_state_t s_fin_identify(fin_ctx_t *c)
{
    Portico__Bitbucket__Conn conn;
    broker_conn_init(&conn, c->integration);
    Portico__Bitbucket__Auth auth = PORTICO__BITBUCKET__AUTH__INIT;
    Portico__Bitbucket__OAuth1Credentials cred;
    if (c->oauth_version == 1)
        broker_oauth1_auth(&auth, &cred, c->integration, c->secrets, c->o1_tokens->token, c->o1_tokens->token_secret);
    else
        auth.bearer = c->tokens->access_token;
    if (broker_identify(c->w, &conn, &auth, c->exchanged, &c->who, &c->err) < 0) {
        if (c->err.detail != DETAIL(TFA))
            broker_explain_bitbucket_error(&c->err, c->integration->base_url);
        return FIN_FAILED;
    }
    return FIN_CHECK_ACCESS;
}

static fin_state_t s_fin_link_user(fin_ctx_t *c)
{
    Portico__Registry__Identity id = PORTICO__REGISTRY__IDENTITY__INIT;
    id.integration_id = c->integration->id;
    id.bb_user_id = c->who.bb_user_id;
    id.username = c->who.username;
    id.slug = c->who.slug;
    id.display_name = c->who.display_name;
    id.email = c->who.email;
    Portico__Registry__Tokens t = PORTICO__REGISTRY__TOKENS__INIT;
    if (c->oauth_version == 1) {
        /* No refresh token: the pair lasts until oauth_expires_in, or until
         * revoked when Bitbucket did not say. */
        t.access_token = c->o1_tokens->token;
        t.token_secret = c->o1_tokens->token_secret;
        t.expires_at = c->o1_tokens->expires_in > 0 ? bus_now_ms() / 1000 + c->o1_tokens->expires_in : 0;
    } else {
        t.access_token = c->tokens->access_token;
        t.refresh_token = c->tokens->refresh_token;
        t.expires_at = c->tokens->expires_in > 0 ? bus_now_ms() / 1000 + c->tokens->expires_in : 0;
        t.scope = c->tokens->scope;
    }
    Portico__Registry__CreateSessionRequest session = PORTICO__REGISTRY__CREATE_SESSION_REQUEST__INIT;
    session.token_hash = c->in->session_hash;
    session.idle_seconds = c->in->session_idle_seconds;
    session.absolute_seconds = c->in->session_absolute_seconds;
    session.addr = c->in->addr;
    Portico__Registry__LoginRequest q = PORTICO__REGISTRY__LOGIN_REQUEST__INIT;
    q.identity = &id;
    q.addr = c->in->addr;
    q.tokens = &t;
    q.session = c->in->session_hash.len ? &session : NULL;
    /* The web keeps the account for the page after the login. */
    q.brief = !s_for_account(c);
    q.setup_session_hash = c->in->setup_session_hash;
    q.pending = &c->finish;
    if (broker_registry_call(c->w, &registry_m_user_login, &q.base, (ProtobufCMessage **)&c->login, &c->err) < 0)
        return FIN_FAILED;
    if (!c->login->user || c->login->identity_id <= 0)
        return login_fail(c, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "the account could not be recorded");
    return FIN_DONE;
}

/* The first page of the account page's repositories, as login.exchange
 * listed it with the token the login just got, when the account page shows
 * this identity's (the user's first). Anything else, or a page that could
 * not be listed, leaves the page to ask for them itself. */
static int s_first_page(fin_ctx_t *c, Portico__Bitbucket__ListReposReply **list)
{
    const Portico__Registry__User *u = c->login->user;
    if (c->oauth_version != 2 || !c->exchanged || !c->exchanged->repositories || !u->n_identities ||
        !u->identities[0] || u->identities[0]->integration_id != c->integration->id)
        return -1;
    *list = c->exchanged->repositories;
    c->exchanged->repositories = NULL;
    return 0;
}

static void s_fin_cleanup(fin_ctx_t *c)
{
    login_o1_finish_cleanup(c);
    if (c->pending)
        oauth2_wipe(c->pending->code_verifier);
    if (c->consumed && c->consumed->secrets) {
        oauth2_wipe(c->consumed->secrets->client_secret);
        oauth2_wipe(c->consumed->secrets->private_key_pem);
    }
    if (c->consumed)
        protobuf_c_message_free_unpacked(&c->consumed->base, NULL);
    if (c->tokens) {
        oauth2_wipe(c->tokens->access_token);
        oauth2_wipe(c->tokens->refresh_token);
        protobuf_c_message_free_unpacked(&c->tokens->base, NULL);
    }
    if (c->login)
        protobuf_c_message_free_unpacked(&c->login->base, NULL);
    if (c->exchanged)
        protobuf_c_message_free_unpacked(&c->exchanged->base, NULL);
    broker_integration_free(&c->integ);
}

void broker_login_finish(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    fin_ctx_t c;
    memset(&c, 0, sizeof c);
    c.w = ctx;
    c.in = (const Portico__Broker__FinishLoginRequest *)msg;

    fin_state_t st = FIN_CONSUME;
    while (st != FIN_DONE && st != FIN_FAILED) {
        fin_state_t next;
        switch (st) {
        case FIN_CONSUME:
            next = s_fin_consume(&c);
            break;
        case FIN_CALLBACK_ERROR:
            next = s_fin_callback_error(&c);
            break;
        case FIN_LOAD_CLIENT:
            next = s_fin_load_client(&c);
            break;
        case FIN_EXCHANGE:
            next = s_fin_exchange(&c);
            break;
        case FIN_O1_DENIED:
            next = login_o1_denied(&c);
            break;
        case FIN_O1_LOAD_KEY:
            next = login_o1_load_key(&c);
            break;
        case FIN_O1_ACCESS_TOKEN:
            next = login_o1_access_token(&c);
            break;
        case FIN_IDENTIFY:
            next = s_fin_identify(&c);
            break;
        case FIN_CHECK_ACCESS:
            next = login_check_access(&c);
            break;
        case FIN_LINK_USER:
            next = s_fin_link_user(&c);
            break;
        default:
            next = FIN_FAILED;
            break;
        }
        char q[100];
        if (next == FIN_FAILED)
            log_info("login failed", "integration=%" PRId64 " step=%s code=%s detail=%s", c.in->integration_id,
                     s_fin_names[st], bus_code_name(c.err.code), log_quote(bus_detail_name(c.err.detail), q, sizeof q));
        st = next;
    }

    if (st == FIN_DONE) {
        const Portico__Registry__User *u = c.login->user;
        Portico__Broker__FinishLoginReply out = PORTICO__BROKER__FINISH_LOGIN_REPLY__INIT;
        out.user_id = u->id;
        out.is_admin = u->is_admin;
        out.return_to = url_is_local_path(c.pending->return_to) ? c.pending->return_to : DEFAULT_RETURN_TO;
        out.display_name = u->display_name[0] ? u->display_name : c.who.display_name;
        out.session_started = c.in->session_hash.len > 0;
        Portico__Broker__RepositoriesReply repos;
        Portico__Broker__Repository *items = NULL, **ptrs = NULL;
        Portico__Bitbucket__ListReposReply *list = NULL;
        if (s_for_account(&c)) {
            out.user = c.login->user;
            if (s_first_page(&c, &list) == 0 &&
                broker_repos_reply(list, c.integration, u->identities[0]->username, &repos, &items, &ptrs) == 0)
                out.repositories = &repos;
        }
        bus_reply_ok(reply, &out.base);
        free(items);
        free(ptrs);
        if (list)
            protobuf_c_message_free_unpacked(&list->base, NULL);
        log_info("login finished", "integration=%" PRId64 " user=%" PRId64 " created=%d oauth=%d", c.in->integration_id,
                 u->id, c.login->created, c.oauth_version);
    } else {
        if (c.kept && st != FIN_DONE)
            s_pending_burn(&c);
        if (c.audit) {
            char object[48];
            snprintf(object, sizeof object, "integration:%" PRId64, c.in->integration_id);
            broker_audit(c.w, c.who.username, "login.failed", object, c.in->addr,
                         c.err.detail ? bus_detail_name(c.err.detail) : bus_code_name(c.err.code));
        }
        broker_reply_bus_error(reply, &c.err);
    }
    s_fin_cleanup(&c);
}
