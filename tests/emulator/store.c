/* In-memory state: fixed users and repositories, plus everything the
 * admin API and the OAuth providers create. Users and repositories never
 * change after emu_store_init and are read without the lock; everything
 * else is guarded by one mutex (civetweb runs handlers on many threads). */
#include "emulator.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

struct emu_config g_cfg;
struct emu_faults g_faults;
struct emu_stats g_stats;

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;

void emu_lock(void)
{
	pthread_mutex_lock(&s_lock);
}

void emu_unlock(void)
{
	pthread_mutex_unlock(&s_lock);
}

/* ---- users ------------------------------------------------------------ */

#define BENCH_USERS 200

static const struct emu_user s_builtin_users[] = {
	{ "jdoe", "jdoe", "John Doe", "jdoe@example.com", 101 },
	{ "jane.doe@example.com", "jane.doe_example.com",
	  "Jane \"JD\" Doe <script>alert(1)</script>", "jane.doe@example.com", 102 },
	{ "zo\xc3\xab", "zo\xc3\xab", "Zo\xc3\xab \xc3\x85ngstr\xc3\xb6m", "zoe@example.com", 103 },
	{ "admin", "admin", "Bitbucket Admin", "admin@example.com", 1 },
};
#define BUILTIN_USERS (sizeof s_builtin_users / sizeof s_builtin_users[0])

static struct emu_user s_users[BUILTIN_USERS + 1 + BENCH_USERS];
static size_t s_nusers;
static char s_bench_names[BENCH_USERS][16];
static char s_bench_display[BENCH_USERS][16];
/* Someone whose names are as long as Bitbucket lets them be, in letters of
 * two bytes: the name "l" and 120 "\xc3\xb6" (241 bytes), the display name
 * 128 "\xc3\xa9" (256 bytes: one more than Portico keeps). */
static char s_long_name[242], s_long_display[257];
static char s_bench_email[BENCH_USERS][32];

static int s_user_cmp(const void *a, const void *b)
{
	return strcmp(((const struct emu_user *)a)->name, ((const struct emu_user *)b)->name);
}

static void s_init_users(void)
{
	s_nusers = 0;
	for (size_t i = 0; i < BUILTIN_USERS; i++)
		s_users[s_nusers++] = s_builtin_users[i];
	s_long_name[0] = 'l';
	for (size_t o = 1; o + 1 < sizeof s_long_name; o += 2)
		memcpy(s_long_name + o, "\xc3\xb6", 2);
	for (size_t o = 0; o + 1 < sizeof s_long_display; o += 2)
		memcpy(s_long_display + o, "\xc3\xa9", 2);
	s_users[s_nusers++] = (struct emu_user){ s_long_name, s_long_name, s_long_display,
						 "long@example.com", 104 };
	for (int n = 0; n < BENCH_USERS; n++) {
		snprintf(s_bench_names[n], sizeof s_bench_names[n], "user%d", n);
		snprintf(s_bench_display[n], sizeof s_bench_display[n], "User %d", n);
		snprintf(s_bench_email[n], sizeof s_bench_email[n], "user%d@example.com", n);
		s_users[s_nusers++] = (struct emu_user){ s_bench_names[n], s_bench_names[n],
							 s_bench_display[n], s_bench_email[n],
							 1000 + n };
	}
	/* Bitbucket lists users ordered by name. */
	qsort(s_users, s_nusers, sizeof s_users[0], s_user_cmp);
}

const struct emu_user *emu_user_by_name(const char *name)
{
	for (size_t i = 0; i < s_nusers; i++)
		if (strcmp(s_users[i].name, name) == 0)
			return &s_users[i];
	return NULL;
}

const struct emu_user *emu_user_by_slug(const char *slug)
{
	for (size_t i = 0; i < s_nusers; i++)
		if (strcmp(s_users[i].slug, slug) == 0)
			return &s_users[i];
	return NULL;
}

size_t emu_user_count(void)
{
	return s_nusers;
}

const struct emu_user *emu_user_at(size_t i)
{
	return i < s_nusers ? &s_users[i] : NULL;
}

bool emu_password_ok(const struct emu_user *u, const char *password)
{
	return u && password && emu_consttime_eq(password, "password");
}

