/* A usable access token for an identity.
 *
 * Bitbucket rotates refresh tokens: a refresh answers a new pair and kills
 * the old one, so two refreshes with the same token mean the second fails
 * and the user has to log in again. Refreshes are therefore serialised per
 * identity with the registry's lease, and whoever does not hold the lease
 * waits for the generation of the stored pair to move instead of
 * refreshing itself. The new pair is stored (token.replace) in the same
 * step that releases the lease, so the old pair is forgotten only once the
 * new one is safe.
 *
 *   READ ──fresh──────────────────────────────────────────────▶ READY
 *    │ expired, or refused by Bitbucket and still the same generation
 *    ▼
 *   LEASE ──CONFLICT──▶ WAIT ──generation moved──────────────▶ READY
 *    │ held              └──lease should have expired──▶ LEASE
 *    │ (generation moved meanwhile: token.release, use it) ──▶ READY
 *    ▼
 *   REFRESH ──new pair──▶ STORE ────────────────────────────────▶ READY
 *    └──invalid_grant──▶ REVOKE ─────────────────────────────▶ LOGIN_AGAIN
 *
 * Any other failure ends in FAILED with the error of the step. */
#include "oauth.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An access token this close to expiry is refreshed first. */
#define EXPIRY_SLACK_S 30
#define WAIT_POLL_MS 150

typedef enum {
    TOK_READ,
    TOK_LEASE,
    TOK_WAIT,
    TOK_REFRESH,
    TOK_STORE,
    TOK_REVOKE,
    TOK_READY,
    TOK_LOGIN_AGAIN,
    TOK_FAILED,
} tok_state_t;

static const char *const s_state_names[] = {"read",   "lease", "wait",        "refresh", "store",
                                            "revoke", "ready", "login_again", "failed"};

typedef struct {
    broker_worker_t *w;
    int64_t identity_id;
    const Portico__Registry__GetIntegrationReply *integ;
    bool force;                            /* the caller's token was refused by Bitbucket */
    int64_t stale_generation;              /* the generation that must not be used again */
    int64_t leased_generation;             /* what token.lease answered */
    int64_t wait_until;                    /* when a lease we wait for must have expired */
    broker_tokens_t *tok;                  /* what we hand back */
    Portico__Bitbucket__TokenReply *fresh; /* the rotated pair, until stored */
    bus_error_t *err;
} tok_ctx_t;

void broker_tokens_clear(broker_tokens_t *tok)
{
    if (!tok)
        return;
    oauth2_wipe(tok->access_token);
    oauth2_wipe(tok->refresh_token);
    oauth2_wipe(tok->token_secret);
    free(tok->access_token);
    free(tok->refresh_token);
    free(tok->token_secret);
    memset(tok, 0, sizeof *tok);
}

/* t may point into tok (a refresh that kept the refresh token): copied
 * before the old values go. */
static int s_take(broker_tokens_t *tok, const Portico__Registry__Tokens *t, int64_t generation)
{
    char *access = strdup(t && t->access_token ? t->access_token : "");
    char *refresh = strdup(t && t->refresh_token ? t->refresh_token : "");
    oauth2_wipe(tok->access_token);
    oauth2_wipe(tok->refresh_token);
    free(tok->access_token);
    free(tok->refresh_token);
    tok->access_token = access;
    tok->refresh_token = refresh;
    tok->expires_at = t ? t->expires_at : 0;
    tok->generation = generation;
    return tok->access_token && tok->refresh_token ? 0 : -1;
}

static bool s_usable(const Portico__Registry__Tokens *t)
{
    return t && t->access_token && t->access_token[0] && t->refresh_token && t->refresh_token[0];
}

static bool s_expired(const Portico__Registry__Tokens *t)
{
    return t->expires_at && t->expires_at <= bus_now_ms() / 1000 + EXPIRY_SLACK_S;
}

static void s_free_tokens_msg(ProtobufCMessage *m, Portico__Registry__Tokens *t)
{
    if (t) {
        oauth2_wipe(t->access_token);
        oauth2_wipe(t->refresh_token);
        oauth2_wipe(t->token_secret);
    }
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
}

