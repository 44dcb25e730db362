#include "service.h"

#include "busauth.h"
#include "config.h"
#include "health.h"
#include "log.h"

#include <assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t s_stop;
static const char *s_name = "portico";

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

void service_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool service_stopping(void)
{
    return s_stop != 0;
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
    s_health = health_new(addr, s_name, ready, arg);
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
    busauth_init_or_die(def->name, def->bus_serves, def->bus_calls);
    int status = def->run();
    service_health_stop();
    return status;
}
