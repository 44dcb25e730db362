/*
 * The application-link pages a Bitbucket administrator clicks through
 * (Administration > Applications > Application links), server-rendered
 * and without script. They need the browser session of a system
 * administrator; every form is a POST carrying atl_token, a CSRF token
 * bound to that session. Links are made with emu_link_create_oauth2/1,
 * exactly like the JSON admin API makes them.
 *
 *   GET  {ctx}/plugins/servlet/applinks/listApplicationLinks       emu_applinks_list
 *   GET  {ctx}/plugins/servlet/applinks/createApplicationLink      emu_applinks_create
 *   POST {ctx}/plugins/servlet/applinks/createApplicationLink      emu_applinks_create
 *   GET  {ctx}/plugins/servlet/applinks/configureApplicationLink   emu_applinks_configure
 *        ?client_id=... (OAuth 2 link) or ?consumer_key=... (OAuth 1 link)
 *
 * Create link: each POST names the step whose form it sends.
 *   step=type      Application type + Direction
 *     External application + Incoming  -> oauth2 form
 *     External application + Outgoing  -> error (not supported)
 *     Atlassian product                -> url form
 *   step=oauth2    Name, Redirect URL, Application permissions; Save makes
 *                  the link and redirects to its page (Client ID, Client secret)
 *   step=url       Application URL; Continue -> generic form
 *   step=generic   Application Name of the Generic Application; Continue ->
 *                  incoming form
 *   step=incoming  Incoming Authentication: Consumer Key, Consumer Name,
 *                  Public Key, Consumer Callback URL; Save makes the OAuth 1
 *                  consumer and redirects to the link's page
 * What earlier steps chose travels in hidden fields and is checked again.
 */
#include "emulator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define APPLINKS "/plugins/servlet/applinks/"
#define PAGE_LIST "listApplicationLinks"
#define PAGE_CREATE "createApplicationLink"
#define PAGE_CONFIGURE "configureApplicationLink"

/* The permissions the form offers, in Bitbucket's wording. PUBLIC_REPOS is
 * what every link gets without any of them. */
static const struct {
	unsigned bit;
	const char *label;
} s_perms[] = {
	{ SCOPE_REPO_READ, "Repositories: Read" },
	{ SCOPE_REPO_WRITE, "Repositories: Write" },
	{ SCOPE_REPO_ADMIN, "Repositories: Admin" },
	{ SCOPE_PROJECT_ADMIN, "Projects: Admin" },
	{ SCOPE_ACCOUNT_WRITE, "Account: Write" },
	{ SCOPE_ADMIN_WRITE, "Admin: Write" },
	{ SCOPE_SYSTEM_ADMIN, "System admin: Write" },
};
#define NPERMS (sizeof s_perms / sizeof s_perms[0])

/* ---- small writers ---------------------------------------------------------- */

/* {ctx}/plugins/servlet/applinks/<page>, HTML-escaped. */
static void s_url(struct emu_buf *b, const char *page)
{
	emu_buf_html(b, g_cfg.context);
	emu_buf_puts(b, APPLINKS);
	emu_buf_puts(b, page);
}

static void s_hidden(struct emu_buf *b, const char *name, const char *value)
{
	emu_buf_puts(b, "<input type=\"hidden\" name=\"");
	emu_buf_html(b, name);
	emu_buf_puts(b, "\" value=\"");
	emu_buf_html(b, value ? value : "");
	emu_buf_puts(b, "\">\n");
}

static void s_alert(struct emu_buf *b, const char *id, const char *text)
{
	if (!text)
		return;
	emu_buf_printf(b, "<p class=\"error\" role=\"alert\" id=\"%s\">", id);
	emu_buf_html(b, text);
	emu_buf_puts(b, "</p>\n");
}

/* A labelled text input (or textarea when type is NULL) with its hint and error. */
static void s_input(struct emu_buf *b, const char *id, const char *name, const char *type,
		    const char *label, const char *value, const char *hint, const char *error)
{
	char err_id[64];
	snprintf(err_id, sizeof err_id, "%s-error", id);
	emu_buf_printf(b, "<label for=\"%s\">", id);
	emu_buf_html(b, label);
	emu_buf_puts(b, "</label>\n");
	if (type) {
		emu_buf_printf(b, "<input type=\"%s\" id=\"%s\" name=\"%s\" spellcheck=\"false\" "
			       "autocomplete=\"off\" value=\"", type, id, name);
		emu_buf_html(b, value ? value : "");
		emu_buf_puts(b, "\"");
	} else {
		emu_buf_printf(b, "<textarea id=\"%s\" name=\"%s\" spellcheck=\"false\" rows=\"10\"",
			       id, name);
	}
	if (error)
		emu_buf_printf(b, " aria-invalid=\"true\" aria-describedby=\"%s\"", err_id);
	emu_buf_puts(b, ">");
	if (!type) {
		emu_buf_html(b, value ? value : "");
		emu_buf_puts(b, "</textarea>");
	}
	emu_buf_puts(b, "\n");
	if (hint) {
		emu_buf_puts(b, "<p class=\"hint\">");
		emu_buf_html(b, hint);
		emu_buf_puts(b, "</p>\n");
	}
	s_alert(b, err_id, error);
}

