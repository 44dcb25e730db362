/* aform: the access rules form's model and validation, apart from markup
 * and HTTP (tests/unit/test_aform.c). The page is templates/access_form.html;
 * admin_access.c is the controller. */
#ifndef PORTICO_WEB_AFORM_H
#define PORTICO_WEB_AFORM_H

#include "bus.h"
#include "formvar.h"

#include <stdbool.h>
#include <stddef.h>

#define AFORM_MAX_RESOURCE 300
#define AFORM_MAX_PATTERNS_TEXT (200 * 321)
#define AFORM_MAX_CONTACT 200
#define AFORM_MAX_PATTERNS 200
#define AFORM_ERR_LEN 300

typedef struct {
    char resource[AFORM_MAX_RESOURCE + 1];
    char *patterns; /* the textarea: AFORM_MAX_PATTERNS_TEXT + 1 */
    char contact[AFORM_MAX_CONTACT + 1];
    char e_resource[AFORM_ERR_LEN], e_patterns[AFORM_ERR_LEN], e_contact[AFORM_ERR_LEN], e_top[AFORM_ERR_LEN];
    /* After aform_read: the patterns, pointing into a copy of the text. */
    char **pats;
    size_t npats;
    char *split_buf;
} aform_t;

/* Where fields come from: as iform_get_fn (web_form's results). */
typedef int (*aform_get_fn)(void *src, const char *name, char *out, size_t out_size);

/* 0, or -1 when out of memory. */
int aform_init(aform_t *f);
void aform_free(aform_t *f);
bool aform_has_errors(const aform_t *f);
/* Read and check the three fields, and split the patterns (newlines,
 * commas, blanks). 0, or -1 when out of memory. */
int aform_read(aform_t *f, aform_get_fn get, void *src);
/* The registry's refusal (BAD_REQUEST; detail names the field). */
void aform_store_failed(aform_t *f, const bus_error_t *err);

#endif