bool emu_user_is_admin(const struct emu_user *u)
{
	return u && u->id == 1; /* "admin", the only system administrator */
}

/* ---- projects and repositories ----------------------------------------- */

static const struct emu_project s_projects[] = {
	{ "PROJ", 1, "Project", false, false, NULL },
	{ "OPEN", 2, "Open Source", true, false, NULL },
	{ "~JDOE", 3, "John Doe", false, true, "jdoe" },
};

#define PROJ_REPOS 40
#define OPEN_REPOS 10
#define JDOE_REPOS 10
#define NREPOS (PROJ_REPOS + OPEN_REPOS + JDOE_REPOS)

static struct emu_repo s_repos[NREPOS];

static void s_add_repo(size_t i, const struct emu_project *p, const char *slug,
		       const char *name)
{
	struct emu_repo *r = &s_repos[i];
	r->index = (int)i;
	r->id = 100 + 3 * (int)i; /* not contiguous, like a real instance */
	snprintf(r->slug, sizeof r->slug, "%s", slug);
	snprintf(r->name, sizeof r->name, "%s", name);
	snprintf(r->hierarchy_id, sizeof r->hierarchy_id, "%08x%012x",
		 0x5eed0000u + (unsigned)i, 0xabcdefu * (unsigned)(i + 1));
	r->project = p;
	r->is_public = p->is_public;
	r->forkable = !p->personal;
}

static void s_init_repos(void)
{
	char slug[64], name[96];
	size_t i = 0;
	/* The global order (PROJ, OPEN, ~JDOE) is the paging order: repos a
	 * user cannot see stay in it as hidden entries, which makes
	 * nextPageStart jump over them. */
	for (int n = 0; n < PROJ_REPOS; n++, i++) {
		if (n == 5) {
			s_add_repo(i, &s_projects[0], "legacy-tools", "Legacy <Tools> & \"Scripts\"");
			continue;
		}
		if (n == 12) {
			s_add_repo(i, &s_projects[0], "unicode-library",
				   "\xc3\x9c" "n\xc3\xaf" "c\xc3\xb6" "de Library");
			continue;
		}
		snprintf(slug, sizeof slug, "service-%02d", n);
		snprintf(name, sizeof name, "Service %02d", n);
		s_add_repo(i, &s_projects[0], slug, name);
	}
	for (int n = 0; n < OPEN_REPOS; n++, i++) {
		snprintf(slug, sizeof slug, "open-lib-%02d", n);
		snprintf(name, sizeof name, "Open Lib %02d", n);
		s_add_repo(i, &s_projects[1], slug, name);
	}
	for (int n = 0; n < JDOE_REPOS; n++, i++) {
		snprintf(slug, sizeof slug, "sandbox-%02d", n);
		snprintf(name, sizeof name, "Sandbox %02d", n);
		s_add_repo(i, &s_projects[2], slug, name);
	}
}

size_t emu_repo_count(void)
{
	return NREPOS;
}

const struct emu_repo *emu_repo_at(size_t i)
{
	return i < NREPOS ? &s_repos[i] : NULL;
}

const struct emu_repo *emu_repo_find(const char *project_key, const char *slug)
{
	for (size_t i = 0; i < NREPOS; i++)
		if (strcasecmp(s_repos[i].project->key, project_key) == 0 &&
		    strcasecmp(s_repos[i].slug, slug) == 0)
			return &s_repos[i];
	return NULL;
}

/*
 * Per-user grants (public repositories come on top, for any signed-in user):
 *   jdoe   25 of the 40 PROJ repos (5 of every 8) + admin on ~JDOE's 10
 *          = 35 own grants, 45 readable with OPEN's 10.
 *   jane    3 PROJ repos (13 readable with OPEN).
 *   zoë     none (10 readable: OPEN only).
 *   userN   5 PROJ repos spread over the project.
 *   admin   admin everywhere (system administrator).
 */
/* ---- grants and disabled users set by the admin API ---------------------- */

#define MAX_GRANTS 256

struct s_grant {
	int user_id;
	const struct emu_project *project;
	char slug[64]; /* "" for the project */
	enum emu_perm perm;
};