/* A value shown for copying: a labelled read-only input. */
static void s_readonly(struct emu_buf *b, const char *id, const char *label, const char *value)
{
	emu_buf_printf(b, "<label for=\"%s\">", id);
	emu_buf_html(b, label);
	emu_buf_printf(b, "</label>\n<input type=\"text\" id=\"%s\" readonly value=\"", id);
	emu_buf_html(b, value);
	emu_buf_puts(b, "\">\n");
}

static void s_dt(struct emu_buf *b, const char *term, const char *value)
{
	emu_buf_puts(b, "<dt>");
	emu_buf_html(b, term);
	emu_buf_puts(b, "</dt><dd>");
	emu_buf_html(b, value);
	emu_buf_puts(b, "</dd>\n");
}

static void s_breadcrumb(struct emu_buf *b)
{
	emu_buf_puts(b, "<p><a href=\"");
	s_url(b, PAGE_LIST);
	emu_buf_puts(b, "\">Application links</a></p>\n");
}

/* ---- who may see these pages ---------------------------------------------- */

struct s_admin {
	const struct emu_user *user;
	char csrf[EMU_TOKEN_BUF];
};

/* next is a local path, sent to the login page in its query. */
static void s_login_redirect(struct emu_req *r, const char *next)
{
	struct emu_buf b = { 0 };
	emu_buf_printf(&b, "%s/login?next=", g_cfg.context);
	emu_buf_pct(&b, next, strlen(next));
	char *loc = emu_buf_take(&b);
	if (loc)
		emu_redirect(r, loc);
	else
		emu_page_error(r, 500, "Error", "Out of memory.");
	free(loc);
}

static void s_forbidden(struct emu_req *r, const struct emu_user *user)
{
	struct emu_buf b = { 0 }, next = { 0 };
	emu_page_begin(&b, "Permission denied", false);
	emu_buf_puts(&b, "<h1>Permission denied</h1>\n<p class=\"error\" role=\"alert\">"
		     "You need administrator permission to manage application links.</p>\n"
		     "<p>You are logged in as <strong>");
	emu_buf_html(&b, user->display);
	emu_buf_puts(&b, "</strong> (");
	emu_buf_html(&b, user->name);
	emu_buf_puts(&b, "). Bitbucket administrators can create application links.</p>\n");
	/* Log out, then the login page, then back to the list. */
	emu_buf_printf(&next, "%s" APPLINKS PAGE_LIST, g_cfg.context);
	emu_buf_puts(&b, "<p><a id=\"switch-user\" href=\"");
	emu_buf_html(&b, g_cfg.context);
	emu_buf_puts(&b, "/j_atl_security_logout?next=");
	if (next.data)
		emu_buf_pct(&b, next.data, next.len);
	emu_buf_puts(&b, "\">Log in as another user</a></p>\n");
	emu_buf_free(&next);
	emu_page_end(r, 403, &b);
}

/* True when a system administrator is logged in; fills in the session's
 * CSRF token (made on first use, kept for the session's life). Otherwise
 * the answer has been sent: the login page (then next) or 403. */
static bool s_admin_session(struct emu_req *r, const char *next, struct s_admin *a)
{
	char sid[EMU_TOKEN_BUF], fresh[EMU_TOKEN_BUF];
	bool ok = false;
	a->user = emu_session_user(r, sid);
	if (!a->user) {
		s_login_redirect(r, next);
		return false;
	}
	if (!emu_user_is_admin(a->user)) {
		s_forbidden(r, a->user);
		return false;
	}
	if (emu_random_token(fresh) != 0) {
		emu_page_error(r, 500, "Error", "No randomness available.");
		return false;
	}
	emu_lock();
	struct emu_rec *rec = emu_rec_find(REC_SESSION, sid);
	if (rec && !rec->dead_at && rec->expires > emu_now()) {
		if (!rec->csrf[0])
			snprintf(rec->csrf, sizeof rec->csrf, "%s", fresh);
		snprintf(a->csrf, sizeof a->csrf, "%s", rec->csrf);
		ok = true;
	}
	emu_unlock();
	if (!ok)
		s_login_redirect(r, next); /* logged out in between */
	return ok;
}

