/*
 * OAuth 1.0a service provider (RSA-SHA1 only), as Bitbucket's applinks
 * plugin with "Incoming Authentication":
 *
 *   POST     {ctx}/plugins/servlet/oauth/request-token   emu_oauth1_request_token
 *   GET/POST {ctx}/plugins/servlet/oauth/authorize       emu_oauth1_authorize
 *   POST     {ctx}/plugins/servlet/oauth/access-token    emu_oauth1_access_token
 *
 * emu_oauth1_verify checks a signed request (RFC 5849 §3.2) and is also
 * used by the REST endpoints and whoami. Problems are answered like
 * net.oauth does: WWW-Authenticate plus a form-encoded oauth_problem body.
 */
#include "emulator.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/sha.h>

/* ---- problem reporting ---------------------------------------------------- */

static int s_problem_status(const char *problem)
{
	static const char *const bad_request[] = {
		"parameter_absent", "parameter_rejected", "timestamp_refused",
		"signature_method_rejected", "version_rejected",
	};
	for (size_t i = 0; i < sizeof bad_request / sizeof bad_request[0]; i++)
		if (strcmp(problem, bad_request[i]) == 0)
			return 400;
	return 401;
}

static void s_problem(struct emu_req *r, const char *problem, const char *extra_name,
		      const char *extra_value)
{
	struct emu_buf b = { 0 };
	emu_buf_printf(&b, "oauth_problem=%s", problem);
	if (extra_name && extra_value) {
		emu_buf_printf(&b, "&%s=", extra_name);
		emu_buf_pct(&b, extra_value, strlen(extra_value));
	}
	char *body = emu_buf_take(&b);
	emu_add_header(r, "WWW-Authenticate", "OAuth realm=\"%s\", oauth_problem=\"%s\"",
		       g_cfg.base_url, problem);
	emu_lock();
	g_stats.oauth1_failures++;
	emu_unlock();
	emu_send(r, s_problem_status(problem), "application/x-www-form-urlencoded;charset=UTF-8",
		 body ? body : "", body ? strlen(body) : 0);
	free(body);
}

/* ---- parameter collection --------------------------------------------- */

/* Authorization: OAuth realm="x", oauth_consumer_key="y", ... (RFC 5849 §3.5.1) */
static int s_parse_auth_header(const char *h, struct emu_params *out)
{
	if (strncasecmp(h, "OAuth", 5) != 0 || (h[5] && !isspace((unsigned char)h[5])))
		return -1;
	const char *p = h + 5;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			return 0;
		const char *name = p;
		while (*p && *p != '=' && *p != ' ' && *p != ',')
			p++;
		if (p == name || *p != '=' || p[1] != '"')
			return -1;
		size_t name_len = (size_t)(p - name);
		const char *value = p + 2;
		const char *end = strchr(value, '"');
		if (!end || out->count >= EMU_MAX_PARAMS)
			return -1;
		char *n = emu_pct_decode(name, name_len, false);
		char *v = emu_pct_decode(value, (size_t)(end - value), false);
		if (!n || !v) {
			free(n);
			free(v);
			return -1;
		}
		out->items[out->count].name = n;
		out->items[out->count].value = v;
		out->count++;
		p = end + 1;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == ',')
			p++;
		else if (*p)
			return -1;
	}
}

struct s_sources {
	struct emu_params header; /* from Authorization, realm included */
	const struct emu_params *query;
	const struct emu_params *form; /* NULL unless a form body */
};

static const char *s_get(const struct s_sources *s, const char *name)
{
	const char *v = emu_params_get(&s->header, name);
	if (!v)
		v = emu_params_get(s->query, name);
	if (!v && s->form)
		v = emu_params_get(s->form, name);
	return v;
}

static size_t s_count(const struct s_sources *s, const char *name)
{
	return emu_params_count(&s->header, name) + emu_params_count(s->query, name) +
	       (s->form ? emu_params_count(s->form, name) : 0);
}

/* A protocol parameter may appear once, in one place only. */
static const char *s_repeated_oauth_param(const struct s_sources *s)
{
	const struct emu_params *all[3] = { &s->header, s->query, s->form };
	for (int k = 0; k < 3; k++)
		for (size_t i = 0; all[k] && i < all[k]->count; i++)
			if (strncmp(all[k]->items[i].name, "oauth_", 6) == 0 &&
			    s_count(s, all[k]->items[i].name) > 1)
				return all[k]->items[i].name;
	return NULL;
}

