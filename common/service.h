/* service: what every Portico process does the same way at start and stop. */
#ifndef PORTICO_SERVICE_H
#define PORTICO_SERVICE_H

#include <stdbool.h>
#include <stddef.h>

/* SIGTERM and SIGINT ask the process to stop; SIGPIPE is ignored. */
void service_install_signals(void);
bool service_stopping(void);
/* True once after each SIGHUP: read the bus key again (README: Bus keys). */
bool service_take_reload(void);
void service_request_stop(void);
/* "host-pid", used to tell broker instances apart. */
void service_instance_name(char *out, size_t out_size);
/* Log level from PORTICO_LOG_LEVEL, service name for every log line. */
void service_init_logging(const char *service);

#endif