static pthread_mutex_t s_access_lock = PTHREAD_MUTEX_INITIALIZER;
static struct s_grant s_grants[MAX_GRANTS];
static size_t s_ngrants;
static int s_disabled[BUILTIN_USERS + BENCH_USERS];
static size_t s_ndisabled;

const struct emu_project *emu_project_find(const char *key)
{
	for (size_t i = 0; i < sizeof s_projects / sizeof s_projects[0]; i++)
		if (strcasecmp(s_projects[i].key, key) == 0)
			return &s_projects[i];
	return NULL;
}

/* 1 found (perm in *out), 0 not. Needs s_access_lock. */
static int s_grant_find(int user_id, const struct emu_project *p, const char *slug, enum emu_perm *out)
{
	for (size_t i = 0; i < s_ngrants; i++)
		if (s_grants[i].user_id == user_id && s_grants[i].project == p &&
		    strcasecmp(s_grants[i].slug, slug) == 0) {
			*out = s_grants[i].perm;
			return 1;
		}
	return 0;
}

enum emu_perm emu_project_user_perm(const struct emu_project *p, const struct emu_user *u)
{
	enum emu_perm perm = PERM_NONE;
	if (!u || !p)
		return PERM_NONE;
	if (u->id == 1)
		return PERM_ADMIN;
	pthread_mutex_lock(&s_access_lock);
	s_grant_find(u->id, p, "", &perm);
	pthread_mutex_unlock(&s_access_lock);
	return perm;
}

int emu_grant_set(const struct emu_user *u, const struct emu_project *p, const char *slug, enum emu_perm perm)
{
	int rc = 0;
	slug = slug ? slug : "";
	pthread_mutex_lock(&s_access_lock);
	size_t i = 0;
	for (; i < s_ngrants; i++)
		if (s_grants[i].user_id == u->id && s_grants[i].project == p &&
		    strcasecmp(s_grants[i].slug, slug) == 0)
			break;
	if (i == s_ngrants) {
		if (s_ngrants == MAX_GRANTS) {
			rc = -1;
			goto out;
		}
		s_ngrants++;
	}
	s_grants[i].user_id = u->id;
	s_grants[i].project = p;
	snprintf(s_grants[i].slug, sizeof s_grants[i].slug, "%s", slug);
	s_grants[i].perm = perm;
out:
	pthread_mutex_unlock(&s_access_lock);
	return rc;
}

void emu_user_set_disabled(const struct emu_user *u, bool disabled)
{
	pthread_mutex_lock(&s_access_lock);
	size_t i = 0;
	while (i < s_ndisabled && s_disabled[i] != u->id)
		i++;
	if (disabled && i == s_ndisabled && s_ndisabled < sizeof s_disabled / sizeof s_disabled[0])
		s_disabled[s_ndisabled++] = u->id;
	else if (!disabled && i < s_ndisabled)
		s_disabled[i] = s_disabled[--s_ndisabled];
	pthread_mutex_unlock(&s_access_lock);
}

bool emu_user_disabled(const struct emu_user *u)
{
	bool found = false;
	if (!u)
		return false;
	pthread_mutex_lock(&s_access_lock);
	for (size_t i = 0; i < s_ndisabled && !found; i++)
		found = s_disabled[i] == u->id;
	pthread_mutex_unlock(&s_access_lock);
	return found;
}

void emu_access_reset(void)
{
	pthread_mutex_lock(&s_access_lock);
	s_ngrants = 0;
	s_ndisabled = 0;
	pthread_mutex_unlock(&s_access_lock);
}

static enum emu_perm s_builtin_perm(const struct emu_repo *repo, const struct emu_user *u);

enum emu_perm emu_repo_user_perm(const struct emu_repo *repo, const struct emu_user *u)
{
	enum emu_perm perm = PERM_NONE;
	if (!u)
		return PERM_NONE;
	if (u->id == 1)
		return PERM_ADMIN;
	pthread_mutex_lock(&s_access_lock);
	int found = s_grant_find(u->id, repo->project, repo->slug, &perm);
	if (!found)
		found = s_grant_find(u->id, repo->project, "", &perm);
	pthread_mutex_unlock(&s_access_lock);
	return found ? perm : s_builtin_perm(repo, u);
}

