/* health: the HTTP probe of the non-web services and the healthcheck client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "free_port.h"
#include "health.h"
#include "log.h"
#include "metrics.h"

#include <stdio.h>
#include <string.h>

static bool s_ready_value;

static bool s_ready(void *arg, char *status, size_t status_size)
{
    (void)arg;
    snprintf(status, status_size, "%s", s_ready_value ? "ok" : "database unreachable");
    return s_ready_value;
}

static void test_probe_follows_readiness(void **state)
{
    (void)state;
    log_set_level(LOG_LEVEL_ERROR);
    char addr[32];
    int port = test_free_port();
    assert_true(port > 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    s_ready_value = false;
    health_t *h = health_new(addr, "registry", s_ready, NULL);
    assert_non_null(h);
    assert_int_equal(health_check(addr, "/healthz"), 0);
    assert_int_equal(health_check(addr, "/readyz"), 1);
    assert_int_equal(health_check_url(addr), 1);
    s_ready_value = true;
    assert_int_equal(health_check(addr, "/readyz"), 0);
    metrics_inc("t_health_total", NULL, 1);
    assert_int_equal(health_check(addr, "/metrics"), 0);
    assert_int_equal(health_check(addr, "/nope"), 1);
    /* A second server cannot take the same port. */
    health_t *again = health_new(addr, "registry", s_ready, NULL);
    assert_null(again);
    health_destroy(&h);
    assert_null(h);
    assert_int_equal(health_check(addr, "/healthz"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_probe_follows_readiness)};
    return cmocka_run_group_tests_name("health", tests, NULL, NULL);
}