/* For GET pages: back to this very URL after logging in. */
static bool s_admin_get(struct emu_req *r, struct s_admin *a)
{
	char *here = emu_req_local_url(r);
	bool ok = here && s_admin_session(r, here, a);
	if (!here)
		emu_page_error(r, 500, "Error", "Out of memory.");
	free(here);
	return ok;
}

/* ---- list ------------------------------------------------------------------- */

void emu_applinks_list(struct emu_req *r)
{
	struct s_admin a;
	struct emu_buf b = { 0 };
	if (strcmp(r->method, "GET") != 0) {
		emu_send_405(r, "GET");
		return;
	}
	if (!s_admin_get(r, &a))
		return;
	emu_page_begin(&b, "Application links", true);
	emu_buf_puts(&b, "<h1>Application links</h1>\n<p class=\"muted\">Logged in as ");
	emu_buf_html(&b, a.user->display);
	emu_buf_puts(&b, " (");
	emu_buf_html(&b, a.user->name);
	emu_buf_puts(&b, ") &middot; <a href=\"");
	emu_buf_html(&b, g_cfg.context);
	emu_buf_puts(&b, "/j_atl_security_logout\">Log out</a></p>\n"
		     "<p>Application links let other applications use Bitbucket: an "
		     "<em>External application</em> with an <em>Incoming</em> link logs in with "
		     "Bitbucket over OAuth 2.0; a Generic Application with Incoming "
		     "Authentication uses OAuth 1.0a.</p>\n<form method=\"get\" action=\"");
	s_url(&b, PAGE_CREATE);
	emu_buf_puts(&b, "\"><button type=\"submit\" id=\"create-link\">Create link</button></form>\n");

	emu_lock();
	size_t n2 = emu_applink_count(), n1 = emu_consumer_count();
	if (n2 + n1 == 0) {
		emu_buf_puts(&b, "<p id=\"no-links\">There are no application links yet.</p>\n");
	} else {
		emu_buf_puts(&b, "<table id=\"links\">\n<thead><tr><th scope=\"col\">Name</th>"
			     "<th scope=\"col\">Type</th><th scope=\"col\">Direction</th>"
			     "<th scope=\"col\">Authentication</th><th scope=\"col\">Actions</th>"
			     "</tr></thead>\n<tbody>\n");
		for (size_t i = 0; i < n2; i++) {
			const struct emu_applink *l = emu_applink_at(i);
			emu_buf_puts(&b, "<tr><td>");
			emu_buf_html(&b, l->name);
			emu_buf_puts(&b, "</td><td>External application</td><td>Incoming</td>"
				     "<td>OAuth 2.0</td><td><a href=\"");
			s_url(&b, PAGE_CONFIGURE);
			emu_buf_puts(&b, "?client_id=");
			emu_buf_pct(&b, l->client_id, strlen(l->client_id));
			emu_buf_puts(&b, "\">Details</a></td></tr>\n");
		}
		for (size_t i = 0; i < n1; i++) {
			const struct emu_consumer *c = emu_consumer_at(i);
			emu_buf_puts(&b, "<tr><td>");
			emu_buf_html(&b, c->link_name);
			if (c->link_url[0]) {
				emu_buf_puts(&b, "<br><span class=\"muted\">");
				emu_buf_html(&b, c->link_url);
				emu_buf_puts(&b, "</span>");
			}
			emu_buf_puts(&b, "</td><td>Generic Application</td><td>Incoming</td>"
				     "<td>OAuth 1.0a</td><td><a href=\"");
			s_url(&b, PAGE_CONFIGURE);
			emu_buf_puts(&b, "?consumer_key=");
			emu_buf_pct(&b, c->key, strlen(c->key));
			emu_buf_puts(&b, "\">Details</a></td></tr>\n");
		}
		emu_buf_puts(&b, "</tbody></table>\n");
	}
	emu_unlock();
	emu_page_end(r, 200, &b);
}

/* ---- create: form state ------------------------------------------------------ */

struct s_create {
	const char *type;      /* "atlassian" / "external" */
	const char *direction; /* "incoming" / "outgoing" */
	const char *name;
	const char *redirect_url;
	unsigned perms;
	const char *app_url;
	const char *app_name;
	const char *consumer_key;
	const char *consumer_name;
	const char *public_key;
	const char *callback_url;
	/* messages, NULL when none */
	const char *e_top, *e_type, *e_direction, *e_name, *e_redirect, *e_perms;
	const char *e_app_url, *e_app_name, *e_key, *e_consumer_name, *e_public_key, *e_callback;
};

static void s_form_open(struct emu_buf *b, const struct s_admin *a, const char *step)
{
	emu_buf_puts(b, "<form method=\"post\" action=\"");
	s_url(b, PAGE_CREATE);
	emu_buf_puts(b, "\" novalidate>\n");
	s_hidden(b, "atl_token", a->csrf);
	s_hidden(b, "step", step);
}

