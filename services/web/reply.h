/* Answering a request with a page: what handlers call. This is where the
 * request's session is looked up for the layout, the page is rendered
 * from its template (page.h) and sent (web.h). Transport code (http.c,
 * gate.c) renders no pages; page code does no I/O; this layer joins them. */
#ifndef PORTICO_WEB_REPLY_H
#define PORTICO_WEB_REPLY_H

#include "page.h"
#include "session.h"
#include "web.h"

/* Values for a page of title: the layout's, for this request's session. */
tmpl_ctx_t *web_page_ctx(web_req_t *r, const char *title);
/* Render template with *values (then destroyed) and send it. A template
 * that fails to render is logged and answered with a 500 page. */
void web_page(web_req_t *r, int status, const char *template_name, tmpl_ctx_t **values);
/* Send markup built in C inside the layout: b holds the page's main part. */
void web_send_html(web_req_t *r, int status, const sbuf_t *page);

/* A full page that says what happened and what to do. */
void web_error_page(web_req_t *r, int status, const char *title, const char *what, const char *next_step);
/* Map a bus error to a page: 503 unavailable, 504 timeout, 400, 404 ... */
void web_bus_error_page(web_req_t *r, const bus_error_t *err, const char *doing);
/* After web_session() gave NULL: true, with an error page answered, when
 * that was because the registry could not be asked (not because there is
 * no session): a page must not send a signed-in user to the login then. */
bool web_session_unknown(web_req_t *r, const char *doing);

/* Per-client limits: true when the client (r->addr) may go on (a token is
 * used when take); otherwise a 429 page with Retry-After is sent and false
 * returned. what names the budget ("login_start", ...). */
bool web_rate_ok(web_req_t *r, const char *what, long per_minute, bool take);

/* The POST is from our own pages: Origin / Sec-Fetch-Site, and the form's
 * csrf field matches the session. Answers 403 itself and returns false. */
bool web_post_ok(web_req_t *r);

#endif
