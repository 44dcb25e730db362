/* The broker process: worker threads that each hold their own sockets to the
 * web's queue, the registry and the bitbucket service, and the table of
 * methods they serve. */
#ifndef PORTICO_BROKER_H
#define PORTICO_BROKER_H

#include "bus.h"
#include "config.h"

typedef struct {
    char public_url[512];
    char web_endpoint[1024];
    char registry_endpoint[1024];
    char bitbucket_endpoint[1024];
    char health_addr[128];
    long workers;
    long bus_timeout_ms;       /* registry calls */
    long bitbucket_timeout_ms; /* one Bitbucket call */
    long pending_ttl_s;        /* how long a started login may take */
    long access_recheck_s;     /* how often access rules are checked again */
} broker_config_t;

/* Filled once at start, read-only afterwards (broker_config.c). */
extern broker_config_t broker_cfg;

/* Every PORTICO_* variable the broker reads (broker_config.c). */
extern const config_var_t broker_config_vars[];
/* Read and check them into c. 0, or -1 with err naming the variable. */
int broker_config_load(broker_config_t *c, config_error_t *err);

/* What a handler may use: this worker's clients. */
typedef struct {
    bus_client_t *registry;
    bus_client_t *bitbucket;
    char holder[128]; /* names this worker in token leases */
    /* Call at least every second while a handler waits without a bus call
     * in progress: keeps the web's queue from declaring the worker dead. */
    void (*idle)(void *arg);
    void *idle_arg;
} broker_worker_t;

/* The methods (login.c, repos.c, check.c ...); ends with a zeroed entry. */

#endif
