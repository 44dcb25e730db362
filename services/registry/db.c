#include "db.h"

#include "bus.h"
#include "log.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PREPARED 128
#define MAX_QUEUED 32
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 2000

struct db_t {
    PGconn *conn;
    char *conninfo;
    char name[32];
    char describe[160];
    char constraint[64];
    char last_error[256];
    int statement_timeout_ms;
    const db_stmt_t *prepared[MAX_PREPARED];
    int nprepared;
    /* A batched transaction (db_begin_batch): what went out in pipeline
     * mode and has not been read back yet, in order. */
    bool batch;
    struct {
        const db_stmt_t *stmt;
        bool prepare;
    } queued[MAX_QUEUED];
    int nqueued;
    int64_t next_attempt_ms;
    int backoff_ms;
    bool was_up; /* for logging transitions once */
};

/* ---- parameters ---- */

void db_params_init(db_params_t *p)
{
    memset(p, 0, sizeof *p);
}

static int s_slot(db_params_t *p)
{
    /* More parameters than a statement declares is a programming error. */
    if (p->n >= DB_MAX_PARAMS)
        abort();
    return p->n++;
}

void db_param_text(db_params_t *p, const char *s)
{
    int i = s_slot(p);
    p->values[i] = s;
    p->lengths[i] = 0;
    p->formats[i] = 0;
}

void db_param_int(db_params_t *p, int64_t v)
{
    int i = s_slot(p);
    snprintf(p->scratch[i], sizeof p->scratch[i], "%" PRId64, v);
    p->values[i] = p->scratch[i];
    p->formats[i] = 0;
}

void db_param_bool(db_params_t *p, bool v)
{
    int i = s_slot(p);
    p->values[i] = v ? "true" : "false";
    p->formats[i] = 0;
}

void db_param_bytes(db_params_t *p, const void *data, size_t n)
{
    int i = s_slot(p);
    /* A zero-length value still needs a non-NULL pointer to mean ''. */
    p->values[i] = data ? (n ? data : "") : NULL;
    p->lengths[i] = (int)n;
    p->formats[i] = 1;
}

void db_param_null(db_params_t *p)
{
    int i = s_slot(p);
    p->values[i] = NULL;
}

/* ---- connection ---- */

db_t *db_new(const char *conninfo, int statement_timeout_ms, const char *name)
{
    db_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->conninfo = strdup(conninfo);
    if (!self->conninfo) {
        free(self);
        return NULL;
    }
    self->statement_timeout_ms = statement_timeout_ms;
    self->backoff_ms = BACKOFF_MIN_MS;
    snprintf(self->name, sizeof self->name, "%s", name ? name : "db");
    snprintf(self->describe, sizeof self->describe, "(not connected)");
    return self;
}

void db_destroy(db_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    db_t *self = *self_p;
    if (self->conn)
        PQfinish(self->conn);
    free(self->conninfo);
    free(self);
    *self_p = NULL;
}

const char *db_describe(const db_t *self)
{
    return self->describe;
}
const char *db_constraint(const db_t *self)
{
    return self->constraint;
}
const char *db_last_error(const db_t *self)
{
    return self->last_error;
}

static void s_set_error(db_t *self, const char *text)
{
    snprintf(self->last_error, sizeof self->last_error, "%s", text ? text : "");
    /* libpq messages end with a newline. */
    size_t n = strlen(self->last_error);
    while (n && (self->last_error[n - 1] == '\n' || self->last_error[n - 1] == ' '))
        self->last_error[--n] = '\0';
}

/* Wait for the socket as libpq asks while a connection is being made. */
static int s_poll_connect(db_t *self, bool reset, int64_t deadline)
{
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    for (;;) {
        if (st == PGRES_POLLING_OK)
            return 0;
        if (st == PGRES_POLLING_FAILED)
            return -1;
        int64_t left = deadline - bus_now_ms();
        if (left <= 0)
            return -1;
        struct pollfd pfd = {PQsocket(self->conn), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, 0};
        if (pfd.fd < 0)
            return -1;
        int rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno != EINTR)
            return -1;
        if (rc == 0)
            return -1;
        st = reset ? PQresetPoll(self->conn) : PQconnectPoll(self->conn);
    }
}

