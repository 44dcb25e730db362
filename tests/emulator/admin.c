/*
 * Emulator admin API (plays the Bitbucket administrator). JSON in and out,
 * no authentication, never subject to faults, never in the request log:
 *
 *   POST   {ctx}/emulator/applinks          s_applink_create   (OAuth 2, incoming)
 *   POST   {ctx}/emulator/applinks/oauth1   s_consumer_create  (OAuth 1 consumer)
 *   GET    {ctx}/emulator/applinks          s_applink_list     (no secrets)
 *
 * The rules for new links live in emu_link_create_oauth2/oauth1, which the
 * HTML pages in applinks.c use too.
 *   GET    {ctx}/emulator/faults            s_faults
 *   POST   {ctx}/emulator/faults            s_faults
 *   POST   {ctx}/emulator/tokens/expire     s_tokens           {"username":...}
 *   POST   {ctx}/emulator/tokens/revoke     s_tokens           {"username":...}
 *   GET    {ctx}/emulator/requests          s_requests
 *   DELETE {ctx}/emulator/requests          s_requests
 *   GET    {ctx}/emulator/stats             s_stats
 *   POST   {ctx}/emulator/reset             s_reset
 */
#include "emulator.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/decoder.h>

static void s_error(struct emu_req *r, int status, const char *message)
{
	emu_send_json(r, status, json_pack("{s:s}", "error", message));
}

/* Parses the body as a JSON object; sends 400 and returns NULL otherwise. */
static json_t *s_body_object(struct emu_req *r)
{
	json_error_t err;
	json_t *j = r->body_len ? json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &err)
				: NULL;
	if (!j || !json_is_object(j)) {
		json_decref(j);
		s_error(r, 400, "The body must be a JSON object.");
		return NULL;
	}
	return j;
}

static bool s_text_ok(const char *s, size_t max, bool allow_space)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c == 0x7f || (!allow_space && c == ' '))
			return false;
	}
	return true;
}

static bool s_hex_ok(const char *s, size_t len)
{
	if (strlen(s) != len)
		return false;
	for (const char *p = s; *p; p++)
		if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p))
			return false;
	return true;
}

/* ---- link registration (shared with the HTML pages) ----------------------- */

bool emu_link_name_ok(const char *name)
{
	return name && s_text_ok(name, EMU_MAX_NAME, true);
}

bool emu_consumer_key_ok(const char *key)
{
	return key && s_text_ok(key, 255, false);
}

/* SubjectPublicKeyInfo ("PUBLIC KEY") or PKCS#1 ("RSA PUBLIC KEY"); RSA only. */
EVP_PKEY *emu_rsa_public_key_from_pem(const char *pem)
{
	EVP_PKEY *pkey = NULL;
	OSSL_DECODER_CTX *dctx = NULL;
	if (!pem || strlen(pem) >= 16384)
		return NULL;
	const char *p = pem;
	while (isspace((unsigned char)*p))
		p++;
	if (!emu_str_has_prefix(p, "-----BEGIN PUBLIC KEY-----") &&
	    !emu_str_has_prefix(p, "-----BEGIN RSA PUBLIC KEY-----"))
		goto out;
	dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, "RSA", EVP_PKEY_PUBLIC_KEY,
					     NULL, NULL);
	const unsigned char *data = (const unsigned char *)p;
	size_t len = strlen(p);
	if (!dctx || OSSL_DECODER_from_data(dctx, &data, &len) != 1) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
		goto out;
	}
	if (!EVP_PKEY_is_a(pkey, "RSA") || EVP_PKEY_get_bits(pkey) < 1024) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
out:
	OSSL_DECODER_CTX_free(dctx);
	return pkey;
}

