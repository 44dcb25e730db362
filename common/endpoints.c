#include "endpoints.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct {
    char text[ENDPOINTS_LEN]; /* as configured */
    char host[ENDPOINTS_LEN]; /* a name to resolve; "" when text stands for itself */
    char port[8];
} item_t;

typedef struct {
    char endpoint[ENDPOINTS_LEN];
    int item; /* which item it came from */
} entry_t;

struct endpoints_t {
    item_t items[ENDPOINTS_MAX];
    int nitems;
    entry_t cur[ENDPOINTS_MAX];
    int ncur;
    int64_t resolved_at;
    bool resolved;
    endpoints_resolver_fn resolver;
};

static bool s_literal(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* One comma-separated item of a setting, already trimmed. */
static int s_parse_item(const char *text, item_t *it, char *why, size_t why_size)
{
    memset(it, 0, sizeof *it);
    if (strlen(text) >= sizeof it->text) {
        snprintf(why, why_size, "an endpoint is longer than %d characters", ENDPOINTS_LEN - 1);
        return -1;
    }
    snprintf(it->text, sizeof it->text, "%s", text);
    if (!strncmp(text, "ipc://", 6) || !strncmp(text, "inproc://", 9)) {
        if (strstr(text, "://")[3])
            return 0;
        snprintf(why, why_size, "\"%.40s\" has no path", text);
        return -1;
    }
    if (strncmp(text, "tcp://", 6)) {
        snprintf(why, why_size,
                 "must be ZeroMQ endpoints such as tcp://registry:5551, separated by commas (got \"%.40s\")", text);
        return -1;
    }
    const char *hostport = text + 6;
    const char *colon = strrchr(hostport, ':');
    if (!colon || colon == hostport || !colon[1] || strlen(colon + 1) >= sizeof it->port ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1) || atoi(colon + 1) < 1 || atoi(colon + 1) > 65535) {
        snprintf(why, why_size, "\"%.40s\" needs a host and a port such as tcp://registry:5551", text);
        return -1;
    }
    snprintf(it->port, sizeof it->port, "%s", colon + 1);
    size_t hlen = (size_t)(colon - hostport);
    if (hostport[0] == '[') {
        if (hlen < 3 || hostport[hlen - 1] != ']') {
            snprintf(why, why_size, "\"%.40s\" has an unclosed [", text);
            return -1;
        }
        hostport++;
        hlen -= 2;
    }
    char host[ENDPOINTS_LEN];
    snprintf(host, sizeof host, "%.*s", (int)hlen, hostport);
    if (strpbrk(host, "*;/ ")) {
        snprintf(why, why_size, "\"%.40s\" does not name one host", text);
        return -1;
    }
    if (!s_literal(host))
        snprintf(it->host, sizeof it->host, "%s", host);
    return 0;
}

static int s_parse(const char *spec, item_t *items, int *nitems, char *why, size_t why_size)
{
    char copy[ENDPOINTS_MAX * ENDPOINTS_LEN];
    if (!spec || strlen(spec) >= sizeof copy) {
        snprintf(why, why_size, "is empty or too long");
        return -1;
    }
    snprintf(copy, sizeof copy, "%s", spec);
    *nitems = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t')
            tok++;
        size_t n = strlen(tok);
        while (n && (tok[n - 1] == ' ' || tok[n - 1] == '\t'))
            tok[--n] = '\0';
        if (!n)
            continue;
        if (*nitems == ENDPOINTS_MAX) {
            snprintf(why, why_size, "names more than %d endpoints", ENDPOINTS_MAX);
            return -1;
        }
        if (s_parse_item(tok, &items[*nitems], why, why_size) < 0)
            return -1;
        (*nitems)++;
    }
    if (!*nitems) {
        snprintf(why, why_size, "must name at least one endpoint such as tcp://registry:5551");
        return -1;
    }
    return 0;
}

int endpoints_check(const char *spec, char *why, size_t why_size)
{
    item_t *items = malloc(sizeof(item_t) * ENDPOINTS_MAX);
    int n = 0;
    if (!items) {
        snprintf(why, why_size, "out of memory");
        return -1;
    }
    int rc = s_parse(spec, items, &n, why, why_size);
    free(items);
    return rc;
}

/* getaddrinfo's answer; IPv4 only when it has any, since that is what
 * Docker's networks and loopback services listen on. */
