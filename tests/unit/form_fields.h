/* A request body for the form tests (test_iform.c, test_aform.c): name and
 * value pairs ending with {NULL, NULL}, read as web_form reads a body. */
#ifndef PORTICO_TEST_FORM_FIELDS_H
#define PORTICO_TEST_FORM_FIELDS_H

#include <stddef.h>
#include <string.h>

typedef struct {
    const char *name, *value;
} field_t;

/* The value's length, -1 when absent, -2 when longer than out, -3
 * (WEB_VAR_NUL) when it holds "%00", the one escape these values use, for
 * what web_form gives for a field sent with a NUL byte. */
static inline int form_fields_get(void *src, const char *name, char *out, size_t out_size)
{
    for (const field_t *f = src; f->name; f++) {
        if (strcmp(f->name, name) != 0)
            continue;
        if (strstr(f->value, "%00")) {
            out[0] = '\0';
            return -3;
        }
        size_t n = strlen(f->value);
        if (n >= out_size)
            return -2;
        memcpy(out, f->value, n + 1);
        return (int)n;
    }
    out[0] = '\0';
    return -1;
}

#endif