enum emu_link_error emu_link_create_oauth2(struct emu_link_oauth2 *l)
{
	char client_id[33], client_secret[65];
	if (!emu_link_name_ok(l->name))
		return LINK_BAD_NAME;
	if (!l->redirect_url || !emu_is_absolute_http_url(l->redirect_url))
		return LINK_BAD_REDIRECT;
	/* Optional fixed credentials, for reproducible compose setups. */
	if ((l->client_id && !s_hex_ok(l->client_id, 32)) ||
	    (l->client_secret && !s_hex_ok(l->client_secret, 64)))
		return LINK_BAD_CREDENTIALS;
	if (l->client_id)
		snprintf(client_id, sizeof client_id, "%s", l->client_id);
	if (l->client_secret)
		snprintf(client_secret, sizeof client_secret, "%s", l->client_secret);
	if ((!l->client_id && emu_random_hex(client_id, 16) != 0) ||
	    (!l->client_secret && emu_random_hex(client_secret, 32) != 0))
		return LINK_NO_RANDOM;
	emu_lock();
	struct emu_applink *a = emu_applink_find(client_id) ? NULL : emu_applink_add();
	if (a) {
		snprintf(a->name, sizeof a->name, "%s", l->name);
		snprintf(a->client_id, sizeof a->client_id, "%s", client_id);
		snprintf(a->client_secret, sizeof a->client_secret, "%s", client_secret);
		snprintf(a->redirect_url, sizeof a->redirect_url, "%s", l->redirect_url);
		a->perms = l->perms;
		emu_state_save();
	}
	emu_unlock();
	if (!a)
		return LINK_EXISTS;
	snprintf(l->out_client_id, sizeof l->out_client_id, "%s", client_id);
	snprintf(l->out_client_secret, sizeof l->out_client_secret, "%s", client_secret);
	return LINK_OK;
}

enum emu_link_error emu_link_create_oauth1(const struct emu_link_oauth1 *l)
{
	const char *url = l->link_url && l->link_url[0] ? l->link_url : NULL;
	const char *callback = l->callback_url && l->callback_url[0] ? l->callback_url : NULL;
	if (!emu_link_name_ok(l->link_name) || !emu_link_name_ok(l->consumer_name))
		return LINK_BAD_NAME;
	if (!emu_consumer_key_ok(l->consumer_key))
		return LINK_BAD_KEY;
	if (url && !emu_is_absolute_http_url(url))
		return LINK_BAD_URL;
	if (callback && !emu_is_absolute_http_url(callback))
		return LINK_BAD_CALLBACK;
	EVP_PKEY *pkey = emu_rsa_public_key_from_pem(l->public_key);
	if (!pkey)
		return LINK_BAD_PUBLIC_KEY;
	emu_lock();
	struct emu_consumer *c = emu_consumer_find(l->consumer_key) ? NULL : emu_consumer_add();
	if (c) {
		snprintf(c->name, sizeof c->name, "%s", l->consumer_name);
		snprintf(c->key, sizeof c->key, "%s", l->consumer_key);
		snprintf(c->callback, sizeof c->callback, "%s", callback ? callback : "");
		snprintf(c->link_name, sizeof c->link_name, "%s", l->link_name);
		snprintf(c->link_url, sizeof c->link_url, "%s", url ? url : "");
		c->pkey = pkey;
		pkey = NULL;
		emu_state_save();
	}
	emu_unlock();
	EVP_PKEY_free(pkey);
	return c ? LINK_OK : LINK_EXISTS;
}

/* ---- OAuth 2 applinks ----------------------------------------------------- */