static void s_form_close(struct emu_buf *b, const char *button_id, const char *button)
{
	emu_buf_printf(b, "<button type=\"submit\" id=\"%s\">%s</button>\n<a href=\"", button_id,
		       button);
	s_url(b, PAGE_LIST);
	emu_buf_puts(b, "\">Cancel</a>\n</form>\n");
}

static void s_create_head(struct emu_buf *b, const char *title, const struct s_create *c)
{
	emu_page_begin(b, title, true);
	s_breadcrumb(b);
	emu_buf_puts(b, "<h1>");
	emu_buf_html(b, title);
	emu_buf_puts(b, "</h1>\n");
	s_alert(b, "form-error", c->e_top);
}

static void s_radio(struct emu_buf *b, const char *name, const char *value, const char *label,
		    const char *chosen)
{
	emu_buf_printf(b, "<div><input type=\"radio\" id=\"%s-%s\" name=\"%s\" value=\"%s\"%s> "
		       "<label for=\"%s-%s\">%s</label></div>\n", name, value, name, value,
		       chosen && strcmp(chosen, value) == 0 ? " checked" : "", name, value, label);
}

static void s_render_type(struct emu_req *r, const struct s_admin *a, const struct s_create *c,
			  int status)
{
	struct emu_buf b = { 0 };
	s_create_head(&b, "Create link", c);
	s_form_open(&b, a, "type");
	emu_buf_puts(&b, "<fieldset id=\"application-type\"><legend>Application type</legend>\n");
	s_radio(&b, "application_type", "atlassian", "Atlassian product", c->type);
	s_radio(&b, "application_type", "external", "External application", c->type);
	emu_buf_puts(&b, "<p class=\"hint\">An External application uses Bitbucket as its OAuth 2.0 "
		     "provider. Atlassian product also links any other application, with OAuth "
		     "1.0a.</p>\n");
	s_alert(&b, "application-type-error", c->e_type);
	emu_buf_puts(&b, "</fieldset>\n<fieldset id=\"direction\"><legend>Direction</legend>\n");
	s_radio(&b, "direction", "incoming", "Incoming", c->direction ? c->direction : "incoming");
	s_radio(&b, "direction", "outgoing", "Outgoing", c->direction);
	emu_buf_puts(&b, "<p class=\"hint\">For an External application. Incoming: the "
		     "application accesses Bitbucket's data.</p>\n");
	s_alert(&b, "direction-error", c->e_direction);
	emu_buf_puts(&b, "</fieldset>\n");
	s_form_close(&b, "continue", "Continue");
	emu_page_end(r, status, &b);
}

static void s_render_oauth2(struct emu_req *r, const struct s_admin *a, const struct s_create *c,
			    int status)
{
	struct emu_buf b = { 0 };
	s_create_head(&b, "Create link", c);
	emu_buf_puts(&b, "<p class=\"muted\">External application &middot; Incoming</p>\n");
	s_form_open(&b, a, "oauth2");
	s_input(&b, "name", "name", "text", "Name", c->name,
		"A name people will recognise, shown when they authorize the application.",
		c->e_name);
	s_input(&b, "redirect-url", "redirect_url", "url", "Redirect URL", c->redirect_url,
		"Where Bitbucket sends people back after they authorize the application; it must "
		"match the redirect_uri the application sends exactly.", c->e_redirect);
	emu_buf_puts(&b, "<fieldset id=\"permissions\"><legend>Application permissions</legend>\n");
	for (size_t i = 0; i < NPERMS; i++) {
		char *code = emu_scope_string(s_perms[i].bit);
		const char *v = code ? code : "";
		emu_buf_printf(&b, "<div><input type=\"checkbox\" id=\"perm-%s\" name=\"permission\" "
			       "value=\"%s\"%s> <label for=\"perm-%s\">", v, v,
			       c->perms & s_perms[i].bit ? " checked" : "", v);
		emu_buf_html(&b, s_perms[i].label);
		emu_buf_printf(&b, " <code>(%s)</code></label></div>\n", v);
		free(code);
	}
	emu_buf_puts(&b, "<p class=\"hint\">Tick only what the application needs. Without any, it "
		     "sees public repositories only.</p>\n");
	s_alert(&b, "permissions-error", c->e_perms);
	emu_buf_puts(&b, "</fieldset>\n");
	s_form_close(&b, "save", "Save");
	emu_page_end(r, status, &b);
}

static void s_render_url(struct emu_req *r, const struct s_admin *a, const struct s_create *c,
			 int status)
{
	struct emu_buf b = { 0 };
	s_create_head(&b, "Create link", c);
	emu_buf_puts(&b, "<p class=\"muted\">Atlassian product</p>\n");
	s_form_open(&b, a, "url");
	s_input(&b, "application-url", "application_url", "url", "Application URL", c->app_url,
		"The address of the application to link, such as https://portico.example.com.",
		c->e_app_url);
	s_form_close(&b, "continue", "Continue");
	emu_page_end(r, status, &b);
}

