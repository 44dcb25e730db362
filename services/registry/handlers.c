#include "handlers.h"

#include "log.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const db_stmt_t s_lock_settings = {"settings_lock", "SELECT setup_mode FROM settings WHERE id = 1 FOR UPDATE"};
/* A statement of its own after the lock: a fresh snapshot, which sees an
 * admin revoked by whoever held the lock before. */
static const db_stmt_t s_admin_left = {
    "settings_admin_left",
    "SELECT s.setup_mode OR EXISTS (SELECT 1 FROM users WHERE is_admin) AS ok FROM settings s WHERE s.id = 1"};

db_rc_t reg_lock_settings(db_t *db, bool *setup_mode)
{
    PGresult *res = NULL;
    db_rc_t rc = db_exec(db, &s_lock_settings, NULL, &res);
    if (rc == DB_OK && setup_mode)
        *setup_mode = db_get_bool(res, 0, db_col(res, "setup_mode"));
    PQclear(res);
    return rc;
}

db_rc_t reg_admin_left(db_t *db, bus_reply_t *reply, const char *what, bool *left)
{
    PGresult *res = NULL;
    db_rc_t rc = db_exec(db, &s_admin_left, NULL, &res);
    *left = rc != DB_OK || db_get_bool(res, 0, db_col(res, "ok"));
    PQclear(res);
    if (!*left)
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__CONFLICT, DETAIL(LAST_ADMIN),
                      "%s would remove every Portico admin: the admins log in only through this integration. Make "
                      "someone who logs in through another integration an admin first, or have the operator turn "
                      "Setup Mode on (portico-registry setup-mode on)",
                      what);
    return rc;
}

void reg_reply_empty(bus_reply_t *reply)
{
    Portico__Empty empty = PORTICO__EMPTY__INIT;
    bus_reply_ok(reply, &empty.base);
}

void reg_reply_db(bus_reply_t *reply, db_rc_t rc)
{
    switch (rc) {
    case DB_DOWN:
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__UNAVAILABLE, DETAIL(DATABASE),
                      "the registry's database is not reachable; try again in a moment");
        break;
    case DB_TIMEOUT:
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__TIMEOUT, DETAIL(DATABASE),
                      "the registry's database did not answer in time");
        break;
    default:
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "internal error in the registry");
        break;
    }
}

/* Length of the UTF-8 sequence at p, or 0 when it is not valid. */
static size_t s_utf8_len(const unsigned char *p)
{
    if (p[0] < 0x80)
        return 1;
    size_t n = (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3 : (p[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (!n || (n == 2 && p[0] < 0xc2) || (n == 4 && p[0] > 0xf4))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if (n == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0)))
        return 0; /* overlong or surrogate */
    if (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90)))
        return 0;
    return n;
}

bool reg_check_text(bus_reply_t *reply, int field, const char *label, const char *value, size_t max, int flags)
{
    const char *v = value ? value : "";
    size_t len = strlen(v);
    if (!len && (flags & REG_REQUIRED)) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, field, "%s is required", label);
        return false;
    }
    if (len > max) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, field, "%s must be at most %zu characters", label,
                      max);
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)v; *p;) {
        bool newline = *p == '\n' || *p == '\r' || *p == '\t';
        if ((*p < 0x20 && !(newline && (flags & REG_MULTILINE))) || *p == 0x7f) {
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, field,
                          "%s must not contain control characters", label);
            return false;
        }
        size_t n = s_utf8_len(p);
        if (!n) {
            bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, field, "%s is not valid UTF-8", label);
            return false;
        }
        p += n;
    }
    return true;
}

bool reg_check_hash(bus_reply_t *reply, int field, const ProtobufCBinaryData *h, bool required)
{
    if (h->len == 0 && !required)
        return true;
    if (h->len != 32) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, field, "%s must be a SHA-256 digest (32 bytes)",
                      bus_detail_name(field));
        return false;
    }
    return true;
}

bool reg_check_id(bus_reply_t *reply, int field, int64_t id)
{
    if (id <= 0) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__BAD_REQUEST, field, "%s must be a positive number",
                      bus_detail_name(field));
        return false;
    }
    return true;
}

const char *reg_actor(const char *actor)
{
    return actor && *actor ? actor : "unknown";
}

