/* token.*: storing tokens, and refreshing them under a lease. */
#include "harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUNDS 10

static int64_t s_identity;

static int s_store(int64_t identity, const char *access, const char *refresh, bus_error_t *err)
{
    Portico__Registry__Tokens t = PORTICO__REGISTRY__TOKENS__INIT;
    t.access_token = (char *)(uintptr_t)access;
    t.refresh_token = (char *)(uintptr_t)refresh;
    t.expires_at = 1900000000;
    t.scope = "REPO_READ";
    Portico__Registry__StoreTokensRequest req = PORTICO__REGISTRY__STORE_TOKENS_REQUEST__INIT;
    req.identity_id = identity;
    req.tokens = &t;
    return h_call("token.store", &req.base, NULL, NULL, err);
}

static int s_get_with(bus_client_t *client, int64_t identity, Portico__Registry__GetTokensReply **out, bus_error_t *err)
{
    Portico__Registry__GetTokensRequest req = PORTICO__REGISTRY__GET_TOKENS_REQUEST__INIT;
    req.identity_id = identity;
    ProtobufCMessage *m = NULL;
    int rc = h_call_with(client, "token.get", &req.base, &portico__registry__get_tokens_reply__descriptor,
                         out ? &m : NULL, err);
    if (out)
        *out = (Portico__Registry__GetTokensReply *)m;
    return rc;
}

static int s_lease_with(bus_client_t *client, int64_t identity, const char *holder, int lease_ms,
                        Portico__Registry__LeaseTokensReply **out, bus_error_t *err)
{
    Portico__Registry__LeaseTokensRequest req = PORTICO__REGISTRY__LEASE_TOKENS_REQUEST__INIT;
    req.identity_id = identity;
    req.holder = (char *)(uintptr_t)holder;
    req.lease_ms = lease_ms;
    ProtobufCMessage *m = NULL;
    int rc = h_call_with(client, "token.lease", &req.base, &portico__registry__lease_tokens_reply__descriptor,
                         out ? &m : NULL, err);
    if (out)
        *out = (Portico__Registry__LeaseTokensReply *)m;
    return rc;
}

static int s_replace_with(bus_client_t *client, int64_t identity, const char *holder, int64_t generation,
                          const char *access, const char *refresh, bool revoked, bus_error_t *err)
{
    Portico__Registry__Tokens t = PORTICO__REGISTRY__TOKENS__INIT;
    t.access_token = (char *)(uintptr_t)(access ? access : "");
    t.refresh_token = (char *)(uintptr_t)(refresh ? refresh : "");
    Portico__Registry__ReplaceTokensRequest req = PORTICO__REGISTRY__REPLACE_TOKENS_REQUEST__INIT;
    req.identity_id = identity;
    req.holder = (char *)(uintptr_t)holder;
    req.generation = generation;
    req.tokens = revoked ? NULL : &t;
    req.revoked = revoked;
    return h_call_with(client, "token.replace", &req.base, NULL, NULL, err);
}

static void test_store_and_get(void **state)
{
    (void)state;
    bus_error_t err;
    int64_t integration = h_make_integration(NULL);
    s_identity = h_login(integration, 4000, "token-user", NULL);
    assert_true(s_identity > 0);
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_get_with(h_client(), s_identity, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(TOKENS));
    assert_code(0, s_store(s_identity, "access-1", "refresh-1", &err), err);
    Portico__Registry__GetTokensReply *r = NULL;
    assert_code(0, s_get_with(h_client(), s_identity, &r, &err), err);
    assert_string_equal(r->tokens->access_token, "access-1");
    assert_string_equal(r->tokens->refresh_token, "refresh-1");
    assert_string_equal(r->tokens->scope, "REPO_READ");
    assert_int_equal(r->tokens->expires_at, 1900000000);
    assert_int_equal(r->generation, 1);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    /* A new login replaces the pair unconditionally. */
    assert_code(0, s_store(s_identity, "access-2", "refresh-2", &err), err);
    assert_code(0, s_get_with(h_client(), s_identity, &r, &err), err);
    assert_string_equal(r->tokens->access_token, "access-2");
    assert_int_equal(r->generation, 2);
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void test_store_errors(void **state)
{
    (void)state;
    bus_error_t err;
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_store(99999999, "a", "r", &err), err);
    assert_int_equal(err.detail, DETAIL(IDENTITY));
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_store(s_identity, "", "r", &err), err);
    assert_int_equal(err.detail, DETAIL(ACCESS_TOKEN));
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_store(0, "a", "r", &err), err);
    Portico__Registry__StoreTokensRequest req = PORTICO__REGISTRY__STORE_TOKENS_REQUEST__INIT;
    req.identity_id = s_identity;
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, h_call("token.store", &req.base, NULL, NULL, &err), err);
}