/* Give the lease back without storing anything. */
static void s_release(tok_ctx_t *c)
{
    Portico__Registry__ReleaseTokensRequest r = PORTICO__REGISTRY__RELEASE_TOKENS_REQUEST__INIT;
    r.identity_id = c->identity_id;
    r.holder = c->w->holder;
    bus_error_t e2;
    if (broker_registry_call(c->w, &registry_m_token_release, &r.base, NULL, &e2) < 0)
        log_warn("could not release a token lease", "identity=%lld code=%s", (long long)c->identity_id,
                 bus_code_name(e2.code));
}

static tok_state_t s_login_again(tok_ctx_t *c)
{
    bus_error_set(c->err, PORTICO__ERROR_CODE__UNAUTHORIZED, DETAIL(LOGIN_AGAIN),
                  "your Bitbucket authorization has expired or was revoked: log in again");
    return TOK_LOGIN_AGAIN;
}

/* What the stored pair just read means: use it, refresh it first, or log
 * in again (none stored). */
static tok_state_t s_judge(tok_ctx_t *c, const Portico__Registry__Tokens *t, int64_t generation)
{
    tok_state_t next;
    if (!s_usable(t)) {
        next = s_login_again(c);
    } else if (c->force && generation != c->stale_generation) {
        /* Someone refreshed after our token was refused: use theirs. */
        next = s_take(c->tok, t, generation) == 0 ? TOK_READY : TOK_FAILED;
        c->tok->refreshed = true;
    } else if (c->force || s_expired(t)) {
        c->stale_generation = generation;
        next = TOK_LEASE;
    } else {
        next = s_take(c->tok, t, generation) == 0 ? TOK_READY : TOK_FAILED;
    }
    return next;
}

static tok_state_t s_read(tok_ctx_t *c)
{
    Portico__Registry__GetTokensRequest q = PORTICO__REGISTRY__GET_TOKENS_REQUEST__INIT;
    q.identity_id = c->identity_id;
    Portico__Registry__GetTokensReply *rep = NULL;
    if (broker_registry_call(c->w, &registry_m_token_get, &q.base, (ProtobufCMessage **)&rep, c->err) < 0)
        return c->err->code == PORTICO__ERROR_CODE__NOT_FOUND ? s_login_again(c) : TOK_FAILED;
    tok_state_t next = s_judge(c, rep->tokens, rep->generation);
    s_free_tokens_msg(&rep->base, rep->tokens);
    return next;
}

/* The lease outlasts the refresh it guards: the Bitbucket call (at most
 * PORTICO_BITBUCKET_TIMEOUT_MS) and the registry calls around it. A lease
 * that ran out while the refresh was still waiting for Bitbucket let another
 * worker refresh with the same refresh token: Bitbucket had rotated it, the
 * second refresh was refused, and the stored pair was deleted. */
static int s_lease_ms(void)
{
    long ms = broker_cfg.bitbucket_timeout_ms + 3 * broker_cfg.bus_timeout_ms + 1000;
    return (int)(ms < BROKER_LEASE_MS ? BROKER_LEASE_MS : ms > 600000 ? 600000 : ms);
}

static tok_state_t s_lease(tok_ctx_t *c)
{
    Portico__Registry__LeaseTokensRequest q = PORTICO__REGISTRY__LEASE_TOKENS_REQUEST__INIT;
    q.identity_id = c->identity_id;
    q.lease_ms = s_lease_ms();
    q.holder = c->w->holder;
    Portico__Registry__LeaseTokensReply *rep = NULL;
    if (broker_registry_call(c->w, &registry_m_token_lease, &q.base, (ProtobufCMessage **)&rep, c->err) < 0) {
        if (c->err->code == PORTICO__ERROR_CODE__CONFLICT) {
            log_info("waiting for a refresh in progress elsewhere", "identity=%lld", (long long)c->identity_id);
            c->wait_until = bus_now_ms() + s_lease_ms() + 500;
            return TOK_WAIT;
        }
        return c->err->code == PORTICO__ERROR_CODE__NOT_FOUND ? s_login_again(c) : TOK_FAILED;
    }
    tok_state_t next;
    c->leased_generation = rep->generation;
    if (!s_usable(rep->tokens)) {
        s_release(c);
        next = s_login_again(c);
    } else if (rep->generation != c->stale_generation && !s_expired(rep->tokens)) {
        /* A refresh finished between our read and our lease: no second
         * refresh. Give the lease back untouched. */
        next = s_take(c->tok, rep->tokens, rep->generation) == 0 ? TOK_READY : TOK_FAILED;
        c->tok->refreshed = true;
        s_release(c);
    } else {
        /* Keep the refresh token we are about to use. */
        next = s_take(c->tok, rep->tokens, rep->generation) == 0 ? TOK_REFRESH : TOK_FAILED;
    }
    s_free_tokens_msg(&rep->base, rep->tokens);
    return next;
}

