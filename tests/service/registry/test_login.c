/* pending.*: logins in progress, consumed exactly once. */
#include "harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONSUMERS 8
#define ROUNDS 10

static int64_t s_integration, s_other;

typedef struct {
    const char *state; /* NULL for OAuth 1 */
    const char *browser;
    int64_t integration;
    const char *verifier;
    const char *request_token;
    const char *request_token_secret;
    const char *return_to;
    int ttl;
} pending_t;

static int s_create(const pending_t *p, bus_error_t *err)
{
    uint8_t sb[32], bb[32];
    Portico__Registry__PendingLogin pl = PORTICO__REGISTRY__PENDING_LOGIN__INIT;
    if (p->state)
        pl.state_hash = h_hash(p->state, sb);
    pl.browser_hash = h_hash(p->browser, bb);
    pl.integration_id = p->integration;
    pl.code_verifier = (char *)(uintptr_t)(p->verifier ? p->verifier : "");
    pl.request_token = (char *)(uintptr_t)(p->request_token ? p->request_token : "");
    pl.request_token_secret = (char *)(uintptr_t)(p->request_token_secret ? p->request_token_secret : "");
    pl.return_to = (char *)(uintptr_t)(p->return_to ? p->return_to : "");
    pl.ttl_seconds = p->ttl;
    Portico__Registry__CreatePendingRequest req = PORTICO__REGISTRY__CREATE_PENDING_REQUEST__INIT;
    req.pending = &pl;
    return h_call("pending.create", &req.base, NULL, NULL, err);
}

static int s_consume_with(bus_client_t *client, const char *state, const char *request_token, const char *browser,
                          int64_t integration, Portico__Registry__ConsumePendingReply **out, bus_error_t *err)
{
    uint8_t sb[32], bb[32];
    Portico__Registry__ConsumePendingRequest req = PORTICO__REGISTRY__CONSUME_PENDING_REQUEST__INIT;
    if (state)
        req.state_hash = h_hash(state, sb);
    req.request_token = (char *)(uintptr_t)(request_token ? request_token : "");
    req.browser_hash = h_hash(browser, bb);
    req.integration_id = integration;
    ProtobufCMessage *m = NULL;
    int rc = h_call_with(client, "pending.consume", &req.base, &portico__registry__consume_pending_reply__descriptor,
                         out ? &m : NULL, err);
    if (out)
        *out = (Portico__Registry__ConsumePendingReply *)m;
    return rc;
}

static int s_consume(const char *state, const char *browser, int64_t integration,
                     Portico__Registry__ConsumePendingReply **out, bus_error_t *err)
{
    return s_consume_with(h_client(), state, NULL, browser, integration, out, err);
}

static void test_round_trip(void **state)
{
    (void)state;
    bus_error_t err;
    s_integration = h_make_integration(NULL);
    s_other = h_make_integration(NULL);
    pending_t p = {"state-1", "browser-1", s_integration,        "verifier-0123456789-0123456789-0123456789-abc",
                   NULL,      NULL,        "/account?tab=repos", 0};
    assert_code(0, s_create(&p, &err), err);
    Portico__Registry__ConsumePendingReply *r = NULL;
    assert_code(0, s_consume("state-1", "browser-1", s_integration, &r, &err), err);
    Portico__Registry__PendingLogin *pl = r->pending;
    assert_string_equal(pl->code_verifier, p.verifier);
    assert_string_equal(pl->return_to, "/account?tab=repos");
    assert_int_equal(pl->integration_id, s_integration);
    assert_int_equal(pl->state_hash.len, 32);
    assert_int_equal(pl->browser_hash.len, 32);
    int64_t now = h_now_ms() / 1000;
    /* Ten minutes by default. */
    assert_true(pl->expires_at >= now + 590 && pl->expires_at <= now + 601);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    /* Once only. */
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_consume("state-1", "browser-1", s_integration, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(UNKNOWN));
}

/* One pending.create through client (a registry of a test's own, or the
 * main one); with oauth2, as login.start asks: stored only for an enabled
 * OAuth 2 integration with a client id, and the integration comes back
 * (out, when given). */
