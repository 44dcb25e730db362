/* portico-broker: the OAuth protocol. Start as many as you like: each worker
 * thread connects to the web's queue and announces itself; nobody else is
 * reconfigured. */
#include "broker.h"
#include "bus_methods.h"

#include "access.h"
#include "crypto.h"

#include "endpoints.h"
#include "log.h"
#include "service.h"
#include "zfd.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_instance[96];
/* What names this process in token leases: its instance name and a random
 * tag. Host name and process id alone are the same for two containers with
 * host networking (each is process 1), and two workers that take one
 * holder for theirs both hold the lease. */
static char s_holder[128];
static atomic_int s_ready_workers;

typedef struct {
    pthread_t thread;
    int index;
} thread_slot_t;

/* How long a stopping worker keeps answering after its links went quiet. */
#define DRAIN_QUIET_MS 500
#define WEB_KEYS BUS_SERVER_KEYS

/* One link per web instance: each web runs its own queue, so a worker
 * announces itself to every one and answers a request on the socket it
 * came from. A link has a socket per public key the web may have: only the
 * one whose key the web holds completes its handshake. */
typedef struct {
    zsock_t *socks[WEB_KEYS];
    char keys[WEB_KEYS][41]; /* the web's public key of each */
    bool up[WEB_KEYS];       /* handshake done when last looked at */
    bool look[WEB_KEYS];     /* used since last looked at: its ZMQ_FD may say nothing */
    int nsocks;
    char endpoint[ENDPOINTS_LEN];
    int64_t retire_at; /* 0, or when a web gone from DNS is let go */
} web_link_t;

/* A web leaves DNS before it stops (Swarm removes a task's name first, and
 * the web then serves on for PORTICO_STOP_DELAY_SECONDS while the load
 * balancer moves away): closing the link at once would leave it with no
 * workers for the logins still coming in, and drop the requests already
 * on their way here. So a link whose address left DNS is kept this long
 * (longer than any web's stop delay and drain), or until the address is
 * back. */
#define WEB_LINK_GRACE_MS 30000

/* Control frames never wait: a link whose handshake has not succeeded
 * (ZMQ_IMMEDIATE) takes none, and the next heartbeat tries again. */
static void s_send_ctl(web_link_t *l, int s, const char *ctl)
{
    zmq_send(zsock_resolve(l->socks[s]), ctl, strlen(ctl), ZMQ_DONTWAIT);
    l->look[s] = true;
}

typedef struct {
    web_link_t links[ENDPOINTS_MAX];
    int n;
    bus_keyset_t keys; /* the web's public keys */
    const char *ready; /* the READY frame to announce with (NULL: stopping) */
    zsock_t *serving;  /* the socket of the request in progress */
    broker_worker_t *worker;
} web_links_t;

/* Keep every web's queue informed while a long call runs, not only the
 * one whose request is in progress: another web may already have handed
 * this worker a request (it waits on its link until this one is done),
 * and a web that heard nothing for BUS_HEARTBEAT_TIMEOUT_MS drops the
 * worker and fails that request, although it is about to be answered
 * (seen during the three-node test's rolling update). */
static void s_heartbeat(void *arg)
{
    web_links_t *webs = arg;
    static _Thread_local int64_t last;
    int64_t now = bus_now_ms();
    if (webs->serving && now - last >= BUS_HEARTBEAT_IVL_MS) {
        for (int i = 0; i < webs->n; i++)
            for (int s = 0; s < webs->links[i].nsocks; s++)
                s_send_ctl(&webs->links[i], s, BUS_WORKER_HEARTBEAT);
        last = now;
    }
}

static void s_serve(web_links_t *webs, web_link_t *l, int s, zmsg_t **msg_p)
{
    webs->serving = l->socks[s];
    bus_serve_as(l->socks[s], msg_p, broker_routes, webs->worker, "web");
    webs->serving = NULL;
    l->look[s] = true;
}

static int s_link_add_key(web_link_t *l, const char *key)
{
    if (l->nsocks >= WEB_KEYS)
        return -1;
    /* The web is the server here: its public key is what makes the
     * requests that arrive on this socket the web's. */
    zsock_t *sock = bus_socket_connect(l->endpoint, "web", key[0] ? key : NULL, NULL);
    if (!sock)
        return -1;
    /* An answer for a web that has just gone is dropped, not waited on. */
    zsock_set_sndtimeo(sock, 0);
    l->socks[l->nsocks] = sock;
    snprintf(l->keys[l->nsocks], sizeof l->keys[0], "%s", key);
    l->up[l->nsocks] = false;
    l->look[l->nsocks] = true; /* a first message signals nothing */
    l->nsocks++;
    return 0;
}

/* Close l's socket with key: tell the web to send nothing more on it and
 * answer what it already sent. */
