/* Users with their Bitbucket identities, loaded for user.get, user.list,
 * user.login's answer and session.lookup's with_user. */
#include "users.h"

#include "log.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const db_stmt_t s_identities = {
    "user_identities",
    "SELECT d.id, d.integration_id, d.user_id, d.bb_user_id, d.username, d.slug, d.display_name, d.email, "
    "i.name AS integration_name, extract(epoch FROM d.last_login_at)::bigint AS last_login_at "
    "FROM identities d JOIN integrations i ON i.id = d.integration_id "
    "WHERE d.user_id = ANY($1::bigint[]) ORDER BY d.user_id, d.id"};
static const db_stmt_t s_users_after = {"user_list",
                                        "SELECT " REG_USER_COLUMNS " FROM users WHERE id > $1 ORDER BY id LIMIT $2"};
/* One user and their identities in one statement: a row per identity, or
 * one with NULL identity columns when there is none. */
static const db_stmt_t s_user_whole = {
    "user_whole",
    "SELECT u.id AS u_id, u.name AS u_name, u.display_name AS u_display_name, u.is_admin AS u_is_admin, "
    "extract(epoch FROM u.created_at)::bigint AS u_created_at, "
    "d.id, d.integration_id, d.user_id, d.bb_user_id, d.username, d.slug, d.display_name, d.email, "
    "i.name AS integration_name, extract(epoch FROM d.last_login_at)::bigint AS last_login_at "
    "FROM users u LEFT JOIN identities d ON d.user_id = u.id LEFT JOIN integrations i ON i.id = d.integration_id "
    "WHERE u.id = $1 ORDER BY d.id"};
void reg_users_clear(reg_users_t *u)
{
    free(u->users);
    free(u->user_ptrs);
    free(u->identities);
    free(u->identity_ptrs);
    PQclear(u->user_res);
    PQclear(u->identity_res);
    memset(u, 0, sizeof *u);
}

static const char *const s_identity_names[REG_IDENT_NCOLUMNS] = {
    [REG_IDENT_ID] = "id",
    [REG_IDENT_INTEGRATION_ID] = "integration_id",
    [REG_IDENT_USER_ID] = "user_id",
    [REG_IDENT_BB_USER_ID] = "bb_user_id",
    [REG_IDENT_USERNAME] = "username",
    [REG_IDENT_SLUG] = "slug",
    [REG_IDENT_DISPLAY_NAME] = "display_name",
    [REG_IDENT_EMAIL] = "email",
    [REG_IDENT_INTEGRATION_NAME] = "integration_name",
    [REG_IDENT_LAST_LOGIN_AT] = "last_login_at",
};

int reg_identity_columns(const PGresult *res, int col[REG_IDENT_NCOLUMNS])
{
    return db_columns(res, s_identity_names, REG_IDENT_NCOLUMNS, col);
}

void reg_fill_identity(Portico__Registry__Identity *d, const PGresult *res, int row, const int *col)
{
    portico__registry__identity__init(d);
    d->id = db_get_int(res, row, col[REG_IDENT_ID]);
    d->integration_id = db_get_int(res, row, col[REG_IDENT_INTEGRATION_ID]);
    d->user_id = db_get_int(res, row, col[REG_IDENT_USER_ID]);
    d->bb_user_id = db_get_int(res, row, col[REG_IDENT_BB_USER_ID]);
    d->username = REG_STR(db_get_text(res, row, col[REG_IDENT_USERNAME]));
    d->slug = REG_STR(db_get_text(res, row, col[REG_IDENT_SLUG]));
    d->display_name = REG_STR(db_get_text(res, row, col[REG_IDENT_DISPLAY_NAME]));
    d->email = REG_STR(db_get_text(res, row, col[REG_IDENT_EMAIL]));
    d->integration_name = REG_STR(db_get_text(res, row, col[REG_IDENT_INTEGRATION_NAME]));
    d->last_login_at = db_get_int(res, row, col[REG_IDENT_LAST_LOGIN_AT]);
}

/* user.get's case, the hot one (every login's answer, the account page):
 * one round trip to the database instead of two. */
