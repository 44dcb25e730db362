#include "setup.h"

#include "audit.h"
#include "crypto.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SETUP_TOKEN_BYTES 32

/* $1 the hash, $2 the lifetime in hours. */
static const db_stmt_t s_adopt = {"setup_adopt_token",
                                  "UPDATE settings SET setup_token_hash = $1, updated_at = now(), "
                                  "setup_token_expires_at = now() + make_interval(hours => $2::int) "
                                  "WHERE id = 1 AND setup_token_hash IS DISTINCT FROM $1"};
/* Only the registry that fills the empty slot writes its token. */
static const db_stmt_t s_first = {"setup_first_token",
                                  "UPDATE settings SET setup_token_hash = $1, updated_at = now(), "
                                  "setup_token_expires_at = now() + make_interval(hours => $2::int) "
                                  "WHERE id = 1 AND setup_token_hash IS NULL RETURNING setup_mode"};
static const db_stmt_t s_forget = {
    "setup_forget_token", "UPDATE settings SET setup_token_hash = NULL WHERE id = 1 AND setup_token_hash = $1"};
static const db_stmt_t s_store = {"setup_store_token",
                                  "UPDATE settings SET setup_token_hash = $1, updated_at = now(), "
                                  "setup_token_expires_at = now() + make_interval(hours => $2::int) WHERE id = 1"};
static const db_stmt_t s_end_sessions = {"setup_end_sessions", "DELETE FROM sessions WHERE setup"};
static const db_stmt_t s_state = {
    "setup_state",
    "SELECT setup_mode, setup_token_hash, coalesce(setup_token_expires_at > now(), false) AS token_valid, "
    "coalesce(floor(extract(epoch FROM setup_token_expires_at))::bigint, 0) AS expires_at "
    "FROM settings WHERE id = 1"};

static db_rc_t s_exec_hash(db_t *db, const db_stmt_t *stmt, const char *token, int ttl_hours, PGresult **res)
{
    uint8_t hash[32];
    db_params_t p;
    crypto_sha256(token, strlen(token), hash);
    db_params_init(&p);
    db_param_bytes(&p, hash, sizeof hash);
    if (ttl_hours > 0)
        db_param_int(&p, ttl_hours);
    return db_exec(db, stmt, &p, res);
}

typedef struct {
    bool on;
    bool has_token;
    bool valid; /* not expired */
    int64_t expires_at;
    uint8_t hash[32];
} setup_state_t;

static db_rc_t s_state_read(db_t *db, setup_state_t *st)
{
    PGresult *res = NULL;
    memset(st, 0, sizeof *st);
    db_rc_t rc = db_exec(db, &s_state, NULL, &res);
    if (rc == DB_OK && PQntuples(res) == 1) {
        st->on = db_get_bool(res, 0, db_col(res, "setup_mode"));
        size_t n = 0;
        uint8_t *h = db_get_bytes(res, 0, db_col(res, "setup_token_hash"), &n);
        st->has_token = h && n == sizeof st->hash;
        if (st->has_token)
            memcpy(st->hash, h, sizeof st->hash);
        free(h);
        st->valid = db_get_bool(res, 0, db_col(res, "token_valid"));
        st->expires_at = db_get_int(res, 0, db_col(res, "expires_at"));
    }
    PQclear(res);
    return rc;
}

static void s_format_time(int64_t epoch, char *out, size_t out_size)
{
    time_t t = (time_t)epoch;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, out_size, "%Y-%m-%d %H:%M UTC", &tm);
}

/* Write the token to path, readable by its owner only: a temporary file
 * made 0600 before the token goes in, then renamed over the old one. */
