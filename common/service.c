#include "service.h"

#include "busauth.h"
#include "config.h"
#include "health.h"
#include "log.h"

#include <assert.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t s_stop;
static volatile sig_atomic_t s_reload;
/* When SIGTERM came (monotonic ms, 0: not yet) and how long to keep
 * serving after it. Lock-free atomics: written in the signal handler. */
static _Atomic int64_t s_leave_ms;
static _Atomic long s_delay_ms;

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* async-signal-safe */
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_on_hup(int sig)
{
    (void)sig;
    s_reload = 1;
}
static const char *s_name = "portico";

static void s_on_signal(int sig)
{
    /* Ctrl-C, a second SIGTERM, or no delay asked for: stop now. */
    if (sig == SIGINT || atomic_load(&s_leave_ms) || atomic_load(&s_delay_ms) <= 0) {
        s_stop = 1;
        if (!atomic_load(&s_leave_ms))
            atomic_store(&s_leave_ms, s_mono_ms());
        return;
    }
    atomic_store(&s_leave_ms, s_mono_ms());
}

void service_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = s_on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool service_take_reload(void)
{
    if (!s_reload)
        return false;
    s_reload = 0;
    return true;
}

void service_set_stop_delay_ms(long ms)
{
    atomic_store(&s_delay_ms, ms);
}

bool service_leaving(void)
{
    return s_stop || atomic_load(&s_leave_ms) != 0;
}

bool service_stopping(void)
{
    if (s_stop)
        return true;
    int64_t leave = atomic_load(&s_leave_ms);
    if (!leave || s_mono_ms() - leave < atomic_load(&s_delay_ms))
        return false;
    s_stop = 1;
    return true;
}

void service_request_stop(void)
{
    s_stop = 1;
}

void service_instance_name(char *out, size_t out_size)
{
    char host[64] = "host";
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    snprintf(out, out_size, "%s-%d", host, (int)getpid());
}

void service_init_logging(const char *service)
{
    char level[16];
    config_string_or_die("PORTICO_LOG_LEVEL", "info", level, sizeof level);
    if (log_init(service, level) < 0) {
        fprintf(stderr,
                "portico: configuration error: PORTICO_LOG_LEVEL: must be debug, info, warn or error (got \"%s\")\n",
                level);
        exit(2);
    }
}

int service_thread_start(pthread_t *thread, const char *what, void *(*fn)(void *), void *arg)
{
    int rc = pthread_create(thread, NULL, fn, arg);
    if (rc != 0) {
        log_error("could not start a thread", "thread=%s error=\"%s\"", what, strerror(rc));
        return -1;
    }
    return 0;
}

/* ---- the health endpoint ---- */

static health_t *s_health;
static pthread_t s_health_closer;
static bool s_health_closing;
static bus_ready_fn s_ready;
static void *s_ready_arg;

/* Not ready once leaving, so that orchestrators and load balancers stop
 * sending work here while it is still being served. */
static bool s_ready_unless_leaving(void *arg, char *status, size_t status_size)
{
    (void)arg;
    if (service_leaving()) {
        snprintf(status, status_size, "stopping");
        return false;
    }
    return s_ready ? s_ready(s_ready_arg, status, status_size) : true;
}

/* Waits for the stop, then closes the endpoint on the side. */
static void *s_close_health(void *arg)
{
    (void)arg;
    while (!service_stopping())
        usleep(50 * 1000);
    health_destroy(&s_health);
    return NULL;
}

int service_health_start(const char *addr, bus_ready_fn ready, void *arg)
{
    assert(!s_health);
    const char *colon = strrchr(addr, ':');
    if (colon && !strcmp(colon, ":0"))
        return 0;
    s_ready = ready;
    s_ready_arg = arg;
    s_health = health_new(addr, s_name, s_ready_unless_leaving, NULL);
    if (!s_health)
        return -1;
    if (service_thread_start(&s_health_closer, "health-closer", s_close_health, NULL) < 0) {
        health_destroy(&s_health);
        return -1;
    }
    s_health_closing = true;
    return 0;
}

void service_health_stop(void)
{
    if (!s_health_closing)
        return;
    service_request_stop();
    pthread_join(s_health_closer, NULL);
    s_health_closing = false;
}

bool service_health_closed(void)
{
    if (s_health_closing && pthread_tryjoin_np(s_health_closer, NULL) == 0)
        s_health_closing = false;
    return !s_health_closing;
}

/* ---- the start-up ---- */

static void s_usage(const service_def_t *def)
{
    if (def->usage)
        def->usage();
    else
        fprintf(stderr, "usage: portico-%s [healthcheck [path]]\n", def->name);
}

int service_main(const service_def_t *def, int argc, char **argv)
{
    s_name = def->name;
    service_init_logging(def->name);
    const char *cmd = argc >= 2 ? argv[1] : NULL;
    if (cmd && !strcmp(cmd, "bus-keygen"))
        return busauth_keygen_main(def->name, argc, argv);
    if (cmd && (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h"))) {
        s_usage(def);
        return 0;
    }
    config_error_t err;
    if (def->load_config(&err) < 0)
        config_die(&err);
    service_set_stop_delay_ms(1000 * config_int_or_die("PORTICO_STOP_DELAY_SECONDS", 0, 0, SERVICE_STOP_DELAY_MAX_S));
    if (cmd && !strcmp(cmd, "healthcheck"))
        return health_check(def->health_addr(), argc > 2 ? argv[2] : def->health_path);
    if (cmd && strcmp(cmd, "serve")) {
        if (def->command && def->is_command && def->is_command(cmd))
            return def->command(argc - 1, argv + 1);
        fprintf(stderr, "portico-%s: unknown command \"%s\"\n", def->name, cmd);
        s_usage(def);
        return 2;
    }
    service_install_signals();
    bus_init();
    bus_set_stopping_check(service_stopping);
    busauth_init_or_die(def->name, def->bus_serves, def->bus_calls);
    int status = def->run();
    service_health_stop();
    /* A stop asked while it waited to start is no failure: a restart
     * policy "on-failure" would otherwise start it again. */
    if (status != 0 && bus_stopped_waiting()) {
        log_info("stopped before it had started", NULL);
        status = 0;
    }
    return status;
}