static enum emu_perm s_builtin_perm(const struct emu_repo *repo, const struct emu_user *u)
{
	if (!u)
		return PERM_NONE;
	if (u->id == 1)
		return PERM_ADMIN;
	if (repo->project->personal)
		return strcmp(repo->project->owner, u->name) == 0 ? PERM_ADMIN : PERM_NONE;
	if (strcmp(repo->project->key, "PROJ") != 0)
		return PERM_NONE;
	int n = repo->index; /* 0..39 within PROJ */
	if (u->id == 101) {
		int m = n % 8;
		if (m == 0)
			return PERM_WRITE;
		return (m == 1 || m == 2 || m == 4 || m == 5) ? PERM_READ : PERM_NONE;
	}
	if (u->id == 102)
		return (n == 3 || n == 11 || n == 19) ? PERM_READ : PERM_NONE;
	if (u->id >= 1000 && u->id < 1000 + BENCH_USERS)
		return (n % 8) == ((u->id - 1000) % 8) && n / 8 < 5 ? PERM_READ : PERM_NONE;
	return PERM_NONE;
}

/* ---- scopes ------------------------------------------------------------ */

static const struct {
	const char *name;
	unsigned bit;
	const char *description;
} s_scopes[] = {
	{ "PUBLIC_REPOS", SCOPE_PUBLIC_REPOS, "View public repositories" },
	{ "REPO_READ", SCOPE_REPO_READ, "Repositories: read" },
	{ "REPO_WRITE", SCOPE_REPO_WRITE, "Repositories: write" },
	{ "REPO_ADMIN", SCOPE_REPO_ADMIN, "Repositories: admin" },
	{ "PROJECT_ADMIN", SCOPE_PROJECT_ADMIN, "Projects: admin" },
	{ "ACCOUNT_WRITE", SCOPE_ACCOUNT_WRITE, "Account: write" },
	{ "ADMIN_WRITE", SCOPE_ADMIN_WRITE, "Admin: write" },
	{ "SYSTEM_ADMIN", SCOPE_SYSTEM_ADMIN, "System admin: write" },
};
#define NSCOPES (sizeof s_scopes / sizeof s_scopes[0])

unsigned emu_scope_from_name(const char *name, size_t n)
{
	/* Case-sensitive on purpose: the identifiers are documented upper case. */
	for (size_t i = 0; i < NSCOPES; i++)
		if (strlen(s_scopes[i].name) == n && memcmp(s_scopes[i].name, name, n) == 0)
			return s_scopes[i].bit;
	return 0;
}

int emu_scope_parse(const char *s, unsigned *out)
{
	unsigned mask = 0;
	const char *p = s;
	if (!*s)
		return -1;
	for (;;) {
		const char *sp = strchr(p, ' ');
		size_t n = sp ? (size_t)(sp - p) : strlen(p);
		unsigned bit = emu_scope_from_name(p, n);
		if (!bit)
			return -1; /* also catches doubled or trailing spaces */
		mask |= bit;
		if (!sp)
			break;
		p = sp + 1;
	}
	*out = mask;
	return 0;
}

char *emu_scope_string(unsigned mask)
{
	struct emu_buf b = { 0 };
	if (!mask)
		mask = SCOPE_PUBLIC_REPOS;
	for (size_t i = 0; i < NSCOPES; i++) {
		if (!(mask & s_scopes[i].bit))
			continue;
		if (b.len)
			emu_buf_puts(&b, " ");
		emu_buf_puts(&b, s_scopes[i].name);
	}
	return emu_buf_take(&b);
}

json_t *emu_scope_json(unsigned mask)
{
	json_t *a = json_array();
	for (size_t i = 0; i < NSCOPES; i++)
		if (mask & s_scopes[i].bit)
			json_array_append_new(a, json_string(s_scopes[i].name));
	return a;
}

const char *emu_scope_description(unsigned bit)
{
	for (size_t i = 0; i < NSCOPES; i++)
		if (s_scopes[i].bit == bit)
			return s_scopes[i].description;
	return "";
}

enum emu_perm emu_scope_cap(unsigned mask)
{
	if (mask & (SCOPE_REPO_ADMIN | SCOPE_PROJECT_ADMIN | SCOPE_ADMIN_WRITE | SCOPE_SYSTEM_ADMIN))
		return PERM_ADMIN;
	if (mask & SCOPE_REPO_WRITE)
		return PERM_WRITE;
	if (mask & SCOPE_REPO_READ)
		return PERM_READ;
	return PERM_NONE; /* PUBLIC_REPOS: public repositories only */
}

