/* framing: where one HTTP/1.1 request ends in the bytes a client sent.
 *
 * The gate (gate.h) holds each request until all of it has arrived, so
 * that civetweb's threads only ever see complete requests; for that it
 * must know the request's length exactly as civetweb will. It therefore
 * takes only the plainest framing: a single Content-Length of digits, or
 * none (no body). Anything a server in front could read otherwise is
 * refused (RFC 9112 6.3 and 5.1): a Transfer-Encoding (411: Portico's
 * forms always come with a length), a second Content-Length, one that is
 * not a number, a header name with white space before its colon, or a
 * folded line. Pure: no I/O, no allocation. */
#ifndef PORTICO_WEB_FRAMING_H
#define PORTICO_WEB_FRAMING_H

#include <stddef.h>

/* The longest body the web takes (its forms); the gate passes a longer
 * one on without holding it, and the web refuses it unread. */
#define FRAMING_BODY_MAX (64 * 1024)

typedef struct {
    size_t head_len;    /* the request line and headers, blank line included */
    long long body_len; /* the Content-Length; 0 without one */
} framing_t;

/* The request at the start of buf[0..len). 0: its headers are not all
 * there yet; 1: *out is filled; otherwise the HTTP status to refuse it
 * with: 431 (headers past max_head), 400 or 411 (as above). */
int framing_parse(const char *buf, size_t len, size_t max_head, framing_t *out);

/* The end of the header block: "\r\n\r\n" (or bare "\n\n"), or 0. */
size_t framing_head_end(const char *buf, size_t len);

#endif
