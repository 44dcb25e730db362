/* service: SIGTERM first makes a process "leaving" (readiness off, work
 * still taken) for the stop delay, then "stopping"; a second SIGTERM or
 * SIGINT stops at once. Each case runs in a child process: the signal
 * state is the process's own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "health.h"
#include "log.h"
#include "service.h"

#include "free_port.h"

#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs fn in a child; the child's exit status (0: every check held). */
static int s_in_child(int (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn());
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
        return 99;
    return WEXITSTATUS(st);
}

/* Polls cond for up to 10 s (a bound, not a speed). */
static bool s_within(bool (*cond)(void))
{
    for (int i = 0; i < 1000; i++) {
        if (cond())
            return true;
        usleep(10 * 1000);
    }
    return false;
}

static bool s_ready(void *arg, char *status, size_t status_size)
{
    (void)arg;
    snprintf(status, status_size, "ok");
    return true;
}

/* SIGTERM with a long delay: leaving, not stopping; the health endpoint
 * says not ready while still answering; a second SIGTERM stops. */
static int s_leave_then_second_term(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    service_install_signals();
    service_set_stop_delay_ms(60 * 1000);
    int port = test_free_port();
    if (port < 0)
        return 7;
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    if (service_health_start(addr, s_ready, NULL) < 0)
        return 1;
    if (service_leaving() || service_stopping() || health_check(addr, "/readyz") != 0)
        return 2;
    raise(SIGTERM);
    if (!service_leaving() || service_stopping())
        return 3;
    if (health_check(addr, "/readyz") != 1 || health_check(addr, "/healthz") != 0)
        return 4; /* not ready, but alive and answering */
    raise(SIGTERM);
    if (!service_stopping())
        return 5;
    service_health_stop();
    return health_check(addr, "/healthz") == 1 ? 0 : 6;
}

static int s_delay_ends(void)
{
    service_install_signals();
    service_set_stop_delay_ms(200);
    raise(SIGTERM);
    if (!service_leaving())
        return 1;
    return s_within(service_stopping) ? 0 : 2;
}

static int s_int_stops_at_once(void)
{
    service_install_signals();
    service_set_stop_delay_ms(60 * 1000);
    raise(SIGINT);
    return service_leaving() && service_stopping() ? 0 : 1;
}

static int s_no_delay_stops_at_once(void)
{
    service_install_signals();
    raise(SIGTERM);
    return service_leaving() && service_stopping() ? 0 : 1;
}

static void test_sigterm_leaves_first(void **state)
{
    (void)state;
    assert_int_equal(s_in_child(s_leave_then_second_term), 0);
}

static void test_stop_delay_ends(void **state)
{
    (void)state;
    assert_int_equal(s_in_child(s_delay_ends), 0);
}

static void test_sigint_stops_at_once(void **state)
{
    (void)state;
    assert_int_equal(s_in_child(s_int_stops_at_once), 0);
}

static void test_default_no_delay(void **state)
{
    (void)state;
    assert_int_equal(s_in_child(s_no_delay_stops_at_once), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigterm_leaves_first),
        cmocka_unit_test(test_stop_delay_ends),
        cmocka_unit_test(test_sigint_stops_at_once),
        cmocka_unit_test(test_default_no_delay),
    };
    return cmocka_run_group_tests_name("service", tests, NULL, NULL);
}
