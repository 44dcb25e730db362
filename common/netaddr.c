#include "netaddr.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_from_text(const char *text, uint8_t out[16])
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, text, &a4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &a4, 4);
        return 0;
    }
    if (inet_pton(AF_INET6, text, &a6) == 1) {
        memcpy(out, &a6, 16);
        return 0;
    }
    return -1;
}

bool netaddr_is_ip(const char *text)
{
    uint8_t a[16];
    return text && s_from_text(text, a) == 0;
}

void netaddr_client_key(const char *ip, char *out, size_t out_size)
{
    struct in6_addr a6;
    char text[INET6_ADDRSTRLEN];
    if (inet_pton(AF_INET6, ip, &a6) == 1 && !IN6_IS_ADDR_V4MAPPED(&a6)) {
        memset(a6.s6_addr + 8, 0, 8);
        if (inet_ntop(AF_INET6, &a6, text, sizeof text)) {
            snprintf(out, out_size, "%s/64", text);
            return;
        }
    }
    snprintf(out, out_size, "%s", ip);
}

int netaddr_parse_net(const char *text, netaddr_net_t *out)
{
    char buf[80];
    if (strlen(text) >= sizeof buf)
        return -1;
    snprintf(buf, sizeof buf, "%s", text);
    char *slash = strchr(buf, '/');
    long prefix = -1;
    if (slash) {
        *slash = '\0';
        char *end = NULL;
        prefix = strtol(slash + 1, &end, 10);
        if (!slash[1] || *end || prefix < 0)
            return -1;
    }
    bool v4 = strchr(buf, ':') == NULL;
    if (s_from_text(buf, out->addr) < 0)
        return -1;
    if (prefix < 0)
        prefix = v4 ? 32 : 128;
    if (prefix > (v4 ? 32 : 128))
        return -1;
    out->prefix = (int)(v4 ? prefix + 96 : prefix);
    return 0;
}

int netaddr_list_parse(const char *text, netaddr_list_t *list, char *why, size_t why_size)
{
    list->nets = NULL;
    list->n = 0;
    size_t cap = 0;
    const char *p = text ? text : "";
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ", ");
        if (!n)
            break;
        char entry[80];
        snprintf(entry, sizeof entry, "%.*s", (int)(n < sizeof entry ? n : sizeof entry - 1), p);
        p += n;
        netaddr_net_t net;
        if (n >= sizeof entry || netaddr_parse_net(entry, &net) < 0) {
            snprintf(why, why_size, "\"%s\" is not an IP address or CIDR range", entry);
            netaddr_list_free(list);
            return -1;
        }
        if (list->n == cap) {
            cap = cap ? cap * 2 : 4;
            netaddr_net_t *nets = realloc(list->nets, cap * sizeof *nets);
            if (!nets) {
                snprintf(why, why_size, "out of memory");
                netaddr_list_free(list);
                return -1;
            }
            list->nets = nets;
        }
        list->nets[list->n++] = net;
    }
    return 0;
}

void netaddr_list_free(netaddr_list_t *list)
{
    free(list->nets);
    list->nets = NULL;
    list->n = 0;
}

bool netaddr_list_contains(const netaddr_list_t *list, const char *ip)
{
    uint8_t a[16];
    if (!list || !ip || s_from_text(ip, a) < 0)
        return false;
    for (size_t i = 0; i < list->n; i++) {
        const netaddr_net_t *net = &list->nets[i];
        int full = net->prefix / 8, rest = net->prefix % 8;
        if (memcmp(a, net->addr, (size_t)full) != 0)
            continue;
        if (!rest || (a[full] & (uint8_t)(0xff << (8 - rest))) == (net->addr[full] & (uint8_t)(0xff << (8 - rest))))
            return true;
    }
    return false;
}

/* An interface's address as text; -1 when it has no IP address. */
static int s_if_text(const struct ifaddrs *i, char *text, size_t size)
{
    if (!i->ifa_addr)
        return -1;
    if (i->ifa_addr->sa_family == AF_INET)
        return inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)i->ifa_addr)->sin_addr, text,
                         (socklen_t)size)
                   ? 0
                   : -1;
    if (i->ifa_addr->sa_family == AF_INET6)
        return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)i->ifa_addr)->sin6_addr, text,
                         (socklen_t)size)
                   ? 0
                   : -1;
    return -1;
}

/* Is the address (mapped form) one of this machine's own? */
static bool s_is_local(const struct ifaddrs *ifs, const uint8_t addr[16])
{
    for (const struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        uint8_t own[16];
        char text[INET6_ADDRSTRLEN];
        if (s_if_text(i, text, sizeof text) == 0 && s_from_text(text, own) == 0 && !memcmp(own, addr, 16))
            return true;
    }
    return false;
}

/* The first address of this machine inside a CIDR range: a network whose
 * range is fixed (a Swarm overlay with a set subnet) names the one
 * interface on it before any DNS knows the task. */
static int s_own_in_range(const char *range, char *out, size_t out_size)
{
    netaddr_net_t net;
    netaddr_list_t list = {&net, 1};
    struct ifaddrs *ifs = NULL;
    int rc = -1;
    if (!strchr(range, '/') || netaddr_parse_net(range, &net) < 0 || getifaddrs(&ifs) < 0)
        return -1;
    for (const struct ifaddrs *i = ifs; i && rc < 0; i = i->ifa_next) {
        char text[INET6_ADDRSTRLEN];
        if (s_if_text(i, text, sizeof text) == 0 && netaddr_list_contains(&list, text) &&
            snprintf(out, out_size, "%s", text) < (int)out_size)
            rc = 0;
    }
    freeifaddrs(ifs);
    return rc;
}

int netaddr_own_address(const char *host, char *out, size_t out_size)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    struct ifaddrs *ifs = NULL;
    int rc = -1;
    if (host && strchr(host, '/'))
        return s_own_in_range(host, out, out_size);
    if (!host || !*host || getaddrinfo(host, NULL, &hints, &res) != 0)
        return -1;
    if (getifaddrs(&ifs) < 0)
        goto out;
    for (const struct addrinfo *a = res; a && rc < 0; a = a->ai_next) {
        char text[INET6_ADDRSTRLEN];
        uint8_t mapped[16];
        if (getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof text, NULL, 0, NI_NUMERICHOST) != 0 ||
            s_from_text(text, mapped) < 0 || !s_is_local(ifs, mapped))
            continue;
        if (snprintf(out, out_size, "%s", text) < (int)out_size)
            rc = 0;
    }
out:
    if (ifs)
        freeifaddrs(ifs);
    freeaddrinfo(res);
    return rc;
}
