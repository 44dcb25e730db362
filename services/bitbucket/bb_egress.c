#include "bb_egress.h"

#include "netaddr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HOST 256

/* IPv4 as IPv4-mapped IPv6, prefix 0..128 on the mapped form. */
typedef netaddr_net_t net_t;

typedef struct {
    char **items;
    size_t n, cap;
} names_t;

typedef struct {
    net_t *items;
    size_t n, cap;
} nets_t;

struct bb_egress_t {
    nets_t allow_nets;
    names_t allow_names;
    nets_t own; /* single addresses (prefix 128) */
};

static const bb_egress_t *_Atomic s_global;

bb_egress_t *bb_egress_new(void)
{
    return calloc(1, sizeof(bb_egress_t));
}

void bb_egress_destroy(bb_egress_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bb_egress_t *self = *self_p;
    for (size_t i = 0; i < self->allow_names.n; i++)
        free(self->allow_names.items[i]);
    free(self->allow_names.items);
    free(self->allow_nets.items);
    free(self->own.items);
    free(self);
    *self_p = NULL;
}

void bb_egress_set_global(bb_egress_t *policy)
{
    atomic_store(&s_global, policy);
}

const bb_egress_t *bb_egress_global(void)
{
    return atomic_load(&s_global);
}

/* ---- addresses ---- */

static void s_map4(const struct in_addr *a4, uint8_t out[16])
{
    memset(out, 0, 10);
    out[10] = 0xff;
    out[11] = 0xff;
    memcpy(out + 12, a4, 4);
}

static bool s_is_mapped4(const uint8_t a[16])
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a, prefix, 12) == 0;
}

static int s_from_sockaddr(const struct sockaddr *sa, uint8_t out[16])
{
    if (!sa)
        return -1;
    if (sa->sa_family == AF_INET) {
        s_map4(&((const struct sockaddr_in *)(const void *)sa)->sin_addr, out);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        return 0;
    }
    return -1;
}

static int s_from_text(const char *text, uint8_t out[16])
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, text, &a4) == 1) {
        s_map4(&a4, out);
        return 0;
    }
    if (inet_pton(AF_INET6, text, &a6) == 1) {
        memcpy(out, &a6, 16);
        return 0;
    }
    return -1;
}

static bool s_in(const uint8_t a[16], const net_t *n)
{
    int full = n->prefix / 8, rest = n->prefix % 8;
    if (memcmp(a, n->addr, (size_t)full) != 0)
        return false;
    if (!rest)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (n->addr[full] & mask);
}

static int s_push_net(nets_t *v, const uint8_t addr[16], int prefix)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        net_t *items = realloc(v->items, cap * sizeof *items);
        if (!items)
            return -1;
        v->items = items;
        v->cap = cap;
    }
    memcpy(v->items[v->n].addr, addr, 16);
    v->items[v->n].prefix = prefix;
    v->n++;
    return 0;
}

static bool s_host_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (!n || n >= MAX_HOST)
        return false;
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '.' || *p == '_'))
            return false;
    return true;
}

/* What a resolver would read as an IPv4 address (inet_aton's forms:
 * "1.2.3", "2130706433", "0x7f.1") rather than look up: its last label is
 * all digits, or 0x and hex digits. A name may well end in a digit
 * ("bitbucket1", "bb-2"). */
static bool s_ip_like(const char *s)
{
    size_t n = strlen(s);
    if (n && s[n - 1] == '.')
        n--; /* the root's dot */
    size_t start = n;
    while (start > 0 && s[start - 1] != '.')
        start--;
    const char *label = s + start;
    size_t len = n - start;
    if (len == 0)
        return true; /* an empty label is no name either */
    bool hex = len >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X');
    for (size_t i = hex ? 2 : 0; i < len; i++)
        if (hex ? !isxdigit((unsigned char)label[i]) : !isdigit((unsigned char)label[i]))
            return false;
    return true;
}

int bb_egress_allow(bb_egress_t *self, const char *list, char *why, size_t why_size)
{
    const char *p = list ? list : "";
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ", ");
        if (!n)
            break;
        char entry[MAX_HOST];
        if (n >= sizeof entry) {
            snprintf(why, why_size, "an entry is longer than %zu characters", sizeof entry - 1);
            return -1;
        }
        memcpy(entry, p, n);
        entry[n] = '\0';
        p += n;
        /* Brackets are how URLs write IPv6 addresses: accept them here too. */
        char *e = entry;
        if (e[0] == '[' && e[strlen(e) - 1] == ']') {
            e[strlen(e) - 1] = '\0';
            e++;
        }
        net_t net;
        if (netaddr_parse_net(e, &net) == 0) {
            if (s_push_net(&self->allow_nets, net.addr, net.prefix) < 0)
                goto oom;
            continue;
        }
        if (strchr(e, '/') || strchr(e, ':') || !s_host_name_ok(e) || s_ip_like(e)) {
            snprintf(why, why_size, "\"%s\" is not a host name, an IP address or a CIDR range", entry);
            return -1;
        }
        if (self->allow_names.n == self->allow_names.cap) {
            size_t cap = self->allow_names.cap ? self->allow_names.cap * 2 : 8;
            char **items = realloc(self->allow_names.items, cap * sizeof *items);
            if (!items)
                goto oom;
            self->allow_names.items = items;
            self->allow_names.cap = cap;
        }
        if (!(self->allow_names.items[self->allow_names.n] = strdup(e)))
            goto oom;
        self->allow_names.n++;
    }
    return 0;
