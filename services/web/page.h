/* Pages: the layout every HTML page shares, put together from templates
 * (the .html files in templates/, tmpl.h). This layer does no I/O: it reads no cookie
 * and asks no service; whoever renders a page passes in what it shows
 * (reply.h does that for handlers). */
#ifndef PORTICO_WEB_PAGE_H
#define PORTICO_WEB_PAGE_H

#include "tmpl.h"
#include "web.h"

/* The web's templates, loaded at start (page_templates_load). */
extern tmpl_lib_t *page_templates;

/* Check and load the compiled-in templates. 0, or -1 with why in err. */
int page_templates_load(char *err, size_t err_size);
void page_templates_free(void);

/* Values for a page of title with the layout's (layout_top.html): the
 * navigation for session s (NULL: nobody signed in) and its CSRF field.
 * NULL when out of memory. */
tmpl_ctx_t *page_ctx_new(const char *title, const web_session_t *s);
/* Add a notice box (notices.html) to a page's values: kind is "ok",
 * "warn" or "error"; text is escaped like every value. */
void page_notice(tmpl_ctx_t *c, const char *kind, const char *text);

/* Render template name with values into out. 0, or -1 with why in err. */
int page_render(const char *name, const tmpl_ctx_t *values, sbuf_t *out, char *err, size_t err_size);

#endif
