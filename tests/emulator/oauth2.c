/*
 * OAuth 2.0 provider, as Bitbucket DC's incoming "External application"
 * link, made strict wherever the real behaviour is unknown:
 *
 *   GET  {ctx}/rest/oauth2/latest/authorize            emu_oauth2_authorize
 *   POST {ctx}/rest/oauth2/latest/authorize/decision   emu_oauth2_decision
 *   POST {ctx}/rest/oauth2/latest/token                emu_oauth2_token
 *   GET  {ctx}/login, POST {ctx}/j_atl_security_check, {ctx}/j_atl_security_logout
 */
#include "emulator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/sha.h>

#define SESSION_COOKIE "BBSESSIONID"

/* ---- browser session ----------------------------------------------------- */

const struct emu_user *emu_session_user(struct emu_req *r, char session_out[EMU_TOKEN_BUF])
{
	const struct emu_user *user = NULL;
	char *sid = emu_req_cookie(r, SESSION_COOKIE);
	if (session_out)
		session_out[0] = '\0';
	if (!sid)
		return NULL;
	emu_lock();
	struct emu_rec *rec = emu_rec_find(REC_SESSION, sid);
	if (rec && !rec->dead_at && rec->expires > emu_now()) {
		user = emu_user_by_name(rec->owner);
		if (user && session_out)
			snprintf(session_out, EMU_TOKEN_BUF, "%s", rec->value);
	}
	emu_unlock();
	free(sid);
	return user;
}

int emu_auto_approve_user(struct emu_req *r, const struct emu_user **out)
{
	if (!g_cfg.auto_approve[0])
		return 0; /* X-Emulator-User is ignored unless --auto-approve */
	const char *h = emu_req_header(r, "X-Emulator-User");
	if (!h) {
		*out = emu_user_by_name(g_cfg.auto_approve);
		if (*out && emu_user_disabled(*out)) {
			emu_page_error(r, 403, "Account disabled", "This Bitbucket account has been disabled.");
			return -1;
		}
		return *out ? 1 : 0;
	}
	/* Percent-decoded so that non-ASCII names (zoë) fit in a header. */
	char *name = emu_pct_decode(h, strlen(h), false);
	*out = name ? emu_user_by_name(name) : NULL;
	free(name);
	if (!*out) {
		emu_page_error(r, 400, "Unknown user", "X-Emulator-User names no user of this instance.");
		return -1;
	}
	if (emu_user_disabled(*out)) {
		emu_page_error(r, 403, "Account disabled", "This Bitbucket account has been disabled.");
		return -1;
	}
	return 1;
}

/* next must stay on this instance: a local path under the context. */
static const char *s_safe_next(const char *next, char *fallback, size_t fallback_size)
{
	size_t cl = strlen(g_cfg.context);
	snprintf(fallback, fallback_size, "%s/plugins/servlet/applinks/whoami", g_cfg.context);
	if (!next || strlen(next) > EMU_MAX_URL)
		return fallback;
	if (strncmp(next, g_cfg.context, cl) != 0 || next[cl] != '/')
		return fallback;
	if (next[cl + 1] == '/' || next[cl + 1] == '\\' || strpbrk(next, "\\\r\n"))
		return fallback;
	return next;
}

void emu_login_page(struct emu_req *r)
{
	char fallback[512];
	if (strcmp(r->method, "GET") != 0) {
		emu_send_405(r, "GET");
		return;
	}
	emu_page_login(r, 200, s_safe_next(emu_params_get(&r->qp, "next"), fallback, sizeof fallback),
		       NULL);
}

