/* Who may log in through an integration: the summary on its page, the form
 * that edits the rules, and why an account's access ended. */
#include "admin_access.h"
#include "aform.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REFUSED_SHOWN 20

static Portico__Registry__AccessRules *s_load(web_req_t *r, int64_t id, bus_error_t *err)
{
    Portico__Registry__GetAccessRequest q = PORTICO__REGISTRY__GET_ACCESS_REQUEST__INIT;
    q.integration_id = id;
    Portico__Registry__AccessRules *rules = NULL;
    if (admin_registry(r, &registry_m_access_get, &q.base, (ProtobufCMessage **)&rules, err) < 0)
        return NULL;
    return rules;
}

static bool s_has_rules(const Portico__Registry__AccessRules *a)
{
    return a && ((a->resource && a->resource[0]) || a->n_patterns > 0);
}

Portico__Registry__AccessRules *admin_access_load(web_req_t *r, int64_t id)
{
    bus_error_t err;
    Portico__Registry__AccessRules *a = s_load(r, id, &err);
    if (!a)
        log_warn("could not load access rules", "integration=%lld code=%s", (long long)id, bus_code_name(err.code));
    return a;
}

void admin_access_free(Portico__Registry__AccessRules **rules_p)
{
    if (rules_p && *rules_p) {
        protobuf_c_message_free_unpacked(&(*rules_p)->base, NULL);
        *rules_p = NULL;
    }
}

/* "PROJ · 3 names or patterns", "everyone" (text, escaped when shown). */
static void s_short(const Portico__Registry__AccessRules *a, char *out, size_t out_size)
{
    if (!s_has_rules(a)) {
        snprintf(out, out_size, "everyone");
        return;
    }
    char n[64] = "";
    if (a->n_patterns)
        snprintf(n, sizeof n, "%zu %s", a->n_patterns, a->n_patterns == 1 ? "name or pattern" : "names or patterns");
    snprintf(out, out_size, "%s%s%s", a->resource, a->resource[0] && a->n_patterns ? " · " : "", n);
}

void admin_access_values(tmpl_ctx_t *c, const Portico__Registry__AccessRules *a, bool saved)
{
    tmpl_ctx_t *v = tmpl_add(c, "access");
    tmpl_set_list(v, "notices");
    if (saved)
        page_notice(v, "ok",
                    "Access rules saved. They apply to the next login now, and to people already signed in "
                    "at their next re-check.");
    if (!a)
        page_notice(v, "error", "The access rules could not be loaded. Reload the page in a moment.");
    tmpl_set_bool(v, "loaded", a != NULL);
    tmpl_set_bool(v, "has_rules", s_has_rules(a));
    char text[400];
    s_short(a, text, sizeof text);
    tmpl_set(v, "short", text);
    tmpl_set(v, "resource", a ? a->resource : "");
    tmpl_set(v, "resource_kind", a && strchr(a->resource, '/') ? "repository" : "project");
    tmpl_set_bool(v, "both", a && a->resource[0] && a->n_patterns);
    tmpl_set_bool(v, "has_patterns", a && a->n_patterns);
    tmpl_set_int(v, "n_patterns", a ? (long long)a->n_patterns : 0);
    tmpl_set_list(v, "patterns");
    for (size_t i = 0; a && i < a->n_patterns; i++)
        tmpl_set(tmpl_add(v, "patterns"), "pattern", a->patterns[i]);
    tmpl_set(v, "contact", a ? a->contact : "");
}

Portico__Registry__ListAccessReply *admin_access_list_load(web_req_t *r)
{
    Portico__Registry__ListAccessReply *rep = NULL;
    bus_error_t err;
    if (admin_registry(r, &registry_m_access_list, NULL, (ProtobufCMessage **)&rep, &err) < 0) {
        log_warn("could not load the access rules", "code=%s", bus_code_name(err.code));
        return NULL;
    }
    return rep;
}

void admin_access_list_free(Portico__Registry__ListAccessReply **rep_p)
{
    if (rep_p && *rep_p) {
        protobuf_c_message_free_unpacked(&(*rep_p)->base, NULL);
        *rep_p = NULL;
    }
}

void admin_access_short(const Portico__Registry__ListAccessReply *list, int64_t id, char *out, size_t out_size)
{
    const Portico__Registry__AccessRules *a = NULL;
    for (size_t i = 0; list && i < list->n_rules && !a; i++)
        if (list->rules[i]->integration_id == id)
            a = list->rules[i];
    s_short(a, out, out_size);
}

/* ---- the form (model and rules in aform.c) ---- */

static int s_form_get(void *r, const char *name, char *out, size_t out_size)
{
    return web_form(r, name, out, out_size);
}