/* Each statement of a login opens several index scans, and PostgreSQL
 * allocates each scan's state (about 27 KB) with malloc. In a new backend
 * glibc gives memory at the top of the heap back to the kernel as soon as
 * more than 128 KB of it is free: with our statements that happened at the
 * end of most executions, and the next one grew the heap again. Giving
 * memory back flushes the TLB of every CPU the backend ran on, with an
 * inter-processor interrupt to each, costly on a virtual machine: perf put
 * it at a tenth of PostgreSQL's CPU per login, about 1.5 brk calls per
 * login. glibc raises that limit to twice the size of the largest block it
 * has mapped and unmapped, so one statement that allocates and frees 1 MB
 * once per connection makes the backend keep up to 2 MB of free heap
 * instead (its real use is far below that): brk calls went from 2,722 to 3
 * in 8 s of logins. Other allocators ignore it; a failure here is harmless. */
static void s_settle_server_heap(db_t *self)
{
    PGresult *res = PQexec(self->conn, "SELECT length(repeat('x', 1048576))");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char q[300];
        log_debug("could not settle the database server's heap", "conn=%s error=%s", self->name,
                  log_quote(PQerrorMessage(self->conn), q, sizeof q));
    }
    PQclear(res);
}

/* What every fresh connection needs before it serves. */
static int s_on_connect(db_t *self)
{
    self->nprepared = 0;
    self->batch = false;
    self->nqueued = 0;
    int rc = db_set_timeout(self, -1) == DB_OK ? 0 : -1;
    if (rc == 0)
        s_settle_server_heap(self);
    snprintf(self->describe, sizeof self->describe, "%s:%s/%s", PQhost(self->conn) ? PQhost(self->conn) : "",
             PQport(self->conn) ? PQport(self->conn) : "", PQdb(self->conn) ? PQdb(self->conn) : "");
    return rc;
}

/* Server notices (NOTICE, WARNING) go to our log, not to stderr. */
static void s_notice(void *arg, const char *message)
{
    db_t *self = arg;
    char q[300];
    char text[256];
    snprintf(text, sizeof text, "%s", message);
    text[strcspn(text, "\n")] = '\0';
    log_debug("database notice", "conn=%s notice=%s", self->name, log_quote(text, q, sizeof q));
}

static int s_connect(db_t *self, int budget_ms)
{
    int64_t deadline = bus_now_ms() + budget_ms;
    bool reset = self->conn != NULL;
    if (!self->conn) {
        /* Later keywords override what the connection string says. */
        const char *keys[] = {"dbname", "connect_timeout", "fallback_application_name", NULL};
        const char *values[] = {self->conninfo, "3", "portico-registry", NULL};
        self->conn = PQconnectStartParams(keys, values, 1);
        if (!self->conn) {
            s_set_error(self, "out of memory");
            return -1;
        }
        PQsetNoticeProcessor(self->conn, s_notice, self);
        if (PQstatus(self->conn) == CONNECTION_BAD) {
            s_set_error(self, PQerrorMessage(self->conn));
            return -1;
        }
    } else if (!PQresetStart(self->conn)) {
        s_set_error(self, PQerrorMessage(self->conn));
        return -1;
    }
    if (s_poll_connect(self, reset, deadline) < 0 || PQstatus(self->conn) != CONNECTION_OK) {
        if (PQstatus(self->conn) == CONNECTION_BAD)
            s_set_error(self, PQerrorMessage(self->conn));
        else
            s_set_error(self, "timed out while connecting");
        return -1;
    }
    return s_on_connect(self);
}

void db_reset_backoff(db_t *self)
{
    self->next_attempt_ms = 0;
    self->backoff_ms = BACKOFF_MIN_MS;
}

bool db_is_up(const db_t *self)
{
    return self->conn && PQstatus(self->conn) == CONNECTION_OK;
}

bool db_ensure(db_t *self, int budget_ms)
{
    /* A batch is always ended by its commit or rollback: this only guards. */
    if (self->batch)
        db_rollback(self);
    if (self->conn && PQstatus(self->conn) == CONNECTION_OK) {
        /* An idle connection learns that the server went away only when it
         * reads: do that now, without blocking, rather than fail the next
         * statement. */
        if (PQtransactionStatus(self->conn) == PQTRANS_IDLE)
            PQconsumeInput(self->conn);
        if (PQstatus(self->conn) == CONNECTION_OK)
            return true;
    }
    if (self->was_up) {
        self->was_up = false;
        log_warn("lost the database connection", "conn=%s db=%s", self->name, self->describe);
    }
    int64_t now = bus_now_ms();
    if (now < self->next_attempt_ms)
        return false;
    self->next_attempt_ms = now + self->backoff_ms;
    self->backoff_ms = self->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : self->backoff_ms * 2;
    if (s_connect(self, budget_ms) < 0) {
        char q[300];
        log_debug("could not connect to the database", "conn=%s error=%s", self->name,
                  log_quote(self->last_error, q, sizeof q));
        return false;
    }
    db_reset_backoff(self);
    self->was_up = true;
    log_info("connected to the database", "conn=%s db=%s", self->name, self->describe);
    return true;
}