void emu_login_check(struct emu_req *r)
{
	char fallback[512], sid[EMU_TOKEN_BUF];
	if (strcmp(r->method, "POST") != 0) {
		emu_send_405(r, "POST");
		return;
	}
	if (!r->body_is_form || !r->form_ok) {
		emu_page_error(r, 400, "Bad request", "The login form could not be read.");
		return;
	}
	const char *next = s_safe_next(emu_req_form(r, "next"), fallback, sizeof fallback);
	const char *username = emu_req_form(r, "j_username");
	const struct emu_user *user = username ? emu_user_by_name(username) : NULL;
	if (emu_password_ok(user, emu_req_form(r, "j_password")) && emu_user_disabled(user)) {
		emu_lock();
		g_stats.failed_logins++;
		emu_unlock();
		emu_page_login(r, 200, next, "Your account has been disabled. Contact your Bitbucket administrator.");
		return;
	}
	if (!emu_password_ok(user, emu_req_form(r, "j_password"))) {
		emu_lock();
		g_stats.failed_logins++;
		emu_unlock();
		emu_page_login(r, 200, next, "Invalid username or password.");
		return;
	}
	if (emu_random_token(sid) != 0) {
		emu_page_error(r, 500, "Error", "No randomness available.");
		return;
	}
	emu_lock();
	struct emu_rec *rec = emu_rec_new(REC_SESSION, sid);
	if (rec) {
		snprintf(rec->owner, sizeof rec->owner, "%s", user->name);
		rec->expires = emu_now() + EMU_SESSION_TTL;
		g_stats.logins++;
	}
	emu_unlock();
	if (!rec) {
		emu_page_error(r, 500, "Error", "Out of memory.");
		return;
	}
	emu_add_header(r, "Set-Cookie", SESSION_COOKIE "=%s; Path=%s; HttpOnly; SameSite=Lax", sid,
		       g_cfg.context[0] ? g_cfg.context : "/");
	emu_redirect(r, next);
}

void emu_logout(struct emu_req *r)
{
	char sid[EMU_TOKEN_BUF];
	if (emu_session_user(r, sid)) {
		emu_lock();
		emu_rec_kill(emu_rec_find(REC_SESSION, sid));
		emu_unlock();
	}
	emu_add_header(r, "Set-Cookie", SESSION_COOKIE "=; Path=%s; HttpOnly; SameSite=Lax; Max-Age=0",
		       g_cfg.context[0] ? g_cfg.context : "/");
	/* ?next=... (a local path) is handed on to the login page. */
	char fallback[512];
	const char *next = r->query_ok ? emu_params_get(&r->qp, "next") : NULL;
	struct emu_buf b = { 0 };
	emu_buf_printf(&b, "%s/login", g_cfg.context);
	if (next) {
		next = s_safe_next(next, fallback, sizeof fallback);
		emu_buf_puts(&b, "?next=");
		emu_buf_pct(&b, next, strlen(next));
	}
	char *to = emu_buf_take(&b);
	emu_redirect(r, to ? to : "/");
	free(to);
}

/* ---- redirects back to the client ---------------------------------------- */

/* Appends parameters to a redirect URI that may carry its own query. */
static void s_start_query(struct emu_buf *b, const char *uri)
{
	emu_buf_puts(b, uri);
	const char *q = strchr(uri, '?');
	if (!q)
		emu_buf_puts(b, "?");
	else if (uri[strlen(uri) - 1] != '?' && uri[strlen(uri) - 1] != '&')
		emu_buf_puts(b, "&");
}

static void s_append_state(struct emu_buf *b, const char *state)
{
	if (!state)
		return;
	emu_buf_puts(b, "&state=");
	emu_buf_pct(b, state, strlen(state));
}

static void s_redirect_error(struct emu_req *r, const char *uri, const char *error,
			     const char *description, const char *state)
{
	struct emu_buf b = { 0 };
	s_start_query(&b, uri);
	emu_buf_printf(&b, "error=%s&error_description=", error);
	emu_buf_pct(&b, description, strlen(description));
	s_append_state(&b, state);
	char *loc = emu_buf_take(&b);
	if (strcmp(error, "access_denied") != 0) {
		emu_lock();
		g_stats.authorize_errors++;
		emu_unlock();
	}
	if (loc)
		emu_redirect(r, loc);
	else
		emu_page_error(r, 500, "Error", "Out of memory.");
	free(loc);
}

struct s_grant_req {
	char client_id[33];
	char app_name[EMU_MAX_NAME + 1];
	const char *redirect_uri;
	const char *state; /* NULL when the client sent none */
	unsigned scope;
	const char *challenge;
};