static void s_link_close(web_links_t *webs, web_link_t *l, const char *key)
{
    int i = 0;
    while (i < l->nsocks && strcmp(l->keys[i], key) != 0)
        i++;
    if (i == l->nsocks)
        return;
    s_send_ctl(l, i, BUS_WORKER_BYE);
    zmsg_t *msg;
    while ((zsock_events(l->socks[i]) & ZMQ_POLLIN) && (msg = zmsg_recv(l->socks[i])) != NULL)
        s_serve(webs, l, i, &msg);
    zsock_destroy(&l->socks[i]);
    l->nsocks--;
    l->socks[i] = l->socks[l->nsocks];
    l->up[i] = l->up[l->nsocks];
    l->look[i] = l->look[l->nsocks];
    memcpy(l->keys[i], l->keys[l->nsocks], sizeof l->keys[0]);
}

static void s_web_change(void *arg, const char *endpoint, bool added)
{
    web_links_t *webs = arg;
    for (int i = 0; i < webs->n; i++)
        if (!strcmp(webs->links[i].endpoint, endpoint)) {
            if (!added && !webs->links[i].retire_at)
                webs->links[i].retire_at = bus_now_ms() + WEB_LINK_GRACE_MS;
            else if (added)
                webs->links[i].retire_at = 0; /* back before it was let go */
            return;
        }
    if (!added)
        return;
    if (webs->n >= ENDPOINTS_MAX)
        return;
    web_link_t *l = &webs->links[webs->n];
    memset(l, 0, sizeof *l);
    snprintf(l->endpoint, sizeof l->endpoint, "%s", endpoint);
    for (int k = 0; k < webs->keys.n; k++)
        if (s_link_add_key(l, webs->keys.keys[k]) < 0) {
            log_error("could not connect to the web", "endpoint=%s", endpoint);
            while (l->nsocks > 0)
                zsock_destroy(&l->socks[--l->nsocks]);
            return;
        }
    webs->n++;
}

/* Close the links of webs gone from DNS for WEB_LINK_GRACE_MS. */
static void s_web_retire(web_links_t *webs, int64_t now)
{
    for (int i = 0; i < webs->n;) {
        web_link_t *l = &webs->links[i];
        if (l->retire_at && now >= l->retire_at) {
            while (l->nsocks > 0)
                zsock_destroy(&l->socks[--l->nsocks]);
            *l = webs->links[--webs->n];
        } else {
            i++;
        }
    }
}

/* The web's public keys in the keys folder, followed as bus clients follow
 * their servers': a socket per web for a key that came, none for one that
 * went. Between requests only. */
static void s_web_key_change(void *arg, const char *key, bool added)
{
    web_links_t *webs = arg;
    for (int i = 0; i < webs->n; i++)
        if (added)
            s_link_add_key(&webs->links[i], key);
        else
            s_link_close(webs, &webs->links[i], key);
}

/* Look at l's socket s (ZMQ_EVENTS): say READY when its handshake has
 * just succeeded (a web that started, or took a new key), or when beat;
 * and serve one request waiting on it. 1 when it served one, else 0. */
static int s_look(web_links_t *webs, web_link_t *l, int s, bool beat)
{
    int events = zsock_events(l->socks[s]);
    bool up = (events & ZMQ_POLLOUT) != 0;
    if (up && (beat || !l->up[s]) && webs->ready) {
        s_send_ctl(l, s, webs->ready);
        /* The send may have taken the signal of a request just come. */
        events = zsock_events(l->socks[s]);
    }
    l->look[s] = false;
    l->up[s] = up;
    zmsg_t *msg = (events & ZMQ_POLLIN) ? zmsg_recv(l->socks[s]) : NULL;
    if (!msg)
        return 0;
    s_serve(webs, l, s, &msg);
    return 1;
}

/* Look at the sockets that need it: those used since they were last
 * looked at (their ZMQ_FD signal may be gone), those that signalled
 * (woke), and every one when beat or idle (a wait that ended with
 * nothing: a web that restarted, or a handshake that succeeded). The
 * number of requests served. */
static int s_look_all(web_links_t *webs, const bool *woke, bool idle, bool beat)
{
    int served = 0, k = 0;
    for (int i = 0; i < webs->n; i++) {
        web_link_t *l = &webs->links[i];
        for (int s = 0; s < l->nsocks; s++, k++)
            if (beat || idle || l->look[s] || (woke && woke[k]))
                served += s_look(webs, l, s, beat);
    }
    return served;
}

/* The only socket, and up: wait up to ms inside libzmq's own receive
 * (ZMQ_RCVTIMEO), which takes a request already there without a system
 * call and otherwise sleeps on the socket's command mailbox; look at it
 * when nothing came. */
