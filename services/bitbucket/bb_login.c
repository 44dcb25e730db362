/* login.exchange (bb_login.h). The broker used to make these requests as
 * three or four bus calls in a row, each one a round trip through the bus
 * and two threads of each process for one HTTP request; the chain makes
 * them one call. Each answer is read as the single method reads it, and a
 * failure after the exchange is handed back as that step's error. */
#include "bb_login.h"

#include "bitbucket.pb-c.h"
#include "envelope.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { LX_TOKEN, LX_WHOAMI, LX_USER, LX_REPOS } lx_step_t;

typedef struct {
    const bb_login_steps_t *plans;
    lx_step_t step;
    Portico__Bitbucket__LoginExchangeRequest *req; /* our copy: the bus request is freed after prepare */
    Portico__Bitbucket__TokenReply tokens;
    Portico__Bitbucket__OAuth1TokenReply o1_tokens;
    Portico__Bitbucket__WhoAmIReply who;
    Portico__Bitbucket__User user;
    Portico__Bitbucket__ListReposReply repos;
    bool have_tokens, have_o1_tokens, have_who, have_user, have_repos;
    bus_error_t who_err, user_err; /* code OK: none */
} lx_t;

static void s_wipe(char *s)
{
    if (s)
        explicit_bzero(s, strlen(s));
}

static void s_free(void *arg)
{
    lx_t *s = arg;
    if (s->have_tokens)
        bb_token_clear(&s->tokens);
    if (s->have_o1_tokens)
        bb_oauth1_token_clear(&s->o1_tokens);
    if (s->have_who)
        bb_whoami_clear(&s->who);
    if (s->have_user)
        bb_user_clear(&s->user);
    if (s->have_repos)
        bb_repos_clear(&s->repos);
    Portico__Bitbucket__LoginExchangeRequest *q = s->req;
    if (q && q->oauth2) {
        s_wipe(q->oauth2->client_secret);
        s_wipe(q->oauth2->code);
        s_wipe(q->oauth2->code_verifier);
    }
    if (q && q->oauth1) {
        s_wipe(q->oauth1->verifier);
        if (q->oauth1->credentials) {
            s_wipe(q->oauth1->credentials->private_key_pem);
            s_wipe(q->oauth1->credentials->token);
            s_wipe(q->oauth1->credentials->token_secret);
        }
    }
    if (q)
        protobuf_c_message_free_unpacked(&q->base, NULL);
    free(s);
}

/* A deep copy of the request; the packed bytes carry secrets. */
static Portico__Bitbucket__LoginExchangeRequest *s_copy(const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return NULL;
    protobuf_c_message_pack(msg, buf);
    Portico__Bitbucket__LoginExchangeRequest *q = portico__bitbucket__login_exchange_request__unpack(NULL, n, buf);
    explicit_bzero(buf, n);
    free(buf);
    return q;
}

int bb_login_prepare(const bb_login_steps_t *steps, const ProtobufCMessage *msg, bb_plan_t *plan, bus_error_t *err)
{
    const Portico__Bitbucket__LoginExchangeRequest *m = (const Portico__Bitbucket__LoginExchangeRequest *)msg;
    if (!m->oauth2 == !m->oauth1) {
        bus_error_set(err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(CREDENTIALS),
                      "a login exchange needs either oauth2 or oauth1, not both");
        return -1;
    }
    if (m->oauth2 && (!m->oauth2->grant_type || strcmp(m->oauth2->grant_type, "authorization_code") != 0)) {
        bus_error_set(err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(GRANT_TYPE),
                      "a login exchanges an authorization_code");
        return -1;
    }
    if (m->repos_limit < 0) {
        bus_error_set(err, PORTICO__ERROR_CODE__BAD_REQUEST, DETAIL(LIMIT), "repos_limit must not be negative");
        return -1;
    }
    int rc = m->oauth2 ? steps->token(&m->oauth2->base, plan, err) : steps->o1_access(&m->oauth1->base, plan, err);
    if (rc < 0)
        return -1;
    lx_t *s = calloc(1, sizeof *s);
    if (s)
        s->req = s_copy(msg);
    if (!s || !s->req) {
        free(s);
        bus_error_set(err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "out of memory");
        return -1;
    }
    s->plans = steps;
    s->step = LX_TOKEN;
    plan->steps = s;
    plan->steps_free = s_free;
    return 0;
}

int bb_login_finish(const bb_plan_t *plan, const bb_response_t *r, bus_reply_t *reply, bus_error_t *err, char *note,
                    size_t note_size)
{
    (void)reply;
    lx_t *s = plan->steps;
    size_t skipped = 0;
    switch (s->step) {
    case LX_TOKEN:
        if (s->req->oauth1) {
            if (bb_decode_oauth1_token(r, &s->o1_tokens, err) < 0)
                return -1;
            s->have_o1_tokens = true;
            snprintf(note, note_size, "expires_in=%lld", (long long)s->o1_tokens.expires_in);
        } else {
            if (bb_decode_token(r, &s->tokens, err) < 0)
                return -1;
            s->have_tokens = true;
            snprintf(note, note_size, "expires_in=%lld", (long long)s->tokens.expires_in);
        }
        return 0;
    case LX_WHOAMI:
        if (bb_decode_whoami(r, &s->who, err) < 0)
            return -1;
        s->have_who = true;
        snprintf(note, note_size, "user_id=%lld", (long long)s->who.user_id);
        return 0;
    case LX_USER:
        if (bb_decode_user(r, &s->user, err) < 0)
            return -1;
        s->have_user = true;
        return 0;
    case LX_REPOS:
        if (bb_decode_repos(r, plan->start, &s->repos, &skipped, err) < 0)
            return -1;
        s->have_repos = true;
        snprintf(note, note_size, "repos=%zu skipped=%zu last=%d next=%d", s->repos.n_repositories, skipped,
                 (int)s->repos.is_last_page, (int)s->repos.next_page_start);
        return 0;
    }
    return -1;
}

