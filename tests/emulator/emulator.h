/*
 * bitbucket-emulator: a strict, in-memory emulator of the parts of
 * Bitbucket Data Center that Portico talks to (OAuth 2 and OAuth 1.0a
 * providers, identity and REST endpoints), plus an admin API under
 * {ctx}/emulator/ that plays the Bitbucket administrator.
 *
 * Layout:
 *   main.c    command line, server start/stop, routing table, request log
 *   http.c    request parsing and response writing helpers
 *   util.c    buffers, percent/base64 coding, random tokens, HTML escaping
 *   store.c   users, repositories, applinks, tokens, faults, stats (locked)
 *   pages.c   HTML page skeleton and the login, consent and error pages
 *   oauth2.c  /rest/oauth2/latest/{authorize,authorize/decision,token}, login
 *   oauth1.c  /plugins/servlet/oauth/{request-token,authorize,access-token}
 *   rest.c    whoami, application-properties, users, repos, raw
 *   admin.c   {ctx}/emulator/... (JSON admin API) and link registration
 *   applinks.c {ctx}/plugins/servlet/applinks/{listApplicationLinks,
 *             createApplicationLink,configureApplicationLink}: the HTML pages
 *             a Bitbucket administrator uses (admin login, CSRF token)
 */
#ifndef BITBUCKET_EMULATOR_H
#define BITBUCKET_EMULATOR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <civetweb.h>
#include <jansson.h>
#include <openssl/evp.h>

/* ---- limits: every input is bounded ---------------------------------- */
#define EMU_MAX_BODY        (64 * 1024)
#define EMU_MAX_PARAMS      64
#define EMU_MAX_HEADERS     24
#define EMU_MAX_URL         2048
#define EMU_MAX_NAME        200
#define EMU_TOKEN_LEN       43 /* base64url of 32 random bytes */
#define EMU_TOKEN_BUF       (EMU_TOKEN_LEN + 1)
/* A user name: Bitbucket takes up to 255 characters, of up to 4 bytes. */
#define EMU_NAME_BUF        1024
#define EMU_MAX_APPLINKS    64
#define EMU_LOG_ENTRIES     1000

/* Lifetimes that are fixed in Bitbucket's defaults. */
#define EMU_REFRESH_TTL     7776000L   /* 90 days */
#define EMU_PENDING_TTL     600L       /* consent page / OAuth 1 request token */
#define EMU_SESSION_TTL     (8L * 3600L)
#define EMU_OAUTH1_ACCESS_TTL 157680000L
#define EMU_OAUTH1_SKEW     300L
#define EMU_HANG_SECONDS    60

/* ---- configuration (written once in main before the server starts) -- */
struct emu_config {
	char listen[128];      /* as given on the command line */
	char host_port[160];   /* host:port actually bound (port 0 resolved) */
	char host[128];        /* host part only, for ssh clone links */
	char context[256];     /* "" or "/bitbucket" (no trailing slash) */
	char version[32];
	char build_number[32];
	char base_url[512];    /* http://host:port/context */
	long access_ttl;
	long code_ttl;
	char auto_approve[128];
	int threads;
	bool quiet;
	bool keep_alive;
	char state[512];       /* --state FILE, "" for none */
};
extern struct emu_config g_cfg;