/* ---- statements ---- */

static db_rc_t s_classify(db_t *self, PGresult *res, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    s_set_error(self, primary ? primary : PQerrorMessage(self->conn));
    self->constraint[0] = '\0';
    if (PQstatus(self->conn) != CONNECTION_OK || !state || !strncmp(state, "08", 2) || !strcmp(state, "57P01") ||
        !strcmp(state, "57P02") || !strcmp(state, "57P03")) {
        char q[300];
        log_warn("database connection failed", "conn=%s stmt=%s error=%s", self->name, what,
                 log_quote(self->last_error, q, sizeof q));
        return DB_DOWN;
    }
    if (!strcmp(state, "57014") || !strcmp(state, "55P03"))
        return DB_TIMEOUT;
    if (!strcmp(state, "23505") || !strcmp(state, "23503")) {
        const char *c = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
        snprintf(self->constraint, sizeof self->constraint, "%s", c ? c : "");
        return state[4] == '5' ? DB_UNIQUE : DB_FOREIGN;
    }
    char q[300];
    log_error("database statement failed", "conn=%s stmt=%s sqlstate=%s error=%s", self->name, what, state,
              log_quote(self->last_error, q, sizeof q));
    return DB_FAIL;
}

static db_rc_t s_finish(db_t *self, PGresult *r, const char *what, PGresult **res)
{
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        db_rc_t rc = s_classify(self, r, what);
        PQclear(r);
        return rc;
    }
    if (res)
        *res = r;
    else
        PQclear(r);
    return DB_OK;
}

static db_rc_t s_prepare(db_t *self, const db_stmt_t *stmt)
{
    for (int i = 0; i < self->nprepared; i++)
        if (self->prepared[i] == stmt)
            return DB_OK;
    PGresult *r = PQprepare(self->conn, stmt->name, stmt->sql, 0, NULL);
    db_rc_t rc = s_finish(self, r, stmt->name, NULL);
    if (rc == DB_OK && self->nprepared < MAX_PREPARED)
        self->prepared[self->nprepared++] = stmt;
    return rc;
}

/* ---- batched transactions: libpq's pipeline mode ---- */

static const db_stmt_t s_begin = {"tx_begin", "BEGIN"};
static const db_stmt_t s_commit = {"tx_commit", "COMMIT"};

static void s_forget_prepared(db_t *self, const db_stmt_t *stmt)
{
    for (int i = 0; i < self->nprepared; i++)
        if (self->prepared[i] == stmt) {
            self->prepared[i] = self->prepared[--self->nprepared];
            return;
        }
}

/* Read back everything sent since the last sync, in order: the first error
 * is the answer (what came after it was skipped by the server). last, when
 * given, receives the result of the last statement sent. */
static db_rc_t s_collect(db_t *self, PGresult **last)
{
    db_rc_t rc = DB_OK;
    if (last)
        *last = NULL;
    if (PQpipelineSync(self->conn) != 1) {
        s_set_error(self, PQerrorMessage(self->conn));
        self->nqueued = 0;
        return DB_DOWN;
    }
    /* Each statement's results end with a NULL; the sync ends them all. A
     * broken connection ends with NULLs only: stop counting then. */
    int i = 0, nulls = 0;
    for (;;) {
        PGresult *r = PQgetResult(self->conn);
        if (!r) {
            i++;
            if (++nulls > self->nqueued + 1) {
                if (rc == DB_OK) {
                    s_set_error(self, PQerrorMessage(self->conn));
                    rc = DB_DOWN;
                }
                break;
            }
            continue;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            break;
        }
        bool known = i < self->nqueued;
        const db_stmt_t *stmt = known ? self->queued[i].stmt : NULL;
        bool prepare = known && self->queued[i].prepare;
        if ((st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) && stmt == &s_commit && !prepare &&
            strcmp(PQcmdStatus(r), "COMMIT") != 0 && rc == DB_OK) {
            /* COMMIT of a failed transaction answers ROLLBACK, not an error. */
            s_set_error(self, "the transaction was rolled back");
            rc = DB_FAIL;
        }
        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
            if (last && rc == DB_OK && i == self->nqueued - 1 && !prepare) {
                PQclear(*last);
                *last = r;
            } else {
                PQclear(r);
            }
            continue;
        }
        /* Failed or skipped: a statement whose PREPARE did not happen is
         * prepared again next time. */
        if (prepare)
            s_forget_prepared(self, stmt);
        if (st != PGRES_PIPELINE_ABORTED && rc == DB_OK)
            rc = s_classify(self, r, stmt ? stmt->name : "batch");
        PQclear(r);
    }
    self->nqueued = 0;
    if (rc != DB_OK && last) {
        PQclear(*last);
        *last = NULL;
    }
    return rc;
}