static void s_applink_create(struct emu_req *r)
{
	json_t *body = s_body_object(r);
	if (!body)
		return;
	struct emu_link_oauth2 l = {
		.name = json_string_value(json_object_get(body, "name")),
		.redirect_url = json_string_value(json_object_get(body, "redirect_url")),
		.client_id = json_string_value(json_object_get(body, "client_id")),
		.client_secret = json_string_value(json_object_get(body, "client_secret")),
	};
	json_t *permissions = json_object_get(body, "permissions");

	/* Checked in the order the API always answered in. */
	if (!emu_link_name_ok(l.name)) {
		s_error(r, 400, "name is required (1-200 characters).");
		goto out;
	}
	if (!l.redirect_url || !emu_is_absolute_http_url(l.redirect_url)) {
		s_error(r, 400, "redirect_url must be an absolute http(s) URL without fragment.");
		goto out;
	}
	if (permissions && !json_is_array(permissions)) {
		s_error(r, 400, "permissions must be an array of scope names.");
		goto out;
	}
	size_t i;
	json_t *v;
	json_array_foreach(permissions, i, v) {
		const char *p = json_string_value(v);
		unsigned bit = p ? emu_scope_from_name(p, strlen(p)) : 0;
		if (!bit) {
			s_error(r, 400, "Unknown permission; use REPO_READ, REPO_WRITE, ...");
			goto out;
		}
		l.perms |= bit;
	}
	switch (emu_link_create_oauth2(&l)) {
	case LINK_OK:
		emu_send_json(r, 201, json_pack("{s:s, s:s}", "client_id", l.out_client_id,
						 "client_secret", l.out_client_secret));
		break;
	case LINK_BAD_CREDENTIALS:
		s_error(r, 400, "client_id must be 32 and client_secret 64 lowercase hex digits.");
		break;
	case LINK_NO_RANDOM:
		s_error(r, 500, "No randomness available.");
		break;
	case LINK_EXISTS:
		s_error(r, 409, "That client_id exists already, or too many application links.");
		break;
	default:
		s_error(r, 400, "Invalid application link.");
		break;
	}
out:
	json_decref(body);
}

/* ---- OAuth 1 consumers --------------------------------------------------- */

static void s_consumer_create(struct emu_req *r)
{
	json_t *body = s_body_object(r);
	if (!body)
		return;
	const char *name = json_string_value(json_object_get(body, "name"));
	struct emu_link_oauth1 l = {
		.link_name = name,
		.consumer_name = name,
		.consumer_key = json_string_value(json_object_get(body, "consumer_key")),
		.public_key = json_string_value(json_object_get(body, "public_key")),
		.callback_url = json_string_value(json_object_get(body, "callback_url")),
	};
	/* JSON null means absent, but "" is not a URL here (never was). */
	if (l.callback_url && !l.callback_url[0]) {
		s_error(r, 400, "callback_url must be an absolute http(s) URL.");
		goto out;
	}
	switch (emu_link_create_oauth1(&l)) {
	case LINK_OK:
		emu_send_json(r, 201, json_object());
		break;
	case LINK_BAD_NAME:
		s_error(r, 400, "name is required (1-200 characters).");
		break;
	case LINK_BAD_KEY:
		s_error(r, 400, "consumer_key is required (1-255 characters, no spaces).");
		break;
	case LINK_BAD_CALLBACK:
		s_error(r, 400, "callback_url must be an absolute http(s) URL.");
		break;
	case LINK_BAD_PUBLIC_KEY:
		s_error(r, 400, "public_key must be an RSA public key in PEM form (BEGIN PUBLIC KEY).");
		break;
	case LINK_EXISTS:
		s_error(r, 409, "That consumer_key exists already, or too many application links.");
		break;
	default:
		s_error(r, 400, "Invalid consumer.");
		break;
	}
out:
	json_decref(body);
}

static void s_applink_list(struct emu_req *r)
{
	json_t *list = json_array();
	emu_lock();
	for (size_t i = 0; i < emu_applink_count(); i++) {
		const struct emu_applink *a = emu_applink_at(i);
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s, s:o}", "type", "oauth2",
						      "name", a->name, "client_id", a->client_id,
						      "redirect_url", a->redirect_url, "permissions",
						      emu_scope_json(a->perms)));
	}
	for (size_t i = 0; i < emu_consumer_count(); i++) {
		const struct emu_consumer *c = emu_consumer_at(i);
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type",
						      "oauth1", "name", c->name, "consumer_key", c->key,
						      "callback_url", c->callback, "application_name",
						      c->link_name, "application_url", c->link_url));
	}
	emu_unlock();
	emu_send_json(r, 200, list);
}

/* ---- faults -------------------------------------------------------------- */

static json_t *s_faults_json(void)
{
	emu_lock();
	struct emu_faults f = g_faults;
	emu_unlock();
	return json_pack("{s:I, s:i, s:b, s:b, s:b, s:i, s:i, s:b, s:b, s:b}", "latency_ms",
			 (json_int_t)f.latency_ms, "status", f.status, "hang", f.hang, "rate_limit",
			 f.rate_limit, "tfa_block", f.tfa_block, "auserid", f.auserid, "record_id",
			 f.record_id, "record_inactive", f.record_inactive,
			 "oauth1_signature_invalid", f.oauth1_signature_invalid,
			 "refresh_kept", f.refresh_kept);
}

