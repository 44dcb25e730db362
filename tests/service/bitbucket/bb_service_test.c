/* Service test of portico-bitbucket: the real binary on loopback against
 * the Bitbucket emulator (tests/emulator), a closed port and a TLS server
 * with a self-signed certificate, driven over the bus. Started by run.sh,
 * which passes the addresses in the environment:
 *
 *   BB_ENDPOINT   the service's bus endpoint
 *   EMU_BASE      emulator base URL with its context path (/bitbucket)
 *   SLOW_BASE     a second emulator, used with a latency fault
 *   REFUSED_BASE  a URL whose port nobody listens on
 *   TLS_BASE      https URL of `openssl s_server -www` (self-signed)
 *   TLS_CERT      that server's certificate (PEM file)
 *   OTHER_CERT    an unrelated self-signed certificate (PEM file)
 *
 * Answers the emulator does not give (sizes, repeated headers) come from a
 * small server of this program's own on loopback (s_fake_serve).
 *
 *   bb_service_test            the cmocka suite
 *   bb_service_test shutdown   SIGTERM the service (BB_PID) during a slow call */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bitbucket.pb-c.h"
#include "bus.h"
#include "crypto.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REDIRECT "https://portico.example/callback"
#define OK PORTICO__ERROR_CODE__OK

static const char *s_endpoint, *s_emu, *s_slow, *s_refused, *s_tls, *s_tls_cert, *s_other_cert;
static bus_client_t *s_bus;
static char s_client_id[128], s_client_secret[128];

/* ---- small helpers ---- */

static int64_t s_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *s_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

typedef struct {
    char *data;
    size_t len;
} buf_t;

static size_t s_collect(char *p, size_t size, size_t n, void *arg)
{
    buf_t *b = arg;
    b->data = realloc(b->data, b->len + size * n + 1);
    memcpy(b->data + b->len, p, size * n);
    b->len += size * n;
    b->data[b->len] = '\0';
    return size * n;
}

/* A plain HTTP call to the emulator (admin API, browser steps). */
static long s_http(const char *method, const char *url, const char *json, const char *header, char **body,
                   char **location)
{
    CURL *c = curl_easy_init();
    buf_t b = {0};
    struct curl_slist *h = NULL;
    if (json)
        h = curl_slist_append(h, "Content-Type: application/json");
    if (header)
        h = curl_slist_append(h, header);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (json)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (location) {
        char *loc = NULL;
        curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &loc);
        *location = loc ? strdup(loc) : NULL;
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (body)
        *body = b.data ? b.data : strdup("");
    else
        free(b.data);
    return status;
}

static void s_faults(const char *base, const char *json)
{
    char url[512];
    snprintf(url, sizeof url, "%s/emulator/faults", base);
    assert_int_equal(s_http("POST", url, json, NULL, NULL, NULL), 200);
}

static void s_no_faults(void)
{
    const char *none = "{\"latency_ms\":0,\"status\":0,\"hang\":false,\"rate_limit\":false,\"tfa_block\":false}";
    s_faults(s_emu, none);
    s_faults(s_slow, none);
}

/* Remember a secret this run saw: run.sh checks none reached the log. */
static void s_secret(const char *value)
{
    const char *path = getenv("SECRETS_FILE");
    if (!path || !value || strlen(value) < 6)
        return;
    FILE *f = fopen(path, "a");
    if (f) {
        fprintf(f, "%s\n", value);
        fclose(f);
    }
}

/* The value of name=... in a URL's query. */
static char *s_query_param(const char *url, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "%s=", name);
    const char *q = strchr(url, '?');
    while (q) {
        q++;
        if (!strncmp(q, key, strlen(key))) {
            q += strlen(key);
            char *v = strndup(q, strcspn(q, "&#"));
            /* Values here are base64url or hex: no decoding needed. */
            return v;
        }
        q = strchr(q, '&');
    }
    return NULL;
}

static void s_json_field(const char *json, const char *name, char *out, size_t out_size)
{
    char key[64];
    snprintf(key, sizeof key, "\"%s\":\"", name);
    const char *p = strstr(json, key);
    assert_non_null(p);
    p += strlen(key);
    snprintf(out, out_size, "%.*s", (int)strcspn(p, "\""), p);
}

static Portico__Bitbucket__Conn s_conn(const char *base)
{
    Portico__Bitbucket__Conn c = PORTICO__BITBUCKET__CONN__INIT;
    c.base_url = (char *)(uintptr_t)base;
    c.integration_id = 7;
    return c;
}

/* One bus call; err.code 0 on success. */
static bus_error_t s_call(bus_client_t *bus, const char *method, const ProtobufCMessage *req,
                          const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp, int timeout_ms)
{
    bus_error_t err;
    memset(&err, 0, sizeof err);
    if (bus_call(bus, method, req, desc, resp, timeout_ms, &err) == 0)
        err.code = OK;
    return err;
}

static void s_expect(const bus_error_t *err, int code, const char *detail)
{
    if (err->code != code || (detail && strcmp(bus_detail_name(err->detail), detail) != 0))
        fail_msg("got %s/%s (%s), want %s/%s", bus_code_name(err->code), bus_detail_name(err->detail), err->message,
                 bus_code_name(code), detail ? detail : "*");
}

/* ---- a server for answers the emulator does not give ----
 *
 * One request per connection on a loopback port of its own; what it
 * answers depends on the request's path alone. */

static char s_fake[64]; /* its base URL: http://127.0.0.1:port */

static void s_fake_send(int c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        data += n;
        len -= (size_t)n;
    }
}

/* n characters of JSON for a member that no decoder reads: "j":[0,0,...]. */
static void s_fake_padding(char *out, size_t n)
{
    memcpy(out, "\"j\":[", 5);
    size_t i = 5;
    for (; i + 3 < n; i += 2)
        memcpy(out + i, "0,", 2);
    out[i++] = '0';
    out[i++] = ']';
    out[i] = '\0';
}

/* The body for a path, and its extra header lines ("" or lines ending in
 * CRLF); NULL for a path it does not know. */
static char *s_fake_answer(const char *path, const char **headers)
{
    *headers = "";
    size_t cap = 2 * 1024 * 1024;
    char *b = malloc(cap);
    assert_non_null(b);
    size_t o = 0;
    if (strstr(path, "/rest/oauth2/latest/token")) {
        /* Well-formed, and over 64 KiB. */
        o += (size_t)snprintf(b, cap, "{\"access_token\":\"big-access-token\",\"token_type\":\"bearer\",");
        s_fake_padding(b + o, 100 * 1024);
        o += strlen(b + o);
        snprintf(b + o, cap - o, "}");
    } else if (strstr(path, "/plugins/servlet/applinks/whoami")) {
        /* The base URL's path names the X-AUSERID header(s). */
        if (!strncmp(path, "/two-ids/", 9))
            *headers = "X-AUSERID: 104\r\nX-AUSERID: 105\r\n";
        else if (!strncmp(path, "/same-ids/", 10))
            *headers = "X-AUSERID: 104\r\nX-AUSERID: 104\r\n";
        else if (!strncmp(path, "/id-list/", 9))
            *headers = "X-AUSERID: 104, 105\r\n";
        else
            *headers = "X-AUSERID: 104\r\n";
        snprintf(b, cap, "jdoe");
    } else if (strstr(path, "/rest/api/1.0/users?")) {
        /* 300 users with display names of 3500 characters: a page within
         * the 4 MiB cap whose reply would be over the bus's 1 MiB. */
        o += (size_t)snprintf(b, cap, "{\"size\":300,\"limit\":300,\"isLastPage\":true,\"start\":0,\"values\":[");
        for (int i = 0; i < 300; i++) {
            o += (size_t)snprintf(b + o, cap - o, "%s{\"name\":\"user%d\",\"slug\":\"user%d\",\"id\":%d,\"displayName\":\"",
                                  i ? "," : "", i, i, i + 1);
            memset(b + o, 'n', 3500);
            o += 3500;
            o += (size_t)snprintf(b + o, cap - o, "\"}");
        }
        snprintf(b + o, cap - o, "]}");
    } else if (strstr(path, "/rest/api/1.0/users/big")) {
        o += (size_t)snprintf(b, cap, "{\"name\":\"big\",\"slug\":\"big\",\"id\":7,\"active\":true,");
        s_fake_padding(b + o, 100 * 1024);
        o += strlen(b + o);
        snprintf(b + o, cap - o, "}");
    } else if (strstr(path, "/rest/api/1.0/repos")) {
        /* A page of 25 of some 42 KB each (a long description nobody
         * reads): over 1 MiB. */
        o += (size_t)snprintf(b, cap, "{\"size\":25,\"limit\":25,\"isLastPage\":true,\"start\":0,\"values\":[");
        for (int i = 0; i < 25; i++) {
            o += (size_t)snprintf(b + o, cap - o,
                                  "%s{\"slug\":\"repo-%d\",\"name\":\"Repo %d\",\"project\":{\"key\":\"BIG\"},"
                                  "\"description\":\"",
                                  i ? "," : "", i, i);
            memset(b + o, 'd', 42 * 1024);
            o += 42 * 1024;
            o += (size_t)snprintf(b + o, cap - o, "\"}");
        }
        snprintf(b + o, cap - o, "]}");
    } else {
        free(b);
        return NULL;
    }
    return b;
}

