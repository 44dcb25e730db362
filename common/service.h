/* service: what every Portico process does the same way at start and stop.
 *
 * One start-up shape for the four services. main() fills a service_def_t
 * with the service's parts and hands it to service_main, which
 *
 *   1. reads PORTICO_LOG_LEVEL (logging first, so everything after logs),
 *   2. answers "bus-keygen" and "help" (no configuration needed for those),
 *   3. loads and checks the whole configuration once: a bad value of any
 *      PORTICO_* variable stops the process with exit status 2 and a
 *      message naming the variable, before anything listens,
 *   4. answers "healthcheck [path]" from that configuration: GET the
 *      service's health address, exit 0 when it answers 200,
 *   5. passes any other subcommand to def->command (the registry's operator
 *      commands),
 *   6. otherwise installs the signal handlers, starts the bus (CURVE keys
 *      for the roles it serves and calls) and runs def->run until it
 *      returns, which it does after SIGTERM or SIGINT once its work in
 *      flight is drained (SERVICE_DRAIN_MS at most), and
 *   7. closes the health endpoint, if run opened one.
 *
 * Leaving before stopping: with several instances, whatever sends work to
 * this one (a load balancer checking /readyz, bus clients re-resolving the
 * service's name) needs a moment to notice it is going. So SIGTERM first
 * makes the process "leaving": readiness answers "stopping" while it goes
 * on serving everything as before, for PORTICO_STOP_DELAY_SECONDS (default
 * 0: no wait); only then is it "stopping" and drains. SIGINT (Ctrl-C), a
 * second SIGTERM and service_request_stop() stop at once.
 */
#ifndef PORTICO_SERVICE_H
#define PORTICO_SERVICE_H

#include "bus.h"
#include "config.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

/* How long calls in flight may finish after SIGTERM, and when a service
 * that has still not stopped exits anyway: within the 5 s that container
 * runtimes give before SIGKILL. */
#define SERVICE_DRAIN_MS 4000
#define SERVICE_STOP_BUDGET_MS 4800
/* The longest PORTICO_STOP_DELAY_SECONDS: a stop must stay bounded. */
#define SERVICE_STOP_DELAY_MAX_S 60

typedef struct {
    const char *name; /* "registry": log lines, bus keys, messages */
    /* Read and check every PORTICO_* variable the service reads; 0, or -1
     * with err naming the variable. */
    int (*load_config)(config_error_t *err);
    /* What "healthcheck" probes: an address from the loaded configuration
     * and the default path. */
    const char *(*health_addr)(void);
    const char *health_path;
    /* Bus roles (BUS_WEB | ...) whose keys it accepts and calls. */
    unsigned bus_serves;
    unsigned bus_calls;
    /* Serve until service_stopping(), drain, and return the exit status. */
    int (*run)(void);
    /* Other subcommands (argv[0] is the subcommand); NULL when none. */
    int (*command)(int argc, char **argv);
    bool (*is_command)(const char *name);
    void (*usage)(void);
} service_def_t;

/* The whole life of a service process: returns its exit status. */
int service_main(const service_def_t *def, int argc, char **argv);

/* SIGTERM and SIGINT ask the process to stop; SIGPIPE is ignored. */
void service_install_signals(void);
/* PORTICO_STOP_DELAY_SECONDS, read (and checked) by service_main. */
void service_set_stop_delay_ms(long ms);
/* A stop was asked for: readiness says "stopping" from now on, but work is
 * still taken until service_stopping(). */
bool service_leaving(void);
/* Take no more work: drain and return (the stop delay has passed). */
bool service_stopping(void);
/* True once after each SIGHUP: read the bus key again (README: Bus keys). */
bool service_take_reload(void);
void service_request_stop(void);
/* "host-pid", used to tell broker instances apart. */
void service_instance_name(char *out, size_t out_size);
/* Log level from PORTICO_LOG_LEVEL, service name for every log line. */
void service_init_logging(const char *service);

/* pthread_create, with a log line naming what when it fails. 0 or -1: a
 * thread that did not start is never joined. */
int service_thread_start(pthread_t *thread, const char *what, void *(*fn)(void *), void *arg);

/* Serve /healthz, /readyz and /metrics on addr (port 0: no endpoint) for
 * the rest of the run. The endpoint closes as soon as a stop is asked for:
 * civetweb's mg_stop waits up to two seconds for its listener, and this
 * way that overlaps the drain instead of coming after it. 0, or -1 when
 * the port cannot be bound (logged). */
int service_health_start(const char *addr, bus_ready_fn ready, void *arg);
/* Ask for a stop and wait until the health endpoint is closed: call it
 * before freeing what ready reads. Does nothing when none is open. */
void service_health_stop(void);
/* Whether the health endpoint is closed (or none was opened), without
 * waiting: for a service that keeps answering while it closes. */
bool service_health_closed(void);

#endif
