/* The HTML page skeleton and the pages every flow shares: login, consent
 * and error (applinks.c has the administrator's pages).
 * Every dynamic value goes through emu_buf_html (display names contain
 * markup on purpose). */
#include "emulator.h"

#include <stdlib.h>

static const char s_head1[] =
	"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
	"<title>";
static const char s_head2[] =
	" - Bitbucket</title>"
	"<style>body{font-family:sans-serif;background:#f4f5f7;margin:0}"
	"main{max-width:28rem;margin:4rem auto;background:#fff;padding:2rem;"
	"border-radius:4px;box-shadow:0 1px 3px rgba(0,0,0,.2)}"
	"main.wide{max-width:52rem}"
	"label{display:block;margin-top:1rem;font-weight:bold}"
	"input[type=text],input[type=password],input[type=url],textarea{width:100%;"
	"box-sizing:border-box;padding:.4rem}"
	"textarea{font-family:monospace;min-height:10rem}"
	"input[readonly]{background:#f4f5f7;font-family:monospace}"
	"fieldset{margin-top:1rem;border:1px solid #dfe1e6;border-radius:4px}"
	"legend{font-weight:bold}fieldset label{display:inline;font-weight:normal;margin:0}"
	"fieldset div{margin:.3rem 0}"
	"button{margin-top:1.5rem;margin-right:.5rem;padding:.5rem 1.2rem}"
	"table{width:100%;border-collapse:collapse;margin-top:1rem}"
	"th,td{text-align:left;padding:.4rem;border-bottom:1px solid #dfe1e6;vertical-align:top}"
	".hint,.muted{color:#5e6c84;font-size:.9rem}.notice{background:#e3fcef;padding:.6rem}"
	".error{color:#bf2600}</style></head>\n<body>";
static const char s_tail[] = "</main></body></html>\n";

void emu_page_begin(struct emu_buf *b, const char *title, bool wide)
{
	emu_buf_puts(b, s_head1);
	emu_buf_html(b, title);
	emu_buf_puts(b, s_head2);
	emu_buf_puts(b, wide ? "<main class=\"wide\">\n" : "<main>\n");
}

void emu_page_end(struct emu_req *r, int status, struct emu_buf *b)
{
	emu_buf_puts(b, s_tail);
	char *html = emu_buf_take(b);
	if (html)
		emu_send_html(r, status, html);
	else
		emu_send(r, 500, "text/plain", "out of memory", 13);
	free(html);
}

void emu_page_error(struct emu_req *r, int status, const char *title,
		    const char *message)
{
	struct emu_buf b = { 0 };
	emu_page_begin(&b, "Error", false);
	emu_buf_puts(&b, "<h1>");
	emu_buf_html(&b, title);
	emu_buf_puts(&b, "</h1>\n<p class=\"error\" role=\"alert\">");
	emu_buf_html(&b, message);
	emu_buf_puts(&b, "</p>\n");
	emu_page_end(r, status, &b);
}

void emu_page_login(struct emu_req *r, int status, const char *next,
		    const char *error)
{
	struct emu_buf b = { 0 };
	emu_page_begin(&b, "Log in", false);
	emu_buf_puts(&b, "<h1>Log in</h1>\n");
	if (error) {
		emu_buf_puts(&b, "<p class=\"error\" role=\"alert\">");
		emu_buf_html(&b, error);
		emu_buf_puts(&b, "</p>\n");
	}
	emu_buf_puts(&b, "<form method=\"post\" action=\"");
	emu_buf_html(&b, g_cfg.context);
	emu_buf_puts(&b, "/j_atl_security_check\">\n"
		     "<label for=\"j_username\">Username</label>\n"
		     "<input type=\"text\" id=\"j_username\" name=\"j_username\" autocomplete=\"username\" autofocus>\n"
		     "<label for=\"j_password\">Password</label>\n"
		     "<input type=\"password\" id=\"j_password\" name=\"j_password\" autocomplete=\"current-password\">\n"
		     "<input type=\"hidden\" name=\"next\" value=\"");
	emu_buf_html(&b, next);
	emu_buf_puts(&b, "\">\n<button type=\"submit\" id=\"submit\">Log in</button>\n</form>\n");
	emu_page_end(r, status, &b);
}

void emu_page_consent(struct emu_req *r, const struct emu_consent *c)
{
	struct emu_buf b = { 0 };
	emu_page_begin(&b, "Authorize", false);
	emu_buf_puts(&b, "<h1>");
	emu_buf_html(&b, c->app_name);
	emu_buf_puts(&b, " wants access to your account</h1>\n<p>Logged in as <strong>");
	emu_buf_html(&b, c->user->display);
	emu_buf_puts(&b, "</strong> (");
	emu_buf_html(&b, c->user->name);
	emu_buf_puts(&b, ")</p>\n<p>It will be able to:</p>\n<ul id=\"scopes\">\n");
	if (c->scope) {
		for (unsigned bit = 1; bit && bit <= SCOPE_SYSTEM_ADMIN; bit <<= 1) {
			if (!(c->scope & bit))
				continue;
			char *name = emu_scope_string(bit);
			emu_buf_puts(&b, "<li>");
			emu_buf_html(&b, emu_scope_description(bit));
			emu_buf_puts(&b, " (<code>");
			emu_buf_html(&b, name ? name : "");
			emu_buf_puts(&b, "</code>)</li>\n");
			free(name);
		}
	} else {
		emu_buf_puts(&b, "<li>Read and write data on your behalf</li>\n");
	}
	emu_buf_puts(&b, "</ul>\n<form method=\"post\" action=\"");
	emu_buf_html(&b, c->action);
	emu_buf_puts(&b, "\">\n");
	for (size_t i = 0; i < 3 && c->hidden_names[i]; i++) {
		emu_buf_puts(&b, "<input type=\"hidden\" name=\"");
		emu_buf_html(&b, c->hidden_names[i]);
		emu_buf_puts(&b, "\" value=\"");
		emu_buf_html(&b, c->hidden_values[i]);
		emu_buf_puts(&b, "\">\n");
	}
	emu_buf_puts(&b, "<button type=\"submit\" name=\"decision\" value=\"allow\" id=\"approve\">Allow</button>\n"
		     "<button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button>\n"
		     "</form>\n");
	emu_page_end(r, 200, &b);
}