static db_rc_t s_queue(db_t *self, const db_stmt_t *stmt, bool prepare)
{
    self->queued[self->nqueued].stmt = stmt;
    self->queued[self->nqueued].prepare = prepare;
    self->nqueued++;
    return DB_OK;
}

/* Send a statement (and its PREPARE the first time) without waiting. */
static db_rc_t s_send(db_t *self, const db_stmt_t *stmt, const db_params_t *params)
{
    db_rc_t rc;
    if (self->nqueued + 2 > MAX_QUEUED && (rc = s_collect(self, NULL)) != DB_OK)
        return rc;
    bool prepared = false;
    for (int i = 0; i < self->nprepared && !prepared; i++)
        prepared = self->prepared[i] == stmt;
    if (!prepared && self->nprepared < MAX_PREPARED) {
        if (!PQsendPrepare(self->conn, stmt->name, stmt->sql, 0, NULL))
            goto fail;
        self->prepared[self->nprepared++] = stmt;
        s_queue(self, stmt, true);
    }
    if (!PQsendQueryPrepared(self->conn, stmt->name, params ? params->n : 0, params ? params->values : NULL,
                             params ? params->lengths : NULL, params ? params->formats : NULL, 0))
        goto fail;
    return s_queue(self, stmt, false);
fail:
    s_set_error(self, PQerrorMessage(self->conn));
    return DB_DOWN;
}

/* Back to one statement at a time (the transaction goes on): for the
 * calls pipeline mode does not allow. */
static db_rc_t s_unbatch(db_t *self)
{
    if (!self->batch)
        return DB_OK;
    db_rc_t rc = self->nqueued ? s_collect(self, NULL) : DB_OK;
    PQexitPipelineMode(self->conn);
    self->batch = false;
    return rc;
}

db_rc_t db_exec(db_t *self, const db_stmt_t *stmt, const db_params_t *params, PGresult **res)
{
    if (res)
        *res = NULL;
    if (!self->conn || PQstatus(self->conn) != CONNECTION_OK) {
        s_set_error(self, "no connection to the server");
        return DB_DOWN;
    }
    if (self->batch) {
        db_rc_t rc = s_send(self, stmt, params);
        return rc != DB_OK || !res ? rc : s_collect(self, res);
    }
    db_rc_t rc = s_prepare(self, stmt);
    if (rc != DB_OK)
        return rc;
    PGresult *r = PQexecPrepared(self->conn, stmt->name, params ? params->n : 0, params ? params->values : NULL,
                                 params ? params->lengths : NULL, params ? params->formats : NULL, 0);
    return s_finish(self, r, stmt->name, res);
}

db_rc_t db_exec_sql(db_t *self, const char *sql, const db_params_t *params, PGresult **res)
{
    if (res)
        *res = NULL;
    if (!self->conn || PQstatus(self->conn) != CONNECTION_OK) {
        s_set_error(self, "no connection to the server");
        return DB_DOWN;
    }
    db_rc_t rc = s_unbatch(self);
    if (rc != DB_OK)
        return rc;
    PGresult *r = PQexecParams(self->conn, sql, params ? params->n : 0, NULL, params ? params->values : NULL,
                               params ? params->lengths : NULL, params ? params->formats : NULL, 0);
    return s_finish(self, r, "sql", res);
}

db_rc_t db_exec_script(db_t *self, const char *sql)
{
    if (!self->conn || PQstatus(self->conn) != CONNECTION_OK) {
        s_set_error(self, "no connection to the server");
        return DB_DOWN;
    }
    db_rc_t rc = s_unbatch(self);
    if (rc != DB_OK)
        return rc;
    return s_finish(self, PQexec(self->conn, sql), "script", NULL);
}

db_rc_t db_set_timeout(db_t *self, int ms)
{
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, ms < 0 ? self->statement_timeout_ms : ms);
    return db_exec_sql(self, "SELECT set_config('statement_timeout', $1, false)", &p, NULL);
}

