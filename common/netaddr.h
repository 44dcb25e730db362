/* netaddr: lists of IP addresses and CIDR ranges, from settings such as
 * PORTICO_TRUSTED_PROXIES, and whether an address is in one. IPv4 is held
 * as IPv4-mapped IPv6, so "::ffff:10.0.0.1" and "10.0.0.1" are the same. */
#ifndef PORTICO_NETADDR_H
#define PORTICO_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t addr[16];
    int prefix; /* 0..128, on the mapped form */
} netaddr_net_t;

typedef struct {
    netaddr_net_t *nets;
    size_t n;
} netaddr_list_t;

/* Parse "10.0.0.0/8, 192.0.2.7, ::1" into list (empty text: empty list).
 * 0, or -1 with why naming the bad entry. Free with netaddr_list_free. */
int netaddr_list_parse(const char *text, netaddr_list_t *list, char *why, size_t why_size);
void netaddr_list_free(netaddr_list_t *list);
/* Is ip (text) in the list? False for anything that is not an address. */
bool netaddr_list_contains(const netaddr_list_t *list, const char *ip);
/* One entry: "10.0.0.0/8", "fd00::/8", "192.0.2.7", "::1". 0, or -1 when
 * it is none. */
int netaddr_parse_net(const char *text, netaddr_net_t *out);
/* Is text an IPv4 or IPv6 address? */
bool netaddr_is_ip(const char *text);
/* The client that an address (text) counts as for per-client limits: an
 * IPv6 address by its /64 ("2001:db8:1:2::/64"), since one subscriber is
 * commonly given a whole /64 and could otherwise take a new address for
 * every connection; IPv4 (mapped or not) and anything else as written. */
void netaddr_client_key(const char *ip, char *out, size_t out_size);
/* The address of this machine that host names: host is resolved and the
 * first of its addresses that belongs to one of this machine's interfaces
 * is written to out as text ("172.18.0.3", "::1"). A service binds there,
 * so that a name known only on one network (compose's "bus") puts its
 * listener on that network alone. host may also be a CIDR range
 * ("10.231.0.0/24"): then the first of this machine's addresses inside it.
 * 0, or -1 when host resolves to no address of this machine. */
int netaddr_own_address(const char *host, char *out, size_t out_size);

#endif
