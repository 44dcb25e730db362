#include "gate.h"

#include "crypto.h"
#include "log.h"
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEADER_MAX 16384
#define PIPE_BUF_SIZE 32768 /* > HEADER_MAX plus the gate's own header */
#define MAX_EVENTS 256
#define TICK_MS 100

typedef struct conn_t conn_t;

/* What an epoll event points at: one end of a connection. */
typedef struct {
    conn_t *conn;
    bool backend;
    uint32_t watched; /* the events epoll has for this end now */
} end_t;

struct conn_t {
    int cfd, bfd;
    end_t cend, bend;
    bool relaying; /* headers complete, backend connected */
    bool c_eof, b_eof, b_shut;
    bool dead; /* closed; freed after the current batch of events */
    int64_t deadline_ms;
    char addr[64];
    char hdr[HEADER_MAX];
    size_t hdr_len;
    char c2b[PIPE_BUF_SIZE], b2c[PIPE_BUF_SIZE];
    size_t c2b_off, c2b_len, b2c_off, b2c_len;
    conn_t *prev, *next;
};

struct gate_t {
    gate_config_t cfg;
    int lfd, epfd, stopfd;
    pthread_t thread;
    bool running;
    atomic_bool draining, stop; /* asked through stopfd */
    char token[48];
    conn_t *conns;
    conn_t *graveyard; /* closed in this batch: other events may still name them */
    long nconns;
};

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- connections ---- */

/* Ask epoll for these events on one end, unless it has them already: most
 * rounds of a relay leave both masks as they were, and every epoll_ctl is a
 * system call. */
static void s_want(gate_t *self, int fd, end_t *e, uint32_t events)
{
    if (e->watched == events)
        return;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.data.ptr = e;
    ev.events = events;
    if (epoll_ctl(self->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
        e->watched = events;
}

static void s_watch(gate_t *self, conn_t *c)
{
    if (!c->relaying)
        s_want(self, c->cfd, &c->cend, EPOLLIN);
    else
        s_want(self, c->cfd, &c->cend,
               (!c->c_eof && c->c2b_len < sizeof c->c2b ? EPOLLIN : 0) | (c->b2c_len ? EPOLLOUT : 0));
    if (c->bfd >= 0)
        s_want(self, c->bfd, &c->bend,
               (!c->b_eof && c->b2c_len < sizeof c->b2c ? EPOLLIN : 0) | (c->c2b_len ? EPOLLOUT : 0));
}

static void s_close(gate_t *self, conn_t *c)
{
    epoll_ctl(self->epfd, EPOLL_CTL_DEL, c->cfd, NULL);
    close(c->cfd);
    if (c->bfd >= 0) {
        epoll_ctl(self->epfd, EPOLL_CTL_DEL, c->bfd, NULL);
        close(c->bfd);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        self->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    self->nconns--;
    c->dead = true;
    c->next = self->graveyard;
    self->graveyard = c;
}

static void s_bury(gate_t *self)
{
    while (self->graveyard) {
        conn_t *c = self->graveyard;
        self->graveyard = c->next;
        free(c);
    }
}

/* A short answer to a connection that will not be served; best effort. */
static void s_refuse_fd(int fd, int status, const char *reason)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s\n",
                     status, reason, strlen(reason) + 1, reason);
    if (n > 0)
        (void)!send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void s_refuse(gate_t *self, conn_t *c, int status, const char *reason, const char *what)
{
    char labels[64];
    snprintf(labels, sizeof labels, "reason=\"%s\"", what);
    metrics_inc("portico_http_gate_refused_total", labels, 1);
    s_refuse_fd(c->cfd, status, reason);
    s_close(self, c);
}

static long s_count_addr(const gate_t *self, const char *addr)
{
    long n = 0;
    for (const conn_t *c = self->conns; c; c = c->next)
        if (!strcmp(c->addr, addr))
            n++;
    return n;
}

static void s_addr_text(const struct sockaddr_storage *ss, char *out, size_t out_size)
{
    out[0] = '\0';
    if (ss->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)ss)->sin_addr, out, (socklen_t)out_size);
    } else if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            inet_ntop(AF_INET, &a->s6_addr[12], out, (socklen_t)out_size);
        else
            inet_ntop(AF_INET6, a, out, (socklen_t)out_size);
    }
}