static int s_create_with(bus_client_t *client, const char *state, const char *browser, int64_t integration, bool oauth2,
                         Portico__Registry__CreatePendingReply **out, bus_error_t *err)
{
    uint8_t sb[32], bb[32];
    Portico__Registry__PendingLogin pl = PORTICO__REGISTRY__PENDING_LOGIN__INIT;
    pl.state_hash = h_hash(state, sb);
    pl.browser_hash = h_hash(browser, bb);
    pl.integration_id = integration;
    pl.code_verifier = "verifier-oauth2-0123456789-0123456789-0123456789";
    pl.return_to = "/account";
    Portico__Registry__CreatePendingRequest req = PORTICO__REGISTRY__CREATE_PENDING_REQUEST__INIT;
    req.pending = &pl;
    req.oauth2_integration = oauth2;
    ProtobufCMessage *m = NULL;
    int rc =
        h_call_with(client, "pending.create", &req.base, &portico__registry__create_pending_reply__descriptor, &m, err);
    if (out)
        *out = (Portico__Registry__CreatePendingReply *)m;
    else if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

/* login.start's call, to the main registry; and the callback's consume
 * with the integration and its secrets. */
static int s_create_for_oauth2_in(const char *state, const char *browser, int64_t integration,
                                  Portico__Registry__CreatePendingReply **out, bus_error_t *err)
{
    return s_create_with(h_client(), state, browser, integration, true, out, err);
}

static int s_create_for_oauth2(const char *state, int64_t integration, Portico__Registry__CreatePendingReply **out,
                               bus_error_t *err)
{
    return s_create_for_oauth2_in(state, "browser-o2", integration, out, err);
}

static void test_oauth2_start_and_consume_with_the_integration(void **state)
{
    (void)state;
    bus_error_t err;
    int64_t id = h_make_integration("the-client-secret");
    Portico__Registry__CreatePendingReply *cr = NULL;
    assert_code(0, s_create_for_oauth2("state-o2", id, &cr, &err), err);
    assert_true(cr->stored);
    assert_int_equal(cr->integration->id, id);
    assert_int_equal(cr->integration->oauth_version, 2);
    assert_true(cr->integration->enabled);
    assert_true(strncmp(cr->integration->client_id, "client-", 7) == 0);
    assert_true(strncmp(cr->integration->base_url, "https://bb", 10) == 0);
    protobuf_c_message_free_unpacked(&cr->base, NULL);

    uint8_t sb[32], bb[32];
    Portico__Registry__ConsumePendingRequest q = PORTICO__REGISTRY__CONSUME_PENDING_REQUEST__INIT;
    q.state_hash = h_hash("state-o2", sb);
    q.browser_hash = h_hash("browser-o2", bb);
    q.integration_id = id;
    q.with_integration = true;
    ProtobufCMessage *m = NULL;
    assert_code(0, h_call("pending.consume", &q.base, &portico__registry__consume_pending_reply__descriptor, &m, &err),
                err);
    Portico__Registry__ConsumePendingReply *r = (Portico__Registry__ConsumePendingReply *)m;
    assert_string_equal(r->pending->code_verifier, "verifier-oauth2-0123456789-0123456789-0123456789");
    assert_string_equal(r->pending->return_to, "/account");
    assert_non_null(r->integration);
    assert_int_equal(r->integration->id, id);
    assert_non_null(r->secrets);
    assert_string_equal(r->secrets->client_secret, "the-client-secret");
    /* No access rules: everyone with an account there. */
    assert_non_null(r->access);
    assert_int_equal(r->access->integration_id, id);
    assert_string_equal(r->access->resource, "");
    assert_int_equal(r->access->n_patterns, 0);
    protobuf_c_message_free_unpacked(m, NULL);
    /* Consumed: a second time finds nothing. */
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND,
                h_call("pending.consume", &q.base, &portico__registry__consume_pending_reply__descriptor, &m, &err),
                err);

    /* With access rules: they come with the login, when it is only read
     * (keep) and when it is used up. */
    char *patterns[] = {"*@example.com", "jdoe"};
    Portico__Registry__AccessRules rules = PORTICO__REGISTRY__ACCESS_RULES__INIT;
    rules.integration_id = id;
    rules.resource = "PROJ/repo";
    rules.patterns = patterns;
    rules.n_patterns = 2;
    rules.contact = "the platform team";
    Portico__Registry__SetAccessRequest set = PORTICO__REGISTRY__SET_ACCESS_REQUEST__INIT;
    set.rules = &rules;
    set.actor = "login-test";
    assert_code(0, h_call("access.set", &set.base, NULL, NULL, &err), err);
    assert_code(0, s_create_for_oauth2("state-o2-rules", id, &cr, &err), err);
    protobuf_c_message_free_unpacked(&cr->base, NULL);
    q.state_hash = h_hash("state-o2-rules", sb);
    for (int keep = 1; keep >= 0; keep--) {
        q.keep = keep;
        assert_code(0,
                    h_call("pending.consume", &q.base, &portico__registry__consume_pending_reply__descriptor, &m, &err),
                    err);
        r = (Portico__Registry__ConsumePendingReply *)m;
        assert_string_equal(r->pending->code_verifier, "verifier-oauth2-0123456789-0123456789-0123456789");
        assert_string_equal(r->secrets->client_secret, "the-client-secret");
        assert_int_equal(r->access->integration_id, id);
        assert_string_equal(r->access->resource, "PROJ/repo");
        assert_int_equal(r->access->n_patterns, 2);
        assert_string_equal(r->access->patterns[0], "*@example.com");
        assert_string_equal(r->access->patterns[1], "jdoe");
        assert_string_equal(r->access->contact, "the platform team");
        assert_string_equal(r->access->updated_by, "login-test");
        assert_true(r->access->updated_at > 0);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    q.keep = false;

    /* A disabled integration: nothing stored, the integration says why. */
    Portico__Registry__UpdateIntegrationRequest up = PORTICO__REGISTRY__UPDATE_INTEGRATION_REQUEST__INIT;
    up.id = id;
    up.set_enabled = true;
    up.enabled = false;
    assert_code(0, h_call("integration.update", &up.base, NULL, NULL, &err), err);
    assert_code(0, s_create_for_oauth2("state-o2-disabled", id, &cr, &err), err);
    assert_false(cr->stored);
    assert_false(cr->integration->enabled);
    protobuf_c_message_free_unpacked(&cr->base, NULL);
    PGconn *c = h_pg(NULL);
    char hex[65], sql[200];
    h_hash_hex("state-o2-disabled", hex);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pending_logins WHERE state_hash = '\\x%s'", hex);
    assert_int_equal(h_pg_scalar(c, sql), 0);
    PQfinish(c);
    /* No such integration. */
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_create_for_oauth2("state-o2-none", 99999999, &cr, &err), err);
    assert_int_equal(err.detail, DETAIL(INTEGRATION));
}