/* Issues a code and redirects the browser to the client with it. */
static void s_redirect_with_code(struct emu_req *r, const struct s_grant_req *g,
				 const struct emu_user *user)
{
	char code[EMU_TOKEN_BUF];
	bool issued = false;
	if (emu_random_token(code) == 0) {
		emu_lock();
		struct emu_rec *rec = emu_rec_new(REC_CODE, code);
		if (rec) {
			snprintf(rec->client, sizeof rec->client, "%s", g->client_id);
			snprintf(rec->owner, sizeof rec->owner, "%s", user->name);
			snprintf(rec->challenge, sizeof rec->challenge, "%s", g->challenge);
			rec->uri = strdup(g->redirect_uri);
			rec->scope = g->scope;
			rec->expires = emu_now() + g_cfg.code_ttl;
			issued = rec->uri != NULL;
			if (issued)
				g_stats.authorize_approved++;
			else
				emu_rec_kill(rec);
		}
		emu_unlock();
	}
	if (!issued) {
		emu_page_error(r, 500, "Error", "Could not issue an authorization code.");
		return;
	}
	struct emu_buf b = { 0 };
	s_start_query(&b, g->redirect_uri);
	emu_buf_printf(&b, "code=%s", code);
	s_append_state(&b, g->state);
	char *loc = emu_buf_take(&b);
	if (loc)
		emu_redirect(r, loc);
	else
		emu_page_error(r, 500, "Error", "Out of memory.");
	free(loc);
}

/* PKCE S256 output is 32 bytes in base64url without padding: 43 chars. */
static bool s_challenge_ok(const char *c)
{
	if (strlen(c) != 43)
		return false;
	for (const char *p = c; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return false;
	return true;
}

/* RFC 7636 §4.1: 43..128 characters of [A-Za-z0-9-._~]. */
static bool s_verifier_ok(const char *v)
{
	size_t n = strlen(v);
	if (n < 43 || n > 128)
		return false;
	for (const char *p = v; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || strchr("-._~", *p)))
			return false;
	return true;
}

static bool s_pkce_matches(const char *verifier, const char *challenge)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	char encoded[EMU_TOKEN_BUF];
	unsigned int dlen = 0;
	if (EVP_Digest(verifier, strlen(verifier), digest, &dlen, EVP_sha256(), NULL) != 1)
		return false;
	emu_base64url(digest, dlen, encoded, sizeof encoded);
	return emu_consttime_eq(encoded, challenge);
}

/* ---- authorize ------------------------------------------------------------ */

static void s_show_consent(struct emu_req *r, const struct s_grant_req *g,
			   const struct emu_user *user, const char *sid)
{
	char id[EMU_TOKEN_BUF], action[512];
	bool stored = false;
	if (emu_random_token(id) == 0) {
		emu_lock();
		struct emu_rec *rec = emu_rec_new(REC_PENDING2, id);
		if (rec) {
			snprintf(rec->client, sizeof rec->client, "%s", g->client_id);
			snprintf(rec->owner, sizeof rec->owner, "%s", user->name);
			snprintf(rec->session, sizeof rec->session, "%s", sid);
			snprintf(rec->challenge, sizeof rec->challenge, "%s", g->challenge);
			rec->uri = strdup(g->redirect_uri);
			rec->has_state = g->state != NULL;
			rec->state = g->state ? strdup(g->state) : NULL;
			rec->scope = g->scope;
			rec->expires = emu_now() + EMU_PENDING_TTL;
			stored = rec->uri && (!g->state || rec->state);
			if (!stored)
				emu_rec_kill(rec);
		}
		emu_unlock();
	}
	if (!stored) {
		emu_page_error(r, 500, "Error", "Out of memory.");
		return;
	}
	snprintf(action, sizeof action, "%s/rest/oauth2/latest/authorize/decision", g_cfg.context);
	struct emu_consent c = {
		.app_name = g->app_name,
		.user = user,
		.scope = g->scope,
		.action = action,
		.hidden_names = { "request", NULL, NULL },
		.hidden_values = { id, NULL, NULL },
	};
	emu_page_consent(r, &c);
}

