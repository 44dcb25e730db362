/*
 * bitbucket-emulator: command line, server lifecycle, request parsing,
 * faults, the routing table and the request log.
 *
 *   bitbucket-emulator --listen 127.0.0.1:7990 --context /bitbucket
 *       --version 8.9.0 [--access-ttl 3600] [--code-ttl 10]
 *       [--auto-approve USERNAME] [--threads 16] [--keep-alive] [--quiet]
 *       [--state FILE]
 *
 * --state FILE keeps the application links in FILE (state.c), so a
 * restarted emulator still knows the integrations set up against it.
 * --keep-alive keeps connections open between requests as Bitbucket's
 * Tomcat does (the benchmark uses it); without it every answer closes its
 * connection, which the fault tests rely on.
 *
 * Port 0 binds a free port; the start line tells which.
 */
#include "emulator.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

/* ---- routing table: every endpoint, relative to the context path --------- */

enum { ROUTE_RATE_LIMITED = 1 };

struct s_route {
	const char *path;
	void (*fn)(struct emu_req *r);
	unsigned flags;
};

static const struct s_route s_routes[] = {
	/* OAuth 2 provider (oauth2.c); "latest" and "1.0" are the same API */
	{ "/rest/oauth2/latest/authorize", emu_oauth2_authorize, 0 },
	{ "/rest/oauth2/1.0/authorize", emu_oauth2_authorize, 0 },
	{ "/rest/oauth2/latest/authorize/decision", emu_oauth2_decision, 0 },
	{ "/rest/oauth2/1.0/authorize/decision", emu_oauth2_decision, 0 },
	{ "/rest/oauth2/latest/token", emu_oauth2_token, ROUTE_RATE_LIMITED },
	{ "/rest/oauth2/1.0/token", emu_oauth2_token, ROUTE_RATE_LIMITED },
	{ "/rest/oauth2/latest/client", emu_rest_oauth2_client_probe, ROUTE_RATE_LIMITED },
	{ "/rest/oauth2/1.0/client", emu_rest_oauth2_client_probe, ROUTE_RATE_LIMITED },
	/* browser login (oauth2.c) */
	{ "/login", emu_login_page, 0 },
	{ "/j_atl_security_check", emu_login_check, 0 },
	{ "/j_atl_security_logout", emu_logout, 0 },
	/* OAuth 1.0a provider (oauth1.c) */
	{ "/plugins/servlet/oauth/request-token", emu_oauth1_request_token, 0 },
	{ "/plugins/servlet/oauth/authorize", emu_oauth1_authorize, 0 },
	{ "/plugins/servlet/oauth/access-token", emu_oauth1_access_token, 0 },
	/* application links administration, HTML (applinks.c) */
	{ "/plugins/servlet/applinks/listApplicationLinks", emu_applinks_list, 0 },
	{ "/plugins/servlet/applinks/createApplicationLink", emu_applinks_create, 0 },
	{ "/plugins/servlet/applinks/configureApplicationLink", emu_applinks_configure, 0 },
	/* identity (rest.c) */
	{ "/plugins/servlet/applinks/whoami", emu_rest_whoami, 0 },
	{ "/rest/authconfig/1.0/login-options", emu_rest_login_options, ROUTE_RATE_LIMITED },
};

/* Prefix routes: the REST API and the admin API take the rest of the path. */
static const char *const s_rest_prefixes[] = { "/rest/api/1.0/", "/rest/api/latest/" };
#define ADMIN_PREFIX "/emulator/"

/* ---- command line ----------------------------------------------------------- */

static void s_usage(FILE *f)
{
	fprintf(f,
		"usage: bitbucket-emulator [--listen HOST:PORT] [--context /PATH] [--version X.Y.Z]\n"
		"                          [--access-ttl SECONDS] [--code-ttl SECONDS]\n"
		"                          [--auto-approve USERNAME] [--threads N] [--keep-alive]\n"
		"                          [--quiet] [--state FILE]\n"
		"defaults: --listen 127.0.0.1:7990 --context /bitbucket --version 8.9.0\n"
		"          --access-ttl 3600 --code-ttl 10 --threads 16 (port 0 picks a free port)\n");
}

