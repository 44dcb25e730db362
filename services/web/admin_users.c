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

static void s_user_flash(sbuf_t *b, web_req_t *r)
{
    char v[24];
    if (web_query(r, "granted", v, sizeof v) > 0)
        page_notice_out(b, "ok", "Admin role granted. Their sessions were ended: they log in again to use it.");
    else if (web_query(r, "revoked", v, sizeof v) > 0)
        page_notice_out(b, "ok", "Admin role removed. Their sessions were ended.");
    else if (web_query(r, "ended", v, sizeof v) > 0)
        page_notice_out(b, "ok", "Sessions ended. They are logged out everywhere and must log in again.");
    else if (web_query(r, "refused", v, sizeof v) > 0 && !strcmp(v, "self"))
        page_notice_out(b, "error", "You cannot remove your own admin role. Ask another admin to do it.");
}

static void s_user_button(sbuf_t *b, web_req_t *r, const Portico__Registry__User *u, const char *action,
                          const char *field, const char *value, const char *label, const char *cls, const char *confirm)
{
    sbuf_printf(b, "<form method=\"post\" action=\"%s/admin/users/%lld/%s\" class=\"inline\"", web_cfg.public_path,
                (long long)u->id, action);
    if (confirm)
        sbuf_printf(b, " data-confirm=\"%s\"", confirm);
    sbuf_puts(b, ">");
    page_csrf_out(b, web_session(r));
    if (field)
        sbuf_printf(b, "<input type=\"hidden\" name=\"%s\" value=\"%s\">", field, value);
    sbuf_printf(b, "<button type=\"submit\" class=\"%s small\">%s</button></form>", cls, label);
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
    sbuf_t b;
    sbuf_init(&b);
    admin_page_begin(&b, r, &a, "Users", "users");
    s_user_flash(&b, r);
    sbuf_puts(&b, "<h1>Users</h1><p class=\"lead\">Everyone who has logged in with Bitbucket. Admins manage "
                  "integrations and other admins.</p>");
    if (rep->n_users == 0 && !after) {
        sbuf_puts(&b, "<section class=\"card empty\"><p>Nobody has logged in yet.</p></section>");
    } else {
        sbuf_puts(&b, "<div class=\"table-wrap\"><table class=\"users\"><thead><tr><th>User</th><th>Role</th>"
                      "<th>Bitbucket identities</th><th>Actions</th></tr></thead><tbody>");
        for (size_t i = 0; i < rep->n_users; i++) {
            const Portico__Registry__User *u = rep->users[i];
            bool self = !a.setup_actor && a.s->user_id == u->id;
            sbuf_printf(&b, "<tr data-user-id=\"%lld\"><td><strong>", (long long)u->id);
            sbuf_html(&b, u->display_name[0] ? u->display_name : u->name);
            sbuf_puts(&b, "</strong><br><span class=\"muted small\">");
            sbuf_html(&b, u->name);
            char when[40];
            web_format_time(u->created_at, when, sizeof when);
            sbuf_printf(&b, " · since %s</span></td><td>%s%s</td><td>", when,
                        u->is_admin ? "<span class=\"badge ok\">admin</span>" : "<span class=\"badge\">user</span>",
                        self ? " <span class=\"muted small\">(you)</span>" : "");
            admin_access_user_mark(&b, ended, u->id);
            if (u->n_identities == 0)
                sbuf_puts(&b, "<span class=\"muted\">none</span>");
            else
                sbuf_puts(&b, "<ul class=\"plain\">");
            for (size_t j = 0; j < u->n_identities; j++) {
                const Portico__Registry__Identity *id = u->identities[j];
                sbuf_puts(&b, "<li><strong>");
                sbuf_html(&b, id->username);
                sbuf_puts(&b, "</strong>");
                if (id->display_name[0]) {
                    sbuf_puts(&b, " (");
                    sbuf_html(&b, id->display_name);
                    sbuf_puts(&b, ")");
                }
                sbuf_puts(&b, " <span class=\"muted small\">on ");
                sbuf_html(&b, id->integration_name[0] ? id->integration_name : "a deleted integration");
                if (id->last_login_at > 0) {
                    web_format_time(id->last_login_at, when, sizeof when);
                    sbuf_printf(&b, ", last login %s", when);
                }
                sbuf_puts(&b, "</span></li>");
            }
            if (u->n_identities)
                sbuf_puts(&b, "</ul>");
            sbuf_puts(&b, "</td><td class=\"row-actions\">");
            if (u->is_admin && !self)
                s_user_button(&b, r, u, "admin", "admin", "0", "Remove admin", "secondary",
                              "Remove the admin role? Their sessions end.");
            else if (!u->is_admin)
                s_user_button(&b, r, u, "admin", "admin", "1", "Make admin", "secondary",
                              "Make this user an admin? Their sessions end; they log in again.");
            s_user_button(&b, r, u, "sessions", NULL, NULL, "End sessions", "secondary",
                          self ? "End your own sessions? You will be logged out." : NULL);
            sbuf_puts(&b, "</td></tr>");
        }
        sbuf_puts(&b, "</tbody></table></div><nav class=\"pager\">");
        if (after)
            sbuf_printf(&b, "<a href=\"%s/admin/users\">First page</a>", web_cfg.public_path);
        if (rep->n_users == USERS_PAGE)
            sbuf_printf(&b, "<a href=\"%s/admin/users?after=%lld\">Next page</a>", web_cfg.public_path,
                        (long long)rep->users[rep->n_users - 1]->id);
        sbuf_puts(&b, "</nav>");
    }
    admin_access_refused_section(&b, r);
    admin_page_end(&b);
    admin_access_ended_free(&ended);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    web_send_html(r, 200, &b);
    sbuf_free(&b);
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
    if (s_end_sessions(r, &a, id, &err) < 0)
        log_warn("could not end sessions after a role change", "user=%lld code=%s", (long long)id,
                 bus_code_name(err.code));
    log_info("admin role changed", "user=%lld admin=%s", (long long)id, grant ? "yes" : "no");
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
    sbuf_t b;
    sbuf_init(&b);
    admin_page_begin(&b, r, &a, "Audit log", "audit");
    sbuf_puts(&b, "<h1>Audit log</h1><p class=\"lead\">What admins changed and who logged in, newest first.</p>");
    if (rep->n_entries == 0) {
        sbuf_puts(&b, "<section class=\"card empty\"><p>No entries");
        sbuf_puts(&b, before ? " before this point.</p></section>" : " yet.</p></section>");
    } else {
        sbuf_puts(&b, "<div class=\"table-wrap\"><table class=\"audit\"><thead><tr><th>When</th><th>Who</th>"
                      "<th>What</th><th>Object</th><th>From</th><th>Detail</th></tr></thead><tbody>");
        for (size_t i = 0; i < rep->n_entries; i++) {
            const Portico__Registry__AuditEntry *e = rep->entries[i];
            char when[40];
            web_format_time(e->at / 1000, when, sizeof when);
            sbuf_printf(&b, "<tr><td class=\"nowrap\">%s</td><td>", when);
            sbuf_html(&b, e->actor);
            sbuf_puts(&b, "</td><td><code>");
            sbuf_html(&b, e->action);
            sbuf_puts(&b, "</code></td><td>");
            sbuf_html(&b, e->object);
            sbuf_puts(&b, "</td><td>");
            sbuf_html(&b, e->addr);
            sbuf_puts(&b, "</td><td>");
            sbuf_html(&b, e->detail);
            sbuf_puts(&b, "</td></tr>");
        }
        sbuf_puts(&b, "</tbody></table></div>");
    }
    sbuf_puts(&b, "<nav class=\"pager\">");
    if (before)
        sbuf_printf(&b, "<a href=\"%s/admin/audit\">Newest</a>", web_cfg.public_path);
    if (rep->n_entries == AUDIT_PAGE)
        sbuf_printf(&b, "<a href=\"%s/admin/audit?before=%lld\">Older entries</a>", web_cfg.public_path,
                    (long long)rep->entries[rep->n_entries - 1]->id);
    sbuf_puts(&b, "</nav>");
    admin_page_end(&b);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    web_send_html(r, 200, &b);
    sbuf_free(&b);
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
