/* The page layout shared by every HTML page, and the static assets. */
#include "web.h"

#include <string.h>

void page_begin(sbuf_t *b, web_req_t *r, const char *title)
{
    const web_session_t *s = web_session(r);
    sbuf_puts(b, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                 "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>");
    sbuf_html(b, title);
    sbuf_printf(b,
                " · Portico</title><link rel=\"stylesheet\" href=\"%s/static/portico.css\">"
                "<script src=\"%s/static/portico.js\" defer></script></head><body>",
                web_cfg.public_path, web_cfg.public_path);
    sbuf_printf(b, "<header class=\"top\"><a class=\"brand\" href=\"%s/\">Portico</a><nav>", web_cfg.public_path);
    if (s && (s->is_admin || s->setup))
        sbuf_printf(b, "<a href=\"%s/admin\">Admin</a>", web_cfg.public_path);
    if (s && s->user_id) {
        sbuf_printf(b, "<a href=\"%s/account\">", web_cfg.public_path);
        sbuf_html(b, s->display_name[0] ? s->display_name : s->user_name);
        sbuf_puts(b, "</a>");
    }
    if (s) {
        sbuf_printf(b, "<form method=\"post\" action=\"%s/logout\" class=\"inline\">", web_cfg.public_path);
        page_csrf(b, r);
        sbuf_puts(b, "<button type=\"submit\" class=\"link\">Log out</button></form>");
    } else {
        sbuf_printf(b, "<a href=\"%s/login\">Log in</a>", web_cfg.public_path);
    }
    sbuf_puts(b, "</nav></header><main>");
}

void page_end(sbuf_t *b)
{
    sbuf_puts(b, "</main><footer>Portico</footer></body></html>");
}

void page_csrf(sbuf_t *b, web_req_t *r)
{
    const web_session_t *s = web_session(r);
    sbuf_puts(b, "<input type=\"hidden\" name=\"csrf\" value=\"");
    sbuf_html(b, s ? s->csrf : "");
    sbuf_puts(b, "\">");
}

void page_notice(sbuf_t *b, const char *kind, const char *text)
{
    sbuf_printf(b, "<div class=\"notice %s\" role=\"%s\">", kind, strcmp(kind, "error") ? "status" : "alert");
    sbuf_html(b, text);
    sbuf_puts(b, "</div>");
}
