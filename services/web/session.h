/* Sessions and CSRF (session.c): the session cookie, its lookup in the
 * registry (and the short cache in front of it), and the tokens that bind
 * a form to a session. */
#ifndef PORTICO_WEB_SESSION_H
#define PORTICO_WEB_SESSION_H

#include "web.h"

/* The clock of web_cache entries: monotonic milliseconds. */
int64_t web_cache_now(void);
/* Forget what is cached about a user (sessions, account, repositories),
 * or about everyone. */
void web_cache_forget_user(int64_t user_id);
void web_cache_forget_all(void);

/* The session of this request, or NULL. Looks it up once. */
const web_session_t *web_session(web_req_t *r);
/* The session as far as it is known without a bus call: 1 when it is (this
 * request looked it up already, or web_cache has it: web_session answers
 * it), -1 when the request has none (or one already found gone), 0 when only
 * the registry can tell: hash is then its cookie's SHA-256 and epoch the
 * cache's epoch to pass on to web_session_confirmed. */
int web_session_local(web_req_t *r, uint8_t hash[32], uint64_t *epoch);
/* The registry's answer for a session that web_session_local left open,
 * however it came (session.lookup, or the broker's list asked with the
 * session): taken and cached as web_session takes it. NULL rs: the session
 * is gone, forgotten here too. Returns the session or NULL. */
struct Portico__Registry__Session;
const web_session_t *web_session_confirmed(web_req_t *r, const uint8_t hash[32], uint64_t epoch,
                                           const struct Portico__Registry__Session *rs);
/* The registry's session.lookup for a session web_session_local left open
 * (web_session is the two in turn). */
const web_session_t *web_session_lookup(web_req_t *r, const uint8_t hash[32], uint64_t epoch);
/* Free the user that came with the session (r->session_user), if any. */
void web_session_release(web_req_t *r);
/* A new session cookie value (256 random bits) and the SHA-256 the registry
 * keeps of it. Only the registry starts sessions, in the step that checks
 * a login or the setup token (rotation at login). 0 or -1. */
int web_session_token(char *token, size_t token_size, uint8_t hash[32]);
/* The session with this cookie value now exists: end the request's old one
 * on the server, if any, and set the cookie. */
void web_session_started(web_req_t *r, int64_t user_id, const char *token);
/* After a login that carried the account (FinishLoginReply.user): the new
 * session, the account and the first page of repositories go into
 * web_cache as the pages after the login would have asked for them, so the
 * first page view costs no bus call. Taken after web_session_started,
 * which forgets what was cached about the user before. */
void web_session_prime(const char *token, const struct Portico__Registry__User *u);
void web_account_prime(const struct Portico__Registry__User *u, const struct Portico__Broker__RepositoriesReply *repos);
/* The page size of the account page's repository list. */
#define WEB_REPOS_PAGE_SIZE 25
/* End the request's session on the server and clear the cookie. 0, or -1
 * when the registry could not be asked (err): the session may live on, so
 * the cookie is kept and the page must say so. */
int web_session_end(web_req_t *r, bus_error_t *err);
/* Add a Set-Cookie line to the response. */
void web_add_cookie(web_req_t *r, const char *name, const char *value, long max_age_s, const char *path);
/* The form's csrf field matches the session's (web_post_ok in reply.h
 * checks this and Origin, and answers the refusal). */
bool web_csrf_ok(web_req_t *r);
/* The one CSRF derivation: a form token bound to secret (a session cookie,
 * or the setup form's double-submit cookie), for purpose ("portico-csrf",
 * "portico-setup-form"). 32 base64url characters into out. */
void web_csrf_derive(const char *purpose, const char *secret, char *out, size_t out_size);
/* Origin / Sec-Fetch-Site only (for forms used before a session exists). */
bool web_same_origin(web_req_t *r);

#endif
