/* Registry throughput over the bus, with N concurrent clients:
 *   - session lookups per second (the hot read path)
 *   - login write paths per second: what one login costs the registry
 *     (pending.create, pending.consume, and user.login that also stores the
 *     tokens and starts the session), and the same work with user.login and
 *     token.store apart (a session starts only inside user.login) to compare
 * The bench speaks as the web or as the broker, whichever the method is
 * declared for (CURVE keys from PORTICO_BUS_KEYS_DIR).
 * Figures are printed, never asserted; registry_bench.sh prints them next
 * to pgbench -S and -N on the same cluster in the same run.
 *
 *   registry_bench ENDPOINT [clients] [seconds] */
#include "bus.h"
#include "crypto.h"
#include "registry.pb-c.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SESSIONS 1000
#define MAX_SAMPLES 2000000
#define CALL_TIMEOUT_MS 5000

static const char *s_endpoint;
static int64_t s_integration, s_user;
static long s_session_base;
static pthread_barrier_t s_start;

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void s_hash(const char *label, long n, uint8_t out[32])
{
    char text[96];
    snprintf(text, sizeof text, "%s-%ld", label, n);
    crypto_sha256(text, strlen(text), out);
}

/* The broker's methods go through this thread's broker connection. */
static bool s_broker_method(const char *m)
{
    return !strncmp(m, "pending.", 8) || !strncmp(m, "token.", 6) || !strcmp(m, "user.login");
}

static int s_call(bus_client_t *c, const char *method, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
    static _Thread_local bus_client_t *broker;
    bus_error_t err;
    if (s_broker_method(method)) {
        if (!broker)
            broker = bus_client_new_as(s_endpoint, "registry", "broker");
        c = broker;
    }
    if (bus_call(c, method, req, desc, out, CALL_TIMEOUT_MS, &err) < 0) {
        fprintf(stderr, "registry_bench: %s: %s (%s)\n", method, err.message, bus_detail_name(err.detail));
        return -1;
    }
    return 0;
}

/* An integration, a user, and SESSIONS sessions to look up. */
static int s_prepare(void)
{
    bus_client_t *c = bus_client_new_as(s_endpoint, "registry", "web");
    char url[96], client_id[64];
    long u = (long)time(NULL);
    snprintf(url, sizeof url, "https://bench%ld.example.com", u);
    snprintf(client_id, sizeof client_id, "bench-%ld", u);
    Portico__Registry__Integration in = PORTICO__REGISTRY__INTEGRATION__INIT;
    in.base_url = url;
    in.oauth_version = 2;
    in.client_id = client_id;
    Portico__Registry__CreateIntegrationRequest cr = PORTICO__REGISTRY__CREATE_INTEGRATION_REQUEST__INIT;
    cr.integration = &in;
    cr.client_secret = "bench-secret";
    ProtobufCMessage *out = NULL;
    if (s_call(c, "integration.create", &cr.base, &portico__registry__get_integration_reply__descriptor, &out) < 0)
        return -1;
    s_integration = ((Portico__Registry__GetIntegrationReply *)out)->integration->id;
    protobuf_c_message_free_unpacked(out, NULL);

    Portico__Registry__Identity d = PORTICO__REGISTRY__IDENTITY__INIT;
    d.integration_id = s_integration;
    d.bb_user_id = 1;
    d.username = "bench-user";
    Portico__Registry__LoginRequest lr = PORTICO__REGISTRY__LOGIN_REQUEST__INIT;
    lr.identity = &d;
    lr.brief = true;
    /* Sessions start only with a login: log in SESSIONS times. */
    s_session_base = u * SESSIONS;
    for (long i = 0; i < SESSIONS; i++) {
        uint8_t h[32];
        s_hash("bench-session", s_session_base + i, h);
        Portico__Registry__CreateSessionRequest cs = PORTICO__REGISTRY__CREATE_SESSION_REQUEST__INIT;
        cs.token_hash.data = h;
        cs.token_hash.len = 32;
        lr.session = &cs;
        /* Every login finishes a pending one. */
        uint8_t st[32], br[32];
        s_hash("bench-prepare-state", s_session_base + i, st);
        s_hash("bench-prepare-browser", s_session_base + i, br);
        Portico__Registry__PendingLogin pl = PORTICO__REGISTRY__PENDING_LOGIN__INIT;
        pl.state_hash.data = st;
        pl.state_hash.len = 32;
        pl.browser_hash.data = br;
        pl.browser_hash.len = 32;
        pl.integration_id = s_integration;
        pl.code_verifier = "bench-verifier";
        Portico__Registry__CreatePendingRequest cp = PORTICO__REGISTRY__CREATE_PENDING_REQUEST__INIT;
        cp.pending = &pl;
        if (s_call(c, "pending.create", &cp.base, NULL, NULL) < 0)
            return -1;
        Portico__Registry__ConsumePendingRequest fin = PORTICO__REGISTRY__CONSUME_PENDING_REQUEST__INIT;
        fin.state_hash = pl.state_hash;
        fin.browser_hash = pl.browser_hash;
        fin.integration_id = s_integration;
        lr.pending = &fin;
        if (s_call(c, "user.login", &lr.base, &portico__registry__login_reply__descriptor, &out) < 0)
            return -1;
        s_user = ((Portico__Registry__LoginReply *)out)->user->id;
        protobuf_c_message_free_unpacked(out, NULL);
    }
    bus_client_destroy(&c);
    return 0;
}