void emu_oauth2_authorize(struct emu_req *r)
{
	struct s_grant_req g = { 0 };
	char registered[EMU_MAX_URL + 1];
	unsigned granted = 0;
	bool found = false;
	const struct emu_user *user = NULL;
	char sid[EMU_TOKEN_BUF];

	if (strcmp(r->method, "GET") != 0) {
		emu_send_405(r, "GET");
		return;
	}
	emu_lock();
	g_stats.authorize_requests++;
	emu_unlock();
	if (!r->query_ok) {
		emu_page_error(r, 400, "Invalid request", "The authorization request could not be parsed.");
		return;
	}

	/* RFC 6749 §4.1.2.1: with a bad client or redirect URI, never redirect. */
	const char *client_id = emu_params_get(&r->qp, "client_id");
	if (!client_id || emu_params_count(&r->qp, "client_id") != 1) {
		emu_page_error(r, 400, "Invalid client", "The client_id parameter is missing or repeated.");
		return;
	}
	emu_lock();
	struct emu_applink *a = emu_applink_find(client_id);
	if (a) {
		found = true;
		snprintf(g.client_id, sizeof g.client_id, "%s", a->client_id);
		snprintf(g.app_name, sizeof g.app_name, "%s", a->name);
		snprintf(registered, sizeof registered, "%s", a->redirect_url);
		granted = a->perms;
	}
	emu_unlock();
	if (!found) {
		emu_page_error(r, 400, "Invalid client",
			       "There is no application link with this client_id.");
		return;
	}
	g.redirect_uri = emu_params_get(&r->qp, "redirect_uri");
	if (!g.redirect_uri || emu_params_count(&r->qp, "redirect_uri") != 1 ||
	    strcmp(g.redirect_uri, registered) != 0) {
		emu_page_error(r, 400, "Invalid redirect URI",
			       "The redirect_uri does not exactly match the redirect URL of the application link.");
		return;
	}

	/* From here on errors go back to the client (RFC 6749 §4.1.2.1). */
	g.state = emu_params_get(&r->qp, "state");
	if (emu_params_has_duplicates(&r->qp)) {
		s_redirect_error(r, g.redirect_uri, "invalid_request",
				 "Request parameters must not be repeated.", g.state);
		return;
	}
	const char *response_type = emu_params_get(&r->qp, "response_type");
	if (!response_type) {
		s_redirect_error(r, g.redirect_uri, "invalid_request", "response_type is required.", g.state);
		return;
	}
	if (strcmp(response_type, "code") != 0) {
		s_redirect_error(r, g.redirect_uri, "unsupported_response_type",
				 "Only response_type=code is supported.", g.state);
		return;
	}
	const char *method = emu_params_get(&r->qp, "code_challenge_method");
	g.challenge = emu_params_get(&r->qp, "code_challenge");
	if (!g.challenge || !method) {
		s_redirect_error(r, g.redirect_uri, "invalid_request",
				 "PKCE is required: send code_challenge and code_challenge_method=S256.",
				 g.state);
		return;
	}
	if (strcmp(method, "S256") != 0) {
		s_redirect_error(r, g.redirect_uri, "invalid_request",
				 "code_challenge_method must be S256.", g.state);
		return;
	}
	if (!s_challenge_ok(g.challenge)) {
		s_redirect_error(r, g.redirect_uri, "invalid_request",
				 "code_challenge must be the base64url SHA-256 of the verifier (43 characters).",
				 g.state);
		return;
	}
	const char *scope = emu_params_get(&r->qp, "scope");
	if (!scope) {
		g.scope = SCOPE_PUBLIC_REPOS; /* no scope: public repositories only */
	} else if (emu_scope_parse(scope, &g.scope) != 0) {
		s_redirect_error(r, g.redirect_uri, "invalid_scope", "Unknown scope.", g.state);
		return;
	} else if (g.scope & ~(granted | SCOPE_PUBLIC_REPOS)) {
		s_redirect_error(r, g.redirect_uri, "invalid_scope",
				 "The requested scope exceeds the permissions of the application link.",
				 g.state);
		return;
	}

	int autoapp = emu_auto_approve_user(r, &user);
	if (autoapp < 0)
		return;
	if (autoapp > 0) {
		s_redirect_with_code(r, &g, user);
		return;
	}
	user = emu_session_user(r, sid);
	if (!user) {
		char *next = emu_req_local_url(r);
		emu_page_login(r, 200, next ? next : "", NULL);
		free(next);
		return;
	}
	s_show_consent(r, &g, user, sid);
}

