#include "handlers.h"
#include "handlers_access.h"

#include "log.h"

#include <stdio.h>
#include <string.h>

#define R(name, type, fn)                                                                                              \
    {                                                                                                                  \
        name, type, fn                                                                                                 \
    }

const bus_route_t reg_routes[] = {
    R("integration.reserve_id", NULL, h_integration_reserve_id),
    R("integration.create", &portico__registry__create_integration_request__descriptor, h_integration_create),
    R("integration.get", &portico__registry__get_integration_request__descriptor, h_integration_get),
    R("integration.list", &portico__registry__list_integrations_request__descriptor, h_integration_list),
    R("integration.update", &portico__registry__update_integration_request__descriptor, h_integration_update),
    R("integration.delete", &portico__registry__delete_integration_request__descriptor, h_integration_delete),
    R("integration.set_test_result", &portico__registry__set_test_result_request__descriptor,
      h_integration_set_test_result),
    R("user.login", &portico__registry__login_request__descriptor, h_user_login),
    R("user.get", &portico__registry__get_user_request__descriptor, h_user_get),
    R("user.list", &portico__registry__list_users_request__descriptor, h_user_list),
    R("user.set_admin", &portico__registry__set_admin_request__descriptor, h_user_set_admin),
    R("session.create", &portico__registry__create_session_request__descriptor, h_session_create),
    R("session.lookup", &portico__registry__lookup_session_request__descriptor, h_session_lookup),
    R("session.delete", &portico__registry__delete_session_request__descriptor, h_session_delete),
    R("session.delete_user", &portico__registry__delete_user_sessions_request__descriptor, h_session_delete_user),
    R("pending.create", &portico__registry__create_pending_request__descriptor, h_pending_create),
    R("pending.consume", &portico__registry__consume_pending_request__descriptor, h_pending_consume),
    R("token.store", &portico__registry__store_tokens_request__descriptor, h_token_store),
    R("token.get", &portico__registry__get_tokens_request__descriptor, h_token_get),
    R("token.lease", &portico__registry__lease_tokens_request__descriptor, h_token_lease),
    R("token.replace", &portico__registry__replace_tokens_request__descriptor, h_token_replace),
    R("token.release", &portico__registry__release_tokens_request__descriptor, h_token_release),
    R("settings.get", NULL, h_settings_get),
    R("settings.check_setup_token", &portico__registry__check_setup_token_request__descriptor,
      h_settings_check_setup_token),
    R("settings.set_setup_mode", &portico__registry__set_setup_mode_request__descriptor, h_settings_set_setup_mode),
    R("audit.append", &portico__registry__append_audit_request__descriptor, h_audit_append),
    R("audit.list", &portico__registry__list_audit_request__descriptor, h_audit_list),
    R("access.get", &portico__registry__get_access_request__descriptor, h_access_get),
    R("access.set", &portico__registry__set_access_request__descriptor, h_access_set),
    R("access.due", &portico__registry__due_access_request__descriptor, h_access_due),
    R("access.result", &portico__registry__access_result_request__descriptor, h_access_result),
    R("access.ended", &portico__registry__list_access_ended_request__descriptor, h_access_ended),
    R("access.refused", &portico__registry__list_refused_request__descriptor, h_access_refused),
    R("access.list", NULL, h_access_list),
    {NULL, NULL, NULL},
};

void reg_reply_empty(bus_reply_t *reply)
{
    Portico__Empty empty = PORTICO__EMPTY__INIT;
    bus_reply_ok(reply, &empty.base);
}

