/* tmpl: escaping is the default (element content and attributes), raw
 * output only for rendered templates, sections and lists, and every
 * mistake is an error with a name instead of an empty spot on the page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "web/tmpl.h"
#include <stdio.h>
#include <string.h>

static const tmpl_source_t k_sources[] = {
    {"attr", "{{!vars href label}}<a href=\"{{href}}\" title='{{label}}'>{{label}}</a>"},
    {"list", "{{!vars base repos name empty}}<ul>{{#repos}}<li><a href=\"{{base}}/r/{{name}}\">{{name}}</a></li>"
             "{{/repos}}</ul>{{^repos}}<p>{{empty}}</p>{{/repos}}"},
    {"flag", "{{!vars on off note}}{{#on}}A{{/on}}{{^on}}B{{/on}}{{#off}}C{{/off}}{{^off}}D{{/off}}"
             "{{#note}}[{{note}}]{{/note}}"},
    {"frame", "{{!vars body title}}<main>{{> head}}{{{body}}}</main>"},
    {"head", "{{!vars title}}<h1>{{title}}</h1>"},
    {"untrusted", "{{!vars who}}{{{who}}}"},
    {NULL, NULL},
};

static tmpl_lib_t *s_lib(void)
{
    char err[200] = "";
    tmpl_lib_t *lib = tmpl_lib_new(k_sources, err, sizeof err);
    if (!lib)
        fail_msg("%s", err);
    return lib;
}

/* What the engine prints for hostile text, in content and in both kinds
 * of quoted attribute. */
static void test_escapes_by_default(void **state)
{
    (void)state;
    tmpl_lib_t *lib = s_lib();
    tmpl_ctx_t *c = tmpl_ctx_new();
    tmpl_set(c, "href", "/x?a=1&b=\"><script>alert(1)</script>");
    tmpl_set(c, "label", "Tom's <script>alert('x')</script> & co");
    sbuf_t out;
    sbuf_init(&out);
    char err[200] = "";
    assert_int_equal(tmpl_render(lib, "attr", c, &out, err, sizeof err), 0);
    assert_string_equal(out.data, "<a href=\"/x?a=1&amp;b=&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\" "
                                  "title='Tom&#39;s &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co'>"
                                  "Tom&#39;s &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co</a>");
    assert_null(strstr(out.data, "<script"));
    sbuf_free(&out);
    tmpl_ctx_destroy(&c);
    tmpl_lib_destroy(&lib);
}

/* Plain text can never come out raw: {{{who}}} on a string is an error. */
static void test_raw_needs_a_rendered_template(void **state)
{
    (void)state;
    tmpl_lib_t *lib = s_lib();
    tmpl_ctx_t *c = tmpl_ctx_new();
    tmpl_set(c, "who", "<script>alert(1)</script>");
    sbuf_t out;
    sbuf_init(&out);
    char err[200] = "";
    assert_int_equal(tmpl_render(lib, "untrusted", c, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "who"));
    assert_true(out.len == 0 || !strstr(out.data, "<script"));

    /* A rendered template may be placed raw, and its own values were escaped. */
    tmpl_ctx_t *inner = tmpl_ctx_new();
    tmpl_set(inner, "title", "<b>");
    tmpl_ctx_t *frame = tmpl_ctx_new();
    assert_int_equal(tmpl_set_render(frame, "body", lib, "head", inner, err, sizeof err), 0);
    tmpl_set(frame, "title", "A & B");
    sbuf_reset(&out);
    assert_int_equal(tmpl_render(lib, "frame", frame, &out, err, sizeof err), 0);
    assert_string_equal(out.data, "<main><h1>A &amp; B</h1><h1>&lt;b&gt;</h1></main>");
    /* ... and a rendered template in an escaped tag is refused, not escaped twice. */
    tmpl_set_render(inner, "title", lib, "head", frame, err, sizeof err);
    sbuf_reset(&out);
    assert_int_equal(tmpl_render(lib, "head", inner, &out, err, sizeof err), -1);
    sbuf_free(&out);
    tmpl_ctx_destroy(&frame);
    tmpl_ctx_destroy(&inner);
    tmpl_ctx_destroy(&c);
    tmpl_lib_destroy(&lib);
}

