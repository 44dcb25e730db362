/* user.*: logins, the first admin, listing and the admin role. */
#include "harness.h"

#include "crypto.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RACERS 8

static int64_t s_integration;

typedef struct {
    pthread_barrier_t *barrier;
    int64_t bb_user_id;
    char username[32];
    int code;
    bool is_admin;
    bool created;
    int64_t user_id;
    const uint8_t *setup_hash; /* a Setup Mode session's, or NULL */
} racer_t;

static uint8_t s_setup_hash[32];

static void *s_racer(void *arg)
{
    racer_t *r = arg;
    bus_client_t *client = bus_client_new(h_env("REG_TEST_ENDPOINT"), "registry");
    Portico__Registry__Identity d = PORTICO__REGISTRY__IDENTITY__INIT;
    d.integration_id = s_integration;
    d.bb_user_id = r->bb_user_id;
    d.username = r->username;
    h_pending_t pend;
    h_pending_with(client, s_integration, &pend);
    Portico__Registry__LoginRequest req = PORTICO__REGISTRY__LOGIN_REQUEST__INIT;
    req.identity = &d;
    req.pending = &pend.finish;
    if (r->setup_hash) {
        req.setup_session_hash.data = (uint8_t *)(uintptr_t)r->setup_hash;
        req.setup_session_hash.len = 32;
    }
    ProtobufCMessage *out = NULL;
    if (r->barrier)
        pthread_barrier_wait(r->barrier);
    r->code = h_call_with(client, "user.login", &req.base, &portico__registry__login_reply__descriptor, &out, NULL);
    if (r->code == 0) {
        Portico__Registry__LoginReply *lr = (Portico__Registry__LoginReply *)out;
        r->is_admin = lr->user->is_admin;
        r->created = lr->created;
        r->user_id = lr->user->id;
        protobuf_c_message_free_unpacked(out, NULL);
    }
    bus_client_destroy(&client);
    return NULL;
}

static void test_first_login_in_setup_mode_makes_exactly_one_admin(void **state)
{
    (void)state;
    s_integration = h_make_integration(NULL);
    assert_true(s_integration > 0);
    bus_error_t err;

    /* Setup Mode belongs to whoever holds the setup session: a login
     * without it (someone who found the public login page) is an ordinary
     * user, and so is one naming a session that is not a setup session. */
    racer_t stranger = {.bb_user_id = 999, .username = "stranger"};
    s_racer(&stranger);
    assert_int_equal(stranger.code, 0);
    assert_false(stranger.is_admin);
    h_hash("cookie-not-setup", s_setup_hash);
    assert_code(0, h_login_session(s_integration, 999, "stranger", "cookie-not-setup", 1800, 43200, &err), err);
    racer_t impostor = {.bb_user_id = 998, .username = "impostor", .setup_hash = s_setup_hash};
    s_racer(&impostor);
    assert_int_equal(impostor.code, 0);
    assert_false(impostor.is_admin);

    /* The setup session's browser: exactly one of its racing logins wins. */
    h_hash("cookie-first-admin", s_setup_hash);
    assert_code(0, h_setup_session(test_setup_token(), "cookie-first-admin", &err), err);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, RACERS);
    racer_t racers[RACERS];
    pthread_t threads[RACERS];
    for (int i = 0; i < RACERS; i++) {
        memset(&racers[i], 0, sizeof racers[i]);
        racers[i].barrier = &barrier;
        racers[i].setup_hash = s_setup_hash;
        racers[i].bb_user_id = 1000 + i;
        snprintf(racers[i].username, sizeof racers[i].username, "racer%d", i);
        pthread_create(&threads[i], NULL, s_racer, &racers[i]);
    }
    int admins = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(racers[i].code, 0);
        assert_true(racers[i].created);
        admins += racers[i].is_admin;
    }
    pthread_barrier_destroy(&barrier);
    assert_int_equal(admins, 1);

    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM users WHERE is_admin"), 1);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM audit_log WHERE action = 'admin.grant' AND actor = 'setup'"),
                     1);
    /* The racers, the stranger twice (the second login starting its
     * session: sessions start only inside a login), the impostor. */
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM audit_log WHERE action = 'user.login'"), RACERS + 3);
    PQfinish(c);

    ProtobufCMessage *out = NULL;
    assert_code(0, h_call("settings.get", NULL, &portico__registry__settings__descriptor, &out, &err), err);
    assert_true(((Portico__Registry__Settings *)out)->admin_exists);
    protobuf_c_message_free_unpacked(out, NULL);
}

