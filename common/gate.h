/* gate: a front door, one thread with epoll in front of civetweb: the web's
 * public port, its operations port, and every health listener (health.h).
 *
 * civetweb holds a thread per connection from its first byte, so a few
 * hundred connections that trickle their headers or bodies (or just sit
 * there) take every thread and nobody else is served. The gate accepts the
 * public connections itself and passes a request on to civetweb (listening
 * on a private loopback port) only once the whole of it has arrived,
 * headers and body (framing.h says where it ends):
 *
 *   - a connection's first request must arrive whole within
 *     header_timeout_ms of the connection (then 408 and closed); headers
 *     larger than 16 KiB get 431, a length that is not one plain
 *     Content-Length 400, a Transfer-Encoding 411;
 *   - a later request on a kept connection is held the same way. The gate
 *     follows civetweb's answers (framing.h); once none is due for 200 ms
 *     it closes its connection to civetweb, whose thread then serves
 *     others, and the next request gets a new one. A kept connection
 *     that sends nothing for keep_alive_ms after its last answer is
 *     closed. A later request refused or late is answered like a first
 *     when no answer is due, and otherwise gets none (an answer could be
 *     taken for the one before): the connection ends after those due;
 *   - a client that takes nothing of the answers sent to it for
 *     header_timeout_ms is closed (a reset: what it did not take is
 *     dropped);
 *   - a body longer than the web takes (FRAMING_BODY_MAX) goes on as it
 *     comes, since the web refuses it unread and closes;
 *   - one client address (an IPv6 one: its /64) may hold at most
 *     max_per_client connections (trusted proxies excepted: they carry
 *     everyone), all clients together
 *     max_total; beyond that a connection gets 503 and is closed at once.
 *
 * The gate tells civetweb who the client is in a header only it can write
 * (X-Portico-Gate: <per-process secret> <address>), since civetweb sees
 * every connection coming from loopback; it adds it to the first request
 * of each connection to civetweb. */
#ifndef PORTICO_WEB_GATE_H
#define PORTICO_WEB_GATE_H

#include "netaddr.h"

#include <stdbool.h>
#include <stddef.h>

#define GATE_HEADER "X-Portico-Gate"

typedef struct gate_t gate_t;

typedef struct {
    const char *listen_addr; /* host:port of the public listener */
    int backend_port;        /* civetweb on 127.0.0.1 */
    long header_timeout_ms;
    long keep_alive_ms; /* a kept connection may wait this long for its next request */
    long max_per_client;
    long max_total;
    const netaddr_list_t *trusted; /* not capped per client */
    const char *listener;          /* NULL: the public port; else its metrics' listener="..." */
} gate_config_t;

/* Listen and start the gate's thread. NULL (and a log line) on failure. */
gate_t *gate_new(const gate_config_t *cfg);
/* Stop the thread and close every connection. */
void gate_destroy(gate_t **self_p);
/* Stop accepting at once, relay the open connections until they end
 * (one with no answer due is closed at once), for max_ms at most; then
 * stop the thread and close what is left. The gate itself stays, so that
 * gate_client answers for requests civetweb still serves, until
 * gate_destroy. */
void gate_drain(gate_t *self, long max_ms);

/* The client address for the value of an X-Portico-Gate header, when it
 * carries this process's secret; NULL otherwise. */
const char *gate_client(const gate_t *self, const char *header, char *out, size_t out_size);

#endif
