#include "monitor.h"

#include "bus.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "migrations.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK_INTERVAL_MS 1000
#define TICK_MS 200

typedef enum { STATE_STARTING = 0, STATE_READY, STATE_DB_DOWN, STATE_SCHEMA, STATE_STOPPING } monitor_state_t;

struct monitor_t {
    const reg_options_t *opts;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    atomic_int state;
    atomic_int schema_version;
    atomic_bool done;
};

typedef struct {
    const char *kind;
    db_stmt_t stmt;
} sweep_t;

static const sweep_t s_sweeps[] = {
    {"pending_login", {"sweep_pending", "DELETE FROM pending_logins WHERE expires_at <= now()"}},
    {"session",
     {"sweep_sessions", "DELETE FROM sessions WHERE idle_expires_at <= now() OR absolute_expires_at <= now() "
                        "OR (setup AND NOT (SELECT setup_mode FROM settings WHERE id = 1))"}},
    {"reservation",
     {"sweep_reservations", "DELETE FROM integration_reservations WHERE created_at < now() - interval '1 day'"}},
    {"web_instance", {"sweep_web_instances", "DELETE FROM web_instances WHERE seen_at < now() - interval '1 hour'"}},
};

static const db_stmt_t s_version = {"monitor_schema_version",
                                    "SELECT coalesce(max(version), 0) AS version FROM schema_migrations"};

monitor_t *monitor_new(const reg_options_t *opts)
{
    monitor_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->opts = opts;
    atomic_init(&self->stop, false);
    atomic_init(&self->state, STATE_STARTING);
    atomic_init(&self->schema_version, 0);
    atomic_init(&self->done, false);
    metrics_help("portico_registry_database_up", "gauge", "1 when the registry's database answers");
    metrics_help("portico_registry_swept_total", "counter", "expired rows deleted by the periodic sweep");
    metrics_help("portico_registry_sweeps_skipped_total", "counter",
                 "sweeps left to another registry that was sweeping the same database");
    return self;
}

bool monitor_ready(void *arg, char *status, size_t status_size)
{
    monitor_t *self = arg;
    switch (atomic_load(&self->state)) {
    case STATE_READY:
        snprintf(status, status_size, "ok");
        return true;
    case STATE_DB_DOWN:
        snprintf(status, status_size, "the database is not reachable");
        return false;
    case STATE_STOPPING:
        snprintf(status, status_size, "stopping");
        return false;
    case STATE_SCHEMA:
        snprintf(status, status_size, "the database schema is at version %d, expected %d",
                 atomic_load(&self->schema_version), migrations_latest());
        return false;
    default:
        snprintf(status, status_size, "starting");
        return false;
    }
}

static void s_check(monitor_t *self, db_t *db)
{
    PGresult *res = NULL;
    if (!db_ensure(db, CHECK_INTERVAL_MS) || db_exec(db, &s_version, NULL, &res) != DB_OK) {
        if (atomic_load(&self->stop))
            return;
        if (atomic_exchange(&self->state, STATE_DB_DOWN) != STATE_DB_DOWN)
            log_warn("registry not ready: the database is not reachable", NULL);
        metrics_set("portico_registry_database_up", "", 0);
        return;
    }
    int version = (int)db_get_int(res, 0, db_col(res, "version"));
    PQclear(res);
    atomic_store(&self->schema_version, version);
    int next = version == migrations_latest() ? STATE_READY : STATE_SCHEMA;
    if (atomic_load(&self->stop))
        return;
    int before = atomic_exchange(&self->state, next);
    if (before != next && next == STATE_READY)
        log_info("registry ready", "schema_version=%d", version);
    else if (before != next)
        log_error("registry not ready: unexpected schema version", "schema_version=%d expected=%d", version,
                  migrations_latest());
    metrics_set("portico_registry_database_up", "", 1);
}

/* However many registries share the database, one sweeps at a time; the
 * others skip their turn. */
static void s_sweep(db_t *db)
{
    bool got = false;
    if (db_try_lock(db, DB_LOCK_SWEEP, &got) != DB_OK)
        return;
    if (!got) {
        metrics_inc("portico_registry_sweeps_skipped_total", NULL, 1);
        return;
    }
    for (size_t i = 0; i < sizeof s_sweeps / sizeof s_sweeps[0]; i++) {
        PGresult *res = NULL;
        if (db_exec(db, &s_sweeps[i].stmt, NULL, &res) != DB_OK)
            break;
        long n = strtol(PQcmdTuples(res), NULL, 10);
        PQclear(res);
        if (n > 0) {
            char labels[64];
            snprintf(labels, sizeof labels, "kind=\"%s\"", s_sweeps[i].kind);
            metrics_inc("portico_registry_swept_total", labels, (double)n);
            log_info("deleted expired rows", "kind=%s rows=%ld", s_sweeps[i].kind, n);
        }
    }
    db_unlock(db, DB_LOCK_SWEEP);
}

static void *s_run(void *arg)
{
    monitor_t *self = arg;
    db_t *db = db_new(self->opts->database_url, self->opts->statement_timeout_ms, "monitor");
    if (!db)
        return NULL;
    int64_t next_check = 0, next_sweep = bus_now_ms() + 1000;
    while (!atomic_load(&self->stop)) {
        int64_t now = bus_now_ms();
        if (now >= next_check) {
            s_check(self, db);
            next_check = now + CHECK_INTERVAL_MS;
        }
        if (now >= next_sweep && atomic_load(&self->state) == STATE_READY) {
            s_sweep(db);
            next_sweep = now + (int64_t)self->opts->sweep_interval_s * 1000;
        }
        usleep(TICK_MS * 1000);
    }
    db_destroy(&db);
    atomic_store(&self->done, true);
    return NULL;
}

int monitor_start(monitor_t *self)
{
    if (pthread_create(&self->thread, NULL, s_run, self) != 0)
        return -1;
    self->started = true;
    return 0;
}

void monitor_request_stop(monitor_t *self)
{
    atomic_store(&self->stop, true);
    atomic_store(&self->state, STATE_STOPPING);
}

bool monitor_done(monitor_t *self)
{
    return !self->started || atomic_load(&self->done);
}

void monitor_destroy(monitor_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    monitor_t *self = *self_p;
    atomic_store(&self->stop, true);
    if (self->started)
        pthread_join(self->thread, NULL);
    free(self);
    *self_p = NULL;
}
