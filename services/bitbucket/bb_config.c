#include "bb_config.h"

#include "bb_egress.h"

#include <string.h>

#define T bb_config_t
const config_var_t bb_config_vars[] = {
    CONFIG_VAR_ENDPOINT(T, "PORTICO_BITBUCKET_BIND", "tcp://127.0.0.1:5552", server.bind),
    CONFIG_VAR_ADDR(T, "PORTICO_HEALTH_ADDR", "127.0.0.1:8082", health_addr),
    CONFIG_VAR_INT(T, "PORTICO_BITBUCKET_TIMEOUT_MS", 10000, 500, 120000, server.timeout_ms),
    CONFIG_VAR_INT(T, "PORTICO_BITBUCKET_CONNECT_TIMEOUT_MS", 3000, 100, 60000, server.connect_timeout_ms),
    CONFIG_VAR_INT(T, "PORTICO_BITBUCKET_MAX_HOST_CONNECTIONS", 16, 1, 256, server.max_host_connections),
    CONFIG_VAR_INT(T, "PORTICO_BITBUCKET_MAX_CALLS", 1000, 1, 100000, server.max_calls),
    CONFIG_VAR_STRING(T, "PORTICO_BITBUCKET_ALLOW", "", allow),
    CONFIG_VAR_STRING(T, "PORTICO_OWN_HOSTS", "", own_hosts),
    CONFIG_VAR_END,
};
#undef T

int bb_config_load(bb_config_t *c, config_error_t *err)
{
    memset(c, 0, sizeof *c);
    if (config_load(bb_config_vars, c, err) < 0)
        return -1;
    /* The allow list is parsed again when the policy is built; checking it
     * here stops the service before it listens. */
    char why[200];
    bb_egress_t *e = bb_egress_new();
    int rc = e ? bb_egress_allow(e, c->allow, why, sizeof why) : 0;
    bb_egress_destroy(&e);
    if (rc < 0)
        return config_fail(err, "PORTICO_BITBUCKET_ALLOW", "%s", why);
    return 0;
}