static bool s_context_ok(char *ctx)
{
	size_t n = strlen(ctx);
	if (n == 1 && ctx[0] == '/')
		ctx[0] = '\0'; /* root context */
	else if (n > 1 && ctx[n - 1] == '/')
		ctx[n - 1] = '\0';
	if (!ctx[0])
		return true;
	if (ctx[0] != '/' || strstr(ctx, "//") || strstr(ctx, "/./") || strstr(ctx, "/../"))
		return false;
	for (const char *p = ctx; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("/-._~", *p)))
			return false;
	n = strlen(ctx);
	return !(n >= 2 && strcmp(ctx + n - 2, "/.") == 0) &&
	       !(n >= 3 && strcmp(ctx + n - 3, "/..") == 0);
}

/* "8.9.0" -> "8009000", like Bitbucket's build numbers. */
static bool s_version_ok(const char *v, char *build, size_t build_size)
{
	long part[3];
	const char *p = v;
	for (int i = 0; i < 3; i++) {
		char *end;
		if (*p < '0' || *p > '9')
			return false;
		errno = 0;
		part[i] = strtol(p, &end, 10);
		if (errno || part[i] > 999 || end - p > 3)
			return false;
		if (i < 2 && *end != '.')
			return false;
		if (i == 2 && *end != '\0')
			return false;
		p = end + 1;
	}
	snprintf(build, build_size, "%ld", part[0] * 1000000 + part[1] * 1000 + part[2]);
	return true;
}

static bool s_listen_ok(const char *listen)
{
	const char *colon = strrchr(listen, ':');
	if (!colon || colon == listen || strlen(listen) >= sizeof g_cfg.listen)
		return false;
	return emu_parse_nonneg(colon + 1, 65535) >= 0;
}

static int s_parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "context", required_argument, NULL, 'c' },
		{ "version", required_argument, NULL, 'v' },
		{ "access-ttl", required_argument, NULL, 'a' },
		{ "code-ttl", required_argument, NULL, 'k' },
		{ "auto-approve", required_argument, NULL, 'u' },
		{ "threads", required_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "keep-alive", no_argument, NULL, 'K' },
		{ "state", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	snprintf(g_cfg.listen, sizeof g_cfg.listen, "127.0.0.1:7990");
	snprintf(g_cfg.context, sizeof g_cfg.context, "/bitbucket");
	snprintf(g_cfg.version, sizeof g_cfg.version, "8.9.0");
	g_cfg.access_ttl = 3600;
	g_cfg.code_ttl = 10;
	g_cfg.threads = 16;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (!s_listen_ok(optarg)) {
				fprintf(stderr, "bitbucket-emulator: --listen wants HOST:PORT\n");
				return -1;
			}
			snprintf(g_cfg.listen, sizeof g_cfg.listen, "%s", optarg);
			break;
		case 'c':
			if (strlen(optarg) >= sizeof g_cfg.context) {
				fprintf(stderr, "bitbucket-emulator: --context too long\n");
				return -1;
			}
			snprintf(g_cfg.context, sizeof g_cfg.context, "%s", optarg);
			break;
		case 'v':
			snprintf(g_cfg.version, sizeof g_cfg.version, "%s", optarg);
			break;
		case 'a':
			g_cfg.access_ttl = emu_parse_nonneg(optarg, 10L * 365 * 86400);
			if (g_cfg.access_ttl < 1) {
				fprintf(stderr, "bitbucket-emulator: --access-ttl wants 1..315360000\n");
				return -1;
			}
			break;
		case 'k':
			/* Bitbucket caps max.client.delay.seconds at 600. */
			g_cfg.code_ttl = emu_parse_nonneg(optarg, 600);
			if (g_cfg.code_ttl < 1) {
				fprintf(stderr, "bitbucket-emulator: --code-ttl wants 1..600\n");
				return -1;
			}
			break;
		case 'u':
			snprintf(g_cfg.auto_approve, sizeof g_cfg.auto_approve, "%s", optarg);
			break;
		case 't':
			g_cfg.threads = (int)emu_parse_nonneg(optarg, 512);
			if (g_cfg.threads < 1) {
				fprintf(stderr, "bitbucket-emulator: --threads wants 1..512\n");
				return -1;
			}
			break;
		case 'q':
			g_cfg.quiet = true;
			break;
		case 'K':
			g_cfg.keep_alive = true;
			break;
		case 'S':
			if (!optarg[0] || strlen(optarg) >= sizeof g_cfg.state) {
				fprintf(stderr, "bitbucket-emulator: --state wants a file path\n");
				return -1;
			}
			snprintf(g_cfg.state, sizeof g_cfg.state, "%s", optarg);
			break;
		case 'h':
			s_usage(stdout);
			exit(0);
		default:
			s_usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		s_usage(stderr);
		return -1;
	}
	if (!s_context_ok(g_cfg.context)) {
		fprintf(stderr, "bitbucket-emulator: --context must be a path like /bitbucket\n");
		return -1;
	}
	if (!s_version_ok(g_cfg.version, g_cfg.build_number, sizeof g_cfg.build_number)) {
		fprintf(stderr, "bitbucket-emulator: --version must look like 8.9.0\n");
		return -1;
	}
	if (g_cfg.auto_approve[0] && !emu_user_by_name(g_cfg.auto_approve)) {
		fprintf(stderr, "bitbucket-emulator: --auto-approve names no built-in user\n");
		return -1;
	}
	return 0;
}

