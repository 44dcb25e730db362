/*
 * Identity and REST endpoints:
 *
 *   GET {ctx}/plugins/servlet/applinks/whoami              emu_rest_whoami
 *   GET {ctx}/rest/api/{1.0,latest}/application-properties s_application_properties
 *   GET {ctx}/rest/api/{1.0,latest}/users                  s_users_list
 *   GET {ctx}/rest/api/{1.0,latest}/users/{slug}           s_user_get
 *   GET {ctx}/rest/api/{1.0,latest}/repos                  s_repos_list
 *   GET {ctx}/rest/api/{1.0,latest}/projects/{key}         s_project_get
 *   GET {ctx}/rest/api/{1.0,latest}/projects/{key}/repos/{slug}[/raw/{path}]
 *   GET {ctx}/rest/api/{1.0,latest}/users/{slug}/repos/{slug}[/raw/{path}]
 *   GET {ctx}/rest/oauth2/{1.0,latest}/client              (GCM's plugin probe)
 *   GET {ctx}/rest/authconfig/1.0/login-options
 *   GET {ctx}/users/{slug}/avatar.png
 */
#include "emulator.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EXC_AUTH "com.atlassian.bitbucket.AuthorisationException"
#define EXC_LOGIN "com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException"
#define EXC_NO_USER "com.atlassian.bitbucket.user.NoSuchUserException"
#define EXC_NO_REPO "com.atlassian.bitbucket.repository.NoSuchRepositoryException"
#define EXC_NO_PROJECT "com.atlassian.bitbucket.project.NoSuchProjectException"
#define EXC_NO_PATH "com.atlassian.bitbucket.content.NoSuchPathException"
#define EXC_BAD_PARAM "com.atlassian.bitbucket.validation.ArgumentValidationException"
#define EXC_TFA "com.alphaserve.bitbucket.tfa.TwoFactorAuthenticationRequiredException"

/* ---- authentication --------------------------------------------------- */

struct s_auth {
	const struct emu_user *user; /* NULL: anonymous */
	enum emu_perm cap;           /* highest permission the credential allows */
};

static int s_bearer(struct emu_req *r, const char *token, bool whoami, struct s_auth *a)
{
	bool valid = false, expired = false;
	emu_lock();
	struct emu_rec *rec = emu_rec_find(REC_ACCESS2, token);
	if (rec && !rec->dead_at) {
		if (rec->expires > emu_now()) {
			a->user = emu_user_by_name(rec->owner);
			a->cap = emu_scope_cap(rec->scope);
			/* A disabled user's tokens stop working at once. */
			valid = a->user != NULL && !emu_user_disabled(a->user);
		} else {
			expired = true;
		}
	}
	if (!valid)
		g_stats.rest_unauthorized++;
	emu_unlock();
	if (valid)
		return 0;
	if (whoami)
		return 0; /* whoami answers 200 with an empty body, whatever happens */
	emu_send_errors(r, 401,
			expired ? "The access token has expired."
				: "Authentication failed. Please check your credentials and try again.",
			EXC_LOGIN);
	return -1;
}

static int s_basic(struct emu_req *r, const char *b64, struct s_auth *a)
{
	unsigned char raw[512];
	long n = emu_base64_decode(b64, strlen(b64), raw, sizeof raw - 1);
	if (n > 0) {
		raw[n] = '\0';
		char *colon = strchr((char *)raw, ':');
		if (colon && strlen((char *)raw) == (size_t)n) {
			*colon = '\0';
			const struct emu_user *u = emu_user_by_name((char *)raw);
			if (emu_password_ok(u, colon + 1) && !emu_user_disabled(u)) {
				a->user = u;
				a->cap = PERM_ADMIN;
				return 0;
			}
		}
	}
	emu_lock();
	g_stats.rest_unauthorized++;
	emu_unlock();
	emu_send_errors(r, 401, "Authentication failed. Please check your credentials and try again.",
			EXC_LOGIN);
	return -1;
}

