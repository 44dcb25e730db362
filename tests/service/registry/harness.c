#include "harness.h"

#include "crypto.h"
#include "health.h"
#include "../../unit/free_port.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static _Thread_local bus_client_t *s_client;

const char *h_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "harness: %s is not set (run the tests with tests/service/registry/run.sh)\n", name);
        exit(2);
    }
    return v;
}

int64_t h_now_ms(void)
{
    return bus_now_ms();
}

void h_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

long h_unique(void)
{
    static atomic_long next;
    return (long)getpid() * 1000 + atomic_fetch_add(&next, 1);
}

bus_client_t *h_client(void)
{
    if (!s_client)
        s_client = bus_client_new(h_env("REG_TEST_ENDPOINT"), "registry");
    return s_client;
}

int h_call_with(bus_client_t *client, const char *method, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out, bus_error_t *err)
{
    bus_error_t local;
    if (!err)
        err = &local;
    memset(err, 0, sizeof *err);
    ProtobufCMessage *resp = NULL;
    int rc = bus_call(client, method, req, desc, desc ? &resp : NULL, H_TIMEOUT_MS, err);
    if (rc < 0 && err->code == PORTICO__ERROR_CODE__FORBIDDEN && err->detail == DETAIL(CALLER)) {
        /* Declared for the broker only: ask again as the broker. */
        static _Thread_local bus_client_t *broker;
        if (broker && strcmp(bus_client_endpoint(broker), bus_client_endpoint(client)) != 0)
            bus_client_destroy(&broker);
        if (!broker)
            broker = bus_client_new_as(bus_client_endpoint(client), "registry", "broker");
        memset(err, 0, sizeof *err);
        rc = bus_call(broker, method, req, desc, desc ? &resp : NULL, H_TIMEOUT_MS, err);
    }
    if (rc < 0)
        return err->code ? err->code : PORTICO__ERROR_CODE__INTERNAL;
    if (out)
        *out = resp;
    else if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

int h_call(const char *method, const ProtobufCMessage *req, const ProtobufCMessageDescriptor *desc,
           ProtobufCMessage **out, bus_error_t *err)
{
    return h_call_with(h_client(), method, req, desc, out, err);
}

/* ---- raw database access ---- */

void h_conninfo(const char *dbname, char *out, size_t out_size)
{
    if (!dbname)
        snprintf(out, out_size, "%s", h_env("REG_TEST_DB"));
    else
        snprintf(out, out_size, "host=%s port=%s user=portico dbname=%s", h_env("REG_TEST_PGHOST"),
                 h_env("REG_TEST_PGPORT"), dbname);
}

static void s_quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *h_pg(const char *dbname)
{
    char conninfo[1024];
    h_conninfo(dbname, conninfo, sizeof conninfo);
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "harness: could not connect to %s: %s", conninfo, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, s_quiet, NULL);
    return c;
}

