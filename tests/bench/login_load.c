/* The load generator of the login benchmark: N concurrent browsers, each
 * doing complete logins one after another for a fixed time, on one thread
 * with libcurl's multi interface (so the generator costs far less CPU than
 * the system it measures).
 *
 * One login, as a browser with a fresh cookie jar does it:
 *   1. GET {web}/login/start/{id}          303 to Bitbucket, Set-Cookie binding
 *   2. GET {authorize URL}                 the emulator (--auto-approve) answers
 *      x-emulator-user: user{k}            302 to the callback with a code
 *   3. GET {callback} with the binding     303, Set-Cookie session
 * Connections are kept alive where the server allows it, as a browser does.
 *
 *   login_load WEB_URL INTEGRATION_ID CLIENTS SECONDS [USERS]
 *
 * Prints one line: "RESULT clients=.. logins=.. errors=.. seconds=..
 * per_second=.. p50_ms=.. p99_ms=..", and the first few errors on stderr. */
#include <curl/curl.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_CLIENTS 1024
#define MAX_SAMPLES 4000000
#define MAX_HEADER_VALUE 4096

typedef struct {
    CURL *easy;
    int step; /* 1 start, 2 authorize, 3 callback */
    int64_t started_us;
    char location[MAX_HEADER_VALUE];
    char binding[256]; /* the portico_login cookie pair */
    bool session;      /* got a portico_session cookie */
    long user;         /* the emulator's bench user of this login */
    char url[MAX_HEADER_VALUE];
    struct curl_slist *headers;
} client_t;

static const char *s_web;
static long s_integration;
static int s_users = 200;
static long s_next_user;
static int64_t *s_lat;
static long s_nlat, s_errors;

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static size_t s_discard(char *ptr, size_t size, size_t n, void *arg)
{
    (void)ptr;
    (void)arg;
    return size * n;
}