static void test_sections_and_lists(void **state)
{
    (void)state;
    tmpl_lib_t *lib = s_lib();
    tmpl_ctx_t *c = tmpl_ctx_new();
    tmpl_set(c, "base", "/p");
    tmpl_set(c, "empty", "none");
    tmpl_set_list(c, "repos");
    sbuf_t out;
    sbuf_init(&out);
    char err[200] = "";
    assert_int_equal(tmpl_render(lib, "list", c, &out, err, sizeof err), 0);
    assert_string_equal(out.data, "<ul></ul><p>none</p>");
    tmpl_set(tmpl_add(c, "repos"), "name", "a\"b");
    tmpl_set(tmpl_add(c, "repos"), "name", "c");
    sbuf_reset(&out);
    assert_int_equal(tmpl_render(lib, "list", c, &out, err, sizeof err), 0);
    assert_string_equal(out.data, "<ul><li><a href=\"/p/r/a&quot;b\">a&quot;b</a></li>"
                                  "<li><a href=\"/p/r/c\">c</a></li></ul>");

    tmpl_ctx_t *f = tmpl_ctx_new();
    tmpl_set_bool(f, "on", true);
    tmpl_set_bool(f, "off", false);
    tmpl_set(f, "note", "");
    sbuf_reset(&out);
    assert_int_equal(tmpl_render(lib, "flag", f, &out, err, sizeof err), 0);
    assert_string_equal(out.data, "AD");
    tmpl_set(f, "note", "n<");
    sbuf_reset(&out);
    assert_int_equal(tmpl_render(lib, "flag", f, &out, err, sizeof err), 0);
    assert_string_equal(out.data, "AD[n&lt;]");
    sbuf_free(&out);
    tmpl_ctx_destroy(&f);
    tmpl_ctx_destroy(&c);
    tmpl_lib_destroy(&lib);
}

/* A misspelt name in a template stops the load (the web does not start);
 * a value the page forgot to set fails the render, naming it. */
static void test_unknown_variable_is_an_error(void **state)
{
    (void)state;
    char err[200] = "";
    const tmpl_source_t typo[] = {{"t", "{{!vars title}}<h1>{{titel}}</h1>"}, {NULL, NULL}};
    assert_null(tmpl_lib_new(typo, err, sizeof err));
    assert_non_null(strstr(err, "unknown variable titel"));

    const tmpl_source_t typo_section[] = {{"t", "{{!vars a}}{{#b}}x{{/b}}"}, {NULL, NULL}};
    assert_null(tmpl_lib_new(typo_section, err, sizeof err));
    assert_non_null(strstr(err, "unknown variable b"));

    const tmpl_source_t bad[][2] = {
        {{"t", "<h1>{{title}}</h1>"}, {NULL, NULL}},       /* no declaration */
        {{"t", "{{!vars a}}{{#a}}x"}, {NULL, NULL}},       /* not closed */
        {{"t", "{{!vars a}}{{/a}}"}, {NULL, NULL}},        /* closes nothing */
        {{"t", "{{!vars a}}{{a"}, {NULL, NULL}},           /* tag not closed */
        {{"t", "{{!vars a}}{{a b}}"}, {NULL, NULL}},       /* not a name */
        {{"t", "{{!vars a}}{{> missing}}"}, {NULL, NULL}}, /* unknown include */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_null(tmpl_lib_new(bad[i], err, sizeof err));
        assert_true(err[0] != '\0');
    }

    tmpl_lib_t *lib = s_lib();
    tmpl_ctx_t *c = tmpl_ctx_new();
    tmpl_set(c, "href", "/");
    sbuf_t out;
    sbuf_init(&out);
    assert_int_equal(tmpl_render(lib, "attr", c, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "no value for label"));
    assert_int_equal(tmpl_render(lib, "nope", c, &out, err, sizeof err), -1);
    sbuf_free(&out);
    tmpl_ctx_destroy(&c);
    tmpl_lib_destroy(&lib);
}

/* Every template the web is built with loads: the same check as at start. */
extern const tmpl_source_t web_templates[];
static void test_web_templates_load(void **state)
{
    (void)state;
    char err[300] = "";
    tmpl_lib_t *lib = tmpl_lib_new(web_templates, err, sizeof err);
    if (!lib)
        fail_msg("%s", err);
    assert_true(tmpl_lib_has(lib, "layout_top"));
    tmpl_lib_destroy(&lib);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escapes_by_default), cmocka_unit_test(test_raw_needs_a_rendered_template),
        cmocka_unit_test(test_sections_and_lists), cmocka_unit_test(test_unknown_variable_is_an_error),
        cmocka_unit_test(test_web_templates_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