static void test_lease_and_replace(void **state)
{
    (void)state;
    bus_error_t err;
    bus_client_t *c = h_client();
    Portico__Registry__LeaseTokensReply *l = NULL;
    assert_code(0, s_lease_with(c, s_identity, "broker-a", 5000, &l, &err), err);
    int64_t gen = l->generation;
    assert_string_equal(l->tokens->refresh_token, "refresh-2");
    protobuf_c_message_free_unpacked(&l->base, NULL);
    /* A second holder waits. */
    assert_code(PORTICO__ERROR_CODE__CONFLICT, s_lease_with(c, s_identity, "broker-b", 5000, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(LEASED));
    /* The holder may renew its own lease. */
    assert_code(0, s_lease_with(c, s_identity, "broker-a", 5000, NULL, &err), err);
    /* Only the holder, at the generation it read, may replace. */
    assert_code(PORTICO__ERROR_CODE__CONFLICT, s_replace_with(c, s_identity, "broker-b", gen, "x", "y", false, &err),
                err);
    assert_int_equal(err.detail, DETAIL(LEASE_LOST));
    assert_code(PORTICO__ERROR_CODE__CONFLICT,
                s_replace_with(c, s_identity, "broker-a", gen - 1, "x", "y", false, &err), err);
    assert_code(0, s_replace_with(c, s_identity, "broker-a", gen, "access-3", "refresh-3", false, &err), err);
    Portico__Registry__GetTokensReply *r = NULL;
    assert_code(0, s_get_with(c, s_identity, &r, &err), err);
    assert_string_equal(r->tokens->access_token, "access-3");
    assert_string_equal(r->tokens->refresh_token, "refresh-3");
    assert_int_equal(r->generation, gen + 1);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    /* The lease was released with the replace. */
    assert_code(0, s_lease_with(c, s_identity, "broker-b", 5000, NULL, &err), err);
    Portico__Registry__ReleaseTokensRequest rel = PORTICO__REGISTRY__RELEASE_TOKENS_REQUEST__INIT;
    rel.identity_id = s_identity;
    rel.holder = "broker-b";
    assert_code(0, h_call("token.release", &rel.base, NULL, NULL, &err), err);
    assert_code(0, s_lease_with(c, s_identity, "broker-a", 5000, NULL, &err), err);
    rel.holder = "broker-a";
    assert_code(0, h_call("token.release", &rel.base, NULL, NULL, &err), err);

    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_lease_with(c, 99999999, "broker-a", 5000, NULL, &err), err);
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_lease_with(c, s_identity, "", 5000, NULL, &err), err);
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_lease_with(c, s_identity, "broker-a", 5, NULL, &err), err);
}

static void test_expired_lease_can_be_taken_over(void **state)
{
    (void)state;
    bus_error_t err;
    bus_client_t *c = h_client();
    Portico__Registry__LeaseTokensReply *l = NULL;
    assert_code(0, s_lease_with(c, s_identity, "slow-broker", 200, &l, &err), err);
    int64_t gen = l->generation;
    protobuf_c_message_free_unpacked(&l->base, NULL);
    h_sleep_ms(300);
    assert_code(0, s_lease_with(c, s_identity, "fast-broker", 5000, NULL, &err), err);
    /* The slow one has lost its lease. */
    assert_code(PORTICO__ERROR_CODE__CONFLICT,
                s_replace_with(c, s_identity, "slow-broker", gen, "late", "late", false, &err), err);
    assert_code(0, s_replace_with(c, s_identity, "fast-broker", gen, "access-4", "refresh-4", false, &err), err);
}

static void test_revoked_forgets_the_pair(void **state)
{
    (void)state;
    bus_error_t err;
    int64_t integration = h_make_integration(NULL);
    int64_t identity = h_login(integration, 4001, "revoked-user", NULL);
    assert_code(0, s_store(identity, "a", "r", &err), err);
    Portico__Registry__LeaseTokensReply *l = NULL;
    assert_code(0, s_lease_with(h_client(), identity, "broker-a", 5000, &l, &err), err);
    int64_t gen = l->generation;
    protobuf_c_message_free_unpacked(&l->base, NULL);
    assert_code(0, s_replace_with(h_client(), identity, "broker-a", gen, NULL, NULL, true, &err), err);
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_get_with(h_client(), identity, NULL, &err), err);
}

