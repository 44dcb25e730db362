/* Who the user is at Bitbucket. There is no API that trades a token for a
 * user record, so: whoami gives the user name, then the user is fetched by
 * slug (which is the name for most users), and when that misses (a name
 * like jane.doe@example.com has the slug jane.doe_example.com) by a filter
 * search with an exact match on the name. */
#include "oauth.h"

#include "log.h"
#include "names.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static void s_copy_user(broker_identity_t *out, const Portico__Bitbucket__User *u)
{
    out->bb_user_id = u->id;
    out->active = u->active;
    broker_copy_whole(out->username, sizeof out->username, u->name);
    broker_copy_whole(out->slug, sizeof out->slug, u->slug);
    broker_copy_cut(out->display_name, sizeof out->display_name, u->display_name[0] ? u->display_name : u->name);
    broker_copy_whole(out->email, sizeof out->email, u->email);
}

/* A step of login.exchange that failed, as the single call would have. */
static int s_step_failed(const Portico__Bitbucket__StepError *e, bus_error_t *err)
{
    bus_error_set(err, (int)e->code, (int)e->detail, "%s", e->message ? e->message : "");
    err->retry_after_s = -1;
    return -1;
}

/* user.get by slug = name, or what login.exchange got for it. 1 found, 0
 * not found, -1 error. */
static int s_by_slug(broker_worker_t *w, const Portico__Bitbucket__Conn *conn, Portico__Bitbucket__Auth *auth,
                     const Portico__Bitbucket__LoginExchangeReply *known, const char *username, broker_identity_t *out,
                     bus_error_t *err)
{
    Portico__Bitbucket__GetUserReply *rep = NULL;
    const Portico__Bitbucket__GetUserReply *got;
    if (known && known->user_error) {
        s_step_failed(known->user_error, err);
        return err->code == PORTICO__ERROR_CODE__NOT_FOUND ? 0 : -1;
    }
    if (known && known->user) {
        got = known->user;
    } else {
        Portico__Bitbucket__GetUserRequest q = PORTICO__BITBUCKET__GET_USER_REQUEST__INIT;
        q.conn = (Portico__Bitbucket__Conn *)(uintptr_t)conn;
        q.auth = auth;
        q.slug = (char *)(uintptr_t)username;
        if (broker_bitbucket_call(w, &bitbucket_m_user_get, &q.base, (ProtobufCMessage **)&rep, err) < 0)
            return err->code == PORTICO__ERROR_CODE__NOT_FOUND ? 0 : -1;
        got = rep;
    }
    int found = 0;
    /* A slug that happens to equal the name of someone else is not us. */
    if (got->user && !strcmp(got->user->name, username)) {
        s_copy_user(out, got->user);
        found = 1;
    }
    if (rep)
        protobuf_c_message_free_unpacked(&rep->base, NULL);
    return found;
}

/* whoami's user name and Bitbucket's id for it (X-AUSERID; 0 when absent),
 * or what login.exchange got for them. 0, or -1 with err as the call
 * failed. */
static int s_whoami(broker_worker_t *w, const Portico__Bitbucket__Conn *conn, Portico__Bitbucket__Auth *auth,
                    const Portico__Bitbucket__LoginExchangeReply *known, char *username, size_t size, int64_t *user_id,
                    bus_error_t *err)
{
    if (known && known->whoami_error)
        return s_step_failed(known->whoami_error, err);
    if (known && known->whoami) {
        snprintf(username, size, "%s", known->whoami->username);
        *user_id = known->whoami->user_id;
        return 0;
    }
    Portico__Bitbucket__WhoAmIRequest q = PORTICO__BITBUCKET__WHO_AM_IREQUEST__INIT;
    q.conn = (Portico__Bitbucket__Conn *)(uintptr_t)conn;
    q.auth = auth;
    Portico__Bitbucket__WhoAmIReply *rep = NULL;
    if (broker_bitbucket_call(w, &bitbucket_m_whoami, &q.base, (ProtobufCMessage **)&rep, err) < 0)
        return -1;
    snprintf(username, size, "%s", rep->username);
    *user_id = rep->user_id;
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    return 0;
}

/* user.find with filter = name, exact match on the name (the filter matches
 * substrings of names, display names and e-mail addresses). */
