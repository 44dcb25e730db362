#include "presence.h"

#include "bus_methods.h"
#include "web.h"

#include "log.h"
#include "service.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

static pthread_t s_thread;
static bool s_started;
static atomic_bool s_stop;
static char s_endpoint[1024];

static void s_report(bus_client_t *registry)
{
    Portico__Registry__InstanceReportRequest q = PORTICO__REGISTRY__INSTANCE_REPORT_REQUEST__INIT;
    char status[64];
    int workers = brokerq_workers(web_brokerq);
    snprintf(status, sizeof status, "%d broker workers connected", workers);
    q.instance = (char *)(uintptr_t)bus_instance();
    q.version = (char *)(uintptr_t)bus_version();
    q.ready = workers > 0;
    q.status = status;
    bus_error_t err = {0};
    if (registry_call_instance_report(registry, &q, NULL, 2000, &err) < 0)
        log_debug("could not report this web to the registry", "error=\"%s\"", err.message);
}

static void *s_run(void *arg)
{
    (void)arg;
    bus_client_t *registry = bus_client_new(s_endpoint, "registry");
    if (!registry)
        return NULL;
    int64_t next = 0;
    while (!atomic_load(&s_stop) && !service_stopping()) {
        int64_t now = bus_now_ms();
        if (now >= next) {
            s_report(registry);
            next = now + PRESENCE_INTERVAL_MS;
        }
        usleep(100 * 1000);
    }
    bus_client_destroy(&registry);
    return NULL;
}

int presence_start(const char *registry_endpoint)
{
    snprintf(s_endpoint, sizeof s_endpoint, "%s", registry_endpoint);
    atomic_store(&s_stop, false);
    s_started = pthread_create(&s_thread, NULL, s_run, NULL) == 0;
    return s_started ? 0 : -1;
}

void presence_stop(void)
{
    if (!s_started)
        return;
    atomic_store(&s_stop, true);
    pthread_join(s_thread, NULL);
    s_started = false;
}
