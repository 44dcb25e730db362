/* tmpl: the web's HTML templates. A small, strict engine on purpose.
 *
 * Syntax (services/web/templates/README.md has the long form):
 *   {{!vars a b c}}        first tag of every template: the names it uses
 *   {{name}}               a text value, HTML-escaped (& < > " '), so it is
 *                          safe in element content and quoted attributes
 *   {{{name}}}             raw output; only a value made by tmpl_set_render
 *                          (another template's output) may be named here
 *   {{#name}}..{{/name}}   a section: once for a true flag or non-empty
 *                          text, once per item of a list, never otherwise
 *   {{^name}}..{{/name}}   the opposite: a false flag, empty text or list
 *   {{>other}}             another template, with the same values
 *   {{! ...}}              a comment
 *
 * Escaping is the default and cannot be switched off for plain text: a
 * string from a request or from Bitbucket reaches the page only through
 * tmpl_set (escaped). Raw output needs both the triple braces in the
 * template and a value that came out of a template.
 *
 * Nothing is silent: a template that names a variable missing from its
 * {{!vars}} line fails to load (at build time in scripts/tmplgen.py, at
 * start in tmpl_lib_new), and rendering a variable the caller did not set
 * fails the render with the template's and the variable's name. */
#ifndef PORTICO_WEB_TMPL_H
#define PORTICO_WEB_TMPL_H

#include "sbuf.h"

#include <stdbool.h>
#include <stddef.h>

/* A template as the build compiles it in: name and text. */
typedef struct {
    const char *name;
    const char *text;
} tmpl_source_t;

typedef struct tmpl_lib tmpl_lib_t;
typedef struct tmpl_ctx tmpl_ctx_t;

/* Check and keep a set of templates (sources ends with {NULL, NULL}; the
 * texts are not copied). NULL with a message in err when any template is
 * malformed, uses an undeclared variable or includes an unknown one. */
tmpl_lib_t *tmpl_lib_new(const tmpl_source_t *sources, char *err, size_t err_size);
void tmpl_lib_destroy(tmpl_lib_t **self_p);
bool tmpl_lib_has(const tmpl_lib_t *self, const char *name);

/* The values of one render. Setters copy what they are given; a failed
 * allocation makes the next render fail. */
tmpl_ctx_t *tmpl_ctx_new(void);
void tmpl_ctx_destroy(tmpl_ctx_t **self_p);
void tmpl_set(tmpl_ctx_t *self, const char *name, const char *text);
void tmpl_setf(tmpl_ctx_t *self, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void tmpl_set_int(tmpl_ctx_t *self, const char *name, long long value);
void tmpl_set_bool(tmpl_ctx_t *self, const char *name, bool on);
/* An empty list (a list nobody adds to still has to be set). */
void tmpl_set_list(tmpl_ctx_t *self, const char *name);
/* A new item of a list (created when missing). Names not set on the item
 * are looked up in self. NULL when out of memory (the render then fails). */
tmpl_ctx_t *tmpl_add(tmpl_ctx_t *self, const char *list);
/* Render template with values and keep the result as a raw value name of
 * self: the only way to make a value {{{name}}} may print. 0 or -1. */
int tmpl_set_render(tmpl_ctx_t *self, const char *name, const tmpl_lib_t *lib, const char *template_name,
                    const tmpl_ctx_t *values, char *err, size_t err_size);

/* Append the rendered template to out (values NULL: none). 0, or -1 with a message in err
 * (unknown template, a variable not set, a raw tag naming plain text,
 * out of memory). */
int tmpl_render(const tmpl_lib_t *lib, const char *template_name, const tmpl_ctx_t *values, sbuf_t *out, char *err,
                size_t err_size);

#endif