/* ---- signature base string (RFC 5849 §3.4.1) ----------------------------- */

struct s_pair {
	char *k;
	char *v;
};

static int s_pair_cmp(const void *a, const void *b)
{
	const struct s_pair *x = a, *y = b;
	int c = strcmp(x->k, y->k);
	return c ? c : strcmp(x->v, y->v);
}

static char *s_pct(const char *s)
{
	struct emu_buf b = { 0 };
	emu_buf_pct(&b, s, strlen(s));
	return emu_buf_take(&b);
}

/* Base string URI from the Host header, like Bitbucket (a proxy that
 * rewrites Host breaks signatures there too), and the path as it was sent:
 * decoding it and encoding it again would change "%40" into "@". */
static void s_base_uri(const struct emu_req *r, struct emu_buf *b)
{
	const char *host = emu_req_header(r, "Host");
	char h[256];
	snprintf(h, sizeof h, "%s", host && *host && strlen(host) < sizeof h ? host : g_cfg.host_port);
	for (char *p = h; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	size_t n = strlen(h);
	if (n > 3 && strcmp(h + n - 3, ":80") == 0)
		h[n - 3] = '\0'; /* default port is left out (§3.4.1.2) */
	emu_buf_puts(b, "http://");
	emu_buf_puts(b, h);
	emu_buf_puts(b, r->raw_path);
}

static char *s_base_string(const struct emu_req *r, const struct s_sources *s)
{
	struct s_pair pairs[3 * EMU_MAX_PARAMS];
	size_t n = 0;
	struct emu_buf b = { 0 }, uri = { 0 };
	char *result = NULL;
	const struct emu_params *all[3] = { &s->header, s->query, s->form };

	for (int k = 0; k < 3; k++) {
		for (size_t i = 0; all[k] && i < all[k]->count; i++) {
			const char *name = all[k]->items[i].name;
			if (strcmp(name, "oauth_signature") == 0)
				continue;
			if (k == 0 && strcmp(name, "realm") == 0)
				continue; /* realm is excluded only when in the header */
			pairs[n].k = s_pct(name);
			pairs[n].v = s_pct(all[k]->items[i].value);
			n++;
			if (!pairs[n - 1].k || !pairs[n - 1].v)
				goto out;
		}
	}
	qsort(pairs, n, sizeof pairs[0], s_pair_cmp);
	struct emu_buf params = { 0 };
	for (size_t i = 0; i < n; i++)
		emu_buf_printf(&params, "%s%s=%s", i ? "&" : "", pairs[i].k, pairs[i].v);
	char *normalized = emu_buf_take(&params);
	s_base_uri(r, &uri);
	char *base_uri = emu_buf_take(&uri);
	if (normalized && base_uri) {
		emu_buf_puts(&b, r->method);
		emu_buf_puts(&b, "&");
		emu_buf_pct(&b, base_uri, strlen(base_uri));
		emu_buf_puts(&b, "&");
		emu_buf_pct(&b, normalized, strlen(normalized));
		result = emu_buf_take(&b);
	}
	free(normalized);
	free(base_uri);
out:
	for (size_t i = 0; i < n; i++) {
		free(pairs[i].k);
		free(pairs[i].v);
	}
	emu_buf_free(&b);
	return result;
}

static bool s_rsa_sha1_ok(EVP_PKEY *pkey, const char *base, const char *signature_b64)
{
	unsigned char sig[1024];
	long siglen = emu_base64_decode(signature_b64, strlen(signature_b64), sig, sizeof sig);
	if (siglen <= 0)
		return false;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha1(), NULL, pkey) == 1 &&
		  EVP_DigestVerify(ctx, sig, (size_t)siglen, (const unsigned char *)base,
				   strlen(base)) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* Nonces are remembered per consumer for the whole timestamp window. */
static bool s_nonce_fresh(const char *consumer, const char *nonce)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	char key[EMU_TOKEN_BUF];
	bool fresh = false;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, consumer, strlen(consumer) + 1) != 1 ||
	    EVP_DigestUpdate(ctx, nonce, strlen(nonce)) != 1 ||
	    EVP_DigestFinal_ex(ctx, digest, NULL) != 1)
		goto out;
	emu_base64url(digest, sizeof digest, key, sizeof key);
	emu_lock();
	if (!emu_rec_find(REC_NONCE, key)) {
		struct emu_rec *rec = emu_rec_new(REC_NONCE, key);
		if (rec) {
			rec->expires = emu_now() + 2 * EMU_OAUTH1_SKEW;
			fresh = true;
		}
	}
	emu_unlock();