static void test_other_browser_or_integration_is_refused_and_kept(void **state)
{
    (void)state;
    bus_error_t err;
    pending_t p = {"state-2", "browser-2", s_integration, "verifier-2", NULL, NULL, NULL, 0};
    assert_code(0, s_create(&p, &err), err);
    assert_code(PORTICO__ERROR_CODE__FORBIDDEN, s_consume("state-2", "attacker-browser", s_integration, NULL, &err),
                err);
    assert_int_equal(err.detail, DETAIL(BROWSER));
    assert_code(PORTICO__ERROR_CODE__FORBIDDEN, s_consume("state-2", "browser-2", s_other, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(INTEGRATION));
    /* The victim's login still completes. */
    Portico__Registry__ConsumePendingReply *r = NULL;
    assert_code(0, s_consume("state-2", "browser-2", s_integration, &r, &err), err);
    assert_string_equal(r->pending->code_verifier, "verifier-2");
    assert_string_equal(r->pending->return_to, "/");
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* An OAuth 2 integration made through a registry of a test's own. */
static int64_t s_integration_with(bus_client_t *client, const char *base_url)
{
    bus_error_t err;
    Portico__Registry__Integration in = PORTICO__REGISTRY__INTEGRATION__INIT;
    in.base_url = (char *)(uintptr_t)base_url;
    in.oauth_version = 2;
    in.client_id = "c";
    Portico__Registry__CreateIntegrationRequest cr = PORTICO__REGISTRY__CREATE_INTEGRATION_REQUEST__INIT;
    cr.integration = &in;
    cr.client_secret = "s";
    ProtobufCMessage *out = NULL;
    assert_code(0,
                h_call_with(client, "integration.create", &cr.base,
                            &portico__registry__get_integration_reply__descriptor, &out, &err),
                err);
    int64_t id = ((Portico__Registry__GetIntegrationReply *)out)->integration->id;
    protobuf_c_message_free_unpacked(out, NULL);
    return id;
}

/* On a database and registry of their own, whose sweep never runs: the
 * main registry sweeps every second and would delete the row first. */
static void test_expired_is_deleted_and_says_so(void **state)
{
    (void)state;
    bus_error_t err;
    h_create_database("expiry");
    const char *env[] = {"PORTICO_SWEEP_INTERVAL_S=3600", NULL};
    h_registry_t r;
    assert_int_equal(h_registry_start(&r, "expiry", env), 0);
    bus_client_t *client = bus_client_new(r.endpoint, "registry");
    int64_t integration = s_integration_with(client, "https://expiry.example.com");

    uint8_t sb[32], bb[32];
    Portico__Registry__PendingLogin pl = PORTICO__REGISTRY__PENDING_LOGIN__INIT;
    pl.browser_hash = h_hash("browser-3", bb);
    pl.integration_id = integration;
    pl.code_verifier = "verifier-3";
    pl.ttl_seconds = 1;
    Portico__Registry__CreatePendingRequest pr = PORTICO__REGISTRY__CREATE_PENDING_REQUEST__INIT;
    pr.pending = &pl;
    pl.state_hash = h_hash("state-3", sb);
    assert_code(0, h_call_with(client, "pending.create", &pr.base, NULL, NULL, &err), err);
    pl.state_hash = h_hash("state-3b", sb);
    assert_code(0, h_call_with(client, "pending.create", &pr.base, NULL, NULL, &err), err);
    h_sleep_ms(1200);

    assert_code(PORTICO__ERROR_CODE__NOT_FOUND,
                s_consume_with(client, "state-3", NULL, "browser-3", integration, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(EXPIRED));
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND,
                s_consume_with(client, "state-3", NULL, "browser-3", integration, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(UNKNOWN));
    /* Also when another browser asks first: expired, and gone. */
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND,
                s_consume_with(client, "state-3b", NULL, "elsewhere", integration, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(EXPIRED));
    PGconn *c = h_pg("expiry");
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM pending_logins"), 0);
    PQfinish(c);
    bus_client_destroy(&client);
    assert_int_equal(h_registry_stop(&r, NULL), 0);
}

static void test_oauth1_by_request_token(void **state)
{
    (void)state;
    bus_error_t err;
    pending_t p = {NULL, "browser-4", s_integration, NULL, "request-token-4", "request-secret-4", "/x", 0};
    assert_code(0, s_create(&p, &err), err);
    Portico__Registry__ConsumePendingReply *r = NULL;
    assert_code(0, s_consume_with(h_client(), NULL, "request-token-4", "browser-4", s_integration, &r, &err), err);
    assert_string_equal(r->pending->request_token, "request-token-4");
    assert_string_equal(r->pending->request_token_secret, "request-secret-4");
    assert_string_equal(r->pending->code_verifier, "");
    assert_int_equal(r->pending->state_hash.len, 0);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND,
                s_consume_with(h_client(), NULL, "request-token-4", "browser-4", s_integration, NULL, &err), err);
}

static void test_validation(void **state)
{
    (void)state;
    bus_error_t err;
    pending_t cases[] = {
        {"s-v1", "b", s_integration, "v", NULL, NULL, "//evil.example.com", 0},
        {"s-v2", "b", s_integration, "v", NULL, NULL, "https://evil.example.com/", 0},
        {"s-v3", "b", s_integration, "v", NULL, NULL, "/\\evil", 0},
        {NULL, "b", s_integration, "v", NULL, NULL, NULL, 0},
        {"s-v5", "b", 0, "v", NULL, NULL, NULL, 0},
        {"s-v6", "b", s_integration, "v", NULL, NULL, NULL, 7200},
    };
    const char *fields[] = {"return_to", "return_to", "return_to", "state_hash", "integration_id", "ttl_seconds"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = s_create(&cases[i], &err);
        if (rc != PORTICO__ERROR_CODE__BAD_REQUEST || strcmp(bus_detail_name(err.detail), fields[i])) {
            print_error("case %zu: got %s \"%s\"\n", i, bus_code_name(rc), bus_detail_name(err.detail));
            fail();
        }
    }
    pending_t unknown = {"s-v7", "b", 99999999, "v", NULL, NULL, NULL, 0};
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_create(&unknown, &err), err);
    assert_int_equal(err.detail, DETAIL(INTEGRATION));
    PGconn *c = h_pg(NULL);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM pending_logins WHERE integration_id = 99999999"), 0);
    PQfinish(c);
    pending_t dup = {"s-v8", "b", s_integration, "v", NULL, NULL, NULL, 0};
    assert_code(0, s_create(&dup, &err), err);
    assert_code(PORTICO__ERROR_CODE__CONFLICT, s_create(&dup, &err), err);
    assert_code(PORTICO__ERROR_CODE__BAD_REQUEST, s_consume("s-v8", "b", 0, NULL, &err), err);
}

typedef struct {
    pthread_barrier_t *barrier;
    const char *state;
    int64_t integration;
    int code;
    char detail[64];
} consumer_t;

static void *s_consumer(void *arg)
{
    consumer_t *c = arg;
    bus_client_t *client = bus_client_new(h_env("REG_TEST_ENDPOINT"), "registry");
    bus_error_t err;
    /* Connect before the race so every consumer starts together. */
    h_call_with(client, "ping", NULL, NULL, NULL, &err);
    pthread_barrier_wait(c->barrier);
    c->code = s_consume_with(client, c->state, NULL, "browser-race", c->integration, NULL, &err);
    snprintf(c->detail, sizeof c->detail, "%s", bus_detail_name(err.detail));
    bus_client_destroy(&client);
    return NULL;
}

static void test_eight_consumers_exactly_one_wins(void **state)
{
    (void)state;
    for (int round = 0; round < ROUNDS; round++) {
        char st[32];
        snprintf(st, sizeof st, "race-%d", round);
        bus_error_t err;
        pending_t p = {st, "browser-race", s_integration, "race-verifier", NULL, NULL, NULL, 0};
        assert_code(0, s_create(&p, &err), err);
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, CONSUMERS);
        consumer_t consumers[CONSUMERS];
        pthread_t threads[CONSUMERS];
        for (int i = 0; i < CONSUMERS; i++) {
            consumers[i] = (consumer_t){&barrier, st, s_integration, -1, ""};
            pthread_create(&threads[i], NULL, s_consumer, &consumers[i]);
        }
        int wins = 0, unknown = 0;
        for (int i = 0; i < CONSUMERS; i++) {
            pthread_join(threads[i], NULL);
            wins += consumers[i].code == 0;
            unknown += consumers[i].code == PORTICO__ERROR_CODE__NOT_FOUND && !strcmp(consumers[i].detail, "unknown");
        }
        pthread_barrier_destroy(&barrier);
        if (wins != 1 || unknown != CONSUMERS - 1) {
            print_error("round %d: %d winners, %d told unknown\n", round, wins, unknown);
            fail();
        }
    }
}

