/* Users and the audit log: the people who have logged in, their linked
 * Bitbucket identities, the admin role, ending sessions; and the record of
 * what admins did, newest first. */
#include "admin.h"
#include "admin_access.h"

#include "log.h"

#include <stdio.h>
#include <string.h>

#define USERS_PAGE 50
#define AUDIT_PAGE 50

static void s_user_flash(tmpl_ctx_t *c, web_req_t *r)
{
    char v[24];
    if (web_query(r, "granted", v, sizeof v) > 0)
        page_notice(c, "ok", "Admin role granted. Their sessions were ended: they log in again to use it.");
    else if (web_query(r, "revoked", v, sizeof v) > 0)
        page_notice(c, "ok", "Admin role removed. Their sessions were ended.");
    else if (web_query(r, "ended", v, sizeof v) > 0)
        page_notice(c, "ok", "Sessions ended. They are logged out everywhere and must log in again.");
    else if (web_query(r, "refused", v, sizeof v) > 0 && !strcmp(v, "self"))
        page_notice(c, "error", "You cannot remove your own admin role. Ask another admin to do it.");
}

static void s_user_row(tmpl_ctx_t *row, const admin_ctx_t *a, const Portico__Registry__User *u,
                       const Portico__Registry__ListAccessEndedReply *ended)
{
    bool self = !a->setup_actor && a->s->user_id == u->id;
    char when[40], reason[200];
    tmpl_set_int(row, "id", (long long)u->id);
    tmpl_set(row, "display", u->display_name[0] ? u->display_name : u->name);
    tmpl_set(row, "name", u->name);
    web_format_time(u->created_at, when, sizeof when);
    tmpl_set(row, "since", when);
    tmpl_set_bool(row, "admin", u->is_admin);
    tmpl_set_bool(row, "self", self);
    tmpl_set_bool(row, "remove_admin", u->is_admin && !self);
    tmpl_set_bool(row, "make_admin", !u->is_admin);
    bool marked = admin_access_ended_mark(ended, u->id, when, sizeof when, reason, sizeof reason);
    tmpl_set_bool(row, "ended", marked);
    tmpl_set(row, "ended_when", marked ? when : "");
    tmpl_set(row, "ended_reason", marked ? reason : "");
    tmpl_set_bool(row, "has_identities", u->n_identities > 0);
    tmpl_set_list(row, "identities");
    for (size_t j = 0; j < u->n_identities; j++) {
        const Portico__Registry__Identity *id = u->identities[j];
        tmpl_ctx_t *it = tmpl_add(row, "identities");
        tmpl_set(it, "username", id->username);
        tmpl_set(it, "id_display", id->display_name);
        tmpl_set(it, "on", id->integration_name[0] ? id->integration_name : "a deleted integration");
        when[0] = '\0';
        if (id->last_login_at > 0)
            web_format_time(id->last_login_at, when, sizeof when);
        tmpl_set(it, "last_login", when);
    }
}

void admin_users(web_req_t *r)
{
    admin_ctx_t a;
    if (!admin_enter(r, &a))
        return;
    char v[24];
    int64_t after = web_query(r, "after", v, sizeof v) > 0 ? admin_parse_id(v) : 0;
    Portico__Registry__ListUsersRequest req = PORTICO__REGISTRY__LIST_USERS_REQUEST__INIT;
    req.after_id = after;
    req.limit = USERS_PAGE;
    Portico__Registry__ListUsersReply *rep = NULL;
    bus_error_t err;
    if (admin_registry(r, &registry_m_user_list, &req.base, (ProtobufCMessage **)&rep, &err) < 0) {
        web_bus_error_page(r, &err, "Could not load the users");
        return;
    }
    Portico__Registry__ListAccessEndedReply *ended = admin_access_ended_load(r);
    tmpl_ctx_t *c = admin_page_ctx(r, &a, "Users", "users");
    s_user_flash(c, r);
    tmpl_set_bool(c, "any", rep->n_users > 0 || after);
    tmpl_set_list(c, "users");
    for (size_t i = 0; i < rep->n_users; i++)
        s_user_row(tmpl_add(c, "users"), &a, rep->users[i], ended);
    tmpl_set_bool(c, "first", after != 0);
    tmpl_set_bool(c, "next", rep->n_users == USERS_PAGE);
    tmpl_set_int(c, "next_after", rep->n_users ? (long long)rep->users[rep->n_users - 1]->id : 0);
    admin_access_refused_values(c, r);
    admin_access_ended_free(&ended);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    web_page(r, 200, "users", &c);
}

static int s_end_sessions(web_req_t *r, admin_ctx_t *a, int64_t user_id, bus_error_t *err)
{
    Portico__Registry__DeleteUserSessionsRequest req = PORTICO__REGISTRY__DELETE_USER_SESSIONS_REQUEST__INIT;
    req.user_id = user_id;
    req.actor = a->actor;
    req.addr = r->addr;
    return admin_registry(r, &registry_m_session_delete_user, &req.base, NULL, err);
}