out:
	EVP_MD_CTX_free(ctx);
	return fresh;
}

/* ---- verification ------------------------------------------------------- */

static bool s_callback_ok(const char *cb)
{
	return strcmp(cb, "oob") == 0 || emu_is_absolute_http_url(cb);
}

int emu_oauth1_verify(struct emu_req *r, enum emu_o1_mode mode, struct emu_o1_result *out)
{
	struct s_sources s = { .query = &r->qp };
	const char *problem = NULL, *extra_name = NULL;
	char extra[512] = "";
	EVP_PKEY *pkey = NULL;
	char *base = NULL;
	int rc = -1;

	memset(out, 0, sizeof *out);
	if (r->body_is_form)
		s.form = &r->form;
	const char *authz = emu_req_header(r, "Authorization");
	if (authz && strncasecmp(authz, "OAuth", 5) == 0 &&
	    s_parse_auth_header(authz, &s.header) != 0) {
		problem = "parameter_rejected";
		extra_name = "oauth_parameters_rejected";
		snprintf(extra, sizeof extra, "Authorization");
		goto out;
	}
	if (!r->query_ok || (r->body_is_form && !r->form_ok)) {
		problem = "parameter_rejected";
		goto out;
	}
	const char *repeated = s_repeated_oauth_param(&s);
	if (repeated) {
		problem = "parameter_rejected";
		extra_name = "oauth_parameters_rejected";
		snprintf(extra, sizeof extra, "%s", repeated);
		goto out;
	}

	/* parameter_absent lists every missing one, '&'-separated. */
	const char *required[8] = { "oauth_consumer_key", "oauth_signature_method",
				    "oauth_signature", "oauth_timestamp", "oauth_nonce" };
	size_t nreq = 5;
	if (mode == O1_REQUEST_TOKEN)
		required[nreq++] = "oauth_callback";
	if (mode == O1_ACCESS_TOKEN) {
		required[nreq++] = "oauth_token";
		required[nreq++] = "oauth_verifier";
	}
	if (mode == O1_PROTECTED)
		required[nreq++] = "oauth_token";
	for (size_t i = 0; i < nreq; i++) {
		const char *v = s_get(&s, required[i]);
		if (v && *v)
			continue;
		problem = "parameter_absent";
		extra_name = "oauth_parameters_absent";
		size_t used = strlen(extra);
		snprintf(extra + used, sizeof extra - used, "%s%s", used ? "&" : "", required[i]);
	}
	if (problem)
		goto out;

	const char *version = s_get(&s, "oauth_version");
	if (version && strcmp(version, "1.0") != 0) {
		problem = "version_rejected";
		extra_name = "oauth_acceptable_versions";
		snprintf(extra, sizeof extra, "1.0-1.0");
		goto out;
	}
	if (strcmp(s_get(&s, "oauth_signature_method"), "RSA-SHA1") != 0) {
		problem = "signature_method_rejected";
		extra_name = "oauth_acceptable_signature_methods";
		snprintf(extra, sizeof extra, "RSA-SHA1");
		goto out;
	}
	time_t now = emu_now();
	long ts = emu_parse_nonneg(s_get(&s, "oauth_timestamp"), 99999999999L);
	if (ts < 0 || ts < now - EMU_OAUTH1_SKEW || ts > now + EMU_OAUTH1_SKEW) {
		problem = "timestamp_refused";
		extra_name = "oauth_acceptable_timestamps";
		snprintf(extra, sizeof extra, "%ld-%ld", (long)(now - EMU_OAUTH1_SKEW),
			 (long)(now + EMU_OAUTH1_SKEW));
		goto out;
	}
	const char *token = s_get(&s, "oauth_token");
	if (mode == O1_REQUEST_TOKEN) {
		const char *cb = s_get(&s, "oauth_callback");
		if (!s_callback_ok(cb)) {
			problem = "parameter_rejected";
			extra_name = "oauth_parameters_rejected";
			snprintf(extra, sizeof extra, "oauth_callback");
			goto out;
		}
		if (token && *token) {
			problem = "parameter_rejected";
			extra_name = "oauth_parameters_rejected";
			snprintf(extra, sizeof extra, "oauth_token");
			goto out;
		}
		out->callback = strdup(cb);
		if (!out->callback) {
			problem = "parameter_rejected";
			goto out;
		}
	}

	const char *consumer = s_get(&s, "oauth_consumer_key");
	snprintf(out->consumer, sizeof out->consumer, "%s", consumer);
	emu_lock();
	struct emu_consumer *c = emu_consumer_find(consumer);
	if (c && c->pkey && EVP_PKEY_up_ref(c->pkey) == 1)
		pkey = c->pkey;
	if (!pkey) {
		problem = "consumer_key_unknown";
	} else if (mode == O1_ACCESS_TOKEN) {
		struct emu_rec *rec = emu_rec_find(REC_REQUEST1, token);
		if (!rec || rec->dead_at || rec->req1_state == REQ1_USED ||
		    strcmp(rec->client, consumer) != 0)
			problem = "token_rejected";
		else if (rec->expires <= now)
			problem = "token_expired";
	} else if (mode == O1_PROTECTED) {
		struct emu_rec *rec = emu_rec_find(REC_ACCESS1, token);
		if (!rec || rec->dead_at || strcmp(rec->client, consumer) != 0)
			problem = "token_rejected";
		else if (rec->expires <= now)
			problem = "token_expired";
		else
			out->user = emu_user_by_name(rec->owner);
		if (!problem && !out->user)
			problem = "token_rejected";
	}
	emu_unlock();
	if (problem)
		goto out;

	base = s_base_string(r, &s);
	emu_lock();
	/* The fault: a proxy in front that rewrites Host breaks every
	 * signature of a REST request, whatever the token. */
	bool broken = mode == O1_PROTECTED && g_faults.oauth1_signature_invalid;
	emu_unlock();
	if (!base || broken || !s_rsa_sha1_ok(pkey, base, s_get(&s, "oauth_signature"))) {
		problem = "signature_invalid";
		/* net.oauth reports the base string it computed; it helps client
		 * authors and holds no secret (RSA-SHA1 signs with a private key). */
		extra_name = base ? "oauth_signature_base_string" : NULL;
		goto out;
	}
	/* After the signature, so forged requests cannot burn nonces. */
	if (!s_nonce_fresh(consumer, s_get(&s, "oauth_nonce"))) {
		problem = "nonce_used";
		goto out;
	}
	if (token)
		snprintf(out->token, sizeof out->token, "%s", token);
	const char *verifier = s_get(&s, "oauth_verifier");
	if (verifier)
		snprintf(out->verifier, sizeof out->verifier, "%s", verifier);
	emu_lock();
	g_stats.oauth1_signed_requests++;
	emu_unlock();
	rc = 0;
out:
	if (problem) {
		s_problem(r, problem, extra_name,
			  extra_name && strcmp(extra_name, "oauth_signature_base_string") == 0 ? base
												   : extra);
		free(out->callback);
		out->callback = NULL;
	}
	EVP_PKEY_free(pkey);
	free(base);
	emu_params_free(&s.header);
	return rc;
}