static void test_expired_pending_logins_are_swept(void **state)
{
    (void)state;
    bus_error_t err;
    pending_t p = {"state-sweep", "browser-sweep", s_integration, "v", NULL, NULL, NULL, 1};
    assert_code(0, s_create(&p, &err), err);
    PGconn *c = h_pg(NULL);
    assert_non_null(c);
    char hex[65], sql[200];
    h_hash_hex("state-sweep", hex);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pending_logins WHERE state_hash = '\\x%s'", hex);
    assert_int_equal(h_pg_scalar(c, sql), 1);
    /* Sweeps run every second in this test setup. */
    int64_t until = h_now_ms() + 6000;
    long long n;
    while ((n = h_pg_scalar(c, sql)) != 0 && h_now_ms() < until)
        h_sleep_ms(200);
    assert_int_equal(n, 0);
    PQfinish(c);
}

/* A browser holds at most PORTICO_PENDING_LOGINS_PER_BROWSER (10 here)
 * unfinished logins: the next start is refused, stores nothing, and names
 * the cap; another browser is not affected. Both kinds of start. */
static void test_a_browser_cap(void **state)
{
    (void)state;
    bus_error_t err;
    PGconn *c = h_pg(NULL);
    int64_t id = h_make_integration("the-client-secret");
    char st[32];
    for (int i = 0; i < 10; i++) {
        snprintf(st, sizeof st, "cap-state-%d", i);
        pending_t p = {st, "browser-cap", id, "verifier-cap-0123456789-0123456789-0123456789", NULL, NULL, NULL, 0};
        assert_code(0, s_create(&p, &err), err);
    }
    long long before = h_pg_scalar(c, "SELECT count(*) FROM pending_logins");
    pending_t p = {"cap-state-x", "browser-cap", id,   "verifier-cap-0123456789-0123456789-0123456789",
                   NULL,          NULL,          NULL, 0};
    assert_code(PORTICO__ERROR_CODE__RATE_LIMITED, s_create(&p, &err), err);
    assert_int_equal(err.detail, DETAIL(PENDING_BROWSER));
    Portico__Registry__CreatePendingReply *cr = NULL;
    assert_code(PORTICO__ERROR_CODE__RATE_LIMITED, s_create_for_oauth2_in("cap-state-y", "browser-cap", id, &cr, &err),
                err);
    assert_int_equal(err.detail, DETAIL(PENDING_BROWSER));
    assert_null(cr);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM pending_logins"), before);
    /* An expired one no longer counts. */
    assert_int_equal(h_pg_exec(c, "UPDATE pending_logins SET expires_at = now() - interval '1 second' "
                                  "WHERE state_hash = sha256('cap-state-0'::bytea)"),
                     0);
    assert_code(0, s_create_for_oauth2_in("cap-state-z", "browser-cap", id, &cr, &err), err);
    assert_true(cr->stored);
    protobuf_c_message_free_unpacked(&cr->base, NULL);
    /* Another browser starts as usual; an unknown integration is named. */
    p.browser = "browser-cap-2";
    assert_code(0, s_create(&p, &err), err);
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND,
                s_create_for_oauth2_in("cap-state-w", "browser-cap-3", 999999, &cr, &err), err);
    assert_int_equal(err.detail, DETAIL(INTEGRATION));
    PQfinish(c);
}