/* In the order of reg_fill_integration's reads. */
static const char *const s_integration_names[REG_INTEGRATION_NCOLUMNS] = {"integ_id",
                                                                          "integ_platform",
                                                                          "integ_name",
                                                                          "integ_base_url",
                                                                          "integ_oauth_version",
                                                                          "integ_client_id",
                                                                          "integ_has_client_secret",
                                                                          "integ_consumer_key",
                                                                          "integ_public_key_pem",
                                                                          "integ_ca_cert_pem",
                                                                          "integ_enabled",
                                                                          "integ_bitbucket_version",
                                                                          "integ_last_test_result",
                                                                          "integ_last_test_at",
                                                                          "integ_created_at",
                                                                          "integ_updated_at",
                                                                          "integ_created_by",
                                                                          "integ_updated_by",
                                                                          "integ_identity_count"};

reg_integration_cols_t reg_integration_columns(const PGresult *res)
{
    reg_integration_cols_t c;
    int rc = db_columns(res, s_integration_names, REG_INTEGRATION_NCOLUMNS, c.col);
    assert(rc == 0 && "a query selects REG_INTEGRATION_COLUMNS without one of them");
    (void)rc;
    return c;
}

void reg_fill_integration(Portico__Registry__Integration *out, const PGresult *res, int row,
                          const reg_integration_cols_t *cols)
{
    const int *f = cols->col;
    portico__registry__integration__init(out);
    out->id = db_get_int(res, row, f[0]);
    out->platform = REG_STR(db_get_text(res, row, f[1]));
    out->name = REG_STR(db_get_text(res, row, f[2]));
    out->base_url = REG_STR(db_get_text(res, row, f[3]));
    out->oauth_version = (int32_t)db_get_int(res, row, f[4]);
    out->client_id = REG_STR(db_get_text(res, row, f[5]));
    out->has_client_secret = db_get_bool(res, row, f[6]);
    out->consumer_key = REG_STR(db_get_text(res, row, f[7]));
    out->public_key_pem = REG_STR(db_get_text(res, row, f[8]));
    out->ca_cert_pem = REG_STR(db_get_text(res, row, f[9]));
    out->enabled = db_get_bool(res, row, f[10]);
    out->bitbucket_version = REG_STR(db_get_text(res, row, f[11]));
    out->last_test_result = REG_STR(db_get_text(res, row, f[12]));
    out->last_test_at = db_get_int(res, row, f[13]);
    out->created_at = db_get_int(res, row, f[14]);
    out->updated_at = db_get_int(res, row, f[15]);
    out->created_by = REG_STR(db_get_text(res, row, f[16]));
    out->updated_by = REG_STR(db_get_text(res, row, f[17]));
    out->identity_count = db_get_int(res, row, f[18]);
}

void reg_reply_audit_entries(bus_reply_t *reply, const PGresult *res)
{
    int rows = PQntuples(res);
    Portico__Registry__AuditEntry *items = calloc((size_t)rows + 1, sizeof *items);
    Portico__Registry__AuditEntry **ptrs = calloc((size_t)rows + 1, sizeof *ptrs);
    if (!items || !ptrs) {
        bus_error_set(&reply->err, PORTICO__ERROR_CODE__INTERNAL, DETAIL(NONE), "out of memory");
        goto out;
    }
    const int c_id = db_col(res, "id"), c_at = db_col(res, "at_ms"), c_actor = db_col(res, "actor"),
              c_action = db_col(res, "action"), c_object = db_col(res, "object"), c_addr = db_col(res, "addr"),
              c_detail = db_col(res, "detail");
    for (int i = 0; i < rows; i++) {
        Portico__Registry__AuditEntry *e = &items[i];
        portico__registry__audit_entry__init(e);
        e->id = db_get_int(res, i, c_id);
        e->at = db_get_int(res, i, c_at);
        e->actor = REG_STR(db_get_text(res, i, c_actor));
        e->action = REG_STR(db_get_text(res, i, c_action));
        e->object = REG_STR(db_get_text(res, i, c_object));
        e->addr = REG_STR(db_get_text(res, i, c_addr));
        e->detail = REG_STR(db_get_text(res, i, c_detail));
        ptrs[i] = e;
    }
    Portico__Registry__ListAuditReply out = PORTICO__REGISTRY__LIST_AUDIT_REPLY__INIT;
    out.n_entries = (size_t)rows;
    out.entries = ptrs;
    bus_reply_ok(reply, &out.base);
out:
    free(items);
    free(ptrs);
}
