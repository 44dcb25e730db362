/* config, log, sbuf and metrics: the small common modules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "sbuf.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_config_values(void **state)
{
    (void)state;
    config_error_t err;
    long n;
    bool b;
    char s[64];
    unsetenv("PORTICO_T_INT");
    assert_int_equal(config_int("PORTICO_T_INT", 7, 1, 10, &n, &err), 0);
    assert_int_equal(n, 7);
    setenv("PORTICO_T_INT", "9", 1);
    assert_int_equal(config_int("PORTICO_T_INT", 7, 1, 10, &n, &err), 0);
    assert_int_equal(n, 9);
    setenv("PORTICO_T_INT", "11", 1);
    assert_int_equal(config_int("PORTICO_T_INT", 7, 1, 10, &n, &err), -1);
    assert_non_null(strstr(err.text, "PORTICO_T_INT"));
    assert_non_null(strstr(err.text, "from 1 to 10"));
    setenv("PORTICO_T_INT", "12abc", 1);
    assert_int_equal(config_int("PORTICO_T_INT", 7, 1, 10, &n, &err), -1);

    setenv("PORTICO_T_BOOL", "yes", 1);
    assert_int_equal(config_bool("PORTICO_T_BOOL", false, &b, &err), 0);
    assert_true(b);
    setenv("PORTICO_T_BOOL", "maybe", 1);
    assert_int_equal(config_bool("PORTICO_T_BOOL", false, &b, &err), -1);

    setenv("PORTICO_T_ADDR", "0.0.0.0:8080", 1);
    assert_int_equal(config_addr("PORTICO_T_ADDR", NULL, false, s, sizeof s, &err), 0);
    setenv("PORTICO_T_ADDR", "8080", 1);
    assert_int_equal(config_addr("PORTICO_T_ADDR", NULL, false, s, sizeof s, &err), -1);
    setenv("PORTICO_T_ADDR", "host:99999", 1);
    assert_int_equal(config_addr("PORTICO_T_ADDR", NULL, false, s, sizeof s, &err), -1);
    /* What civetweb would read as more than one listener, or a port with
     * a sign, a blank or a leading zero: refused. */
    const char *bad_addrs[] = {"127.0.0.1:28082,0.0.0.0:28099",
                               "127.0.0.1:+28082",
                               "127.0.0.1: 28082",
                               "127.0.0.1:09090",
                               "a b:80",
                               ":8080",
                               "[]:80",
                               "[::1]x:80",
                               "host:80s",
                               "10.0.0.0/33:80",
                               "10.0.0.0/24/8:80",
                               "web/24:80",
                               "host:"};
    for (size_t i = 0; i < sizeof bad_addrs / sizeof bad_addrs[0]; i++) {
        setenv("PORTICO_T_ADDR", bad_addrs[i], 1);
        if (config_addr("PORTICO_T_ADDR", NULL, false, s, sizeof s, &err) != -1)
            fail_msg("took %s", bad_addrs[i]);
    }
    const char *good_addrs[] = {"[::]:8080", "[::1]:80", "portico-web:8080", "web.bus_1:65535", "10.231.0.0/24:9090"};
    for (size_t i = 0; i < sizeof good_addrs / sizeof good_addrs[0]; i++) {
        setenv("PORTICO_T_ADDR", good_addrs[i], 1);
        if (config_addr("PORTICO_T_ADDR", NULL, false, s, sizeof s, &err) != 0)
            fail_msg("refused %s: %s", good_addrs[i], err.text);
    }

    setenv("PORTICO_T_EP", "udp://x", 1);
    assert_int_equal(config_endpoint("PORTICO_T_EP", NULL, s, sizeof s, &err), -1);
    /* What ZeroMQ would refuse only when it binds: named at start. */
    const char *bad_eps[] = {"tcp://127.0.0.1", "tcp://:5551",       "tcp://127.0.0.1:", "tcp://127.0.0.1:65536",
                             "tcp://[::1]",     "tcp://web.bus:55x", "ipc://",           "tcp://"};
    for (size_t i = 0; i < sizeof bad_eps / sizeof bad_eps[0]; i++) {
        setenv("PORTICO_T_EP", bad_eps[i], 1);
        if (config_endpoint("PORTICO_T_EP", NULL, s, sizeof s, &err) != -1)
            fail_msg("took %s", bad_eps[i]);
        assert_non_null(strstr(err.text, "PORTICO_T_EP"));
    }
    const char *good_eps[] = {"tcp://registry:5551", "tcp://*:5551",    "tcp://[::1]:5551",
                              "tcp://127.0.0.1:*",   "tcp://eth0:5551", "ipc:///run/portico/registry",
                              "inproc://registry"};
    for (size_t i = 0; i < sizeof good_eps / sizeof good_eps[0]; i++) {
        setenv("PORTICO_T_EP", good_eps[i], 1);
        if (config_endpoint("PORTICO_T_EP", NULL, s, sizeof s, &err) != 0)
            fail_msg("refused %s: %s", good_eps[i], err.text);
    }

    setenv("PORTICO_T_URL", "https://portico.example.com/", 1);
    assert_int_equal(config_url("PORTICO_T_URL", NULL, s, sizeof s, &err), 0);
    assert_string_equal(s, "https://portico.example.com");
    setenv("PORTICO_T_URL", "portico.example.com", 1);
    assert_int_equal(config_url("PORTICO_T_URL", NULL, s, sizeof s, &err), -1);
    assert_non_null(strstr(err.text, "PORTICO_T_URL"));

    setenv("PORTICO_T_STR", "0123456789", 1);
    assert_int_equal(config_string("PORTICO_T_STR", NULL, s, 5, &err), -1);
}