/* Everyone's unfinished logins are at most PORTICO_PENDING_LOGINS_MAX (300
 * here, on a registry and database of their own, no sweep): the start that
 * would go past it is stored, and the live one nearest its expiry gives
 * way, for both kinds of start; expired ones do not count. The registry
 * skips that count while the table's file is under 300 x 28 = 8,400 bytes
 * (one 8 KB page: the first starts), and must not skip it once 300 rows
 * are there (several pages). */
static void test_the_total_cap(void **state)
{
    (void)state;
    bus_error_t err;
    h_create_database("pendcap");
    const char *env[] = {"PORTICO_SWEEP_INTERVAL_S=3600", "PORTICO_PENDING_LOGINS_MAX=300", NULL};
    h_registry_t r;
    assert_int_equal(h_registry_start(&r, "pendcap", env), 0);
    bus_client_t *client = bus_client_new(r.endpoint, "registry");
    int64_t integration = s_integration_with(client, "https://cap.example.com");
    PGconn *c = h_pg("pendcap");
    /* A file of one page: the count is skipped, and starts go on. */
    assert_code(0, s_create_with(client, "all-a", "all-browser-a", integration, false, NULL, &err), err);
    assert_code(0, s_create_with(client, "all-b", "all-browser-b", integration, true, NULL, &err), err);
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO pending_logins (state_hash, integration_id, code_verifier, browser_hash, expires_at) "
             "SELECT sha256(('all-' || g)::bytea), %" PRId64 ", 'v'::bytea, sha256(('all-browser-' || g)::bytea), "
             "now() + interval '10 minutes' FROM generate_series(1, 297) g",
             integration);
    assert_int_equal(h_pg_exec(c, sql), 0);
    assert_true(h_pg_scalar(c, "SELECT pg_relation_size('pending_logins')") >= 300 * 28);
    /* No start locks its integration's row: a lock would set the row's
     * xmax, and write a log record that makes the start's commit wait for
     * the disk. */
    snprintf(sql, sizeof sql, "SELECT xmax::text::bigint FROM integrations WHERE id = %" PRId64, integration);
    long long xmax = h_pg_scalar(c, sql);
    /* 299 live: one more fits; past that, of either kind, the oldest go. */
    assert_code(0, s_create_with(client, "all-c", "all-browser-c", integration, true, NULL, &err), err);
    assert_int_equal(h_pg_scalar(c, sql), xmax);
    assert_int_equal(h_pg_exec(c, "UPDATE pending_logins SET expires_at = now() + interval '1 minute' "
                                  "WHERE state_hash IN (sha256('all-7'::bytea), sha256('all-8'::bytea))"),
                     0);
    assert_code(0, s_create_with(client, "all-d", "all-browser-d", integration, true, NULL, &err), err);
    assert_code(0, s_create_with(client, "all-e", "all-browser-e", integration, false, NULL, &err), err);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM pending_logins"), 300);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM pending_logins WHERE state_hash IN "
                                    "(sha256('all-7'::bytea), sha256('all-8'::bytea))"),
                     0);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM pending_logins WHERE state_hash IN "
                                    "(sha256('all-d'::bytea), sha256('all-e'::bytea))"),
                     2);
    /* A start that is not stored takes nobody's place: no integration, or
     * an OAuth 2 one that cannot take logins (disabled). */
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND,
                s_create_with(client, "all-g", "all-browser-g", 999999, false, NULL, &err), err);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM pending_logins"), 300);
    int64_t off = s_integration_with(client, "https://cap-off.example.com");
    snprintf(sql, sizeof sql, "UPDATE integrations SET enabled = false WHERE id = %" PRId64, off);
    assert_int_equal(h_pg_exec(c, sql), 0);
    Portico__Registry__CreatePendingReply *cr = NULL;
    assert_code(0, s_create_with(client, "all-h", "all-browser-h", off, true, &cr, &err), err);
    assert_false(cr->stored);
    protobuf_c_message_free_unpacked(&cr->base, NULL);
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM pending_logins"), 300);
    snprintf(sql, sizeof sql, "SELECT xmax::text::bigint FROM integrations WHERE id = %" PRId64, integration);
    /* Expired ones make room again. */
    assert_int_equal(h_pg_exec(c, "UPDATE pending_logins SET expires_at = now() - interval '1 second' "
                                  "WHERE state_hash = sha256('all-1'::bytea)"),
                     0);
    assert_code(0, s_create_with(client, "all-f", "all-browser-f", integration, false, NULL, &err), err);
    assert_int_equal(h_pg_scalar(c, sql), xmax);
    PQfinish(c);
    bus_client_destroy(&client);
    assert_int_equal(h_registry_stop(&r, NULL), 0);
}

