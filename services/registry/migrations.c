#include "migrations.h"

#include "log.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *description;
    const char *sql;
} migration_t;

/* Append only: never edit a migration that has shipped. */
static const migration_t s_migrations[] = {
    {"initial schema", "CREATE SEQUENCE integration_ids;\n"
                       "CREATE TABLE integration_reservations (\n"
                       "  id bigint PRIMARY KEY,\n"
                       "  created_at timestamptz NOT NULL DEFAULT now()\n"
                       ");\n"
                       "CREATE TABLE integrations (\n"
                       "  id bigint PRIMARY KEY,\n"
                       "  platform text NOT NULL,\n"
                       "  name text NOT NULL,\n"
                       "  base_url text NOT NULL,\n"
                       "  oauth_version smallint NOT NULL CHECK (oauth_version IN (1, 2)),\n"
                       "  client_id text NOT NULL DEFAULT '',\n"
                       "  client_secret bytea,\n"
                       "  consumer_key text NOT NULL DEFAULT '',\n"
                       "  public_key_pem text NOT NULL DEFAULT '',\n"
                       "  private_key bytea,\n"
                       "  ca_cert_pem text NOT NULL DEFAULT '',\n"
                       "  enabled boolean NOT NULL DEFAULT true,\n"
                       "  bitbucket_version text NOT NULL DEFAULT '',\n"
                       "  last_test_result text NOT NULL DEFAULT '',\n"
                       "  last_test_at timestamptz,\n"
                       "  created_at timestamptz NOT NULL DEFAULT now(),\n"
                       "  updated_at timestamptz NOT NULL DEFAULT now(),\n"
                       "  created_by text NOT NULL DEFAULT '',\n"
                       "  updated_by text NOT NULL DEFAULT '',\n"
                       "  CONSTRAINT integrations_endpoint_key UNIQUE (base_url, oauth_version, client_id)\n"
                       ");\n"
                       "CREATE TABLE users (\n"
                       "  id bigserial PRIMARY KEY,\n"
                       "  name text NOT NULL,\n"
                       "  display_name text NOT NULL DEFAULT '',\n"
                       "  is_admin boolean NOT NULL DEFAULT false,\n"
                       "  created_at timestamptz NOT NULL DEFAULT now(),\n"
                       "  updated_at timestamptz NOT NULL DEFAULT now(),\n"
                       "  last_login_at timestamptz\n"
                       ");\n"
                       "CREATE INDEX users_name_idx ON users (name);\n"
                       "CREATE INDEX users_admin_idx ON users (id) WHERE is_admin;\n"
                       "CREATE TABLE identities (\n"
                       "  id bigserial PRIMARY KEY,\n"
                       "  integration_id bigint NOT NULL REFERENCES integrations ON DELETE CASCADE,\n"
                       "  user_id bigint NOT NULL REFERENCES users ON DELETE CASCADE,\n"
                       "  bb_user_id bigint NOT NULL,\n"
                       "  username text NOT NULL,\n"
                       "  slug text NOT NULL DEFAULT '',\n"
                       "  display_name text NOT NULL DEFAULT '',\n"
                       "  email text NOT NULL DEFAULT '',\n"
                       "  created_at timestamptz NOT NULL DEFAULT now(),\n"
                       "  last_login_at timestamptz NOT NULL DEFAULT now(),\n"
                       "  CONSTRAINT identities_bb_user_key UNIQUE (integration_id, bb_user_id)\n"
                       ");\n"
                       "CREATE INDEX identities_user_idx ON identities (user_id);\n"
                       "CREATE TABLE sessions (\n"
                       "  token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),\n"
                       "  user_id bigint REFERENCES users ON DELETE CASCADE,\n"
                       "  setup boolean NOT NULL DEFAULT false,\n"
                       "  addr text NOT NULL DEFAULT '',\n"
                       "  idle_seconds integer NOT NULL CHECK (idle_seconds > 0),\n"
                       "  created_at timestamptz NOT NULL DEFAULT now(),\n"
                       "  last_seen_at timestamptz NOT NULL DEFAULT now(),\n"
                       "  idle_expires_at timestamptz NOT NULL,\n"
                       "  absolute_expires_at timestamptz NOT NULL,\n"
                       "  CHECK ((user_id IS NULL) = setup)\n"
                       ");\n"
                       "CREATE INDEX sessions_user_idx ON sessions (user_id);\n"
                       "CREATE INDEX sessions_idle_expiry_idx ON sessions (idle_expires_at);\n"
                       "CREATE INDEX sessions_absolute_expiry_idx ON sessions (absolute_expires_at);\n"
                       "CREATE TABLE pending_logins (\n"
                       "  id bigserial PRIMARY KEY,\n"
                       "  state_hash bytea UNIQUE CHECK (length(state_hash) = 32),\n"
                       "  request_token_hash bytea UNIQUE CHECK (length(request_token_hash) = 32),\n"
                       "  integration_id bigint NOT NULL REFERENCES integrations ON DELETE CASCADE,\n"
                       "  code_verifier bytea,\n"
                       "  request_token bytea,\n"
                       "  request_token_secret bytea,\n"
                       "  browser_hash bytea NOT NULL,\n"
                       "  return_to text NOT NULL DEFAULT '/',\n"
                       "  created_at timestamptz NOT NULL DEFAULT now(),\n"
                       "  expires_at timestamptz NOT NULL,\n"
                       "  CHECK (state_hash IS NOT NULL OR request_token_hash IS NOT NULL)\n"
                       ");\n"
                       "CREATE INDEX pending_logins_expiry_idx ON pending_logins (expires_at);\n"
                       "CREATE TABLE tokens (\n"
                       "  identity_id bigint PRIMARY KEY REFERENCES identities ON DELETE CASCADE,\n"
                       "  access_token bytea,\n"
                       "  refresh_token bytea,\n"
                       "  token_secret bytea,\n"
                       "  scope text NOT NULL DEFAULT '',\n"
                       "  expires_at bigint NOT NULL DEFAULT 0,\n"
                       "  generation bigint NOT NULL,\n"
                       "  lease_holder text,\n"
                       "  lease_until timestamptz,\n"
                       "  updated_at timestamptz NOT NULL DEFAULT now()\n"
                       ");\n"
                       "CREATE TABLE settings (\n"
                       "  id integer PRIMARY KEY CHECK (id = 1),\n"
                       "  setup_mode boolean NOT NULL DEFAULT true,\n"
                       "  setup_token_hash bytea,\n"
                       "  updated_at timestamptz NOT NULL DEFAULT now()\n"
                       ");\n"
                       "INSERT INTO settings (id) VALUES (1);\n"
                       "CREATE TABLE audit_log (\n"
                       "  id bigserial PRIMARY KEY,\n"
                       "  at timestamptz NOT NULL DEFAULT now(),\n"
                       "  actor text NOT NULL,\n"
                       "  action text NOT NULL,\n"
                       "  object text NOT NULL DEFAULT '',\n"
                       "  addr text NOT NULL DEFAULT '',\n"
                       "  detail text NOT NULL DEFAULT ''\n"
                       ");\n"
                       "CREATE INDEX audit_log_action_at_idx ON audit_log (action, at);\n"},
    {"access rules per integration, access checks, ended access",
     "CREATE TABLE access_rules (\n"
     "  integration_id bigint PRIMARY KEY REFERENCES integrations ON DELETE CASCADE,\n"
     "  resource text NOT NULL DEFAULT '',\n"
     "  patterns text[] NOT NULL DEFAULT '{}',\n"
     "  contact text NOT NULL DEFAULT '',\n"
     "  updated_at timestamptz NOT NULL DEFAULT now(),\n"
     "  updated_by text NOT NULL DEFAULT ''\n"
     ");\n"
     "CREATE TABLE access_checks (\n"
     "  identity_id bigint PRIMARY KEY REFERENCES identities ON DELETE CASCADE,\n"
     "  checked_at timestamptz NOT NULL DEFAULT now(),\n"
     "  claimed_until timestamptz\n"
     ");\n"
     "CREATE TABLE access_ended (\n"
     "  user_id bigint PRIMARY KEY REFERENCES users ON DELETE CASCADE,\n"
     "  at timestamptz NOT NULL DEFAULT now(),\n"
     "  integration_id bigint,\n"
     "  reason text NOT NULL\n"
     ");\n"
     "CREATE INDEX access_ended_at_idx ON access_ended (at);\n"},
    /* A setup token that was never shown again may still sit in an old log:
     * give it a day, as a new one gets. Repeated failures are one row with
     * a count, so a flood cannot grow the audit log without bound. */
    {"setup token expiry, repeated audit entries, pending logins per browser",
     "ALTER TABLE settings ADD COLUMN setup_token_expires_at timestamptz;\n"
     "UPDATE settings SET setup_token_expires_at = now() + interval '24 hours' WHERE setup_token_hash IS NOT NULL;\n"
     "ALTER TABLE audit_log ADD COLUMN repeats integer NOT NULL DEFAULT 1;\n"
     "ALTER TABLE audit_log ADD COLUMN last_at timestamptz;\n"
     "CREATE INDEX audit_log_repeat_idx ON audit_log (action, addr, at);\n"
     "CREATE INDEX pending_logins_browser_idx ON pending_logins (browser_hash);\n"},
    /* Webs do not know each other: each says here that it is alive, so any
     * web's status page can list them all. */
    {"web instances", "CREATE TABLE web_instances (\n"
                      "  instance text PRIMARY KEY,\n"
                      "  version text NOT NULL,\n"
                      "  ready boolean NOT NULL,\n"
                      "  status text NOT NULL,\n"
                      "  seen_at timestamptz NOT NULL DEFAULT now()\n"
                      ");\n"},
    /* A pending login lives minutes and is used once: it is not worth a
     * write-ahead log record and a disk flush at every login's start (on a
     * 2-core machine that flush and those records were a fifth of
     * PostgreSQL's CPU per login). An unlogged table is emptied when the
     * database server crashes and is empty on a promoted standby: the
     * logins in progress then fail and are started again, and none can be
     * finished twice. Nothing refers to this table. */
    {"pending logins unlogged", "ALTER TABLE pending_logins SET UNLOGGED;\n"},
    /* ...but its foreign key still made every start wait for the disk: the
     * check locks the integration's row, and a row lock is a write-ahead
     * log record. The registry checks the integration itself, keeps the
     * Base URL each login was sent to, and deletes an integration's pending
     * logins with it (handlers_login.c). */
    {"pending logins without a foreign key, with their Base URL",
     "ALTER TABLE pending_logins DROP CONSTRAINT IF EXISTS pending_logins_integration_id_fkey;\n"
     "ALTER TABLE pending_logins ADD COLUMN base_url text NOT NULL DEFAULT '';\n"
     "UPDATE pending_logins p SET base_url = i.base_url FROM integrations i WHERE i.id = p.integration_id;\n"},
    /* The client an address counts as for limits (netaddr_client_key): an
     * IPv6 address's /64, so the wrong setup tokens of one host that takes
     * a new address for every try still add up. Rows written before this
     * have none and are counted by their exact address (handlers_settings.c). */
    {"audit entries keyed by client", "ALTER TABLE audit_log ADD COLUMN client_key text;\n"
                                      "CREATE INDEX audit_log_client_idx ON audit_log (action, client_key, at);\n"},
};