/* ---- endpoints ----------------------------------------------------------- */

static void s_send_form(struct emu_req *r, const char *body)
{
	emu_add_header(r, "Cache-Control", "no-store");
	emu_send(r, 200, "application/x-www-form-urlencoded;charset=UTF-8", body, strlen(body));
}

void emu_oauth1_request_token(struct emu_req *r)
{
	struct emu_o1_result v;
	char token[EMU_TOKEN_BUF], secret[EMU_TOKEN_BUF];
	bool issued = false;

	if (strcmp(r->method, "POST") != 0) {
		emu_send_405(r, "POST");
		return;
	}
	if (emu_oauth1_verify(r, O1_REQUEST_TOKEN, &v) != 0)
		return;
	if (emu_random_token(token) == 0 && emu_random_token(secret) == 0) {
		emu_lock();
		struct emu_rec *rec = emu_rec_new(REC_REQUEST1, token);
		if (rec) {
			issued = true;
			snprintf(rec->secret, sizeof rec->secret, "%s", secret);
			snprintf(rec->client, sizeof rec->client, "%s", v.consumer);
			rec->uri = v.callback;
			v.callback = NULL;
			rec->expires = emu_now() + EMU_PENDING_TTL;
			rec->req1_state = REQ1_NEW;
			g_stats.oauth1_request_tokens++;
		}
		emu_unlock();
	}
	free(v.callback);
	if (!issued) {
		emu_send_errors(r, 500, "Could not issue a request token.", NULL);
		return;
	}
	char body[256];
	snprintf(body, sizeof body, "oauth_token=%s&oauth_token_secret=%s&oauth_callback_confirmed=true",
		 token, secret);
	s_send_form(r, body);
}