static void test_log_line(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    log_set_stream(f);
    assert_int_equal(log_init("web", "info"), 0);
    assert_int_equal(log_init("web", "loud"), -1);
    log_set_request_id("abc123");
    log_debug("hidden", NULL);
    log_info("login started", "integration=%d user=%s", 4, "evil\nlevel=error forged");
    log_set_request_id(NULL);
    fflush(f);
    log_set_stream(NULL);
    fclose(f);
    assert_null(strstr(buf, "hidden"));
    assert_non_null(strstr(buf, "level=info service=web req=abc123 msg=\"login started\" integration=4"));
    /* The newline in a value cannot start a second line. */
    assert_int_equal(strchr(buf, '\n') - buf, (long)strlen(buf) - 1);
    assert_true(strncmp(buf, "ts=", 3) == 0);
    free(buf);
    char q[32];
    assert_string_equal(log_quote("a \"b\"", q, sizeof q), "\"a \\\"b\\\"\"");
}

static void test_sbuf_grows(void **state)
{
    (void)state;
    sbuf_t s = {0};
    for (int i = 0; i < 1000; i++)
        sbuf_printf(&s, "%04d,", i);
    assert_int_equal(s.len, 5000);
    char *t = sbuf_take(&s);
    assert_int_equal(strncmp(t, "0000,0001,", 10), 0);
    assert_string_equal(t + 4995, "0999,");
    free(t);
}

static void test_sbuf_html(void **state)
{
    (void)state;
    sbuf_t b;
    sbuf_init(&b);
    sbuf_html(&b, "<script>alert('x' & \"y\")</script>");
    assert_string_equal(b.data, "&lt;script&gt;alert(&#39;x&#39; &amp; &quot;y&quot;)&lt;/script&gt;");
    sbuf_reset(&b);
    sbuf_printf(&b, "%d-%s", 42, "x");
    sbuf_urlenc(&b, " /é");
    assert_string_equal(b.data, "42-x%20%2F%C3%A9");
    sbuf_reset(&b);
    for (int i = 0; i < 10000; i++)
        sbuf_puts(&b, "0123456789");
    assert_int_equal(b.len, 100000);
    sbuf_free(&b);
}