static void test_login_again_updates_the_same_user(void **state)
{
    (void)state;
    bus_error_t err;
    Portico__Registry__Identity d = PORTICO__REGISTRY__IDENTITY__INIT;
    d.integration_id = s_integration;
    d.bb_user_id = 1000;
    d.username = "racer0";
    d.slug = "racer0";
    d.display_name = "Racer Zero <b>";
    d.email = "zero@example.com";
    h_pending_t pend;
    h_pending(s_integration, &pend);
    Portico__Registry__LoginRequest req = PORTICO__REGISTRY__LOGIN_REQUEST__INIT;
    req.identity = &d;
    req.addr = "198.51.100.9";
    req.pending = &pend.finish;
    ProtobufCMessage *out = NULL;
    assert_code(0, h_call("user.login", &req.base, &portico__registry__login_reply__descriptor, &out, &err), err);
    Portico__Registry__LoginReply *r = (Portico__Registry__LoginReply *)out;
    assert_false(r->created);
    assert_string_equal(r->user->name, "racer0");
    assert_string_equal(r->user->display_name, "Racer Zero <b>");
    assert_int_equal(r->user->n_identities, 1);
    Portico__Registry__Identity *id = r->user->identities[0];
    assert_int_equal(id->id, r->identity_id);
    assert_int_equal(id->bb_user_id, 1000);
    assert_string_equal(id->email, "zero@example.com");
    assert_true(id->last_login_at > 0);
    assert_true(strlen(id->integration_name) > 0);
    protobuf_c_message_free_unpacked(out, NULL);
}

static int s_login(int64_t integration, int64_t bb_user_id, const char *username, int64_t user_id, bus_error_t *err)
{
    Portico__Registry__Identity d = PORTICO__REGISTRY__IDENTITY__INIT;
    d.integration_id = integration;
    d.bb_user_id = bb_user_id;
    d.username = (char *)(uintptr_t)username;
    d.user_id = user_id;
    h_pending_t pend;
    h_pending(integration, &pend);
    Portico__Registry__LoginRequest req = PORTICO__REGISTRY__LOGIN_REQUEST__INIT;
    req.identity = &d;
    req.pending = &pend.finish;
    return h_call("user.login", &req.base, NULL, NULL, err);
}

static void test_login_errors(void **state)
{
    (void)state;
    bus_error_t err;
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_login(99999999, 5, "ghost", 0, &err), err);
    assert_int_equal(err.detail, DETAIL(INTEGRATION));
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_login(s_integration, 5, "", 0, &err), err);
    assert_int_equal(err.detail, DETAIL(USERNAME));
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_login(s_integration, 0, "zero", 0, &err), err);
    assert_int_equal(err.detail, DETAIL(BB_USER_ID));
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_login(s_integration, 5, "bad\001name", 0, &err), err);
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_login(s_integration, 5, "bad\xff", 0, &err), err);
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_login(s_integration, 77777, "linker", 99999999, &err), err);
    assert_int_equal(err.detail, DETAIL(USER));
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, h_call("user.login", NULL, NULL, NULL, &err), err);

    int64_t disabled = h_make_integration(NULL);
    Portico__Registry__UpdateIntegrationRequest up = PORTICO__REGISTRY__UPDATE_INTEGRATION_REQUEST__INIT;
    up.id = disabled;
    up.set_enabled = true;
    up.enabled = false;
    assert_code(0, h_call("integration.update", &up.base, NULL, NULL, &err), err);
    assert_code(PORTICO__ERROR_CODE__FORBIDDEN, s_login(disabled, 5, "late", 0, &err), err);
    assert_int_equal(err.detail, DETAIL(DISABLED));
}