/* Resolves the caller. Returns -1 when a response has been sent. */
static int s_authenticate(struct emu_req *r, bool whoami, struct s_auth *a)
{
	bool via_token = false;
	a->user = NULL;
	a->cap = PERM_NONE;
	const char *h = emu_req_header(r, "Authorization");
	if (h && strncasecmp(h, "Bearer ", 7) == 0) {
		const char *t = h + 7;
		while (*t == ' ')
			t++;
		if (s_bearer(r, t, whoami, a) != 0)
			return -1;
		via_token = true;
	} else if (h && strncasecmp(h, "OAuth", 5) == 0) {
		struct emu_o1_result v;
		if (emu_oauth1_verify(r, O1_PROTECTED, &v) != 0) {
			emu_lock();
			g_stats.rest_unauthorized++;
			emu_unlock();
			return -1; /* the OAuth filter answers first, even for whoami */
		}
		if (emu_user_disabled(v.user)) {
			emu_lock();
			g_stats.rest_unauthorized++;
			emu_unlock();
			emu_send_errors(r, 401,
					"Authentication failed. Please check your credentials and try again.",
					EXC_LOGIN);
			return -1;
		}
		a->user = v.user;
		a->cap = PERM_ADMIN;
		via_token = true;
	} else if (h && strncasecmp(h, "Basic ", 6) == 0) {
		if (s_basic(r, h + 6, a) != 0)
			return -1;
	} else {
		a->user = emu_session_user(r, NULL);
		a->cap = a->user ? PERM_ADMIN : PERM_NONE;
	}

	emu_lock();
	bool tfa = g_faults.tfa_block;
	int auserid = g_faults.auserid;
	emu_unlock();
	if (tfa && via_token && a->user) {
		/* "2FA for Bitbucket: U2F & TOTP" without the OAuth whitelist. */
		a->user = NULL;
		a->cap = PERM_NONE;
		if (!whoami) {
			emu_lock();
			g_stats.rest_unauthorized++;
			emu_unlock();
			emu_send_errors(r, 401,
					"Two-factor authentication is required. Complete two-factor "
					"authentication in the browser to continue.",
					EXC_TFA);
			return -1;
		}
	}
	if (a->user) {
		struct emu_buf b = { 0 };
		emu_buf_java_urlencode(&b, a->user->name);
		char *enc = emu_buf_take(&b);
		emu_add_header(r, "X-AUSERNAME", "%s", enc ? enc : "");
		/* The auserid fault: a header that names another account, as a
		 * cache between Portico and Bitbucket that ignores Vary would. */
		emu_add_header(r, "X-AUSERID", "%d", auserid ? auserid : a->user->id);
		free(enc);
		emu_lock();
		g_stats.rest_authenticated++;
		emu_unlock();
	}
	emu_add_header(r, "Vary", "x-ausername,x-auserid,cookie,accept-encoding");
	return 0;
}

static bool s_get_only(struct emu_req *r)
{
	if (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0)
		return true;
	emu_send_405(r, "GET");
	return false;
}

/* ---- whoami ------------------------------------------------------------ */

void emu_rest_whoami(struct emu_req *r)
{
	struct s_auth a;
	if (!s_get_only(r) || s_authenticate(r, true, &a) != 0)
		return;
	const char *body = a.user ? a.user->name : "";
	emu_send(r, 200, "text/plain;charset=UTF-8", body, strlen(body));
}

/* ---- JSON shapes ----------------------------------------------------------- */

static char *s_join(const char *a, const char *b, const char *c)
{
	struct emu_buf buf = { 0 };
	emu_buf_puts(&buf, a);
	emu_buf_puts(&buf, b);
	emu_buf_puts(&buf, c);
	return emu_buf_take(&buf);
}