/* Copy a header's value without the line ending. */
static void s_value(const char *v, size_t len, char *out, size_t out_size)
{
    while (len && (v[len - 1] == '\r' || v[len - 1] == '\n'))
        len--;
    while (len && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    if (len >= out_size)
        len = out_size - 1;
    memcpy(out, v, len);
    out[len] = '\0';
}

static size_t s_header(char *line, size_t size, size_t n, void *arg)
{
    client_t *c = arg;
    size_t len = size * n;
    if (len > 9 && !strncasecmp(line, "Location:", 9)) {
        s_value(line + 9, len - 9, c->location, sizeof c->location);
    } else if (len > 11 && !strncasecmp(line, "Set-Cookie:", 11)) {
        char v[MAX_HEADER_VALUE];
        s_value(line + 11, len - 11, v, sizeof v);
        char *semi = strchr(v, ';');
        if (semi)
            *semi = '\0';
        char *eq = strchr(v, '=');
        if (!eq || eq[1] == '\0')
            return len; /* a cookie being cleared */
        if (!strncmp(v, "portico_login=", 14) || !strncmp(v, "__Host-portico_login=", 21))
            snprintf(c->binding, sizeof c->binding, "%s", v);
        else if (!strncmp(v, "portico_session=", 16) || !strncmp(v, "__Host-portico_session=", 23))
            c->session = true;
    }
    return len;
}

static void s_error(const char *what, long status, const char *detail)
{
    if (s_errors++ < 5)
        fprintf(stderr, "login_load: %s: status %ld %s\n", what, status, detail ? detail : "");
}

/* Set the easy handle up for the next step and hand it back to multi. */
static void s_issue(CURLM *multi, client_t *c)
{
    curl_slist_free_all(c->headers);
    c->headers = NULL;
    c->location[0] = '\0';
    if (c->step == 1) {
        c->binding[0] = '\0';
        c->session = false;
        c->started_us = s_now_us();
        c->user = s_next_user++ % s_users;
        snprintf(c->url, sizeof c->url, "%s/login/start/%ld", s_web, s_integration);
    } else if (c->step == 2) {
        char h[64];
        snprintf(h, sizeof h, "x-emulator-user: user%ld", c->user);
        c->headers = curl_slist_append(NULL, h);
    } else {
        char h[300];
        snprintf(h, sizeof h, "Cookie: %s", c->binding);
        c->headers = curl_slist_append(NULL, h);
    }
    curl_easy_setopt(c->easy, CURLOPT_URL, c->url);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
    curl_multi_add_handle(multi, c->easy);
}

/* A step ended: check it, then issue the next one (or a new login).
 * False when this client is finished. */
static bool s_done(CURLM *multi, client_t *c, CURLcode result, int64_t until)
{
    long status = 0;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(multi, c->easy);
    bool ok = result == CURLE_OK;
    if (!ok) {
        s_error(c->step == 1 ? "start" : c->step == 2 ? "authorize" : "callback", status, curl_easy_strerror(result));
    } else if (c->step == 1) {
        ok = status == 303 && c->location[0] && c->binding[0];
        if (!ok)
            s_error("start", status, c->location);
    } else if (c->step == 2) {
        ok = (status == 302 || status == 303) && c->location[0];
        if (!ok)
            s_error("authorize", status, c->location);
    } else {
        ok = status == 303 && c->session;
        if (!ok)
            s_error("callback", status, c->location);
    }
    if (ok && c->step == 3) {
        if (s_nlat < MAX_SAMPLES)
            s_lat[s_nlat++] = s_now_us() - c->started_us;
        c->step = 1;
    } else if (ok) {
        snprintf(c->url, sizeof c->url, "%s", c->location);
        c->step++;
    } else {
        c->step = 1;
    }
    if (c->step == 1 && s_now_us() >= until)
        return false;
    s_issue(multi, c);
    return true;
}

static int s_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double s_pct(double p)
{
    if (!s_nlat)
        return 0;
    long i = (long)(p / 100.0 * (double)s_nlat);
    if (i >= s_nlat)
        i = s_nlat - 1;
    return (double)s_lat[i] / 1000.0;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s WEB_URL INTEGRATION_ID CLIENTS SECONDS [USERS]\n", argv[0]);
        return 2;
    }
    s_web = argv[1];
    s_integration = atol(argv[2]);
    int nclients = atoi(argv[3]);
    double seconds = atof(argv[4]);
    if (argc > 5)
        s_users = atoi(argv[5]);
    if (nclients < 1 || nclients > MAX_CLIENTS || seconds <= 0 || s_users < 1) {
        fprintf(stderr, "login_load: bad arguments\n");
        return 2;
    }
    s_lat = malloc(sizeof *s_lat * MAX_SAMPLES);
    client_t *clients = calloc((size_t)nclients, sizeof *clients);
    if (!s_lat || !clients)
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)nclients * 2 + 4);
    for (int i = 0; i < nclients; i++) {
        client_t *c = &clients[i];
        c->easy = curl_easy_init();
        curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, s_discard);
        curl_easy_setopt(c->easy, CURLOPT_HEADERFUNCTION, s_header);
        curl_easy_setopt(c->easy, CURLOPT_HEADERDATA, c);
        curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
        curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, 30000L);
        curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c->easy, CURLOPT_TCP_NODELAY, 1L);
        c->step = 1;
    }
    int64_t t0 = s_now_us();
    int64_t until = t0 + (int64_t)(seconds * 1e6);
    for (int i = 0; i < nclients; i++)
        s_issue(multi, &clients[i]);
    int active = nclients;
    while (active > 0) {
        int running;
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            client_t *c = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            if (!s_done(multi, c, m->data.result, until))
                active--;
        }
        if (active > 0)
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    double elapsed = (double)(s_now_us() - t0) / 1e6;
    qsort(s_lat, (size_t)s_nlat, sizeof *s_lat, s_cmp);
    printf("RESULT clients=%d logins=%ld errors=%ld seconds=%.2f per_second=%.1f p50_ms=%.2f p99_ms=%.2f\n", nclients,
           s_nlat, s_errors, elapsed, (double)s_nlat / elapsed, s_pct(50), s_pct(99));
    for (int i = 0; i < nclients; i++) {
        curl_slist_free_all(clients[i].headers);
        curl_easy_cleanup(clients[i].easy);
    }
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    free(clients);
    free(s_lat);
    return 0;
}