/* ---- two brokers refreshing one identity's tokens at once ---- */

typedef struct {
    pthread_mutex_t lock;
    pthread_barrier_t barrier;
    char used[ROUNDS * 2 + 4][64]; /* refresh tokens spent at "Bitbucket" */
    int n_used;
    int issued;
    bool reused; /* a refresh token was spent twice: what Bitbucket forbids */
    char newest_access[64], newest_refresh[64];
} bitbucket_t;

typedef struct {
    bitbucket_t *bb;
    const char *holder;
    int refreshes;
    int failures;
} refresher_t;

/* Bitbucket's side of a refresh: each refresh token works once. */
static void s_bitbucket_refresh(bitbucket_t *bb, const char *refresh_token, char *access, char *refresh)
{
    pthread_mutex_lock(&bb->lock);
    for (int i = 0; i < bb->n_used; i++)
        if (!strcmp(bb->used[i], refresh_token))
            bb->reused = true;
    snprintf(bb->used[bb->n_used++], sizeof bb->used[0], "%s", refresh_token);
    int n = ++bb->issued;
    snprintf(access, 64, "access-r%d", n);
    snprintf(refresh, 64, "refresh-r%d", n);
    snprintf(bb->newest_access, sizeof bb->newest_access, "%s", access);
    snprintf(bb->newest_refresh, sizeof bb->newest_refresh, "%s", refresh);
    pthread_mutex_unlock(&bb->lock);
    h_sleep_ms(50); /* the network call the registry must not hold a transaction for */
}

static void *s_refresher(void *arg)
{
    refresher_t *r = arg;
    bus_client_t *client = bus_client_new(h_env("REG_TEST_ENDPOINT"), "registry");
    bus_error_t err;
    for (int round = 0; round < ROUNDS; round++) {
        /* Both brokers see the same expired pair, then both try to refresh. */
        Portico__Registry__GetTokensReply *g = NULL;
        pthread_barrier_wait(&r->bb->barrier);
        if (s_get_with(client, s_identity, &g, &err) != 0) {
            r->failures++;
            pthread_barrier_wait(&r->bb->barrier);
            continue;
        }
        int64_t seen = g->generation;
        protobuf_c_message_free_unpacked(&g->base, NULL);
        pthread_barrier_wait(&r->bb->barrier);
        for (int tries = 0; tries < 200; tries++) {
            Portico__Registry__LeaseTokensReply *l = NULL;
            int rc = s_lease_with(client, s_identity, r->holder, 5000, &l, &err);
            if (rc == 0 && l->generation != seen) {
                /* Someone refreshed while we waited: use theirs. */
                protobuf_c_message_free_unpacked(&l->base, NULL);
                Portico__Registry__ReleaseTokensRequest rel = PORTICO__REGISTRY__RELEASE_TOKENS_REQUEST__INIT;
                rel.identity_id = s_identity;
                rel.holder = (char *)(uintptr_t)r->holder;
                h_call_with(client, "token.release", &rel.base, NULL, NULL, &err);
                break;
            }
            if (rc == 0) {
                char access[64], refresh[64];
                s_bitbucket_refresh(r->bb, l->tokens->refresh_token, access, refresh);
                rc = s_replace_with(client, s_identity, r->holder, l->generation, access, refresh, false, &err);
                protobuf_c_message_free_unpacked(&l->base, NULL);
                if (rc != 0)
                    r->failures++;
                r->refreshes++;
                break;
            }
            if (rc != PORTICO__ERROR_CODE__CONFLICT) {
                r->failures++;
                break;
            }
            /* Leased by the other broker: wait and read again. */
            h_sleep_ms(10);
            if (s_get_with(client, s_identity, &g, &err) == 0) {
                bool refreshed = g->generation != seen;
                protobuf_c_message_free_unpacked(&g->base, NULL);
                if (refreshed)
                    break;
            }
        }
    }
    bus_client_destroy(&client);
    return NULL;
}