void reg_reply_db(bus_reply_t *reply, db_rc_t rc)
{
    switch (rc) {
    case DB_DOWN:
        bus_reply_error(reply, PORTICO__ERROR_CODE__UNAVAILABLE, "database",
                        "the registry's database is not reachable; try again in a moment");
        break;
    case DB_TIMEOUT:
        bus_reply_error(reply, PORTICO__ERROR_CODE__TIMEOUT, "database",
                        "the registry's database did not answer in time");
        break;
    default:
        bus_reply_error(reply, PORTICO__ERROR_CODE__INTERNAL, "", "internal error in the registry");
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

bool reg_check_text(bus_reply_t *reply, const char *field, const char *label, const char *value, size_t max, int flags)
{
    const char *v = value ? value : "";
    size_t len = strlen(v);
    if (!len && (flags & REG_REQUIRED)) {
        bus_reply_error(reply, PORTICO__ERROR_CODE__BAD_REQUEST, field, "%s is required", label);
        return false;
    }
    if (len > max) {
        bus_reply_error(reply, PORTICO__ERROR_CODE__BAD_REQUEST, field, "%s must be at most %zu characters", label,
                        max);
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)v; *p;) {
        bool newline = *p == '\n' || *p == '\r' || *p == '\t';
        if ((*p < 0x20 && !(newline && (flags & REG_MULTILINE))) || *p == 0x7f) {
            bus_reply_error(reply, PORTICO__ERROR_CODE__BAD_REQUEST, field, "%s must not contain control characters",
                            label);
            return false;
        }
        size_t n = s_utf8_len(p);
        if (!n) {
            bus_reply_error(reply, PORTICO__ERROR_CODE__BAD_REQUEST, field, "%s is not valid UTF-8", label);
            return false;
        }
        p += n;
    }
    return true;
}

bool reg_check_hash(bus_reply_t *reply, const char *field, const ProtobufCBinaryData *h, bool required)
{
    if (h->len == 0 && !required)
        return true;
    if (h->len != 32) {
        bus_reply_error(reply, PORTICO__ERROR_CODE__BAD_REQUEST, field, "%s must be a SHA-256 digest (32 bytes)",
                        field);
        return false;
    }
    return true;
}

bool reg_check_id(bus_reply_t *reply, const char *field, int64_t id)
{
    if (id <= 0) {
        bus_reply_error(reply, PORTICO__ERROR_CODE__BAD_REQUEST, field, "%s must be a positive number", field);
        return false;
    }
    return true;
}

const char *reg_actor(const char *actor)
{
    return actor && *actor ? actor : "unknown";
}

void reg_fill_integration_at(Portico__Registry__Integration *out, const PGresult *res, int row, int first)
{
    const int f = first;
    portico__registry__integration__init(out);
    out->id = db_get_int(res, row, f + 0);
    out->platform = REG_STR(db_get_text(res, row, f + 1));
    out->name = REG_STR(db_get_text(res, row, f + 2));
    out->base_url = REG_STR(db_get_text(res, row, f + 3));
    out->oauth_version = (int32_t)db_get_int(res, row, f + 4);
    out->client_id = REG_STR(db_get_text(res, row, f + 5));
    out->has_client_secret = db_get_bool(res, row, f + 6);
    out->consumer_key = REG_STR(db_get_text(res, row, f + 7));
    out->public_key_pem = REG_STR(db_get_text(res, row, f + 8));
    out->ca_cert_pem = REG_STR(db_get_text(res, row, f + 9));
    out->enabled = db_get_bool(res, row, f + 10);
    out->bitbucket_version = REG_STR(db_get_text(res, row, f + 11));
    out->last_test_result = REG_STR(db_get_text(res, row, f + 12));
    out->last_test_at = db_get_int(res, row, f + 13);
    out->created_at = db_get_int(res, row, f + 14);
    out->updated_at = db_get_int(res, row, f + 15);
    out->created_by = REG_STR(db_get_text(res, row, f + 16));
    out->updated_by = REG_STR(db_get_text(res, row, f + 17));
    out->identity_count = db_get_int(res, row, f + 18);
}

void reg_fill_integration(Portico__Registry__Integration *out, const PGresult *res, int row)
{
    reg_fill_integration_at(out, res, row, 0);
}