static json_t *s_link_list(const char *href)
{
	return json_pack("[{s:s}]", "href", href ? href : "");
}

static char *s_pct_seg(const char *s)
{
	struct emu_buf b = { 0 };
	emu_buf_pct(&b, s, strlen(s));
	return emu_buf_take(&b);
}

static json_t *s_user_json(const struct emu_user *u, long avatar_size)
{
	char *slug = s_pct_seg(u->slug);
	char *self = s_join(g_cfg.base_url, "/users/", slug ? slug : "");
	/* The record_* faults: a record that is not the account the token is
	 * (renamed, its name taken by another), or a deactivated account whose
	 * token still works. */
	bool active = !emu_user_disabled(u);
	emu_lock();
	int id = g_faults.record_id ? g_faults.record_id : u->id;
	active = active && !g_faults.record_inactive;
	emu_unlock();
	json_t *j = json_pack("{s:s, s:s, s:i, s:s, s:b, s:s, s:s, s:{s:o}}", "name", u->name,
			      "emailAddress", u->email, "id", id, "displayName", u->display,
			      "active", active, "slug", u->slug, "type", "NORMAL", "links", "self",
			      s_link_list(self));
	if (j && avatar_size >= 0) {
		/* Server-relative, like Bitbucket: clients prefix the host. */
		char *url = NULL;
		if (asprintf(&url, "%s/users/%s/avatar.png?s=%ld", g_cfg.context, slug ? slug : "",
			     avatar_size) >= 0) {
			json_object_set_new(j, "avatarUrl", json_string(url));
			free(url);
		}
	}
	free(self);
	free(slug);
	return j;
}

static void s_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static json_t *s_project_json(const struct emu_project *p)
{
	char *self = NULL;
	const struct emu_user *owner = p->personal ? emu_user_by_name(p->owner) : NULL;
	if (owner)
		self = s_join(g_cfg.base_url, "/users/", owner->slug);
	else
		self = s_join(g_cfg.base_url, "/projects/", p->key);
	json_t *j = json_pack("{s:s, s:i, s:s, s:b, s:s, s:{s:o}}", "key", p->key, "id", p->id,
			      "name", p->name, "public", p->is_public, "type",
			      p->personal ? "PERSONAL" : "NORMAL", "links", "self", s_link_list(self));
	if (j && owner)
		json_object_set_new(j, "owner", s_user_json(owner, -1));
	free(self);
	return j;
}

static json_t *s_repo_json(const struct emu_repo *repo)
{
	char key[64], *http = NULL, *ssh = NULL, *browse = NULL;
	snprintf(key, sizeof key, "%s", repo->project->key);
	s_lower(key);
	const struct emu_user *owner =
		repo->project->personal ? emu_user_by_name(repo->project->owner) : NULL;
	if (asprintf(&http, "%s/scm/%s/%s.git", g_cfg.base_url, key, repo->slug) < 0)
		http = NULL;
	if (asprintf(&ssh, "ssh://git@%s:7999/%s/%s.git", g_cfg.host, key, repo->slug) < 0)
		ssh = NULL;
	if (owner) {
		if (asprintf(&browse, "%s/users/%s/repos/%s/browse", g_cfg.base_url, owner->slug,
			     repo->slug) < 0)
			browse = NULL;
	} else if (asprintf(&browse, "%s/projects/%s/repos/%s/browse", g_cfg.base_url,
			    repo->project->key, repo->slug) < 0) {
		browse = NULL;
	}
	json_t *j = json_pack(
		"{s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:b, s:o, s:b, s:b, s:{s:[{s:s, s:s}, {s:s, s:s}], s:o}}",
		"slug", repo->slug, "id", repo->id, "name", repo->name, "hierarchyId",
		repo->hierarchy_id, "scmId", "git", "state", "AVAILABLE", "statusMessage", "Available",
		"forkable", repo->forkable, "project", s_project_json(repo->project), "public",
		repo->is_public, "archived", 0, "links", "clone", "href", http ? http : "", "name",
		"http", "href", ssh ? ssh : "", "name", "ssh", "self", s_link_list(browse));
	free(http);
	free(ssh);
	free(browse);
	return j;
}

