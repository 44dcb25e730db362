/* The broker's settings, read and checked once at start (service.h). */
#include "broker.h"

#include <string.h>

/* The settings every module reads. Defined here, with the code that fills
 * them and below every other module, so that reading them does not make a
 * module depend on main.c (which uses those modules). */
broker_config_t broker_cfg;

#define T broker_config_t
const config_var_t broker_config_vars[] = {
    CONFIG_VAR_URL(T, "PORTICO_PUBLIC_URL", "http://localhost:8080", public_url),
    CONFIG_VAR_ENDPOINTS(T, "PORTICO_BROKER_ENDPOINT", "tcp://127.0.0.1:5553", web_endpoint),
    CONFIG_VAR_ENDPOINTS(T, "PORTICO_REGISTRY_ENDPOINT", "tcp://127.0.0.1:5551", registry_endpoint),
    CONFIG_VAR_ENDPOINTS(T, "PORTICO_BITBUCKET_ENDPOINT", "tcp://127.0.0.1:5552", bitbucket_endpoint),
    /* Port 0: no health endpoint (several brokers on one host in tests). */
    CONFIG_VAR_ADDR_OR_ZERO(T, "PORTICO_HEALTH_ADDR", "127.0.0.1:8083", health_addr),
    CONFIG_VAR_INT(T, "PORTICO_BROKER_WORKERS", 8, 1, 256, workers),
    CONFIG_VAR_INT(T, "PORTICO_BUS_TIMEOUT_MS", 5000, 100, 60000, bus_timeout_ms),
    CONFIG_VAR_INT(T, "PORTICO_BITBUCKET_TIMEOUT_MS", 10000, 500, 120000, bitbucket_timeout_ms),
    CONFIG_VAR_INT(T, "PORTICO_LOGIN_TTL_SECONDS", 600, 30, 3600, pending_ttl_s),
    CONFIG_VAR_INT(T, "PORTICO_ACCESS_RECHECK_SECONDS", 900, 2, 7 * 24 * 3600, access_recheck_s),
    CONFIG_VAR_END,
};
#undef T

int broker_config_load(broker_config_t *c, config_error_t *err)
{
    memset(c, 0, sizeof *c);
    return config_load(broker_config_vars, c, err);
}