/* Records the decision and sends the browser to the consumer's callback. */
static void s_finish_authorize(struct emu_req *r, const char *token, const struct emu_user *user,
			       bool allow)
{
	char verifier[EMU_TOKEN_BUF];
	char *callback = NULL;
	bool ok = false;

	if (allow) {
		if (emu_random_token(verifier) != 0) {
			emu_page_error(r, 500, "Error", "No randomness available.");
			return;
		}
	} else {
		snprintf(verifier, sizeof verifier, "denied");
	}
	emu_lock();
	struct emu_rec *rec = emu_rec_find(REC_REQUEST1, token);
	if (rec && !rec->dead_at && rec->req1_state == REQ1_NEW && rec->expires > emu_now()) {
		rec->req1_state = allow ? REQ1_AUTHORIZED : REQ1_DENIED;
		snprintf(rec->owner, sizeof rec->owner, "%s", user->name);
		snprintf(rec->verifier, sizeof rec->verifier, "%s", verifier);
		callback = rec->uri ? strdup(rec->uri) : NULL;
		ok = callback != NULL;
		if (allow)
			g_stats.authorize_approved++;
		else
			g_stats.authorize_denied++;
	}
	emu_unlock();
	if (!ok) {
		emu_page_error(r, 400, "Invalid request token",
			       "The request token is unknown, used or expired.");
		goto out;
	}
	if (strcmp(callback, "oob") == 0) {
		struct emu_buf b = { 0 };
		emu_buf_puts(&b, allow ? "Access granted. Enter this verification code: "
				       : "Access denied. Verification code: ");
		emu_buf_puts(&b, verifier);
		char *msg = emu_buf_take(&b);
		emu_page_error(r, 200, allow ? "Authorized" : "Denied", msg ? msg : "");
		free(msg);
		goto out;
	}
	struct emu_buf b = { 0 };
	emu_buf_puts(&b, callback);
	const char *q = strchr(callback, '?');
	if (!q)
		emu_buf_puts(&b, "?");
	else if (callback[strlen(callback) - 1] != '?' && callback[strlen(callback) - 1] != '&')
		emu_buf_puts(&b, "&");
	emu_buf_puts(&b, "oauth_token=");
	emu_buf_pct(&b, token, strlen(token));
	emu_buf_puts(&b, "&oauth_verifier=");
	emu_buf_pct(&b, verifier, strlen(verifier));
	char *loc = emu_buf_take(&b);
	if (loc)
		emu_redirect(r, loc);
	else
		emu_page_error(r, 500, "Error", "Out of memory.");
	free(loc);
out:
	free(callback);
}

static void s_authorize_get(struct emu_req *r)
{
	char consumer_key[256] = "", app_name[EMU_MAX_NAME + 1] = "", sid[EMU_TOKEN_BUF];
	char csrf[EMU_TOKEN_BUF], action[512];
	const struct emu_user *user = NULL;
	bool ok = false;

	const char *token = r->query_ok ? emu_params_get(&r->qp, "oauth_token") : NULL;
	if (!token || emu_params_count(&r->qp, "oauth_token") != 1) {
		emu_page_error(r, 400, "Invalid request", "The oauth_token parameter is missing.");
		return;
	}
	emu_lock();
	g_stats.authorize_requests++;
	struct emu_rec *rec = emu_rec_find(REC_REQUEST1, token);
	if (rec && !rec->dead_at && rec->req1_state == REQ1_NEW && rec->expires > emu_now()) {
		struct emu_consumer *c = emu_consumer_find(rec->client);
		if (c) {
			ok = true;
			snprintf(consumer_key, sizeof consumer_key, "%s", c->key);
			snprintf(app_name, sizeof app_name, "%s", c->name);
		}
	}
	emu_unlock();
	if (!ok) {
		emu_page_error(r, 400, "Invalid request token",
			       "The request token is unknown, used or expired.");
		return;
	}
	int autoapp = emu_auto_approve_user(r, &user);
	if (autoapp < 0)
		return;
	if (autoapp > 0) {
		s_finish_authorize(r, token, user, true);
		return;
	}
	user = emu_session_user(r, sid);
	if (!user) {
		char *next = emu_req_local_url(r);
		emu_page_login(r, 200, next ? next : "", NULL);
		free(next);
		return;
	}
	/* The consent form carries a per-page CSRF token bound to the session:
	 * the request token itself travels in URLs and is no secret. */
	if (emu_random_token(csrf) != 0) {
		emu_page_error(r, 500, "Error", "No randomness available.");
		return;
	}
	emu_lock();
	rec = emu_rec_find(REC_REQUEST1, token);
	if (rec) {
		snprintf(rec->session, sizeof rec->session, "%s", sid);
		snprintf(rec->csrf, sizeof rec->csrf, "%s", csrf);
	}
	emu_unlock();
	snprintf(action, sizeof action, "%s/plugins/servlet/oauth/authorize", g_cfg.context);
	struct emu_consent c = {
		.app_name = app_name,
		.user = user,
		.scope = 0,
		.action = action,
		.hidden_names = { "oauth_token", "atl_token", NULL },
		.hidden_values = { token, csrf, NULL },
	};
	emu_page_consent(r, &c);
}

