/* bb_server: portico-bitbucket's event loop.
 *
 * One thread, one czmq zloop driving the ROUTER socket the broker calls
 * and every HTTP transfer in flight (bb_http). A bus request becomes a call:
 * the handler plans the HTTP request (bb_methods), defers the bus reply and
 * starts the transfer; the reply goes out when the transfer completes. A
 * 429 on a GET is retried when Retry-After fits before the caller's
 * deadline. Each attempt's timeout is min(PORTICO_BITBUCKET_TIMEOUT_MS, time
 * left before the deadline minus a margin for the reply to travel back).
 *
 * Stopping (SIGTERM/SIGINT): new requests are answered UNAVAILABLE at once,
 * calls in flight get until the drain time to finish, then whatever is left
 * is aborted and answered UNAVAILABLE. */
#ifndef PORTICO_BB_SERVER_H
#define PORTICO_BB_SERVER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char bind[256];            /* PORTICO_BITBUCKET_BIND */
    long timeout_ms;           /* PORTICO_BITBUCKET_TIMEOUT_MS */
    long connect_timeout_ms;   /* PORTICO_BITBUCKET_CONNECT_TIMEOUT_MS */
    long max_host_connections; /* PORTICO_BITBUCKET_MAX_HOST_CONNECTIONS */
    long max_calls;            /* PORTICO_BITBUCKET_MAX_CALLS */
    long drain_ms;             /* how long calls in flight may finish when stopping */
} bb_server_config_t;

typedef struct bb_server_t bb_server_t;

/* Bind the ROUTER and set up the loop. NULL when the endpoint cannot be
 * bound (logged). */
bb_server_t *bb_server_new(const bb_server_config_t *cfg);
void bb_server_destroy(bb_server_t **self_p);
/* Serve until stopped; 0 after a clean stop. */
int bb_server_run(bb_server_t *self);
/* Readiness for /readyz and "ping"; safe to call from any thread. */
bool bb_server_ready(void *arg, char *status, size_t status_size);

#endif
