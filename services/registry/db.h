/* db: one PostgreSQL connection, owned by one thread.
 *
 * Every statement is parameterised. Statements are declared once as
 * db_stmt_t next to the code that uses them and prepared lazily on each
 * connection the first time they run, so the hot paths (session lookup,
 * pending-login consume) never re-parse SQL.
 *
 * When PostgreSQL goes away, calls fail at once with DB_DOWN; the
 * connection is re-established in the background of later calls, at most
 * once per back-off interval (500 ms growing to 2 s), with a bounded wait,
 * so a caller is never held longer than about a second. */
#ifndef PORTICO_REGISTRY_DB_H
#define PORTICO_REGISTRY_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct db_t db_t;

typedef enum {
    DB_OK = 0,
    DB_DOWN,    /* no usable connection: answer UNAVAILABLE */
    DB_TIMEOUT, /* statement_timeout or lock timeout */
    DB_UNIQUE,  /* unique_violation; db_constraint() names the constraint */
    DB_FOREIGN, /* foreign_key_violation */
    DB_FAIL     /* anything else: logged, answered INTERNAL */
} db_rc_t;

/* A statement prepared on first use. name must be unique and short. */
typedef struct {
    const char *name;
    const char *sql;
} db_stmt_t;

#define DB_MAX_PARAMS 16

typedef struct {
    int n;
    const char *values[DB_MAX_PARAMS];
    int lengths[DB_MAX_PARAMS];
    int formats[DB_MAX_PARAMS];
    char scratch[DB_MAX_PARAMS][24];
} db_params_t;

void db_params_init(db_params_t *p);
/* NULL s gives SQL NULL. */
void db_param_text(db_params_t *p, const char *s);
void db_param_int(db_params_t *p, int64_t v);
void db_param_bool(db_params_t *p, bool v);
/* Binary bytea; NULL data gives SQL NULL. */
void db_param_bytes(db_params_t *p, const void *data, size_t n);
void db_param_null(db_params_t *p);

/* Does not connect; db_ensure does. statement_timeout_ms 0 = no limit. */
db_t *db_new(const char *conninfo, int statement_timeout_ms, const char *name);
void db_destroy(db_t **self_p);

/* True when the connection can be used now. When it is down and the
 * back-off allows, tries to reconnect for at most budget_ms. */
bool db_ensure(db_t *self, int budget_ms);
/* Forget the back-off: the next db_ensure tries at once (start-up). */
void db_reset_backoff(db_t *self);
bool db_is_up(const db_t *self);

/* Run a prepared statement. On DB_OK and res != NULL, *res is the result
 * (the caller clears it); otherwise nothing is left to clear. */
db_rc_t db_exec(db_t *self, const db_stmt_t *stmt, const db_params_t *params, PGresult **res);
/* Run SQL once without preparing it (migrations, maintenance). */
db_rc_t db_exec_sql(db_t *self, const char *sql, const db_params_t *params, PGresult **res);

/* Session-level advisory locks that every registry on the database shares:
 * for work that must happen once however many registries run. A lock held
 * by a registry that dies goes with its connection. */
#define DB_LOCK_MIGRATE "7075821340022370131" /* schema migrations */
#define DB_LOCK_SWEEP "7075821340022370132"   /* deleting expired rows */
#define DB_LOCK_SETUP "7075821340022370133"   /* settling the setup token at start */
/* Wait for the lock (no statement timeout applies to the wait only when
 * the caller lifted it). */
db_rc_t db_lock(db_t *self, const char *key);
/* Take the lock when it is free: *got tells. */
db_rc_t db_try_lock(db_t *self, const char *key, bool *got);
void db_unlock(db_t *self, const char *key);

/* Set statement_timeout for this session; ms < 0 restores the configured value. */
db_rc_t db_set_timeout(db_t *self, int ms);

/* Run several statements with no parameters at all (migrations only). */
db_rc_t db_exec_script(db_t *self, const char *sql);

db_rc_t db_begin(db_t *self);
/* BEGIN a batched transaction: until db_commit or db_rollback, a db_exec
 * that asks for no result goes out at once without waiting for its answer
 * (libpq's pipeline mode), so several statements share one round trip to
 * the server. The error of such a statement comes back from the next call
 * that waits: a db_exec asking for a result, or db_commit. Use it where a
 * failure anywhere ends the whole transaction anyway. */
db_rc_t db_begin_batch(db_t *self);
db_rc_t db_commit(db_t *self);
/* COMMIT, then run stmt (a read) after it in the same round trip when the
 * transaction is batched. DB_OK only when both succeeded; stmt runs on its
 * own, after the commit, and is skipped when the commit failed. On DB_OK
 * *res is stmt's result (the caller clears it). */
db_rc_t db_commit_then(db_t *self, const db_stmt_t *stmt, const db_params_t *params, PGresult **res);
/* Safe to call in any state; does nothing outside a transaction. */
void db_rollback(db_t *self);

/* The constraint named by the last DB_UNIQUE or DB_FOREIGN. */
const char *db_constraint(const db_t *self);
/* For logs: "host:port/dbname", never a password. */
const char *db_describe(const db_t *self);
/* The last error message from the server or libpq (for the CLI). */
const char *db_last_error(const db_t *self);

/* The numbers of the columns called names[0..n-1] in res, into cols. 0, or
 * -1 with a log line naming the first one missing: reading by name means a
 * column added to a query cannot silently shift the others. */
int db_columns(const PGresult *res, const char *const *names, size_t n, int *cols);
/* The number of the column called name in res, or -1 with a log line
 * naming it. Names compare exactly: the SQL gives each column a lower-case
 * name (an alias for an expression). */
int db_column(const PGresult *res, const char *name);
/* db_column for a column the query is written to give: a missing one is a
 * programming error, logged by name and stopped by an assertion. Results
 * are read only through this (or db_columns), never by a column number;
 * `make unit-test` checks that. Resolve once per result, before a loop. */
int db_col(const PGresult *res, const char *name);

/* Result getters. NULL reads as 0, false, "" or NULL. */
int64_t db_get_int(const PGresult *res, int row, int col);
bool db_get_bool(const PGresult *res, int row, int col);
const char *db_get_text(const PGresult *res, int row, int col);
bool db_get_null(const PGresult *res, int row, int col);
/* A bytea column as bytes (malloc'd, free it), NULL for SQL NULL. */
uint8_t *db_get_bytes(const PGresult *res, int row, int col, size_t *n);

#endif