static int s_system_resolver(const char *host, char out[][64], int max)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return -1;
    bool any_v4 = false;
    for (struct addrinfo *a = res; a; a = a->ai_next)
        any_v4 |= a->ai_family == AF_INET;
    int n = 0;
    for (struct addrinfo *a = res; a && n < max; a = a->ai_next) {
        if (a->ai_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)a->ai_addr)->sin_addr, out[n++], 64);
        else if (a->ai_family == AF_INET6 && !any_v4)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)a->ai_addr)->sin6_addr, out[n++], 64);
    }
    freeaddrinfo(res);
    return n;
}

endpoints_t *endpoints_new(const char *spec, endpoints_resolver_fn resolver)
{
    endpoints_t *self = calloc(1, sizeof *self);
    char why[200];
    if (!self)
        return NULL;
    if (s_parse(spec, self->items, &self->nitems, why, sizeof why) < 0) {
        free(self);
        return NULL;
    }
    self->resolver = resolver ? resolver : s_system_resolver;
    return self;
}

void endpoints_destroy(endpoints_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(((const entry_t *)a)->endpoint, ((const entry_t *)b)->endpoint);
}

static void s_add(entry_t *list, int *n, const char *endpoint, int item)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp(list[i].endpoint, endpoint))
            return;
    if (*n == ENDPOINTS_MAX)
        return;
    snprintf(list[*n].endpoint, sizeof list[*n].endpoint, "%s", endpoint);
    list[(*n)++].item = item;
}

static bool s_has(const entry_t *list, int n, const char *endpoint)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i].endpoint, endpoint))
            return true;
    return false;
}

int endpoints_refresh(endpoints_t *self, int64_t now_ms, bool force, endpoints_change_fn fn, void *arg)
{
    if (self->resolved && !force && now_ms - self->resolved_at < ENDPOINTS_REFRESH_MS)
        return 0;
    self->resolved = true;
    self->resolved_at = now_ms;
    entry_t next[ENDPOINTS_MAX];
    int nnext = 0;
    for (int i = 0; i < self->nitems; i++) {
        const item_t *it = &self->items[i];
        if (!it->host[0]) {
            s_add(next, &nnext, it->text, i);
            continue;
        }
        char addrs[ENDPOINTS_MAX][64];
        int n = self->resolver(it->host, addrs, ENDPOINTS_MAX);
        if (n <= 0) {
            /* Keep what this name gave last time. */
            for (int j = 0; j < self->ncur; j++)
                if (self->cur[j].item == i)
                    s_add(next, &nnext, self->cur[j].endpoint, i);
            continue;
        }
        for (int j = 0; j < n; j++) {
            char ep[ENDPOINTS_LEN];
            snprintf(ep, sizeof ep, strchr(addrs[j], ':') ? "tcp://[%s]:%s" : "tcp://%s:%s", addrs[j], it->port);
            s_add(next, &nnext, ep, i);
        }
    }
    qsort(next, (size_t)nnext, sizeof next[0], s_cmp);
    int changes = 0;
    for (int i = 0; i < self->ncur; i++)
        if (!s_has(next, nnext, self->cur[i].endpoint)) {
            changes++;
            if (fn)
                fn(arg, self->cur[i].endpoint, false);
        }
    for (int i = 0; i < nnext; i++)
        if (!s_has(self->cur, self->ncur, next[i].endpoint)) {
            changes++;
            if (fn)
                fn(arg, next[i].endpoint, true);
        }
    memcpy(self->cur, next, sizeof next[0] * (size_t)nnext);
    self->ncur = nnext;
    return changes;
}

int endpoints_count(const endpoints_t *self)
{
    return self->ncur;
}

const char *endpoints_at(const endpoints_t *self, int i)
{
    return i >= 0 && i < self->ncur ? self->cur[i].endpoint : NULL;
}

int endpoints_resolve_once(const char *spec, char out[][ENDPOINTS_LEN], int max)
{
    endpoints_t *e = endpoints_new(spec, NULL);
    if (!e)
        return -1;
    endpoints_refresh(e, 0, true, NULL, NULL);
    int n = 0;
    for (; n < e->ncur && n < max; n++)
        snprintf(out[n], ENDPOINTS_LEN, "%s", e->cur[n].endpoint);
    endpoints_destroy(&e);
    return n;
}