/* ---- applinks ------------------------------------------------------------ */

static struct emu_applink s_applinks[EMU_MAX_APPLINKS];
static size_t s_napplinks;
static struct emu_consumer s_consumers[EMU_MAX_APPLINKS];
static size_t s_nconsumers;

struct emu_applink *emu_applink_find(const char *client_id)
{
	for (size_t i = 0; i < s_napplinks; i++)
		if (strcmp(s_applinks[i].client_id, client_id) == 0)
			return &s_applinks[i];
	return NULL;
}

struct emu_applink *emu_applink_add(void)
{
	if (s_napplinks >= EMU_MAX_APPLINKS)
		return NULL;
	struct emu_applink *a = &s_applinks[s_napplinks++];
	memset(a, 0, sizeof *a);
	return a;
}

size_t emu_applink_count(void)
{
	return s_napplinks;
}

struct emu_applink *emu_applink_at(size_t i)
{
	return i < s_napplinks ? &s_applinks[i] : NULL;
}

struct emu_consumer *emu_consumer_find(const char *key)
{
	for (size_t i = 0; i < s_nconsumers; i++)
		if (strcmp(s_consumers[i].key, key) == 0)
			return &s_consumers[i];
	return NULL;
}

struct emu_consumer *emu_consumer_add(void)
{
	if (s_nconsumers >= EMU_MAX_APPLINKS)
		return NULL;
	struct emu_consumer *c = &s_consumers[s_nconsumers++];
	memset(c, 0, sizeof *c);
	return c;
}

size_t emu_consumer_count(void)
{
	return s_nconsumers;
}

struct emu_consumer *emu_consumer_at(size_t i)
{
	return i < s_nconsumers ? &s_consumers[i] : NULL;
}

/* ---- record table ------------------------------------------------------ */

#define REC_BUCKETS 16384
#define REC_GRACE   600 /* seconds a dead/expired record is still remembered */

static struct emu_rec *s_recs[REC_BUCKETS];
static size_t s_nrecs;
static unsigned s_inserts_since_purge;
static uint64_t s_family;

static size_t s_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return (size_t)(h % REC_BUCKETS);
}

static void s_rec_free(struct emu_rec *rec)
{
	free(rec->uri);
	free(rec->state);
	OPENSSL_cleanse(rec, sizeof *rec);
	free(rec);
}

static bool s_rec_stale(const struct emu_rec *rec, time_t now)
{
	if (rec->dead_at && now - rec->dead_at > REC_GRACE)
		return true;
	return rec->expires && now > rec->expires + REC_GRACE;
}

/* Drops records nobody can use any more, so long benchmarks stay small. */
static void s_rec_purge(bool everything)
{
	time_t now = emu_now();
	for (size_t b = 0; b < REC_BUCKETS; b++) {
		struct emu_rec **pp = &s_recs[b];
		while (*pp) {
			struct emu_rec *rec = *pp;
			if (everything || s_rec_stale(rec, now)) {
				*pp = rec->next;
				s_rec_free(rec);
				s_nrecs--;
			} else {
				pp = &rec->next;
			}
		}
	}
}

struct emu_rec *emu_rec_new(enum emu_rec_kind kind, const char *value)
{
	if (strlen(value) >= EMU_TOKEN_BUF)
		return NULL;
	if (++s_inserts_since_purge >= 1024) {
		s_inserts_since_purge = 0;
		s_rec_purge(false);
	}
	struct emu_rec *rec = calloc(1, sizeof *rec);
	if (!rec)
		return NULL;
	rec->kind = kind;
	snprintf(rec->value, sizeof rec->value, "%s", value);
	rec->created = emu_now();
	size_t h = s_hash(value);
	rec->next = s_recs[h];
	s_recs[h] = rec;
	s_nrecs++;
	return rec;
}

