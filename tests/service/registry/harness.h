/* harness: what the registry service tests share.
 *
 * run.sh starts PostgreSQL and one registry and passes where they are in
 * REG_TEST_* variables; these helpers talk to that registry over the bus
 * (one bus client per thread), look at the raw tables with libpq, run the
 * CLI, and start extra registries for the tests that need their own. */
#ifndef REG_TEST_HARNESS_H
#define REG_TEST_HARNESS_H

#include "bus.h"
#include "registry.pb-c.h"

#include <libpq-fe.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

#define H_TIMEOUT_MS 5000

/* Environment from run.sh; aborts the test run when one is missing. */
const char *h_env(const char *name);

/* The registry run.sh started. One client per thread; the main thread's is
 * made on first use. */
bus_client_t *h_client(void);

/* Call the main registry. Returns the reply code (0 = OK); err gets the
 * message and detail; *out the decoded reply when desc is given. */
int h_call(const char *method, const ProtobufCMessage *req, const ProtobufCMessageDescriptor *desc,
           ProtobufCMessage **out, bus_error_t *err);
int h_call_with(bus_client_t *client, const char *method, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out, bus_error_t *err);

/* ---- raw database access ---- */

/* A fresh connection to the test database (conninfo from REG_TEST_DB or
 * the same cluster with another dbname when dbname != NULL). */
PGconn *h_pg(const char *dbname);
/* The connection string for dbname on the test cluster. */
void h_conninfo(const char *dbname, char *out, size_t out_size);
/* Run SQL (no parameters) and return the first column of the first row as
 * a long long, or -1 on error/no row. */
long long h_pg_scalar(PGconn *conn, const char *sql);
/* Run SQL that returns nothing; 0 or -1 (printing the error). */
int h_pg_exec(PGconn *conn, const char *sql);
/* Create (or re-create) an empty database on the test cluster. */
void h_create_database(const char *name);

/* ---- processes ---- */

/* Run a shell command line; capture stdout+stderr into out (NUL-terminated)
 * and return the exit status (or -1). */
int h_run(char *out, size_t out_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A free TCP port on 127.0.0.1. */
int h_free_port(void);

typedef struct {
    pid_t pid;
    char endpoint[64];
    char health[64];
    char log[512];
} h_registry_t;

/* Start another registry against dbname with these extra environment
 * settings ("NAME=value", NULL-terminated); waits until it is ready
 * (or exits). 0, or -1 when it did not become ready within 10 s. */
int h_registry_start(h_registry_t *r, const char *dbname, const char *const *env);
/* SIGTERM and wait. Returns the exit status, or -1 when it had to be
 * killed; *elapsed_ms gets how long it took. */
int h_registry_stop(h_registry_t *r, long *elapsed_ms);
/* Wait for a process started with h_registry_start to exit by itself. */
int h_registry_wait_exit(h_registry_t *r, int timeout_ms);

/* ---- fixtures ---- */

/* A SHA-256 of a label, for token/state/browser hashes. */
ProtobufCBinaryData h_hash(const char *label, uint8_t buf[32]);
/* Lower-case hex of h_hash(label), for raw SQL ('\\x' || hex). */
void h_hash_hex(const char *label, char hex[65]);
/* A fresh OAuth 2 integration on a unique base URL; returns its id. */
int64_t h_make_integration(const char *client_secret);
/* Log in a Bitbucket user through an integration; returns the identity id
 * and sets *user_id. */
/* A login in flight, as the broker starts one (pending.create), and the
 * request that names it for user.login (req.pending = &p->finish). */
typedef struct {
    uint8_t state_hash[32], browser_hash[32];
    Portico__Registry__ConsumePendingRequest finish;
} h_pending_t;
int h_pending(int64_t integration_id, h_pending_t *p);
int h_pending_with(bus_client_t *client, int64_t integration_id, h_pending_t *p);
int64_t h_login(int64_t integration_id, int64_t bb_user_id, const char *username, int64_t *user_id);
/* A unique number for names in this run. */
long h_unique(void);
/* Read a file into a fresh string (NULL when missing). */
char *h_read_file(const char *path);
int64_t h_now_ms(void);
void h_sleep_ms(int ms);

/* Fail the current test, naming the code expected and the one answered. */
#define assert_code(expected, actual, err)                                                                             \
    do {                                                                                                               \
        int a_ = (actual);                                                                                             \
        if (a_ != (expected)) {                                                                                        \
            print_error("%s:%d: expected %s, got %s: %s (detail \"%s\")\n", __FILE__, __LINE__,                        \
                        bus_code_name(expected), bus_code_name(a_), (err).message, bus_detail_name((err).detail));     \
            fail();                                                                                                    \
        }                                                                                                              \
    } while (0)

/* The setup token the main registry logged at first start (settings group). */
const char *test_setup_token(void);
/* Sessions start only in the registry's login and setup steps: these make
 * one as the broker (user.login) and the web (settings.check_setup_token) do. */
int h_login_session(int64_t integration_id, int64_t bb_user_id, const char *username, const char *cookie, int idle,
                    int absolute, bus_error_t *err);
int h_setup_session(const char *setup_token, const char *cookie, bus_error_t *err);

/* The test groups, run in this order by main.c (each returns failures). */
int run_settings_tests(void);
int run_user_tests(void);
int run_integration_tests(void);
int run_session_tests(void);
int run_login_tests(void);
int run_token_tests(void);
int run_access_tests(void);
int run_audit_tests(void);
int run_raw_tests(void);
int run_db_tests(void);
int run_cli_tests(void);
int run_outage_tests(void);
int run_migration_tests(void);
int run_rotation_tests(void);

#endif