static const Portico__Bitbucket__Conn *s_conn(const lx_t *s)
{
    return s->req->oauth2 ? s->req->oauth2->conn : s->req->oauth1->conn;
}

/* Plan the request after the one that went well: 1 planned, 0 the chain
 * ends here (a request that could not be planned is that step's error). */
static int s_plan_following(lx_t *s, bb_plan_t *plan)
{
    Portico__Bitbucket__Auth auth = PORTICO__BITBUCKET__AUTH__INIT;
    Portico__Bitbucket__OAuth1Credentials cred = PORTICO__BITBUCKET__OAUTH1_CREDENTIALS__INIT;
    if (s->req->oauth1) {
        const Portico__Bitbucket__OAuth1Credentials *c = s->req->oauth1->credentials;
        cred.consumer_key = c->consumer_key;
        cred.private_key_pem = c->private_key_pem;
        cred.token = s->o1_tokens.token;
        cred.token_secret = s->o1_tokens.token_secret;
        auth.oauth1 = &cred;
    } else {
        auth.bearer = s->tokens.access_token;
    }
    Portico__Bitbucket__Conn *conn = (Portico__Bitbucket__Conn *)(uintptr_t)s_conn(s);
    bus_error_t *step_err = NULL;
    int rc = -1;
    switch (s->step) {
    case LX_TOKEN: {
        /* No token: the broker says so; nothing to ask with. */
        const char *token = s->req->oauth1 ? s->o1_tokens.token : s->tokens.access_token;
        if (!token || !token[0])
            return 0;
        s->step = LX_WHOAMI;
        step_err = &s->who_err;
        Portico__Bitbucket__WhoAmIRequest q = PORTICO__BITBUCKET__WHO_AM_IREQUEST__INIT;
        q.conn = conn;
        q.auth = &auth;
        rc = s->plans->whoami(&q.base, plan, step_err);
        break;
    }
    case LX_WHOAMI: {
        /* Anonymous: the broker tells the two-factor case from it. */
        if (!s->who.username || !s->who.username[0])
            return 0;
        s->step = LX_USER;
        step_err = &s->user_err;
        Portico__Bitbucket__GetUserRequest q = PORTICO__BITBUCKET__GET_USER_REQUEST__INIT;
        q.conn = conn;
        q.auth = &auth;
        q.slug = s->who.username;
        rc = s->plans->user_get(&q.base, plan, step_err);
        break;
    }
    case LX_USER: {
        if (s->req->repos_limit <= 0 || s->req->oauth1)
            return 0;
        s->step = LX_REPOS;
        bus_error_t ignored;
        step_err = &ignored;
        Portico__Bitbucket__ListReposRequest q = PORTICO__BITBUCKET__LIST_REPOS_REQUEST__INIT;
        q.conn = conn;
        q.auth = &auth;
        q.start = 0;
        q.limit = s->req->repos_limit;
        q.permission = "REPO_READ";
        rc = s->plans->repos(&q.base, plan, step_err);
        break;
    }
    case LX_REPOS:
        return 0;
    }
    return rc == 0 ? 1 : 0;
}

static void s_step_error(const bus_error_t *e, Portico__Bitbucket__StepError *out)
{
    portico__bitbucket__step_error__init(out);
    out->code = (Portico__ErrorCode)e->code;
    out->detail = (Portico__ErrorDetail)e->detail;
    out->message = (char *)(uintptr_t)e->message;
}

static int s_reply(lx_t *s, bus_reply_t *reply)
{
    Portico__Bitbucket__LoginExchangeReply out = PORTICO__BITBUCKET__LOGIN_EXCHANGE_REPLY__INIT;
    Portico__Bitbucket__StepError who_err, user_err;
    Portico__Bitbucket__GetUserReply user = PORTICO__BITBUCKET__GET_USER_REPLY__INIT;
    if (s->have_tokens)
        out.tokens = &s->tokens;
    if (s->have_o1_tokens)
        out.oauth1_tokens = &s->o1_tokens;
    if (s->have_who)
        out.whoami = &s->who;
    if (s->who_err.code) {
        s_step_error(&s->who_err, &who_err);
        out.whoami_error = &who_err;
    }
    if (s->have_user) {
        user.user = &s->user;
        out.user = &user;
    }
    if (s->user_err.code) {
        s_step_error(&s->user_err, &user_err);
        out.user_error = &user_err;
    }
    if (s->have_repos)
        out.repositories = &s->repos;
    /* A page too large for the bus is left out: the page asks on its own. */
    if (portico__bitbucket__login_exchange_reply__get_packed_size(&out) > BUS_MAX_MSG_SIZE - BB_REPLY_ROOM)
        out.repositories = NULL;
    bus_reply_ok(reply, &out.base);
    return 0;
}

int bb_login_next(bb_plan_t *plan, const bus_error_t *step_err, bus_reply_t *reply, bus_error_t *err)
{
    lx_t *s = plan->steps;
    if (step_err->code != PORTICO__ERROR_CODE__OK) {
        switch (s->step) {
        case LX_TOKEN:
            *err = *step_err;
            return -1;
        case LX_WHOAMI:
            s->who_err = *step_err;
            break;
        case LX_USER:
            s->user_err = *step_err;
            break;
        case LX_REPOS:
            break;
        }
        return s_reply(s, reply);
    }
    bb_plan_next(plan);
    if (s_plan_following(s, plan) == 1)
        return 1;
    return s_reply(s, reply);
}