static int s_recv_serve(web_links_t *webs, web_link_t *l, int s, long ms)
{
    zsock_set_rcvtimeo(l->socks[s], (int)ms);
    zmsg_t *msg = zmsg_recv(l->socks[s]);
    if (!msg)
        return s_look(webs, l, s, false);
    s_serve(webs, l, s, &msg);
    return 1;
}

/* Serve a request waiting on a link, or wait up to ms for one and serve
 * it; the number of requests served, -1 on error. Several sockets are
 * waited on through their ZMQ_FDs (zfd.h), one in its receive: zmq_poll
 * would ask ZMQ_EVENTS of every one before and after each wait, two
 * system calls each time. Every socket is looked at when beat (READY is
 * the idle worker's heartbeat). */
static int s_poll_serve(web_links_t *webs, bool beat, long ms)
{
    zsock_t *socks[ENDPOINTS_MAX * WEB_KEYS];
    bool woke[ENDPOINTS_MAX * WEB_KEYS];
    int n = 0;
    for (int i = 0; i < webs->n; i++)
        for (int s = 0; s < webs->links[i].nsocks; s++)
            socks[n++] = webs->links[i].socks[s];
    if (n == 1 && !beat && webs->links[0].up[0])
        return s_recv_serve(webs, &webs->links[0], 0, ms);
    int served = s_look_all(webs, NULL, false, beat);
    if (served > 0)
        return served;
    int rc = zfd_wait(socks, n, woke, (int)ms);
    if (rc < 0)
        return -1;
    return s_look_all(webs, woke, rc == 0, false);
}

static void *s_worker(void *arg)
{
    thread_slot_t *slot = arg;
    broker_worker_t w;
    memset(&w, 0, sizeof w);
    web_links_t *webs = calloc(1, sizeof *webs);
    snprintf(w.holder, sizeof w.holder, "%s/%d", s_holder, slot->index);
    char ready[160];
    snprintf(ready, sizeof ready, "%s %s", BUS_WORKER_READY, s_instance);
    endpoints_t *web_eps = endpoints_new(broker_cfg.web_endpoint, NULL);
    w.registry = bus_client_new(broker_cfg.registry_endpoint, "registry");
    w.bitbucket = bus_client_new(broker_cfg.bitbucket_endpoint, "bitbucket");
    if (!webs || !web_eps || !w.registry || !w.bitbucket) {
        log_error("could not create worker sockets", "worker=%d", slot->index);
        goto out;
    }
    webs->ready = ready;
    webs->worker = &w;
    bus_keyset_init(&webs->keys, "web", true);
    endpoints_refresh(web_eps, bus_now_ms(), true, s_web_change, webs);
    bus_client_set_idle(w.registry, s_heartbeat, webs);
    bus_client_set_idle(w.bitbucket, s_heartbeat, webs);
    w.idle = s_heartbeat;
    w.idle_arg = webs;

    atomic_fetch_add(&s_ready_workers, 1);
    int64_t last_ctl = bus_now_ms();
    while (!service_stopping()) {
        int64_t now = bus_now_ms();
        endpoints_refresh(web_eps, now, false, s_web_change, webs);
        s_web_retire(webs, now);
        bus_keyset_follow(&webs->keys, s_web_key_change, webs);
        /* An idle worker repeats READY as its heartbeat: a queue that knows
         * it counts it as alive, a web that restarted learns of it again. */
        bool beat = now - last_ctl >= BUS_HEARTBEAT_IVL_MS;
        if (beat)
            last_ctl = now;
        if (s_poll_serve(webs, beat, 250) < 0)
            break;
    }
    atomic_fetch_sub(&s_ready_workers, 1);
    /* Stopping: tell every web to send nothing more, then answer what was
     * already on its way (a request a web handed over just before it read
     * the goodbye), until the links have been quiet for a moment. */
    webs->ready = NULL;
    for (int i = 0; i < webs->n; i++)
        for (int s = 0; s < webs->links[i].nsocks; s++)
            s_send_ctl(&webs->links[i], s, BUS_WORKER_BYE);
    for (int64_t quiet_since = bus_now_ms(); bus_now_ms() - quiet_since < DRAIN_QUIET_MS;)
        if (s_poll_serve(webs, false, 100) > 0)
            quiet_since = bus_now_ms();
out:
    bus_client_destroy(&w.registry);
    bus_client_destroy(&w.bitbucket);
    for (int i = 0; webs && i < webs->n; i++)
        while (webs->links[i].nsocks > 0)
            zsock_destroy(&webs->links[i].socks[--webs->links[i].nsocks]);
    free(webs);
    endpoints_destroy(&web_eps);
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
    char tag[16];
    if (crypto_random_token(6, tag, sizeof tag) < 0)
        return 1;
    snprintf(s_holder, sizeof s_holder, "%s/%s", s_instance, tag);
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
    } else if (broker_access_start(s_holder) < 0) {
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
