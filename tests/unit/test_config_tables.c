/* Every service's configuration table: a bad value of any variable it
 * lists makes its load fail with a message naming that variable, and the
 * defaults load. The checks that span variables are tried too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bitbucket/bb_config.h"
#include "broker/broker.h"
#include "registry/options.h"
#include "web/web.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *service;
    const config_var_t *vars;
    int (*load)(config_error_t *err);
} table_t;

static bb_config_t s_bb;
static broker_config_t s_broker;
static reg_options_t s_reg;
static web_config_t s_web;

static int s_load_bb(config_error_t *err)
{
    return bb_config_load(&s_bb, err);
}

static int s_load_broker(config_error_t *err)
{
    return broker_config_load(&s_broker, err);
}

static int s_load_registry(config_error_t *err)
{
    return reg_options_load(&s_reg, err);
}

static int s_load_web(config_error_t *err)
{
    int rc = web_config_load(&s_web, err);
    netaddr_list_free(&s_web.trusted_proxies);
    return rc;
}

static const table_t s_tables[] = {
    {"bitbucket", bb_config_vars, s_load_bb},
    {"broker", broker_config_vars, s_load_broker},
    {"registry", reg_options_vars, s_load_registry},
    {"web", web_config_vars, s_load_web},
};

/* The one variable without a default. */
static void s_clean_env(void)
{
    for (size_t t = 0; t < sizeof s_tables / sizeof s_tables[0]; t++)
        for (const config_var_t *v = s_tables[t].vars; v->name; v++)
            unsetenv(v->name);
    setenv("PORTICO_DATABASE_URL", "postgresql://portico@db/portico", 1);
}

/* A value the kind never accepts; for strings, one longer than the field. */
static char *s_bad_value(const config_var_t *v)
{
    switch (v->kind) {
    case CONFIG_INT:
        return strdup("12x");
    case CONFIG_BOOL:
        return strdup("perhaps");
    case CONFIG_ADDR:
    case CONFIG_ADDR_OR_ZERO:
        return strdup("no-port-here");
    case CONFIG_ENDPOINT:
    case CONFIG_ENDPOINTS:
        return strdup("udp://127.0.0.1:1");
    case CONFIG_URL:
        return strdup("ftp://example.com");
    case CONFIG_STRING: {
        char *s = malloc(v->size + 1);
        memset(s, 'a', v->size);
        s[v->size] = '\0';
        return s;
    }
    }
    return NULL;
}

static void test_defaults_load(void **state)
{
    (void)state;
    s_clean_env();
    for (size_t t = 0; t < sizeof s_tables / sizeof s_tables[0]; t++) {
        config_error_t err = {{0}};
        if (s_tables[t].load(&err) != 0)
            fail_msg("%s: the defaults do not load: %s", s_tables[t].service, err.text);
    }
}

static void test_every_bad_value_is_named(void **state)
{
    (void)state;
    int checked = 0;
    for (size_t t = 0; t < sizeof s_tables / sizeof s_tables[0]; t++) {
        for (const config_var_t *v = s_tables[t].vars; v->name; v++) {
            s_clean_env();
            char *bad = s_bad_value(v);
            assert_non_null(bad);
            setenv(v->name, bad, 1);
            config_error_t err = {{0}};
            int rc = s_tables[t].load(&err);
            if (rc != -1 || strncmp(err.text, v->name, strlen(v->name)) || err.text[strlen(v->name)] != ':')
                fail_msg("%s: %s=\"%.20s...\" gave %d \"%s\"", s_tables[t].service, v->name, bad, rc, err.text);
            free(bad);
            checked++;
        }
    }
    assert_true(checked > 40);
    s_clean_env();
}

/* Values out of range name the variable too (not only unreadable ones). */
static void test_out_of_range(void **state)
{
    (void)state;
    for (size_t t = 0; t < sizeof s_tables / sizeof s_tables[0]; t++) {
        for (const config_var_t *v = s_tables[t].vars; v->name; v++) {
            if (v->kind != CONFIG_INT)
                continue;
            s_clean_env();
            char value[32];
            snprintf(value, sizeof value, "%ld", v->max + 1);
            setenv(v->name, value, 1);
            config_error_t err = {{0}};
            assert_int_equal(s_tables[t].load(&err), -1);
            assert_non_null(strstr(err.text, v->name));
        }
    }
    s_clean_env();
}