void emu_oauth2_decision(struct emu_req *r)
{
	char sid[EMU_TOKEN_BUF], challenge[EMU_TOKEN_BUF] = "";
	struct s_grant_req g = { 0 };
	char *uri = NULL, *state = NULL;
	bool ok = false, app_alive = false;

	if (strcmp(r->method, "POST") != 0) {
		emu_send_405(r, "POST");
		return;
	}
	const struct emu_user *user = emu_session_user(r, sid);
	const char *id = emu_req_form(r, "request");
	const char *decision = emu_req_form(r, "decision");
	if (!user || !id || !decision) {
		emu_page_error(r, 400, "Invalid request",
			       "This authorization request is not valid for your session.");
		return;
	}
	emu_lock();
	struct emu_rec *rec = emu_rec_find(REC_PENDING2, id);
	/* Bound to the browser session that saw the consent page: the id in
	 * the form doubles as the CSRF token. */
	if (rec && !rec->dead_at && rec->expires > emu_now() &&
	    strcmp(rec->session, sid) == 0 && strcmp(rec->owner, user->name) == 0) {
		ok = true;
		snprintf(g.client_id, sizeof g.client_id, "%.32s", rec->client);
		g.scope = rec->scope;
		uri = rec->uri ? strdup(rec->uri) : NULL;
		state = rec->state ? strdup(rec->state) : NULL;
		if (rec->has_state && !state)
			ok = false;
		snprintf(challenge, sizeof challenge, "%s", rec->challenge);
		emu_rec_kill(rec); /* single use */
		app_alive = emu_applink_find(g.client_id) != NULL;
	}
	emu_unlock();
	if (!ok || !uri) {
		emu_page_error(r, 400, "Invalid request",
			       "This authorization request is not valid for your session.");
		goto out;
	}
	if (!app_alive) {
		emu_page_error(r, 400, "Invalid client", "The application link no longer exists.");
		goto out;
	}
	g.redirect_uri = uri;
	g.state = state;
	g.challenge = challenge;
	if (strcmp(decision, "allow") == 0) {
		s_redirect_with_code(r, &g, user);
	} else if (strcmp(decision, "deny") == 0) {
		emu_lock();
		g_stats.authorize_denied++;
		emu_unlock();
		s_redirect_error(r, uri, "access_denied", "The user denied the request.", state);
	} else {
		emu_page_error(r, 400, "Invalid request", "Unknown decision.");
	}
out:
	free(uri);
	free(state);
}

/* ---- token endpoint ------------------------------------------------------- */

/* Token parameters come from the query string or the form body (Atlassian's
 * own examples use the query string); the two are looked at together. */
static const char *s_tp(const struct emu_req *r, const char *name)
{
	const char *v = emu_params_get(&r->qp, name);
	return v ? v : emu_req_form(r, name);
}

static bool s_tp_duplicates(const struct emu_req *r, const char **which)
{
	const struct emu_params *f = r->body_is_form ? &r->form : NULL;
	for (size_t i = 0; i < r->qp.count; i++) {
		const char *n = r->qp.items[i].name;
		if (emu_params_count(&r->qp, n) > 1 || (f && emu_params_count(f, n) > 0)) {
			*which = n;
			return true;
		}
	}
	for (size_t i = 0; f && i < f->count; i++) {
		if (emu_params_count(f, f->items[i].name) > 1) {
			*which = f->items[i].name;
			return true;
		}
	}
	return false;
}