static void s_render(web_req_t *r, admin_ctx_t *a, int64_t id, const char *name, const aform_t *f, int status)
{
    tmpl_ctx_t *c = admin_page_ctx(r, a, "Who may log in", "integrations");
    if (f->e_top[0])
        page_notice(c, "error", f->e_top);
    else if (aform_has_errors(f))
        page_notice(c, "error", "Nothing was saved. Correct the fields marked below and save again.");
    tmpl_set_int(c, "id", (long long)id);
    tmpl_set(c, "name", name);
    tmpl_set(c, "resource", f->resource);
    tmpl_set(c, "e_resource", f->e_resource);
    tmpl_set_int(c, "max_resource", AFORM_MAX_RESOURCE);
    tmpl_set(c, "patterns", f->patterns ? f->patterns : "");
    tmpl_set(c, "e_patterns", f->e_patterns);
    tmpl_set(c, "contact", f->contact);
    tmpl_set(c, "e_contact", f->e_contact);
    tmpl_set_int(c, "max_contact", AFORM_MAX_CONTACT);
    web_page(r, status, "access_form", &c);
}

void admin_access_edit(web_req_t *r, admin_ctx_t *a, int64_t id)
{
    Portico__Registry__GetIntegrationRequest gq = PORTICO__REGISTRY__GET_INTEGRATION_REQUEST__INIT;
    gq.id = id;
    gq.without_count = true;
    Portico__Registry__GetIntegrationReply *in = NULL;
    Portico__Registry__AccessRules *cur = NULL;
    bus_error_t err;
    aform_t f;
    if (aform_init(&f) < 0) {
        web_error_page(r, 500, "Something went wrong", "Portico ran out of memory.", "Try again.");
        return;
    }
    if (admin_registry(r, &registry_m_integration_get, &gq.base, (ProtobufCMessage **)&in, &err) < 0 ||
        !in->integration) {
        if (in || err.code == PORTICO__ERROR_CODE__NOT_FOUND)
            web_error_page(r, 404, "Integration not found", "There is no integration with this number.",
                           "Go back to the Admin page; it may have been deleted.");
        else
            web_bus_error_page(r, &err, "Could not load the integration");
        goto out;
    }
    const char *name = in->integration->name[0] ? in->integration->name : "this integration";
    if (!admin_is_post(r)) {
        if (!(cur = s_load(r, id, &err))) {
            web_bus_error_page(r, &err, "Could not load the access rules");
            goto out;
        }
        snprintf(f.resource, sizeof f.resource, "%s", cur->resource);
        snprintf(f.contact, sizeof f.contact, "%s", cur->contact);
        size_t used = 0;
        for (size_t i = 0; i < cur->n_patterns && used < AFORM_MAX_PATTERNS_TEXT; i++)
            used += (size_t)snprintf(f.patterns + used, AFORM_MAX_PATTERNS_TEXT + 1 - used, "%s\n", cur->patterns[i]);
        s_render(r, a, id, name, &f, 200);
        goto out;
    }
    if (web_body_failed(r)) {
        web_error_page(r, 413, "Too much text", "The form was larger than Portico accepts.", "Shorten the list.");
        goto out;
    }
    if (aform_read(&f, s_form_get, r) < 0) {
        web_error_page(r, 500, "Something went wrong", "Portico ran out of memory.", "Try again.");
        goto out;
    }
    if (aform_has_errors(&f)) {
        s_render(r, a, id, name, &f, 400);
        goto out;
    }
    Portico__Registry__AccessRules rules = PORTICO__REGISTRY__ACCESS_RULES__INIT;
    rules.integration_id = id;
    rules.resource = f.resource;
    rules.patterns = f.pats;
    rules.n_patterns = f.npats;
    rules.contact = f.contact;
    Portico__Registry__SetAccessRequest q = PORTICO__REGISTRY__SET_ACCESS_REQUEST__INIT;
    q.rules = &rules;
    q.actor = a->actor;
    q.addr = r->addr;
    if (admin_registry(r, &registry_m_access_set, &q.base, NULL, &err) < 0) {
        if (err.code != PORTICO__ERROR_CODE__BAD_REQUEST) {
            web_bus_error_page(r, &err, "Could not save the access rules");
            goto out;
        }
        aform_store_failed(&f, &err);
        s_render(r, a, id, name, &f, 400);
        goto out;
    }
    web_cache_forget_all();
    char loc[128];
    snprintf(loc, sizeof loc, "/admin/integrations/%lld?access=saved#access", (long long)id);
    web_redirect(r, loc);
out:
    aform_free(&f);
    if (cur)
        protobuf_c_message_free_unpacked(&cur->base, NULL);
    if (in)
        protobuf_c_message_free_unpacked(&in->base, NULL);
}

