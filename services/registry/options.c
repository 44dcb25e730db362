#include "options.h"

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void reg_options_load(reg_options_t *opts)
{
    memset(opts, 0, sizeof *opts);
    config_string_or_die("PORTICO_DATABASE_URL", "", opts->database_url, sizeof opts->database_url);
    config_string_or_die("PORTICO_SECRET_KEY_FILE", "", opts->key_file, sizeof opts->key_file);
    config_string_or_die("PORTICO_SECRET_KEY_FILE_PREVIOUS", "", opts->key_file_previous,
                         sizeof opts->key_file_previous);
    config_string_or_die("PORTICO_SETUP_TOKEN", "", opts->setup_token, sizeof opts->setup_token);
    config_string_or_die("PORTICO_SETUP_TOKEN_FILE", REG_SETUP_TOKEN_FILE, opts->setup_token_file,
                         sizeof opts->setup_token_file);
    opts->setup_token_ttl_hours = (int)config_int_or_die("PORTICO_SETUP_TOKEN_TTL_HOURS", 24, 1, 24 * 30);
    opts->pending_per_browser = (int)config_int_or_die("PORTICO_PENDING_LOGINS_PER_BROWSER", 10, 1, 1000);
    opts->pending_max = (int)config_int_or_die("PORTICO_PENDING_LOGINS_MAX", 10000, 10, 10000000);
    config_endpoint_or_die("PORTICO_REGISTRY_BIND", "tcp://127.0.0.1:5551", opts->bind, sizeof opts->bind);
    config_addr_or_die("PORTICO_HEALTH_ADDR", "127.0.0.1:8081", false, opts->health_addr, sizeof opts->health_addr);
    opts->workers = (int)config_int_or_die("PORTICO_REGISTRY_WORKERS", 8, 1, 64);
    opts->statement_timeout_ms = (int)config_int_or_die("PORTICO_DB_STATEMENT_TIMEOUT_MS", 5000, 100, 600000);
    opts->sweep_interval_s = (int)config_int_or_die("PORTICO_SWEEP_INTERVAL_S", 60, 1, 86400);

    if (!opts->database_url[0]) {
        fprintf(stderr, "portico: configuration error: PORTICO_DATABASE_URL is not set: give the libpq connection "
                        "string of the registry's database, for example "
                        "postgresql://portico@db/portico\n");
        exit(2);
    }
    if (opts->setup_token_file[0] != '/') {
        fprintf(stderr, "portico: configuration error: PORTICO_SETUP_TOKEN_FILE: must be an absolute path\n");
        exit(2);
    }
    if (opts->setup_token[0] && strlen(opts->setup_token) < REG_SETUP_TOKEN_MIN) {
        fprintf(stderr,
                "portico: configuration error: PORTICO_SETUP_TOKEN: must be at least %d characters "
                "(make one with: head -c 32 /dev/urandom | base64)\n",
                REG_SETUP_TOKEN_MIN);
        exit(2);
    }
}
