/* user.repositories: the repositories a signed-in user can read, one page of
 * Bitbucket's paging at a time, with the user's own token: OAuth 2 tokens
 * are refreshed when they have expired or Bitbucket refuses them, once;
 * OAuth 1 tokens are signed with the integration's key and never
 * refreshed. */
#include "oauth.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_list(broker_worker_t *w, const Portico__Bitbucket__Conn *conn, const Portico__Bitbucket__Auth *auth,
                  int32_t start, int32_t limit, Portico__Bitbucket__ListReposReply **out, bus_error_t *err)
{
    Portico__Bitbucket__ListReposRequest q = PORTICO__BITBUCKET__LIST_REPOS_REQUEST__INIT;
    q.conn = (Portico__Bitbucket__Conn *)(uintptr_t)conn;
    q.auth = (Portico__Bitbucket__Auth *)(uintptr_t)auth;
    q.start = start;
    q.limit = limit;
    q.permission = BROKER_SCOPE;
    return broker_bitbucket_call(w, &bitbucket_m_repos_list, &q.base, (ProtobufCMessage **)out, err);
}

/* A fresh token that Bitbucket still refuses: either the two-factor app
 * blocks OAuth (whoami then answers anonymously even though the token was
 * just issued) or the grant is gone. */
static void s_explain_refusal(broker_worker_t *w, const Portico__Bitbucket__Conn *conn,
                              const Portico__Bitbucket__Auth *auth, bus_error_t *err)
{
    broker_identity_t who;
    bus_error_t e2;
    if (broker_identify(w, conn, auth, NULL, &who, &e2) < 0 && e2.detail == DETAIL(TFA)) {
        *err = e2;
        return;
    }
    bus_error_set(err, PORTICO__ERROR_CODE__UNAUTHORIZED, DETAIL(LOGIN_AGAIN),
                  "your Bitbucket authorization has expired or was revoked: log in again");
}

static int s_list_bearer(broker_worker_t *w, const Portico__Bitbucket__Conn *conn, const char *access_token,
                         int32_t start, int32_t limit, Portico__Bitbucket__ListReposReply **out, bus_error_t *err)
{
    Portico__Bitbucket__Auth auth = PORTICO__BITBUCKET__AUTH__INIT;
    auth.bearer = (char *)(uintptr_t)access_token;
    return s_list(w, conn, &auth, start, limit, out, err);
}

int broker_repos_reply(const Portico__Bitbucket__ListReposReply *list, const Portico__Registry__Integration *in,
                       const char *bitbucket_username, Portico__Broker__RepositoriesReply *out,
                       Portico__Broker__Repository **items, Portico__Broker__Repository ***ptrs)
{
    portico__broker__repositories_reply__init(out);
    size_t n = list->n_repositories;
    *items = n ? calloc(n, sizeof **items) : NULL;
    *ptrs = n ? calloc(n, sizeof **ptrs) : NULL;
    if (n && (!*items || !*ptrs))
        return -1;
    for (size_t i = 0; i < n; i++) {
        const Portico__Bitbucket__Repository *r = list->repositories[i];
        Portico__Broker__Repository *o = &(*items)[i];
        portico__broker__repository__init(o);
        o->project_key = r->project_key;
        o->project_name = r->project_name;
        o->slug = r->slug;
        o->name = r->name;
        o->public_ = r->public_;
        o->browse_url = r->browse_url;
        o->clone_http = r->clone_http;
        o->clone_ssh = r->clone_ssh;
        (*ptrs)[i] = o;
    }
    out->n_repositories = n;
    out->repositories = *ptrs;
    out->is_last_page = list->is_last_page;
    out->next_page_start = list->is_last_page ? 0 : list->next_page_start;
    out->integration_id = in->id;
    out->integration_name = in->name;
    out->bitbucket_username = (char *)(uintptr_t)bitbucket_username;
    return 0;
}