/* ---- request setup ---------------------------------------------------------- */

static void s_read_body(struct emu_req *r)
{
	const char *te = emu_req_header(r, "Transfer-Encoding");
	bool chunked = te && strcasestr(te, "chunked");
	long long cl = r->ri->content_length;
	if (cl <= 0 && !chunked)
		return;
	if (cl > EMU_MAX_BODY) {
		r->body_too_large = true;
		return;
	}
	r->body = malloc(EMU_MAX_BODY + 1);
	if (!r->body)
		return;
	for (;;) {
		int n = mg_read(r->conn, r->body + r->body_len, EMU_MAX_BODY + 1 - r->body_len);
		if (n <= 0)
			break;
		r->body_len += (size_t)n;
		if (r->body_len > EMU_MAX_BODY) {
			r->body_too_large = true;
			r->body_len = 0;
			return;
		}
	}
	r->body[r->body_len] = '\0';
	const char *ct = emu_req_header(r, "Content-Type");
	r->body_is_form = ct && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0 &&
			  (ct[33] == '\0' || ct[33] == ';' || ct[33] == ' ');
	if (r->body_is_form)
		r->form_ok = emu_params_parse(&r->form, r->body, r->body_len) == 0 &&
			     strlen(r->body) == r->body_len;
}

static bool s_has_dot_segment(const char *p)
{
	for (const char *s = p; (s = strstr(s, "/.")) != NULL; s++) {
		size_t k = s[2] == '.' ? 3 : 2;
		if (s[k] == '/' || s[k] == '\0')
			return true;
	}
	return false;
}

