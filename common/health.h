/* health: the small HTTP endpoint of the services that do not speak HTTP
 * otherwise (registry, broker, bitbucket): GET /healthz (alive), /readyz
 * (ready, with the reason when not) and /metrics. Container health checks
 * and operators use it; address from PORTICO_HEALTH_ADDR. */
#ifndef PORTICO_HEALTH_H
#define PORTICO_HEALTH_H

#include "bus.h"

typedef struct health_t health_t;

/* The listener's limits (gate.h): a request's head must be whole within
 * HEALTH_HEADER_TIMEOUT_MS; one client address holds at most
 * HEALTH_MAX_PER_CLIENT connections, all together HEALTH_MAX_TOTAL (then
 * 503; a kept connection idle longest gives way first). */
#define HEALTH_HEADER_TIMEOUT_MS 5000
#define HEALTH_KEEP_ALIVE_MS 5000
#define HEALTH_MAX_PER_CLIENT 16
#define HEALTH_MAX_TOTAL 256

/* Listen on addr ("host:port"). NULL when the port cannot be bound. */
health_t *health_new(const char *addr, const char *service, bus_ready_fn ready, void *arg);
void health_destroy(health_t **self_p);

/* Exit status for `portico-<service> healthcheck`: 0 when GET url/readyz
 * answers 200 within two seconds, 1 otherwise. */
int health_check_url(const char *addr);
/* The same for any path ("/healthz", "/readyz"). */
int health_check(const char *addr, const char *path);

#endif
