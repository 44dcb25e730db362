/* server: the registry process.
 *
 * A ROUTER bound at PORTICO_REGISTRY_BIND takes requests from every
 * client; the main thread shuttles them to an inproc DEALER that spreads
 * them over PORTICO_REGISTRY_WORKERS worker threads, each with its own
 * DEALER and its own database connection, and carries the replies back.
 * On SIGTERM it stops taking requests, lets those in flight finish, and
 * exits 0 within 5 s. */
#ifndef PORTICO_REGISTRY_SERVER_H
#define PORTICO_REGISTRY_SERVER_H

#include "options.h"

/* Run until SIGTERM/SIGINT. Returns the process exit status. */
int server_run(const reg_options_t *opts);

#endif