static int s_by_filter(broker_worker_t *w, const Portico__Bitbucket__Conn *conn, Portico__Bitbucket__Auth *auth,
                       const char *username, broker_identity_t *out, bus_error_t *err)
{
    Portico__Bitbucket__FindUsersRequest q = PORTICO__BITBUCKET__FIND_USERS_REQUEST__INIT;
    q.conn = (Portico__Bitbucket__Conn *)(uintptr_t)conn;
    q.auth = auth;
    q.filter = (char *)(uintptr_t)username;
    Portico__Bitbucket__FindUsersReply *rep = NULL;
    if (broker_bitbucket_call(w, &bitbucket_m_user_find, &q.base, (ProtobufCMessage **)&rep, err) < 0)
        return err->code == PORTICO__ERROR_CODE__NOT_FOUND ? 0 : -1;
    const Portico__Bitbucket__User *hit = NULL;
    for (size_t i = 0; i < rep->n_users && !hit; i++)
        if (rep->users[i] && !strcmp(rep->users[i]->name, username))
            hit = rep->users[i];
    /* Bitbucket compares user names without regard to case. */
    for (size_t i = 0; i < rep->n_users && !hit; i++)
        if (rep->users[i] && !strcasecmp(rep->users[i]->name, username))
            hit = rep->users[i];
    if (hit)
        s_copy_user(out, hit);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    return hit ? 1 : 0;
}

int broker_identify(broker_worker_t *w, const Portico__Bitbucket__Conn *conn, const Portico__Bitbucket__Auth *auth_in,
                    const Portico__Bitbucket__LoginExchangeReply *known, broker_identity_t *out, bus_error_t *err)
{
    memset(out, 0, sizeof *out);
    Portico__Bitbucket__Auth *auth = (Portico__Bitbucket__Auth *)(uintptr_t)auth_in;
    bool oauth1 = auth->oauth1 != NULL;

    char username[256] = "";
    int64_t whoami_id = 0;
    if (s_whoami(w, conn, auth, known, username, sizeof username, &whoami_id, err) < 0) {
        if (err->code != PORTICO__ERROR_CODE__UNAUTHORIZED)
            return -1;
        /* A signed OAuth 1 request that Bitbucket refuses gets 401 with an
         * oauth_problem from its OAuth filter; only the servlet's
         * anonymous answer is what the two-factor app causes. */
        if (oauth1 && err->detail != DETAIL(ANONYMOUS))
            return -1;
        username[0] = '\0';
    }
    if (!username[0]) {
        /* The token was issued a moment ago, so an anonymous answer is not
         * an expired token: the "U2F & TOTP" two-factor app blocks OAuth
         * requests this way unless its OAuth whitelist allows Portico. */
        bus_error_set(err, PORTICO__ERROR_CODE__UNAUTHORIZED, DETAIL(TFA),
                      "Bitbucket accepted the sign-in but then treated Portico as anonymous: a two-factor plugin "
                      "may be blocking OAuth requests");
        return -1;
    }
    int found = s_by_slug(w, conn, auth, known, username, out, err);
    if (found == 0)
        found = s_by_filter(w, conn, auth, username, out, err);
    if (found < 0)
        return -1;
    if (found == 0) {
        char q1[300];
        log_warn("bitbucket user not found", "username=%s", log_quote(username, q1, sizeof q1));
        bus_error_set(err, PORTICO__ERROR_CODE__UPSTREAM, DETAIL(IDENTITY),
                      "Bitbucket did not return the account that signed in");
        return -1;
    }
    /* The name matched; when Bitbucket also said whose token it was by id,
     * the record must be that account too: a user renamed between the two
     * calls, with another taking the old name, or a cache that served one
     * account's answer for another, must not log in as someone else. */
    if (whoami_id > 0 && out->bb_user_id > 0 && whoami_id != out->bb_user_id) {
        char q1[300];
        log_warn("bitbucket user id differs from the token's",
                 "username=%s token_user_id=%" PRId64 " record_user_id=%" PRId64, log_quote(username, q1, sizeof q1),
                 whoami_id, out->bb_user_id);
        memset(out, 0, sizeof *out);
        bus_error_set(err, PORTICO__ERROR_CODE__UPSTREAM, DETAIL(IDENTITY),
                      "Bitbucket did not return the account that signed in");
        return -1;
    }
    return 0;
}