static tok_state_t s_wait(tok_ctx_t *c)
{
    for (;;) {
        int64_t now = bus_now_ms();
        int64_t deadline = bus_current_deadline();
        if (deadline && deadline - now < BROKER_REPLY_MARGIN_MS + WAIT_POLL_MS) {
            bus_error_set(c->err, PORTICO__ERROR_CODE__TIMEOUT, DETAIL(REFRESH_WAIT),
                          "Bitbucket is slow to renew your authorization: try again in a moment");
            return TOK_FAILED;
        }
        if (c->w->idle)
            c->w->idle(c->w->idle_arg);
        usleep(WAIT_POLL_MS * 1000);
        Portico__Registry__GetTokensRequest q = PORTICO__REGISTRY__GET_TOKENS_REQUEST__INIT;
        q.identity_id = c->identity_id;
        Portico__Registry__GetTokensReply *rep = NULL;
        if (broker_registry_call(c->w, &registry_m_token_get, &q.base, (ProtobufCMessage **)&rep, c->err) < 0)
            return c->err->code == PORTICO__ERROR_CODE__NOT_FOUND ? s_login_again(c) : TOK_FAILED;
        tok_state_t next = TOK_WAIT;
        if (!s_usable(rep->tokens)) {
            next = s_login_again(c);
        } else if (rep->generation != c->stale_generation) {
            next = s_take(c->tok, rep->tokens, rep->generation) == 0 ? TOK_READY : TOK_FAILED;
            c->tok->refreshed = true;
        } else if (bus_now_ms() >= c->wait_until) {
            next = TOK_LEASE; /* the holder died: its lease is over */
        }
        s_free_tokens_msg(&rep->base, rep->tokens);
        if (next != TOK_WAIT)
            return next;
    }
}

static tok_state_t s_refresh(tok_ctx_t *c)
{
    const Portico__Registry__Integration *in = c->integ->integration;
    char redirect_uri[700];
    if (oauth2_redirect_uri(broker_cfg.public_url, in->id, redirect_uri, sizeof redirect_uri) < 0) {
        bus_error_set(c->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "the callback URL is too long");
        return TOK_FAILED;
    }
    Portico__Bitbucket__Conn conn;
    broker_conn_init(&conn, in);
    Portico__Bitbucket__TokenRequest q = PORTICO__BITBUCKET__TOKEN_REQUEST__INIT;
    q.conn = &conn;
    q.grant_type = "refresh_token";
    q.client_id = in->client_id;
    q.client_secret = c->integ->secrets ? c->integ->secrets->client_secret : "";
    q.redirect_uri = redirect_uri; /* Bitbucket checks it on refresh too */
    q.refresh_token = c->tok->refresh_token;
    if (broker_bitbucket_call(c->w, &bitbucket_m_oauth2_token, &q.base, (ProtobufCMessage **)&c->fresh, c->err) < 0) {
        if (c->err->code == PORTICO__ERROR_CODE__UNAUTHORIZED && c->err->detail == DETAIL(INVALID_GRANT))
            return TOK_REVOKE;
        /* Nothing was rotated when the request never got through or the
         * client was refused: let the next request try at once. An
         * unanswered request may have rotated the pair, so its lease runs out
         * on its own. */
        if ((c->err->code == PORTICO__ERROR_CODE__UNAVAILABLE &&
             (c->err->detail == DETAIL(NONE) || c->err->detail == DETAIL(UNREACHABLE))) ||
            (c->err->code == PORTICO__ERROR_CODE__UNAUTHORIZED && c->err->detail == DETAIL(INVALID_CLIENT)))
            s_release(c);
        if (c->err->code == PORTICO__ERROR_CODE__UNAUTHORIZED && c->err->detail == DETAIL(INVALID_CLIENT)) {
            bus_error_set(c->err, PORTICO__ERROR_CODE__UNAUTHORIZED, DETAIL(INVALID_CLIENT),
                          "Bitbucket refused Portico's client credentials: ask an admin to check the "
                          "integration's Client ID and Client Secret");
            return TOK_FAILED;
        }
        broker_explain_bitbucket_error(c->err, in->base_url);
        return TOK_FAILED;
    }
    if (!c->fresh->access_token[0]) {
        bus_error_set(c->err, PORTICO__ERROR_CODE__UPSTREAM, DETAIL(NO_TOKEN), "Bitbucket answered without a token");
        return TOK_FAILED;
    }
    return TOK_STORE;
}