static void s_render_generic(struct emu_req *r, const struct s_admin *a,
			     const struct s_create *c, int status)
{
	struct emu_buf b = { 0 };
	s_create_head(&b, "Link applications", c);
	emu_buf_puts(&b, "<p class=\"muted\">No Atlassian product answered at this URL, so it is "
		     "linked as a Generic Application.</p>\n");
	s_form_open(&b, a, "generic");
	s_hidden(&b, "application_url", c->app_url);
	emu_buf_puts(&b, "<dl>\n");
	s_dt(&b, "Application URL", c->app_url);
	s_dt(&b, "Application Type", "Generic Application");
	emu_buf_puts(&b, "</dl>\n");
	s_input(&b, "application-name", "application_name", "text", "Application Name", c->app_name,
		NULL, c->e_app_name);
	s_form_close(&b, "continue", "Continue");
	emu_page_end(r, status, &b);
}

static void s_render_incoming(struct emu_req *r, const struct s_admin *a,
			      const struct s_create *c, int status)
{
	struct emu_buf b = { 0 };
	s_create_head(&b, "Incoming Authentication", c);
	emu_buf_puts(&b, "<dl>\n");
	s_dt(&b, "Application Name", c->app_name);
	s_dt(&b, "Application URL", c->app_url);
	emu_buf_puts(&b, "</dl>\n<p>Let the application sign requests with OAuth 1.0a (RSA-SHA1): "
		     "enter the consumer it will use.</p>\n");
	s_form_open(&b, a, "incoming");
	s_hidden(&b, "application_url", c->app_url);
	s_hidden(&b, "application_name", c->app_name);
	s_input(&b, "consumer-key", "consumer_key", "text", "Consumer Key", c->consumer_key, NULL,
		c->e_key);
	s_input(&b, "consumer-name", "consumer_name", "text", "Consumer Name", c->consumer_name,
		"Shown to people when they authorize the application.", c->e_consumer_name);
	s_input(&b, "public-key", "public_key", NULL, "Public Key", c->public_key,
		"The application's RSA public key in PEM form, from -----BEGIN PUBLIC KEY----- to "
		"-----END PUBLIC KEY-----.", c->e_public_key);
	s_input(&b, "consumer-callback-url", "consumer_callback_url", "url",
		"Consumer Callback URL (optional)", c->callback_url,
		"Leave empty unless the application asks for one: it then sends its own callback.",
		c->e_callback);
	s_form_close(&b, "save", "Save");
	emu_page_end(r, status, &b);
}

/* ---- create: steps ------------------------------------------------------------ */

/* A single-valued form field with surrounding white space removed (in place);
 * NULL when absent or empty. */
static const char *s_field(struct emu_req *r, const char *name)
{
	for (size_t i = 0; i < r->form.count; i++) {
		if (strcmp(r->form.items[i].name, name) != 0)
			continue;
		char *v = r->form.items[i].value;
		size_t n = strlen(v);
		while (n && strchr(" \t\r\n", v[n - 1]))
			v[--n] = '\0';
		size_t lead = strspn(v, " \t\r\n");
		memmove(v, v + lead, n - lead + 1);
		return v[0] ? v : NULL;
	}
	return NULL;
}

static const char s_not_created[] =
	"The application link was not created. Correct the fields marked below.";

/* Redirects to the new link's page. */
static void s_to_configure(struct emu_req *r, const char *param, const char *value)
{
	struct emu_buf b = { 0 };
	emu_buf_printf(&b, "%s" APPLINKS PAGE_CONFIGURE "?%s=", g_cfg.context, param);
	emu_buf_pct(&b, value, strlen(value));
	emu_buf_puts(&b, "&created=1");
	char *loc = emu_buf_take(&b);
	if (loc)
		emu_redirect(r, loc);
	else
		emu_page_error(r, 500, "Error", "Out of memory.");
	free(loc);
}

static void s_step_type(struct emu_req *r, const struct s_admin *a, struct s_create *c)
{
	bool atlassian = c->type && strcmp(c->type, "atlassian") == 0;
	bool external = c->type && strcmp(c->type, "external") == 0;
	if (!atlassian && !external) {
		c->e_type = "Choose an application type.";
	} else if (external && (!c->direction || (strcmp(c->direction, "incoming") != 0 &&
						  strcmp(c->direction, "outgoing") != 0))) {
		c->e_direction = "Choose a direction.";
	} else if (external && strcmp(c->direction, "outgoing") == 0) {
		c->e_direction = "Outgoing links to an External application are not supported: "
				 "Bitbucket can only be the OAuth 2.0 provider here. Choose Incoming "
				 "to let the application log in with Bitbucket.";
	}
	if (c->e_type || c->e_direction) {
		s_render_type(r, a, c, 400);
		return;
	}
	if (external)
		s_render_oauth2(r, a, c, 200);
	else
		s_render_url(r, a, c, 200);
}