static void s_faults(struct emu_req *r)
{
	if (strcmp(r->method, "GET") == 0) {
		emu_send_json(r, 200, s_faults_json());
		return;
	}
	json_t *body = s_body_object(r);
	if (!body)
		return;
	const char *k;
	json_t *v;
	/* Validate everything first, then apply all at once. */
	json_object_foreach(body, k, v) {
		bool ok;
		if (strcmp(k, "latency_ms") == 0)
			ok = json_is_integer(v) && json_integer_value(v) >= 0 &&
			     json_integer_value(v) <= 60000;
		else if (strcmp(k, "status") == 0)
			ok = json_is_integer(v) && (json_integer_value(v) == 0 ||
						    (json_integer_value(v) >= 200 &&
						     json_integer_value(v) <= 599));
		else if (strcmp(k, "hang") == 0 || strcmp(k, "rate_limit") == 0 ||
			 strcmp(k, "tfa_block") == 0 || strcmp(k, "record_inactive") == 0 ||
			 strcmp(k, "oauth1_signature_invalid") == 0 || strcmp(k, "refresh_kept") == 0)
			ok = json_is_boolean(v);
		else if (strcmp(k, "auserid") == 0 || strcmp(k, "record_id") == 0)
			ok = json_is_integer(v) && json_integer_value(v) >= 0 &&
			     json_integer_value(v) <= 1000000;
		else
			ok = false;
		if (!ok) {
			char msg[320];
			snprintf(msg, sizeof msg, "Invalid fault %.60s (latency_ms 0-60000, status 0 or "
				 "200-599, hang/rate_limit/tfa_block/record_inactive/oauth1_signature_invalid/"
				 "refresh_kept booleans, auserid/record_id "
				 "0-1000000).", k);
			s_error(r, 400, msg);
			json_decref(body);
			return;
		}
	}
	emu_lock();
	json_object_foreach(body, k, v) {
		if (strcmp(k, "latency_ms") == 0)
			g_faults.latency_ms = (long)json_integer_value(v);
		else if (strcmp(k, "status") == 0)
			g_faults.status = (int)json_integer_value(v);
		else if (strcmp(k, "hang") == 0)
			g_faults.hang = json_is_true(v);
		else if (strcmp(k, "rate_limit") == 0)
			g_faults.rate_limit = json_is_true(v);
		else if (strcmp(k, "tfa_block") == 0)
			g_faults.tfa_block = json_is_true(v);
		else if (strcmp(k, "auserid") == 0)
			g_faults.auserid = (int)json_integer_value(v);
		else if (strcmp(k, "record_id") == 0)
			g_faults.record_id = (int)json_integer_value(v);
		else if (strcmp(k, "record_inactive") == 0)
			g_faults.record_inactive = json_is_true(v);
		else if (strcmp(k, "oauth1_signature_invalid") == 0)
			g_faults.oauth1_signature_invalid = json_is_true(v);
		else if (strcmp(k, "refresh_kept") == 0)
			g_faults.refresh_kept = json_is_true(v);
	}
	emu_unlock();
	json_decref(body);
	emu_send_json(r, 200, s_faults_json());
}

/* ---- tokens --------------------------------------------------------------- */

struct s_token_op {
	const char *username;
	bool revoke;
	long count;
};

static void s_token_apply(struct emu_rec *rec, void *arg)
{
	struct s_token_op *op = arg;
	time_t now = emu_now();
	if (rec->dead_at || strcmp(rec->owner, op->username) != 0)
		return;
	bool access = rec->kind == REC_ACCESS2 || rec->kind == REC_ACCESS1;
	if (op->revoke && (access || rec->kind == REC_REFRESH2)) {
		emu_rec_kill(rec);
		op->count++;
	} else if (!op->revoke && access && rec->expires > now) {
		rec->expires = now - 1;
		op->count++;
	}
}