static tok_state_t s_store(tok_ctx_t *c)
{
    Portico__Registry__Tokens t = PORTICO__REGISTRY__TOKENS__INIT;
    t.access_token = c->fresh->access_token;
    /* A provider that does not rotate keeps the refresh token we have. */
    t.refresh_token = c->fresh->refresh_token[0] ? c->fresh->refresh_token : c->tok->refresh_token;
    t.expires_at = c->fresh->expires_in > 0 ? bus_now_ms() / 1000 + c->fresh->expires_in : 0;
    t.scope = c->fresh->scope;
    Portico__Registry__ReplaceTokensRequest q = PORTICO__REGISTRY__REPLACE_TOKENS_REQUEST__INIT;
    q.identity_id = c->identity_id;
    q.holder = c->w->holder;
    q.generation = c->leased_generation;
    q.tokens = &t;
    /* Bitbucket has already rotated: the pair in hand is the only live one.
     * A registry that did not answer is asked again (twice, while the lease
     * lasts); if it still cannot store, this request uses the pair anyway. */
    bus_error_t e2;
    int rc = -1;
    bool unanswered = false;
    for (int attempt = 0; attempt < 3 && rc < 0; attempt++) {
        rc = broker_registry_call(c->w, &registry_m_token_replace, &q.base, NULL, &e2);
        if (rc < 0 && e2.code != PORTICO__ERROR_CODE__UNAVAILABLE && e2.code != PORTICO__ERROR_CODE__TIMEOUT)
            break;
        unanswered = unanswered || rc < 0;
    }
    /* A CONFLICT after an unanswered attempt: that attempt may have stored
     * the pair (the generation moved on), which is not an error. */
    if (rc < 0 && unanswered && e2.code == PORTICO__ERROR_CODE__CONFLICT)
        log_warn("refreshed tokens: an unanswered store may have stored them", "identity=%lld",
                 (long long)c->identity_id);
    else if (rc < 0)
        log_error("could not store refreshed tokens", "identity=%lld code=%s", (long long)c->identity_id,
                  bus_code_name(e2.code));
    log_info("tokens refreshed", "identity=%lld", (long long)c->identity_id);
    if (s_take(c->tok, &t, c->leased_generation + 1) < 0)
        return TOK_FAILED;
    c->tok->refreshed = true;
    return TOK_READY;
}

static tok_state_t s_revoke(tok_ctx_t *c)
{
    Portico__Registry__ReplaceTokensRequest q = PORTICO__REGISTRY__REPLACE_TOKENS_REQUEST__INIT;
    q.identity_id = c->identity_id;
    q.holder = c->w->holder;
    q.generation = c->leased_generation;
    q.revoked = true;
    bus_error_t e2;
    if (broker_registry_call(c->w, &registry_m_token_replace, &q.base, NULL, &e2) < 0)
        log_warn("could not forget refused tokens", "identity=%lld code=%s", (long long)c->identity_id,
                 bus_code_name(e2.code));
    log_info("refresh token refused by bitbucket", "identity=%lld", (long long)c->identity_id);
    return s_login_again(c);
}

static int s_run(tok_ctx_t *c0, tok_state_t st);

int broker_tokens_get(broker_worker_t *w, int64_t identity_id, const Portico__Registry__GetIntegrationReply *integ,
                      bool force, broker_tokens_t *tok, bus_error_t *err)
{
    tok_ctx_t c = {.w = w,
                   .identity_id = identity_id,
                   .integ = integ,
                   .force = force,
                   .stale_generation = force ? tok->generation : -1,
                   .tok = tok,
                   .err = err};
    return s_run(&c, TOK_READ);
}

