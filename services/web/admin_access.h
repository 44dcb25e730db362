/* Access rules in the Admin section (admin_access.c): the "Who may log in"
 * card on an integration's page, its edit form, and the "access ended"
 * marks on the Users page. */
#ifndef PORTICO_WEB_ADMIN_ACCESS_H
#define PORTICO_WEB_ADMIN_ACCESS_H

#include "admin.h"

/* An integration's rules, or NULL when they could not be loaded (the
 * page then says so). Free with admin_access_free. */
Portico__Registry__AccessRules *admin_access_load(web_req_t *r, int64_t integration_id);
void admin_access_free(Portico__Registry__AccessRules **rules_p);
/* The values of the "Who may log in" row and card of the integration page
 * (templates/access_details.html, access_card.html), as the one item of
 * the list "access" of c, so the card's notices stay in the card. saved:
 * say that the rules were just saved. */
void admin_access_values(tmpl_ctx_t *c, const Portico__Registry__AccessRules *rules, bool saved);

/* The rules of every integration, for the Admin page's list (NULL when they
 * could not be loaded: the cells then say "unknown"). */
Portico__Registry__ListAccessReply *admin_access_list_load(web_req_t *r);
void admin_access_list_free(Portico__Registry__ListAccessReply **rep_p);
/* One integration's rules in short: "everyone", "PROJ", "PROJ · 3 names". */
void admin_access_short(const Portico__Registry__ListAccessReply *list, int64_t integration_id, char *out,
                        size_t out_size);
/* GET and POST /admin/integrations/{id}/access */
void admin_access_edit(web_req_t *r, admin_ctx_t *a, int64_t integration_id);

/* The accounts whose access ended (NULL when it could not be loaded: the
 * Users page then shows no marks). Free with admin_access_ended_free. */
Portico__Registry__ListAccessEndedReply *admin_access_ended_load(web_req_t *r);
void admin_access_ended_free(Portico__Registry__ListAccessEndedReply **rep_p);
/* When and why one user's access ended, for the mark on the Users page:
 * true when it did. */
bool admin_access_ended_mark(const Portico__Registry__ListAccessEndedReply *ended, int64_t user_id, char *when,
                             size_t when_size, char *reason, size_t reason_size);

/* The newest refused logins, for the Users page's section
 * (templates/refused_logins.html): the one item of the list "refused". */
void admin_access_refused_values(tmpl_ctx_t *c, web_req_t *r);

#endif