static void s_step_oauth2(struct emu_req *r, const struct s_admin *a, struct s_create *c)
{
	for (size_t i = 0; i < r->form.count; i++) {
		if (strcmp(r->form.items[i].name, "permission") != 0)
			continue;
		const char *v = r->form.items[i].value;
		unsigned bit = emu_scope_from_name(v, strlen(v));
		bool offered = false;
		for (size_t k = 0; k < NPERMS; k++)
			offered = offered || (bit && s_perms[k].bit == bit);
		if (!offered)
			c->e_perms = "Unknown permission: tick only the permissions listed.";
		else
			c->perms |= bit;
	}
	if (!emu_link_name_ok(c->name))
		c->e_name = c->name ? "The name may have at most 200 characters and no control "
				      "characters."
				    : "Enter a name.";
	if (!c->redirect_url)
		c->e_redirect = "Enter the redirect URL.";
	else if (!emu_is_absolute_http_url(c->redirect_url))
		c->e_redirect = "Redirect URL is invalid: enter an absolute http:// or https:// URL "
				"without a #fragment.";
	if (c->e_name || c->e_redirect || c->e_perms) {
		c->e_top = s_not_created;
		s_render_oauth2(r, a, c, 400);
		return;
	}
	struct emu_link_oauth2 l = { .name = c->name, .redirect_url = c->redirect_url,
				     .perms = c->perms };
	switch (emu_link_create_oauth2(&l)) {
	case LINK_OK:
		s_to_configure(r, "client_id", l.out_client_id);
		break;
	case LINK_EXISTS:
		c->e_top = "The application link was not created: there are too many application "
			   "links.";
		s_render_oauth2(r, a, c, 409);
		break;
	case LINK_NO_RANDOM:
		emu_page_error(r, 500, "Error", "No randomness available.");
		break;
	default:
		c->e_top = s_not_created;
		s_render_oauth2(r, a, c, 400);
		break;
	}
}

static const char s_bad_app_url[] =
	"Enter the application's URL: an absolute http:// or https:// URL.";

static void s_step_url(struct emu_req *r, const struct s_admin *a, struct s_create *c)
{
	if (!c->app_url || !emu_is_absolute_http_url(c->app_url)) {
		c->e_app_url = s_bad_app_url;
		s_render_url(r, a, c, 400);
		return;
	}
	s_render_generic(r, a, c, 200);
}

static bool s_app_name_check(struct s_create *c)
{
	if (!emu_link_name_ok(c->app_name))
		c->e_app_name = c->app_name ? "The name may have at most 200 characters and no "
					      "control characters."
					    : "Enter the application name.";
	return !c->e_app_name;
}

static void s_step_generic(struct emu_req *r, const struct s_admin *a, struct s_create *c)
{
	if (!c->app_url || !emu_is_absolute_http_url(c->app_url)) {
		c->e_app_url = s_bad_app_url;
		s_render_url(r, a, c, 400);
		return;
	}
	if (!s_app_name_check(c)) {
		s_render_generic(r, a, c, 400);
		return;
	}
	if (!c->consumer_name)
		c->consumer_name = c->app_name; /* a starting point; the admin may change it */
	s_render_incoming(r, a, c, 200);
}