/* ---- the Users page ---- */

Portico__Registry__ListAccessEndedReply *admin_access_ended_load(web_req_t *r)
{
    Portico__Registry__ListAccessEndedRequest q = PORTICO__REGISTRY__LIST_ACCESS_ENDED_REQUEST__INIT;
    Portico__Registry__ListAccessEndedReply *rep = NULL;
    bus_error_t err;
    if (admin_registry(r, &registry_m_access_ended, &q.base, (ProtobufCMessage **)&rep, &err) < 0) {
        log_warn("could not load the ended accesses", "code=%s", bus_code_name(err.code));
        return NULL;
    }
    return rep;
}

void admin_access_ended_free(Portico__Registry__ListAccessEndedReply **rep_p)
{
    if (rep_p && *rep_p) {
        protobuf_c_message_free_unpacked(&(*rep_p)->base, NULL);
        *rep_p = NULL;
    }
}

static const char *s_reason_text(const char *reason)
{
    if (!strcmp(reason, "authorization_ended"))
        return "Bitbucket no longer accepts their authorization: it was revoked, or the user was disabled or "
               "deleted in Bitbucket";
    if (!strcmp(reason, "user_inactive"))
        return "Bitbucket says this user is disabled";
    if (!strcmp(reason, "user_gone"))
        return "Bitbucket no longer has this user";
    if (!strcmp(reason, "rule_resource"))
        return "they can no longer read the project or repository the integration's access rules name";
    if (!strcmp(reason, "rule_patterns"))
        return "they no longer match the integration's user names and e-mail addresses";
    return reason;
}

bool admin_access_ended_mark(const Portico__Registry__ListAccessEndedReply *ended, int64_t user_id, char *when,
                             size_t when_size, char *reason, size_t reason_size)
{
    for (size_t i = 0; ended && i < ended->n_ended; i++) {
        const Portico__Registry__AccessEnded *e = ended->ended[i];
        if (e->user_id != user_id)
            continue;
        web_format_time(e->at / 1000, when, when_size);
        snprintf(reason, reason_size, "%s", s_reason_text(e->reason));
        return true;
    }
    return false;
}

/* "integration:12" -> 12, or 0. */
static int64_t s_object_id(const char *object)
{
    const char *p = object && !strncmp(object, "integration:", 12) ? object + 12 : NULL;
    return p ? admin_parse_id(p) : 0;
}

void admin_access_refused_values(tmpl_ctx_t *c, web_req_t *r)
{
    Portico__Registry__ListRefusedRequest q = PORTICO__REGISTRY__LIST_REFUSED_REQUEST__INIT;
    q.limit = REFUSED_SHOWN;
    Portico__Registry__ListAuditReply *rep = NULL;
    bus_error_t err;
    tmpl_ctx_t *v = tmpl_add(c, "refused");
    tmpl_set_list(v, "notices");
    tmpl_set_list(v, "entries");
    bool loaded = admin_registry(r, &registry_m_access_refused, &q.base, (ProtobufCMessage **)&rep, &err) == 0;
    tmpl_set_bool(v, "loaded", loaded);
    tmpl_set_bool(v, "any", loaded && rep->n_entries > 0);
    if (!loaded) {
        page_notice(v, "error", "The refused logins could not be loaded. Reload the page in a moment.");
        return;
    }
    for (size_t i = 0; i < rep->n_entries; i++) {
        const Portico__Registry__AuditEntry *e = rep->entries[i];
        char when[40], rule[400];
        web_format_time(e->at / 1000, when, sizeof when);
        tmpl_ctx_t *row = tmpl_add(v, "entries");
        tmpl_set(row, "when", when);
        tmpl_set(row, "who", e->actor[0] ? e->actor : "unknown");
        int64_t id = s_object_id(e->object);
        tmpl_set_bool(row, "has_id", id > 0);
        tmpl_set_int(row, "int_id", (long long)id);
        if (strstr(e->detail, "rule=resource")) {
            const char *res = strstr(e->detail, "resource=");
            snprintf(rule, sizeof rule, "cannot read %s", res ? res + 9 : "the project or repository");
        } else if (strstr(e->detail, "rule=patterns")) {
            snprintf(rule, sizeof rule, "matches no user name or e-mail pattern");
        } else {
            snprintf(rule, sizeof rule, "%s", e->detail);
        }
        tmpl_set(row, "rule", rule);
    }
    protobuf_c_message_free_unpacked(&rep->base, NULL);
}