static void s_fake_one(int c)
{
    char req[8192];
    size_t len = 0, want = 0;
    char *end = NULL;
    while (len < sizeof req - 1) {
        ssize_t n = recv(c, req + len, sizeof req - 1 - len, 0);
        if (n <= 0)
            return;
        len += (size_t)n;
        req[len] = '\0';
        end = strstr(req, "\r\n\r\n");
        const char *cl = strcasestr(req, "\r\nContent-Length:");
        want = end ? (size_t)(end + 4 - req) + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0) : 0;
        if (end && len >= want)
            break;
    }
    if (!end)
        return;
    char path[1024] = "";
    sscanf(req, "%*s %1023s", path);
    const char *headers;
    char *body = s_fake_answer(path, &headers);
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\n%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     body ? "200 OK" : "404 Not Found", body ? "application/json;charset=UTF-8" : "text/plain",
                     headers, body ? strlen(body) : 0);
    s_fake_send(c, head, (size_t)n);
    if (body)
        s_fake_send(c, body, strlen(body));
    free(body);
}

static void *s_fake_serve(void *arg)
{
    int listener = (int)(intptr_t)arg;
    for (;;) {
        int c = accept(listener, NULL, NULL);
        if (c < 0)
            return NULL;
        s_fake_one(c);
        shutdown(c, SHUT_WR);
        close(c);
    }
}

static void s_fake_start(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 16) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
        perror("bb_service_test: the answer server");
        exit(2);
    }
    snprintf(s_fake, sizeof s_fake, "http://127.0.0.1:%d", ntohs(a.sin_port));
    pthread_t th;
    pthread_create(&th, NULL, s_fake_serve, (void *)(intptr_t)fd);
    pthread_detach(th);
}

/* ---- OAuth 2 login through the emulator (auto-approve) ---- */

typedef struct {
    char access[256], refresh[256];
} tokens_t;

static bus_error_t s_token_call(const char *grant, const char *code, const char *verifier, const char *refresh,
                                const char *secret, Portico__Bitbucket__TokenReply **out)
{
    Portico__Bitbucket__Conn conn = s_conn(s_emu);
    Portico__Bitbucket__TokenRequest t = PORTICO__BITBUCKET__TOKEN_REQUEST__INIT;
    t.conn = &conn;
    t.grant_type = (char *)(uintptr_t)grant;
    t.client_id = s_client_id;
    t.client_secret = (char *)(uintptr_t)(secret ? secret : s_client_secret);
    t.redirect_uri = REDIRECT;
    t.code = (char *)(uintptr_t)(code ? code : "");
    t.code_verifier = (char *)(uintptr_t)(verifier ? verifier : "");
    t.refresh_token = (char *)(uintptr_t)(refresh ? refresh : "");
    return s_call(s_bus, "oauth2.token", &t.base, &portico__bitbucket__token_reply__descriptor,
                  (ProtobufCMessage **)out, 5000);
}

/* Authorize as user (percent-encoded for the header) and return the code. */
static char *s_authorize(const char *user_enc, char *verifier, size_t verifier_size)
{
    assert_true(crypto_random_token(32, verifier, verifier_size) > 0);
    uint8_t hash[32];
    crypto_sha256(verifier, strlen(verifier), hash);
    char challenge[64], url[1024], header[128];
    crypto_b64url_encode(hash, sizeof hash, challenge, sizeof challenge);
    snprintf(url, sizeof url,
             "%s/rest/oauth2/latest/authorize?client_id=%s&redirect_uri=https%%3A%%2F%%2Fportico.example%%2Fcallback"
             "&response_type=code&state=st4te&scope=REPO_READ&code_challenge=%s&code_challenge_method=S256",
             s_emu, s_client_id, challenge);
    snprintf(header, sizeof header, "X-Emulator-User: %s", user_enc);
    char *location = NULL;
    long st = s_http("GET", url, NULL, header, NULL, &location);
    assert_int_equal(st, 302);
    assert_non_null(location);
    char *code = s_query_param(location, "code");
    assert_non_null(code);
    s_secret(code);
    s_secret(verifier);
    free(location);
    return code;
}

static void s_login(const char *user_enc, tokens_t *t)
{
    char verifier[64];
    char *code = s_authorize(user_enc, verifier, sizeof verifier);
    Portico__Bitbucket__TokenReply *r = NULL;
    bus_error_t err = s_token_call("authorization_code", code, verifier, NULL, NULL, &r);
    s_expect(&err, OK, NULL);
    assert_true(r->access_token[0]);
    snprintf(t->access, sizeof t->access, "%s", r->access_token);
    snprintf(t->refresh, sizeof t->refresh, "%s", r->refresh_token);
    s_secret(t->access);
    s_secret(t->refresh);
    assert_string_equal(r->token_type, "bearer");
    assert_true(r->expires_in > 0);
    portico__bitbucket__token_reply__free_unpacked(r, NULL);
    free(code);
}

static int s_group_setup(void **state)
{
    (void)state;
    char url[512], *body = NULL;
    snprintf(url, sizeof url, "%s/emulator/applinks", s_emu);
    long st =
        s_http("POST", url,
               "{\"name\":\"Portico service test\",\"redirect_url\":\"" REDIRECT "\",\"permissions\":[\"REPO_READ\"]}",
               NULL, &body, NULL);
    if (st != 201 && st != 200) {
        fprintf(stderr, "could not create the applink: %ld %s\n", st, body ? body : "");
        return -1;
    }
    s_json_field(body, "client_id", s_client_id, sizeof s_client_id);
    s_json_field(body, "client_secret", s_client_secret, sizeof s_client_secret);
    s_secret(s_client_secret);
    free(body);
    return 0;
}

static int s_reset_faults(void **state)
{
    (void)state;
    s_no_faults();
    return 0;
}

/* ---- tests ---- */

static void test_ping(void **state)
{
    (void)state;
    Portico__PingReply *p = NULL;
    bus_error_t err = s_call(s_bus, "ping", NULL, &portico__ping_reply__descriptor, (ProtobufCMessage **)&p, 2000);
    s_expect(&err, OK, NULL);
    assert_string_equal(p->service, "bitbucket");
    assert_true(p->ready);
    portico__ping_reply__free_unpacked(p, NULL);
    err = s_call(s_bus, "no.such.method", NULL, NULL, NULL, 2000);
    s_expect(&err, PORTICO__ERROR_CODE__UNKNOWN_METHOD, NULL);
}

static bus_error_t s_server_info(bus_client_t *bus, const char *base, const char *ca,
                                 Portico__Bitbucket__ServerInfoReply **out, int timeout_ms)
{
    Portico__Bitbucket__Conn conn = s_conn(base);
    conn.ca_cert_pem = (char *)(uintptr_t)(ca ? ca : "");
    Portico__Bitbucket__ServerInfoRequest req = PORTICO__BITBUCKET__SERVER_INFO_REQUEST__INIT;
    req.conn = &conn;
    return s_call(bus, "server.info", &req.base, &portico__bitbucket__server_info_reply__descriptor,
                  (ProtobufCMessage **)out, timeout_ms);
}

