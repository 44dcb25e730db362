/* cookie: one cookie's value from a request's Cookie header lines, read as
 * RFC 6265 (5.4, 4.2.1) writes them: name=value pairs split on ';', white
 * space around each pair ignored, the name compared exactly, case and all.
 *
 * Not civetweb's mg_get_cookie: it matches a name without regard to case
 * and anywhere after a space, inside another cookie's value too ("a=x
 * __Host-portico_session=T"), so a cookie that a sibling domain or a
 * plain-http page could set would stand for the web's own __Host- cookie.
 * A name sent twice counts as absent: which one the web set cannot be
 * told, and the web's cookies are one per name. */
#ifndef PORTICO_WEB_COOKIE_H
#define PORTICO_WEB_COOKIE_H

#include <stddef.h>

enum {
    COOKIE_ABSENT = -1,   /* not sent, or sent more than once */
    COOKIE_TOO_LONG = -2, /* longer than the buffer (out is then empty) */
};

/* The value of cookie `name` in the n header lines into out (NUL-ended):
 * its length, or COOKIE_ABSENT / COOKIE_TOO_LONG. */
int cookie_get(const char *const *lines, size_t n, const char *name, char *out, size_t out_size);

#endif