/* Returns false when the path is not under the context (Jersey 404). */
static bool s_setup(struct emu_req *r)
{
	r->method = r->ri->request_method;
	r->auth_scheme = "none";
	/* civetweb leaves the path as sent ("decode_url" off), which is what
	 * an OAuth 1 signature covers; full_path is it decoded as civetweb
	 * would have. */
	const char *sent = r->ri->local_uri_raw ? r->ri->local_uri_raw : "";
	size_t sent_len = strlen(sent);
	r->raw_path = strdup(sent);
	r->full_path = malloc(sent_len + 1);
	r->query = strdup(r->ri->query_string ? r->ri->query_string : "");
	if (!r->raw_path || !r->full_path || !r->query) {
		free(r->full_path);
		r->full_path = NULL;
		return false;
	}
	mg_url_decode(sent, (int)sent_len, r->full_path, (int)sent_len + 1, 0);
	const char *path = r->full_path;
	r->path = r->full_path;
	r->query_ok = emu_params_parse(&r->qp, r->query, strlen(r->query)) == 0;
	s_read_body(r);

	const char *authz = emu_req_header(r, "Authorization");
	if (authz) {
		if (strncasecmp(authz, "Bearer ", 7) == 0)
			r->auth_scheme = "Bearer";
		else if (strncasecmp(authz, "OAuth", 5) == 0)
			r->auth_scheme = "OAuth";
		else if (strncasecmp(authz, "Basic ", 6) == 0)
			r->auth_scheme = "Basic";
		else
			r->auth_scheme = "other";
	}

	size_t cl = strlen(g_cfg.context);
	if (strncmp(path, g_cfg.context, cl) != 0 || (path[cl] != '/' && path[cl] != '\0'))
		return false;
	r->path = r->full_path + cl;
	/* Bitbucket does not normalise: //rest or /./ never reach a resource. */
	return r->path[0] == '/' && !strstr(r->full_path, "//") && !s_has_dot_segment(r->full_path);
}

/* ---- faults ----------------------------------------------------------------- */

/* Returns true when the fault answered (or swallowed) the request. */
static bool s_apply_faults(struct emu_req *r, unsigned flags, bool *hung)
{
	emu_lock();
	struct emu_faults f = g_faults;
	emu_unlock();
	if (f.latency_ms > 0 && emu_sleep_ms(f.latency_ms)) {
		*hung = true; /* shutting down: drop the request */
		return true;
	}
	if (f.hang) {
		emu_lock();
		g_stats.faults_injected++;
		emu_unlock();
		/* Hold the request, then close without answering; wakes on shutdown. */
		emu_sleep_ms(EMU_HANG_SECONDS * 1000L);
		*hung = true;
		return true;
	}
	if (f.status) {
		emu_lock();
		g_stats.faults_injected++;
		emu_unlock();
		if (f.status == 503 || f.status == 429)
			emu_add_header(r, "Retry-After", "1");
		emu_send_errors(r, f.status, "Injected fault: the emulator was told to fail this request.",
				NULL);
		return true;
	}
	if (f.rate_limit && (flags & ROUTE_RATE_LIMITED)) {
		emu_lock();
		g_stats.rate_limited++;
		emu_unlock();
		emu_add_header(r, "Retry-After", "1");
		emu_send_errors(r, 429,
				"You have been rate limited. Please wait before making more requests.",
				"com.atlassian.bitbucket.throttle.ThrottledException");
		return true;
	}
	return false;
}

/* ---- dispatch ------------------------------------------------------------------ */

static void s_dispatch(struct emu_req *r, bool *hung)
{
	if (emu_str_has_prefix(r->path, ADMIN_PREFIX)) {
		r->is_admin = true;
		emu_admin(r, r->path + strlen(ADMIN_PREFIX));
		return;
	}
	for (size_t i = 0; i < sizeof s_routes / sizeof s_routes[0]; i++) {
		if (strcmp(r->path, s_routes[i].path) != 0)
			continue;
		if (s_apply_faults(r, s_routes[i].flags, hung))
			return;
		if (r->body_too_large)
			emu_send_errors(r, 413, "Request body too large.", NULL);
		else
			s_routes[i].fn(r);
		return;
	}
	for (size_t i = 0; i < sizeof s_rest_prefixes / sizeof s_rest_prefixes[0]; i++) {
		if (!emu_str_has_prefix(r->path, s_rest_prefixes[i]))
			continue;
		if (s_apply_faults(r, ROUTE_RATE_LIMITED, hung))
			return;
		emu_rest_api(r, r->path + strlen(s_rest_prefixes[i]));
		return;
	}
	if (s_apply_faults(r, 0, hung))
		return;
	/* /users/{slug}/avatar.png: the target of avatarUrl */
	const char *slug = r->path + strlen("/users/");
	const char *tail = strchr(slug, '/');
	if (emu_str_has_prefix(r->path, "/users/") && tail && strcmp(tail, "/avatar.png") == 0) {
		char s[256];
		snprintf(s, sizeof s, "%.*s", (int)(tail - slug), slug);
		emu_user_avatar(r, s);
		return;
	}
	emu_send_jersey404(r);
}