int broker_tokens_from(broker_worker_t *w, int64_t identity_id, const Portico__Registry__GetIntegrationReply *integ,
                       const Portico__Registry__Tokens *read, int64_t generation, broker_tokens_t *tok,
                       bus_error_t *err)
{
    tok_ctx_t c = {.w = w, .identity_id = identity_id, .integ = integ, .stale_generation = -1, .tok = tok, .err = err};
    tok->refreshed = false;
    return s_run(&c, s_judge(&c, read, generation));
}

/* Walk the states from st to READY, LOGIN_AGAIN or FAILED. */
static int s_run(tok_ctx_t *c0, tok_state_t st)
{
    tok_ctx_t c = *c0;
    broker_tokens_t *tok = c.tok;
    int64_t identity_id = c.identity_id;
    bool was_refreshed = tok->refreshed;
    tok->refreshed = false;
    while (st != TOK_READY && st != TOK_LOGIN_AGAIN && st != TOK_FAILED) {
        tok_state_t next;
        switch (st) {
        case TOK_READ:
            next = s_read(&c);
            break;
        case TOK_LEASE:
            next = s_lease(&c);
            break;
        case TOK_WAIT:
            next = s_wait(&c);
            break;
        case TOK_REFRESH:
            next = s_refresh(&c);
            break;
        case TOK_STORE:
            next = s_store(&c);
            break;
        case TOK_REVOKE:
            next = s_revoke(&c);
            break;
        default:
            next = TOK_FAILED;
            break;
        }
        log_debug("token state", "identity=%lld from=%s to=%s", (long long)identity_id, s_state_names[st],
                  s_state_names[next]);
        st = next;
    }
    if (c.fresh) {
        oauth2_wipe(c.fresh->access_token);
        oauth2_wipe(c.fresh->refresh_token);
        protobuf_c_message_free_unpacked(&c.fresh->base, NULL);
    }
    tok->refreshed = tok->refreshed || was_refreshed;
    return st == TOK_READY ? 0 : -1;
}

/* ---- OAuth 1 ----
 *
 * Bitbucket's OAuth 1 access tokens have no refresh: they last until
 * oauth_expires_in (when Bitbucket said) or until revoked, and then the user
 * logs in again. So no lease, no generations: read and check. */

static int s_take_secret(broker_tokens_t *tok, const Portico__Registry__Tokens *t)
{
    oauth2_wipe(tok->token_secret);
    free(tok->token_secret);
    tok->token_secret = strdup(t->token_secret ? t->token_secret : "");
    return tok->token_secret ? 0 : -1;
}

int broker_tokens_get_oauth1(broker_worker_t *w, int64_t identity_id, broker_tokens_t *tok, bus_error_t *err)
{
    tok_ctx_t c = {.w = w, .identity_id = identity_id, .tok = tok, .err = err};
    Portico__Registry__GetTokensRequest q = PORTICO__REGISTRY__GET_TOKENS_REQUEST__INIT;
    q.identity_id = identity_id;
    Portico__Registry__GetTokensReply *rep = NULL;
    if (broker_registry_call(w, &registry_m_token_get, &q.base, (ProtobufCMessage **)&rep, err) < 0) {
        if (err->code == PORTICO__ERROR_CODE__NOT_FOUND)
            s_login_again(&c);
        return -1;
    }
    int rc = broker_tokens_from_oauth1(identity_id, rep->tokens, rep->generation, tok, err);
    s_free_tokens_msg(&rep->base, rep->tokens);
    return rc;
}

int broker_tokens_from_oauth1(int64_t identity_id, const Portico__Registry__Tokens *t, int64_t generation,
                              broker_tokens_t *tok, bus_error_t *err)
{
    tok_ctx_t c = {.identity_id = identity_id, .tok = tok, .err = err};
    int rc = -1;
    if (!t || !t->access_token || !t->access_token[0]) {
        s_login_again(&c);
    } else if (t->expires_at && t->expires_at <= bus_now_ms() / 1000) {
        log_info("oauth 1 token expired", "identity=%lld", (long long)identity_id);
        s_login_again(&c);
    } else if (s_take(tok, t, generation) == 0 && s_take_secret(tok, t) == 0) {
        rc = 0;
    } else {
        bus_error_set(err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "out of memory");
    }
    return rc;
}