static void s_explain_bearer_refusal(broker_worker_t *w, const Portico__Bitbucket__Conn *conn, const char *access_token,
                                     bus_error_t *err)
{
    Portico__Bitbucket__Auth auth = PORTICO__BITBUCKET__AUTH__INIT;
    auth.bearer = (char *)(uintptr_t)access_token;
    s_explain_refusal(w, conn, &auth, err);
}

/* OAuth 1: the stored token signed with the integration's key, no refresh.
 * A token Bitbucket no longer accepts means logging in again; a link or
 * clock problem is said as such. */
static int s_list_oauth1(broker_worker_t *w, const Portico__Bitbucket__Conn *conn,
                         const Portico__Registry__UserCredentialsReply *cred_in, int32_t start, int32_t limit,
                         Portico__Bitbucket__ListReposReply **out, bus_error_t *err)
{
    const Portico__Registry__GetIntegrationReply *integ = cred_in->integration;
    broker_tokens_t tok = {0};
    int rc = -1;
    if (broker_tokens_from_oauth1(cred_in->identity->id, cred_in->tokens, cred_in->generation, &tok, err) < 0)
        goto out;
    Portico__Bitbucket__Auth auth;
    Portico__Bitbucket__OAuth1Credentials cred;
    broker_oauth1_auth(&auth, &cred, integ->integration, integ->secrets, tok.access_token, tok.token_secret);
    if (s_list(w, conn, &auth, start, limit, out, err) == 0) {
        rc = 0;
        goto out;
    }
    oauth1_problem_t kind = oauth1_problem_kind(err->detail);
    if (kind == OAUTH1_PROBLEM_TOKEN)
        bus_error_set(err, PORTICO__ERROR_CODE__UNAUTHORIZED, DETAIL(LOGIN_AGAIN),
                      "your Bitbucket authorization has expired or was revoked: log in again");
    else if (err->code == PORTICO__ERROR_CODE__UNAUTHORIZED && kind == OAUTH1_PROBLEM_NONE)
        s_explain_refusal(w, conn, &auth, err);
    else
        broker_explain_bitbucket_error(err, integ->integration->base_url);
out:
    broker_tokens_clear(&tok);
    return rc;
}

/* The secrets and tokens of a user.credentials answer are wiped before
 * its memory goes back. */
static void s_credentials_free(Portico__Registry__UserCredentialsReply **cred_p)
{
    Portico__Registry__UserCredentialsReply *cred = *cred_p;
    if (!cred)
        return;
    if (cred->integration && cred->integration->secrets) {
        oauth2_wipe(cred->integration->secrets->client_secret);
        oauth2_wipe(cred->integration->secrets->private_key_pem);
    }
    if (cred->tokens) {
        oauth2_wipe(cred->tokens->access_token);
        oauth2_wipe(cred->tokens->refresh_token);
        oauth2_wipe(cred->tokens->token_secret);
    }
    protobuf_c_message_free_unpacked(&cred->base, NULL);
    *cred_p = NULL;
}