/* One pending.consume of a login of "browser-void" (keep: only read;
 * with_integration: as the broker asks). */
static int s_consume_void(const char *state, int64_t integration, bool with_integration, bool keep, bus_error_t *err)
{
    uint8_t sb[32], bb[32];
    Portico__Registry__ConsumePendingRequest q = PORTICO__REGISTRY__CONSUME_PENDING_REQUEST__INIT;
    q.state_hash = h_hash(state, sb);
    q.browser_hash = h_hash("browser-void", bb);
    q.integration_id = integration;
    q.with_integration = with_integration;
    q.keep = keep;
    ProtobufCMessage *m = NULL;
    int rc = h_call("pending.consume", &q.base, &portico__registry__consume_pending_reply__descriptor, &m, err);
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

/* A login whose integration was deleted or moved to another Base URL after
 * it started is void (a start racing integration.delete or a host change
 * can store one: pending_logins has no foreign key). No read or use of it
 * gives it out, user.login cannot finish it, and the first callback that
 * names it deletes it. */
static void test_a_void_login_is_refused_and_deleted(void **state)
{
    (void)state;
    bus_error_t err;
    int64_t id = h_make_integration("the-client-secret");
    Portico__Registry__CreatePendingReply *cr = NULL;
    const char *states[] = {"void-a", "void-b", "void-c", "void-d", "void-e"};
    for (size_t i = 0; i < 5; i++) {
        assert_code(0, s_create_for_oauth2_in(states[i], "browser-void", id, &cr, &err), err);
        assert_true(cr->stored);
        protobuf_c_message_free_unpacked(&cr->base, NULL);
    }
    PGconn *c = h_pg(NULL);
    char sql[256];
    /* Moved behind the registry's back, as a start stored after the move's
     * own clean-up ran would see it. */
    snprintf(sql, sizeof sql, "UPDATE integrations SET base_url = base_url || '/moved' WHERE id = %" PRId64, id);
    assert_int_equal(h_pg_exec(c, sql), 0);
    /* The broker's read (with the integration, kept): refused, and gone. */
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_consume_void("void-a", id, true, true, &err), err);
    assert_int_equal(err.detail, DETAIL(UNKNOWN));
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pending_logins WHERE integration_id = %" PRId64, id);
    assert_int_equal(h_pg_scalar(c, sql), 4);
    /* user.login refuses to finish one and writes nothing. */
    uint8_t sb[32], bb[32];
    Portico__Registry__ConsumePendingRequest finish = PORTICO__REGISTRY__CONSUME_PENDING_REQUEST__INIT;
    finish.state_hash = h_hash("void-b", sb);
    finish.browser_hash = h_hash("browser-void", bb);
    finish.integration_id = id;
    Portico__Registry__Identity d = PORTICO__REGISTRY__IDENTITY__INIT;
    d.integration_id = id;
    d.bb_user_id = h_unique();
    d.username = "void-user";
    Portico__Registry__LoginRequest lr = PORTICO__REGISTRY__LOGIN_REQUEST__INIT;
    lr.identity = &d;
    lr.pending = &finish;
    assert_code(PORTICO__ERROR_CODE__FORBIDDEN, h_call("user.login", &lr.base, NULL, NULL, &err), err);
    assert_int_equal(err.detail, DETAIL(PENDING));
    assert_int_equal(h_pg_scalar(c, "SELECT count(*) FROM identities WHERE username = 'void-user'"), 0);
    /* The plain read refuses it too. */
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_consume_void("void-b", id, false, true, &err), err);
    assert_int_equal(err.detail, DETAIL(UNKNOWN));
    assert_int_equal(h_pg_scalar(c, sql), 3);
    /* Back at the Base URL they were sent to: not void. */
    snprintf(sql, sizeof sql, "UPDATE integrations SET base_url = left(base_url, -6) WHERE id = %" PRId64, id);
    assert_int_equal(h_pg_exec(c, sql), 0);
    assert_code(0, s_consume_void("void-c", id, true, true, &err), err);
    /* The integration deleted behind the registry's back (no foreign key:
     * the rows stay, void): neither kind of use gives them out. */
    snprintf(sql, sizeof sql, "DELETE FROM integrations WHERE id = %" PRId64, id);
    assert_int_equal(h_pg_exec(c, sql), 0);
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_consume_void("void-c", id, true, false, &err), err);
    assert_int_equal(err.detail, DETAIL(UNKNOWN));
    assert_code(PORTICO__ERROR_CODE__NOT_FOUND, s_consume_void("void-d", id, false, false, &err), err);
    assert_int_equal(err.detail, DETAIL(UNKNOWN));
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pending_logins WHERE integration_id = %" PRId64, id);
    assert_int_equal(h_pg_scalar(c, sql), 1);
    PQfinish(c);
}

int run_login_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_oauth2_start_and_consume_with_the_integration),
        cmocka_unit_test(test_other_browser_or_integration_is_refused_and_kept),
        cmocka_unit_test(test_expired_is_deleted_and_says_so),
        cmocka_unit_test(test_oauth1_by_request_token),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_eight_consumers_exactly_one_wins),
        cmocka_unit_test(test_expired_pending_logins_are_swept),
        cmocka_unit_test(test_a_browser_cap),
        cmocka_unit_test(test_the_total_cap),
        cmocka_unit_test(test_a_void_login_is_refused_and_deleted),
    };
    return cmocka_run_group_tests_name("pending logins", tests, NULL, NULL);
}