long long h_pg_scalar(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    long long v = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    else if (PQresultStatus(res) != PGRES_TUPLES_OK)
        fprintf(stderr, "harness: %s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    return v;
}

int h_pg_exec(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : -1;
    if (rc < 0)
        fprintf(stderr, "harness: %s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    return rc;
}

void h_create_database(const char *name)
{
    PGconn *c = h_pg("postgres");
    if (!c)
        return;
    char sql[200];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    h_pg_exec(c, sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    h_pg_exec(c, sql);
    PQfinish(c);
}

/* ---- processes ---- */

int h_run(char *out, size_t out_size, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[4200];
    snprintf(full, sizeof full, "(%s) 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p)
        return -1;
    size_t n = 0;
    if (out && out_size)
        out[0] = '\0';
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, p)) > 0) {
        if (out && n + 1 < out_size) {
            size_t take = got < out_size - 1 - n ? got : out_size - 1 - n;
            memcpy(out + n, buf, take);
            n += take;
            out[n] = '\0';
        }
    }
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int h_free_port(void)
{
    return test_free_port();
}

/* Registries this process started and has not stopped yet: a failing test
 * leaves its registry running, so they are stopped when the tests end. */
#define MAX_SPAWNED 32
static pid_t s_spawned[MAX_SPAWNED];

static void s_forget(pid_t pid)
{
    for (int i = 0; i < MAX_SPAWNED; i++)
        if (s_spawned[i] == pid)
            s_spawned[i] = 0;
}

static void s_stop_leftovers(void)
{
    for (int i = 0; i < MAX_SPAWNED; i++) {
        if (s_spawned[i] > 0) {
            kill(s_spawned[i], SIGKILL);
            waitpid(s_spawned[i], NULL, 0);
            s_spawned[i] = 0;
        }
    }
}

static void s_remember(pid_t pid)
{
    static bool registered;
    if (!registered)
        registered = atexit(s_stop_leftovers) == 0;
    for (int i = 0; i < MAX_SPAWNED; i++) {
        if (s_spawned[i] == 0) {
            s_spawned[i] = pid;
            return;
        }
    }
}

static bool s_overridden(const char *entry, const char *const *env)
{
    size_t n = strcspn(entry, "=");
    for (const char *const *e = env; e && *e; e++)
        if (!strncmp(*e, entry, n) && (*e)[n] == '=')
            return true;
    return false;
}

int h_registry_start(h_registry_t *r, const char *dbname, const char *const *extra)
{
    static atomic_int seq;
    char dburl[1024], bind_env[128], health_env[128], db_env[1100];
    memset(r, 0, sizeof *r);
    h_conninfo(dbname, dburl, sizeof dburl);
    snprintf(r->endpoint, sizeof r->endpoint, "tcp://127.0.0.1:%d", h_free_port());
    snprintf(r->health, sizeof r->health, "127.0.0.1:%d", h_free_port());
    snprintf(r->log, sizeof r->log, "%s/registry-%d.log", h_env("REG_TEST_TMP"), atomic_fetch_add(&seq, 1));
    snprintf(bind_env, sizeof bind_env, "PORTICO_REGISTRY_BIND=%s", r->endpoint);
    snprintf(health_env, sizeof health_env, "PORTICO_HEALTH_ADDR=%s", r->health);
    snprintf(db_env, sizeof db_env, "PORTICO_DATABASE_URL=%s", dburl);

    const char *mine[64];
    int m = 0;
    mine[m++] = bind_env;
    mine[m++] = health_env;
    mine[m++] = db_env;
    for (const char *const *e = extra; e && *e && m < 60; e++)
        mine[m++] = *e;
    mine[m] = NULL;

    size_t total = 0;
    for (char **e = environ; *e; e++)
        total++;
    char **env = calloc(total + 64, sizeof *env);
    size_t k = 0;
    for (char **e = environ; *e; e++)
        if (!s_overridden(*e, mine))
            env[k++] = *e;
    for (int i = 0; i < m; i++)
        if (strchr(mine[i], '=')[1] != '\0') /* "NAME=" removes NAME */
            env[k++] = (char *)(uintptr_t)mine[i];
    env[k] = NULL;

    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(r->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        char *argv[] = {(char *)(uintptr_t)h_env("REG_TEST_BIN"), NULL};
        execve(argv[0], argv, env);
        _exit(127);
    }
    free(env);
    if (pid < 0)
        return -1;
    r->pid = pid;
    s_remember(pid);
    /* Generous: on a loaded machine a start (migrations under their
     * advisory lock, key checks) can take seconds; this is no speed test. */
    for (int i = 0; i < 300; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            s_forget(pid);
            r->pid = 0;
            fprintf(stderr, "harness: the registry exited at start (log: %s)\n", r->log);
            return -1;
        }
        if (health_check_url(r->health) == 0)
            return 0;
        h_sleep_ms(100);
    }
    fprintf(stderr, "harness: the registry was not healthy within 30 s (log: %s)\n", r->log);
    return -1;
}

int h_registry_wait_exit(h_registry_t *r, int timeout_ms)
{
    int64_t until = h_now_ms() + timeout_ms;
    while (r->pid && h_now_ms() < until) {
        int status;
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            s_forget(r->pid);
            r->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        h_sleep_ms(20);
    }
    return -2;
}

int h_registry_stop(h_registry_t *r, long *elapsed_ms)
{
    if (!r->pid)
        return -1;
    int64_t started = h_now_ms();
    kill(r->pid, SIGTERM);
    int rc = h_registry_wait_exit(r, 10000);
    if (rc == -2) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
        s_forget(r->pid);
        r->pid = 0;
        rc = -1;
    }
    if (elapsed_ms)
        *elapsed_ms = (long)(h_now_ms() - started);
    return rc;
}

/* ---- fixtures ---- */

ProtobufCBinaryData h_hash(const char *label, uint8_t buf[32])
{
    crypto_sha256(label, strlen(label), buf);
    ProtobufCBinaryData b = {32, buf};
    return b;
}

void h_hash_hex(const char *label, char hex[65])
{
    uint8_t buf[32];
    h_hash(label, buf);
    crypto_hex(buf, sizeof buf, hex);
}

int64_t h_make_integration(const char *client_secret)
{
    char url[128], client_id[64];
    long u = h_unique();
    snprintf(url, sizeof url, "https://bb%ld.example.com", u);
    snprintf(client_id, sizeof client_id, "client-%ld", u);
    Portico__Registry__Integration in = PORTICO__REGISTRY__INTEGRATION__INIT;
    in.base_url = url;
    in.oauth_version = 2;
    in.client_id = client_id;
    Portico__Registry__CreateIntegrationRequest req = PORTICO__REGISTRY__CREATE_INTEGRATION_REQUEST__INIT;
    req.integration = &in;
    req.client_secret = (char *)(uintptr_t)(client_secret ? client_secret : "secret");
    req.actor = "test";
    ProtobufCMessage *out = NULL;
    bus_error_t err;
    if (h_call("integration.create", &req.base, &portico__registry__get_integration_reply__descriptor, &out, &err)) {
        fprintf(stderr, "harness: integration.create: %s (%s)\n", err.message, bus_detail_name(err.detail));
        return 0;
    }
    int64_t id = ((Portico__Registry__GetIntegrationReply *)out)->integration->id;
    protobuf_c_message_free_unpacked(out, NULL);
    return id;
}

