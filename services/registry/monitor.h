/* monitor: the registry's own housekeeping thread, with its own database
 * connection. Once a second it checks that the database answers and the
 * schema is current (what /readyz and "ping" report); every sweep interval
 * it deletes expired pending logins, sessions and stale id reservations. */
#ifndef PORTICO_REGISTRY_MONITOR_H
#define PORTICO_REGISTRY_MONITOR_H

#include "options.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct monitor_t monitor_t;

/* Reports "starting" until monitor_start. */
monitor_t *monitor_new(const reg_options_t *opts);
int monitor_start(monitor_t *self);
/* Report "stopping" from now on and let the thread end soon. */
void monitor_request_stop(monitor_t *self);
/* True once the thread has ended (or never started). */
bool monitor_done(monitor_t *self);
/* Stops and joins the thread. */
void monitor_destroy(monitor_t **self_p);

/* A bus_ready_fn: true when the database answers and the schema is current. */
bool monitor_ready(void *self, char *status, size_t status_size);

#endif