/* ---- paging ------------------------------------------------------------- */

struct s_page {
	long start;
	long limit;
};

static int s_parse_paging(struct emu_req *r, struct s_page *p)
{
	const char *start = emu_params_get(&r->qp, "start");
	const char *limit = emu_params_get(&r->qp, "limit");
	p->start = start ? emu_parse_nonneg(start, INT_MAX) : 0;
	p->limit = limit ? emu_parse_nonneg(limit, INT_MAX) : 25;
	if (p->start < 0) {
		emu_send_errors(r, 400, "start must be a non-negative integer.", EXC_BAD_PARAM);
		return -1;
	}
	if (p->limit <= 0) {
		emu_send_errors(r, 400, "limit must be a positive integer.", EXC_BAD_PARAM);
		return -1;
	}
	if (p->limit > 1000)
		p->limit = 1000; /* Bitbucket's page size cap */
	return 0;
}

struct s_lister {
	size_t total;
	bool (*visible)(size_t i, const void *ctx);
	json_t *(*render)(size_t i, const void *ctx);
	const void *ctx;
};

/* Pages over the full list, counting hidden entries: nextPageStart is the
 * index after the last entry examined, so it runs ahead of start+size
 * whenever hidden entries were skipped (as recorded on real servers). */
static json_t *s_page_json(const struct s_lister *l, const struct s_page *p)
{
	json_t *values = json_array();
	size_t i = (size_t)p->start, size = 0;
	for (; i < l->total && size < (size_t)p->limit; i++) {
		if (!l->visible(i, l->ctx))
			continue;
		json_array_append_new(values, l->render(i, l->ctx));
		size++;
	}
	bool more = false;
	for (size_t k = i; k < l->total && !more; k++)
		more = l->visible(k, l->ctx);
	json_t *j = json_pack("{s:I, s:I, s:b, s:o, s:I}", "size", (json_int_t)size, "limit",
			      (json_int_t)p->limit, "isLastPage", !more, "values", values, "start",
			      (json_int_t)p->start);
	if (j && more)
		json_object_set_new(j, "nextPageStart", json_integer((json_int_t)i));
	return j;
}

/* ---- application-properties ----------------------------------------------- */

static void s_application_properties(struct emu_req *r)
{
	struct s_auth a;
	if (!s_get_only(r) || s_authenticate(r, false, &a) != 0)
		return;
	emu_send_json(r, 200, json_pack("{s:s, s:s, s:s, s:s}", "version", g_cfg.version,
					"buildNumber", g_cfg.build_number, "buildDate",
					"1616539597394", "displayName", "Bitbucket"));
}

/* ---- users --------------------------------------------------------------- */

static int s_require_user(struct emu_req *r, struct s_auth *a)
{
	if (!s_get_only(r) || s_authenticate(r, false, a) != 0)
		return -1;
	if (!a->user) {
		emu_send_errors(r, 401, "You are not permitted to access this resource", EXC_AUTH);
		return -1;
	}
	return 0;
}

static long s_avatar_size(struct emu_req *r, bool *bad)
{
	const char *s = emu_params_get(&r->qp, "avatarSize");
	*bad = false;
	if (!s)
		return -1;
	long v = emu_parse_nonneg(s, 4096);
	*bad = v < 0;
	return v;
}

