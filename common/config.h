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

/* ---- a service's settings as one table ----
 *
 * Each service lists every PORTICO_* variable it reads in one table (name,
 * kind, default, range, where the value goes in its configuration struct)
 * and loads it once at start with config_load: the first bad value stops
 * the load with a message naming the variable. The tests walk the same
 * tables, so a variable cannot be added without being checked. */

typedef enum {
    CONFIG_STRING,
    CONFIG_INT,          /* whole number in [min, max], stored times scale */
    CONFIG_BOOL,         /* idef is the default */
    CONFIG_ADDR,         /* host:port, port 1..65535 */
    CONFIG_ADDR_OR_ZERO, /* host:port, port 0 allowed */
    CONFIG_ENDPOINT,
    CONFIG_ENDPOINTS, /* where a client connects: a list, names for every address */
    CONFIG_URL,
} config_kind_t;

typedef struct {
    const char *name; /* NULL ends the table */
    config_kind_t kind;
    const char *def; /* string kinds */
    long idef, min, max, scale;
    size_t offset, size; /* of the field in the configuration struct */
} config_var_t;

#define CONFIG_FIELD(T, field) offsetof(T, field), sizeof(((T *)0)->field)
#define CONFIG_VAR_STRING(T, name, def, field)                                                                         \
    {                                                                                                                  \
        name, CONFIG_STRING, def, 0, 0, 0, 1, CONFIG_FIELD(T, field)                                                   \
    }
#define CONFIG_VAR_ADDR(T, name, def, field)                                                                           \
    {                                                                                                                  \
        name, CONFIG_ADDR, def, 0, 0, 0, 1, CONFIG_FIELD(T, field)                                                     \
    }
#define CONFIG_VAR_ADDR_OR_ZERO(T, name, def, field)                                                                   \
    {                                                                                                                  \
        name, CONFIG_ADDR_OR_ZERO, def, 0, 0, 0, 1, CONFIG_FIELD(T, field)                                             \
    }
#define CONFIG_VAR_ENDPOINT(T, name, def, field)                                                                       \
    {                                                                                                                  \
        name, CONFIG_ENDPOINT, def, 0, 0, 0, 1, CONFIG_FIELD(T, field)                                                 \
    }
#define CONFIG_VAR_ENDPOINTS(T, name, def, field)                                                                      \
    {                                                                                                                  \
        name, CONFIG_ENDPOINTS, def, 0, 0, 0, 1, CONFIG_FIELD(T, field)                                                \
    }
#define CONFIG_VAR_URL(T, name, def, field)                                                                            \
    {                                                                                                                  \
        name, CONFIG_URL, def, 0, 0, 0, 1, CONFIG_FIELD(T, field)                                                      \
    }
#define CONFIG_VAR_INT(T, name, def, min, max, field)                                                                  \
    {                                                                                                                  \
        name, CONFIG_INT, NULL, def, min, max, 1, CONFIG_FIELD(T, field)                                               \
    }
/* A number given in one unit and kept in another (minutes as seconds). */
#define CONFIG_VAR_INT_SCALED(T, name, def, min, max, scale, field)                                                    \
    {                                                                                                                  \
        name, CONFIG_INT, NULL, def, min, max, scale, CONFIG_FIELD(T, field)                                           \
    }
#define CONFIG_VAR_BOOL(T, name, def, field)                                                                           \
    {                                                                                                                  \
        name, CONFIG_BOOL, NULL, def, 0, 1, 1, CONFIG_FIELD(T, field)                                                  \
    }
#define CONFIG_VAR_END                                                                                                 \
    {                                                                                                                  \
        NULL, CONFIG_STRING, NULL, 0, 0, 0, 0, 0, 0                                                                    \
    }

/* Read every variable of vars into the struct at base. 0, or -1 with err
 * naming the first variable whose value is bad. Integer fields may be int
 * or long. */
int config_load(const config_var_t *vars, void *base, config_error_t *err);
/* The variable of the table called name, or NULL. */
const config_var_t *config_find(const config_var_t *vars, const char *name);
/* Print err as a configuration error and exit(2): what a service does when
 * its configuration is bad. */
void config_die(const config_error_t *err) __attribute__((noreturn));
/* Set err to "name: " and a printf message (cross-variable checks). -1. */
int config_fail(config_error_t *err, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The same, but print the message and exit(2) on a bad value. */
void config_string_or_die(const char *name, const char *def, char *out, size_t out_size);
long config_int_or_die(const char *name, long def, long min, long max);
bool config_bool_or_die(const char *name, bool def);
void config_addr_or_die(const char *name, const char *def, bool allow_zero, char *out, size_t out_size);
void config_endpoint_or_die(const char *name, const char *def, char *out, size_t out_size);
void config_url_or_die(const char *name, const char *def, char *out, size_t out_size);

#endif
