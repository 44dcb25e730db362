/* bus: request/reply between Portico services over ZeroMQ.
 *
 * Every message is a protobuf-c envelope (proto/envelope.proto) in the last
 * frame; frames before it are ZeroMQ routing and are echoed back. A request
 * carries a call id, the end-to-end request id, a method name and an
 * absolute deadline; the reply echoes the call id and carries either a body
 * or a typed error whose message is safe to show.
 *
 * Clients are DEALER sockets, one per thread; servers are ROUTER sockets (or
 * DEALERs behind a queue). Everything read from a socket is untrusted: an
 * envelope that does not decode, an unknown method or a body that does not
 * decode gets an error reply and a log line, never an abort. */
#ifndef PORTICO_BUS_H
#define PORTICO_BUS_H

#include "busauth.h"
#include "buserr.h"
#include "envelope.pb-c.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#define BUS_MAX_MSG_SIZE (1024 * 1024)
#define BUS_HEARTBEAT_IVL_MS 1000
#define BUS_HEARTBEAT_TIMEOUT_MS 3000

/* Control frames a queue worker sends to the web's worker queue. */
#define BUS_WORKER_READY "\001READY"
#define BUS_WORKER_HEARTBEAT "\001HB"
/* A stopping worker takes no new work; it still answers what it holds. */
#define BUS_WORKER_BYE "\001BYE"

/* Message size cap, heartbeats, no linger: every Portico socket gets these. */
void bus_socket_tune(zsock_t *sock);
/* A server's socket (after bus_socket_tune): it sends no heartbeats of its
 * own. Its clients send them, with the TTL after which the server drops a
 * silent connection, so each link carries one heartbeat a second, not two
 * (every one of them encrypted under CURVE). */
void bus_socket_serve(zsock_t *sock);
/* Call once per process before any socket: keeps czmq off our signals. */
void bus_init(void);
int64_t bus_now_ms(void);

/* ---- client ---- */

typedef struct bus_client_t bus_client_t;

/* A client of every instance behind endpoint: a list separated by commas,
 * tcp:// host names standing for all their addresses (endpoints.h), with a
 * DEALER per instance. The names are resolved again every few seconds when
 * the client is used: new instances are connected, vanished ones dropped.
 * Calls go to the connected instances in turn. service names the peer in
 * logs/metrics; once busauth_init ran, it is also the peer whose public key
 * each connection must present (CURVE), unless the endpoint is inproc. */
bus_client_t *bus_client_new(const char *endpoint, const char *service);
/* The same, speaking with the secret certificate of the service `as` from
 * the keys folder: for tests that play another service. */
bus_client_t *bus_client_new_as(const char *endpoint, const char *service, const char *as);
void bus_client_destroy(bus_client_t **self_p);
const char *bus_client_endpoint(const bus_client_t *self);
/* Called every ~250 ms while a call waits (the broker sends heartbeats). */
/* Instances connected or being connected now (resolving again when due). */
int bus_client_instances(bus_client_t *self);
/* A method that may run twice without harm (ping, *.get, *.list,
 * *.lookup): bus_call sends it again to another instance when the one
 * holding it vanishes; any other is answered UNAVAILABLE at once. */
bool bus_method_repeatable(const char *method);
/* One tuned DEALER connected to one endpoint, CURVE set up as for a
 * client of service whose public key is `key` (z85; NULL: the one of
 * <service>.cert), speaking as `as` when not NULL. Like a client's, it
 * takes messages only once its handshake succeeded (ZMQ_IMMEDIATE). NULL
 * on failure. */
zsock_t *bus_socket_connect(const char *endpoint, const char *service, const char *key, const char *as);
void bus_client_set_idle(bus_client_t *self, void (*fn)(void *arg), void *arg);

/* The public keys of a server that a client follows (README: Bus keys):
 * <server>.cert and <server>.<suffix>.cert in the keys folder. A client
 * holds a connection per key; only the one whose key the server holds
 * completes its handshake. */
#define BUS_SERVER_KEYS 4
typedef struct {
    char server[32];
    char keys[BUS_SERVER_KEYS][41]; /* z85; "" : the one of <server>.cert */
    int n;
    bool follow;
    int64_t read_ms;
} bus_keyset_t;
/* The keys now (follow: and later, when busauth runs); at least one. */
void bus_keyset_init(bus_keyset_t *self, const char *server, bool follow);
/* Called once per key that went (added false: close its connections) or
 * came (added true: connect with it too). */
