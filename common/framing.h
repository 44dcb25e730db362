/* framing: where one HTTP/1.1 request ends in the bytes a client sent,
 * and where civetweb's answers to them end.
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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest body the web takes (its forms); the gate passes a longer
 * one on without holding it, and the web refuses it unread. */
#define FRAMING_BODY_MAX (64 * 1024)
/* The most header lines a request may have: civetweb reads 64
 * (MG_MAX_HEADERS) and ignores the rest, and the gate adds its own. */
#define FRAMING_HEADERS_MAX 60

typedef struct {
    size_t head_len;    /* the request line and headers, blank line included */
    long long body_len; /* the Content-Length; 0 without one */
    bool has_length;    /* a Content-Length was given */
} framing_t;

/* The request at the start of buf[0..len). 0: its headers are not all
 * there yet; 1: *out is filled; otherwise the HTTP status to refuse it
 * with: 431 (headers past max_head, or more than FRAMING_HEADERS_MAX
 * lines), 400 (a request line other than "METHOD SP target SP HTTP/d.d",
 * or as above) or 411 (as above). */
int framing_parse(const char *buf, size_t len, size_t max_head, framing_t *out);

/* The end of the header block: "\r\n\r\n" (or bare "\n\n"), or 0. */
size_t framing_head_end(const char *buf, size_t len);

/* ---- answers ----
 *
 * The gate follows the answers civetweb sends on a connection, so that it
 * knows when none is due any more and it may close its side of an idle
 * connection (civetweb's thread then goes back to serving others). It
 * takes only what it can delimit: a status line and headers within
 * FRAMING_ANSWER_HEAD_MAX, and a body of one Content-Length (none after a
 * HEAD, a 1xx, a 204 or a 304; a 1xx is followed by the real answer).
 * Anything else (no length, a Transfer-Encoding, "Connection: close",
 * bytes nobody asked for) makes the connection `lost`: the gate stops
 * following it and waits for civetweb to close it, as it would without
 * this. So would more than FRAMING_ANSWERS_MAX requests outstanding, but
 * the gate passes no more than that on at a time: the next waits in the
 * gate until an answer has ended. */
#define FRAMING_ANSWER_HEAD_MAX 8192
#define FRAMING_ANSWERS_MAX 64

typedef struct {
    int due;             /* requests passed on whose answers have not all come */
    uint64_t heads;      /* bit i: the i-th of them is a HEAD */
    bool lost;           /* an answer that cannot be delimited: stop following */
    long long body_left; /* of the answer coming now, once its head is read */
    size_t head_len;     /* bytes of the answer's head read so far, in head */
    char head[FRAMING_ANSWER_HEAD_MAX];
} framing_answers_t;

/* A request of method HEAD or another was passed on. */
void framing_asked(framing_answers_t *a, bool is_head);
/* Follow n bytes of civetweb's answers; how many answers ended in them. */
int framing_answered(framing_answers_t *a, const char *p, size_t n);
/* Every answer asked for has come whole, and the connection is followed. */
bool framing_none_due(const framing_answers_t *a);

#endif
