/* bb_json: what Bitbucket's answers mean.
 *
 * Decoders for every response portico-bitbucket reads (JSON bodies, the
 * form-encoded OAuth 1 answers, the whoami servlet's plain text and its
 * X-AUSERNAME / X-AUSERID headers) and the mapping of an answer that is not
 * a success to a typed error (code, machine-readable detail, message safe to
 * show an admin). Everything here is untrusted input: wrong types, missing
 * fields and garbage give a typed error, never a crash.
 *
 * JSON is parsed with jansson: in Debian, small strict API, clear error
 * reporting, no global state, and it guarantees decoded strings are valid
 * UTF-8 without embedded NUL bytes (we do not pass JSON_ALLOW_NUL).
 *
 * Pure functions, no I/O: unit tested in tests/unit/test_bb_json.c and
 * fuzzed by tests/fuzz/fuzz_bb_json.c. */
#ifndef PORTICO_BB_JSON_H
#define PORTICO_BB_JSON_H

#include "buserr.h"
#include "bitbucket.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Bigger answers are refused (UPSTREAM "too_large"). */
#define BB_MAX_BODY (4 * 1024 * 1024)
/* Longest string field we accept from Bitbucket. */
#define BB_MAX_FIELD 4096

/* One HTTP answer, borrowed. Absent headers are NULL. */
typedef struct {
    long status;
    const char *body;
    size_t body_len;
    const char *content_type;
    const char *www_authenticate;
    const char *retry_after;
    const char *location;
    const char *x_ausername;
    const char *x_auserid;
    const char *host; /* "host[:port]" of the integration, for messages */
} bb_response_t;

/* Which kind of endpoint answered: the same status means different things. */
typedef enum {
    BB_API_REST,        /* /rest/api/1.0/... with user credentials */
    BB_API_SERVER_INFO, /* /rest/api/1.0/application-properties, anonymous */
    BB_API_OAUTH2_TOKEN,
    BB_API_OAUTH1, /* request-token / access-token */
    BB_API_WHOAMI,
} bb_api_t;

/* The typed error for an answer that is not a success (any status outside
 * 200..299, or a 2xx whose body says it is an error). */
void bb_error_from_response(bb_api_t api, const bb_response_t *r, bus_error_t *err);

/* Each decoder takes the whole answer: a success is decoded into *out
 * (strings are fresh; release with the matching _clear), anything else
 * becomes a typed error. 0, or -1 with err set and *out cleared. */
int bb_decode_server_info(const bb_response_t *r, Portico__Bitbucket__ServerInfoReply *out, bus_error_t *err);
int bb_decode_token(const bb_response_t *r, Portico__Bitbucket__TokenReply *out, bus_error_t *err);
int bb_decode_whoami(const bb_response_t *r, Portico__Bitbucket__WhoAmIReply *out, bus_error_t *err);
int bb_decode_user(const bb_response_t *r, Portico__Bitbucket__User *out, bus_error_t *err);
/* A page of /rest/api/1.0/users. *skipped counts entries that were not
 * users (wrong types, no name) and were left out. */
int bb_decode_users(const bb_response_t *r, Portico__Bitbucket__FindUsersReply *out, size_t *skipped, bus_error_t *err);
/* A page of /rest/api/1.0/repos requested at start. nextPageStart is
 * passed on as given (it can skip); one that does not move forward is an
 * error, so a caller that follows it cannot loop. */
int bb_decode_repos(const bb_response_t *r, int32_t start, Portico__Bitbucket__ListReposReply *out, size_t *skipped,
                    bus_error_t *err);
int bb_decode_oauth1_token(const bb_response_t *r, Portico__Bitbucket__OAuth1TokenReply *out, bus_error_t *err);

void bb_server_info_clear(Portico__Bitbucket__ServerInfoReply *m);
void bb_token_clear(Portico__Bitbucket__TokenReply *m); /* wipes the tokens */
void bb_whoami_clear(Portico__Bitbucket__WhoAmIReply *m);
void bb_user_clear(Portico__Bitbucket__User *m);
void bb_users_clear(Portico__Bitbucket__FindUsersReply *m);
void bb_repos_clear(Portico__Bitbucket__ListReposReply *m);
void bb_oauth1_token_clear(Portico__Bitbucket__OAuth1TokenReply *m); /* wipes the tokens */

/* ---- the pieces, exposed for tests ---- */

/* Retry-After as seconds from now (delta-seconds or an HTTP date), capped
 * at one day; -1 when absent or unreadable. */
int bb_retry_after_seconds(const char *value, time_t now);
/* oauth_problem from a WWW-Authenticate: OAuth header, else from a
 * form-encoded body. Only [A-Za-z0-9_] survive. 0 when found, else -1. */
int bb_oauth_problem(const char *www_authenticate, const char *body, size_t body_len, char *out, size_t out_size);
/* The first message of Bitbucket's {"errors":[{"message":...}]} (or
 * Jersey's {"message":...}), made safe to show; "" when there is none. */
void bb_errors_message(const char *body, size_t body_len, char *out, size_t out_size);
/* Copy text for a message: control characters become spaces, runs of
 * spaces collapse, cut at a UTF-8 character boundary. */
void bb_safe_text(const char *in, size_t n, char *out, size_t out_size);
/* Value of name in an application/x-www-form-urlencoded body, decoded;
 * fresh string or NULL when absent or malformed. */
char *bb_form_get(const char *body, size_t body_len, const char *name);
bool bb_utf8_valid(const char *s, size_t n);

#endif
