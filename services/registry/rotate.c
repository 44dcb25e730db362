#include "rotate.h"

#include "log.h"
#include "secrets.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 100

/* Identifiers come from this table only, never from input. */
typedef struct {
    const char *label;
    const char *table;    /* SQL table */
    const char *pk;       /* bigint primary key */
    const char *row_expr; /* the row part of the additional data */
    const char *aad_name; /* the table part of the additional data */
    const char *column;
} sealed_column_t;

#define PENDING_ROW "coalesce(encode(state_hash, 'hex'), 'rt-' || encode(request_token_hash, 'hex'))"

static const sealed_column_t s_columns[ROTATE_COLUMNS] = {
    {"integrations.client_secret", "integrations", "id", "id::text", "integration", "client_secret"},
    {"integrations.private_key", "integrations", "id", "id::text", "integration", "private_key"},
    {"tokens.access_token", "tokens", "identity_id", "identity_id::text", "token", "access_token"},
    {"tokens.refresh_token", "tokens", "identity_id", "identity_id::text", "token", "refresh_token"},
    {"tokens.token_secret", "tokens", "identity_id", "identity_id::text", "token", "token_secret"},
    {"pending_logins.code_verifier", "pending_logins", "id", PENDING_ROW, "pending", "code_verifier"},
    {"pending_logins.request_token", "pending_logins", "id", PENDING_ROW, "pending", "request_token"},
    {"pending_logins.request_token_secret", "pending_logins", "id", PENDING_ROW, "pending", "request_token_secret"},
};

/* The 4-byte key id as stored in a sealed value (after the version byte). */
static void s_key_id_bytes(uint32_t id, uint8_t out[4])
{
    out[0] = (uint8_t)(id >> 24);
    out[1] = (uint8_t)(id >> 16);
    out[2] = (uint8_t)(id >> 8);
    out[3] = (uint8_t)id;
}

/* Re-seal one value if it is still what we read. */
static db_rc_t s_reseal(db_t *db, const crypto_keyring_t *keys, const sealed_column_t *c, const PGresult *res, int row,
                        rotate_count_t *count)
{
    char aad[200], sql[300];
    size_t old_n = 0, new_n = 0;
    uint8_t *old = db_get_bytes(res, row, db_col(res, "sealed"), &old_n), *fresh = NULL;
    int64_t pk = db_get_int(res, row, db_col(res, "pk"));
    db_rc_t rc = DB_OK;
    secrets_aad(aad, sizeof aad, c->aad_name, db_get_text(res, row, db_col(res, "row_key")), c->column);
    char *plain = secrets_open(keys, old, old_n, aad);
    if (!plain) {
        log_warn("could not open a secret with any configured key", "table=%s column=%s row=%" PRId64, c->table,
                 c->column, pk);
        count->failed++;
        goto out;
    }
    if (secrets_seal(keys, plain, aad, &fresh, &new_n) < 0 || !fresh) {
        count->failed++;
        goto out;
    }
    snprintf(sql, sizeof sql, "UPDATE %s SET %s = $1 WHERE %s = $2 AND %s = $3", c->table, c->column, c->pk, c->column);
    db_params_t p;
    db_params_init(&p);
    db_param_bytes(&p, fresh, new_n);
    db_param_int(&p, pk);
    db_param_bytes(&p, old, old_n);
    PGresult *upd = NULL;
    if ((rc = db_exec_sql(db, sql, &p, &upd)) != DB_OK)
        goto out;
    if (strcmp(PQcmdTuples(upd), "1") == 0)
        count->resealed++;
    else
        count->changed++;
    PQclear(upd);
out:
    secrets_free(plain);
    secrets_free_sealed(fresh, new_n);
    free(old);
    return rc;
}

static db_rc_t s_rotate_column(db_t *db, const crypto_keyring_t *keys, const sealed_column_t *c,
                               const uint8_t key_id[4], rotate_count_t *count)
{
    char sql[600];
    db_params_t p;
    db_rc_t rc;
    PGresult *res = NULL;

    snprintf(sql, sizeof sql,
             "SELECT count(*) AS n_current FROM %s WHERE %s IS NOT NULL AND substring(%s FROM 2 FOR 4) = $1", c->table,
             c->column, c->column);
    db_params_init(&p);
    db_param_bytes(&p, key_id, 4);
    if ((rc = db_exec_sql(db, sql, &p, &res)) != DB_OK)
        return rc;
    count->current = (long)db_get_int(res, 0, db_col(res, "n_current"));
    PQclear(res);

    snprintf(sql, sizeof sql,
             "SELECT %s AS pk, %s AS row_key, %s AS sealed FROM %s "
             "WHERE %s IS NOT NULL AND substring(%s FROM 2 FOR 4) <> $1 AND %s > $2 ORDER BY 1 LIMIT %d",
             c->pk, c->row_expr, c->column, c->table, c->column, c->column, c->pk, BATCH);
    int64_t after = -1;
    for (;;) {
        db_params_init(&p);
        db_param_bytes(&p, key_id, 4);
        db_param_int(&p, after);
        if ((rc = db_exec_sql(db, sql, &p, &res)) != DB_OK)
            return rc;
        int rows = PQntuples(res);
        for (int i = 0; i < rows && rc == DB_OK; i++)
            rc = s_reseal(db, keys, c, res, i, count);
        if (rows > 0)
            after = db_get_int(res, rows - 1, db_col(res, "pk"));
        PQclear(res);
        if (rc != DB_OK)
            return rc;
        if (rows < BATCH)
            return DB_OK;
    }
}

int rotate_keys(db_t *db, const crypto_keyring_t *keys, rotate_count_t counts[ROTATE_COLUMNS])
{
    uint8_t key_id[4];
    s_key_id_bytes(crypto_keyring_primary_id(keys), key_id);
    for (int i = 0; i < ROTATE_COLUMNS; i++) {
        memset(&counts[i], 0, sizeof counts[i]);
        counts[i].label = s_columns[i].label;
    }
    for (int i = 0; i < ROTATE_COLUMNS; i++)
        if (s_rotate_column(db, keys, &s_columns[i], key_id, &counts[i]) != DB_OK)
            return -1;
    return 0;
}

int rotate_census(db_t *db, const crypto_keyring_t *keys, rotate_count_t counts[ROTATE_COLUMNS])
{
    for (int i = 0; i < ROTATE_COLUMNS; i++) {
        const sealed_column_t *c = &s_columns[i];
        memset(&counts[i], 0, sizeof counts[i]);
        counts[i].label = c->label;
        char sql[300];
        snprintf(sql, sizeof sql,
                 "SELECT substring(%s FROM 2 FOR 4) AS key_id, count(*) AS n FROM %s WHERE %s IS NOT NULL GROUP BY 1",
                 c->column, c->table, c->column);
        PGresult *res = NULL;
        if (db_exec_sql(db, sql, NULL, &res) != DB_OK)
            return -1;
        for (int row = 0; row < PQntuples(res); row++) {
            size_t n = 0;
            uint8_t *id = db_get_bytes(res, row, db_col(res, "key_id"), &n);
            long values = (long)db_get_int(res, row, db_col(res, "n"));
            bool known =
                id && n == 4 &&
                crypto_keyring_has(keys, (uint32_t)id[0] << 24 | (uint32_t)id[1] << 16 | (uint32_t)id[2] << 8 | id[3]);
            if (known)
                counts[i].current += values;
            else
                counts[i].failed += values;
            free(id);
        }
        PQclear(res);
    }
    return 0;
}
