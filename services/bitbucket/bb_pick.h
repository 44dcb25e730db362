/* bb_pick: the few fields a decoder wants from a large JSON answer,
 * without building the document.
 *
 * Bitbucket's paged answers (25 repositories are some 16 KB) were parsed
 * into a jansson tree of which a handful of fields were read: most of this
 * service's CPU per signed-in page. bb_pick walks the text once with
 * yajl's callback parser and hands the caller only the values at the
 * paths it declared, one event each; everything else is checked and
 * dropped.
 *
 * A document is accepted exactly when jansson (json_loadb, no flags)
 * accepts it, with two exceptions: a number too big for a long long or a
 * double where nobody looks is accepted (jansson refuses the whole
 * document), and a NUL byte right after a number or a literal is refused
 * (jansson passes over it). Where
 * yajl is laxer (UTF-8 it lets through, unpaired surrogate escapes, \u0000,
 * form feed and vertical tab as white space, no depth limit) bb_pick checks
 * the text itself.
 *
 * The bb_jv_* rules turn one value into what a decoder keeps; bb_json.c
 * uses the same rules for the answers it still reads with jansson. */
#ifndef PORTICO_BB_PICK_H
#define PORTICO_BB_PICK_H

#include <stdbool.h>
#include <stddef.h>

/* jansson's JSON_PARSER_MAX_DEPTH: deeper values are refused. */
#define BB_PICK_MAX_DEPTH 2048

typedef enum {
    BB_JV_ABSENT,
    BB_JV_NULL,
    BB_JV_BOOL,
    BB_JV_INT,
    BB_JV_REAL,
    BB_JV_STRING,
    BB_JV_OBJECT,
    BB_JV_ARRAY,
} bb_jv_type_t;

/* One JSON value. A string is s[0..len) (not NUL-terminated, borrowed). */
typedef struct {
    bb_jv_type_t type;
    bool b;
    long long i;
    double d;
    const char *s;
    size_t len;
} bb_jv_t;

/* A string as a fresh string: "" when absent or null, integers as their
 * decimal text; -1 for other types, a string longer than max or one with a
 * NUL inside. */
int bb_jv_str(const bb_jv_t *v, size_t max, char **out);
/* An integer in [min, max]: an integer, a decimal string of at most 20
 * digits, or a real with an integral value; -1 otherwise (absent too). */
int bb_jv_int(const bb_jv_t *v, long long min, long long max, long long *out);
/* A boolean; def when absent or null; -1 for other types. */
int bb_jv_bool(const bb_jv_t *v, bool def, bool *out);

/* The paths a decoder wants, as a tree: node 0 is the document; every
 * other node names its parent and either a member key (the parent is an
 * object) or NULL (every element of the parent array). */
typedef struct {
    int parent;
    const char *key;
} bb_pick_node_t;

typedef struct {
    const bb_pick_node_t *nodes;
    size_t n_nodes;
    /* Each value at a declared path, in document order: scalars with their
     * value, objects and arrays as BB_JV_OBJECT / BB_JV_ARRAY before their
     * members; a string is valid only during the call. -1 stops the walk. */
    int (*value)(void *ctx, int node, const bb_jv_t *v);
    /* After the members of an object or array at a declared path. */
    int (*close)(void *ctx, int node);
    void *ctx;
} bb_pick_t;

/* Walks body[0..len). 0: a JSON document, every declared value reported;
 * -1: not one (or empty), the events so far mean nothing; -2: a callback
 * returned -1. */
int bb_pick(const bb_pick_t *p, const char *body, size_t len);

#endif