static void s_tokens(struct emu_req *r, bool revoke)
{
	json_t *body = s_body_object(r);
	if (!body)
		return;
	const char *username = json_string_value(json_object_get(body, "username"));
	if (!username || !emu_user_by_name(username)) {
		s_error(r, 404, "No such user.");
		json_decref(body);
		return;
	}
	struct s_token_op op = { username, revoke, 0 };
	emu_lock();
	emu_rec_foreach(s_token_apply, &op);
	emu_unlock();
	json_decref(body);
	emu_send_json(r, 200, json_pack("{s:I}", revoke ? "revoked" : "expired", (json_int_t)op.count));
}

/* ---- permissions and disabled users ---------------------------------------- */

static const struct {
	const char *name;
	enum emu_perm perm;
	bool project;
} s_perm_names[] = {
	{ "NONE", PERM_NONE, true },          { "NONE", PERM_NONE, false },
	{ "PROJECT_READ", PERM_READ, true },   { "PROJECT_WRITE", PERM_WRITE, true },
	{ "PROJECT_ADMIN", PERM_ADMIN, true }, { "REPO_READ", PERM_READ, false },
	{ "REPO_WRITE", PERM_WRITE, false },   { "REPO_ADMIN", PERM_ADMIN, false },
};

/* POST {"username", "project", "repository" (optional), "permission"}:
 * PROJECT_READ/WRITE/ADMIN for a project, REPO_READ/WRITE/ADMIN for a
 * repository, NONE to take access away (also built-in access). */
static void s_permissions(struct emu_req *r)
{
	json_t *body = s_body_object(r);
	if (!body)
		return;
	const char *username = json_string_value(json_object_get(body, "username"));
	const char *key = json_string_value(json_object_get(body, "project"));
	const char *slug = json_string_value(json_object_get(body, "repository"));
	const char *perm = json_string_value(json_object_get(body, "permission"));
	const struct emu_user *u = username ? emu_user_by_name(username) : NULL;
	const struct emu_project *p = key ? emu_project_find(key) : NULL;
	bool is_project = !slug || !slug[0];
	int k = -1;
	for (size_t i = 0; perm && i < sizeof s_perm_names / sizeof s_perm_names[0] && k < 0; i++)
		if (!strcmp(s_perm_names[i].name, perm) && s_perm_names[i].project == is_project)
			k = (int)i;
	if (!u)
		s_error(r, 404, "No such user.");
	else if (!p)
		s_error(r, 404, "No such project.");
	else if (!is_project && !emu_repo_find(p->key, slug))
		s_error(r, 404, "No such repository.");
	else if (k < 0)
		s_error(r, 400, "permission must be PROJECT_READ/WRITE/ADMIN for a project, REPO_READ/WRITE/ADMIN "
				"for a repository, or NONE.");
	else if (emu_grant_set(u, p, is_project ? "" : slug, s_perm_names[k].perm) < 0)
		s_error(r, 507, "Too many grants.");
	else
		emu_send_json(r, 200, json_pack("{s:s, s:s, s:s, s:s}", "username", u->name, "project",
						p->key, "repository", is_project ? "" : slug, "permission",
						perm));
	json_decref(body);
}

static void s_user_disabled(struct emu_req *r, bool disabled)
{
	json_t *body = s_body_object(r);
	if (!body)
		return;
	const char *username = json_string_value(json_object_get(body, "username"));
	const struct emu_user *u = username ? emu_user_by_name(username) : NULL;
	if (!u) {
		s_error(r, 404, "No such user.");
	} else {
		emu_user_set_disabled(u, disabled);
		emu_send_json(r, 200, json_pack("{s:s, s:b}", "username", u->name, "active", !disabled));
	}
	json_decref(body);
}

static void s_users_disable(struct emu_req *r)
{
	s_user_disabled(r, true);
}

static void s_users_enable(struct emu_req *r)
{
	s_user_disabled(r, false);
}

/* ---- request log, stats, reset ------------------------------------------- */

static void s_requests(struct emu_req *r)
{
	if (strcmp(r->method, "DELETE") == 0) {
		emu_lock();
		emu_log_clear();
		emu_unlock();
		emu_send(r, 204, NULL, "", 0);
		return;
	}
	emu_lock();
	json_t *list = emu_log_snapshot();
	emu_unlock();
	emu_send_json(r, 200, list);
}