static int s_write_file(const char *path, const char *token)
{
    char tmp[1100];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.new", path) >= sizeof tmp)
        return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t n = strlen(token);
    bool ok = fchmod(fd, 0600) == 0 && write(fd, token, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    int saved = errno;
    ok = close(fd) == 0 && ok;
    if (ok && rename(tmp, path) == 0)
        return 0;
    if (!ok)
        errno = saved;
    saved = errno;
    unlink(tmp);
    errno = saved;
    return -1;
}

/* The token in the file, or -1 (errno set) when it cannot be read. */
static int s_read_file(const char *path, char *out, size_t out_size)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    bool ok = fgets(out, (int)out_size, f) != NULL;
    fclose(f);
    if (!ok) {
        errno = ENODATA;
        return -1;
    }
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

static void s_log_state(db_t *db, const reg_options_t *opts, bool preset)
{
    setup_state_t st;
    if (s_state_read(db, &st) != DB_OK || !st.on)
        return;
    if (!st.valid) {
        log_warn("setup mode is on but the setup token has expired: get a new one with `portico-registry "
                 "setup-mode on`",
                 NULL);
        return;
    }
    char until[40];
    s_format_time(st.expires_at, until, sizeof until);
    if (preset)
        log_info("setup mode is on: use the setup token from PORTICO_SETUP_TOKEN to open /admin", "expires=\"%s\"",
                 until);
    else
        log_info("setup mode is on: open /admin with the setup token that `portico-registry setup-token` shows",
                 "file=\"%s\" expires=\"%s\"", opts->setup_token_file, until);
}

int setup_token_init(db_t *db, const reg_options_t *opts)
{
    int rc = -1;
    PGresult *res = NULL;
    char token[64] = "";
    const char *preset = opts->setup_token;
    if (preset[0]) {
        if (s_exec_hash(db, &s_adopt, preset, opts->setup_token_ttl_hours, &res) != DB_OK)
            goto out;
        if (strcmp(PQcmdTuples(res), "0") != 0) {
            log_info("setup token taken from PORTICO_SETUP_TOKEN", NULL);
            /* A replaced token takes its sessions with it. */
            if (db_exec(db, &s_end_sessions, NULL, NULL) != DB_OK)
                goto out;
        }
        s_log_state(db, opts, true);
        rc = 0;
        goto out;
    }
    if (crypto_random_token(SETUP_TOKEN_BYTES, token, sizeof token) < 0)
        goto out;
    if (s_exec_hash(db, &s_first, token, opts->setup_token_ttl_hours, &res) != DB_OK)
        goto out;
    if (PQntuples(res) == 1) {
        if (s_write_file(opts->setup_token_file, token) < 0) {
            /* Nobody could ever learn this token: forget it, so the next
             * start (with a writable file) makes another. */
            int saved = errno;
            s_exec_hash(db, &s_forget, token, 0, NULL);
            log_error("could not write the setup token file: set PORTICO_SETUP_TOKEN_FILE to a path the registry "
                      "can write, or preset PORTICO_SETUP_TOKEN",
                      "file=\"%s\" error=\"%s\"", opts->setup_token_file, strerror(saved));
            goto out;
        }
        log_warn("setup mode is on: the setup token is in the setup token file; `portico-registry setup-token` "
                 "shows it",
                 "file=\"%s\"", opts->setup_token_file);
        rc = audit_write(db, "registry", AUDIT_SETUP_TOKEN_ISSUED, "settings", "", "first start") == DB_OK ? 0 : -1;
        goto out;
    }
    s_log_state(db, opts, false);
    rc = 0;
out:
    OPENSSL_cleanse(token, sizeof token);
    PQclear(res);
    return rc;
}

int setup_token_issue(db_t *db, const reg_options_t *opts, const char *actor, char *out, size_t out_size)
{
    int rc = -1;
    char token[64] = "";
    out[0] = '\0';
    const char *use = opts->setup_token;
    if (!use[0]) {
        if (crypto_random_token(SETUP_TOKEN_BYTES, token, sizeof token) < 0 || strlen(token) >= out_size)
            goto out;
        use = token;
    }
    if (db_begin(db) != DB_OK)
        goto out;
    if (s_exec_hash(db, &s_store, use, opts->setup_token_ttl_hours, NULL) != DB_OK ||
        db_exec(db, &s_end_sessions, NULL, NULL) != DB_OK ||
        audit_write(db, actor, AUDIT_SETUP_TOKEN_ISSUED, "settings", "", use == token ? "new token" : "preset") !=
            DB_OK ||
        db_commit(db) != DB_OK) {
        db_rollback(db);
        goto out;
    }
    if (use == token) {
        if (s_write_file(opts->setup_token_file, token) < 0)
            log_warn("could not write the setup token file", "file=\"%s\" error=\"%s\"", opts->setup_token_file,
                     strerror(errno));
        memcpy(out, token, strlen(token) + 1);
    }
    rc = 0;
out:
    OPENSSL_cleanse(token, sizeof token);
    return rc;
}

int setup_token_show(db_t *db, const reg_options_t *opts)
{
    setup_state_t st;
    if (s_state_read(db, &st) != DB_OK) {
        fprintf(stderr, "portico-registry: could not read the settings: %s\n", db_last_error(db));
        return 1;
    }
    if (!st.on) {
        printf("Setup Mode is off: no setup token works. `portico-registry setup-mode on` turns it on with a new "
               "token.\n");
        return 1;
    }
    if (opts->setup_token[0]) {
        printf("The setup token is the value of PORTICO_SETUP_TOKEN.\n");
        return 0;
    }
    char token[128];
    if (s_read_file(opts->setup_token_file, token, sizeof token) < 0) {
        printf("Could not read the setup token file %s (%s).\nGet a new token with `portico-registry setup-mode "
               "on`.\n",
               opts->setup_token_file, strerror(errno));
        return 1;
    }
    uint8_t hash[32];
    crypto_sha256(token, strlen(token), hash);
    int status = 1;
    if (!st.has_token || !crypto_equal(hash, st.hash, sizeof hash)) {
        printf("The token in %s is no longer valid: a newer one was issued.\nGet a new token with "
               "`portico-registry setup-mode on`.\n",
               opts->setup_token_file);
    } else {
        char until[40];
        s_format_time(st.expires_at, until, sizeof until);
        if (!st.valid) {
            printf("The setup token expired at %s.\nGet a new token with `portico-registry setup-mode on`.\n", until);
        } else {
            printf("Setup token: %s\nValid until %s. Open /admin and enter it in the Setup token field.\n", token,
                   until);
            status = 0;
        }
    }
    OPENSSL_cleanse(token, sizeof token);
    return status;
}