static void s_step_incoming(struct emu_req *r, const struct s_admin *a, struct s_create *c)
{
	/* Carried over from the earlier steps: checked again all the same. */
	if (!c->app_url || !emu_is_absolute_http_url(c->app_url)) {
		c->e_app_url = s_bad_app_url;
		s_render_url(r, a, c, 400);
		return;
	}
	if (!s_app_name_check(c)) {
		s_render_generic(r, a, c, 400);
		return;
	}
	if (!emu_consumer_key_ok(c->consumer_key))
		c->e_key = c->consumer_key ? "The consumer key may have at most 255 characters and "
					     "no spaces."
					   : "Enter the consumer key.";
	if (!emu_link_name_ok(c->consumer_name))
		c->e_consumer_name = c->consumer_name ? "The consumer name may have at most 200 "
							"characters and no control characters."
						      : "Enter the consumer name.";
	EVP_PKEY *pkey = emu_rsa_public_key_from_pem(c->public_key);
	if (!pkey)
		c->e_public_key = c->public_key
			? "The public key is not valid: paste an RSA public key of at least 1024 "
			  "bits in PEM form, from -----BEGIN PUBLIC KEY----- to -----END PUBLIC "
			  "KEY-----."
			: "Paste the application's public key.";
	EVP_PKEY_free(pkey);
	if (c->callback_url && !emu_is_absolute_http_url(c->callback_url))
		c->e_callback = "Enter an absolute http:// or https:// URL, or leave the field empty.";
	if (!c->e_key) {
		emu_lock();
		if (emu_consumer_find(c->consumer_key))
			c->e_key = "An application link with this consumer key exists already.";
		emu_unlock();
	}
	if (c->e_key || c->e_consumer_name || c->e_public_key || c->e_callback) {
		c->e_top = s_not_created;
		s_render_incoming(r, a, c, 400);
		return;
	}
	struct emu_link_oauth1 l = {
		.link_name = c->app_name,
		.link_url = c->app_url,
		.consumer_name = c->consumer_name,
		.consumer_key = c->consumer_key,
		.public_key = c->public_key,
		.callback_url = c->callback_url,
	};
	switch (emu_link_create_oauth1(&l)) {
	case LINK_OK:
		s_to_configure(r, "consumer_key", c->consumer_key);
		break;
	case LINK_EXISTS:
		c->e_top = "The application link was not created: its consumer key exists already, "
			   "or there are too many application links.";
		s_render_incoming(r, a, c, 409);
		break;
	default:
		c->e_top = s_not_created;
		s_render_incoming(r, a, c, 400);
		break;
	}
}

void emu_applinks_create(struct emu_req *r)
{
	struct s_admin a;
	struct s_create c = { 0 };
	char list[512];
	if (strcmp(r->method, "GET") == 0) {
		if (s_admin_get(r, &a))
			s_render_type(r, &a, &c, 200);
		return;
	}
	if (strcmp(r->method, "POST") != 0) {
		emu_send_405(r, "GET, POST");
		return;
	}
	/* A POST after the session ended: the form is lost, start from the list. */
	snprintf(list, sizeof list, "%s" APPLINKS PAGE_LIST, g_cfg.context);
	if (!s_admin_session(r, list, &a))
		return;
	const char *token = emu_req_form(r, "atl_token");
	if (!token || emu_params_count(&r->form, "atl_token") != 1 ||
	    !emu_consttime_eq(token, a.csrf)) {
		emu_page_error(r, 403, "XSRF check failed",
			       "The form's security token is missing or does not belong to your "
			       "session, so nothing was changed. Go back, reload the page and try "
			       "again.");
		return;
	}
	for (size_t i = 0; i < r->form.count; i++) {
		const char *n = r->form.items[i].name;
		if (strcmp(n, "permission") != 0 && emu_params_count(&r->form, n) > 1) {
			emu_page_error(r, 400, "Bad request", "A form field was sent twice.");
			return;
		}
	}
	c.type = s_field(r, "application_type");
	c.direction = s_field(r, "direction");
	c.name = s_field(r, "name");
	c.redirect_url = s_field(r, "redirect_url");
	c.app_url = s_field(r, "application_url");
	c.app_name = s_field(r, "application_name");
	c.consumer_key = s_field(r, "consumer_key");
	c.consumer_name = s_field(r, "consumer_name");
	c.public_key = s_field(r, "public_key");
	c.callback_url = s_field(r, "consumer_callback_url");
	const char *step = s_field(r, "step");
	if (!step)
		step = "";
	if (strcmp(step, "type") == 0)
		s_step_type(r, &a, &c);
	else if (strcmp(step, "oauth2") == 0)
		s_step_oauth2(r, &a, &c);
	else if (strcmp(step, "url") == 0)
		s_step_url(r, &a, &c);
	else if (strcmp(step, "generic") == 0)
		s_step_generic(r, &a, &c);
	else if (strcmp(step, "incoming") == 0)
		s_step_incoming(r, &a, &c);
	else
		emu_page_error(r, 400, "Bad request", "Unknown step of the Create link form.");
}

/* ---- one link's page ---------------------------------------------------------- */

