/* The page layout shared by every HTML page (page.h). */
#include "page.h"

#include <string.h>

extern const tmpl_source_t web_templates[]; /* build/gen/web_templates.c */

tmpl_lib_t *page_templates;

int page_templates_load(char *err, size_t err_size)
{
    page_templates = tmpl_lib_new(web_templates, err, err_size);
    return page_templates ? 0 : -1;
}

void page_templates_free(void)
{
    tmpl_lib_destroy(&page_templates);
}

tmpl_ctx_t *page_ctx_new(const char *title, const web_session_t *s)
{
    tmpl_ctx_t *c = tmpl_ctx_new();
    if (!c)
        return NULL;
    tmpl_set(c, "title", title);
    tmpl_set(c, "base", web_cfg.public_path);
    tmpl_set_bool(c, "show_admin", s && (s->is_admin || s->setup));
    tmpl_set_bool(c, "account", s && s->user_id);
    tmpl_set(c, "who", s ? (s->display_name[0] ? s->display_name : s->user_name) : "");
    tmpl_set_bool(c, "session", s != NULL);
    tmpl_set(c, "csrf", s ? s->csrf : "");
    tmpl_set_list(c, "notices");
    return c;
}

void page_notice(tmpl_ctx_t *c, const char *kind, const char *text)
{
    tmpl_ctx_t *n = tmpl_add(c, "notices");
    tmpl_set(n, "kind", kind);
    tmpl_set(n, "role", strcmp(kind, "error") ? "status" : "alert");
    tmpl_set(n, "text", text);
}

int page_render(const char *name, const tmpl_ctx_t *values, sbuf_t *out, char *err, size_t err_size)
{
    return tmpl_render(page_templates, name, values, out, err, err_size);
}