static void s_accept(gate_t *self)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(self->lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or out of descriptors: the next round tries again */
        char addr[64];
        s_addr_text(&ss, addr, sizeof addr);
        bool trusted = netaddr_list_contains(self->cfg.trusted, addr);
        const char *why = NULL;
        if (self->nconns >= self->cfg.max_total)
            why = "total";
        else if (!trusted && s_count_addr(self, addr) >= self->cfg.max_per_client)
            why = "per_client";
        conn_t *c = why ? NULL : calloc(1, sizeof *c);
        if (!c) {
            char labels[64];
            snprintf(labels, sizeof labels, "reason=\"%s\"", why ? why : "memory");
            metrics_inc("portico_http_gate_refused_total", labels, 1);
            s_refuse_fd(fd, 503, "Too many connections: try again in a moment.");
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->cfd = fd;
        c->bfd = -1;
        c->cend.conn = c->bend.conn = c;
        c->bend.backend = true;
        c->deadline_ms = s_now_ms() + self->cfg.header_timeout_ms;
        snprintf(c->addr, sizeof c->addr, "%s", addr);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->cend};
        if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        c->cend.watched = EPOLLIN;
        c->next = self->conns;
        if (self->conns)
            self->conns->prev = c;
        self->conns = c;
        self->nconns++;
    }
}

/* The end of the header block: "\r\n\r\n" (or bare "\n\n"), or 0. */
static size_t s_header_end(const char *buf, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] == '\n' && buf[i + 1] == '\n')
            return i + 2;
        if (i + 3 < len && buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n')
            return i + 4;
    }
    return 0;
}

/* The first request's target, made fit for civetweb. An origin server
 * must accept a target in absolute form (RFC 9112, 3.2.2) and take the
 * host from it rather than from Host; civetweb takes one for another host
 * as a proxy request and closes the connection without an answer, and it
 * answers nothing to "OPTIONS *" either. Portico builds every address it
 * writes from PORTICO_PUBLIC_URL, never from the request, so the target
 * becomes its path and query ("/" when it has none); "OPTIONS *" is
 * answered here, and "*" with another method refused. Later requests on
 * the connection are relayed as they come (the gate does not parse them).
 * 0: hand the connection over; -1: answered and closed. */
static int s_first_target(gate_t *self, conn_t *c)
{
    char *line_end = memchr(c->hdr, '\n', c->hdr_len);
    char *sp = line_end ? memchr(c->hdr, ' ', (size_t)(line_end - c->hdr)) : NULL;
    char *target = sp ? sp + 1 : NULL;
    char *target_end = target ? memchr(target, ' ', (size_t)(line_end - target)) : NULL;
    if (!target_end)
        return 0; /* civetweb answers a malformed request line */
    size_t len = (size_t)(target_end - target);
    if (len == 1 && *target == '*') {
        if (sp - c->hdr == 7 && !memcmp(c->hdr, "OPTIONS", 7)) {
            static const char options[] = "HTTP/1.1 200 OK\r\nAllow: GET, HEAD, POST\r\nContent-Length: 0\r\n"
                                          "Connection: close\r\n\r\n";
            (void)!send(c->cfd, options, sizeof options - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            s_close(self, c);
        } else {
            s_refuse(self, c, 400, "Bad request: only OPTIONS applies to *.", "asterisk");
        }
        return -1;
    }
    size_t scheme = len > 7 && !strncasecmp(target, "http://", 7)    ? 7
                    : len > 8 && !strncasecmp(target, "https://", 8) ? 8
                                                                     : 0;
    if (!scheme)
        return 0;
    char *path = target + scheme;
    while (path < target_end && *path != '/' && *path != '?')
        path++;
    /* Keep one byte before the path for the "/" a bare query needs. */
    char *from = path < target_end && *path == '/' ? path : path - 1;
    if (from != path)
        *from = '/';
    size_t cut = (size_t)(from - target);
    memmove(target, from, c->hdr_len - (size_t)(from - c->hdr));
    c->hdr_len -= cut;
    return 0;
}

/* Headers complete: add ours after the request line, connect to civetweb. */
static int s_hand_over(gate_t *self, conn_t *c)
{
    char *nl = memchr(c->hdr, '\n', c->hdr_len);
    if (!nl)
        return -1;
    size_t first = (size_t)(nl - c->hdr) + 1;
    char extra[160];
    int n = snprintf(extra, sizeof extra, "%s: %s %s\r\n", GATE_HEADER, self->token, c->addr);
    if (n <= 0 || first + (size_t)n + (c->hdr_len - first) > sizeof c->c2b)
        return -1;
    memcpy(c->c2b, c->hdr, first);
    memcpy(c->c2b + first, extra, (size_t)n);
    memcpy(c->c2b + first + (size_t)n, c->hdr + first, c->hdr_len - first);
    c->c2b_off = 0;
    c->c2b_len = c->hdr_len + (size_t)n;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)self->cfg.backend_port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = &c->bend};
    if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        return -1;
    }
    c->bend.watched = EPOLLOUT;
    c->bfd = fd;
    c->relaying = true;
    return 0;
}