/* ---- request log --------------------------------------------------------------- */

static bool s_sensitive_name(const char *name)
{
	static const char *const exact[] = { "code", "state", "oauth_signature", "oauth_nonce" };
	static const char *const parts[] = { "token", "secret", "verifier", "password" };
	for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
		if (strcasecmp(name, exact[i]) == 0)
			return true;
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
		if (emu_contains_ci(name, parts[i]))
			return true;
	return false;
}

/* The raw query with the values of secret-looking parameters replaced. */
static char *s_redacted_query(const char *q, bool *has_token)
{
	struct emu_buf b = { 0 };
	*has_token = false;
	while (*q) {
		const char *end = strchr(q, '&');
		size_t len = end ? (size_t)(end - q) : strlen(q);
		const char *eq = memchr(q, '=', len);
		size_t name_len = eq ? (size_t)(eq - q) : len;
		char *name = emu_pct_decode(q, name_len, true);
		if (name && (strcmp(name, "access_token") == 0 || strcmp(name, "refresh_token") == 0))
			*has_token = true;
		if (b.len)
			emu_buf_puts(&b, "&");
		if (!name || s_sensitive_name(name)) {
			emu_buf_append(&b, q, name_len);
			emu_buf_puts(&b, "=***");
		} else {
			emu_buf_append(&b, q, len);
		}
		free(name);
		q += len;
		if (*q == '&')
			q++;
	}
	return emu_buf_take(&b);
}

void emu_log_request(struct emu_req *r)
{
	struct timespec now;
	bool has_token = false;
	if (r->logged || !r->full_path || !r->query)
		return;
	r->logged = true;
	clock_gettime(CLOCK_MONOTONIC, &now);
	double ms = (double)(now.tv_sec - r->started.tv_sec) * 1e3 +
		    (double)(now.tv_nsec - r->started.tv_nsec) / 1e6;
	struct emu_buf pb = { 0 };
	emu_buf_path(&pb, r->full_path); /* as on the wire, and valid JSON text */
	char *path = emu_buf_take(&pb);
	char *query = s_redacted_query(r->query, &has_token);
	if (!r->is_admin) {
		json_t *keys = json_array();
		if (r->body_is_form && r->form_ok)
			for (size_t i = 0; i < r->form.count; i++)
				json_array_append_new(keys, emu_json_text(r->form.items[i].name));
		const char *grant = emu_params_get(&r->qp, "grant_type");
		if (!grant)
			grant = emu_req_form(r, "grant_type");
		json_t *e = json_pack(
			"{s:o, s:s, s:o, s:b, s:o, s:b, s:b, s:o, s:s, s:i, s:f}", "method",
			emu_json_text(r->method), "path", path ? path : "", "query",
			emu_json_text(query), "query_has_token", has_token, "form_keys", keys,
			"has_code_verifier",
			emu_params_get(&r->qp, "code_verifier") || emu_req_form(r, "code_verifier"),
			"has_redirect_uri",
			emu_params_get(&r->qp, "redirect_uri") || emu_req_form(r, "redirect_uri"),
			"grant_type", grant ? emu_json_text(grant) : json_null(), "auth_scheme",
			r->auth_scheme, "status", r->status, "duration_ms", ms);
		emu_lock();
		emu_log_append(e);
		emu_unlock();
	}
	if (!g_cfg.quiet)
		fprintf(stderr, "%s %s%s%s %d %.1fms auth=%s\n", r->method, path ? path : "?",
			query && *query ? "?" : "", query ? query : "", r->status, ms, r->auth_scheme);
	free(query);
	free(path);
}

static unsigned long s_request_counter;