typedef void (*bus_key_fn)(void *arg, const char *key, bool added);
/* Read the folder again (at most once a second) and report the changes. */
void bus_keyset_follow(bus_keyset_t *self, bus_key_fn fn, void *arg);

/* Send req as method and wait for the reply, at most timeout_ms and never
 * past the deadline of the request this thread is serving. With no instance
 * connected, it waits for one that long only while this process reached
 * the service a moment ago (a restart); a service down for longer fails
 * its calls UNAVAILABLE within about a second and a half (bus.c). On OK, *resp is
 * the unpacked body (free with protobuf_c_message_free_unpacked); resp_desc
 * may be NULL when the body is not wanted. Returns 0, or -1 with err set. */
int bus_call(bus_client_t *self, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, int timeout_ms, bus_error_t *err);

/* The two ends of a call, for a caller that carries the envelope itself
 * (the web's broker queue): the envelope of a request to method, due by
 * deadline, with the request id of the request this thread serves (or a
 * fresh one) in rid and req packed into *body (the caller frees it); 0, or
 * -1 out of memory. And what a caller makes of the reply: 0 with *resp
 * unpacked as resp_desc (both may be NULL), or -1 with err set to the
 * peer's error or to a reply of service it cannot read, *code its code. */
int bus_request_prepare(Portico__Request *env, char rid[64], const char *method, int64_t deadline,
                        const ProtobufCMessage *req, uint8_t **body);
int bus_reply_take(const Portico__Reply *reply, const char *service, const ProtobufCMessageDescriptor *resp_desc,
                   ProtobufCMessage **resp, int *code, bus_error_t *err);

/* A declared method (build/gen/bus_methods.h has one constant per method). */
typedef struct {
    const char *name;
    const char *service;
    const ProtobufCMessageDescriptor *req; /* request type */
    const ProtobufCMessageDescriptor *rep; /* reply type */
} bus_method_t;

/* bus_call for a declared method: a request of another type is a
 * programming error (asserted); resp may be NULL when the reply is not
 * wanted. */
int bus_call_method(bus_client_t *self, const bus_method_t *m, const ProtobufCMessage *req, ProtobufCMessage **resp,
                    int timeout_ms, bus_error_t *err);

/* ---- server ---- */

/* Bind a server socket to endpoint. A tcp:// host that is a name (not an
 * address, "*" or an interface) is resolved now, and the socket binds the
 * one of its addresses that is this machine's own: compose names each
 * service on the "bus" network alone, so the port listens nowhere else.
 * 0, or -1 after logging why. */
int bus_bind(zsock_t *sock, const char *endpoint);
/* How long bus_bind asks again for a host name that does not (yet) name
 * this machine: an orchestrator may publish a new container's name a moment
 * after it started. 30 s unless set (tests set 0). */
void bus_set_bind_wait(int ms);
/* The address of this machine that host names (netaddr_own_address),
 * asked again as bus_bind does while it names none yet. what says in the
 * log which setting named it. 0, or -1 after logging why. */
int bus_own_address(const char *host, const char *what, char *addr, size_t addr_size);

typedef struct bus_request_t {
    zmsg_t *routing; /* routing frames, echoed on reply */
    uint64_t call_id;
    char request_id[64];
    char method[64];
    char caller[16]; /* the authenticated service that sent it ("" unknown) */
    int64_t deadline_ms;
    int64_t received_ms;
} bus_request_t;

typedef struct {
    bus_error_t err; /* code OK, or the error to answer (bus_error_set(&reply->err, ...)) */
    uint8_t *body;
    size_t body_len;
    bool deferred; /* the handler keeps the request and answers later */
} bus_reply_t;

typedef void (*bus_handler_fn)(void *ctx, bus_request_t *req, const ProtobufCMessage *msg, bus_reply_t *reply);

typedef struct {
    const char *method;
    const ProtobufCMessageDescriptor *desc; /* request body type */
    bus_handler_fn fn;
    unsigned callers;    /* BUS_WEB | BUS_BROKER ...: who may call it */
    int64_t deadline_ms; /* the longest the server works on one call (0: the caller's) */
} bus_route_t;