static void s_read_headers(gate_t *self, conn_t *c)
{
    ssize_t n = recv(c->cfd, c->hdr + c->hdr_len, sizeof c->hdr - c->hdr_len, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        s_close(self, c);
        return;
    }
    if (n < 0)
        return;
    c->hdr_len += (size_t)n;
    size_t end = s_header_end(c->hdr, c->hdr_len);
    if (!end) {
        if (c->hdr_len == sizeof c->hdr)
            s_refuse(self, c, 431, "Request headers too large.", "too_large");
        return;
    }
    if (s_first_target(self, c) < 0)
        return;
    if (s_hand_over(self, c) < 0) {
        s_refuse(self, c, 503, "Portico could not take this request: try again.", "backend");
        return;
    }
    s_watch(self, c);
}

/* Move what can move between the two ends after epoll reported `events`
 * on end e; false when the connection is finished (and closed). Only the
 * end that was reported is read: the other would mostly answer EAGAIN, and
 * epoll (level-triggered) reports it when it has something. */
static bool s_relay(conn_t *c, const end_t *e, uint32_t events)
{
    ssize_t n;
    bool readable = (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0;
    if (readable && !e->backend && !c->c_eof && c->c2b_len < sizeof c->c2b) {
        size_t at = c->c2b_off + c->c2b_len;
        if (c->c2b_off && at == sizeof c->c2b) {
            memmove(c->c2b, c->c2b + c->c2b_off, c->c2b_len);
            c->c2b_off = 0;
            at = c->c2b_len;
        }
        n = recv(c->cfd, c->c2b + at, sizeof c->c2b - at, 0);
        if (n > 0)
            c->c2b_len += (size_t)n;
        else if (n == 0 || (errno != EAGAIN && errno != EINTR))
            c->c_eof = true;
    }
    if (c->c2b_len) {
        n = send(c->bfd, c->c2b + c->c2b_off, c->c2b_len, MSG_NOSIGNAL);
        if (n > 0) {
            c->c2b_off += (size_t)n;
            c->c2b_len -= (size_t)n;
            if (!c->c2b_len)
                c->c2b_off = 0;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR && errno != ENOTCONN) {
            return false;
        }
    }
    if (c->c_eof && !c->c2b_len && !c->b_shut) {
        shutdown(c->bfd, SHUT_WR);
        c->b_shut = true;
    }
    if (readable && e->backend && !c->b_eof && c->b2c_len < sizeof c->b2c) {
        size_t at = c->b2c_off + c->b2c_len;
        if (c->b2c_off && at == sizeof c->b2c) {
            memmove(c->b2c, c->b2c + c->b2c_off, c->b2c_len);
            c->b2c_off = 0;
            at = c->b2c_len;
        }
        n = recv(c->bfd, c->b2c + at, sizeof c->b2c - at, 0);
        if (n > 0)
            c->b2c_len += (size_t)n;
        else if (n == 0 || (errno != EAGAIN && errno != EINTR && errno != ENOTCONN))
            c->b_eof = true;
    }
    if (c->b2c_len) {
        n = send(c->cfd, c->b2c + c->b2c_off, c->b2c_len, MSG_NOSIGNAL);
        if (n > 0) {
            c->b2c_off += (size_t)n;
            c->b2c_len -= (size_t)n;
            if (!c->b2c_len)
                c->b2c_off = 0;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return false;
        }
    }
    /* civetweb closed: once its answer is out, so are we. */
    if (c->b_eof && !c->b2c_len)
        return false;
    return true;
}

static void s_expire(gate_t *self, int64_t now)
{
    conn_t *next;
    for (conn_t *c = self->conns; c; c = next) {
        next = c->next;
        if (!c->relaying && now >= c->deadline_ms)
            s_refuse(self, c, 408, "The request headers took too long.", "header_timeout");
    }
}

static void *s_run(void *arg)
{
    gate_t *self = arg;
    /* Named for top, perf and strace. */
    pthread_setname_np(pthread_self(), "portico-gate");
    struct epoll_event events[MAX_EVENTS];
    int64_t next_tick = s_now_ms() + TICK_MS;
    for (;;) {
        int n = epoll_wait(self->epfd, events, MAX_EVENTS, TICK_MS);
        bool stop = false;
        for (int i = 0; i < n; i++) {
            void *p = events[i].data.ptr;
            if (p == &self->lfd) {
                s_accept(self);
                continue;
            }
            if (p == &self->stopfd) {
                uint64_t v;
                (void)!read(self->stopfd, &v, sizeof v);
                if (atomic_load(&self->stop))
                    stop = true;
                else if (atomic_load(&self->draining) && self->lfd >= 0) {
                    /* Draining: no new connections (a load balancer then
                     * tries another instance); the open ones go on. */
                    epoll_ctl(self->epfd, EPOLL_CTL_DEL, self->lfd, NULL);
                    close(self->lfd);
                    self->lfd = -1;
                }
                continue;
            }
            end_t *e = p;
            conn_t *c = e->conn;
            if (c->dead)
                continue;
            if (!c->relaying) {
                if (!e->backend)
                    s_read_headers(self, c);
                continue;
            }
            if (!s_relay(c, e, events[i].events))
                s_close(self, c);
            else
                s_watch(self, c);
        }
        int64_t now = s_now_ms();
        if (!stop && now >= next_tick) {
            s_expire(self, now);
            next_tick = now + TICK_MS;
        }
        s_bury(self);
        if (stop || (atomic_load(&self->draining) && self->lfd < 0 && !self->conns))
            break;
    }
    return NULL;
}

/* ---- life ---- */

static int s_listen(const char *addr)
{
    char host[128], port[16];
    const char *colon = strrchr(addr, ':');
    if (!colon)
        return -1;
    snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
    snprintf(port, sizeof port, "%s", colon + 1);
    char *h = host;
    if (h[0] == '[') {
        h++;
        h[strlen(h) - 1] = '\0';
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (getaddrinfo(*h ? h : NULL, port, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

gate_t *gate_new(const gate_config_t *cfg)
{
    gate_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = *cfg;
    self->lfd = self->epfd = self->stopfd = -1;
    if (crypto_random_token(24, self->token, sizeof self->token) < 0)
        goto fail;
    self->lfd = s_listen(cfg->listen_addr);
    if (self->lfd < 0) {
        log_error("could not listen for HTTP", "addr=%s error=\"%s\"", cfg->listen_addr, strerror(errno));
        goto fail;
    }
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    self->stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->epfd < 0 || self->stopfd < 0)
        goto fail;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &self->lfd};
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &self->stopfd};
    if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, self->lfd, &ev) < 0 ||
        epoll_ctl(self->epfd, EPOLL_CTL_ADD, self->stopfd, &sev) < 0)
        goto fail;
    if (pthread_create(&self->thread, NULL, s_run, self) != 0)
        goto fail;
    self->running = true;
    return self;
fail:
    gate_destroy(&self);
    return NULL;
}