static void s_token_error(struct emu_req *r, int status, const char *error,
			  const char *description)
{
	json_t *j = json_pack("{s:s}", "error", error);
	if (j && description)
		json_object_set_new(j, "error_description", json_string(description));
	emu_add_header(r, "Cache-Control", "no-store");
	emu_add_header(r, "Pragma", "no-cache");
	emu_lock();
	g_stats.token_errors++;
	emu_unlock();
	emu_send_json(r, status, j);
}

struct s_new_tokens {
	char access[EMU_TOKEN_BUF];
	char refresh[EMU_TOKEN_BUF];
	unsigned scope;
};

/* Creates an access/refresh pair; needs the lock. */
static bool s_store_pair(const struct s_new_tokens *t, const char *client_id,
			 const char *owner, uint64_t family)
{
	struct emu_rec *a = emu_rec_new(REC_ACCESS2, t->access);
	struct emu_rec *rf = a ? emu_rec_new(REC_REFRESH2, t->refresh) : NULL;
	if (!a || !rf) {
		emu_rec_kill(a);
		return false;
	}
	time_t now = emu_now();
	struct emu_rec *both[2] = { a, rf };
	for (int i = 0; i < 2; i++) {
		snprintf(both[i]->client, sizeof both[i]->client, "%s", client_id);
		snprintf(both[i]->owner, sizeof both[i]->owner, "%s", owner);
		both[i]->scope = t->scope;
		both[i]->family = family;
	}
	snprintf(a->pair, sizeof a->pair, "%s", t->refresh);
	snprintf(rf->pair, sizeof rf->pair, "%s", t->access);
	a->expires = now + g_cfg.access_ttl;
	rf->expires = now + EMU_REFRESH_TTL;
	return true;
}

/* t->refresh empty: an answer without a refresh token (refresh_kept). */
static void s_send_tokens(struct emu_req *r, const struct s_new_tokens *t)
{
	char *scope = emu_scope_string(t->scope);
	json_t *j = json_pack("{s:s, s:s, s:I, s:s}", "access_token", t->access,
			      "token_type", "bearer", "expires_in", (json_int_t)g_cfg.access_ttl,
			      "scope", scope ? scope : "");
	free(scope);
	if (j && t->refresh[0])
		json_object_set_new(j, "refresh_token", json_string(t->refresh));
	emu_add_header(r, "Cache-Control", "no-store");
	emu_add_header(r, "Pragma", "no-cache");
	emu_send_json(r, 200, j);
}

struct s_family_kill {
	uint64_t family;
};

static void s_kill_family(struct emu_rec *rec, void *arg)
{
	const struct s_family_kill *k = arg;
	if ((rec->kind == REC_ACCESS2 || rec->kind == REC_REFRESH2) && rec->family == k->family)
		emu_rec_kill(rec);
}