static void s_user_get(struct emu_req *r, const char *slug)
{
	struct s_auth a;
	bool bad;
	if (s_require_user(r, &a) != 0)
		return;
	long avatar = s_avatar_size(r, &bad);
	if (bad) {
		emu_send_errors(r, 400, "avatarSize must be a non-negative integer.", EXC_BAD_PARAM);
		return;
	}
	/* Looked up by slug only: "jane.doe@example.com" is a name, not a slug. */
	const struct emu_user *u = emu_user_by_slug(slug);
	if (!u) {
		char msg[300];
		snprintf(msg, sizeof msg, "User %.200s does not exist.", slug);
		emu_send_errors(r, 404, msg, EXC_NO_USER);
		return;
	}
	emu_send_json(r, 200, s_user_json(u, avatar));
}

struct s_user_filter {
	const char *filter;
	long avatar;
};

static bool s_user_visible(size_t i, const void *ctx)
{
	const struct s_user_filter *f = ctx;
	const struct emu_user *u = emu_user_at(i);
	if (!f->filter)
		return true;
	return emu_contains_ci(u->name, f->filter) || emu_contains_ci(u->display, f->filter) ||
	       emu_contains_ci(u->email, f->filter);
}

static json_t *s_user_render(size_t i, const void *ctx)
{
	const struct s_user_filter *f = ctx;
	return s_user_json(emu_user_at(i), f->avatar);
}

static void s_users_list(struct emu_req *r)
{
	struct s_auth a;
	struct s_page p;
	bool bad;
	if (s_require_user(r, &a) != 0 || s_parse_paging(r, &p) != 0)
		return;
	struct s_user_filter f = { emu_params_get(&r->qp, "filter"), s_avatar_size(r, &bad) };
	if (bad) {
		emu_send_errors(r, 400, "avatarSize must be a non-negative integer.", EXC_BAD_PARAM);
		return;
	}
	struct s_lister l = { emu_user_count(), s_user_visible, s_user_render, &f };
	emu_send_json(r, 200, s_page_json(&l, &p));
}

/* ---- repositories -------------------------------------------------------- */

/* Effective permission: the user's grant capped by the token scope, with
 * read on public repositories for any signed-in user. */
static enum emu_perm s_effective(const struct emu_repo *repo, const struct s_auth *a)
{
	enum emu_perm own = emu_repo_user_perm(repo, a->user);
	if (own > a->cap)
		own = a->cap;
	if (repo->is_public && a->user && own < PERM_READ)
		own = PERM_READ;
	return own;
}

static bool s_can_read(const struct emu_repo *repo, const struct s_auth *a)
{
	return repo->is_public || s_effective(repo, a) >= PERM_READ;
}

struct s_repo_filter {
	const struct s_auth *auth;
	bool has_permission;
	enum emu_perm need;
	char name[128];
	const char *projectkey;
};

static bool s_repo_visible(size_t i, const void *ctx)
{
	const struct s_repo_filter *f = ctx;
	const struct emu_repo *repo = emu_repo_at(i);
	if (f->name[0] && !emu_contains_ci(repo->name, f->name))
		return false;
	if (f->projectkey && strcasecmp(repo->project->key, f->projectkey) != 0)
		return false;
	if (f->has_permission) /* anonymous + permission: always empty */
		return f->auth->user && s_effective(repo, f->auth) >= f->need;
	return s_can_read(repo, f->auth);
}

static json_t *s_repo_render(size_t i, const void *ctx)
{
	(void)ctx;
	return s_repo_json(emu_repo_at(i));
}