typedef struct {
    int index;
    int64_t until_us;
    long ops;
    long errors;
    int64_t *lat; /* microseconds per operation */
    long n_lat, cap_lat;
    long session_base;
} worker_t;

static void s_sample(worker_t *w, int64_t us)
{
    if (w->n_lat < w->cap_lat)
        w->lat[w->n_lat++] = us;
}

static void *s_lookups(void *arg)
{
    worker_t *w = arg;
    bus_client_t *c = bus_client_new_as(s_endpoint, "registry", "web");
    unsigned seed = (unsigned)w->index * 7919u + 1;
    pthread_barrier_wait(&s_start);
    while (s_now_us() < w->until_us) {
        uint8_t h[32];
        s_hash("bench-session", w->session_base + rand_r(&seed) % SESSIONS, h);
        Portico__Registry__LookupSessionRequest req = PORTICO__REGISTRY__LOOKUP_SESSION_REQUEST__INIT;
        req.token_hash.data = h;
        req.token_hash.len = 32;
        int64_t t0 = s_now_us();
        if (s_call(c, "session.lookup", &req.base, NULL, NULL) < 0)
            w->errors++;
        else
            w->ops++;
        s_sample(w, s_now_us() - t0);
    }
    bus_client_destroy(&c);
    return NULL;
}

/* One login as the registry sees it. combined: what the broker does, three
 * calls (pending.create that checks the integration, pending.consume that
 * reads it with the integration, user.login that uses it up, stores the
 * tokens and starts the session in one transaction); otherwise user.login and token.store as
 * separate calls (no session: only a combined login starts one). */
static int s_one_login(bus_client_t *c, worker_t *w, long n, bool combined)
{
    uint8_t state[32], browser[32], cookie[32];
    s_hash("bench-state", n, state);
    s_hash("bench-browser", w->index, browser);
    s_hash("bench-cookie", n, cookie);

    Portico__Registry__PendingLogin pl = PORTICO__REGISTRY__PENDING_LOGIN__INIT;
    pl.state_hash.data = state;
    pl.state_hash.len = 32;
    pl.browser_hash.data = browser;
    pl.browser_hash.len = 32;
    pl.integration_id = s_integration;
    pl.code_verifier = "bench-verifier-0123456789-0123456789-0123456789";
    pl.return_to = "/account";
    Portico__Registry__CreatePendingRequest cp = PORTICO__REGISTRY__CREATE_PENDING_REQUEST__INIT;
    cp.pending = &pl;
    cp.oauth2_integration = combined;
    if (s_call(c, "pending.create", &cp.base, NULL, NULL) < 0)
        return -1;

    Portico__Registry__ConsumePendingRequest cons = PORTICO__REGISTRY__CONSUME_PENDING_REQUEST__INIT;
    cons.state_hash = pl.state_hash;
    cons.browser_hash = pl.browser_hash;
    cons.integration_id = s_integration;
    cons.with_integration = combined;
    cons.keep = true; /* user.login uses it up */
    if (s_call(c, "pending.consume", &cons.base, NULL, NULL) < 0)
        return -1;

    /* Returning users: each worker cycles through 50 Bitbucket accounts. */
    char username[48];
    snprintf(username, sizeof username, "bench-%d-%ld", w->index, n % 50);
    Portico__Registry__Identity d = PORTICO__REGISTRY__IDENTITY__INIT;
    d.integration_id = s_integration;
    d.bb_user_id = 1000000 + w->index * 1000 + n % 50;
    d.username = username;
    d.display_name = username;
    Portico__Registry__Tokens t = PORTICO__REGISTRY__TOKENS__INIT;
    t.access_token = "bench-access-token-0123456789abcdef0123456789abcdef";
    t.refresh_token = "bench-refresh-token-0123456789abcdef0123456789abcdef";
    t.expires_at = (int64_t)time(NULL) + 3600;
    Portico__Registry__CreateSessionRequest cs = PORTICO__REGISTRY__CREATE_SESSION_REQUEST__INIT;
    cs.token_hash.data = cookie;
    cs.token_hash.len = 32;
    Portico__Registry__LoginRequest lr = PORTICO__REGISTRY__LOGIN_REQUEST__INIT;
    lr.identity = &d;
    lr.addr = "127.0.0.1";
    lr.pending = &cons;
    if (combined) {
        lr.tokens = &t;
        lr.session = &cs;
        lr.brief = true;
        return s_call(c, "user.login", &lr.base, NULL, NULL);
    }
    ProtobufCMessage *out = NULL;
    if (s_call(c, "user.login", &lr.base, &portico__registry__login_reply__descriptor, &out) < 0)
        return -1;
    Portico__Registry__LoginReply *login = (Portico__Registry__LoginReply *)out;
    int64_t identity = login->identity_id, user = login->user->id;
    protobuf_c_message_free_unpacked(out, NULL);

    Portico__Registry__StoreTokensRequest st = PORTICO__REGISTRY__STORE_TOKENS_REQUEST__INIT;
    st.identity_id = identity;
    st.tokens = &t;
    (void)user;
    return s_call(c, "token.store", &st.base, NULL, NULL);
}

