/* portico-broker: the OAuth protocol. Start as many as you like: each worker
 * thread connects to the web's queue and announces itself; nobody else is
 * reconfigured. */
#include "broker.h"
#include "bus_methods.h"

#include "access.h"

#include "log.h"
#include "service.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

broker_config_t broker_cfg;
static char s_instance[96];
static atomic_int s_ready_workers;

typedef struct {
    pthread_t thread;
    int index;
} thread_slot_t;

static void s_send_ctl(zsock_t *sock, const char *ctl)
{
    zmsg_t *m = zmsg_new();
    zmsg_addstr(m, ctl);
    zmsg_send(&m, sock);
    zmsg_destroy(&m);
}

/* Keep the web's queue informed while a long call is in progress. */
static void s_heartbeat(void *arg)
{
    zsock_t *sock = arg;
    static _Thread_local int64_t last;
    int64_t now = bus_now_ms();
    if (now - last >= BUS_HEARTBEAT_IVL_MS) {
        s_send_ctl(sock, BUS_WORKER_HEARTBEAT);
        last = now;
    }
}

static void *s_worker(void *arg)
{
    thread_slot_t *slot = arg;
    broker_worker_t w;
    memset(&w, 0, sizeof w);
    snprintf(w.holder, sizeof w.holder, "%s/%d", s_instance, slot->index);
    zsock_t *web = zsock_new(ZMQ_DEALER);
    w.registry = bus_client_new(broker_cfg.registry_endpoint, "registry");
    w.bitbucket = bus_client_new(broker_cfg.bitbucket_endpoint, "bitbucket");
    if (!web || !w.registry || !w.bitbucket) {
        log_error("could not create worker sockets", "worker=%d", slot->index);
        goto out;
    }
    bus_socket_tune(web);
    /* The web is the server here: its public key is what makes the
     * requests that arrive on this socket the web's. */
    if (busauth_client(web, "web", NULL) < 0)
        goto out;
    zsock_set_reconnect_ivl(web, 100);
    zsock_set_reconnect_ivl_max(web, 1000);
    if (zsock_connect(web, "%s", broker_cfg.web_endpoint) < 0) {
        log_error("could not connect to the web", "endpoint=%s", broker_cfg.web_endpoint);
        goto out;
    }
    bus_client_set_idle(w.registry, s_heartbeat, web);
    bus_client_set_idle(w.bitbucket, s_heartbeat, web);
    w.idle = s_heartbeat;
    w.idle_arg = web;

    char ready[160];
    snprintf(ready, sizeof ready, "%s %s", BUS_WORKER_READY, s_instance);
    s_send_ctl(web, ready);
    atomic_fetch_add(&s_ready_workers, 1);
    int64_t last_ctl = bus_now_ms();
    while (!service_stopping()) {
        zmq_pollitem_t item = {zsock_resolve(web), 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&item, 1, 250);
        if (rc < 0 && zmq_errno() != EINTR)
            break;
        int64_t now = bus_now_ms();
        if (item.revents & ZMQ_POLLIN) {
            zmsg_t *msg = zmsg_recv(web);
            if (msg) {
                bus_serve_as(web, &msg, broker_routes, &w, "web");
                now = bus_now_ms();
            }
        }
        /* An idle worker repeats READY as its heartbeat: a queue that knows
         * it counts it as alive, a web that restarted learns of it again. */
        if (now - last_ctl >= BUS_HEARTBEAT_IVL_MS) {
            s_send_ctl(web, ready);
            last_ctl = now;
        }
    }
    atomic_fetch_sub(&s_ready_workers, 1);
out:
    bus_client_destroy(&w.registry);
    bus_client_destroy(&w.bitbucket);
    zsock_destroy(&web);
    return NULL;
}

static bool s_ready(void *arg, char *status, size_t status_size)
{
    (void)arg;
    int n = atomic_load(&s_ready_workers);
    snprintf(status, status_size, "%d of %ld workers running", n, broker_cfg.workers);
    return n > 0;
}

static int s_load_config(config_error_t *err)
{
    return broker_config_load(&broker_cfg, err);
}

static const char *s_health_addr(void)
{
    return broker_cfg.health_addr;
}

static int s_run(void)
{
    broker_access_config();
    service_instance_name(s_instance, sizeof s_instance);
    bus_set_identity("broker", s_instance, s_ready, NULL);
    if (service_health_start(broker_cfg.health_addr, s_ready, NULL) < 0)
        return 1;
    thread_slot_t *slots = calloc((size_t)broker_cfg.workers, sizeof *slots);
    if (!slots)
        return 1;
    int started = 0;
    for (; started < broker_cfg.workers; started++) {
        slots[started].index = started;
        if (service_thread_start(&slots[started].thread, "worker", s_worker, &slots[started]) < 0)
            break;
    }
    int status = 0;
    if (started < broker_cfg.workers) {
        status = 1;
        service_request_stop();
    } else if (broker_access_start(s_instance) < 0) {
        log_error("could not start the access re-checks", NULL);
    }
    if (!status)
        log_info("broker started", "instance=%s workers=%ld web=%s", s_instance, broker_cfg.workers,
                 broker_cfg.web_endpoint);
    while (!service_stopping())
        usleep(100 * 1000);
    log_info("stopping", NULL);
    for (int i = 0; i < started; i++)
        pthread_join(slots[i].thread, NULL);
    broker_access_stop();
    free(slots);
    if (!status)
        log_info("stopped", NULL);
    return status;
}

int main(int argc, char **argv)
{
    static const service_def_t broker = {
        .name = "broker",
        .load_config = s_load_config,
        .health_addr = s_health_addr,
        .health_path = "/readyz",
        /* A client only: of the web (which hands it work), registry, bitbucket. */
        .bus_serves = 0,
        .bus_calls = BUS_WEB | BUS_REGISTRY | BUS_BITBUCKET,
        .run = s_run,
    };
    return service_main(&broker, argc, argv);
}