void broker_user_repositories(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply)
{
    (void)req;
    broker_worker_t *w = ctx;
    const Portico__Broker__RepositoriesRequest *in = (const Portico__Broker__RepositoriesRequest *)msg;
    Portico__Registry__UserCredentialsReply *cred = NULL;
    Portico__Bitbucket__ListReposReply *list = NULL;
    broker_tokens_t tok = {0};
    bus_error_t err = {0};
    Portico__Broker__Repository *items = NULL;
    Portico__Broker__Repository **ptrs = NULL;

    int32_t start = in->start > 0 ? in->start : 0;
    int32_t limit = in->limit > 0 ? in->limit : BROKER_REPOS_DEFAULT_LIMIT;
    if (limit > BROKER_REPOS_MAX_LIMIT)
        limit = BROKER_REPOS_MAX_LIMIT;
    bool by_session = in->session_hash.len > 0;
    if (by_session ? in->user_id != 0 : in->user_id <= 0) {
        bus_error_set(&err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(USER),
                      by_session ? "give either a user or a session, not both" : "no user given");
        goto fail;
    }

    /* The identity, its integration and its tokens in one registry call;
     * with a session, the registry checks it in the same call. */
    Portico__Registry__UserCredentialsRequest uq = PORTICO__REGISTRY__USER_CREDENTIALS_REQUEST__INIT;
    uq.user_id = in->user_id;
    uq.session_hash = in->session_hash;
    uq.integration_id = in->integration_id > 0 ? in->integration_id : 0;
    if (broker_registry_call(w, &registry_m_user_credentials, &uq.base, (ProtobufCMessage **)&cred, &err) < 0) {
        bool session_gone = err.detail == DETAIL(SESSION) || err.detail == DETAIL(SETUP_OFF);
        if (err.code == PORTICO__ERROR_CODE__NOT_FOUND && !session_gone)
            bus_error_set(&err, PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(NO_IDENTITY),
                          "this account is not linked to a Bitbucket account yet: log in with Bitbucket");
        goto fail;
    }
    if (by_session && !cred->session) {
        bus_error_set(&err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "the registry answered without the session");
        goto fail;
    }
    if (by_session && !cred->identity) {
        /* A live session with nothing to list there: the session alone. */
        Portico__Broker__RepositoriesReply only = PORTICO__BROKER__REPOSITORIES_REPLY__INIT;
        only.session = cred->session;
        only.is_last_page = true;
        bus_reply_ok(reply, &only.base);
        goto out;
    }
    const Portico__Registry__Identity *id = cred->identity;
    const Portico__Registry__GetIntegrationReply *integ = cred->integration;
    if (!id || !integ || !integ->integration) {
        bus_error_set(&err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE),
                      "the registry answered an incomplete identity");
        goto fail;
    }
    if (broker_integration_usable(integ->integration, &err) < 0)
        goto fail;
    Portico__Bitbucket__Conn conn;
    broker_conn_init(&conn, integ->integration);

    if (integ->integration->oauth_version == 1) {
        if (s_list_oauth1(w, &conn, cred, start, limit, &list, &err) < 0)
            goto fail;
    } else if (broker_tokens_from(w, id->id, integ, cred->tokens, cred->generation, &tok, &err) < 0) {
        goto fail;
    } else if (s_list_bearer(w, &conn, tok.access_token, start, limit, &list, &err) < 0) {
        if (err.code != PORTICO__ERROR_CODE__UNAUTHORIZED) {
            broker_explain_bitbucket_error(&err, integ->integration->base_url);
            goto fail;
        }
        /* Refused: the access token expired early or was revoked. */
        if (tok.refreshed || broker_tokens_get(w, id->id, integ, true, &tok, &err) < 0) {
            if (tok.refreshed && err.code == PORTICO__ERROR_CODE__UNAUTHORIZED)
                s_explain_bearer_refusal(w, &conn, tok.access_token, &err);
            goto fail;
        }
        if (s_list_bearer(w, &conn, tok.access_token, start, limit, &list, &err) < 0) {
            if (err.code == PORTICO__ERROR_CODE__UNAUTHORIZED)
                s_explain_bearer_refusal(w, &conn, tok.access_token, &err);
            else
                broker_explain_bitbucket_error(&err, integ->integration->base_url);
            goto fail;
        }
    }

    Portico__Broker__RepositoriesReply out;
    if (broker_repos_reply(list, integ->integration, id->username, &out, &items, &ptrs) < 0) {
        bus_error_set(&err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "out of memory");
        goto fail;
    }
    out.session = cred->session;
    bus_reply_ok(reply, &out.base);
    goto out;

fail:
    char q[100];
    if (err.code != PORTICO__ERROR_CODE__UNAUTHORIZED && err.code != PORTICO__ERROR_CODE__NOT_FOUND)
        log_warn("could not list repositories", "user=%lld code=%s detail=%s", (long long)in->user_id,
                 bus_code_name(err.code), log_quote(bus_detail_name(err.detail), q, sizeof q));
    broker_reply_bus_error(reply, &err);
out:
    free(items);
    free(ptrs);
    if (list)
        protobuf_c_message_free_unpacked(&list->base, NULL);
    broker_tokens_clear(&tok);
    s_credentials_free(&cred);
}