static void s_grant_authorization_code(struct emu_req *r, const char *client_id)
{
	const char *code = s_tp(r, "code");
	const char *redirect_uri = s_tp(r, "redirect_uri");
	const char *verifier = s_tp(r, "code_verifier");
	const char *error = NULL, *description = NULL;
	struct s_new_tokens t = { 0 };
	char owner[EMU_NAME_BUF] = "";

	if (!code || !redirect_uri || !verifier) {
		s_token_error(r, 400, "invalid_request",
			      !code ? "code is required." :
			      !redirect_uri ? "redirect_uri is required." :
			      "code_verifier is required (PKCE).");
		return;
	}
	if (emu_random_token(t.access) != 0 || emu_random_token(t.refresh) != 0) {
		s_token_error(r, 500, "server_error", "No randomness available.");
		return;
	}
	emu_lock();
	struct emu_rec *rec = emu_rec_find(REC_CODE, code);
	time_t now = emu_now();
	if (!rec) {
		error = "invalid_grant";
		description = "The authorization code is not valid.";
	} else if (rec->used) {
		/* RFC 6749 §4.1.2: a replayed code revokes what it produced. */
		struct s_family_kill k = { rec->family };
		emu_rec_foreach(s_kill_family, &k);
		g_stats.code_reuse++;
		error = "invalid_grant";
		description = "The authorization code has already been used.";
	} else if (rec->burned || rec->dead_at) {
		error = "invalid_grant";
		description = "The authorization code is no longer valid.";
	} else if (strcmp(rec->client, client_id) != 0) {
		error = "invalid_grant";
		description = "The authorization code was issued to another client.";
	} else if (now >= rec->expires) {
		error = "invalid_grant";
		description = "The authorization code has expired.";
	} else if (!rec->uri || strcmp(rec->uri, redirect_uri) != 0) {
		error = "invalid_grant";
		description = "redirect_uri does not match the one used at authorization.";
	} else if (!s_verifier_ok(verifier)) {
		error = "invalid_request";
		description = "code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~].";
	} else if (!s_pkce_matches(verifier, rec->challenge)) {
		error = "invalid_grant";
		description = "PKCE verification failed: code_verifier does not match code_challenge.";
	} else {
		t.scope = rec->scope;
		snprintf(owner, sizeof owner, "%s", rec->owner);
		rec->family = emu_next_family();
		if (s_store_pair(&t, client_id, owner, rec->family)) {
			rec->used = true;
			g_stats.grants_authorization_code++;
		} else {
			error = "server_error";
			description = "Out of memory.";
		}
	}
	/* A failed exchange of a live code burns it: no second guess. */
	if (error && rec && !rec->used)
		rec->burned = true;
	emu_unlock();
	if (error)
		s_token_error(r, strcmp(error, "server_error") == 0 ? 500 : 400, error, description);
	else
		s_send_tokens(r, &t);
}

static void s_grant_refresh_token(struct emu_req *r, const char *client_id,
				  const char *registered_redirect)
{
	const char *refresh = s_tp(r, "refresh_token");
	const char *redirect_uri = s_tp(r, "redirect_uri");
	const char *scope = s_tp(r, "scope");
	const char *error = NULL, *description = NULL;
	struct s_new_tokens t = { 0 };
	unsigned narrowed = 0;

	if (!refresh) {
		error = "invalid_request";
		description = "refresh_token is required.";
		goto out;
	}
	if (!redirect_uri) {
		error = "invalid_grant"; /* Bitbucket answers a bare invalid_grant */
		goto out;
	}
	if (strcmp(redirect_uri, registered_redirect) != 0) {
		error = "invalid_grant";
		description = "redirect_uri does not match the application link.";
		goto out;
	}
	if (scope && emu_scope_parse(scope, &narrowed) != 0) {
		error = "invalid_scope";
		description = "Unknown scope.";
		goto out;
	}
	if (emu_random_token(t.access) != 0 || emu_random_token(t.refresh) != 0) {
		error = "server_error";
		description = "No randomness available.";
		goto out;
	}
	emu_lock();
	struct emu_rec *rec = emu_rec_find(REC_REFRESH2, refresh);
	if (!rec || rec->dead_at || rec->expires <= emu_now() ||
	    strcmp(rec->client, client_id) != 0 || emu_user_disabled(emu_user_by_name(rec->owner))) {
		/* A rotated token coming back usually means two refreshes raced. */
		if (rec && rec->dead_at)
			g_stats.refresh_token_reuse++;
		error = "invalid_grant";
		description = "The refresh token is not valid.";
	} else if (scope && (narrowed & ~rec->scope)) {
		error = "invalid_scope";
		description = "The requested scope exceeds the original grant.";
	} else {
		char owner[EMU_NAME_BUF];
		snprintf(owner, sizeof owner, "%s", rec->owner);
		t.scope = scope ? narrowed : rec->scope;
		if (g_faults.refresh_kept) {
			/* No rotation: a new access token for the same refresh
			 * token, which the answer leaves out. */
			emu_rec_kill(emu_rec_find(REC_ACCESS2, rec->pair));
			struct emu_rec *a = emu_rec_new(REC_ACCESS2, t.access);
			if (a) {
				snprintf(a->client, sizeof a->client, "%s", client_id);
				snprintf(a->owner, sizeof a->owner, "%s", owner);
				a->scope = t.scope;
				a->family = rec->family;
				snprintf(a->pair, sizeof a->pair, "%s", rec->value);
				a->expires = emu_now() + g_cfg.access_ttl;
				snprintf(rec->pair, sizeof rec->pair, "%s", t.access);
				t.refresh[0] = '\0';
				g_stats.grants_refresh_token++;
			} else {
				error = "server_error";
				description = "Out of memory.";
			}
		} else {
			/* Rotation: the old pair dies at once. */
			emu_rec_kill(rec);
			emu_rec_kill(emu_rec_find(REC_ACCESS2, rec->pair));
			if (s_store_pair(&t, client_id, owner, rec->family)) {
				g_stats.grants_refresh_token++;
			} else {
				error = "server_error";
				description = "Out of memory.";
			}
		}
	}
	emu_unlock();
out:
	if (!error) {
		s_send_tokens(r, &t);
		return;
	}
	emu_lock();
	g_stats.failed_refreshes++;
	emu_unlock();
	s_token_error(r, strcmp(error, "server_error") == 0 ? 500 : 400, error, description);
}