/* A context path and the trailing slash an admin typed. */
static void test_server_info(void **state)
{
    (void)state;
    char base[512];
    snprintf(base, sizeof base, "%s/", s_emu);
    Portico__Bitbucket__ServerInfoReply *r = NULL;
    bus_error_t err = s_server_info(s_bus, base, NULL, &r, 5000);
    s_expect(&err, OK, NULL);
    assert_string_equal(r->version, "8.9.0");
    assert_true(r->build_number[0]);
    assert_string_equal(r->display_name, "Bitbucket");
    portico__bitbucket__server_info_reply__free_unpacked(r, NULL);

    /* Without the context path it is not Bitbucket (Jersey/other 404). */
    char root[512];
    snprintf(root, sizeof root, "%.*s", (int)(strstr(s_emu + 8, "/") - s_emu), s_emu);
    err = s_server_info(s_bus, root, NULL, &r, 5000);
    s_expect(&err, PORTICO__ERROR_CODE__UPSTREAM, "not_bitbucket");
    assert_non_null(strstr(err.message, "this does not look like a Bitbucket Data Center / Server instance"));

    /* A base URL that is not one. */
    err = s_server_info(s_bus, "ftp://example.com", NULL, &r, 5000);
    s_expect(&err, PORTICO__ERROR_CODE__BAD_REQUEST, "base_url");
    err = s_server_info(s_bus, "", NULL, &r, 5000);
    s_expect(&err, PORTICO__ERROR_CODE__BAD_REQUEST, "base_url");

    /* The service keeps the last normalised base URL: each request still
     * gets its own, whatever came just before. */
    err = s_server_info(s_bus, base, NULL, &r, 5000);
    s_expect(&err, OK, NULL);
    portico__bitbucket__server_info_reply__free_unpacked(r, NULL);
    err = s_server_info(s_bus, "ftp://example.com", NULL, &r, 5000);
    s_expect(&err, PORTICO__ERROR_CODE__BAD_REQUEST, "base_url");
    err = s_server_info(s_bus, root, NULL, &r, 5000);
    s_expect(&err, PORTICO__ERROR_CODE__UPSTREAM, "not_bitbucket");
    err = s_server_info(s_bus, base, NULL, &r, 5000);
    s_expect(&err, OK, NULL);
    portico__bitbucket__server_info_reply__free_unpacked(r, NULL);
}

static bus_error_t s_whoami(const char *bearer, Portico__Bitbucket__OAuth1Credentials *o1,
                            Portico__Bitbucket__WhoAmIReply **out)
{
    char base[512];
    snprintf(base, sizeof base, "%s/", s_emu);
    Portico__Bitbucket__Conn conn = s_conn(base);
    Portico__Bitbucket__Auth auth = PORTICO__BITBUCKET__AUTH__INIT;
    auth.bearer = (char *)(uintptr_t)(bearer ? bearer : "");
    auth.oauth1 = o1;
    Portico__Bitbucket__WhoAmIRequest req = PORTICO__BITBUCKET__WHO_AM_IREQUEST__INIT;
    req.conn = &conn;
    req.auth = &auth;
    return s_call(s_bus, "whoami", &req.base, &portico__bitbucket__who_am_ireply__descriptor, (ProtobufCMessage **)out,
                  5000);
}

static bus_error_t s_user_get(const char *bearer, const char *slug, Portico__Bitbucket__GetUserReply **out)
{
    Portico__Bitbucket__Conn conn = s_conn(s_emu);
    Portico__Bitbucket__Auth auth = PORTICO__BITBUCKET__AUTH__INIT;
    auth.bearer = (char *)(uintptr_t)bearer;
    Portico__Bitbucket__GetUserRequest req = PORTICO__BITBUCKET__GET_USER_REQUEST__INIT;
    req.conn = &conn;
    req.auth = &auth;
    req.slug = (char *)(uintptr_t)slug;
    return s_call(s_bus, "user.get", &req.base, &portico__bitbucket__get_user_reply__descriptor,
                  (ProtobufCMessage **)out, 5000);
}

/* OAuth 2 code flow, then identity: X-AUSERNAME is URL-decoded. */
static void test_oauth2_identity(void **state)
{
    (void)state;
    tokens_t t;
    s_login("jane.doe%40example.com", &t);

    Portico__Bitbucket__WhoAmIReply *w = NULL;
    bus_error_t err = s_whoami(t.access, NULL, &w);
    s_expect(&err, OK, NULL);
    assert_string_equal(w->username, "jane.doe@example.com");
    assert_int_equal(w->user_id, 102);
    portico__bitbucket__who_am_ireply__free_unpacked(w, NULL);

    Portico__Bitbucket__GetUserReply *u = NULL;
    err = s_user_get(t.access, "jane.doe_example.com", &u);
    s_expect(&err, OK, NULL);
    assert_string_equal(u->user->name, "jane.doe@example.com");
    assert_string_equal(u->user->slug, "jane.doe_example.com");
    assert_string_equal(u->user->email, "jane.doe@example.com");
    assert_int_equal(u->user->id, 102);
    assert_true(u->user->active);
    assert_non_null(strstr(u->user->display_name, "<script>"));
    portico__bitbucket__get_user_reply__free_unpacked(u, NULL);

    /* Non-ASCII slug, percent-encoded in the path. */
    err = s_user_get(t.access, "zo\xc3\xab", &u);
    s_expect(&err, OK, NULL);
    assert_string_equal(u->user->name, "zo\xc3\xab");
    portico__bitbucket__get_user_reply__free_unpacked(u, NULL);

    err = s_user_get(t.access, "nobody-here", &u);
    s_expect(&err, PORTICO__ERROR_CODE__NOT_FOUND, "not_found");
    /* A slug that would escape the path stays one segment. */
    err = s_user_get(t.access, "../repos", &u);
    s_expect(&err, PORTICO__ERROR_CODE__NOT_FOUND, "not_found");

    Portico__Bitbucket__Conn conn = s_conn(s_emu);
    Portico__Bitbucket__Auth auth = PORTICO__BITBUCKET__AUTH__INIT;
    auth.bearer = t.access;
    Portico__Bitbucket__FindUsersRequest f = PORTICO__BITBUCKET__FIND_USERS_REQUEST__INIT;
    f.conn = &conn;
    f.auth = &auth;
    f.filter = "jane.doe@";
    Portico__Bitbucket__FindUsersReply *fr = NULL;
    err = s_call(s_bus, "user.find", &f.base, &portico__bitbucket__find_users_reply__descriptor,
                 (ProtobufCMessage **)&fr, 5000);
    s_expect(&err, OK, NULL);
    bool found = false;
    for (size_t i = 0; i < fr->n_users; i++)
        found |= !strcmp(fr->users[i]->name, "jane.doe@example.com");
    assert_true(found);
    portico__bitbucket__find_users_reply__free_unpacked(fr, NULL);

    /* Refresh rotates: the new pair works, the old refresh token is dead. */
    Portico__Bitbucket__TokenReply *r = NULL;
    err = s_token_call("refresh_token", NULL, NULL, t.refresh, NULL, &r);
    s_expect(&err, OK, NULL);
    assert_string_not_equal(r->access_token, t.access);
    assert_true(r->refresh_token[0]);
    err = s_whoami(r->access_token, NULL, &w);
    s_expect(&err, OK, NULL);
    portico__bitbucket__who_am_ireply__free_unpacked(w, NULL);
    portico__bitbucket__token_reply__free_unpacked(r, NULL);
    err = s_token_call("refresh_token", NULL, NULL, t.refresh, NULL, &r);
    s_expect(&err, PORTICO__ERROR_CODE__UNAUTHORIZED, "invalid_grant");
}