static void s_configure_oauth2(struct emu_req *r, const char *client_id, bool created)
{
	struct emu_applink l;
	bool found = false;
	emu_lock();
	const struct emu_applink *p = emu_applink_find(client_id);
	if (p) {
		l = *p;
		found = true;
	}
	emu_unlock();
	if (!found) {
		emu_page_error(r, 404, "Application link not found",
			       "There is no application link with this client ID.");
		return;
	}
	struct emu_buf b = { 0 };
	emu_page_begin(&b, l.name, true);
	s_breadcrumb(&b);
	if (created)
		emu_buf_puts(&b, "<p class=\"notice\" role=\"status\" id=\"created\">The application "
			     "link was created. Copy the client ID and the client secret into the "
			     "application.</p>\n");
	emu_buf_puts(&b, "<h1>");
	emu_buf_html(&b, l.name);
	emu_buf_puts(&b, "</h1>\n<p class=\"muted\">External application &middot; Incoming &middot; "
		     "OAuth 2.0</p>\n<h2>Configure an incoming link</h2>\n");
	s_readonly(&b, "client-id", "Client ID", l.client_id);
	s_readonly(&b, "client-secret", "Client secret", l.client_secret);
	emu_buf_puts(&b, "<p class=\"hint\">Keep the client secret private: with it anyone can act "
		     "as this application.</p>\n<dl>\n");
	s_dt(&b, "Redirect URL", l.redirect_url);
	emu_buf_puts(&b, "<dt>Application permissions</dt><dd><ul id=\"link-permissions\">");
	bool any = false;
	for (size_t i = 0; i < NPERMS; i++) {
		if (!(l.perms & s_perms[i].bit))
			continue;
		char *code = emu_scope_string(s_perms[i].bit);
		emu_buf_puts(&b, "<li>");
		emu_buf_html(&b, s_perms[i].label);
		emu_buf_puts(&b, " <code>(");
		emu_buf_html(&b, code ? code : "");
		emu_buf_puts(&b, ")</code></li>");
		free(code);
		any = true;
	}
	if (!any)
		emu_buf_puts(&b, "<li>None: public repositories only</li>");
	emu_buf_puts(&b, "</ul></dd>\n</dl>\n");
	emu_page_end(r, 200, &b);
}

static void s_configure_oauth1(struct emu_req *r, const char *key, bool created)
{
	char link_name[EMU_MAX_NAME + 1], link_url[EMU_MAX_URL + 1], name[EMU_MAX_NAME + 1];
	char callback[EMU_MAX_URL + 1], consumer_key[256], bits[64] = "";
	bool found = false;
	emu_lock();
	const struct emu_consumer *c = emu_consumer_find(key);
	if (c) {
		found = true;
		snprintf(link_name, sizeof link_name, "%s", c->link_name);
		snprintf(link_url, sizeof link_url, "%s", c->link_url);
		snprintf(name, sizeof name, "%s", c->name);
		snprintf(callback, sizeof callback, "%s", c->callback);
		snprintf(consumer_key, sizeof consumer_key, "%s", c->key);
		snprintf(bits, sizeof bits, "RSA, %d bits", c->pkey ? EVP_PKEY_get_bits(c->pkey) : 0);
	}
	emu_unlock();
	if (!found) {
		emu_page_error(r, 404, "Application link not found",
			       "There is no application link with this consumer key.");
		return;
	}
	struct emu_buf b = { 0 };
	emu_page_begin(&b, link_name, true);
	s_breadcrumb(&b);
	if (created)
		emu_buf_puts(&b, "<p class=\"notice\" role=\"status\" id=\"created\">The application "
			     "link was created with Incoming Authentication.</p>\n");
	emu_buf_puts(&b, "<h1>");
	emu_buf_html(&b, link_name);
	emu_buf_puts(&b, "</h1>\n<p class=\"muted\">Generic Application &middot; Incoming &middot; "
		     "OAuth 1.0a</p>\n<dl>\n");
	s_dt(&b, "Application URL", link_url[0] ? link_url : "(none)");
	emu_buf_puts(&b, "</dl>\n<h2>Incoming Authentication</h2>\n");
	s_readonly(&b, "consumer-key", "Consumer Key", consumer_key);
	emu_buf_puts(&b, "<dl>\n");
	s_dt(&b, "Consumer Name", name);
	s_dt(&b, "Public Key", bits);
	s_dt(&b, "Consumer Callback URL", callback[0] ? callback : "(none)");
	emu_buf_puts(&b, "</dl>\n");
	emu_page_end(r, 200, &b);
}

void emu_applinks_configure(struct emu_req *r)
{
	struct s_admin a;
	if (strcmp(r->method, "GET") != 0) {
		emu_send_405(r, "GET");
		return;
	}
	if (!s_admin_get(r, &a))
		return;
	const char *client_id = r->query_ok ? emu_params_get(&r->qp, "client_id") : NULL;
	const char *key = r->query_ok ? emu_params_get(&r->qp, "consumer_key") : NULL;
	const char *created = r->query_ok ? emu_params_get(&r->qp, "created") : NULL;
	bool is_created = created && strcmp(created, "1") == 0;
	if (!r->query_ok || (!client_id == !key) || emu_params_has_duplicates(&r->qp)) {
		emu_page_error(r, 400, "Bad request",
			       "Name one application link: client_id=... or consumer_key=....");
		return;
	}
	if (client_id)
		s_configure_oauth2(r, client_id, is_created);
	else
		s_configure_oauth1(r, key, is_created);
}
