/* buserr: the one error type of Portico.
 *
 * Every failure that crosses the bus, or that a module hands up to the
 * code that will answer on the bus, is a bus_error_t: a code
 * (Portico__ErrorCode) saying what kind of failure it is, a detail
 * (Portico__ErrorDetail, a closed enumeration in proto/envelope.proto)
 * saying precisely what, which pages and decisions key on, and a message
 * for people and logs that is safe to show (never a token, secret or key).
 *
 * A reply's code and detail come from a peer: bus_error_from_peer turns a
 * value this build does not know into a generic one, so a newer or broken
 * peer can never select what does not exist here. */
#ifndef PORTICO_BUSERR_H
#define PORTICO_BUSERR_H

#include "envelope.pb-c.h"

/* DETAIL(INVALID_GRANT) is PORTICO__ERROR_DETAIL__DETAIL_INVALID_GRANT. */
#define DETAIL(x) PORTICO__ERROR_DETAIL__DETAIL_##x

typedef struct {
    int code;          /* Portico__ErrorCode; 0 (OK) when there is no error */
    int detail;        /* Portico__ErrorDetail; DETAIL(NONE) when there is none */
    char message[256]; /* safe to show and to log */
    int retry_after_s; /* RATE_LIMITED: seconds the other side asked to wait, -1 when it did not say */
} bus_error_t;

/* The one setter. err may be NULL (nothing is set). */
void bus_error_set(bus_error_t *err, int code, int detail, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* "BAD_REQUEST", "TIMEOUT"...; "UNKNOWN" for a code this build does not know. */
const char *bus_code_name(int code);
/* The detail's name as logs and messages show it: the enumeration's name
 * in lower case without its prefix ("invalid_grant", "client_id"); "" for
 * DETAIL(NONE) and "unknown" for a value this build does not know. */
const char *bus_detail_name(int detail);
/* Is detail one of the enumeration's values? */
int bus_detail_known(int detail);
/* The detail named name (as bus_detail_name prints it), or fallback. */
int bus_detail_parse(const char *name, int fallback);

/* What a peer sent, made safe: an unknown code becomes INTERNAL, an
 * unknown detail DETAIL(NONE). */
void bus_error_from_peer(bus_error_t *err);

#endif