int h_pending(int64_t integration_id, h_pending_t *p)
{
    return h_pending_with(h_client(), integration_id, p);
}

int h_pending_with(bus_client_t *client, int64_t integration_id, h_pending_t *p)
{
    crypto_random(p->state_hash, sizeof p->state_hash);
    crypto_random(p->browser_hash, sizeof p->browser_hash);
    Portico__Registry__PendingLogin pl = PORTICO__REGISTRY__PENDING_LOGIN__INIT;
    pl.state_hash.data = p->state_hash;
    pl.state_hash.len = 32;
    pl.browser_hash.data = p->browser_hash;
    pl.browser_hash.len = 32;
    pl.integration_id = integration_id;
    pl.code_verifier = "test-verifier";
    Portico__Registry__CreatePendingRequest q = PORTICO__REGISTRY__CREATE_PENDING_REQUEST__INIT;
    q.pending = &pl;
    bus_error_t err;
    portico__registry__consume_pending_request__init(&p->finish);
    p->finish.state_hash = pl.state_hash;
    p->finish.browser_hash = pl.browser_hash;
    p->finish.integration_id = integration_id;
    if (h_call_with(client, "pending.create", &q.base, NULL, NULL, &err)) {
        fprintf(stderr, "harness: pending.create: %s (%s)\n", err.message, bus_detail_name(err.detail));
        return -1;
    }
    return 0;
}

int64_t h_login(int64_t integration_id, int64_t bb_user_id, const char *username, int64_t *user_id)
{
    h_pending_t pend;
    h_pending(integration_id, &pend);
    Portico__Registry__Identity d = PORTICO__REGISTRY__IDENTITY__INIT;
    d.integration_id = integration_id;
    d.bb_user_id = bb_user_id;
    d.username = (char *)(uintptr_t)username;
    d.slug = (char *)(uintptr_t)username;
    d.display_name = "Test User";
    d.email = "user@example.com";
    Portico__Registry__LoginRequest req = PORTICO__REGISTRY__LOGIN_REQUEST__INIT;
    req.identity = &d;
    req.addr = "127.0.0.1";
    req.pending = &pend.finish;
    ProtobufCMessage *out = NULL;
    bus_error_t err;
    if (h_call("user.login", &req.base, &portico__registry__login_reply__descriptor, &out, &err)) {
        fprintf(stderr, "harness: user.login: %s (%s)\n", err.message, bus_detail_name(err.detail));
        return 0;
    }
    Portico__Registry__LoginReply *r = (Portico__Registry__LoginReply *)out;
    int64_t id = r->identity_id;
    if (user_id)
        *user_id = r->user->id;
    protobuf_c_message_free_unpacked(out, NULL);
    return id;
}

int h_login_session(int64_t integration_id, int64_t bb_user_id, const char *username, const char *cookie, int idle,
                    int absolute, bus_error_t *err)
{
    uint8_t buf[32];
    h_pending_t pend;
    h_pending(integration_id, &pend);
    Portico__Registry__CreateSessionRequest cs = PORTICO__REGISTRY__CREATE_SESSION_REQUEST__INIT;
    cs.token_hash = h_hash(cookie, buf);
    cs.idle_seconds = idle;
    cs.absolute_seconds = absolute;
    cs.addr = "198.51.100.20";
    Portico__Registry__Identity d = PORTICO__REGISTRY__IDENTITY__INIT;
    d.integration_id = integration_id;
    d.bb_user_id = bb_user_id;
    d.username = (char *)(uintptr_t)username;
    d.slug = (char *)(uintptr_t)username;
    d.display_name = "Test User";
    d.email = "user@example.com";
    Portico__Registry__LoginRequest req = PORTICO__REGISTRY__LOGIN_REQUEST__INIT;
    req.identity = &d;
    req.addr = "198.51.100.20";
    req.session = &cs;
    req.brief = true;
    req.pending = &pend.finish;
    return h_call("user.login", &req.base, &portico__registry__login_reply__descriptor, NULL, err);
}

int h_setup_session(const char *setup_token, const char *cookie, bus_error_t *err)
{
    uint8_t buf[32];
    Portico__Registry__CreateSessionRequest cs = PORTICO__REGISTRY__CREATE_SESSION_REQUEST__INIT;
    cs.token_hash = h_hash(cookie, buf);
    cs.setup = true;
    Portico__Registry__CheckSetupTokenRequest req = PORTICO__REGISTRY__CHECK_SETUP_TOKEN_REQUEST__INIT;
    req.token = (char *)(uintptr_t)setup_token;
    req.addr = "198.51.100.21";
    req.session = &cs;
    return h_call("settings.check_setup_token", &req.base, NULL, NULL, err);
}

char *h_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf) {
        size_t got = fread(buf, 1, (size_t)n, f);
        buf[got] = '\0';
    }
    fclose(f);
    return buf;
}