static void test_two_concurrent_refreshes_are_serialised(void **state)
{
    (void)state;
    bus_error_t err;
    assert_code(0, s_store(s_identity, "access-r0", "refresh-r0", &err), err);
    Portico__Registry__GetTokensReply *g = NULL;
    assert_code(0, s_get_with(h_client(), s_identity, &g, &err), err);
    int64_t start_gen = g->generation;
    protobuf_c_message_free_unpacked(&g->base, NULL);

    bitbucket_t bb;
    memset(&bb, 0, sizeof bb);
    pthread_mutex_init(&bb.lock, NULL);
    pthread_barrier_init(&bb.barrier, NULL, 2);
    refresher_t a = {&bb, "broker-a", 0, 0}, b = {&bb, "broker-b", 0, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, s_refresher, &a);
    pthread_create(&tb, NULL, s_refresher, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);

    assert_int_equal(a.failures + b.failures, 0);
    /* One refresh per round, never the same refresh token twice. */
    assert_int_equal(a.refreshes + b.refreshes, ROUNDS);
    assert_false(bb.reused);
    assert_code(0, s_get_with(h_client(), s_identity, &g, &err), err);
    assert_string_equal(g->tokens->access_token, bb.newest_access);
    assert_string_equal(g->tokens->refresh_token, bb.newest_refresh);
    assert_int_equal(g->generation, start_gen + ROUNDS);
    protobuf_c_message_free_unpacked(&g->base, NULL);
    pthread_barrier_destroy(&bb.barrier);
    pthread_mutex_destroy(&bb.lock);
}

/* user.credentials by user id, or by the session whose cookie is cookie
 * (with user_id 0 for the usual request), as the broker asks it. */
static int s_credentials_with(const char *cookie, int64_t user_id, int64_t integration_id,
                              Portico__Registry__UserCredentialsReply **out, bus_error_t *err)
{
    uint8_t buf[32];
    Portico__Registry__UserCredentialsRequest req = PORTICO__REGISTRY__USER_CREDENTIALS_REQUEST__INIT;
    if (cookie)
        req.session_hash = h_hash(cookie, buf);
    req.user_id = user_id;
    req.integration_id = integration_id;
    ProtobufCMessage *m = NULL;
    int rc = h_call("user.credentials", &req.base, &portico__registry__user_credentials_reply__descriptor,
                    out ? &m : NULL, err);
    if (out)
        *out = (Portico__Registry__UserCredentialsReply *)m;
    return rc;
}

static int s_credentials(int64_t user_id, int64_t integration_id, Portico__Registry__UserCredentialsReply **out,
                         bus_error_t *err)
{
    return s_credentials_with(NULL, user_id, integration_id, out, err);
}

/* user.credentials: the identity, its integration with secrets and its
 * tokens in one answer, the same as user.get, integration.get and
 * token.get would give; only to the broker. */
static void test_credentials_in_one_call(void **state)
{
    (void)state;
    bus_error_t err;
    int64_t integration = h_make_integration("cred-client-secret"), other = h_make_integration(NULL), user_id = 0;
    int64_t identity = h_login(integration, 4100, "cred-user", &user_id);
    assert_true(identity > 0 && user_id > 0);

    Portico__Registry__UserCredentialsReply *r = NULL;
    assert_code(0, s_credentials(user_id, 0, &r, &err), err);
    assert_int_equal(r->identity->id, identity);
    assert_string_equal(r->identity->username, "cred-user");
    assert_int_equal(r->integration->integration->id, integration);
    assert_string_equal(r->integration->secrets->client_secret, "cred-client-secret");
    assert_null(r->tokens); /* none stored yet: the user logs in again */
    protobuf_c_message_free_unpacked(&r->base, NULL);

    assert_code(0, s_store(identity, "access-cred", "refresh-cred", &err), err);
    Portico__Registry__GetTokensReply *g = NULL;
    assert_code(0, s_get_with(h_client(), identity, &g, &err), err);
    assert_code(0, s_credentials(user_id, integration, &r, &err), err);
    assert_non_null(r->tokens);
    assert_string_equal(r->tokens->access_token, "access-cred");
    assert_string_equal(r->tokens->refresh_token, "refresh-cred");
    assert_int_equal(r->tokens->expires_at, g->tokens->expires_at);
    assert_int_equal(r->generation, g->generation);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    protobuf_c_message_free_unpacked(&g->base, NULL);

    /* No identity at that integration, no such user, no user at all. */
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_credentials(user_id, other, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(NO_IDENTITY));
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_credentials(987654321, 0, NULL, &err), err);
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_credentials(0, 0, NULL, &err), err);

    /* The web never receives secrets or tokens. */
    Portico__Registry__UserCredentialsRequest req = PORTICO__REGISTRY__USER_CREDENTIALS_REQUEST__INIT;
    req.user_id = user_id;
    ProtobufCMessage *m = NULL;
    assert_int_equal(bus_call(h_client(), "user.credentials", &req.base,
                              &portico__registry__user_credentials_reply__descriptor, &m, H_TIMEOUT_MS, &err),
                     -1);
    assert_int_equal(err.code, PORTICO__ERROR_CODE__FORBIDDEN);
    assert_null(m);
}