void gate_destroy(gate_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gate_t *self = *self_p;
    if (self->running) {
        atomic_store(&self->stop, true);
        uint64_t one = 1;
        (void)!write(self->stopfd, &one, sizeof one);
        pthread_join(self->thread, NULL);
    }
    while (self->conns)
        s_close(self, self->conns);
    s_bury(self);
    if (self->lfd >= 0)
        close(self->lfd);
    if (self->epfd >= 0)
        close(self->epfd);
    if (self->stopfd >= 0)
        close(self->stopfd);
    explicit_bzero(self->token, sizeof self->token);
    free(self);
    *self_p = NULL;
}

void gate_drain(gate_t **self_p, long max_ms)
{
    if (!self_p || !*self_p)
        return;
    gate_t *self = *self_p;
    if (self->running) {
        atomic_store(&self->draining, true);
        uint64_t one = 1;
        (void)!write(self->stopfd, &one, sizeof one);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += max_ms / 1000;
        until.tv_nsec += (max_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (pthread_timedjoin_np(self->thread, NULL, &until) == 0)
            self->running = false;
        else
            log_warn("connections still open when the drain ended; closing them", "waited_ms=%ld", max_ms);
    }
    gate_destroy(self_p);
}

const char *gate_client(const gate_t *self, const char *header, char *out, size_t out_size)
{
    size_t tn = strlen(self->token);
    if (!header || strlen(header) <= tn + 1 || header[tn] != ' ' || !crypto_equal(header, self->token, tn))
        return NULL;
    snprintf(out, out_size, "%s", header + tn + 1);
    return out;
}
