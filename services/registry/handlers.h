/* handlers: the registry's bus API, one function per method.
 *
 * Every handler runs on a worker thread with that worker's own database
 * connection (reg_ctx_t); nothing mutable is shared between workers. Each
 * one validates its request, runs parameterised SQL, and answers with
 * bus_reply_ok or a typed error. Methods whose request message has no
 * reply message of its own answer portico.Empty unless noted in the proto. */
#ifndef PORTICO_REGISTRY_HANDLERS_H
#define PORTICO_REGISTRY_HANDLERS_H

#include "bus.h"
#include "crypto.h"
#include "db.h"
#include "options.h"
#include "registry.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    db_t *db;
    const crypto_keyring_t *keys; /* may be NULL in CLI commands that need no secret */
    const reg_options_t *opts;
} reg_ctx_t;

/* The one dispatch table: method name -> request type -> handler. */

/* protobuf-c wants char * for strings it only reads. */
#define REG_STR(s) ((char *)(uintptr_t)(s))

/* ---- helpers shared by the handler files ---- */

enum { REG_OPTIONAL = 0, REG_REQUIRED = 1, REG_MULTILINE = 2 };

/* Answer OK with portico.Empty. */
void reg_reply_empty(bus_reply_t *reply);
/* Answer a database failure: UNAVAILABLE, TIMEOUT or INTERNAL. */
void reg_reply_db(bus_reply_t *reply, db_rc_t rc);
/* Lock the settings row for the rest of the transaction, and say whether
 * Setup Mode is on (setup_mode may be NULL). Whatever can change who the
 * admins are takes it, so that "there is an admin" stays true while it
 * acts. Take it after an integration's row lock, never before: a login
 * holds its integration's key, then the settings row. */
db_rc_t reg_lock_settings(db_t *db, bool *setup_mode);
/* Under that lock, after the change: whether someone can still administer
 * Portico, an admin or Setup Mode. When not, answers CONFLICT LAST_ADMIN
 * with why (what names the change) and sets *left false. */
db_rc_t reg_admin_left(db_t *db, bus_reply_t *reply, const char *what, bool *left);
/* Reply with the audit entries of res (columns id, at_ms, actor, action,
 * object, addr, detail): audit.list and access.refused. */
void reg_reply_audit_entries(bus_reply_t *reply, const PGresult *res);
/* Valid UTF-8, no control characters (newlines allowed with MULTILINE),
 * at most max bytes, present when REQUIRED; else BAD_REQUEST with detail
 * set to field and label naming it in the message. */
bool reg_check_text(bus_reply_t *reply, int field, const char *label, const char *value, size_t max, int flags);
/* A SHA-256 digest: exactly 32 bytes (or empty when not required). */
bool reg_check_hash(bus_reply_t *reply, int field, const ProtobufCBinaryData *h, bool required);
bool reg_check_id(bus_reply_t *reply, int field, int64_t id);
/* The actor recorded in the audit log for a request. */
const char *reg_actor(const char *actor);
/* The longest actor an audited change may name: an admin's user name, which
 * user.login takes up to 255 bytes long, or a word such as "setup-token". */
#define REG_MAX_ACTOR 255

/* An integration's columns, each named (integ_*): they are read by name, so
 * a column added to a query cannot shift what is read. */
#define REG_INTEGRATION_BASE_COLUMNS                                                                                   \
    "i.id AS integ_id, i.platform AS integ_platform, i.name AS integ_name, i.base_url AS integ_base_url, "             \
    "i.oauth_version AS integ_oauth_version, i.client_id AS integ_client_id, "                                         \
    "i.client_secret IS NOT NULL AS integ_has_client_secret, i.consumer_key AS integ_consumer_key, "                   \
    "i.public_key_pem AS integ_public_key_pem, i.ca_cert_pem AS integ_ca_cert_pem, i.enabled AS integ_enabled, "       \
    "i.bitbucket_version AS integ_bitbucket_version, i.last_test_result AS integ_last_test_result, "                   \
    "coalesce(extract(epoch FROM i.last_test_at)::bigint, 0) AS integ_last_test_at, "                                  \
    "extract(epoch FROM i.created_at)::bigint AS integ_created_at, "                                                   \
    "extract(epoch FROM i.updated_at)::bigint AS integ_updated_at, i.created_by AS integ_created_by, "                 \
    "i.updated_by AS integ_updated_by"
#define REG_INTEGRATION_COLUMNS                                                                                        \
    REG_INTEGRATION_BASE_COLUMNS                                                                                       \
    ", (SELECT count(*) FROM identities d WHERE d.integration_id = i.id) AS integ_identity_count"
/* For the login path: counting an integration's identities costs a scan of
 * them, and the broker never shows the count. */