static void test_oauth2_errors(void **state)
{
    (void)state;
    Portico__Bitbucket__TokenReply *r = NULL;
    bus_error_t err = s_token_call("authorization_code", "not-a-code", "v", NULL, NULL, &r);
    s_expect(&err, PORTICO__ERROR_CODE__UNAUTHORIZED, "invalid_grant");
    char verifier[64];
    char *code = s_authorize("jdoe", verifier, sizeof verifier);
    err = s_token_call("authorization_code", code, verifier, NULL, "wrong-secret", &r);
    s_expect(&err, PORTICO__ERROR_CODE__UNAUTHORIZED, "invalid_client");
    assert_non_null(strstr(err.message, "client ID or secret"));
    assert_null(strstr(err.message, "wrong-secret"));
    free(code);
    /* Wrong PKCE verifier. */
    code = s_authorize("jdoe", verifier, sizeof verifier);
    err = s_token_call("authorization_code", code, "wrong-verifier-wrong-verifier-wrong-verifier", NULL, NULL, &r);
    s_expect(&err, PORTICO__ERROR_CODE__UNAUTHORIZED, "invalid_grant");
    free(code);
    /* Checked before anything is sent. */
    err = s_token_call("password", NULL, NULL, NULL, NULL, &r);
    s_expect(&err, PORTICO__ERROR_CODE__BAD_REQUEST, "grant_type");
    err = s_token_call("authorization_code", "", NULL, NULL, NULL, &r);
    s_expect(&err, PORTICO__ERROR_CODE__BAD_REQUEST, "code");
}

/* whoami answers 200 to anyone: an unaccepted token is "anonymous". */
static void test_whoami_anonymous(void **state)
{
    (void)state;
    Portico__Bitbucket__WhoAmIReply *w = NULL;
    bus_error_t err = s_whoami("bogus-token", NULL, &w);
    s_expect(&err, PORTICO__ERROR_CODE__UNAUTHORIZED, "anonymous");

    /* The two-factor plugin without the OAuth whitelist looks the same. */
    tokens_t t;
    s_login("jdoe", &t);
    err = s_whoami(t.access, NULL, &w);
    s_expect(&err, OK, NULL);
    assert_string_equal(w->username, "jdoe");
    portico__bitbucket__who_am_ireply__free_unpacked(w, NULL);
    s_faults(s_emu, "{\"tfa_block\":true}");
    err = s_whoami(t.access, NULL, &w);
    s_expect(&err, PORTICO__ERROR_CODE__UNAUTHORIZED, "anonymous");
    Portico__Bitbucket__GetUserReply *u = NULL;
    err = s_user_get(t.access, "jdoe", &u);
    s_expect(&err, PORTICO__ERROR_CODE__UNAUTHORIZED, "unauthorized");

    err = s_whoami(NULL, NULL, &w);
    s_expect(&err, PORTICO__ERROR_CODE__BAD_REQUEST, "auth");
    err = s_whoami("bad token\r\nX-Injected: 1", NULL, &w);
    s_expect(&err, PORTICO__ERROR_CODE__BAD_REQUEST, "auth_bearer");
}

static bus_error_t s_repos(bus_client_t *bus, const char *base, const char *bearer, int start, int limit,
                           Portico__Bitbucket__ListReposReply **out, int timeout_ms)
{
    Portico__Bitbucket__Conn conn = s_conn(base);
    Portico__Bitbucket__Auth auth = PORTICO__BITBUCKET__AUTH__INIT;
    auth.bearer = (char *)(uintptr_t)bearer;
    Portico__Bitbucket__ListReposRequest req = PORTICO__BITBUCKET__LIST_REPOS_REQUEST__INIT;
    req.conn = &conn;
    req.auth = &auth;
    req.start = start;
    req.limit = limit;
    return s_call(bus, "repos.list", &req.base, &portico__bitbucket__list_repos_reply__descriptor,
                  (ProtobufCMessage **)out, timeout_ms);
}

/* Follow nextPageStart as given: it skips over hidden repositories. */
static void test_repos_paging(void **state)
{
    (void)state;
    tokens_t t;
    s_login("jane.doe%40example.com", &t);
    int start = 0, pages = 0, total = 0, skips = 0;
    char seen[64][80];
    for (;;) {
        Portico__Bitbucket__ListReposReply *r = NULL;
        bus_error_t err = s_repos(s_bus, s_emu, t.access, start, 2, &r, 5000);
        s_expect(&err, OK, NULL);
        assert_true(r->n_repositories <= 2);
        for (size_t i = 0; i < r->n_repositories; i++) {
            Portico__Bitbucket__Repository *repo = r->repositories[i];
            assert_true(repo->project_key[0] && repo->slug[0] && repo->name[0]);
            assert_non_null(strstr(repo->clone_http, "/scm/"));
            assert_true(!strncmp(repo->clone_ssh, "ssh://", 6));
            assert_non_null(strstr(repo->browse_url, "/browse"));
            char key[80];
            snprintf(key, sizeof key, "%s/%s", repo->project_key, repo->slug);
            for (int k = 0; k < total; k++)
                assert_string_not_equal(seen[k], key);
            assert_true(total < 64);
            snprintf(seen[total++], sizeof seen[0], "%s", key);
        }
        pages++;
        bool last = r->is_last_page;
        int next = r->next_page_start;
        if (!last) {
            assert_true(next > start);
            if (next != start + (int)r->n_repositories)
                skips++;
        }
        portico__bitbucket__list_repos_reply__free_unpacked(r, NULL);
        if (last)
            break;
        start = next;
        assert_true(pages < 100);
    }
    /* jane: 3 PROJ grants + OPEN's 10 public repositories. */
    assert_int_equal(total, 13);
    assert_true(skips > 0);
    print_message("      repos.list: %d pages, %d repositories, %d skipping nextPageStart\n", pages, total, skips);

    /* limit is clamped, start must not be negative. */
    Portico__Bitbucket__ListReposReply *r = NULL;
    bus_error_t err = s_repos(s_bus, s_emu, t.access, 0, 5000, &r, 5000);
    s_expect(&err, OK, NULL);
    assert_int_equal(r->n_repositories, 13);
    assert_true(r->is_last_page);
    portico__bitbucket__list_repos_reply__free_unpacked(r, NULL);
    err = s_repos(s_bus, s_emu, t.access, -1, 10, &r, 5000);
    s_expect(&err, PORTICO__ERROR_CODE__BAD_REQUEST, "start");
}

/* The small answers (token, whoami, a user, server info) are parsed whole:
 * they may be 64 KiB at most. A page of repositories may be far larger. */
static void test_answer_size_caps(void **state)
{
    (void)state;
    Portico__Bitbucket__Conn conn = s_conn(s_fake);
    Portico__Bitbucket__TokenRequest t = PORTICO__BITBUCKET__TOKEN_REQUEST__INIT;
    t.conn = &conn;
    t.grant_type = "authorization_code";
    t.client_id = "client";
    t.client_secret = "client-secret";
    t.redirect_uri = REDIRECT;
    t.code = "code";
    Portico__Bitbucket__TokenReply *tr = NULL;
    bus_error_t err = s_call(s_bus, "oauth2.token", &t.base, &portico__bitbucket__token_reply__descriptor,
                             (ProtobufCMessage **)&tr, 5000);
    s_expect(&err, PORTICO__ERROR_CODE__UPSTREAM, "too_large");
    assert_non_null(strstr(err.message, "64 KiB"));

    Portico__Bitbucket__Auth auth = PORTICO__BITBUCKET__AUTH__INIT;
    auth.bearer = "x";
    Portico__Bitbucket__GetUserRequest u = PORTICO__BITBUCKET__GET_USER_REQUEST__INIT;
    u.conn = &conn;
    u.auth = &auth;
    u.slug = "big";
    Portico__Bitbucket__GetUserReply *ur = NULL;
    err = s_call(s_bus, "user.get", &u.base, &portico__bitbucket__get_user_reply__descriptor, (ProtobufCMessage **)&ur,
                 5000);
    s_expect(&err, PORTICO__ERROR_CODE__UPSTREAM, "too_large");

    Portico__Bitbucket__ListReposReply *r = NULL;
    err = s_repos(s_bus, s_fake, "x", 0, 25, &r, 5000);
    s_expect(&err, OK, NULL);
    assert_int_equal(r->n_repositories, 25);
    portico__bitbucket__list_repos_reply__free_unpacked(r, NULL);
}

/* A page of users whose reply would not fit in a bus message is an
 * error, as a page of repositories is: the receiver would drop it. */