static int s_login_pending(int64_t integration, const char *username, const Portico__Registry__ConsumePendingRequest *p,
                           bus_error_t *err)
{
    Portico__Registry__Identity d = PORTICO__REGISTRY__IDENTITY__INIT;
    d.integration_id = integration;
    d.bb_user_id = 6100;
    d.username = (char *)(uintptr_t)username;
    Portico__Registry__LoginRequest req = PORTICO__REGISTRY__LOGIN_REQUEST__INIT;
    req.identity = &d;
    req.pending = (Portico__Registry__ConsumePendingRequest *)(uintptr_t)p;
    return h_call("user.login", &req.base, NULL, NULL, err);
}

/* A caller holding the broker's key still cannot name a user: every
 * user.login finishes a login a browser started, and uses it up. */
static void test_login_needs_a_live_pending_login(void **state)
{
    (void)state;
    bus_error_t err;
    PGconn *c = h_pg(NULL);
    int64_t other = h_make_integration(NULL);
    assert_code(PORTICO__ERROR_CODE__FORBIDDEN, s_login_pending(s_integration, "pend-user", NULL, &err), err);
    assert_string_equal(bus_detail_name(err.detail), "pending");

    h_pending_t pend, elsewhere;
    assert_int_equal(h_pending(s_integration, &pend), 0);
    assert_int_equal(h_pending(other, &elsewhere), 0);
    /* Another browser's login, or one started for another integration. */
    Portico__Registry__ConsumePendingRequest wrong = pend.finish;
    uint8_t browser[32];
    memcpy(browser, pend.browser_hash, 32);
    browser[0] ^= 1;
    wrong.browser_hash.data = browser;
    assert_code(PORTICO__ERROR_CODE__FORBIDDEN, s_login_pending(s_integration, "pend-user", &wrong, &err), err);
    assert_code(PORTICO__ERROR_CODE__FORBIDDEN, s_login_pending(s_integration, "pend-user", &elsewhere.finish, &err),
                err);
    wrong = pend.finish;
    wrong.integration_id = other;
    assert_code(PORTICO__ERROR_CODE__FORBIDDEN, s_login_pending(s_integration, "pend-user", &wrong, &err), err);
    /* Refused logins wrote nothing and burnt nobody's login. */
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM users WHERE name = 'pend-user'"), 0);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM audit_log WHERE actor = 'pend-user'"), 0);
    assert_code(0, s_login_pending(s_integration, "pend-user", &pend.finish, &err), err);
    /* Used once: the same login cannot make a second one. */
    assert_code(PORTICO__ERROR_CODE__FORBIDDEN, s_login_pending(s_integration, "pend-user", &pend.finish, &err), err);
    assert_string_equal(bus_detail_name(err.detail), "pending");
    /* An expired login no longer counts. */
    assert_int_equal(h_pending(s_integration, &pend), 0);
    char hex[65], sql[200];
    crypto_hex(pend.state_hash, 32, hex);
    snprintf(sql, sizeof sql,
             "UPDATE pending_logins SET expires_at = now() - interval '1 second' WHERE state_hash = '\\x%s'", hex);
    assert_int_equal(h_pg_exec(c, sql), 0);
    assert_code(PORTICO__ERROR_CODE__FORBIDDEN, s_login_pending(s_integration, "pend-user", &pend.finish, &err), err);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM audit_log WHERE actor = 'pend-user'"), 1);
    PQfinish(c);
}

/* The broker's one call at the end of a login: user, identity, tokens and
 * the browser's new session in one transaction, with a brief reply. */
static int s_login_all(int64_t bb_user_id, const char *username, const char *session, const char *access,
                       Portico__Registry__LoginReply **out, bus_error_t *err)
{
    uint8_t sh[32];
    Portico__Registry__Identity d = PORTICO__REGISTRY__IDENTITY__INIT;
    d.integration_id = s_integration;
    d.bb_user_id = bb_user_id;
    d.username = (char *)(uintptr_t)username;
    d.display_name = "All In One";
    Portico__Registry__Tokens t = PORTICO__REGISTRY__TOKENS__INIT;
    t.access_token = (char *)(uintptr_t)access;
    t.refresh_token = "refresh-all-in-one";
    t.expires_at = 4102444800;
    Portico__Registry__CreateSessionRequest cs = PORTICO__REGISTRY__CREATE_SESSION_REQUEST__INIT;
    cs.token_hash = h_hash(session, sh);
    cs.idle_seconds = 600;
    cs.absolute_seconds = 3600;
    cs.addr = "198.51.100.10";
    Portico__Registry__LoginRequest req = PORTICO__REGISTRY__LOGIN_REQUEST__INIT;
    req.identity = &d;
    req.addr = "198.51.100.10";
    req.tokens = &t;
    req.session = &cs;
    req.brief = true;
    h_pending_t pend;
    h_pending(d.integration_id, &pend);
    req.pending = &pend.finish;
    ProtobufCMessage *m = NULL;
    int rc = h_call("user.login", &req.base, &portico__registry__login_reply__descriptor, out ? &m : NULL, err);
    if (out)
        *out = (Portico__Registry__LoginReply *)m;
    return rc;
}