static void s_repos_list(struct emu_req *r)
{
	struct s_auth a;
	struct s_page p;
	struct s_repo_filter f = { .auth = &a };
	if (!s_get_only(r) || s_authenticate(r, false, &a) != 0 || s_parse_paging(r, &p) != 0)
		return;
	const char *perm = emu_params_get(&r->qp, "permission");
	if (perm) {
		f.has_permission = true;
		if (strcmp(perm, "REPO_READ") == 0)
			f.need = PERM_READ;
		else if (strcmp(perm, "REPO_WRITE") == 0)
			f.need = PERM_WRITE;
		else if (strcmp(perm, "REPO_ADMIN") == 0)
			f.need = PERM_ADMIN;
		else {
			emu_send_errors(r, 400,
					"permission must be one of REPO_READ, REPO_WRITE, REPO_ADMIN.",
					EXC_BAD_PARAM);
			return;
		}
	}
	const char *name = emu_params_get(&r->qp, "name");
	if (name) {
		/* Bitbucket strips surrounding whitespace and matches ignoring case. */
		while (*name == ' ')
			name++;
		snprintf(f.name, sizeof f.name, "%s", name);
		for (size_t n = strlen(f.name); n && f.name[n - 1] == ' '; n--)
			f.name[n - 1] = '\0';
	}
	f.projectkey = emu_params_get(&r->qp, "projectkey");
	struct s_lister l = { emu_repo_count(), s_repo_visible, s_repo_render, &f };
	emu_send_json(r, 200, s_page_json(&l, &p));
}

static json_t *s_composer_json(const struct emu_repo *repo)
{
	char vendor[64], *name = NULL;
	snprintf(vendor, sizeof vendor, "%s", repo->project->key + (repo->project->key[0] == '~'));
	s_lower(vendor);
	if (asprintf(&name, "%s/%s", vendor, repo->slug) < 0)
		return NULL;
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}}", "name", name, "description",
			      repo->name, "type", "library", "license", "proprietary", "require",
			      "php", ">=8.1");
	free(name);
	return j;
}

/* /projects/{key}: a project is visible to whoever holds a permission on
 * it, or may read one of its repositories (Bitbucket's implicit project
 * view), and to everyone when it is public. */
static void s_project_get(struct emu_req *r, const char *key)
{
	struct s_auth a;
	char msg[300];
	if (!s_get_only(r) || s_authenticate(r, false, &a) != 0)
		return;
	const struct emu_project *p = emu_project_find(key);
	if (!p) {
		snprintf(msg, sizeof msg, "Project %.200s does not exist.", key);
		emu_send_errors(r, 404, msg, EXC_NO_PROJECT);
		return;
	}
	bool visible = p->is_public || (a.user && emu_project_user_perm(p, a.user) >= PERM_READ &&
					 a.cap >= PERM_READ);
	for (size_t i = 0; i < emu_repo_count() && !visible; i++) {
		const struct emu_repo *repo = emu_repo_at(i);
		visible = repo->project == p && a.user && s_effective(repo, &a) >= PERM_READ;
	}
	if (!visible) {
		emu_send_errors(r, 401, "You are not permitted to access this resource", EXC_AUTH);
		return;
	}
	emu_send_json(r, 200, s_project_json(p));
}

/* /projects/{key}/repos/{slug}[/raw/{path}] and the /users/{slug}/repos form */
static void s_repo_resource(struct emu_req *r, const char *key, const char *slug,
			    const char *raw_path)
{
	struct s_auth a;
	char msg[400];
	if (!s_get_only(r) || s_authenticate(r, false, &a) != 0)
		return;
	const struct emu_repo *repo = emu_repo_find(key, slug);
	if (repo && !s_can_read(repo, &a) && !a.user) {
		emu_send_errors(r, 401, "You are not permitted to access this resource", EXC_AUTH);
		return;
	}
	if (!repo || !s_can_read(repo, &a)) {
		snprintf(msg, sizeof msg, "Repository %.100s/%.100s does not exist.", key, slug);
		emu_send_errors(r, 404, msg, EXC_NO_REPO);
		return;
	}
	if (!raw_path) {
		emu_send_json(r, 200, s_repo_json(repo));
		return;
	}
	if (strcmp(raw_path, "composer.json") != 0) {
		snprintf(msg, sizeof msg,
			 "The path \"%.200s\" does not exist at revision \"refs/heads/master\"", raw_path);
		emu_send_errors(r, 404, msg, EXC_NO_PATH);
		return;
	}
	json_t *c = s_composer_json(repo);
	char *body = c ? json_dumps(c, JSON_INDENT(4)) : NULL;
	json_decref(c);
	if (!body) {
		emu_send_errors(r, 500, "Out of memory", NULL);
		return;
	}
	emu_send(r, 200, "text/plain;charset=UTF-8", body, strlen(body));
	free(body);
}