static db_rc_t s_load_one(db_t *db, int64_t id, bool commit, reg_users_t *u)
{
    db_params_t p;
    db_params_init(&p);
    db_param_int(&p, id);
    db_rc_t rc =
        commit ? db_commit_then(db, &s_user_whole, &p, &u->user_res) : db_exec(db, &s_user_whole, &p, &u->user_res);
    if (rc != DB_OK)
        return rc;
    const PGresult *res = u->user_res;
    size_t rows = (size_t)PQntuples(res);
    if (rows == 0)
        return DB_OK;
    int col[REG_IDENT_NCOLUMNS];
    if (reg_identity_columns(res, col) < 0) {
        reg_users_clear(u);
        return DB_FAIL;
    }
    size_t n = db_get_null(res, 0, col[REG_IDENT_ID]) ? 0 : rows;
    u->users = calloc(1, sizeof *u->users);
    u->user_ptrs = calloc(2, sizeof *u->user_ptrs);
    u->identities = calloc(n + 1, sizeof *u->identities);
    u->identity_ptrs = calloc(n + 1, sizeof *u->identity_ptrs);
    if (!u->users || !u->user_ptrs || !u->identities || !u->identity_ptrs) {
        log_error("out of memory", NULL);
        reg_users_clear(u);
        return DB_FAIL;
    }
    Portico__Registry__User *user = &u->users[0];
    portico__registry__user__init(user);
    user->id = db_get_int(res, 0, db_col(res, "u_id"));
    user->name = REG_STR(db_get_text(res, 0, db_col(res, "u_name")));
    user->display_name = REG_STR(db_get_text(res, 0, db_col(res, "u_display_name")));
    user->is_admin = db_get_bool(res, 0, db_col(res, "u_is_admin"));
    user->created_at = db_get_int(res, 0, db_col(res, "u_created_at"));
    for (size_t k = 0; k < n; k++) {
        reg_fill_identity(&u->identities[k], res, (int)k, col);
        u->identity_ptrs[k] = &u->identities[k];
    }
    user->identities = u->identity_ptrs;
    user->n_identities = n;
    u->user_ptrs[0] = user;
    u->n = 1;
    return DB_OK;
}

db_rc_t reg_users_commit_load(db_t *db, int64_t id, reg_users_t *u)
{
    memset(u, 0, sizeof *u);
    return s_load_one(db, id, true, u);
}

db_rc_t reg_users_load(db_t *db, int64_t only_id, int64_t after_id, int limit, reg_users_t *u)
{
    db_params_t p;
    db_rc_t rc;
    char *ids = NULL;
    memset(u, 0, sizeof *u);
    if (only_id)
        return s_load_one(db, only_id, false, u);
    db_params_init(&p);
    db_param_int(&p, after_id);
    db_param_int(&p, limit);
    rc = db_exec(db, &s_users_after, &p, &u->user_res);
    if (rc != DB_OK)
        return rc;
    u->n = (size_t)PQntuples(u->user_res);
    ids = malloc(u->n * 21 + 3);
    u->users = calloc(u->n + 1, sizeof *u->users);
    u->user_ptrs = calloc(u->n + 1, sizeof *u->user_ptrs);
    if (!ids || !u->users || !u->user_ptrs)
        goto oom;
    size_t o = 0;
    ids[o++] = '{';
    const int c_id = db_col(u->user_res, "id"), c_name = db_col(u->user_res, "name"),
              c_display_name = db_col(u->user_res, "display_name"), c_is_admin = db_col(u->user_res, "is_admin"),
              c_created_at = db_col(u->user_res, "created_at");
    for (size_t i = 0; i < u->n; i++) {
        Portico__Registry__User *user = &u->users[i];
        portico__registry__user__init(user);
        user->id = db_get_int(u->user_res, (int)i, c_id);
        user->name = REG_STR(db_get_text(u->user_res, (int)i, c_name));
        user->display_name = REG_STR(db_get_text(u->user_res, (int)i, c_display_name));
        user->is_admin = db_get_bool(u->user_res, (int)i, c_is_admin);
        user->created_at = db_get_int(u->user_res, (int)i, c_created_at);
        u->user_ptrs[i] = user;
        o += (size_t)sprintf(ids + o, "%s%" PRId64, i ? "," : "", user->id);
    }
    ids[o++] = '}';
    ids[o] = '\0';

    db_params_init(&p);
    db_param_text(&p, ids);
    if ((rc = db_exec(db, &s_identities, &p, &u->identity_res)) != DB_OK)
        goto out;
    size_t n = (size_t)PQntuples(u->identity_res);
    u->identities = calloc(n + 1, sizeof *u->identities);
    u->identity_ptrs = calloc(n + 1, sizeof *u->identity_ptrs);
    if (!u->identities || !u->identity_ptrs)
        goto oom;
    int col[REG_IDENT_NCOLUMNS];
    int found = reg_identity_columns(u->identity_res, col);
    assert(found == 0 && "s_identities lacks a column s_fill_identity reads");
    (void)found;
    /* Both lists are ordered by user id: attach each run of identities. */
    size_t k = 0;
    for (size_t i = 0; i < u->n; i++) {
        Portico__Registry__User *user = &u->users[i];
        user->identities = &u->identity_ptrs[k];
        while (k < n && db_get_int(u->identity_res, (int)k, col[REG_IDENT_USER_ID]) == user->id) {
            reg_fill_identity(&u->identities[k], u->identity_res, (int)k, col);
            u->identity_ptrs[k] = &u->identities[k];
            user->n_identities++;
            k++;
        }
    }
    rc = DB_OK;
    goto out;
oom:
    log_error("out of memory", NULL);
    rc = DB_FAIL;
out:
    free(ids);
    if (rc != DB_OK)
        reg_users_clear(u);
    return rc;
}