static int64_t s_session_user(const char *session)
{
    uint8_t sh[32];
    Portico__Registry__LookupSessionRequest q = PORTICO__REGISTRY__LOOKUP_SESSION_REQUEST__INIT;
    q.token_hash = h_hash(session, sh);
    ProtobufCMessage *out = NULL;
    bus_error_t err;
    if (h_call("session.lookup", &q.base, &portico__registry__lookup_session_reply__descriptor, &out, &err))
        return -1;
    int64_t id = ((Portico__Registry__LookupSessionReply *)out)->session->user_id;
    protobuf_c_message_free_unpacked(out, NULL);
    return id;
}

static void test_login_with_tokens_and_session(void **state)
{
    (void)state;
    bus_error_t err;
    Portico__Registry__LoginReply *r = NULL;
    /* A first login (new user), then the same identity again. */
    for (int round = 0; round < 2; round++) {
        char session[32];
        snprintf(session, sizeof session, "all-in-one-%d", round);
        assert_code(0, s_login_all(5000, "allinone", session, round ? "access-2" : "access-1", &r, &err), err);
        assert_int_equal(r->created, round == 0);
        assert_true(r->identity_id > 0);
        assert_string_equal(r->user->name, "allinone");
        assert_string_equal(r->user->display_name, "All In One");
        assert_false(r->user->is_admin); /* an admin exists already */
        assert_true(r->user->created_at > 0);
        assert_int_equal(r->user->n_identities, 0); /* brief */
        int64_t user = r->user->id, identity = r->identity_id;
        protobuf_c_message_free_unpacked(&r->base, NULL);
        assert_int_equal(s_session_user(session), user);
        Portico__Registry__GetTokensRequest g = PORTICO__REGISTRY__GET_TOKENS_REQUEST__INIT;
        g.identity_id = identity;
        ProtobufCMessage *out = NULL;
        assert_code(0, h_call("token.get", &g.base, &portico__registry__get_tokens_reply__descriptor, &out, &err), err);
        Portico__Registry__GetTokensReply *tr = (Portico__Registry__GetTokensReply *)out;
        assert_string_equal(tr->tokens->access_token, round ? "access-2" : "access-1");
        assert_string_equal(tr->tokens->refresh_token, "refresh-all-in-one");
        protobuf_c_message_free_unpacked(out, NULL);
    }
    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    long long logins = h_pg_scalar(c, "SELECT count(*) FROM audit_log WHERE action = 'user.login' AND actor = "
                                      "'allinone'");
    assert_int_equal(logins, 2);
    /* All or nothing: a session that cannot be stored (its hash is taken)
     * leaves no login record and the old tokens. */
    assert_code(PORTICO__ERROR_CODE__INTERNAL, s_login_all(5000, "allinone", "all-in-one-1", "access-3", NULL, &err),
                err);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM audit_log WHERE action = 'user.login' AND actor = "
                                    "'allinone'"),
                     logins);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM tokens t JOIN identities d ON d.id = t.identity_id "
                                    "WHERE d.bb_user_id = 5000 AND t.generation = 2"),
                     1);
    PQfinish(c);
    /* Both parts are checked like token.store and a setup session check them. */
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_login_all(5000, "allinone", "all-in-one-9", "", NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(ACCESS_TOKEN));
    Portico__Registry__Identity d = PORTICO__REGISTRY__IDENTITY__INIT;
    d.integration_id = s_integration;
    d.bb_user_id = 5000;
    d.username = "allinone";
    Portico__Registry__CreateSessionRequest cs = PORTICO__REGISTRY__CREATE_SESSION_REQUEST__INIT;
    cs.token_hash.data = (uint8_t *)"short";
    cs.token_hash.len = 5;
    Portico__Registry__LoginRequest req = PORTICO__REGISTRY__LOGIN_REQUEST__INIT;
    req.identity = &d;
    req.session = &cs;
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, h_call("user.login", &req.base, NULL, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(TOKEN_HASH));
}

