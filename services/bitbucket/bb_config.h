/* bb_config: every PORTICO_* variable portico-bitbucket reads, read and
 * checked once at start (service.h).
 *
 *   PORTICO_BITBUCKET_BIND                  tcp://127.0.0.1:5552
 *   PORTICO_HEALTH_ADDR                     127.0.0.1:8082
 *   PORTICO_BITBUCKET_TIMEOUT_MS            10000  per HTTP request (less when the caller's deadline is nearer)
 *   PORTICO_BITBUCKET_CONNECT_TIMEOUT_MS    3000   connection and TLS handshake
 *   PORTICO_BITBUCKET_MAX_HOST_CONNECTIONS  16     parallel connections per Bitbucket host
 *   PORTICO_BITBUCKET_MAX_CALLS             1000   calls in flight before new ones get UNAVAILABLE "busy"
 *   PORTICO_BITBUCKET_ALLOW                 (none) host names, addresses, CIDR ranges allowed although
 *                                                  loopback, link-local or Portico's own (bb_egress.h)
 *   PORTICO_OWN_HOSTS                       (none) host names of Portico's other services (compose: web,
 *                                                  registry, broker, bitbucket, postgres), refused as Bitbucket */
#ifndef PORTICO_BB_CONFIG_H
#define PORTICO_BB_CONFIG_H

#include "bb_server.h"
#include "config.h"

typedef struct {
    bb_server_config_t server;
    char health_addr[128];
    char allow[4096];
    char own_hosts[4096];
} bb_config_t;

extern const config_var_t bb_config_vars[];

/* Read and check every variable into c. 0, or -1 with err naming it. */
int bb_config_load(bb_config_t *c, config_error_t *err);

#endif