db_rc_t db_begin(db_t *self)
{
    return db_exec(self, &s_begin, NULL, NULL);
}

db_rc_t db_begin_batch(db_t *self)
{
    if (!self->conn || PQstatus(self->conn) != CONNECTION_OK) {
        s_set_error(self, "no connection to the server");
        return DB_DOWN;
    }
    if (self->batch || PQenterPipelineMode(self->conn) != 1)
        return db_begin(self);
    self->batch = true;
    return s_send(self, &s_begin, NULL);
}

db_rc_t db_commit(db_t *self)
{
    PGresult *res = NULL;
    db_rc_t rc = db_exec(self, &s_commit, NULL, &res);
    db_rc_t end = s_unbatch(self);
    if (rc == DB_OK)
        rc = end;
    /* COMMIT of a failed transaction answers ROLLBACK, not an error. */
    if (rc == DB_OK && strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        s_set_error(self, "the transaction was rolled back");
        rc = DB_FAIL;
    }
    PQclear(res);
    return rc;
}

db_rc_t db_commit_then(db_t *self, const db_stmt_t *stmt, const db_params_t *params, PGresult **res)
{
    *res = NULL;
    if (!self->batch) {
        db_rc_t rc = db_commit(self);
        return rc != DB_OK ? rc : db_exec(self, stmt, params, res);
    }
    db_rc_t rc = s_send(self, &s_commit, NULL);
    if (rc == DB_OK)
        rc = s_send(self, stmt, params);
    if (rc == DB_OK)
        rc = s_collect(self, res);
    db_rc_t end = s_unbatch(self);
    if (rc == DB_OK && end != DB_OK) {
        PQclear(*res);
        *res = NULL;
        rc = end;
    }
    return rc;
}

void db_rollback(db_t *self)
{
    if (!self->conn)
        return;
    s_unbatch(self);
    if (PQstatus(self->conn) != CONNECTION_OK)
        return;
    PGTransactionStatusType ts = PQtransactionStatus(self->conn);
    if (ts != PQTRANS_INTRANS && ts != PQTRANS_INERROR)
        return;
    PQclear(PQexec(self->conn, "ROLLBACK"));
}

/* ---- results ---- */

int db_columns(const PGresult *res, const char *const *names, size_t n, int *cols)
{
    for (size_t i = 0; i < n; i++) {
        cols[i] = db_column(res, names[i]);
        if (cols[i] < 0)
            return -1;
    }
    return 0;
}

int db_column(const PGresult *res, const char *name)
{
    int n = PQnfields(res);
    for (int i = 0; i < n; i++) {
        if (!strcmp(PQfname(res, i), name))
            return i;
    }
    log_error("a result lacks a column", "column=%s", name);
    return -1;
}

int db_col(const PGresult *res, const char *name)
{
    int col = db_column(res, name);
    assert(col >= 0 && "a query lacks a column its reader names");
    return col;
}

int64_t db_get_int(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return 0;
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

bool db_get_bool(const PGresult *res, int row, int col)
{
    return !PQgetisnull(res, row, col) && PQgetvalue(res, row, col)[0] == 't';
}

const char *db_get_text(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col);
}

bool db_get_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) != 0;
}

uint8_t *db_get_bytes(const PGresult *res, int row, int col, size_t *n)
{
    *n = 0;
    if (PQgetisnull(res, row, col))
        return NULL;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, col), n);
    if (!raw)
        return NULL;
    /* PQunescapeBytea's memory belongs to libpq's allocator: copy it. */
    uint8_t *out = malloc(*n ? *n : 1);
    if (out)
        memcpy(out, raw, *n);
    PQfreemem(raw);
    return out;
}

db_rc_t db_lock(db_t *self, const char *key)
{
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%s)", key);
    return db_exec_sql(self, sql, NULL, NULL);
}

db_rc_t db_try_lock(db_t *self, const char *key, bool *got)
{
    char sql[96];
    PGresult *res = NULL;
    *got = false;
    snprintf(sql, sizeof sql, "SELECT pg_try_advisory_lock(%s)", key);
    db_rc_t rc = db_exec_sql(self, sql, NULL, &res);
    if (rc == DB_OK) {
        *got = PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "t");
        PQclear(res);
    }
    return rc;
}

void db_unlock(db_t *self, const char *key)
{
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%s)", key);
    db_exec_sql(self, sql, NULL, NULL);
}