static void test_user_find_too_large_for_the_bus(void **state)
{
    (void)state;
    Portico__Bitbucket__Conn conn = s_conn(s_fake);
    Portico__Bitbucket__Auth auth = PORTICO__BITBUCKET__AUTH__INIT;
    auth.bearer = "x";
    Portico__Bitbucket__FindUsersRequest f = PORTICO__BITBUCKET__FIND_USERS_REQUEST__INIT;
    f.conn = &conn;
    f.auth = &auth;
    f.filter = "user";
    Portico__Bitbucket__FindUsersReply *fr = NULL;
    bus_error_t err = s_call(s_bus, "user.find", &f.base, &portico__bitbucket__find_users_reply__descriptor,
                             (ProtobufCMessage **)&fr, 5000);
    s_expect(&err, PORTICO__ERROR_CODE__UPSTREAM, "too_large");
    assert_non_null(strstr(err.message, "users"));
}

/* X-AUSERID as it comes over HTTP: repeated with different values, or a
 * list in one header, it names no one and the answer is refused. */
static void test_whoami_user_id_headers(void **state)
{
    (void)state;
    static const struct {
        const char *context;
        int code;
    } cases[] = {{"/one-id", OK},
                 {"/same-ids", OK},
                 {"/two-ids", PORTICO__ERROR_CODE__UPSTREAM},
                 {"/id-list", PORTICO__ERROR_CODE__UPSTREAM}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char base[128];
        snprintf(base, sizeof base, "%s%s", s_fake, cases[i].context);
        Portico__Bitbucket__Conn conn = s_conn(base);
        Portico__Bitbucket__Auth auth = PORTICO__BITBUCKET__AUTH__INIT;
        auth.bearer = "x";
        Portico__Bitbucket__WhoAmIRequest req = PORTICO__BITBUCKET__WHO_AM_IREQUEST__INIT;
        req.conn = &conn;
        req.auth = &auth;
        Portico__Bitbucket__WhoAmIReply *w = NULL;
        bus_error_t err = s_call(s_bus, "whoami", &req.base, &portico__bitbucket__who_am_ireply__descriptor,
                                 (ProtobufCMessage **)&w, 5000);
        if (cases[i].code == OK) {
            s_expect(&err, OK, NULL);
            assert_string_equal(w->username, "jdoe");
            assert_int_equal(w->user_id, 104);
            portico__bitbucket__who_am_ireply__free_unpacked(w, NULL);
        } else {
            s_expect(&err, cases[i].code, "bad_response");
        }
    }
}

/* 429 with Retry-After: retried when it fits in the deadline. */
typedef struct {
    const char *base;
    const char *bearer;
    int timeout_ms;
    int delay_ms; /* before the call */
    bus_error_t err;
    int64_t elapsed_ms;
    int n;
} job_t;

static void *s_repos_job(void *arg)
{
    job_t *j = arg;
    if (j->delay_ms)
        usleep((useconds_t)j->delay_ms * 1000);
    bus_client_t *bus = bus_client_new(s_endpoint, "bitbucket");
    Portico__Bitbucket__ListReposReply *r = NULL;
    int64_t t0 = s_ms();
    j->err = s_repos(bus, j->base, j->bearer, 0, 25, &r, j->timeout_ms);
    j->elapsed_ms = s_ms() - t0;
    if (r) {
        j->n = (int)r->n_repositories;
        portico__bitbucket__list_repos_reply__free_unpacked(r, NULL);
    }
    bus_client_destroy(&bus);
    return NULL;
}

/* ---- login.exchange: the callback's requests in one call ---- */

static bus_error_t s_exchange(const char *code, const char *verifier, int repos_limit,
                              Portico__Bitbucket__LoginExchangeReply **out)
{
    Portico__Bitbucket__Conn conn = s_conn(s_emu);
    Portico__Bitbucket__TokenRequest t = PORTICO__BITBUCKET__TOKEN_REQUEST__INIT;
    t.conn = &conn;
    t.grant_type = "authorization_code";
    t.client_id = s_client_id;
    t.client_secret = s_client_secret;
    t.redirect_uri = REDIRECT;
    t.code = (char *)(uintptr_t)code;
    t.code_verifier = (char *)(uintptr_t)verifier;
    Portico__Bitbucket__LoginExchangeRequest x = PORTICO__BITBUCKET__LOGIN_EXCHANGE_REQUEST__INIT;
    x.oauth2 = &t;
    x.repos_limit = repos_limit;
    return s_call(s_bus, "login.exchange", &x.base, &portico__bitbucket__login_exchange_reply__descriptor,
                  (ProtobufCMessage **)out, 5000);
}

static void test_login_exchange(void **state)
{
    (void)state;
    char verifier[64];
    char *code = s_authorize("jdoe", verifier, sizeof verifier);
    Portico__Bitbucket__LoginExchangeReply *x = NULL;
    bus_error_t err = s_exchange(code, verifier, 3, &x);
    s_expect(&err, OK, NULL);
    free(code);
    assert_non_null(x->tokens);
    assert_true(x->tokens->access_token[0]);
    assert_true(x->tokens->refresh_token[0]);
    s_secret(x->tokens->access_token);
    s_secret(x->tokens->refresh_token);
    assert_non_null(x->whoami);
    assert_string_equal(x->whoami->username, "jdoe");
    assert_null(x->whoami_error);
    assert_non_null(x->user);
    assert_string_equal(x->user->user->name, "jdoe");
    assert_null(x->user_error);
    /* The first page as repos.list gives it with the same token. */
    assert_non_null(x->repositories);
    Portico__Bitbucket__ListReposReply *alone = NULL;
    err = s_repos(s_bus, s_emu, x->tokens->access_token, 0, 3, &alone, 5000);
    s_expect(&err, OK, NULL);
    assert_int_equal(x->repositories->n_repositories, alone->n_repositories);
    assert_true(alone->n_repositories > 0);
    for (size_t i = 0; i < alone->n_repositories; i++)
        assert_string_equal(x->repositories->repositories[i]->slug, alone->repositories[i]->slug);
    assert_int_equal(x->repositories->is_last_page, alone->is_last_page);
    assert_int_equal(x->repositories->next_page_start, alone->next_page_start);
    portico__bitbucket__list_repos_reply__free_unpacked(alone, NULL);
    portico__bitbucket__login_exchange_reply__free_unpacked(x, NULL);

    /* Not asked for repositories: none listed. A slug that is not the name
     * (jane.doe@example.com is jane.doe_example.com): users/{name} is that
     * step's NOT_FOUND, and the chain ends there. */
    code = s_authorize("jane.doe%40example.com", verifier, sizeof verifier);
    err = s_exchange(code, verifier, 3, &x);
    s_expect(&err, OK, NULL);
    free(code);
    assert_string_equal(x->whoami->username, "jane.doe@example.com");
    assert_null(x->user);
    assert_non_null(x->user_error);
    assert_int_equal(x->user_error->code, PORTICO__ERROR_CODE__NOT_FOUND);
    assert_null(x->repositories);
    portico__bitbucket__login_exchange_reply__free_unpacked(x, NULL);

    code = s_authorize("jdoe", verifier, sizeof verifier);
    err = s_exchange(code, verifier, 0, &x);
    s_expect(&err, OK, NULL);
    free(code);
    assert_non_null(x->user);
    assert_null(x->repositories);
    portico__bitbucket__login_exchange_reply__free_unpacked(x, NULL);

    /* The two-factor plugin: whoami answers anonymously; the tokens come
     * back with whoami's error, nothing after it is asked. */
    s_faults(s_emu, "{\"tfa_block\":true}");
    code = s_authorize("jdoe", verifier, sizeof verifier);
    err = s_exchange(code, verifier, 3, &x);
    s_expect(&err, OK, NULL);
    free(code);
    assert_non_null(x->tokens);
    assert_null(x->whoami);
    assert_non_null(x->whoami_error);
    assert_int_equal(x->whoami_error->code, PORTICO__ERROR_CODE__UNAUTHORIZED);
    assert_string_equal(bus_detail_name(x->whoami_error->detail), "anonymous");
    assert_null(x->user);
    assert_null(x->repositories);
    portico__bitbucket__login_exchange_reply__free_unpacked(x, NULL);
    s_no_faults();

    /* A refused exchange is the call's error, as oauth2.token says it. */
    err = s_exchange("not-a-code", "v", 3, &x);
    s_expect(&err, PORTICO__ERROR_CODE__UNAUTHORIZED, "invalid_grant");

    /* Checked before anything is sent. */
    Portico__Bitbucket__LoginExchangeRequest none = PORTICO__BITBUCKET__LOGIN_EXCHANGE_REQUEST__INIT;
    err = s_call(s_bus, "login.exchange", &none.base, &portico__bitbucket__login_exchange_reply__descriptor,
                 (ProtobufCMessage **)&x, 5000);
    s_expect(&err, PORTICO__ERROR_CODE__BAD_REQUEST, "credentials");
    Portico__Bitbucket__Conn conn = s_conn(s_emu);
    Portico__Bitbucket__TokenRequest t = PORTICO__BITBUCKET__TOKEN_REQUEST__INIT;
    t.conn = &conn;
    t.grant_type = "refresh_token";
    t.client_id = s_client_id;
    t.client_secret = s_client_secret;
    t.redirect_uri = REDIRECT;
    t.refresh_token = "r";
    Portico__Bitbucket__LoginExchangeRequest refresh = PORTICO__BITBUCKET__LOGIN_EXCHANGE_REQUEST__INIT;
    refresh.oauth2 = &t;
    err = s_call(s_bus, "login.exchange", &refresh.base, &portico__bitbucket__login_exchange_reply__descriptor,
                 (ProtobufCMessage **)&x, 5000);
    s_expect(&err, PORTICO__ERROR_CODE__BAD_REQUEST, "grant_type");
}

