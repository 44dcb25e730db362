/* config: typed PORTICO_* settings from the environment.
 *
 * Each getter returns 0 and stores the value (or the default when the
 * variable is unset or empty), or -1 with a message in err that names the
 * variable and says what is wrong. Services call config_or_die() variants at
 * start, so a bad value stops them before they serve anything. */
#ifndef PORTICO_CONFIG_H
#define PORTICO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char text[256];
} config_error_t;

int config_string(const char *name, const char *def, char *out, size_t out_size, config_error_t *err);
int config_int(const char *name, long def, long min, long max, long *out, config_error_t *err);
int config_bool(const char *name, bool def, bool *out, config_error_t *err);
/* host:port with a numeric port 1..65535 (port 0 allowed when allow_zero). */
int config_addr(const char *name, const char *def, bool allow_zero, char *out, size_t out_size, config_error_t *err);
/* A ZeroMQ endpoint: tcp://host:port, ipc://path or inproc://name. */
int config_endpoint(const char *name, const char *def, char *out, size_t out_size, config_error_t *err);
/* Where a client connects: one endpoint or several separated by commas,
 * a tcp:// host name standing for all its addresses (endpoints.h). */
int config_endpoints(const char *name, const char *def, char *out, size_t out_size, config_error_t *err);
/* An absolute http or https URL without query or fragment; trailing '/' removed. */
int config_url(const char *name, const char *def, char *out, size_t out_size, config_error_t *err);

/* The same, but print the message and exit(2) on a bad value. */
void config_string_or_die(const char *name, const char *def, char *out, size_t out_size);
long config_int_or_die(const char *name, long def, long min, long max);
bool config_bool_or_die(const char *name, bool def);
void config_addr_or_die(const char *name, const char *def, bool allow_zero, char *out, size_t out_size);
void config_endpoint_or_die(const char *name, const char *def, char *out, size_t out_size);
void config_endpoints_or_die(const char *name, const char *def, char *out, size_t out_size);
void config_url_or_die(const char *name, const char *def, char *out, size_t out_size);

#endif
