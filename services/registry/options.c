#include "options.h"

#include <libpq-fe.h>
#include <string.h>

#define T reg_options_t
const config_var_t reg_options_vars[] = {
    CONFIG_VAR_STRING(T, "PORTICO_DATABASE_URL", "", database_url),
    CONFIG_VAR_STRING(T, "PORTICO_SECRET_KEY_FILE", "", key_file),
    CONFIG_VAR_STRING(T, "PORTICO_SECRET_KEY_FILE_PREVIOUS", "", key_file_previous),
    CONFIG_VAR_STRING(T, "PORTICO_SETUP_TOKEN", "", setup_token),
    CONFIG_VAR_STRING(T, "PORTICO_SETUP_TOKEN_FILE", REG_SETUP_TOKEN_FILE, setup_token_file),
    CONFIG_VAR_INT(T, "PORTICO_SETUP_TOKEN_TTL_HOURS", 24, 1, 24 * 30, setup_token_ttl_hours),
    CONFIG_VAR_INT(T, "PORTICO_PENDING_LOGINS_PER_BROWSER", 10, 1, 1000, pending_per_browser),
    CONFIG_VAR_INT(T, "PORTICO_PENDING_LOGINS_MAX", 10000, 10, 10000000, pending_max),
    CONFIG_VAR_ENDPOINT(T, "PORTICO_REGISTRY_BIND", "tcp://127.0.0.1:5551", bind),
    CONFIG_VAR_ADDR(T, "PORTICO_HEALTH_ADDR", "127.0.0.1:8081", health_addr),
    CONFIG_VAR_INT(T, "PORTICO_REGISTRY_WORKERS", 8, 1, 64, workers),
    CONFIG_VAR_INT(T, "PORTICO_DB_STATEMENT_TIMEOUT_MS", 5000, 100, 600000, statement_timeout_ms),
    CONFIG_VAR_INT(T, "PORTICO_SWEEP_INTERVAL_S", 60, 1, 86400, sweep_interval_s),
    CONFIG_VAR_END,
};
#undef T

int reg_options_load(reg_options_t *opts, config_error_t *err)
{
    memset(opts, 0, sizeof *opts);
    if (config_load(reg_options_vars, opts, err) < 0)
        return -1;
    if (!opts->database_url[0])
        return config_fail(err, "PORTICO_DATABASE_URL",
                           "is not set: give the libpq connection string of the registry's database, for example "
                           "postgresql://portico@db/portico");
    /* libpq would take a value that is neither a URI nor key=value pairs
     * (a bare host name) as a database name on the local socket, and the
     * registry would wait for it for ever. Its message is not passed on:
     * it may quote the password. */
    char *why = NULL;
    PQconninfoOption *parsed = PQconninfoParse(opts->database_url, &why);
    PQconninfoFree(parsed);
    PQfreemem(why);
    if (!parsed)
        return config_fail(err, "PORTICO_DATABASE_URL",
                           "is not a libpq connection string: give a URI such as postgresql://portico@db/portico, "
                           "or key=value pairs such as \"host=db dbname=portico user=portico\"");
    if (opts->setup_token_file[0] != '/')
        return config_fail(err, "PORTICO_SETUP_TOKEN_FILE", "must be an absolute path");
    if (opts->setup_token[0] && strlen(opts->setup_token) < REG_SETUP_TOKEN_MIN)
        return config_fail(err, "PORTICO_SETUP_TOKEN",
                           "must be at least %d characters (make one with: head -c 32 /dev/urandom | base64)",
                           REG_SETUP_TOKEN_MIN);
    return 0;
}
