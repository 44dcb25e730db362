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

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static bool s_ready_value;

static bool s_ready(void *arg, char *status, size_t status_size)
{
    (void)arg;
    snprintf(status, status_size, "%s", s_ready_value ? "ok" : "database unreachable");
    return s_ready_value;
}

/* A health listener on a free loopback port, named in addr. */
static health_t *s_start(char *addr, size_t addr_size, int *port)
{
    log_set_level(LOG_LEVEL_ERROR);
    *port = test_free_port();
    assert_true(*port > 0);
    snprintf(addr, addr_size, "127.0.0.1:%d", *port);
    health_t *h = health_new(addr, "registry", s_ready, NULL);
    assert_non_null(h);
    return h;
}

static void test_probe_follows_readiness(void **state)
{
    (void)state;
    char addr[32];
    s_ready_value = false;
    int port;
    health_t *h = s_start(addr, sizeof addr, &port);
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

/* A connection from 127.0.0.2 (another client than the checks' 127.0.0.1)
 * that sends the start of a request and then nothing. */
static int s_trickler(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in from = {.sin_family = AF_INET}, to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.2", &from.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&from, sizeof from) < 0 ||
        connect(fd, (struct sockaddr *)&to, sizeof to) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    static const char start[] = "GET /readyz HTTP/1.1\r\nHost: x\r\n";
    (void)!send(fd, start, sizeof start - 1, MSG_NOSIGNAL);
    return fd;
}

/* Clients that trickle their headers once held both of civetweb's threads
 * for 5 s each: the container's health check failed and an orchestrator
 * restarted a healthy service. Now the gate holds them, one address may
 * hold HEALTH_MAX_PER_CLIENT connections, and the checks are answered. */
static void test_slow_clients_do_not_stop_the_checks(void **state)
{
    (void)state;
    char addr[32];
    s_ready_value = true;
    int port;
    health_t *h = s_start(addr, sizeof addr, &port);
    enum { N = HEALTH_MAX_PER_CLIENT + 8 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = s_trickler(port);
        assert_true(fds[i] >= 0);
    }
    usleep(200 * 1000);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(health_check(addr, "/healthz"), 0);
        assert_int_equal(health_check(addr, "/readyz"), 0);
    }
    /* The ones over the cap were refused at once, and counted. */
    char *text = metrics_render();
    assert_non_null(text);
    assert_non_null(strstr(text, "portico_http_gate_refused_total{listener=\"health\",reason=\"per_client\"} 8"));
    free(text);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    health_destroy(&h);
}

/* A name or a range listens on the one address of this machine it names
 * (compose's "web.bus:9090": the bus network alone), and the healthcheck
 * client finds it there. */
static void test_a_name_or_range_listens_on_this_machines_address(void **state)
{
    (void)state;
    log_set_level(LOG_LEVEL_ERROR);
    s_ready_value = true;
    const char *hosts[] = {"localhost", "127.0.0.0/8"};
    for (size_t i = 0; i < 2; i++) {
        char addr[64], direct[32];
        int port = test_free_port();
        assert_true(port > 0);
        snprintf(addr, sizeof addr, "%s:%d", hosts[i], port);
        snprintf(direct, sizeof direct, "127.0.0.1:%d", port);
        health_t *h = health_new(addr, "broker", s_ready, NULL);
        assert_non_null(h);
        assert_int_equal(health_check(addr, "/readyz"), 0);
        assert_int_equal(health_check(direct, "/readyz"), 0);
        health_destroy(&h);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_probe_follows_readiness),
                                       cmocka_unit_test(test_slow_clients_do_not_stop_the_checks),
                                       cmocka_unit_test(test_a_name_or_range_listens_on_this_machines_address)};
    return cmocka_run_group_tests_name("health", tests, NULL, NULL);
}