#define MIGRATION_COUNT ((int)(sizeof s_migrations / sizeof s_migrations[0]))

int migrations_latest(void)
{
    return MIGRATION_COUNT;
}

static const char *s_create_table = "CREATE TABLE IF NOT EXISTS schema_migrations (\n"
                                    "  version integer PRIMARY KEY,\n"
                                    "  description text NOT NULL,\n"
                                    "  applied_at timestamptz NOT NULL DEFAULT now()\n"
                                    ")";

static int s_read_version(db_t *db, int *version, char *why, size_t why_size)
{
    PGresult *res = NULL;
    db_rc_t rc = db_exec_sql(db,
                             "SELECT CASE WHEN to_regclass('schema_migrations') IS NULL THEN 0 "
                             "ELSE (SELECT coalesce(max(version), 0) FROM schema_migrations) END AS version",
                             NULL, &res);
    if (rc != DB_OK) {
        snprintf(why, why_size, "could not read the schema version: %s", db_last_error(db));
        return -1;
    }
    *version = (int)db_get_int(res, 0, db_col(res, "version"));
    PQclear(res);
    return 0;
}

int migrations_current(db_t *db, int *version, char *why, size_t why_size)
{
    return s_read_version(db, version, why, why_size);
}

static int s_apply_one(db_t *db, int version, char *why, size_t why_size)
{
    const migration_t *m = &s_migrations[version - 1];
    db_params_t p;
    if (db_begin(db) != DB_OK)
        goto fail;
    if (db_exec_script(db, m->sql) != DB_OK)
        goto fail;
    db_params_init(&p);
    db_param_int(&p, version);
    db_param_text(&p, m->description);
    if (db_exec_sql(db, "INSERT INTO schema_migrations (version, description) VALUES ($1, $2)", &p, NULL) != DB_OK)
        goto fail;
    if (db_commit(db) != DB_OK)
        goto fail;
    log_info("applied schema migration", "version=%d description=\"%s\"", version, m->description);
    return 0;
fail:
    snprintf(why, why_size, "could not apply schema migration %d (%s): %s", version, m->description, db_last_error(db));
    db_rollback(db);
    return -1;
}