static void test_get_and_list_users(void **state)
{
    (void)state;
    bus_error_t err;
    ProtobufCMessage *out = NULL;
    Portico__Registry__ListUsersRequest lr = PORTICO__REGISTRY__LIST_USERS_REQUEST__INIT;
    lr.limit = 3;
    assert_code(0, h_call("user.list", &lr.base, &portico__registry__list_users_reply__descriptor, &out, &err), err);
    Portico__Registry__ListUsersReply *page = (Portico__Registry__ListUsersReply *)out;
    assert_int_equal(page->n_users, 3);
    assert_true(page->users[0]->id < page->users[1]->id && page->users[1]->id < page->users[2]->id);
    for (size_t i = 0; i < page->n_users; i++)
        assert_int_equal(page->users[i]->n_identities, 1);
    lr.after_id = page->users[2]->id;
    int64_t first = page->users[0]->id;
    protobuf_c_message_free_unpacked(out, NULL);
    assert_code(0, h_call("user.list", &lr.base, &portico__registry__list_users_reply__descriptor, &out, &err), err);
    page = (Portico__Registry__ListUsersReply *)out;
    assert_true(page->n_users >= 3);
    assert_true(page->users[0]->id > lr.after_id);
    protobuf_c_message_free_unpacked(out, NULL);

    Portico__Registry__GetUserRequest gu = PORTICO__REGISTRY__GET_USER_REQUEST__INIT;
    gu.id = first;
    assert_code(0, h_call("user.get", &gu.base, &portico__registry__get_user_reply__descriptor, &out, &err), err);
    assert_int_equal(((Portico__Registry__GetUserReply *)out)->user->id, first);
    protobuf_c_message_free_unpacked(out, NULL);
    gu.id = 99999999;
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, h_call("user.get", &gu.base, NULL, NULL, &err), err);
    lr.limit = 100000;
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, h_call("user.list", &lr.base, NULL, NULL, &err), err);
}

/* Many callers at once, as the web and as the broker: every call gets its
 * own answer (the user it asked for), none is lost or given to another. */
#define FETCHERS 8
#define FETCH_USERS 5
#define FETCHES 150

typedef struct {
    pthread_barrier_t *barrier;
    const int64_t *ids;
    const char *const *names;
    int index;
    int wrong, failed;
} fetcher_t;

static void *s_fetcher(void *arg)
{
    fetcher_t *f = arg;
    const char *endpoint = h_env("REG_TEST_ENDPOINT");
    bus_client_t *client = f->index % 2 ? bus_client_new_as(endpoint, "registry", "broker")
                                        : bus_client_new(endpoint, "registry");
    pthread_barrier_wait(f->barrier);
    for (int i = 0; client && i < FETCHES; i++) {
        int k = (f->index + i) % FETCH_USERS;
        Portico__Registry__GetUserRequest gu = PORTICO__REGISTRY__GET_USER_REQUEST__INIT;
        gu.id = f->ids[k];
        ProtobufCMessage *out = NULL;
        bus_error_t err;
        if (h_call_with(client, "user.get", &gu.base, &portico__registry__get_user_reply__descriptor, &out, &err)) {
            f->failed++;
            continue;
        }
        const Portico__Registry__User *u = ((Portico__Registry__GetUserReply *)out)->user;
        if (!u || u->id != f->ids[k] || strcmp(u->name, f->names[k]) != 0)
            f->wrong++;
        protobuf_c_message_free_unpacked(out, NULL);
    }
    if (!client)
        f->failed = FETCHES;
    bus_client_destroy(&client);
    return NULL;
}