static void *s_logins(void *arg, bool combined)
{
    worker_t *w = arg;
    bus_client_t *c = bus_client_new_as(s_endpoint, "registry", "web");
    long n = (long)time(NULL) * 100000 + (long)w->index * 10000000000L + (combined ? 0 : 5000000000L);
    pthread_barrier_wait(&s_start);
    while (s_now_us() < w->until_us) {
        int64_t t0 = s_now_us();
        if (s_one_login(c, w, n++, combined) < 0)
            w->errors++;
        else
            w->ops++;
        s_sample(w, s_now_us() - t0);
    }
    bus_client_destroy(&c);
    return NULL;
}

static void *s_logins_combined(void *arg)
{
    return s_logins(arg, true);
}

static void *s_logins_separate(void *arg)
{
    return s_logins(arg, false);
}

static int s_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Run fn on n threads for seconds; print and return operations/s. */
static double s_phase(const char *name, void *(*fn)(void *), int n, int seconds)
{
    worker_t *w = calloc((size_t)n, sizeof *w);
    pthread_t *t = calloc((size_t)n, sizeof *t);
    pthread_barrier_init(&s_start, NULL, (unsigned)n + 1);
    int64_t until = s_now_us() + 100000 + (int64_t)seconds * 1000000;
    for (int i = 0; i < n; i++) {
        w[i].index = i;
        w[i].until_us = until;
        w[i].cap_lat = MAX_SAMPLES / n;
        w[i].lat = malloc((size_t)w[i].cap_lat * sizeof *w[i].lat);
        w[i].session_base = s_session_base;
        pthread_create(&t[i], NULL, fn, &w[i]);
    }
    pthread_barrier_wait(&s_start);
    int64_t started = s_now_us();
    long ops = 0, errors = 0, samples = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        ops += w[i].ops;
        errors += w[i].errors;
        samples += w[i].n_lat;
    }
    double elapsed = (double)(s_now_us() - started) / 1e6;
    int64_t *all = malloc((size_t)(samples ? samples : 1) * sizeof *all);
    long k = 0;
    for (int i = 0; i < n; i++) {
        memcpy(all + k, w[i].lat, (size_t)w[i].n_lat * sizeof *all);
        k += w[i].n_lat;
        free(w[i].lat);
    }
    qsort(all, (size_t)samples, sizeof *all, s_cmp);
    double rate = ops / elapsed;
    printf("  %-22s %9.0f /s   p50 %6.2f ms   p99 %6.2f ms   errors %ld\n", name, rate,
           samples ? all[samples / 2] / 1000.0 : 0, samples ? all[(long)(samples * 0.99)] / 1000.0 : 0, errors);
    printf("RESULT %s=%.0f\n", name, rate);
    free(all);
    free(w);
    free(t);
    pthread_barrier_destroy(&s_start);
    return rate;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: registry_bench ENDPOINT [clients] [seconds]\n");
        return 2;
    }
    bus_init();
    s_endpoint = argv[1];
    int clients = argc > 2 ? atoi(argv[2]) : 8, seconds = argc > 3 ? atoi(argv[3]) : 5;
    if (clients < 1 || clients > 256 || seconds < 1 || seconds > 600) {
        fprintf(stderr, "registry_bench: clients must be 1..256 and seconds 1..600\n");
        return 2;
    }
    if (s_prepare() < 0)
        return 1;
    printf("registry over the bus, %d clients, %d s per phase\n", clients, seconds);
    s_phase("session_lookup", s_lookups, clients, seconds);
    s_phase("login_write_path", s_logins_combined, clients, seconds);
    s_phase("login_separate_calls", s_logins_separate, clients, seconds);
    printf("  (a login write path = pending.create + pending.consume + user.login with tokens and session, as the\n"
           "   broker calls them; login_separate_calls = user.login and token.store as separate calls)\n");
    return 0;
}