int migrations_apply(db_t *db, int *applied, int *version, char *why, size_t why_size)
{
    int rc = -1;
    bool locked = false;
    *applied = 0;
    *version = 0;
    /* Migrations may take longer than a request: no statement timeout here. */
    if (db_set_timeout(db, 0) != DB_OK)
        goto db_fail;
    if (db_lock(db, DB_LOCK_MIGRATE) != DB_OK)
        goto db_fail;
    locked = true;
    if (db_exec_sql(db, s_create_table, NULL, NULL) != DB_OK)
        goto db_fail;
    if (s_read_version(db, version, why, why_size) < 0)
        goto out;
    if (*version > MIGRATION_COUNT) {
        snprintf(why, why_size,
                 "database schema version %d is newer than this portico-registry knows (%d): "
                 "run a portico-registry at least as new as the one that migrated it",
                 *version, MIGRATION_COUNT);
        goto out;
    }
    for (int v = *version + 1; v <= MIGRATION_COUNT; v++) {
        if (s_apply_one(db, v, why, why_size) < 0)
            goto out;
        *version = v;
        (*applied)++;
    }
    rc = 0;
    goto out;
db_fail:
    snprintf(why, why_size, "could not prepare the schema migrations: %s", db_last_error(db));
out:
    if (locked)
        db_unlock(db, DB_LOCK_MIGRATE);
    db_set_timeout(db, -1);
    return rc;
}