/* What "ping" answers: service name, instance and readiness. */
typedef bool (*bus_ready_fn)(void *arg, char *status, size_t status_size);
void bus_set_identity(const char *service, const char *instance, bus_ready_fn ready, void *arg);
/* This process's instance name (bus_set_identity) and build. */
const char *bus_instance(void);
const char *bus_version(void);

void bus_reply_ok(bus_reply_t *reply, const ProtobufCMessage *msg);
/* Keep the request: the caller answers later with bus_send_reply. */
void bus_reply_defer(bus_reply_t *reply);

/* Decode one envelope and run its handler: the pure part of serving, no
 * socket involved (the fuzz target drives this). req must be zeroed with
 * routing set (or NULL) and caller set to the authenticated peer; a method
 * whose callers do not include it is refused (FORBIDDEN, no body). Returns 0 when the envelope decoded, -1 otherwise;
 * either way reply holds what to send. */
int bus_process(const bus_route_t *routes, void *ctx, const uint8_t *data, size_t len, bus_request_t *req,
                bus_reply_t *reply);
/* Encode a reply envelope. *out is malloc'd. 0 or -1. */
int bus_encode_reply(uint64_t call_id, const bus_reply_t *reply, uint8_t **out, size_t *out_len);

/* Answer the request in *msg_p (taken) without running it: UNAVAILABLE
 * with detail (STOPPING, ROTATING) and message. */
void bus_refuse(zsock_t *sock, zmsg_t **msg_p, int detail, const char *message);
/* The second half of a server's key rotation (README: Bus keys), once it
 * answered everything it read: let the old key's connections go, with
 * time to deliver the last answers, and bind endpoint again with the key
 * busauth holds now. 0, or -1 when the port cannot be bound again. */
int bus_rebind(zsock_t *sock, const char *endpoint);
/* bus_rebind for a socket that reads something else than requests (the
 * web's broker queue reads its workers' answers): settle gets what the old
 * key's connections had sent, read after they were let go and before the
 * new bind (bus_rebind answers it ROTATING). It may take *msg_p. */
typedef void (*bus_settle_fn)(void *arg, zsock_t *sock, zmsg_t **msg_p);
int bus_rebind_with(zsock_t *sock, const char *endpoint, bus_settle_fn settle, void *arg);

/* Receive-side entry for a server socket: takes the message, answers it on
 * sock unless the handler deferred it. The caller is the authenticated
 * peer of the message (its ZAP user id). */
void bus_serve(zsock_t *sock, zmsg_t **msg_p, const bus_route_t *routes, void *ctx);
/* The same for a caller known another way: a queue that checked it, or
 * the server key a client socket verified. */
void bus_serve_as(zsock_t *sock, zmsg_t **msg_p, const bus_route_t *routes, void *ctx, const char *caller);
/* bus_serve_as without the socket: the reply message (the routing frames
 * of *msg_p, then the reply envelope) for the caller to send, or NULL when
 * there is nothing to send (the handler deferred it; an empty message).
 * For a server whose socket belongs to another thread (the registry's
 * workers hand their replies to the thread that owns the ROUTER). */
zmsg_t *bus_serve_reply(zmsg_t **msg_p, const bus_route_t *routes, void *ctx, const char *caller);
/* Answer a deferred request and free it. */
int bus_send_reply(zsock_t *sock, bus_request_t **req_p, bus_reply_t *reply);
/* The same without sending: the message to send, NULL when the reply
 * could not be encoded. The request is freed and the reply counted either
 * way. */
zmsg_t *bus_reply_msg(bus_request_t **req_p, bus_reply_t *reply);
void bus_request_destroy(bus_request_t **req_p);
void bus_reply_clear(bus_reply_t *reply);

/* What bus_bind asks while it waits for a bind host name to become this
 * machine's, so that a stop request ends the wait (service.c sets it to
 * service_stopping; NULL: nothing). */
void bus_set_stopping_check(bool (*stopping)(void));
/* Whether that check ended such a wait: the service was asked to stop
 * before it could start, and exits 0 (service_main), not as a failure. */
bool bus_stopped_waiting(void);

/* The deadline of the request this thread is serving (0 = none). */
int64_t bus_current_deadline(void);
/* For a thread that serves no request (the broker's re-checks): bound the
 * calls it makes from now on by deadline_ms (bus_now_ms; 0 = none), as a
 * served request's deadline bounds the calls made for it. */
void bus_set_thread_deadline(int64_t deadline_ms);

#endif