/* POST /admin/users/{id}/sessions */
static void h_end_sessions(web_req_t *r)
{
    admin_ctx_t a;
    if (!admin_enter(r, &a))
        return;
    bus_error_t err;
    if (s_end_sessions(r, &a, r->path_id, &err) < 0) {
        web_bus_error_page(r, &err, "Could not end the sessions");
        return;
    }
    log_info("user sessions ended", "user=%lld", (long long)r->path_id);
    web_redirect(r, "/admin/users?ended=1");
}

/* POST /admin/users/{id}/admin (admin=1|0) */
static void h_set_admin(web_req_t *r)
{
    int64_t id = r->path_id;
    admin_ctx_t a;
    if (!admin_enter(r, &a))
        return;
    bus_error_t err;
    char loc[64];
    char v[8];
    bool grant = web_form(r, "admin", v, sizeof v) > 0 && !strcmp(v, "1");
    if (!grant && !a.setup_actor && a.s->user_id == id) {
        web_redirect(r, "/admin/users?refused=self");
        return;
    }
    Portico__Registry__SetAdminRequest req = PORTICO__REGISTRY__SET_ADMIN_REQUEST__INIT;
    req.id = id;
    req.admin = grant;
    req.actor = a.actor;
    req.addr = r->addr;
    if (admin_registry(r, &registry_m_user_set_admin, &req.base, NULL, &err) < 0) {
        web_bus_error_page(r, &err, "Could not change the admin role");
        return;
    }
    /* A privilege change: the user's sessions end, so the next one is new. */
    log_info("admin role changed", "user=%lld admin=%s", (long long)id, grant ? "yes" : "no");
    if (s_end_sessions(r, &a, id, &err) < 0) {
        /* Not "done": the page would say their sessions ended. */
        log_warn("could not end sessions after a role change", "user=%lld code=%s", (long long)id,
                 bus_code_name(err.code));
        web_bus_error_page(r, &err, "The role was changed, but their sessions could not be ended");
        return;
    }
    snprintf(loc, sizeof loc, "/admin/users?%s=1", grant ? "granted" : "revoked");
    web_redirect(r, loc);
}

void admin_audit(web_req_t *r)
{
    admin_ctx_t a;
    if (!admin_enter(r, &a))
        return;
    char v[24];
    int64_t before = web_query(r, "before", v, sizeof v) > 0 ? admin_parse_id(v) : 0;
    Portico__Registry__ListAuditRequest req = PORTICO__REGISTRY__LIST_AUDIT_REQUEST__INIT;
    req.before_id = before;
    req.limit = AUDIT_PAGE;
    Portico__Registry__ListAuditReply *rep = NULL;
    bus_error_t err;
    if (admin_registry(r, &registry_m_audit_list, &req.base, (ProtobufCMessage **)&rep, &err) < 0) {
        web_bus_error_page(r, &err, "Could not load the audit log");
        return;
    }
    tmpl_ctx_t *c = admin_page_ctx(r, &a, "Audit log", "audit");
    tmpl_set_bool(c, "any", rep->n_entries > 0);
    tmpl_set(c, "empty_text", before ? "No entries before this point." : "No entries yet.");
    tmpl_set_list(c, "entries");
    for (size_t i = 0; i < rep->n_entries; i++) {
        const Portico__Registry__AuditEntry *e = rep->entries[i];
        char when[40];
        web_format_time(e->at / 1000, when, sizeof when);
        tmpl_ctx_t *row = tmpl_add(c, "entries");
        tmpl_set(row, "when", when);
        tmpl_set(row, "actor", e->actor);
        tmpl_set(row, "action", e->action);
        tmpl_set(row, "object", e->object);
        tmpl_set(row, "addr", e->addr);
        tmpl_set(row, "detail", e->detail);
    }
    tmpl_set_bool(c, "newest", before != 0);
    tmpl_set_bool(c, "older", rep->n_entries == AUDIT_PAGE);
    tmpl_set_int(c, "older_before", rep->n_entries ? (long long)rep->entries[rep->n_entries - 1]->id : 0);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    web_page(r, 200, "audit", &c);
}

/* Anything else posted under /admin/users/. */
static void h_other(web_req_t *r)
{
    web_error_page(r, 404, "Page not found", "There is no page at this address.", "Start from the Users page.");
}

const web_route_t web_admin_user_routes[] = {
    {"POST", "/admin/users/{id}/admin", false, h_set_admin, "admin_user_set_admin"},
    {"POST", "/admin/users/{id}/sessions", false, h_end_sessions, "admin_user_end_sessions"},
    {"POST", "/admin/users/", true, h_other, "admin_user_other"},
    {0},
};
