#include "gate.h"

#include "bus.h"
#include "crypto.h"
#include "framing.h"
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
#define BODY_MAX FRAMING_BODY_MAX
#define IN_START 8192
#define IN_MAX (HEADER_MAX + BODY_MAX + 256) /* one held request, the gate's own header too */
#define PIPE_BUF_SIZE 32768
/* What held requests may take beyond their first IN_START bytes, on average
 * per connection of max_total: a request that would go past it in all is
 * refused (503). 4,096 connections, each with 16 KiB of head and 64 KiB of
 * body half sent, would otherwise take some 330 MB. */
#define HELD_PER_CONN 16384
#define MAX_EVENTS 256
#define TICK_MS 100
/* A connection to civetweb that has had no request to answer for this long
 * is closed, and its thread serves others; the client's connection stays
 * open, and its next request gets a new one. Longer than the pause between
 * a browser's requests for a page and its parts. */
#define BACKEND_IDLE_MS 200

typedef struct conn_t conn_t;

/* What an epoll event points at: one end of a connection. */
typedef struct {
    conn_t *conn;
    bool backend;
    uint32_t watched; /* the events epoll has for this end now */
} end_t;

/* What the client sends is held in `in` until a whole request is there
 * (framing.h); only then does it count as `ready` for civetweb. */
struct conn_t {
    int cfd, bfd;
    end_t cend, bend;
    bool relaying; /* the first request is whole (the backend connected, or given back since) */
    bool raw;      /* a body too long to hold: the client's bytes pass as they come */
    bool c_eof, b_eof, b_shut;
    bool dead;                 /* closed; freed after the current batch of events */
    int64_t deadline_ms;       /* the request being received must be whole by then; 0: none is */
    int64_t quiet_ms;          /* when the last answer due came whole from civetweb, then when the client took it */
    int64_t send_by_ms;        /* the client must take some of b2c by then; 0: b2c is empty */
    framing_answers_t answers; /* civetweb's, followed to know when none is due */
    char addr[64];
    char key[80]; /* the client it counts as (netaddr_client_key) */
    char *in;
    size_t in_len, in_cap;
    size_t ready; /* in[0..ready) is whole requests, to send to civetweb */
    char *b2c;    /* PIPE_BUF_SIZE, while civetweb's connection is open */
    size_t b2c_off, b2c_len;
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
    size_t held, held_max; /* what the connections' `in` take beyond IN_START each */
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
        s_want(self, c->cfd, &c->cend, (!c->c_eof && c->in_len < IN_MAX ? EPOLLIN : 0) | (c->b2c_len ? EPOLLOUT : 0));
    if (c->bfd >= 0)
        s_want(self, c->bfd, &c->bend,
               (!c->b_eof && c->b2c_len < PIPE_BUF_SIZE ? EPOLLIN : 0) | (c->ready ? EPOLLOUT : 0));
}

/* What a buffer of cap bytes counts against held_max. */
static size_t s_charge(size_t cap)
{
    return cap > IN_START ? cap - IN_START : 0;
}

/* Nothing of the client's is held: its buffer goes, and the next request
 * gets a new one (a kept connection waiting costs little). */
static void s_in_release(gate_t *self, conn_t *c)
{
    if (c->in_len || !c->in)
        return;
    self->held -= s_charge(c->in_cap);
    free(c->in);
    c->in = NULL;
    c->in_cap = 0;
}

