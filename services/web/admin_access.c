/* Who may log in through an integration: the summary on its page, the form
 * that edits the rules, and why an account's access ended. */
#include "admin_access.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RESOURCE 300
#define MAX_PATTERNS_TEXT (200 * 321)
#define MAX_CONTACT 200
#define MAX_PATTERNS 200
#define REFUSED_SHOWN 20

/* One sentence, the same on the card and the form. */
#define ACCESS_RULE_SENTENCE                                                                                           \
    "A person may log in only when they pass every rule that is set; with no rule set, everyone with an account on "   \
    "this Bitbucket may. Rules apply to the next login at once, and to people already signed in at their next "        \
    "re-check (every 15 minutes unless the operator set PORTICO_ACCESS_RECHECK_SECONDS)."

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

static void s_summary(sbuf_t *b, const Portico__Registry__AccessRules *a)
{
    sbuf_puts(b, "<p class=\"access-summary\" id=\"access-summary\">");
    if (!s_has_rules(a)) {
        sbuf_puts(b, "Everyone with an account on this Bitbucket may log in.</p>");
        return;
    }
    sbuf_puts(b, "Only people who ");
    if (a->resource[0]) {
        sbuf_printf(b, "can read the Bitbucket %s <code>", strchr(a->resource, '/') ? "repository" : "project");
        sbuf_html(b, a->resource);
        sbuf_puts(b, "</code>");
        if (a->n_patterns)
            sbuf_puts(b, " and ");
    }
    if (a->n_patterns)
        sbuf_printf(b, "match one of %zu user names, e-mail addresses or patterns", a->n_patterns);
    sbuf_puts(b, " may log in.</p>");
    if (a->n_patterns) {
        sbuf_puts(b, "<ul class=\"plain access-patterns\">");
        for (size_t i = 0; i < a->n_patterns; i++) {
            sbuf_puts(b, "<li><code>");
            sbuf_html(b, a->patterns[i]);
            sbuf_puts(b, "</code></li>");
        }
        sbuf_puts(b, "</ul>");
    }
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

/* "PROJ · 3 names or patterns", "everyone", into b (escaped). */
static void s_short(sbuf_t *b, const Portico__Registry__AccessRules *a)
{
    if (!s_has_rules(a)) {
        sbuf_puts(b, "everyone");
        return;
    }
    if (a->resource[0])
        sbuf_html(b, a->resource);
    if (a->resource[0] && a->n_patterns)
        sbuf_puts(b, " · ");
    if (a->n_patterns)
        sbuf_printf(b, "%zu %s", a->n_patterns, a->n_patterns == 1 ? "name or pattern" : "names or patterns");
}

void admin_access_details_row(sbuf_t *b, const Portico__Registry__AccessRules *a)
{
    sbuf_puts(b, "<tr><th scope=\"row\">Who may log in</th><td id=\"access-details\">");
    if (!a)
        sbuf_puts(b, "<span class=\"muted\">unknown (the rules could not be loaded)</span>");
    else if (!s_has_rules(a))
        sbuf_puts(b, "everyone with an account on this Bitbucket");
    else
        s_short(b, a);
    sbuf_puts(b, " <a href=\"#access\" class=\"small\">details</a></td></tr>");
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

void admin_access_list_cell(sbuf_t *b, const Portico__Registry__ListAccessReply *list, int64_t id)
{
    sbuf_puts(b, "<td class=\"access\">");
    if (!list) {
        sbuf_puts(b, "<span class=\"muted\">unknown</span></td>");
        return;
    }
    const Portico__Registry__AccessRules *a = NULL;
    for (size_t i = 0; i < list->n_rules && !a; i++)
        if (list->rules[i]->integration_id == id)
            a = list->rules[i];
    s_short(b, a);
    sbuf_puts(b, "</td>");
}

void admin_access_card(sbuf_t *b, web_req_t *r, int64_t id, const Portico__Registry__AccessRules *a)
{
    char v[16];
    sbuf_puts(b, "<section class=\"card\" id=\"access\"><h2>Who may log in</h2>");
    if (web_query(r, "access", v, sizeof v) > 0 && !strcmp(v, "saved"))
        page_notice(b, "ok",
                    "Access rules saved. They apply to the next login now, and to people already signed in "
                    "at their next re-check.");
    if (!a) {
        page_notice(b, "error", "The access rules could not be loaded. Reload the page in a moment.");
    } else {
        s_summary(b, a);
        sbuf_puts(b, "<p class=\"hint\">Refused people are told: ");
        if (a->contact[0]) {
            sbuf_puts(b, "ask ");
            sbuf_html(b, a->contact);
            sbuf_puts(b, ".");
        } else {
            sbuf_puts(b, "ask a Portico admin.");
        }
        sbuf_puts(b, " Refused logins are in the Audit log as <code>login.refused</code>.</p>");
    }
    sbuf_printf(b,
                "<div class=\"actions\"><a class=\"button secondary\" id=\"edit-access\" "
                "href=\"%s/admin/integrations/%lld/access\">Edit access rules</a></div></section>",
                web_cfg.public_path, (long long)id);
}

/* ---- the form ---- */

typedef struct {
    char resource[MAX_RESOURCE + 1];
    char *patterns; /* MAX_PATTERNS_TEXT + 1 */
    char contact[MAX_CONTACT + 1];
    char e_resource[300], e_patterns[300], e_contact[300], e_top[300];
} aform_t;

static void s_describedby(sbuf_t *b, const char *hint_id, const char *err_id, const char *err)
{
    sbuf_printf(b, " aria-describedby=\"%s%s%s\"%s", hint_id, err[0] ? " " : "", err[0] ? err_id : "",
                err[0] ? " aria-invalid=\"true\"" : "");
}

static void s_error(sbuf_t *b, const char *id, const char *text)
{
    if (!text[0])
        return;
    sbuf_printf(b, "<p class=\"field-error\" id=\"%s\">", id);
    sbuf_html(b, text);
    sbuf_puts(b, "</p>");
}

static void s_render(web_req_t *r, admin_ctx_t *a, int64_t id, const char *name, const aform_t *f, int status)
{
    sbuf_t b;
    sbuf_init(&b);
    admin_page_begin(&b, r, a, "Who may log in", "integrations");
    sbuf_puts(&b, "<h1>Who may log in with ");
    sbuf_html(&b, name);
    sbuf_puts(&b, "</h1><p class=\"lead\" id=\"access-rule-sentence\">" ACCESS_RULE_SENTENCE "</p>");
    if (f->e_top[0])
        page_notice(&b, "error", f->e_top);
    else if (f->e_resource[0] || f->e_patterns[0] || f->e_contact[0])
        page_notice(&b, "error", "Nothing was saved. Correct the fields marked below and save again.");
    sbuf_printf(&b,
                "<form class=\"card form\" method=\"post\" action=\"%s/admin/integrations/%lld/access\" "
                "novalidate>",
                web_cfg.public_path, (long long)id);
    page_csrf(&b, r);
    sbuf_puts(&b, "<div class=\"field\"><label for=\"access-resource\">Bitbucket project or repository</label>"
                  "<input type=\"text\" id=\"access-resource\" name=\"resource\" autocomplete=\"off\" "
                  "spellcheck=\"false\" placeholder=\"PKG or PKG/registry\" value=\"");
    sbuf_html(&b, f->resource);
    sbuf_printf(&b, "\" maxlength=\"%d\"", MAX_RESOURCE);
    s_describedby(&b, "access-resource-hint", "access-resource-error", f->e_resource);
    sbuf_puts(&b, "><p class=\"hint\" id=\"access-resource-hint\">A project key, or a project key and repository "
                  "slug: only people who can read it in Bitbucket may log in. Portico asks Bitbucket with each "
                  "person's own authorization, so it needs no admin credentials. Empty: no such rule.</p>");
    s_error(&b, "access-resource-error", f->e_resource);
    sbuf_puts(&b, "</div><div class=\"field\"><label for=\"access-patterns\">User names and e-mail addresses</label>"
                  "<textarea id=\"access-patterns\" name=\"patterns\" rows=\"6\" spellcheck=\"false\" "
                  "placeholder=\"jdoe&#10;jane.doe@example.com&#10;*@example.com\"");
    s_describedby(&b, "access-patterns-hint", "access-patterns-error", f->e_patterns);
    sbuf_puts(&b, ">");
    sbuf_html(&b, f->patterns ? f->patterns : "");
    sbuf_puts(&b, "</textarea><p class=\"hint\" id=\"access-patterns-hint\">One per line: a Bitbucket user name or "
                  "e-mail address, exactly, or <code>*@example.com</code> for every address in that domain. "
                  "Empty: no such rule.</p>");
    s_error(&b, "access-patterns-error", f->e_patterns);
    sbuf_puts(&b, "</div><div class=\"field\"><label for=\"access-contact\">Whom to ask for access</label>"
                  "<input type=\"text\" id=\"access-contact\" name=\"contact\" autocomplete=\"off\" "
                  "placeholder=\"the platform team (#registry-help)\" value=\"");
    sbuf_html(&b, f->contact);
    sbuf_printf(&b, "\" maxlength=\"%d\"", MAX_CONTACT);
    s_describedby(&b, "access-contact-hint", "access-contact-error", f->e_contact);
    sbuf_puts(&b, "><p class=\"hint\" id=\"access-contact-hint\">Shown to people who are refused. Empty: a Portico "
                  "admin.</p>");
    s_error(&b, "access-contact-error", f->e_contact);
    sbuf_printf(&b,
                "</div><div class=\"actions\"><button type=\"submit\">Save access rules</button>"
                "<a class=\"button secondary\" href=\"%s/admin/integrations/%lld\">Cancel</a></div></form>",
                web_cfg.public_path, (long long)id);
    admin_page_end(&b);
    web_send_html(r, status, &b);
    sbuf_free(&b);
}

static void s_trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    size_t i = 0;
    while (s[i] == ' ' || s[i] == '\t')
        i++;
    if (i)
        memmove(s, s + i, n - i + 1);
}

/* Split the textarea on newlines, commas and blanks into at most
 * MAX_PATTERNS pointers into text. -1 when there are more. */
static int s_split(char *text, char **out, size_t *n)
{
    *n = 0;
    for (char *save = NULL, *t = strtok_r(text, " \t\r\n,", &save); t; t = strtok_r(NULL, " \t\r\n,", &save)) {
        if (*n == MAX_PATTERNS)
            return -1;
        out[(*n)++] = t;
    }
    return 0;
}

void admin_access_edit(web_req_t *r, admin_ctx_t *a, int64_t id)
{
    Portico__Registry__GetIntegrationRequest gq = PORTICO__REGISTRY__GET_INTEGRATION_REQUEST__INIT;
    gq.id = id;
    gq.without_count = true;
    Portico__Registry__GetIntegrationReply *in = NULL;
    Portico__Registry__AccessRules *cur = NULL;
    char *split_buf = NULL;
    char **pats = NULL;
    bus_error_t err;
    aform_t f;
    memset(&f, 0, sizeof f);
    f.patterns = calloc(1, MAX_PATTERNS_TEXT + 1);
    if (!f.patterns) {
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
        for (size_t i = 0; i < cur->n_patterns && used < MAX_PATTERNS_TEXT; i++)
            used += (size_t)snprintf(f.patterns + used, MAX_PATTERNS_TEXT + 1 - used, "%s\n", cur->patterns[i]);
        s_render(r, a, id, name, &f, 200);
        goto out;
    }
    if (web_body_failed(r)) {
        web_error_page(r, 413, "Too much text", "The form was larger than Portico accepts.", "Shorten the list.");
        goto out;
    }
    int rc1 = web_form(r, "resource", f.resource, sizeof f.resource);
    int rc2 = web_form(r, "patterns", f.patterns, MAX_PATTERNS_TEXT + 1);
    int rc3 = web_form(r, "contact", f.contact, sizeof f.contact);
    if (rc1 == -2)
        snprintf(f.e_resource, sizeof f.e_resource, "At most %d characters.", MAX_RESOURCE);
    if (rc2 == -2)
        snprintf(f.e_patterns, sizeof f.e_patterns, "The list is too long.");
    if (rc3 == -2)
        snprintf(f.e_contact, sizeof f.e_contact, "At most %d characters.", MAX_CONTACT);
    s_trim(f.resource);
    s_trim(f.contact);
    split_buf = strdup(f.patterns);
    pats = calloc(MAX_PATTERNS + 1, sizeof *pats);
    size_t npats = 0;
    if (!split_buf || !pats) {
        web_error_page(r, 500, "Something went wrong", "Portico ran out of memory.", "Try again.");
        goto out;
    }
    if (s_split(split_buf, pats, &npats) < 0)
        snprintf(f.e_patterns, sizeof f.e_patterns, "At most %d names and patterns.", MAX_PATTERNS);
    if (f.e_resource[0] || f.e_patterns[0] || f.e_contact[0]) {
        s_render(r, a, id, name, &f, 400);
        goto out;
    }
    Portico__Registry__AccessRules rules = PORTICO__REGISTRY__ACCESS_RULES__INIT;
    rules.integration_id = id;
    rules.resource = f.resource;
    rules.patterns = pats;
    rules.n_patterns = npats;
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
        char *target = err.detail == DETAIL(RESOURCE)   ? f.e_resource
                       : err.detail == DETAIL(CONTACT)  ? f.e_contact
                       : err.detail == DETAIL(PATTERNS) ? f.e_patterns
                                                        : f.e_top;
        snprintf(target, 300, "%s%s", err.message, target == f.e_top ? "" : ".");
        target[0] = target[0] >= 'a' && target[0] <= 'z' ? (char)(target[0] - 'a' + 'A') : target[0];
        s_render(r, a, id, name, &f, 400);
        goto out;
    }
    web_cache_forget_all();
    char loc[128];
    snprintf(loc, sizeof loc, "/admin/integrations/%lld?access=saved#access", (long long)id);
    web_redirect(r, loc);
out:
    free(split_buf);
    free(pats);
    free(f.patterns);
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

void admin_access_user_mark(sbuf_t *b, const Portico__Registry__ListAccessEndedReply *ended, int64_t user_id)
{
    if (!ended)
        return;
    for (size_t i = 0; i < ended->n_ended; i++) {
        const Portico__Registry__AccessEnded *e = ended->ended[i];
        if (e->user_id != user_id)
            continue;
        char when[40];
        web_format_time(e->at / 1000, when, sizeof when);
        sbuf_puts(b, "<br><span class=\"badge warn access-ended\">access ended</span> <span class=\"muted small "
                     "access-ended-reason\">");
        sbuf_printf(b, "%s: ", when);
        sbuf_html(b, s_reason_text(e->reason));
        sbuf_puts(b, ". Sessions ended; they may log in again once Bitbucket and the rules allow it.</span>");
        return;
    }
}

/* "integration:12" -> 12, or 0. */
static int64_t s_object_id(const char *object)
{
    const char *p = object && !strncmp(object, "integration:", 12) ? object + 12 : NULL;
    return p ? admin_parse_id(p) : 0;
}

void admin_access_refused_section(sbuf_t *b, web_req_t *r)
{
    Portico__Registry__ListRefusedRequest q = PORTICO__REGISTRY__LIST_REFUSED_REQUEST__INIT;
    q.limit = REFUSED_SHOWN;
    Portico__Registry__ListAuditReply *rep = NULL;
    bus_error_t err;
    sbuf_puts(b, "<section class=\"card\" id=\"refused-logins\"><h2>Refused logins</h2>");
    if (admin_registry(r, &registry_m_access_refused, &q.base, (ProtobufCMessage **)&rep, &err) < 0) {
        page_notice(b, "error", "The refused logins could not be loaded. Reload the page in a moment.");
        sbuf_puts(b, "</section>");
        return;
    }
    if (rep->n_entries == 0) {
        sbuf_puts(b, "<p class=\"muted\">Nobody was refused by an integration's access rules.</p></section>");
        protobuf_c_message_free_unpacked(&rep->base, NULL);
        return;
    }
    sbuf_puts(b, "<p class=\"hint\">People with a Bitbucket account whom an integration's access rules kept out; no "
                 "Portico account was created for them. The Audit log lists every one.</p><div "
                 "class=\"table-wrap\"><table class=\"refused\">"
                 "<thead><tr><th>When</th><th>Bitbucket user</th><th>Integration</th><th>Rule</th></tr></thead>"
                 "<tbody>");
    for (size_t i = 0; i < rep->n_entries; i++) {
        const Portico__Registry__AuditEntry *e = rep->entries[i];
        char when[40];
        web_format_time(e->at / 1000, when, sizeof when);
        sbuf_printf(b, "<tr><td>%s</td><td>", when);
        sbuf_html(b, e->actor[0] ? e->actor : "unknown");
        int64_t id = s_object_id(e->object);
        if (id > 0)
            sbuf_printf(b, "</td><td><a href=\"%s/admin/integrations/%lld#access\">#%lld</a></td><td>",
                        web_cfg.public_path, (long long)id, (long long)id);
        else
            sbuf_puts(b, "</td><td>—</td><td>");
        if (strstr(e->detail, "rule=resource")) {
            const char *res = strstr(e->detail, "resource=");
            sbuf_puts(b, "cannot read ");
            sbuf_html(b, res ? res + 9 : "the project or repository");
        } else if (strstr(e->detail, "rule=patterns")) {
            sbuf_puts(b, "matches no user name or e-mail pattern");
        } else {
            sbuf_html(b, e->detail);
        }
        sbuf_puts(b, "</td></tr>");
    }
    sbuf_puts(b, "</tbody></table></div></section>");
    protobuf_c_message_free_unpacked(&rep->base, NULL);
}
