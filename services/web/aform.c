/* The access rules form's model and validation (aform.h). */
#include "aform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int aform_init(aform_t *f)
{
    memset(f, 0, sizeof *f);
    f->patterns = calloc(1, AFORM_MAX_PATTERNS_TEXT + 1);
    return f->patterns ? 0 : -1;
}

void aform_free(aform_t *f)
{
    free(f->patterns);
    free(f->pats);
    free(f->split_buf);
    f->patterns = f->split_buf = NULL;
    f->pats = NULL;
}

bool aform_has_errors(const aform_t *f)
{
    return f->e_resource[0] || f->e_patterns[0] || f->e_contact[0] || f->e_top[0];
}

static void s_trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    size_t i = 0;
    while (s[i] == ' ' || s[i] == '\t')
        i++;
    if (i)
        memmove(s, s + i, n - i + 1);
}

/* Split the textarea on newlines, commas and blanks into at most
 * AFORM_MAX_PATTERNS pointers into text. -1 when there are more. */
static int s_split(char *text, char **out, size_t *n)
{
    *n = 0;
    for (char *save = NULL, *t = strtok_r(text, " \t\r\n,", &save); t; t = strtok_r(NULL, " \t\r\n,", &save)) {
        if (*n == AFORM_MAX_PATTERNS)
            return -1;
        out[(*n)++] = t;
    }
    return 0;
}

/* Read one field; too long (the error says so) or holding a NUL is an
 * error next to it. */
static void s_read(aform_get_fn get, void *src, const char *name, char *out, size_t size, char *err, size_t err_size,
                   const char *too_long)
{
    int rc = get(src, name, out, size);
    if (rc == WEB_VAR_TOO_LONG)
        snprintf(err, err_size, "%s", too_long);
    else if (rc == WEB_VAR_NUL)
        snprintf(err, err_size, "This holds a NUL character, which is not text.");
}

int aform_read(aform_t *f, aform_get_fn get, void *src)
{
    char limit[64];
    snprintf(limit, sizeof limit, "At most %d characters.", AFORM_MAX_RESOURCE);
    s_read(get, src, "resource", f->resource, sizeof f->resource, f->e_resource, sizeof f->e_resource, limit);
    s_read(get, src, "patterns", f->patterns, AFORM_MAX_PATTERNS_TEXT + 1, f->e_patterns, sizeof f->e_patterns,
           "The list is too long.");
    snprintf(limit, sizeof limit, "At most %d characters.", AFORM_MAX_CONTACT);
    s_read(get, src, "contact", f->contact, sizeof f->contact, f->e_contact, sizeof f->e_contact, limit);
    s_trim(f->resource);
    s_trim(f->contact);
    f->split_buf = strdup(f->patterns);
    f->pats = calloc(AFORM_MAX_PATTERNS + 1, sizeof *f->pats);
    if (!f->split_buf || !f->pats)
        return -1;
    if (s_split(f->split_buf, f->pats, &f->npats) < 0)
        snprintf(f->e_patterns, sizeof f->e_patterns, "At most %d names and patterns.", AFORM_MAX_PATTERNS);
    return 0;
}

void aform_store_failed(aform_t *f, const bus_error_t *err)
{
    char *target = err->detail == DETAIL(RESOURCE)   ? f->e_resource
                   : err->detail == DETAIL(CONTACT)  ? f->e_contact
                   : err->detail == DETAIL(PATTERNS) ? f->e_patterns
                                                     : f->e_top;
    snprintf(target, AFORM_ERR_LEN, "%s%s", err->message, target == f->e_top ? "" : ".");
    target[0] = target[0] >= 'a' && target[0] <= 'z' ? (char)(target[0] - 'a' + 'A') : target[0];
}
