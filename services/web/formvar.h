/* formvar: what reading a form field or query parameter can give, shared by
 * web_form / web_query (http.c) and the form models that read through them
 * (iform, aform), which are tested without a request. */
#ifndef PORTICO_WEB_FORMVAR_H
#define PORTICO_WEB_FORMVAR_H

/* Besides the decoded length (0 or more): */
enum {
    WEB_VAR_ABSENT = -1,   /* no such field */
    WEB_VAR_TOO_LONG = -2, /* longer than the buffer, or not valid percent-encoding */
    WEB_VAR_NUL = -3,      /* decodes to a NUL byte (%00): no field takes one, and a value cut
                            * there would mean less than was sent (the buffer is then empty) */
};

#endif
