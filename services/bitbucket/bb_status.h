/* bb_status: what an answer from Bitbucket that is not a success means: its
 * status, the endpoint that gave it, an oauth_problem or an OAuth 2 error
 * body, Bitbucket's {"errors":[...]} message, mapped to a typed error
 * (code, machine-readable detail, message safe to show an admin).
 *
 * Pure functions, no I/O: unit tested in tests/unit/test_bb_status.c. */
#ifndef PORTICO_BB_STATUS_H
#define PORTICO_BB_STATUS_H

#include "buserr.h"

#include <stdbool.h>
#include <stddef.h>

/* Bigger answers are refused (UPSTREAM "too_large"): pages of
 * repositories or users, which are read as they stream (bb_pick.h)... */
#define BB_MAX_BODY (4 * 1024 * 1024)
/* ...and everything else (a token, whoami, a user, the server info),
 * which jansson holds whole as a tree many times the text's size. Error
 * answers longer than this are mapped by their status alone (their
 * message is not read). */
#define BB_MAX_SMALL_BODY (64 * 1024)
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

/* "host[:port]" of the answer for messages ("the server" when unknown). */
const char *bb_response_host(const bb_response_t *r);
/* The first message of Bitbucket's {"errors":[{"message":...}]} (or
 * Jersey's {"message":...}), made safe to show; "" when there is none. */
void bb_errors_message(const char *body, size_t body_len, char *out, size_t out_size);
/* The typed error for an oauth_problem the server at host answered with. */
void bb_oauth1_problem_error(const char *problem, long status, const char *host, bus_error_t *err);
/* RFC 6749 section 5.2 {"error","error_description"}: 0 with err set when
 * the body is one, else -1. */
int bb_oauth2_error(const bb_response_t *r, bus_error_t *err);
/* The same from the two members already read from r's body (each NULL
 * when absent or not a string): for a decoder that has the body parsed. */
int bb_oauth2_error_words(const bb_response_t *r, const char *error, const char *error_description, bus_error_t *err);

#endif