static void test_metrics_render(void **state)
{
    (void)state;
    metrics_reset();
    metrics_help("t_requests_total", "counter", "Requests");
    metrics_inc("t_requests_total", "route=\"a\"", 1);
    metrics_inc("t_requests_total", "route=\"a\"", 2);
    metrics_inc("t_requests_total", "route=\"b\"", 1);
    metrics_set("t_gauge", NULL, 5);
    metrics_observe("t_seconds", "route=\"a\"", 0.003);
    metrics_observe("t_seconds", "route=\"a\"", 2.0);
    char *text = metrics_render();
    assert_non_null(strstr(text, "# HELP t_requests_total Requests\n# TYPE t_requests_total counter\n"));
    assert_non_null(strstr(text, "t_requests_total{route=\"a\"} 3\n"));
    assert_non_null(strstr(text, "t_requests_total{route=\"b\"} 1\n"));
    assert_non_null(strstr(text, "t_gauge 5\n"));
    assert_non_null(strstr(text, "t_seconds_bucket{route=\"a\",le=\"0.005\"} 1\n"));
    assert_non_null(strstr(text, "t_seconds_bucket{route=\"a\",le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(text, "t_seconds_count{route=\"a\"} 2\n"));
    free(text);
    char l[32];
    assert_string_equal(metrics_label("a\"b\nc", l, sizeof l), "a\\\"bc");
    metrics_reset();
}

/* A full table drops new series, and says so on /metrics (it was silent). */
static void test_metrics_full(void **state)
{
    (void)state;
    metrics_reset();
    log_set_level(LOG_LEVEL_ERROR);
    char labels[32];
    for (int i = 0; i < 1100; i++) {
        snprintf(labels, sizeof labels, "n=\"%d\"", i);
        metrics_inc("t_many_total", labels, 1);
    }
    metrics_inc("t_many_total", "n=\"5\"", 1);
    char *text = metrics_render();
    assert_non_null(strstr(text, "t_many_total{n=\"5\"} 2\n"));
    assert_null(strstr(text, "t_many_total{n=\"1099\"}"));
    assert_non_null(strstr(text, "\nportico_metrics_dropped_total 76\n"));
    free(text);
    metrics_reset();
    text = metrics_render();
    assert_non_null(strstr(text, "portico_metrics_dropped_total 0\n"));
    free(text);
}

#define RACERS 4
#define RACES 20000

static void *s_race(void *arg)
{
    (void)arg;
    char labels[32];
    for (int i = 0; i < RACES; i++) {
        snprintf(labels, sizeof labels, "n=\"%d\"", i % 8);
        metrics_inc("t_race_total", labels, 1);
        metrics_observe("t_race_seconds", NULL, (i % 3) ? 0.002 : 20.0);
    }
    return NULL;
}

/* Many threads creating and updating the same series: nothing is lost,
 * and each series exists once. */
static void test_metrics_threads(void **state)
{
    (void)state;
    metrics_reset();
    pthread_t t[RACERS];
    for (int i = 0; i < RACERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, s_race, NULL), 0);
    for (int i = 0; i < RACERS; i++)
        pthread_join(t[i], NULL);
    char *text = metrics_render();
    char line[96];
    for (int n = 0; n < 8; n++) {
        snprintf(line, sizeof line, "t_race_total{n=\"%d\"} %d\n", n, RACERS * RACES / 8);
        assert_non_null(strstr(text, line));
        snprintf(line, sizeof line, "t_race_total{n=\"%d\"}", n);
        int seen = 0;
        for (const char *p = strstr(text, line); p; p = strstr(p + 1, line))
            seen++;
        assert_int_equal(seen, 1);
    }
    long slow = 0;
    for (int i = 0; i < RACES; i++)
        slow += (i % 3) == 0;
    snprintf(line, sizeof line, "t_race_seconds_bucket{le=\"0.0025\"} %ld\n", RACERS * (RACES - slow));
    assert_non_null(strstr(text, line));
    snprintf(line, sizeof line, "t_race_seconds_bucket{le=\"10\"} %ld\n", RACERS * (RACES - slow));
    assert_non_null(strstr(text, line));
    snprintf(line, sizeof line, "t_race_seconds_count %d\n", RACERS * RACES);
    assert_non_null(strstr(text, line));
    free(text);
    /* Names and labels longer than a series keeps still find their series. */
    char long_labels[400];
    memset(long_labels, 'x', sizeof long_labels - 1);
    long_labels[sizeof long_labels - 1] = '\0';
    for (int i = 0; i < 3; i++)
        metrics_inc("t_long_total", long_labels, 1);
    text = metrics_render();
    assert_non_null(strstr(text, "} 3\n"));
    free(text);
    metrics_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_values),  cmocka_unit_test(test_log_line),
        cmocka_unit_test(test_sbuf_html),      cmocka_unit_test(test_sbuf_grows),
        cmocka_unit_test(test_metrics_render), cmocka_unit_test(test_metrics_threads),
        cmocka_unit_test(test_metrics_full),
    };
    return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