static void s_stats(struct emu_req *r)
{
	emu_lock();
	struct emu_stats s = g_stats;
	size_t access = emu_rec_live_count(REC_ACCESS2), refresh = emu_rec_live_count(REC_REFRESH2);
	size_t access1 = emu_rec_live_count(REC_ACCESS1), sessions = emu_rec_live_count(REC_SESSION);
	emu_unlock();
#define U(x) ((json_int_t)(x))
	json_t *j = json_pack(
		"{s:{s:I, s:I, s:I, s:I}, s:I, s:I, s:{s:I, s:I}, s:I, s:I, s:I, s:I,"
		" s:{s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I}, s:I, s:I, s:{s:I, s:I},"
		" s:{s:I, s:I, s:I, s:I}}",
		"authorize", "requests", U(s.authorize_requests), "approved", U(s.authorize_approved),
		"denied", U(s.authorize_denied), "errors", U(s.authorize_errors),
		"token_requests", U(s.token_requests), "token_errors", U(s.token_errors),
		"grants", "authorization_code", U(s.grants_authorization_code), "refresh_token",
		U(s.grants_refresh_token),
		"refreshes", U(s.grants_refresh_token), "failed_refreshes", U(s.failed_refreshes),
		"refresh_token_reuse", U(s.refresh_token_reuse), "code_reuse", U(s.code_reuse),
		"oauth1", "request_tokens", U(s.oauth1_request_tokens), "access_tokens",
		U(s.oauth1_access_tokens), "signed_requests", U(s.oauth1_signed_requests), "failures",
		U(s.oauth1_failures),
		"rest", "requests", U(s.rest_requests), "authenticated", U(s.rest_authenticated),
		"unauthorized", U(s.rest_unauthorized),
		"rate_limited", U(s.rate_limited), "faults_injected", U(s.faults_injected),
		"logins", "succeeded", U(s.logins), "failed", U(s.failed_logins),
		"live", "access_tokens", U(access), "refresh_tokens", U(refresh), "oauth1_access_tokens",
		U(access1), "sessions", U(sessions));
#undef U
	emu_send_json(r, 200, j);
}

static void s_reset(struct emu_req *r)
{
	emu_lock();
	emu_state_reset();
	emu_state_save();
	emu_unlock();
	emu_send_json(r, 200, json_object());
}

/* ---- dispatch -------------------------------------------------------------- */

struct s_admin_route {
	const char *method;
	const char *path;
	void (*fn)(struct emu_req *r);
};

static void s_tokens_expire(struct emu_req *r)
{
	s_tokens(r, false);
}

static void s_tokens_revoke(struct emu_req *r)
{
	s_tokens(r, true);
}

static const struct s_admin_route s_routes[] = {
	{ "POST", "applinks", s_applink_create },
	{ "GET", "applinks", s_applink_list },
	{ "POST", "applinks/oauth1", s_consumer_create },
	{ "GET", "faults", s_faults },
	{ "POST", "faults", s_faults },
	{ "POST", "tokens/expire", s_tokens_expire },
	{ "POST", "tokens/revoke", s_tokens_revoke },
	{ "POST", "permissions", s_permissions },
	{ "POST", "users/disable", s_users_disable },
	{ "POST", "users/enable", s_users_enable },
	{ "GET", "requests", s_requests },
	{ "DELETE", "requests", s_requests },
	{ "GET", "stats", s_stats },
	{ "POST", "reset", s_reset },
};

void emu_admin(struct emu_req *r, const char *rest)
{
	bool path_known = false;
	if (r->body_too_large) {
		s_error(r, 413, "Request body too large.");
		return;
	}
	for (size_t i = 0; i < sizeof s_routes / sizeof s_routes[0]; i++) {
		if (strcmp(s_routes[i].path, rest) != 0)
			continue;
		path_known = true;
		if (strcmp(s_routes[i].method, r->method) == 0) {
			s_routes[i].fn(r);
			return;
		}
	}
	if (path_known)
		s_error(r, 405, "Method not allowed.");
	else
		s_error(r, 404, "No such emulator endpoint.");
}