/* ---- dispatch ------------------------------------------------------------- */

/* Splits "a/b/c" into at most max segments; the last takes the rest. */
static size_t s_split(char *s, char **segs, size_t max)
{
	size_t n = 0;
	while (*s && n < max) {
		segs[n++] = s;
		if (n == max)
			break;
		char *slash = strchr(s, '/');
		if (!slash)
			break;
		*slash = '\0';
		s = slash + 1;
		if (!*s)
			segs[n++] = s; /* trailing slash: an empty last segment */
	}
	return n;
}

static bool s_all_nonempty(char **segs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!segs[i][0])
			return false;
	return true;
}

void emu_rest_api(struct emu_req *r, const char *rest)
{
	char *copy = strdup(rest);
	char *s[6];
	emu_lock();
	g_stats.rest_requests++;
	emu_unlock();
	if (!copy) {
		emu_send_errors(r, 500, "Out of memory", NULL);
		return;
	}
	size_t n = s_split(copy, s, 6); /* the 6th segment keeps the raw path */
	if (!s_all_nonempty(s, n) || n == 0) {
		emu_send_jersey404(r);
	} else if (!r->query_ok) {
		emu_send_errors(r, 400, "The query string could not be parsed.", EXC_BAD_PARAM);
	} else if (n == 1 && strcmp(s[0], "application-properties") == 0) {
		s_application_properties(r);
	} else if (n == 1 && strcmp(s[0], "users") == 0) {
		s_users_list(r);
	} else if (n == 2 && strcmp(s[0], "users") == 0) {
		s_user_get(r, s[1]);
	} else if (n == 1 && strcmp(s[0], "repos") == 0) {
		s_repos_list(r);
	} else if (n == 2 && strcmp(s[0], "projects") == 0) {
		s_project_get(r, s[1]);
	} else if ((n == 4 || (n == 6 && strcmp(s[4], "raw") == 0)) && strcmp(s[2], "repos") == 0 &&
		   (strcmp(s[0], "projects") == 0 || strcmp(s[0], "users") == 0)) {
		char key[130];
		const struct emu_user *owner = NULL;
		if (strcmp(s[0], "users") == 0) {
			owner = emu_user_by_slug(s[1]);
			snprintf(key, sizeof key, "~%.120s", owner ? owner->name : s[1]);
		} else {
			snprintf(key, sizeof key, "%.120s", s[1]);
		}
		s_repo_resource(r, key, s[3], n == 6 ? s[5] : NULL);
	} else {
		emu_send_jersey404(r);
	}
	free(copy);
}

void emu_rest_oauth2_client_probe(struct emu_req *r)
{
	struct s_auth a;
	if (s_require_user(r, &a) != 0)
		return;
	emu_send_json(r, 200, json_array());
}

void emu_rest_login_options(struct emu_req *r)
{
	if (!s_get_only(r))
		return;
	emu_send_json(r, 200, json_pack("{s:[{s:s}]}", "results", "type", "LOGIN_FORM"));
}

void emu_user_avatar(struct emu_req *r, const char *slug)
{
	static const char png_b64[] =
		"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
	unsigned char png[128];
	if (!s_get_only(r))
		return;
	if (!emu_user_by_slug(slug)) {
		emu_send_jersey404(r);
		return;
	}
	long n = emu_base64_decode(png_b64, sizeof png_b64 - 1, png, sizeof png);
	emu_add_header(r, "Cache-Control", "max-age=3600");
	emu_send(r, 200, "image/png", (const char *)png, n > 0 ? (size_t)n : 0);
}