static void s_close(gate_t *self, conn_t *c)
{
    self->held -= s_charge(c->in_cap);
    c->in_cap = 0; /* counted no more; freed with the connection */
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
        free(c->in);
        free(c->b2c);
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

/* Count one of the gate's events; a gate other than the public one says
 * which listener it holds (gate_config_t.listener). */
static void s_count(const gate_t *self, const char *metric, const char *reason)
{
    char labels[96];
    const char *l = self->cfg.listener;
    if (reason && l)
        snprintf(labels, sizeof labels, "listener=\"%s\",reason=\"%s\"", l, reason);
    else if (reason)
        snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
    else if (l)
        snprintf(labels, sizeof labels, "listener=\"%s\"", l);
    metrics_inc(metric, reason || l ? labels : NULL, 1);
}

/* Count a connection or request the gate refused, by why. */
static void s_count_refused(const gate_t *self, const char *what)
{
    s_count(self, "portico_http_gate_refused_total", what);
}

static void s_refuse(gate_t *self, conn_t *c, int status, const char *reason, const char *what)
{
    s_count_refused(self, what);
    s_refuse_fd(c->cfd, status, reason);
    s_close(self, c);
}

static long s_count_client(const gate_t *self, const char *key)
{
    long n = 0;
    for (const conn_t *c = self->conns; c; c = c->next)
        if (!strcmp(c->key, key))
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

/* Every answer civetweb owed the client has come from it: civetweb's
 * connection may be given back. */
static bool s_backend_done(const conn_t *c)
{
    return framing_none_due(&c->answers) && !c->ready && !c->b_eof && !c->b_shut;
}

/* ... and gone out to the client: an answer the gate writes now cannot be
 * taken for one of them. */
static bool s_nothing_due(const conn_t *c)
{
    return s_backend_done(c) && !c->b2c_len;
}

/* A kept connection waiting for the client's next request: nothing of it
 * read, nothing due from civetweb or to the client. */
static bool s_waiting(const conn_t *c)
{
    return c->relaying && !c->c_eof && !c->in_len && s_nothing_due(c);
}

/* The client's next request has begun to arrive, not yet read. */
static bool s_request_waiting(const conn_t *c)
{
    char b;
    return recv(c->cfd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* When a new connection meets a cap (its client's with key, or the
 * total's with NULL), the kept connection of that scope that has waited
 * longest for its next request is closed to make room, as nginx does:
 * an idle connection costs its client nothing to open again, and
 * otherwise a few clients idling on kept connections could shut out
 * everyone else. None that is busy is touched. */
static bool s_make_room(gate_t *self, const char *key)
{
    conn_t *oldest = NULL;
    for (conn_t *c = self->conns; c; c = c->next) {
        if (!s_waiting(c) || (key && strcmp(c->key, key)))
            continue;
        if (!oldest || c->quiet_ms < oldest->quiet_ms)
            oldest = c;
    }
    /* One whose next request is already in its socket is busy. */
    if (!oldest || s_request_waiting(oldest))
        return false;
    s_count(self, "portico_http_gate_idle_closed_total", NULL);
    s_close(self, oldest);
    return true;
}

static void s_accept(gate_t *self)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(self->lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or out of descriptors: the next round tries again */
        char addr[64], key[80];
        s_addr_text(&ss, addr, sizeof addr);
        netaddr_client_key(addr, key, sizeof key);
        bool trusted = netaddr_list_contains(self->cfg.trusted, addr);
        /* A client at its own cap makes room among its own connections,
         * which frees one of the total too; only otherwise is another
         * client's idle connection closed for it. */
        const char *why = NULL;
        bool own_full = !trusted && s_count_client(self, key) >= self->cfg.max_per_client;
        if (own_full && !s_make_room(self, key))
            why = "per_client";
        else if (!own_full && self->nconns >= self->cfg.max_total && !s_make_room(self, NULL))
            why = "total";
        conn_t *c = why ? NULL : calloc(1, sizeof *c);
        if (!c) {
            s_count_refused(self, why ? why : "memory");
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
        snprintf(c->key, sizeof c->key, "%s", key);
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

/* Close the connection to civetweb of a client connection that has
 * nothing due; the client's stays, and its next request opens another. */
static void s_give_back(gate_t *self, conn_t *c)
{
    epoll_ctl(self->epfd, EPOLL_CTL_DEL, c->bfd, NULL);
    close(c->bfd);
    c->bfd = -1;
    c->bend.watched = 0;
    if (!c->b2c_len) {
        free(c->b2c);
        c->b2c = NULL;
    }
    s_in_release(self, c);
    s_count(self, "portico_http_gate_backend_released_total", NULL);
}

/* The connection ends after the answers due: nothing more goes to
 * civetweb, which answers what it has, sees the end and closes; then so
 * does the gate. A later request on the connection that is refused gets
 * no answer this way, since one could be taken for the one before (with
 * nothing due, s_refuse answers it). */
static void s_end_after_due(conn_t *c)
{
    c->in_len = c->ready;
    c->c_eof = true;
    c->deadline_ms = 0;
    if (!c->ready && !c->b_shut && c->bfd >= 0) {
        shutdown(c->bfd, SHUT_WR);
        c->b_shut = true;
    }
}

static void s_refuse_later(const gate_t *self, conn_t *c, const char *what)
{
    s_count_refused(self, what);
    s_end_after_due(c);
}

/* The target of the whole request at c->in + at, made fit for civetweb. An
 * origin server must accept a target in absolute form (RFC 9112, 3.2.2)
 * and take the host from it rather than from Host; civetweb takes one for
 * another host as a proxy request and closes the connection without an
 * answer, and it answers nothing to "OPTIONS *" either. Portico builds
 * every address it writes from PORTICO_PUBLIC_URL, never from the request,
 * so the target becomes its path and query ("/" when it has none);
 * "OPTIONS *" is answered here, and "*" with another method refused (on a
 * kept connection with answers due, without an answer: s_refuse_later).
 * 0: pass it on (*head_len updated); -1: answered and closed; 1: refused
 * after the answers due. */
static int s_target(gate_t *self, conn_t *c, size_t at, size_t *head_len)
{
    char *req = c->in + at;
    char *line_end = memchr(req, '\n', *head_len);
    char *sp = line_end ? memchr(req, ' ', (size_t)(line_end - req)) : NULL;
    char *target = sp ? sp + 1 : NULL;
    char *target_end = target ? memchr(target, ' ', (size_t)(line_end - target)) : NULL;
    if (!target_end)
        return 0; /* civetweb answers a malformed request line */
    size_t len = (size_t)(target_end - target);
    if (len == 1 && *target == '*') {
        if (c->relaying && !s_nothing_due(c)) {
            s_refuse_later(self, c, "asterisk");
            return 1;
        }
        if (sp - req == 7 && !memcmp(req, "OPTIONS", 7)) {
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
    memmove(target, from, c->in_len - (size_t)(from - c->in));
    c->in_len -= cut;
    *head_len -= cut;
    return 0;
}

/* Room for `need` more bytes in c->in, up to IN_MAX in all. -2 when the
 * connections' buffers together would take more than held_max beyond
 * their first IN_START bytes each. */
static int s_in_room(gate_t *self, conn_t *c, size_t need)
{
    if (c->in_len + need <= c->in_cap)
        return 0;
    size_t cap = c->in_cap ? c->in_cap : IN_START;
    while (cap < c->in_len + need)
        cap *= 2;
    if (cap > IN_MAX)
        cap = IN_MAX;
    if (c->in_len + need > cap)
        return -1;
    size_t more = s_charge(cap) - s_charge(c->in_cap);
    if (more && self->held + more > self->held_max)
        return -2;
    char *in = realloc(c->in, cap);
    if (!in)
        return -1;
    c->in = in;
    c->in_cap = cap;
    self->held += more;
    return 0;
}

/* The first request is whole (of the connection, or since civetweb's side
 * was given back): our header after its request line, and a connection
 * to civetweb. *head_len grows by what was added. */
static int s_hand_over(gate_t *self, conn_t *c, size_t *head_len)
{
    char *nl = memchr(c->in, '\n', *head_len);
    if (!nl)
        return -1;
    size_t first = (size_t)(nl - c->in) + 1;
    char extra[160];
    int n = snprintf(extra, sizeof extra, "%s: %s %s\r\n", GATE_HEADER, self->token, c->addr);
    if (n <= 0 || (size_t)n >= sizeof extra)
        return -1;
    int room = s_in_room(self, c, (size_t)n);
    if (room < 0)
        return room;
    /* Civetweb's answers come through b2c: it exists while its connection
     * is open (a client still taking an earlier answer may have it). */
    if (!c->b2c && !(c->b2c = malloc(PIPE_BUF_SIZE)))
        return -1;
    memmove(c->in + first + n, c->in + first, c->in_len - first);
    memcpy(c->in + first, extra, (size_t)n);
    c->in_len += (size_t)n;
    *head_len += (size_t)n;
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

static const char *s_status_text(int status)
{
    switch (status) {
    case 411:
        return "Length required: send the body with a Content-Length.";
    case 431:
        return "Request headers too large.";
    default:
        return "Bad request: its length is not clear.";
    }
}

/* How many CR and LF bytes buf starts with. */
static size_t s_empty_lines(const char *buf, size_t len)
{
    size_t n = 0;
    while (n < len && (buf[n] == '\r' || buf[n] == '\n'))
        n++;
    return n;
}

/* The request at c->ready is not whole yet: wait for the rest, unless the
 * client has ended its side, when what came of it is dropped. true. */
static bool s_wait_rest(conn_t *c)
{
    if (c->c_eof)
        c->in_len = c->ready;
    return true;
}

/* Mark the whole requests now in c->in as ready for civetweb, the first
 * one with the gate's header. Once the client has closed its side, a
 * request cut off is dropped, never passed on. false: the connection was
 * refused and closed. */
static bool s_frame(gate_t *self, conn_t *c, int64_t now)
{
    while (!c->raw && c->in_len > c->ready) {
        /* Empty lines before a request line are ignored (RFC 9112 2.2):
         * some clients send one after a body. */
        size_t skip = s_empty_lines(c->in + c->ready, c->in_len - c->ready);
        if (skip) {
            memmove(c->in + c->ready, c->in + c->ready + skip, c->in_len - c->ready - skip);
            c->in_len -= skip;
            continue;
        }
        /* As many requests as the gate follows answers for are with
         * civetweb: the next waits for one of them to be answered (and
         * the client's further bytes in its socket). */
        if (c->answers.due >= FRAMING_ANSWERS_MAX)
            return true;
        if (!c->deadline_ms)
            c->deadline_ms = now + self->cfg.header_timeout_ms;
        framing_t f;
        int rc = framing_parse(c->in + c->ready, c->in_len - c->ready, HEADER_MAX, &f);
        if (rc == 0)
            return s_wait_rest(c);
        if (rc != 1) {
            const char *what = rc == 431 ? "too_large" : rc == 411 ? "length_required" : "framing";
            if (!c->relaying || s_nothing_due(c)) {
                s_refuse(self, c, rc, s_status_text(rc), what);
                return false;
            }
            s_refuse_later(self, c, what);
            return true;
        }
        /* A body longer than the web takes is refused by it unread: the
         * headers go now, and the rest as it comes. */
        bool too_long = f.body_len > BODY_MAX;
        if (!too_long && c->in_len - c->ready < f.head_len + (size_t)f.body_len)
            return s_wait_rest(c);
        int t = s_target(self, c, c->ready, &f.head_len);
        if (t < 0)
            return false;
        if (t > 0)
            return true;
        if (c->bfd < 0) {
            /* The first request, or the first since civetweb's connection
             * was given back: nothing is ready before it. */
            int h = s_hand_over(self, c, &f.head_len);
            if (h < 0) {
                const char *why = h == -2 ? "buffers" : "backend";
                /* The end of an answer before it may still be on its way
                 * to the client: no answer of ours in its middle. */
                if (c->relaying && !s_nothing_due(c)) {
                    s_refuse_later(self, c, why);
                    return true;
                }
                s_refuse(self, c, 503, "Portico could not take this request: try again.", why);
                return false;
            }
        }
        c->deadline_ms = 0;
        framing_asked(&c->answers, f.head_len > 5 && !memcmp(c->in + c->ready, "HEAD ", 5));
        if (too_long) {
            c->raw = true;
            c->answers.lost = true; /* civetweb refuses it unread and closes */
            c->ready = c->in_len;
        } else {
            c->ready += f.head_len + (size_t)f.body_len;
        }
    }
    return true;
}

/* Read what the client sent. false: the connection is closed. */
static bool s_read_client(gate_t *self, conn_t *c, int64_t now)
{
    /* Full only while whole requests wait for civetweb (a held one always
     * fits), or out of memory: read later; the deadline still runs. */
    int room = s_in_room(self, c, 1);
    if (room == -2) {
        /* The requests held together are at their cap: this one is
         * refused rather than held (or read) in part. */
        if (!c->relaying || s_nothing_due(c)) {
            s_refuse(self, c, 503, "Too busy: try again in a moment.", "buffers");
            return false;
        }
        s_refuse_later(self, c, "buffers");
        return true;
    }
    if (room < 0)
        return true;
    ssize_t n = recv(c->cfd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        if (!c->relaying) {
            s_close(self, c);
            return false;
        }
        c->c_eof = true;
        return s_frame(self, c, now);
    }
    if (n < 0)
        return true;
    c->in_len += (size_t)n;
    if (c->raw)
        c->ready = c->in_len;
    return s_frame(self, c, now);
}

/* Before the first request is whole: read and frame it. */
static void s_read_first(gate_t *self, conn_t *c)
{
    if (s_read_client(self, c, s_now_ms()))
        s_watch(self, c);
}

/* Move what can move between the two ends after epoll reported `events`
 * on end e; false when the connection is finished (and closed). Only the
 * end that was reported is read: the other would mostly answer EAGAIN, and
 * epoll (level-triggered) reports it when it has something. */
static bool s_relay(gate_t *self, conn_t *c, const end_t *e, uint32_t events)
{
    ssize_t n;
    bool readable = (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0;
    if (readable && !e->backend && !c->c_eof && c->in_len < IN_MAX && !s_read_client(self, c, s_now_ms()))
        return true; /* closed already: refused, or nothing due (c->dead) */
    if (c->ready && c->bfd >= 0) {
        n = send(c->bfd, c->in, c->ready, MSG_NOSIGNAL);
        if (n > 0) {
            memmove(c->in, c->in + n, c->in_len - (size_t)n);
            c->in_len -= (size_t)n;
            c->ready -= (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR && errno != ENOTCONN) {
            return false;
        }
    }
    if (c->c_eof && !c->in_len && !c->b_shut && c->bfd >= 0) {
        shutdown(c->bfd, SHUT_WR);
        c->b_shut = true;
    }
    if (readable && e->backend && !c->b_eof && c->b2c_len < PIPE_BUF_SIZE) {
        size_t at = c->b2c_off + c->b2c_len;
        if (c->b2c_off && at == PIPE_BUF_SIZE) {
            memmove(c->b2c, c->b2c + c->b2c_off, c->b2c_len);
            c->b2c_off = 0;
            at = c->b2c_len;
        }
        n = recv(c->bfd, c->b2c + at, PIPE_BUF_SIZE - at, 0);
        if (n > 0) {
            if (!c->b2c_len)
                c->send_by_ms = s_now_ms() + self->cfg.header_timeout_ms;
            c->b2c_len += (size_t)n;
            int ended = framing_answered(&c->answers, c->b2c + at, (size_t)n);
            if (ended && framing_none_due(&c->answers))
                c->quiet_ms = s_now_ms();
            /* An answer the gate cannot follow: the connection would hold
             * civetweb's thread for as long as the client kept sending,
             * so it ends after what is due. */
            if (c->answers.lost && !c->raw && !c->c_eof)
                s_end_after_due(c);
            /* Requests held back while the most were due go on now. */
            if (ended && c->in_len > c->ready && !s_frame(self, c, s_now_ms()))
                return true; /* refused and closed (c->dead) */
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR && errno != ENOTCONN))
            c->b_eof = true;
    }
    if (c->b2c_len) {
        n = send(c->cfd, c->b2c + c->b2c_off, c->b2c_len, MSG_NOSIGNAL);
        if (n > 0) {
            c->b2c_off += (size_t)n;
            c->b2c_len -= (size_t)n;
            if (!c->b2c_len) {
                c->b2c_off = 0;
                c->send_by_ms = 0;
                if (c->bfd < 0) { /* civetweb's side was given back meanwhile */
                    free(c->b2c);
                    c->b2c = NULL;
                }
                /* The keep-alive time counts from when the client has
                 * taken its last answer, not from when civetweb gave it. */
                if (framing_none_due(&c->answers))
                    c->quiet_ms = s_now_ms();
            } else {
                c->send_by_ms = s_now_ms() + self->cfg.header_timeout_ms;
            }
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return false;
        }
    }
    /* civetweb closed: once its answer is out, so are we. The client
     * closed while civetweb's connection was given back: so are we. */
    if ((c->b_eof || (c->bfd < 0 && c->c_eof)) && !c->b2c_len)
        return false;
    return true;
}

/* Kept connections with no answer due from civetweb: its side is given
 * back after BACKEND_IDLE_MS, and the client's closed once it has taken
 * every answer and sent nothing for the keep-alive time (at once while
 * draining). */
static void s_idle(gate_t *self, conn_t *c, int64_t now)
{
    if (!c->relaying || !s_backend_done(c) || c->c_eof)
        return;
    if (s_waiting(c) && (atomic_load(&self->draining) || now - c->quiet_ms >= self->cfg.keep_alive_ms)) {
        /* A request that arrived meanwhile is read and served, not cut off. */
        if (s_request_waiting(c))
            return;
        s_close(self, c);
        return;
    }
    if (c->bfd >= 0 && now - c->quiet_ms >= BACKEND_IDLE_MS)
        s_give_back(self, c);
}

static void s_expire(gate_t *self, int64_t now)
{
    conn_t *next;
    for (conn_t *c = self->conns; c; c = next) {
        next = c->next;
        if (c->send_by_ms && now >= c->send_by_ms) {
            /* A client that takes nothing of its answers holds a slot
             * of max_total and of its address's, and civetweb a thread
             * while its answer does not fit: closed. */
            s_count_refused(self, "send_timeout");
            struct linger reset = {.l_onoff = 1, .l_linger = 0}; /* what it did not take is dropped */
            setsockopt(c->cfd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
            s_close(self, c);
            continue;
        }
        if (!c->deadline_ms || now < c->deadline_ms) {
            s_idle(self, c, now);
            continue;
        }
        if (!c->relaying || s_nothing_due(c)) {
            s_refuse(self, c, 408, "The request took too long to arrive.", "header_timeout");
        } else {
            s_refuse_later(self, c, "request_timeout");
            s_watch(self, c);
        }
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
                    s_read_first(self, c);
                continue;
            }
            if (!s_relay(self, c, e, events[i].events))
                s_close(self, c);
            else if (!c->dead)
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
    /* A name listens on the one address of this machine it names (compose's
     * "web.bus": that network alone), as the bus binds do. */
    char own[64];
    if (*h && !netaddr_is_ip(h)) {
        if (bus_own_address(h, addr, own, sizeof own) < 0)
            return -1;
        h = own;
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
    self->held_max = (size_t)cfg->max_total * HELD_PER_CONN;
    self->lfd = self->epfd = self->stopfd = -1;
    if (crypto_random_token(24, self->token, sizeof self->token) < 0)
        goto fail;
    self->lfd = s_listen(cfg->listen_addr);
    if (self->lfd < 0) {
        log_error("could not listen for HTTP", "listener=%s addr=%s error=\"%s\"",
                  cfg->listener ? cfg->listener : "public", cfg->listen_addr, strerror(errno));
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

/* Stop the thread and close every connection; the gate stays (its token
 * for gate_client) until gate_destroy. */
static void s_stop(gate_t *self)
{
    if (self->running) {
        atomic_store(&self->stop, true);
        uint64_t one = 1;
        (void)!write(self->stopfd, &one, sizeof one);
        pthread_join(self->thread, NULL);
        self->running = false;
    }
    while (self->conns)
        s_close(self, self->conns);
    s_bury(self);
}

void gate_destroy(gate_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gate_t *self = *self_p;
    s_stop(self);
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

void gate_drain(gate_t *self, long max_ms)
{
    if (!self)
        return;
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
    s_stop(self);
}

const char *gate_client(const gate_t *self, const char *header, char *out, size_t out_size)
{
    size_t tn = strlen(self->token);
    if (!header || strlen(header) <= tn + 1 || header[tn] != ' ' || !crypto_equal(header, self->token, tn))
        return NULL;
    snprintf(out, out_size, "%s", header + tn + 1);
    return out;
}