oom:
    snprintf(why, why_size, "out of memory");
    return -1;
}

int bb_egress_own_addr(bb_egress_t *self, const struct sockaddr *sa)
{
    uint8_t a[16];
    if (s_from_sockaddr(sa, a) < 0)
        return 0; /* not IP: nothing to refuse */
    for (size_t i = 0; i < self->own.n; i++)
        if (!memcmp(self->own.items[i].addr, a, 16))
            return 0;
    return s_push_net(&self->own, a, 128);
}

int bb_egress_own_host(bb_egress_t *self, const char *host)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return -1;
    int rc = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if (bb_egress_own_addr(self, ai->ai_addr) < 0)
            rc = -1;
    freeaddrinfo(res);
    return rc;
}

int bb_egress_own_interfaces(bb_egress_t *self)
{
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) < 0)
        return -1;
    int rc = 0;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next)
        if (i->ifa_addr && bb_egress_own_addr(self, i->ifa_addr) < 0)
            rc = -1;
    freeifaddrs(ifs);
    return rc;
}

int bb_egress_own_add_all(bb_egress_t *self, const bb_egress_t *other)
{
    for (size_t i = 0; i < other->own.n; i++) {
        bool known = false;
        for (size_t j = 0; j < self->own.n && !known; j++)
            known = !memcmp(self->own.items[j].addr, other->own.items[i].addr, 16);
        if (!known && s_push_net(&self->own, other->own.items[i].addr, 128) < 0)
            return -1;
    }
    return 0;
}

static bool s_own_within(const bb_egress_t *a, const bb_egress_t *b)
{
    for (size_t i = 0; i < a->own.n; i++) {
        bool found = false;
        for (size_t j = 0; j < b->own.n && !found; j++)
            found = !memcmp(a->own.items[i].addr, b->own.items[j].addr, 16);
        if (!found)
            return false;
    }
    return true;
}

bool bb_egress_own_same(const bb_egress_t *a, const bb_egress_t *b)
{
    return s_own_within(a, b) && s_own_within(b, a);
}

size_t bb_egress_own_count(const bb_egress_t *self)
{
    return self->own.n;
}

/* ---- the decision ---- */

/* What kind of address this is when it is one we refuse, else NULL.
 * Everything else (private ranges, 100.64/10, public addresses) is a
 * network a Bitbucket may live on. */
static const char *s_forbidden_kind(const uint8_t a[16])
{
    static const struct {
        const char *net, *kind;
    } ranges[] = {
        {"127.0.0.0/8", "a loopback address"},
        {"::1/128", "a loopback address"},
        {"169.254.0.0/16", "a link-local address"},
        {"fe80::/10", "a link-local address"},
        {"0.0.0.0/8", "an unspecified address"},
        {"::/128", "an unspecified address"},
        {"224.0.0.0/4", "a multicast address"},
        {"ff00::/8", "a multicast address"},
        {"240.0.0.0/4", "a reserved or broadcast address"},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        net_t n;
        if (netaddr_parse_net(ranges[i].net, &n) < 0)
            continue;
        if (s_in(a, &n))
            return ranges[i].kind;
    }
    return NULL;
}

static bool s_permits(const bb_egress_t *self, const char *host, const uint8_t a[16], char *why, size_t why_size)
{
    if (host)
        for (size_t i = 0; i < self->allow_names.n; i++)
            if (!strcasecmp(host, self->allow_names.items[i]))
                return true;
    for (size_t i = 0; i < self->allow_nets.n; i++)
        if (s_in(a, &self->allow_nets.items[i]))
            return true;
    const char *kind = s_forbidden_kind(a);
    /* "::ffff:127.0.0.1" is 127.0.0.1; other IPv6 forms of IPv4 addresses
     * (NAT64, 6to4) route elsewhere and are judged as what they are. */
    if (!kind) {
        for (size_t i = 0; i < self->own.n; i++)
            if (!memcmp(self->own.items[i].addr, a, 16)) {
                kind = "an address of Portico itself";
                break;
            }
    }
    if (!kind)
        return true;
    char text[INET6_ADDRSTRLEN];
    if (s_is_mapped4(a))
        inet_ntop(AF_INET, a + 12, text, sizeof text);
    else
        inet_ntop(AF_INET6, a, text, sizeof text);
    snprintf(why, why_size, "%s is %s", text, kind);
    return false;
}

bool bb_egress_permits(const bb_egress_t *self, const char *host, const struct sockaddr *sa, char *why, size_t why_size)
{
    uint8_t a[16];
    if (!self)
        return true;
    if (s_from_sockaddr(sa, a) < 0) {
        snprintf(why, why_size, "not an IP address");
        return false;
    }
    return s_permits(self, host, a, why, why_size);
}

bool bb_egress_permits_text(const bb_egress_t *self, const char *host, const char *ip, char *why, size_t why_size)
{
    uint8_t a[16];
    if (!self)
        return true;
    if (!ip || s_from_text(ip, a) < 0) {
        snprintf(why, why_size, "the address connected to is unknown");
        return false;
    }
    return s_permits(self, host, a, why, why_size);
}