/* user.credentials by a browser session (the account page's one call
 * through the broker): the session checked as session.lookup checks it,
 * answered with its user, and the credentials when there are any. */
static void test_credentials_by_session(void **state)
{
    (void)state;
    bus_error_t err;
    int64_t integration = h_make_integration("sess-client-secret"), other = h_make_integration(NULL);
    assert_code(0, h_login_session(integration, 4300, "sess-cred-user", "cookie-cred", 0, 0, &err), err);

    Portico__Registry__UserCredentialsReply *r = NULL;
    assert_code(0, s_credentials_with("cookie-cred", 0, 0, &r, &err), err);
    assert_non_null(r->session);
    assert_non_null(r->session->session);
    assert_non_null(r->session->user);
    int64_t user_id = r->session->session->user_id;
    assert_true(user_id > 0);
    assert_int_equal(r->session->user->id, user_id);
    assert_string_equal(r->session->user->name, r->session->session->user_name);
    assert_int_equal(r->session->user->n_identities, 1);
    assert_true(r->session->session->expires_at > 0);
    assert_string_equal(r->identity->username, "sess-cred-user");
    assert_int_equal(r->identity->user_id, user_id);
    assert_int_equal(r->integration->integration->id, integration);
    assert_string_equal(r->integration->secrets->client_secret, "sess-client-secret");
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* A live session with no identity at that integration: the session
     * alone, no error. */
    assert_code(0, s_credentials_with("cookie-cred", 0, other, &r, &err), err);
    assert_non_null(r->session);
    assert_int_equal(r->session->session->user_id, user_id);
    assert_null(r->identity);
    assert_null(r->integration);
    assert_null(r->tokens);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* A Setup Mode session has no user: the session alone. */
    assert_code(0, h_setup_session(test_setup_token(), "cookie-cred-setup", &err), err);
    assert_code(0, s_credentials_with("cookie-cred-setup", 0, 0, &r, &err), err);
    assert_true(r->session->session->setup);
    assert_int_equal(r->session->session->user_id, 0);
    assert_null(r->session->user);
    assert_null(r->identity);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    /* No such session; a session and a user at once; a malformed hash. */
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_credentials_with("cookie-unknown", 0, 0, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(SESSION));
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_credentials_with("cookie-cred", user_id, 0, NULL, &err), err);
    Portico__Registry__UserCredentialsRequest bad = PORTICO__REGISTRY__USER_CREDENTIALS_REQUEST__INIT;
    bad.session_hash.data = (uint8_t *)"short";
    bad.session_hash.len = 5;
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, h_call("user.credentials", &bad.base, NULL, NULL, &err), err);

    /* An ended session is refused as session.lookup refuses it. */
    uint8_t buf[32];
    Portico__Registry__DeleteSessionRequest del = PORTICO__REGISTRY__DELETE_SESSION_REQUEST__INIT;
    del.token_hash = h_hash("cookie-cred", buf);
    assert_code(0, h_call("session.delete", &del.base, NULL, NULL, &err), err);
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_credentials_with("cookie-cred", 0, 0, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(SESSION));
}

int run_token_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_and_get),
        cmocka_unit_test(test_store_errors),
        cmocka_unit_test(test_lease_and_replace),
        cmocka_unit_test(test_expired_lease_can_be_taken_over),
        cmocka_unit_test(test_revoked_forgets_the_pair),
        cmocka_unit_test(test_two_concurrent_refreshes_are_serialised),
        cmocka_unit_test(test_credentials_in_one_call),
        cmocka_unit_test(test_credentials_by_session),
    };
    return cmocka_run_group_tests_name("tokens", tests, NULL, NULL);
}