/* ---- growable string buffer ------------------------------------------ */
struct emu_buf {
	char *data;
	size_t len;
	size_t cap;
	bool oom; /* sticky: once set, the buffer content is unusable */
};
void emu_buf_free(struct emu_buf *b);
void emu_buf_append(struct emu_buf *b, const char *s, size_t n);
void emu_buf_puts(struct emu_buf *b, const char *s);
void emu_buf_printf(struct emu_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* RFC 3986 percent-encoding: only unreserved characters stay as they are. */
void emu_buf_pct(struct emu_buf *b, const char *s, size_t n);
/* HTML text/attribute escaping. */
void emu_buf_html(struct emu_buf *b, const char *s);
/* Java URLEncoder style, as Bitbucket uses for X-AUSERNAME. */
void emu_buf_java_urlencode(struct emu_buf *b, const char *s);
/* Detach the string (NUL-terminated, never NULL unless oom). */
char *emu_buf_take(struct emu_buf *b);

/* ---- coding helpers --------------------------------------------------- */
/* Decodes %XX (and '+' as space when plus_is_space); returns malloc'd
 * string or NULL on malformed input, embedded NUL, or oom. */
char *emu_pct_decode(const char *s, size_t n, bool plus_is_space);
void emu_base64url(const unsigned char *in, size_t n, char *out, size_t out_size);
/* Standard base64 (with padding) decoding; strict. Returns length or -1. */
long emu_base64_decode(const char *in, size_t n, unsigned char *out, size_t out_size);
/* 32 random bytes, base64url: fills EMU_TOKEN_BUF bytes. 0 on success. */
int emu_random_token(char out[EMU_TOKEN_BUF]);
/* Lowercase hex of nbytes random bytes; out needs 2*nbytes+1. */
int emu_random_hex(char *out, size_t nbytes);
bool emu_consttime_eq(const char *a, const char *b);
bool emu_str_has_prefix(const char *s, const char *prefix);
/* ASCII case-insensitive substring search. */
bool emu_contains_ci(const char *haystack, const char *needle);
/* Parses a non-negative decimal int without sign or junk; -1 if invalid. */
long emu_parse_nonneg(const char *s, long max);
/* http(s) absolute URL without fragment and user info; uses curl_url. */
bool emu_is_absolute_http_url(const char *s);
time_t emu_now(void);

/* ---- request and response ------------------------------------------- */
struct emu_param {
	char *name;
	char *value;
};
struct emu_params {
	struct emu_param items[EMU_MAX_PARAMS];
	size_t count;
};
int emu_params_parse(struct emu_params *p, const char *s, size_t n);
void emu_params_free(struct emu_params *p);
const char *emu_params_get(const struct emu_params *p, const char *name);
size_t emu_params_count(const struct emu_params *p, const char *name);
/* True if any name occurs more than once. */
bool emu_params_has_duplicates(const struct emu_params *p);

struct emu_header {
	const char *name; /* static string */
	char *value;      /* malloc'd */
};

struct emu_req {
	struct mg_connection *conn;
	const struct mg_request_info *ri;
	const char *method;
	char *raw_path;    /* the path as sent, escapes and all (OAuth 1 signs it) */
	char *full_path;   /* decoded path as received, including the context */
	const char *path;  /* points into full_path, after the context */
	char *query;       /* raw query string, "" when absent */
	struct emu_params qp;
	bool query_ok;     /* query parsed without errors */
	char *body;
	size_t body_len;
	bool body_too_large;
	bool body_is_form;
	struct emu_params form;
	bool form_ok;
	/* response */
	int status;
	bool responded;
	struct emu_header headers[EMU_MAX_HEADERS];
	size_t nheaders;
	/* facts kept for the request log and stderr line */
	const char *auth_scheme; /* "Bearer", "OAuth", "Basic", "none" */
	bool is_admin;
	bool logged;
	struct timespec started;
};

/* Appends the request to the log (and stderr) once; emu_send calls it just
 * before answering, so a client that got its answer finds the entry. */
void emu_log_request(struct emu_req *r);

const char *emu_req_header(const struct emu_req *r, const char *name);
/* Value of a cookie, malloc'd, or NULL. */
char *emu_req_cookie(const struct emu_req *r, const char *name);
/* Form parameter, if the body is a form; otherwise NULL. */
const char *emu_req_form(const struct emu_req *r, const char *name);

void emu_add_header(struct emu_req *r, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void emu_send(struct emu_req *r, int status, const char *content_type,
	      const char *body, size_t len);
/* JSON string of untrusted text; invalid UTF-8 bytes become '?'. */
json_t *emu_json_text(const char *s);
/* Takes ownership of j (json_decref). */
void emu_send_json(struct emu_req *r, int status, json_t *j);
/* Bitbucket's {"errors":[{"context":null,"message":..,"exceptionName":..}]} */
void emu_send_errors(struct emu_req *r, int status, const char *message,
		     const char *exception);
/* Jersey's {"message":"null for uri: ...","status-code":404} */
void emu_send_jersey404(struct emu_req *r);
void emu_send_html(struct emu_req *r, int status, const char *html);
void emu_redirect(struct emu_req *r, const char *location);
void emu_send_405(struct emu_req *r, const char *allow);
/* Scheme-relative URL of this request rebuilt from Host: http://host/path */
char *emu_req_url(const struct emu_req *r, bool with_query);
/* "path?query" (path re-encoded), for login "next" values. */
char *emu_req_local_url(const struct emu_req *r);
/* Percent-encodes a decoded path, keeping '/' and RFC 3986 pchar. */
void emu_buf_path(struct emu_buf *b, const char *path);

/* ---- users and repositories (immutable after emu_store_init) --------- */
struct emu_user {
	const char *name;
	const char *slug;
	const char *display;
	const char *email;
	int id;
};
struct emu_project {
	const char *key;
	int id;
	const char *name;
	bool is_public;
	bool personal;
	const char *owner; /* username for personal projects */
};
struct emu_repo {
	int id;
	int index; /* position in the global paging order */
	char slug[64];
	char name[96];
	char hierarchy_id[24];
	const struct emu_project *project;
	bool is_public;
	bool forkable;
};

enum emu_perm { PERM_NONE = 0, PERM_READ = 1, PERM_WRITE = 2, PERM_ADMIN = 3 };

const struct emu_user *emu_user_by_name(const char *name);
const struct emu_user *emu_user_by_slug(const char *slug);
size_t emu_user_count(void);
const struct emu_user *emu_user_at(size_t i);
size_t emu_repo_count(void);
const struct emu_repo *emu_repo_at(size_t i);
const struct emu_repo *emu_repo_find(const char *project_key, const char *slug);
/* The user's own permission on the repository (public access not counted). */
enum emu_perm emu_repo_user_perm(const struct emu_repo *repo, const struct emu_user *u);
bool emu_password_ok(const struct emu_user *u, const char *password);

/* ---- permissions and users an administrator changed (own lock) -------
 * Grants set through {ctx}/emulator/permissions replace the built-in ones:
 * a repository grant wins over a project grant, which replaces every
 * built-in grant in that project. A disabled user cannot log in, and
 * Bitbucket refuses their tokens (401 on REST, invalid_grant on refresh). */
const struct emu_project *emu_project_find(const char *key);
/* The user's own permission on the project (explicit grants only). */
enum emu_perm emu_project_user_perm(const struct emu_project *p, const struct emu_user *u);
/* perm PERM_NONE removes access; slug NULL or "" for the project. -1 when full. */
int emu_grant_set(const struct emu_user *u, const struct emu_project *p, const char *slug, enum emu_perm perm);
void emu_user_set_disabled(const struct emu_user *u, bool disabled);
bool emu_user_disabled(const struct emu_user *u);
void emu_access_reset(void);
/* Bitbucket system administrator (the user "admin"). */
bool emu_user_is_admin(const struct emu_user *u);

/* ---- OAuth 2 scopes --------------------------------------------------- */
enum {
	SCOPE_PUBLIC_REPOS = 1u << 0,
	SCOPE_REPO_READ = 1u << 1,
	SCOPE_REPO_WRITE = 1u << 2,
	SCOPE_REPO_ADMIN = 1u << 3,
	SCOPE_PROJECT_ADMIN = 1u << 4,
	SCOPE_ACCOUNT_WRITE = 1u << 5,
	SCOPE_ADMIN_WRITE = 1u << 6,
	SCOPE_SYSTEM_ADMIN = 1u << 7,
};
/* Parses one identifier; 0 if unknown. */
unsigned emu_scope_from_name(const char *name, size_t n);
/* Space separated list; -1 on unknown or empty entries. */
int emu_scope_parse(const char *s, unsigned *out);
/* "REPO_READ" / "PUBLIC_REPOS" / space separated; malloc'd. */
char *emu_scope_string(unsigned mask);
json_t *emu_scope_json(unsigned mask);
/* Highest repository permission a token with this scope may exercise. */
enum emu_perm emu_scope_cap(unsigned mask);
const char *emu_scope_description(unsigned bit);

/* ---- mutable state (everything below needs emu_lock) ------------------ */
void emu_lock(void);
void emu_unlock(void);

struct emu_applink {
	char name[EMU_MAX_NAME + 1];
	char client_id[33];
	char client_secret[65];
	char redirect_url[EMU_MAX_URL + 1];
	unsigned perms;
};
struct emu_consumer {
	char name[EMU_MAX_NAME + 1];      /* Consumer Name: shown on the consent page */
	char key[256];
	char callback[EMU_MAX_URL + 1];
	EVP_PKEY *pkey;
	char link_name[EMU_MAX_NAME + 1]; /* Application Name of the link */
	char link_url[EMU_MAX_URL + 1];   /* Application URL, "" if not given */
};
struct emu_applink *emu_applink_find(const char *client_id);
struct emu_applink *emu_applink_add(void);
size_t emu_applink_count(void);
struct emu_applink *emu_applink_at(size_t i);
struct emu_consumer *emu_consumer_find(const char *key);
struct emu_consumer *emu_consumer_add(void);
size_t emu_consumer_count(void);
struct emu_consumer *emu_consumer_at(size_t i);

/* One table of keyed records for every short-lived secret the emulator
 * hands out; the kind tells which fields are meaningful. */
enum emu_rec_kind {
	REC_CODE = 1,     /* OAuth 2 authorization code */
	REC_PENDING2,     /* OAuth 2 consent page waiting for Allow/Deny */
	REC_ACCESS2,      /* OAuth 2 access token */
	REC_REFRESH2,     /* OAuth 2 refresh token */
	REC_REQUEST1,     /* OAuth 1 request token */
	REC_ACCESS1,      /* OAuth 1 access token */
	REC_SESSION,      /* browser login session (BBSESSIONID) */
	REC_NONCE,        /* OAuth 1 nonce, value = hash(consumer, nonce) */
};
enum emu_req1_state { REQ1_NEW = 0, REQ1_AUTHORIZED, REQ1_DENIED, REQ1_USED };

struct emu_rec {
	struct emu_rec *next; /* hash chain */
	enum emu_rec_kind kind;
	char value[EMU_TOKEN_BUF];
	char secret[EMU_TOKEN_BUF];   /* OAuth 1 token secret */
	char owner[EMU_NAME_BUF];     /* username, "" if none yet */
	char client[256];             /* client_id or consumer key */
	char pair[EMU_TOKEN_BUF];     /* access<->refresh partner; OAuth1 session handle */
	char session[EMU_TOKEN_BUF];  /* browser session a pending consent belongs to */
	char csrf[EMU_TOKEN_BUF];     /* OAuth 1 consent form token */
	char challenge[EMU_TOKEN_BUF];/* PKCE code_challenge */
	char verifier[EMU_TOKEN_BUF]; /* OAuth 1 verifier or "denied" */
	char *uri;                    /* redirect_uri / oauth_callback (malloc) */
	char *state;                  /* OAuth 2 state, NULL if absent (malloc) */
	bool has_state;
	unsigned scope;
	uint64_t family;              /* tokens that come from one code */
	time_t created;
	time_t expires;
	time_t dead_at;               /* 0 = alive */
	bool used;                    /* code exchanged */
	bool burned;                  /* code unusable after a failed exchange */
	enum emu_req1_state req1_state;
};
/* Inserts a record with the given value (copied). NULL on oom.
 * May free stale records (dead or expired for over 10 minutes), so keep
 * no pointer to such a record across the call. */
struct emu_rec *emu_rec_new(enum emu_rec_kind kind, const char *value);
struct emu_rec *emu_rec_find(enum emu_rec_kind kind, const char *value);
void emu_rec_foreach(void (*fn)(struct emu_rec *, void *), void *arg);
void emu_rec_kill(struct emu_rec *rec);
size_t emu_rec_live_count(enum emu_rec_kind kind);
uint64_t emu_next_family(void);

struct emu_faults {
	long latency_ms;
	int status;
	bool hang;
	bool rate_limit;
	bool tfa_block;
	int auserid; /* X-AUSERID sent instead of the user's id; 0: the id */
	int record_id; /* the id user records show; 0: their own */
	bool record_inactive; /* user records say "active": false */
	bool oauth1_signature_invalid; /* signed REST requests fail as behind a Host-rewriting proxy */
	bool refresh_kept; /* a refresh answers a new access token only; the refresh token lives on
			    * (a provider that does not rotate; Bitbucket does) */
};
extern struct emu_faults g_faults;

struct emu_stats {
	unsigned long authorize_requests, authorize_approved, authorize_denied;
	unsigned long authorize_errors;
	unsigned long token_requests, token_errors;
	unsigned long grants_authorization_code, grants_refresh_token;
	unsigned long failed_refreshes, refresh_token_reuse, code_reuse;
	unsigned long oauth1_request_tokens, oauth1_access_tokens;
	unsigned long oauth1_failures, oauth1_signed_requests;
	unsigned long rest_requests, rest_authenticated, rest_unauthorized;
	unsigned long rate_limited, faults_injected;
	unsigned long logins, failed_logins;
};
extern struct emu_stats g_stats;

/* Request log ring (entries are JSON objects). */
void emu_log_append(json_t *entry); /* takes ownership */
json_t *emu_log_snapshot(void);      /* deep copy, caller owns */
void emu_log_clear(void);

/* Forget applinks, tokens, sessions, faults, request log and stats. */
void emu_state_reset(void);
int emu_store_init(void);
void emu_store_shutdown(void);
/* --state FILE (state.c): the application links read at start, written
 * after each change (called with emu_lock held). 0, or -1 (on stderr). */
int emu_state_load(void);
int emu_state_save(void);

/* ---- shutdown-aware sleeping (hang / latency faults) ------------------ */
/* Sleeps up to ms milliseconds; returns early (true) when stopping. */
bool emu_sleep_ms(long ms);
void emu_signal_stop(void);

/* ---- HTML pages ------------------------------------------------------- */
/* Every page: emu_page_begin writes the head (title escaped) and opens
 * <main>; emu_page_end closes it and sends the page (500 on oom). */
void emu_page_begin(struct emu_buf *b, const char *title, bool wide);
void emu_page_end(struct emu_req *r, int status, struct emu_buf *b);
void emu_page_error(struct emu_req *r, int status, const char *title,
		    const char *message);
void emu_page_login(struct emu_req *r, int status, const char *next,
		    const char *error);
struct emu_consent {
	const char *app_name;
	const struct emu_user *user;
	unsigned scope;             /* OAuth 2; 0 for OAuth 1 */
	const char *action;         /* form action path (already with context) */
	const char *hidden_names[3];
	const char *hidden_values[3];
};
void emu_page_consent(struct emu_req *r, const struct emu_consent *c);

/* ---- session helpers (oauth2.c) --------------------------------------- */
/* Logged-in user of the browser (cookie), or NULL. Copies the session id. */
const struct emu_user *emu_session_user(struct emu_req *r,
					char session_out[EMU_TOKEN_BUF]);
/* User to auto-approve for (--auto-approve / X-Emulator-User).
 * Returns 0 = not auto, 1 = *out set, -1 = error page already sent. */
int emu_auto_approve_user(struct emu_req *r, const struct emu_user **out);

/* ---- endpoints -------------------------------------------------------- */
void emu_oauth2_authorize(struct emu_req *r);
void emu_oauth2_decision(struct emu_req *r);
void emu_oauth2_token(struct emu_req *r);
void emu_login_page(struct emu_req *r);
void emu_login_check(struct emu_req *r);
void emu_logout(struct emu_req *r);

void emu_oauth1_request_token(struct emu_req *r);
void emu_oauth1_authorize(struct emu_req *r);
void emu_oauth1_access_token(struct emu_req *r);

enum emu_o1_mode { O1_REQUEST_TOKEN, O1_ACCESS_TOKEN, O1_PROTECTED };
struct emu_o1_result {
	char consumer[256];
	char token[EMU_TOKEN_BUF];
	char verifier[EMU_TOKEN_BUF];
	char *callback;            /* request-token only, malloc'd */
	const struct emu_user *user; /* protected resource only */
};
/* Verifies an OAuth 1 signed request. On failure the oauth_problem
 * response has been sent and -1 is returned. */
int emu_oauth1_verify(struct emu_req *r, enum emu_o1_mode mode,
		      struct emu_o1_result *out);

void emu_rest_whoami(struct emu_req *r);
/* Everything under /rest/api/{1.0,latest}/; rest is the part after it. */
void emu_rest_api(struct emu_req *r, const char *rest);
void emu_rest_oauth2_client_probe(struct emu_req *r);
void emu_rest_login_options(struct emu_req *r);
void emu_user_avatar(struct emu_req *r, const char *slug);

/* Everything under {ctx}/emulator/; rest is the part after it. */
void emu_admin(struct emu_req *r, const char *rest);

/* ---- application link registration (admin.c) ---------------------------
 * One set of rules for the JSON admin API and the HTML pages, so links
 * made either way are the same objects. Each takes the lock itself. */
enum emu_link_error {
	LINK_OK = 0,
	LINK_BAD_NAME,        /* 1-200 characters, no control characters */
	LINK_BAD_REDIRECT,    /* absolute http(s) URL without fragment */
	LINK_BAD_CREDENTIALS, /* fixed client_id / client_secret not hex */
	LINK_BAD_KEY,         /* consumer key: 1-255 characters, no spaces */
	LINK_BAD_CALLBACK,    /* absolute http(s) URL */
	LINK_BAD_URL,         /* application URL: absolute http(s) URL */
	LINK_BAD_PUBLIC_KEY,  /* RSA >= 1024 bits, PEM */
	LINK_EXISTS,          /* client_id / consumer key taken, or table full */
	LINK_NO_RANDOM,
};
bool emu_link_name_ok(const char *name);
bool emu_consumer_key_ok(const char *key);
/* RSA public key of at least 1024 bits in PEM ("PUBLIC KEY" or
 * "RSA PUBLIC KEY"); NULL otherwise. */
EVP_PKEY *emu_rsa_public_key_from_pem(const char *pem);

struct emu_link_oauth2 {
	const char *name;
	const char *redirect_url;
	unsigned perms;
	const char *client_id;     /* NULL: random */
	const char *client_secret; /* NULL: random */
	char out_client_id[33];    /* filled on success */
	char out_client_secret[65];
};
enum emu_link_error emu_link_create_oauth2(struct emu_link_oauth2 *l);

struct emu_link_oauth1 {
	const char *link_name;     /* Application Name */
	const char *link_url;      /* NULL or "" when not given */
	const char *consumer_name;
	const char *consumer_key;
	const char *public_key;    /* PEM */
	const char *callback_url;  /* NULL or "" when not given */
};
enum emu_link_error emu_link_create_oauth1(const struct emu_link_oauth1 *l);

/* HTML application-link pages (applinks.c), admin session only. */
void emu_applinks_list(struct emu_req *r);
void emu_applinks_create(struct emu_req *r);
void emu_applinks_configure(struct emu_req *r);

#endif
