/* users: Portico users with their Bitbucket identities, read the one way
 * every method that answers a User does. */
#ifndef PORTICO_REGISTRY_USERS_H
#define PORTICO_REGISTRY_USERS_H

#include "handlers.h"

#define REG_USER_COLUMNS "id, name, display_name, is_admin, extract(epoch FROM created_at)::bigint AS created_at"

/* The columns of an identity in a result, found by reg_identity_columns. */
enum {
    REG_IDENT_ID,
    REG_IDENT_INTEGRATION_ID,
    REG_IDENT_USER_ID,
    REG_IDENT_BB_USER_ID,
    REG_IDENT_USERNAME,
    REG_IDENT_SLUG,
    REG_IDENT_DISPLAY_NAME,
    REG_IDENT_EMAIL,
    REG_IDENT_INTEGRATION_NAME,
    REG_IDENT_LAST_LOGIN_AT,
    REG_IDENT_NCOLUMNS
};
/* Where the identity columns are (0), or -1 when one is missing. */
int reg_identity_columns(const PGresult *res, int col[REG_IDENT_NCOLUMNS]);
/* Fill an Identity from a row; strings point into res. */
void reg_fill_identity(Portico__Registry__Identity *d, const PGresult *res, int row, const int *col);

/* Users with their identities, as user.get and user.list answer them. */
typedef struct {
    size_t n;
    Portico__Registry__User *users;
    Portico__Registry__User **user_ptrs;
    Portico__Registry__Identity *identities;
    Portico__Registry__Identity **identity_ptrs;
    PGresult *user_res, *identity_res;
} reg_users_t;
/* Users with id > after_id (or exactly only_id), identities attached; the
 * strings point into the results: pack the reply before reg_users_clear. */
db_rc_t reg_users_load(db_t *db, int64_t only_id, int64_t after_id, int limit, reg_users_t *u);
/* Commit the open transaction and load user id as reg_users_load does, in
 * the same round trip when the transaction is batched (db_commit_then).
 * DB_OK only when both succeeded. */
db_rc_t reg_users_commit_load(db_t *db, int64_t id, reg_users_t *u);
void reg_users_clear(reg_users_t *u);

/* A live browser session, as session.lookup answers it: reply points at
 * session and, when asked with_user and the session has one, at the user
 * in users. The strings point into the results: pack the answer before
 * reg_session_found_clear. */
typedef struct {
    Portico__Registry__Session session;
    Portico__Registry__LookupSessionReply reply;
    reg_users_t users;
    PGresult *res, *touched;
} reg_session_found_t;
/* The session whose cookie hashes to token_hash, its idle timeout slid when
 * due. 0, or -1 with reply->err set (BAD_REQUEST, NOT_FOUND "session" or
 * "setup_off", or the database's error). Clear f either way. */
int reg_session_find(reg_ctx_t *c, const ProtobufCBinaryData *token_hash, bool with_user, reg_session_found_t *f,
                     bus_reply_t *reply);
void reg_session_found_clear(reg_session_found_t *f);

#endif