static void test_rate_limit(void **state)
{
    (void)state;
    tokens_t t;
    s_login("jdoe", &t);
    s_faults(s_emu, "{\"rate_limit\":true}");

    /* Retry-After (1 s) does not fit a 900 ms deadline: RATE_LIMITED at once. */
    job_t quick = {.base = s_emu, .bearer = t.access, .timeout_ms = 900};
    s_repos_job(&quick);
    s_expect(&quick.err, PORTICO__ERROR_CODE__RATE_LIMITED, "rate_limited");
    assert_non_null(strstr(quick.err.message, "1 s"));
    assert_true(quick.elapsed_ms < 500);

    /* It fits a 5 s deadline: the service waits, and when the limit lifts
     * in the meantime the retry succeeds. */
    job_t patient = {.base = s_emu, .bearer = t.access, .timeout_ms = 5000};
    pthread_t th;
    pthread_create(&th, NULL, s_repos_job, &patient);
    usleep(400 * 1000);
    s_no_faults();
    pthread_join(th, NULL);
    s_expect(&patient.err, OK, NULL);
    assert_true(patient.elapsed_ms >= 900);
    assert_int_equal(patient.n, 25);
    print_message("      429 then retry after Retry-After: %lld ms\n", (long long)patient.elapsed_ms);

    /* Still limited after every attempt that fits: RATE_LIMITED in the end. */
    s_faults(s_emu, "{\"rate_limit\":true}");
    job_t stuck = {.base = s_emu, .bearer = t.access, .timeout_ms = 2600};
    s_repos_job(&stuck);
    s_expect(&stuck.err, PORTICO__ERROR_CODE__RATE_LIMITED, "rate_limited");
    assert_true(stuck.elapsed_ms >= 1900 && stuck.elapsed_ms < 2600);
    print_message("      429 on every attempt (deadline 2600 ms): answered after %lld ms\n",
                  (long long)stuck.elapsed_ms);
}

/* One slow Bitbucket does not hold up calls to another. */
static void test_parallel_slow(void **state)
{
    (void)state;
    char root_slow[512];
    tokens_t t;
    s_login("jdoe", &t);
    (void)root_slow;
    s_faults(s_slow, "{\"latency_ms\":3000}");
    job_t jobs[5];
    pthread_t th[5];
    memset(jobs, 0, sizeof jobs);
    /* The slow one goes first; server.info needs no token on the slow emulator. */
    int64_t t0 = s_ms();
    for (int i = 0; i < 5; i++) {
        jobs[i].base = i == 0 ? s_slow : s_emu;
        jobs[i].bearer = t.access;
        jobs[i].timeout_ms = 8000;
        jobs[i].delay_ms = i == 0 ? 0 : 50;
    }
    for (int i = 0; i < 5; i++)
        pthread_create(&th[i], NULL, s_repos_job, &jobs[i]);
    for (int i = 0; i < 5; i++)
        pthread_join(th[i], NULL);
    int64_t all = s_ms() - t0;
    /* The slow emulator does not know the fast one's token: 401 after 3 s. */
    s_expect(&jobs[0].err, PORTICO__ERROR_CODE__UNAUTHORIZED, "unauthorized");
    assert_true(jobs[0].elapsed_ms >= 2900);
    for (int i = 1; i < 5; i++) {
        s_expect(&jobs[i].err, OK, NULL);
        assert_true(jobs[i].elapsed_ms < 1000);
    }
    print_message("      parallel: slow call %lld ms; fast calls %lld/%lld/%lld/%lld ms; all %lld ms\n",
                  (long long)jobs[0].elapsed_ms, (long long)jobs[1].elapsed_ms, (long long)jobs[2].elapsed_ms,
                  (long long)jobs[3].elapsed_ms, (long long)jobs[4].elapsed_ms, (long long)all);

    /* A deadline shorter than the latency: TIMEOUT just before it. */
    Portico__Bitbucket__ServerInfoReply *r = NULL;
    int64_t t1 = s_ms();
    bus_error_t err = s_server_info(s_bus, s_slow, NULL, &r, 1000);
    int64_t took = s_ms() - t1;
    s_expect(&err, PORTICO__ERROR_CODE__TIMEOUT, "timeout");
    assert_true(took < 1000);
    print_message("      deadline 1000 ms against 3000 ms latency: TIMEOUT after %lld ms\n", (long long)took);
}

static void test_refused(void **state)
{
    (void)state;
    Portico__Bitbucket__ServerInfoReply *r = NULL;
    int64_t t0 = s_ms();
    bus_error_t err = s_server_info(s_bus, s_refused, NULL, &r, 5000);
    int64_t took = s_ms() - t0;
    s_expect(&err, PORTICO__ERROR_CODE__UNAVAILABLE, "unreachable");
    assert_non_null(strstr(err.message, "127.0.0.1"));
    assert_true(took < 500);
    print_message("      connection refused: UNAVAILABLE after %lld ms\n", (long long)took);
    err = s_server_info(s_bus, "http://no-such-host.invalid", NULL, &r, 5000);
    s_expect(&err, PORTICO__ERROR_CODE__UNAVAILABLE, "unreachable");
}

/* Against a service allowing loopback only as 127.0.0.1
 * (PORTICO_BITBUCKET_ALLOW): another loopback address is refused before
 * any connection. */
static void test_egress_exception_is_narrow(void **state)
{
    (void)state;
    Portico__Bitbucket__ServerInfoReply *r = NULL;
    char base[512];
    const char *port = strrchr(s_emu, ':');
    snprintf(base, sizeof base, "http://127.0.0.2%s", port);
    bus_error_t err = s_server_info(s_bus, base, NULL, &r, 5000);
    s_expect(&err, PORTICO__ERROR_CODE__FORBIDDEN, "address_refused");
    assert_non_null(strstr(err.message, "127.0.0.2 is a loopback address"));
    assert_non_null(strstr(err.message, "PORTICO_BITBUCKET_ALLOW"));
}

/* Against a service without exceptions (run.sh starts one): loopback is
 * refused whether the URL names it or a host name resolves to it. */