static int s_handle(struct mg_connection *conn, void *data)
{
	struct emu_req r = { .conn = conn };
	bool hung = false;
	(void)data;
	clock_gettime(CLOCK_MONOTONIC, &r.started);
	r.ri = mg_get_request_info(conn);
	unsigned long id = __atomic_add_fetch(&s_request_counter, 1, __ATOMIC_RELAXED);
	emu_add_header(&r, "X-AREQUESTID", "@EMU1x%lux%lu", id % 1440, id);

	bool under_context = s_setup(&r);
	if (!r.full_path || !r.query) {
		emu_send(&r, 500, "text/plain", "out of memory", 13);
		goto out;
	}
	if (!under_context)
		emu_send_jersey404(&r);
	else
		s_dispatch(&r, &hung);
	if (!r.responded && !hung)
		emu_send_jersey404(&r);
	emu_log_request(&r); /* requests that got no answer (hang) */
out:
	for (size_t i = 0; i < r.nheaders; i++)
		free(r.headers[i].value);
	emu_params_free(&r.qp);
	emu_params_free(&r.form);
	free(r.body);
	free(r.query);
	free(r.full_path);
	free(r.raw_path);
	return r.status ? r.status : 1;
}

static int s_log_message(const struct mg_connection *conn, const char *message)
{
	(void)conn;
	if (!g_cfg.quiet)
		fprintf(stderr, "civetweb: %s\n", message);
	return 1;
}

/* ---- main --------------------------------------------------------------------- */

static int s_resolve_address(struct mg_context *ctx)
{
	struct mg_server_port ports[4];
	int n = mg_get_server_ports(ctx, 4, ports);
	if (n < 1)
		return -1;
	const char *colon = strrchr(g_cfg.listen, ':');
	snprintf(g_cfg.host, sizeof g_cfg.host, "%.*s", (int)(colon - g_cfg.listen), g_cfg.listen);
	snprintf(g_cfg.host_port, sizeof g_cfg.host_port, "%s:%d", g_cfg.host, ports[0].port);
	snprintf(g_cfg.base_url, sizeof g_cfg.base_url, "http://%s%s", g_cfg.host_port,
		 g_cfg.context);
	return 0;
}

int main(int argc, char **argv)
{
	struct mg_context *ctx = NULL;
	sigset_t set;
	int sig = 0, rc = 1;
	char threads[16];

	emu_store_init(); /* users must exist to check --auto-approve */
	if (s_parse_args(argc, argv) != 0)
		return 2;
	if (emu_state_load() != 0)
		return 2;
	curl_global_init(CURL_GLOBAL_NOTHING);

	/* Signals are taken by sigwait in main; workers inherit the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	snprintf(threads, sizeof threads, "%d", g_cfg.threads);
	/* Keep-alive off by default: every answer closes its connection, so a
	 * "hang" fault that gives up really closes, and idle clients hold no
	 * thread. With --keep-alive an idle connection is closed after 2 s. */
	const char *options[] = {
		"listening_ports", g_cfg.listen, "num_threads", threads, "enable_keep_alive",
		g_cfg.keep_alive ? "yes" : "no", "keep_alive_timeout_ms", "2000", "tcp_nodelay", "1",
		"request_timeout_ms", "30000", "decode_url", "no", NULL,
	};
	struct mg_callbacks callbacks;
	memset(&callbacks, 0, sizeof callbacks);
	callbacks.log_message = s_log_message;
	mg_init_library(0);
	ctx = mg_start(&callbacks, NULL, options);
	if (!ctx) {
		fprintf(stderr, "bitbucket-emulator: cannot listen on %s\n", g_cfg.listen);
		goto out;
	}
	if (s_resolve_address(ctx) != 0) {
		fprintf(stderr, "bitbucket-emulator: cannot tell the listening port\n");
		goto out;
	}
	mg_set_request_handler(ctx, "/", s_handle, NULL);
	printf("bitbucket-emulator listening on %s (version %s)\n", g_cfg.base_url, g_cfg.version);
	fflush(stdout);

	while (sigwait(&set, &sig) != 0)
		;
	rc = 0;
out:
	emu_signal_stop(); /* wakes requests held by hang/latency faults */
	if (ctx)
		mg_stop(ctx);
	mg_exit_library();
	emu_store_shutdown();
	curl_global_cleanup();
	return rc;
}