#define REG_INTEGRATION_COLUMNS_NO_COUNT REG_INTEGRATION_BASE_COLUMNS ", 0::bigint AS integ_identity_count"
#define REG_INTEGRATION_NCOLUMNS 19
/* An integration's two sealed secrets, read by reg_open_integration_secrets. */
#define REG_INTEGRATION_SECRET_COLUMNS "i.client_secret AS integ_client_secret, i.private_key AS integ_private_key"
/* Where an integration's columns are in one result. */
typedef struct {
    int col[REG_INTEGRATION_NCOLUMNS];
} reg_integration_cols_t;
/* Find them by name, once per result. Every query that selects
 * REG_INTEGRATION_COLUMNS has them all: a missing one is a programming
 * error and stops the process (the log line names the column). */
reg_integration_cols_t reg_integration_columns(const PGresult *res);
/* Fill an Integration from a row; strings point into res, so pack the
 * reply before clearing it. */
void reg_fill_integration(Portico__Registry__Integration *out, const PGresult *res, int row,
                          const reg_integration_cols_t *cols);
/* Decrypt an integration's client secret and private key from the two
 * sealed columns of REG_INTEGRATION_SECRET_COLUMNS. 0, or -1 (logged) when
 * they do not open with the configured key (err says so: INTERNAL, KEY);
 * free both with secrets_free. */
int reg_open_integration_secrets(const crypto_keyring_t *keys, int64_t id, const PGresult *res, int row,
                                 char **client_secret, char **private_key, bus_error_t *err);

/* The stored tokens of a row with the columns access_token, refresh_token,
 * token_secret (sealed), scope and expires_at, opened into t. 0, or -1
 * (logged) when they do not open with the configured key. The three
 * secrets are in opened: wipe and free them with reg_close_tokens. */
int reg_open_tokens(const crypto_keyring_t *keys, int64_t identity_id, const PGresult *res, int row,
                    Portico__Registry__Tokens *t, char *opened[3]);
void reg_close_tokens(char *opened[3]);

/* Checks and the insert of a new session, for user.login and the setup token.
 * reg_check_session answers BAD_REQUEST itself and gives the timeouts to use. */
bool reg_check_session(bus_reply_t *reply, const Portico__Registry__CreateSessionRequest *r, int *idle, int *absolute);
/* The pending login a user.login finishes, as the statement that deletes
 * it (in the login's transaction) finds it: by its state hash (*by_state)
 * or by the request token's hash, into key. false when r cannot name a live
 * pending login of this browser and integration_id: nothing to look for. */
bool reg_pending_finish_key(const Portico__Registry__ConsumePendingRequest *r, int64_t integration_id, uint8_t key[32],
                            bool *by_state);
/* A user's session. It asks for no result: in a batched transaction (the
 * login's) it goes out with the next statement that is read, and its
 * failure (such as a token hash already in use, DB_UNIQUE) comes back from
 * that statement or the commit. */
db_rc_t reg_session_insert_user(db_t *db, const Portico__Registry__CreateSessionRequest *r, int64_t user_id, int idle,
                                int absolute);
/* A Setup Mode session opened with the setup token whose SHA-256 is
 * token_hash; *started is false when it was refused: Setup Mode off, or
 * that token no longer the current one or expired. The settings row is
 * read FOR SHARE: a new token being issued (which ends every Setup Mode
 * session) either waits for this session, and then ends it, or makes this
 * insert see the new token and refuse. */
db_rc_t reg_session_insert_setup(db_t *db, const Portico__Registry__CreateSessionRequest *r, int idle, int absolute,
                                 const uint8_t token_hash[32], bool *started);

/* Checks and the upsert behind token.store, shared with user.login.
 * reg_check_tokens answers BAD_REQUEST itself; reg_tokens_store answers
 * INTERNAL itself when the tokens cannot be sealed (and returns DB_FAIL). */
bool reg_check_tokens(const Portico__Registry__Tokens *t, bus_reply_t *reply);
db_rc_t reg_tokens_store(reg_ctx_t *c, int64_t identity_id, const Portico__Registry__Tokens *t, bus_reply_t *reply);

/* ---- integration.* (handlers_integration.c) ---- */
void h_integration_reserve_id(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_integration_create(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_integration_get(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_integration_list(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_integration_update(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_integration_delete(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_integration_set_test_result(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);

/* ---- user.* (handlers_user.c) ---- */
void h_user_login(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_user_get(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_user_list(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_user_credentials(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_user_set_admin(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);

/* ---- instance.* (handlers_instance.c) ---- */
void h_instance_report(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_instance_list(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);

/* ---- session.* (handlers_session.c) ---- */
void h_session_lookup(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_session_delete(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_session_delete_user(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);

/* ---- pending.* and token.* (handlers_login.c) ---- */
void h_pending_create(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_pending_consume(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_token_store(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_token_get(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_token_lease(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_token_replace(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_token_release(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);

/* ---- settings.* and audit.* (handlers_settings.c) ---- */
void h_settings_get(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_settings_check_setup_token(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_settings_set_setup_mode(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_audit_append(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);
void h_audit_list(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);

#endif