static void test_egress_refused(void **state)
{
    (void)state;
    Portico__Bitbucket__ServerInfoReply *r = NULL;
    const char *port = strrchr(s_emu, ':');
    static const struct {
        const char *host, *why;
    } cases[] = {
        {"127.0.0.1", "127.0.0.1 is a loopback address"},
        /* A name that resolves to loopback gets nowhere either. */
        {"localhost", "is a loopback address"},
        {"[::1]", "::1 is a loopback address"},
        {"0.0.0.0", "0.0.0.0 is an unspecified address"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char base[512];
        snprintf(base, sizeof base, "http://%s%s", cases[i].host, port);
        bus_error_t err = s_server_info(s_bus, base, NULL, &r, 5000);
        s_expect(&err, PORTICO__ERROR_CODE__FORBIDDEN, "address_refused");
        if (!strstr(err.message, cases[i].why))
            fail_msg("%s: %s", base, err.message);
    }
}

static void test_tls(void **state)
{
    (void)state;
    if (!s_tls) {
        skip();
        return;
    }
    char *ca = s_read_file(s_tls_cert), *other = s_read_file(s_other_cert);
    Portico__Bitbucket__ServerInfoReply *r = NULL;
    /* Self-signed, not trusted: TLS with advice. */
    bus_error_t err = s_server_info(s_bus, s_tls, NULL, &r, 5000);
    s_expect(&err, PORTICO__ERROR_CODE__TLS, "certificate");
    assert_non_null(strstr(err.message, "could not be verified"));
    assert_non_null(strstr(err.message, "CA certificate"));
    /* Another CA is no help. */
    err = s_server_info(s_bus, s_tls, other, &r, 5000);
    s_expect(&err, PORTICO__ERROR_CODE__TLS, "certificate");
    /* Garbage instead of a PEM. */
    err = s_server_info(s_bus, s_tls, "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", &r, 5000);
    s_expect(&err, PORTICO__ERROR_CODE__TLS, NULL);
    /* Its own certificate as the CA: TLS works, and s_server is no Bitbucket. */
    err = s_server_info(s_bus, s_tls, ca, &r, 5000);
    s_expect(&err, PORTICO__ERROR_CODE__UPSTREAM, "not_bitbucket");
    free(ca);
    free(other);
}

/* ---- OAuth 1 ---- */

static void s_keypair(char **priv, char **pub)
{
    EVP_PKEY *pkey = EVP_RSA_gen(2048);
    assert_non_null(pkey);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey_traditional(b, pkey, NULL, NULL, 0, NULL, NULL);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    *priv = strndup(data, (size_t)n);
    BIO_free(b);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, pkey);
    n = BIO_get_mem_data(b, &data);
    *pub = strndup(data, (size_t)n);
    BIO_free(b);
    EVP_PKEY_free(pkey);
}

static bus_error_t s_o1_request(const char *base, const char *key, const char *priv,
                                Portico__Bitbucket__OAuth1TokenReply **out)
{
    Portico__Bitbucket__Conn conn = s_conn(base);
    Portico__Bitbucket__OAuth1RequestTokenRequest req = PORTICO__BITBUCKET__OAUTH1_REQUEST_TOKEN_REQUEST__INIT;
    req.conn = &conn;
    req.consumer_key = (char *)(uintptr_t)key;
    req.private_key_pem = (char *)(uintptr_t)priv;
    req.callback = "https://portico.example/oauth1/callback?integration=7";
    return s_call(s_bus, "oauth1.request_token", &req.base, &portico__bitbucket__oauth1_token_reply__descriptor,
                  (ProtobufCMessage **)out, 5000);
}

static void test_oauth1(void **state)
{
    (void)state;
    char *priv, *pub, *priv2, *pub2;
    s_keypair(&priv, &pub);
    s_keypair(&priv2, &pub2);
    char url[512], json[4096], key[64];
    snprintf(key, sizeof key, "portico-%d", (int)getpid());
    /* JSON-escape the newlines of the PEM. */
    char esc[2048];
    size_t o = 0;
    for (const char *p = pub; *p && o + 3 < sizeof esc; p++) {
        if (*p == '\n') {
            esc[o++] = '\\';
            esc[o++] = 'n';
        } else {
            esc[o++] = *p;
        }
    }
    esc[o] = '\0';
    snprintf(json, sizeof json, "{\"name\":\"Portico\",\"consumer_key\":\"%s\",\"public_key\":\"%s\"}", key, esc);
    snprintf(url, sizeof url, "%s/emulator/applinks/oauth1", s_emu);
    long st = s_http("POST", url, json, NULL, NULL, NULL);
    assert_true(st == 200 || st == 201);

    char base[512];
    snprintf(base, sizeof base, "%s/", s_emu);
    Portico__Bitbucket__OAuth1TokenReply *rt = NULL;
    bus_error_t err = s_o1_request(base, key, priv, &rt);
    s_expect(&err, OK, NULL);
    assert_true(rt->token[0] && rt->token_secret[0]);

    /* The user approves (auto-approve), Bitbucket redirects with a verifier. */
    snprintf(url, sizeof url, "%s/plugins/servlet/oauth/authorize?oauth_token=%s", s_emu, rt->token);
    char *location = NULL;
    st = s_http("GET", url, NULL, "X-Emulator-User: jane.doe%40example.com", NULL, &location);
    assert_int_equal(st, 302);
    char *verifier = s_query_param(location, "oauth_verifier");
    assert_non_null(verifier);

    Portico__Bitbucket__Conn conn = s_conn(base);
    Portico__Bitbucket__OAuth1Credentials cred = PORTICO__BITBUCKET__OAUTH1_CREDENTIALS__INIT;
    cred.consumer_key = key;
    cred.private_key_pem = priv;
    cred.token = rt->token;
    cred.token_secret = rt->token_secret;
    Portico__Bitbucket__OAuth1AccessTokenRequest at = PORTICO__BITBUCKET__OAUTH1_ACCESS_TOKEN_REQUEST__INIT;
    at.conn = &conn;
    at.credentials = &cred;
    at.verifier = verifier;
    Portico__Bitbucket__OAuth1TokenReply *acc = NULL;
    err = s_call(s_bus, "oauth1.access_token", &at.base, &portico__bitbucket__oauth1_token_reply__descriptor,
                 (ProtobufCMessage **)&acc, 5000);
    s_expect(&err, OK, NULL);
    assert_true(acc->token[0]);
    assert_true(acc->expires_in > 0);
    s_secret(rt->token_secret);
    s_secret(acc->token);
    s_secret(acc->token_secret);
    s_secret(verifier);

    /* The request token is single use. */
    Portico__Bitbucket__OAuth1TokenReply *again = NULL;
    err = s_call(s_bus, "oauth1.access_token", &at.base, &portico__bitbucket__oauth1_token_reply__descriptor,
                 (ProtobufCMessage **)&again, 5000);
    s_expect(&err, PORTICO__ERROR_CODE__UNAUTHORIZED, "token_rejected");

    /* Signed REST calls with the access token. */
    Portico__Bitbucket__OAuth1Credentials use = PORTICO__BITBUCKET__OAUTH1_CREDENTIALS__INIT;
    use.consumer_key = key;
    use.private_key_pem = priv;
    use.token = acc->token;
    use.token_secret = acc->token_secret;
    Portico__Bitbucket__WhoAmIReply *w = NULL;
    err = s_whoami(NULL, &use, &w);
    s_expect(&err, OK, NULL);
    assert_string_equal(w->username, "jane.doe@example.com");
    portico__bitbucket__who_am_ireply__free_unpacked(w, NULL);

    /* A path with an escape ("%40") is signed as sent: the name is not
     * the slug (NOT_FOUND), but the signature holds. */
    Portico__Bitbucket__Conn o1_conn = s_conn(s_emu);
    Portico__Bitbucket__Auth o1_auth = PORTICO__BITBUCKET__AUTH__INIT;
    o1_auth.oauth1 = &use;
    Portico__Bitbucket__GetUserRequest ug = PORTICO__BITBUCKET__GET_USER_REQUEST__INIT;
    ug.conn = &o1_conn;
    ug.auth = &o1_auth;
    ug.slug = "jane.doe@example.com";
    Portico__Bitbucket__GetUserReply *gu = NULL;
    err = s_call(s_bus, "user.get", &ug.base, &portico__bitbucket__get_user_reply__descriptor,
                 (ProtobufCMessage **)&gu, 5000);
    s_expect(&err, PORTICO__ERROR_CODE__NOT_FOUND, "not_found");
    ug.slug = "jane.doe_example.com";
    err = s_call(s_bus, "user.get", &ug.base, &portico__bitbucket__get_user_reply__descriptor,
                 (ProtobufCMessage **)&gu, 5000);
    s_expect(&err, OK, NULL);
    assert_string_equal(gu->user->name, "jane.doe@example.com");
    portico__bitbucket__get_user_reply__free_unpacked(gu, NULL);

    /* Signed with the wrong key: signature_invalid (the OAuth filter
     * answers 401 before the whoami servlet). */
    use.private_key_pem = priv2;
    err = s_whoami(NULL, &use, &w);
    s_expect(&err, PORTICO__ERROR_CODE__UNAUTHORIZED, "signature_invalid");
    assert_non_null(strstr(err.message, "public key"));
    /* Unknown consumer. */
    err = s_o1_request(base, "nobody-knows-me", priv, &rt);
    s_expect(&err, PORTICO__ERROR_CODE__UNAUTHORIZED, "consumer_key_unknown");
    /* Unusable key material is refused before anything is sent. */
    err = s_o1_request(base, key, "-----BEGIN RSA PRIVATE KEY-----\nxx\n-----END RSA PRIVATE KEY-----\n", &rt);
    s_expect(&err, PORTICO__ERROR_CODE__BAD_REQUEST, "private_key");
    assert_null(strstr(err.message, "BEGIN"));

    portico__bitbucket__oauth1_token_reply__free_unpacked(acc, NULL);
    free(verifier);
    free(location);
    free(priv);
    free(pub);
    free(priv2);
    free(pub2);
}