static void s_expect_named(int (*load)(config_error_t *), const char *name)
{
    config_error_t err = {{0}};
    assert_int_equal(load(&err), -1);
    if (strncmp(err.text, name, strlen(name)))
        fail_msg("expected an error naming %s, got \"%s\"", name, err.text);
}

/* A number several services read means one thing: the same default and
 * range everywhere, or one setting in a shared environment starts one
 * service and stops another. */
static void test_shared_numbers_agree(void **state)
{
    (void)state;
    int shared = 0;
    size_t n = sizeof s_tables / sizeof s_tables[0];
    for (size_t t = 0; t < n; t++) {
        for (const config_var_t *v = s_tables[t].vars; v->name; v++) {
            if (v->kind != CONFIG_INT)
                continue;
            for (size_t u = t + 1; u < n; u++) {
                for (const config_var_t *w = s_tables[u].vars; w->name; w++) {
                    if (strcmp(v->name, w->name))
                        continue;
                    shared++;
                    if (w->kind != CONFIG_INT || v->idef != w->idef || v->min != w->min || v->max != w->max ||
                        v->scale != w->scale)
                        fail_msg("%s: %s reads %ld in %ld..%ld, %s reads %ld in %ld..%ld", v->name,
                                 s_tables[t].service, v->idef, v->min, v->max, s_tables[u].service, w->idef, w->min,
                                 w->max);
                }
            }
        }
    }
    assert_true(shared > 0);
}

static void test_checks_across_variables(void **state)
{
    (void)state;
    s_clean_env();
    setenv("PORTICO_HTTP_ADDR", "0.0.0.0:8080", 1);
    setenv("PORTICO_OPS_ADDR", "127.0.0.1:8080", 1);
    s_expect_named(s_load_web, "PORTICO_OPS_ADDR");
    s_clean_env();
    setenv("PORTICO_TRUSTED_PROXIES", "10.0.0.0/99", 1);
    s_expect_named(s_load_web, "PORTICO_TRUSTED_PROXIES");
    s_clean_env();
    unsetenv("PORTICO_DATABASE_URL");
    s_expect_named(s_load_registry, "PORTICO_DATABASE_URL");
    /* Neither a URI nor key=value pairs: libpq would take it for a
     * database name. */
    static const char *const bad_urls[] = {"db.example.com", "postgres:/x", "host=db port"};
    for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) {
        s_clean_env();
        setenv("PORTICO_DATABASE_URL", bad_urls[i], 1);
        s_expect_named(s_load_registry, "PORTICO_DATABASE_URL");
    }
    s_clean_env();
    setenv("PORTICO_DATABASE_URL", "host=/run/pg dbname=portico", 1);
    config_error_t ok = {{0}};
    assert_int_equal(s_load_registry(&ok), 0);
    s_clean_env();
    setenv("PORTICO_SETUP_TOKEN_FILE", "relative/path", 1);
    s_expect_named(s_load_registry, "PORTICO_SETUP_TOKEN_FILE");
    s_clean_env();
    setenv("PORTICO_SETUP_TOKEN", "short", 1);
    s_expect_named(s_load_registry, "PORTICO_SETUP_TOKEN");
    s_clean_env();
    setenv("PORTICO_BITBUCKET_ALLOW", "10.0.0.0/99", 1);
    s_expect_named(s_load_bb, "PORTICO_BITBUCKET_ALLOW");
    s_clean_env();
}

/* Units: the web keeps minutes and seconds as seconds and milliseconds. */
static void test_scaled_values(void **state)
{
    (void)state;
    s_clean_env();
    setenv("PORTICO_SESSION_IDLE_MINUTES", "2", 1);
    setenv("PORTICO_SESSION_CACHE_SECONDS", "3", 1);
    setenv("PORTICO_LOGIN_TTL_SECONDS", "45", 1);
    config_error_t err = {{0}};
    assert_int_equal(s_load_web(&err), 0);
    assert_int_equal(s_web.session_idle_s, 120);
    assert_int_equal(s_web.session_cache_ms, 3000);
    assert_int_equal(s_web.login_ttl_s, 45);
    setenv("PORTICO_REGISTRY_WORKERS", "3", 1);
    assert_int_equal(s_load_registry(&err), 0);
    assert_int_equal(s_reg.workers, 3);
    s_clean_env();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_load), cmocka_unit_test(test_every_bad_value_is_named),
        cmocka_unit_test(test_out_of_range),  cmocka_unit_test(test_checks_across_variables),
        cmocka_unit_test(test_scaled_values),
        cmocka_unit_test(test_shared_numbers_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