void emu_oauth2_token(struct emu_req *r)
{
	const char *dup = NULL;
	char registered[EMU_MAX_URL + 1] = "";
	bool client_ok = false;

	emu_lock();
	g_stats.token_requests++;
	emu_unlock();
	if (strcmp(r->method, "POST") != 0) {
		emu_add_header(r, "Allow", "POST");
		s_token_error(r, 405, "invalid_request", "The token endpoint accepts POST only.");
		return;
	}
	if (r->body_len && !r->body_is_form) {
		s_token_error(r, 400, "invalid_request",
			      "The body must be application/x-www-form-urlencoded.");
		return;
	}
	if (!r->query_ok || (r->body_is_form && !r->form_ok)) {
		s_token_error(r, 400, "invalid_request", "The parameters could not be parsed.");
		return;
	}
	const char *authz = emu_req_header(r, "Authorization");
	if (authz && strncasecmp(authz, "Basic ", 6) == 0) {
		emu_add_header(r, "WWW-Authenticate", "Basic realm=\"%s\"", g_cfg.base_url);
		s_token_error(r, 401, "invalid_client",
			      "HTTP Basic client authentication is not supported; send client_id and client_secret in the request body.");
		return;
	}
	if (s_tp_duplicates(r, &dup)) {
		char msg[160];
		snprintf(msg, sizeof msg, "Parameter %.100s must not be repeated.", dup);
		s_token_error(r, 400, "invalid_request", msg);
		return;
	}
	const char *grant_type = s_tp(r, "grant_type");
	if (!grant_type) {
		s_token_error(r, 400, "invalid_request", "grant_type is required.");
		return;
	}
	bool is_code = strcmp(grant_type, "authorization_code") == 0;
	bool is_refresh = strcmp(grant_type, "refresh_token") == 0;
	if (!is_code && !is_refresh) {
		s_token_error(r, 400, "unsupported_grant_type",
			      "Only authorization_code and refresh_token are supported.");
		return;
	}
	const char *client_id = s_tp(r, "client_id");
	const char *client_secret = s_tp(r, "client_secret");
	if (client_id && client_secret) {
		emu_lock();
		struct emu_applink *a = emu_applink_find(client_id);
		if (a && emu_consttime_eq(a->client_secret, client_secret)) {
			client_ok = true;
			snprintf(registered, sizeof registered, "%s", a->redirect_url);
		}
		emu_unlock();
	}
	if (!client_ok) {
		if (is_refresh) {
			emu_lock();
			g_stats.failed_refreshes++;
			emu_unlock();
		}
		s_token_error(r, 401, "invalid_client",
			      !client_id || !client_secret
				      ? "Client authentication failed: client_id and client_secret are required."
				      : "Client authentication failed.");
		return;
	}
	if (is_code)
		s_grant_authorization_code(r, client_id);
	else
		s_grant_refresh_token(r, client_id, registered);
}
