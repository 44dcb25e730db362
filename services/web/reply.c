/* Answering with pages (reply.h). */
#include "reply.h"

#include "log.h"

#include <stdio.h>
#include <string.h>

tmpl_ctx_t *web_page_ctx(web_req_t *r, const char *title)
{
    return page_ctx_new(title, web_session(r));
}

void web_send_html(web_req_t *r, int status, const sbuf_t *page)
{
    web_send(r, status, "text/html; charset=utf-8", page->data ? page->data : "", page->len, NULL);
}

/* The last resort when a template fails: fixed text, no template. */
static void s_plain_500(web_req_t *r)
{
    static const char text[] = "Something went wrong: the page could not be produced. Try again.\n";
    web_send(r, 500, "text/plain; charset=utf-8", text, sizeof text - 1, NULL);
}

void web_page(web_req_t *r, int status, const char *template_name, tmpl_ctx_t **values)
{
    sbuf_t b;
    sbuf_init(&b);
    char err[200] = "";
    int rc = *values ? page_render(template_name, *values, &b, err, sizeof err) : -1;
    tmpl_ctx_destroy(values);
    if (rc == 0) {
        web_send_html(r, status, &b);
    } else {
        log_error("page not rendered", "template=%s why=%s", template_name, err[0] ? err : "out of memory");
        if (strcmp(template_name, "error") != 0)
            web_error_page(r, 500, "Something went wrong", "The page could not be produced.", "Try again.");
        else
            s_plain_500(r);
    }
    sbuf_free(&b);
}

void web_error_page(web_req_t *r, int status, const char *title, const char *what, const char *next_step)
{
    tmpl_ctx_t *c = web_page_ctx(r, title);
    tmpl_set(c, "what", what);
    tmpl_set(c, "next_step", next_step ? next_step : "");
    tmpl_set(c, "request_id", r->request_id);
    web_page(r, status, "error", &c);
}

void web_bus_error_page(web_req_t *r, const bus_error_t *err, const char *doing)
{
    int status = web_status_for(err);
    const char *title = status == 503   ? "Service unavailable"
                        : status == 504 ? "This took too long"
                        : status == 404 ? "Not found"
                        : status == 429 ? "Too many attempts"
                        : status >= 500 ? "Something went wrong"
                                        : "This did not work";
    const char *next_step = status == 503 || status == 504
                                ? "Wait a moment and try again. If it keeps happening, ask your Portico operator to "
                                  "check /readyz and the service logs."
                            : status >= 500 ? "Try again. If it keeps happening, give the reference below to your "
                                              "Portico operator."
                                            : NULL;
    char what[400];
    snprintf(what, sizeof what, "%s%s%s", doing ? doing : "", doing ? ": " : "",
             err->message[0] ? err->message : "the request failed");
    log_warn("request failed", "code=%s status=%d", bus_code_name(err->code), status);
    web_error_page(r, status, title, what, next_step);
}

bool web_rate_ok(web_req_t *r, const char *what, long per_minute, bool take)
{
    int wait = web_rate_wait(r, what, per_minute, take);
    if (!wait)
        return true;
    char next_step[120];
    snprintf(next_step, sizeof next_step, "Wait %d second%s and try again.", wait, wait == 1 ? "" : "s");
    web_error_page(r, 429, "Too many attempts",
                   "This address has sent more of these requests than Portico accepts "
                   "in a minute.",
                   next_step);
    return false;
}

bool web_post_ok(web_req_t *r)
{
    if (!web_same_origin(r)) {
        char q[300];
        log_warn("refused a cross-site request", "path=%s", log_quote(r->ri->local_uri, q, sizeof q));
        web_error_page(r, 403, "Request refused",
                       "This form was sent from another site, or from an address other than the one Portico is "
                       "configured for.",
                       "Open Portico at its configured address and try again.");
        return false;
    }
    if (!web_csrf_ok(r)) {
        char q[300];
        log_warn("refused a request without a valid CSRF token", "path=%s", log_quote(r->ri->local_uri, q, sizeof q));
        web_error_page(r, 403, "Request refused", "This form has expired or did not come from this Portico session.",
                       "Go back, reload the page and send the form again.");
        return false;
    }
    return true;
}

bool web_session_unknown(web_req_t *r, const char *doing)
{
    if (r->session_state == 2 || r->session_err.code == PORTICO__ERROR_CODE__OK)
        return false;
    web_bus_error_page(r, &r->session_err, doing);
    return true;
}
