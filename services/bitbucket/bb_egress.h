/* bb_egress: which addresses an outbound call to Bitbucket may connect to.
 *
 * An admin types a Base URL; without this, that makes Portico a proxy into
 * its own network: loopback (the health and metrics endpoints, PostgreSQL),
 * link-local (169.254.169.254, the cloud metadata service), Portico's own
 * containers. So every connection is checked on the address curl is about
 * to connect to (CURLOPT_OPENSOCKETFUNCTION) and again on the address of
 * the connection a request goes out on (CURLOPT_PREREQFUNCTION): a host
 * name that resolves to such an address, or that changes its answer after
 * the Base URL was checked, gets nowhere.
 *
 * Refused unless allowed: loopback, link-local, unspecified ("this
 * network"), multicast and broadcast/reserved addresses, and Portico's own
 * addresses (this host's interfaces and the addresses of PORTICO_OWN_HOSTS
 * and of the Portico addresses in the environment, read again every
 * BB_OWN_REFRESH_S seconds: containers that start again get new ones).
 * Private ranges (10/8, 172.16/12, 192.168/16, fc00::/7) stay allowed: that
 * is where Bitbucket Data Center lives.
 *
 * PORTICO_BITBUCKET_ALLOW names the exceptions: comma-separated host names
 * (the Base URL's host, exactly), addresses or CIDR ranges. */
#ifndef PORTICO_BB_EGRESS_H
#define PORTICO_BB_EGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

typedef struct bb_egress_t bb_egress_t;

#define BB_OWN_REFRESH_S 10

bb_egress_t *bb_egress_new(void);
void bb_egress_destroy(bb_egress_t **self_p);

/* Add the entries of a PORTICO_BITBUCKET_ALLOW value. 0, or -1 with why
 * naming the entry that is not a host name, address or CIDR range. */
int bb_egress_allow(bb_egress_t *self, const char *list, char *why, size_t why_size);
/* Portico's own: an address, or every address a host name resolves to
 * (blocking: at start, and in the refresh thread). 0 or -1. */
int bb_egress_own_addr(bb_egress_t *self, const struct sockaddr *sa);
int bb_egress_own_host(bb_egress_t *self, const char *host);
/* Every address of this host's interfaces. */
int bb_egress_own_interfaces(bb_egress_t *self);
/* Add other's own addresses to self's (those it lacks). 0 or -1. */
int bb_egress_own_add_all(bb_egress_t *self, const bb_egress_t *other);
/* Whether a and b hold the same own addresses, in any order. */
bool bb_egress_own_same(const bb_egress_t *a, const bb_egress_t *b);
size_t bb_egress_own_count(const bb_egress_t *self);

/* May a call for host (the URL's host name or literal) connect to sa?
 * When not, why says what kind of address it is ("loopback",
 * "link-local", ...). */
bool bb_egress_permits(const bb_egress_t *self, const char *host, const struct sockaddr *sa, char *why,
                       size_t why_size);
/* The same for an address in text form (curl's primary IP). */
bool bb_egress_permits_text(const bb_egress_t *self, const char *host, const char *ip, char *why, size_t why_size);

/* The process-wide policy the HTTP layer consults (NULL permits
 * everything, for tests of other parts). The service sets it at start and
 * replaces it as Portico's own addresses change (main.c); a replaced
 * policy stays valid for a while, for a check that read it just before. */
void bb_egress_set_global(bb_egress_t *policy);
const bb_egress_t *bb_egress_global(void);

#endif
