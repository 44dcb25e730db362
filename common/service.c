#include "service.h"

#include "config.h"
#include "log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t s_stop;
static volatile sig_atomic_t s_reload;

static void s_on_hup(int sig)
{
    (void)sig;
    s_reload = 1;
}

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