static void s_authorize_post(struct emu_req *r)
{
	char sid[EMU_TOKEN_BUF];
	bool ok = false;
	const struct emu_user *user = emu_session_user(r, sid);
	const char *token = emu_req_form(r, "oauth_token");
	const char *csrf = emu_req_form(r, "atl_token");
	const char *decision = emu_req_form(r, "decision");
	if (user && token && csrf && decision) {
		emu_lock();
		struct emu_rec *rec = emu_rec_find(REC_REQUEST1, token);
		ok = rec && rec->csrf[0] && strcmp(rec->session, sid) == 0 &&
		     emu_consttime_eq(rec->csrf, csrf);
		emu_unlock();
	}
	if (!ok || (strcmp(decision, "allow") != 0 && strcmp(decision, "deny") != 0)) {
		emu_page_error(r, 400, "Invalid request",
			       "This authorization request is not valid for your session.");
		return;
	}
	s_finish_authorize(r, token, user, strcmp(decision, "allow") == 0);
}

void emu_oauth1_authorize(struct emu_req *r)
{
	if (strcmp(r->method, "GET") == 0)
		s_authorize_get(r);
	else if (strcmp(r->method, "POST") == 0)
		s_authorize_post(r);
	else
		emu_send_405(r, "GET, POST");
}

void emu_oauth1_access_token(struct emu_req *r)
{
	struct emu_o1_result v;
	char token[EMU_TOKEN_BUF], secret[EMU_TOKEN_BUF], handle[EMU_TOKEN_BUF];
	const char *problem = NULL;

	if (strcmp(r->method, "POST") != 0) {
		emu_send_405(r, "POST");
		return;
	}
	if (emu_oauth1_verify(r, O1_ACCESS_TOKEN, &v) != 0)
		return;
	if (emu_random_token(token) != 0 || emu_random_token(secret) != 0 ||
	    emu_random_token(handle) != 0) {
		emu_send_errors(r, 500, "No randomness available.", NULL);
		return;
	}
	emu_lock();
	struct emu_rec *rq = emu_rec_find(REC_REQUEST1, v.token);
	if (!rq || rq->dead_at || rq->req1_state == REQ1_USED) {
		problem = "token_rejected";
	} else if (rq->req1_state == REQ1_NEW) {
		problem = "permission_unknown"; /* the user has not decided yet */
	} else if (rq->req1_state == REQ1_DENIED) {
		problem = "permission_denied";
		rq->req1_state = REQ1_USED;
	} else if (!emu_consttime_eq(rq->verifier, v.verifier)) {
		problem = "token_rejected";
	} else {
		rq->req1_state = REQ1_USED; /* request tokens are single use */
		emu_rec_kill(rq);
		struct emu_rec *at = emu_rec_new(REC_ACCESS1, token);
		if (at) {
			snprintf(at->secret, sizeof at->secret, "%s", secret);
			snprintf(at->client, sizeof at->client, "%s", v.consumer);
			snprintf(at->owner, sizeof at->owner, "%s", rq->owner);
			snprintf(at->pair, sizeof at->pair, "%s", handle);
			at->expires = emu_now() + EMU_OAUTH1_ACCESS_TTL;
			g_stats.oauth1_access_tokens++;
		} else {
			problem = "token_rejected";
		}
	}
	emu_unlock();
	if (problem) {
		s_problem(r, problem, NULL, NULL);
		return;
	}
	char body[512];
	snprintf(body, sizeof body,
		 "oauth_token=%s&oauth_token_secret=%s&oauth_expires_in=%ld"
		 "&oauth_session_handle=%s&oauth_authorization_expires_in=%ld",
		 token, secret, EMU_OAUTH1_ACCESS_TTL, handle, EMU_OAUTH1_ACCESS_TTL);
	s_send_form(r, body);
}
