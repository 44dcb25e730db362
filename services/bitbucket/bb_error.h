/* bb_error: the typed error every part of portico-bitbucket produces for a
 * failed call: an envelope ErrorCode, a machine-readable detail the broker
 * acts on ("invalid_grant", "timestamp_refused", "anonymous") and a message
 * that is safe to show an admin (never a token, secret or key).
 *
 * Header only, so that each pure module (and its unit test, which links
 * that one module) can use it. */
#ifndef PORTICO_BB_ERROR_H
#define PORTICO_BB_ERROR_H

#include <stdarg.h>
#include <stdio.h>

typedef struct {
    int code; /* Portico__ErrorCode; 0 (OK) when there is no error */
    char detail[64];
    char message[256];
    int retry_after_s; /* RATE_LIMITED: seconds Bitbucket asked to wait, -1 when it did not say */
} bb_error_t;

static inline void bb_error_set(bb_error_t *err, int code, const char *detail, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline void bb_error_set(bb_error_t *err, int code, const char *detail, const char *fmt, ...)
{
    err->code = code;
    err->retry_after_s = -1;
    snprintf(err->detail, sizeof err->detail, "%s", detail ? detail : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

#endif
