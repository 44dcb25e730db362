/* login_pages: what the sign-in error page says for each error.
 *
 * One table keyed on the error detail (proto/envelope.proto's
 * ErrorDetail), and one keyed on the code for details that have no page of
 * their own. Every detail has an entry, its own page or explicitly "the
 * code's page": tests/unit/test_login_pages.c fails for a detail added to
 * the enumeration without one. Pure data, no I/O. */
#ifndef PORTICO_WEB_LOGIN_PAGES_H
#define PORTICO_WEB_LOGIN_PAGES_H

#include <stdbool.h>

/* How a page uses the error's message (safe to show). */
enum {
    LOGIN_PAGE_TEXT = 0,              /* only the page's own text */
    LOGIN_PAGE_MESSAGE_WHAT = 1,      /* "what happened" is the message and a full stop */
    LOGIN_PAGE_MESSAGE_NEXT_STEP = 2, /* "what to do" is the message, or next_step when it is empty */
};

typedef struct {
    int status;        /* HTTP status; 0: the one of the error's code */
    int retry_after_s; /* > 0: sent as Retry-After */
    int message;       /* LOGIN_PAGE_TEXT, _MESSAGE_WHAT or _MESSAGE_NEXT_STEP */
    const char *title;
    const char *what; /* NULL with LOGIN_PAGE_MESSAGE_WHAT */
    const char *next_step;
} login_page_t;

/* The page for an error: its detail's own page, else its code's. Any code
 * or detail, known or not, gets one. */
const login_page_t *login_page_for(int code, int detail);
/* Does the table have an entry for detail (a page or "the code's")? */
bool login_page_listed(int detail);
/* Is detail's entry a page of its own? */
bool login_page_own(int detail);

#endif