struct emu_rec *emu_rec_find(enum emu_rec_kind kind, const char *value)
{
	if (!value || strlen(value) >= EMU_TOKEN_BUF)
		return NULL;
	for (struct emu_rec *rec = s_recs[s_hash(value)]; rec; rec = rec->next)
		if (rec->kind == kind && strcmp(rec->value, value) == 0)
			return rec;
	return NULL;
}

void emu_rec_foreach(void (*fn)(struct emu_rec *, void *), void *arg)
{
	for (size_t b = 0; b < REC_BUCKETS; b++)
		for (struct emu_rec *rec = s_recs[b]; rec; rec = rec->next)
			fn(rec, arg);
}

void emu_rec_kill(struct emu_rec *rec)
{
	if (rec && !rec->dead_at)
		rec->dead_at = emu_now();
}

size_t emu_rec_live_count(enum emu_rec_kind kind)
{
	size_t n = 0;
	time_t now = emu_now();
	for (size_t b = 0; b < REC_BUCKETS; b++)
		for (struct emu_rec *rec = s_recs[b]; rec; rec = rec->next)
			if (rec->kind == kind && !rec->dead_at && (!rec->expires || rec->expires > now))
				n++;
	return n;
}

uint64_t emu_next_family(void)
{
	return ++s_family;
}

/* ---- request log ring ---------------------------------------------------- */

static json_t *s_log[EMU_LOG_ENTRIES];
static size_t s_log_head; /* next slot to write */
static size_t s_log_len;

void emu_log_append(json_t *entry)
{
	if (!entry)
		return;
	json_decref(s_log[s_log_head]);
	s_log[s_log_head] = entry;
	s_log_head = (s_log_head + 1) % EMU_LOG_ENTRIES;
	if (s_log_len < EMU_LOG_ENTRIES)
		s_log_len++;
}

json_t *emu_log_snapshot(void)
{
	json_t *a = json_array();
	size_t first = (s_log_head + EMU_LOG_ENTRIES - s_log_len) % EMU_LOG_ENTRIES;
	for (size_t i = 0; i < s_log_len && a; i++)
		json_array_append_new(a, json_deep_copy(s_log[(first + i) % EMU_LOG_ENTRIES]));
	return a;
}

void emu_log_clear(void)
{
	for (size_t i = 0; i < EMU_LOG_ENTRIES; i++) {
		json_decref(s_log[i]);
		s_log[i] = NULL;
	}
	s_log_head = s_log_len = 0;
}

/* ---- reset / init ------------------------------------------------------- */

void emu_state_reset(void)
{
	for (size_t i = 0; i < s_nconsumers; i++)
		EVP_PKEY_free(s_consumers[i].pkey);
	memset(s_applinks, 0, sizeof s_applinks);
	memset(s_consumers, 0, sizeof s_consumers);
	s_napplinks = s_nconsumers = 0;
	s_rec_purge(true);
	memset(&g_faults, 0, sizeof g_faults);
	memset(&g_stats, 0, sizeof g_stats);
	emu_log_clear();
	emu_access_reset();
}

int emu_store_init(void)
{
	s_init_users();
	s_init_repos();
	return 0;
}

void emu_store_shutdown(void)
{
	emu_lock();
	emu_state_reset();
	emu_unlock();
}

/* ---- shutdown-aware sleeping ---------------------------------------------- */

static pthread_mutex_t s_stop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t s_stop_cond;
static pthread_once_t s_stop_once = PTHREAD_ONCE_INIT;
static bool s_stopping;

static void s_stop_cond_init(void)
{
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&s_stop_cond, &attr);
	pthread_condattr_destroy(&attr);
}

bool emu_sleep_ms(long ms)
{
	struct timespec deadline;
	bool stopped;
	pthread_once(&s_stop_once, s_stop_cond_init);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s_stop_lock);
	while (!s_stopping) {
		if (pthread_cond_timedwait(&s_stop_cond, &s_stop_lock, &deadline) == ETIMEDOUT)
			break;
	}
	stopped = s_stopping;
	pthread_mutex_unlock(&s_stop_lock);
	return stopped;
}

void emu_signal_stop(void)
{
	pthread_once(&s_stop_once, s_stop_cond_init);
	pthread_mutex_lock(&s_stop_lock);
	s_stopping = true;
	pthread_cond_broadcast(&s_stop_cond);
	pthread_mutex_unlock(&s_stop_lock);
}
