/* options: the PORTICO_* settings the registry reads, with their defaults.
 *
 *   PORTICO_DATABASE_URL              libpq connection string or URI (required)
 *   PORTICO_SECRET_KEY_FILE           32-byte base64 key that seals secrets (required)
 *   PORTICO_SECRET_KEY_FILE_PREVIOUS  an older key that still opens secrets
 *   PORTICO_SETUP_TOKEN               preset setup token, at least 22 characters
 *   PORTICO_SETUP_TOKEN_FILE          where a generated token is kept, mode 0600
 *                                     (/var/lib/portico/setup-token)
 *   PORTICO_SETUP_TOKEN_TTL_HOURS     how long a setup token works (24)
 *   PORTICO_PENDING_LOGINS_PER_BROWSER unfinished logins per browser (10)
 *   PORTICO_PENDING_LOGINS_MAX        unfinished logins in all (10000)
 *   PORTICO_REGISTRY_BIND             ROUTER endpoint (tcp://127.0.0.1:5551)
 *   PORTICO_REGISTRY_WORKERS          worker threads, one connection each (4)
 *   PORTICO_HEALTH_ADDR               /healthz /readyz /metrics (127.0.0.1:8081)
 *   PORTICO_DB_STATEMENT_TIMEOUT_MS   statement_timeout on every connection (5000)
 *   PORTICO_SWEEP_INTERVAL_S          how often expired rows are deleted (60) */
#ifndef PORTICO_REGISTRY_OPTIONS_H
#define PORTICO_REGISTRY_OPTIONS_H

#include "config.h"

#define REG_SETUP_TOKEN_MIN 22
#define REG_SETUP_TOKEN_FILE "/var/lib/portico/setup-token"

typedef struct {
    char database_url[2048];
    char key_file[1024];
    char key_file_previous[1024];
    char setup_token[256];
    char setup_token_file[1024];
    int setup_token_ttl_hours;
    int pending_per_browser; /* unfinished logins one browser may have */
    int pending_max;         /* and everyone together */
    char bind[256];
    char health_addr[256];
    int workers;
    int statement_timeout_ms;
    int sweep_interval_s;
} reg_options_t;

/* Every variable above, for config_load (and the tests). */
extern const config_var_t reg_options_vars[];

/* Read and check every setting. 0, or -1 with err naming the variable. */
int reg_options_load(reg_options_t *opts, config_error_t *err);

#endif