/* Server errors are UNAVAILABLE; the service keeps nothing from them. */
static void test_server_errors(void **state)
{
    (void)state;
    s_faults(s_emu, "{\"status\":503}");
    Portico__Bitbucket__ServerInfoReply *r = NULL;
    bus_error_t err = s_server_info(s_bus, s_emu, NULL, &r, 5000);
    s_expect(&err, PORTICO__ERROR_CODE__UNAVAILABLE, "server_error");
    s_faults(s_emu, "{\"status\":0,\"hang\":true}");
    int64_t t0 = s_ms();
    err = s_server_info(s_bus, s_emu, NULL, &r, 1500);
    s_expect(&err, PORTICO__ERROR_CODE__TIMEOUT, "timeout");
    assert_true(s_ms() - t0 < 1500);
}

/* ---- shutdown (separate run) ---- */

/* abort: the call in flight takes longer than the drain time (4 s), so it
 * is answered UNAVAILABLE when the drain ends. */
static int s_shutdown(bool abort)
{
    const char *pid_s = getenv("BB_PID");
    if (!pid_s)
        return 2;
    s_faults(s_slow, abort ? "{\"latency_ms\":8000}" : "{\"latency_ms\":1500}");
    job_t slow = {.base = s_slow, .bearer = "x", .timeout_ms = 6000};
    pthread_t th;
    pthread_create(&th, NULL, s_repos_job, &slow);
    usleep(300 * 1000);
    kill((pid_t)atoi(pid_s), SIGTERM);
    usleep(200 * 1000);
    /* A new call while stopping is refused at once, as STOPPING (nothing
     * run: a bus client with another instance sends it there). */
    Portico__Bitbucket__ServerInfoReply *r = NULL;
    bus_error_t err = s_server_info(s_bus, s_emu, NULL, &r, 2000);
    int rc = 0;
    if (!abort) {
        /* Calls keep coming (a client that has not yet seen this instance
         * go) while the call in flight finishes (at about 1.5 s) and after:
         * each is refused STOPPING, so its bus client may send it to
         * another instance; none is left unanswered by an instance that
         * left while calls still came. */
        for (int i = 0; i < 20; i++) {
            usleep(100 * 1000);
            bus_error_t again = s_server_info(s_bus, s_emu, NULL, &r, 1000);
            if (again.code != PORTICO__ERROR_CODE__UNAVAILABLE || again.detail != DETAIL(STOPPING)) {
                fprintf(stderr, "FAIL: call %d while stopping got %s/%s\n", i, bus_code_name(again.code),
                        bus_detail_name(again.detail));
                rc = 1;
                break;
            }
        }
    }
    pthread_join(th, NULL);
    s_no_faults();
    if (err.code != PORTICO__ERROR_CODE__UNAVAILABLE || err.detail != DETAIL(STOPPING)) {
        fprintf(stderr, "FAIL: call during shutdown got %s/%s\n", bus_code_name(err.code), bus_detail_name(err.detail));
        rc = 1;
    }
    /* The call in flight was let finish (the slow emulator's 401 for a bogus
     * token), or cut at the end of the drain. */
    int want = abort ? PORTICO__ERROR_CODE__UNAVAILABLE : PORTICO__ERROR_CODE__UNAUTHORIZED;
    if (slow.err.code != want || (abort && (slow.elapsed_ms < 3500 || slow.elapsed_ms > 5000))) {
        fprintf(stderr, "FAIL: call in flight got %s/%s (%s)\n", bus_code_name(slow.err.code),
                bus_detail_name(slow.err.detail), slow.err.message);
        rc = 1;
    }
    printf("shutdown: new call %s/%s; call in flight answered %s after %lld ms\n", bus_code_name(err.code),
           bus_detail_name(err.detail), bus_code_name(slow.err.code), (long long)slow.elapsed_ms);
    return rc;
}

int main(int argc, char **argv)
{
    bus_init();
    /* Only the broker calls the Bitbucket service: the tests speak as it. */
    busauth_init_or_die("broker", 0, BUS_BITBUCKET);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    s_endpoint = getenv("BB_ENDPOINT");
    s_emu = getenv("EMU_BASE");
    s_slow = getenv("SLOW_BASE");
    s_refused = getenv("REFUSED_BASE");
    s_tls = getenv("TLS_BASE");
    s_tls_cert = getenv("TLS_CERT");
    s_other_cert = getenv("OTHER_CERT");
    if (!s_endpoint || !s_emu || !s_slow || !s_refused) {
        fprintf(stderr, "bb_service_test: run me from tests/service/bitbucket/run.sh\n");
        return 2;
    }
    s_bus = bus_client_new(s_endpoint, "bitbucket");
    int rc;
    if (argc == 2 && !strcmp(argv[1], "egress")) {
        const struct CMUnitTest tests[] = {cmocka_unit_test(test_egress_refused)};
        rc = cmocka_run_group_tests_name("egress", tests, NULL, NULL);
    } else if (argc == 2 && !strcmp(argv[1], "egress-narrow")) {
        const struct CMUnitTest tests[] = {cmocka_unit_test(test_egress_exception_is_narrow)};
        rc = cmocka_run_group_tests_name("egress-narrow", tests, NULL, NULL);
    } else if (argc == 2 && (!strcmp(argv[1], "shutdown") || !strcmp(argv[1], "shutdown-abort"))) {
        rc = s_shutdown(!strcmp(argv[1], "shutdown-abort"));
    } else {
        s_fake_start();
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_teardown(test_ping, s_reset_faults),
            cmocka_unit_test_teardown(test_server_info, s_reset_faults),
            cmocka_unit_test_teardown(test_oauth2_identity, s_reset_faults),
            cmocka_unit_test_teardown(test_oauth2_errors, s_reset_faults),
            cmocka_unit_test_teardown(test_whoami_anonymous, s_reset_faults),
            cmocka_unit_test_teardown(test_repos_paging, s_reset_faults),
            cmocka_unit_test_teardown(test_answer_size_caps, s_reset_faults),
            cmocka_unit_test_teardown(test_user_find_too_large_for_the_bus, s_reset_faults),
            cmocka_unit_test_teardown(test_whoami_user_id_headers, s_reset_faults),
            cmocka_unit_test_teardown(test_login_exchange, s_reset_faults),
            cmocka_unit_test_teardown(test_rate_limit, s_reset_faults),
            cmocka_unit_test_teardown(test_parallel_slow, s_reset_faults),
            cmocka_unit_test_teardown(test_refused, s_reset_faults),
            cmocka_unit_test_teardown(test_tls, s_reset_faults),
            cmocka_unit_test_teardown(test_oauth1, s_reset_faults),
            cmocka_unit_test_teardown(test_server_errors, s_reset_faults),
        };
        rc = cmocka_run_group_tests(tests, s_group_setup, NULL);
    }
    bus_client_destroy(&s_bus);
    curl_global_cleanup();
    return rc;
}