static void test_concurrent_calls_get_their_own_answers(void **state)
{
    (void)state;
    int64_t ids[FETCH_USERS];
    char names[FETCH_USERS][32];
    const char *name_p[FETCH_USERS];
    for (int k = 0; k < FETCH_USERS; k++) {
        snprintf(names[k], sizeof names[k], "fetch%ld", h_unique());
        name_p[k] = names[k];
        assert_true(h_login(s_integration, 700000 + h_unique(), names[k], &ids[k]) > 0);
    }
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, FETCHERS);
    fetcher_t f[FETCHERS];
    pthread_t th[FETCHERS];
    for (int i = 0; i < FETCHERS; i++) {
        f[i] = (fetcher_t){&barrier, ids, name_p, i, 0, 0};
        pthread_create(&th[i], NULL, s_fetcher, &f[i]);
    }
    int wrong = 0, failed = 0;
    for (int i = 0; i < FETCHERS; i++) {
        pthread_join(th[i], NULL);
        wrong += f[i].wrong;
        failed += f[i].failed;
    }
    pthread_barrier_destroy(&barrier);
    if (wrong || failed) {
        print_error("%d of %d calls answered another request, %d failed\n", wrong, FETCHERS * FETCHES, failed);
        fail();
    }
}

/* Who s_set_admin says is asking. */
static const char *s_actor = "admin-test";

static int s_set_admin(int64_t id, const char *name, bool admin, bus_error_t *err,
                       Portico__Registry__GetUserReply **out)
{
    Portico__Registry__SetAdminRequest req = PORTICO__REGISTRY__SET_ADMIN_REQUEST__INIT;
    req.id = id;
    req.name = (char *)(uintptr_t)(name ? name : "");
    req.admin = admin;
    req.actor = (char *)(uintptr_t)s_actor;
    req.addr = "203.0.113.5";
    ProtobufCMessage *m = NULL;
    int rc = h_call("user.set_admin", &req.base, &portico__registry__get_user_reply__descriptor, out ? &m : NULL, err);
    if (out)
        *out = (Portico__Registry__GetUserReply *)m;
    return rc;
}

static void test_set_admin(void **state)
{
    (void)state;
    bus_error_t err;
    Portico__Registry__GetUserReply *r = NULL;
    int64_t uid = 0;
    h_login(s_integration, 2000, "promote-me", &uid);
    assert_code(0, s_set_admin(0, "promote-me", true, &err, &r), err);
    assert_true(r->user->is_admin);
    assert_int_equal(r->user->id, uid);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    assert_code(0, s_set_admin(uid, NULL, false, &err, &r), err);
    assert_false(r->user->is_admin);
    protobuf_c_message_free_unpacked(&r->base, NULL);

    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_set_admin(0, "nobody-by-that-name", true, &err, NULL), err);
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_set_admin(99999999, NULL, true, &err, NULL), err);
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_set_admin(0, NULL, true, &err, NULL), err);

    /* Same user name on two instances: the name alone is ambiguous. */
    int64_t other = h_make_integration(NULL);
    h_login(other, 2001, "promote-me", NULL);
    assert_code(PORTICO__ERROR_CODE__CONFLICT, s_set_admin(0, "promote-me", true, &err, NULL), err);
    assert_int_equal(err.detail, DETAIL(AMBIGUOUS));

    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM audit_log WHERE actor = 'admin-test' "
                                    "AND action IN ('admin.grant', 'admin.revoke') AND addr = '203.0.113.5'"),
                     2);

    /* An admin whose user name is as long as user.login takes (255 bytes)
     * is named whole; one byte more is not a user name. */
    char longest[257];
    memset(longest, 'a', 256);
    longest[256] = '\0';
    s_actor = longest;
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_set_admin(uid, NULL, true, &err, NULL), err);
    longest[255] = '\0';
    assert_code(0, s_set_admin(uid, NULL, true, &err, NULL), err);
    s_actor = "admin-test";
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM audit_log WHERE length(actor) = 255 AND action = 'admin.grant'"),
                     1);
    PQfinish(c);
}

int run_user_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_login_in_setup_mode_makes_exactly_one_admin),
        cmocka_unit_test(test_login_again_updates_the_same_user),
        cmocka_unit_test(test_login_errors),
        cmocka_unit_test(test_login_needs_a_live_pending_login),
        cmocka_unit_test(test_login_with_tokens_and_session),
        cmocka_unit_test(test_get_and_list_users),
        cmocka_unit_test(test_concurrent_calls_get_their_own_answers),
        cmocka_unit_test(test_set_admin),
    };
    return cmocka_run_group_tests_name("users", tests, NULL, NULL);
}
