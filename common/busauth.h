/* busauth: who is on the other end of a bus socket.
 *
 * Every bus socket that crosses a process boundary speaks CURVE. Each
 * service has its own key pair; the public keys of all services live as
 * czmq certificates in one folder (PORTICO_BUS_KEYS_DIR), named after the
 * service: web.cert, registry.cert, broker.cert, bitbucket.cert, plus any
 * number of extra keys of the same service during a rotation
 * (web.2.cert, broker.next.cert: the service is the name up to the first
 * dot). A service's own secret certificate is PORTICO_BUS_SECRET_FILE
 * (default: <dir>/<service>.cert_secret).
 *
 * A server admits only the services it was told to (a ZAP handler that
 * maps the client's public key to its service name). That name becomes the
 * ZeroMQ "User-Id" of every message from the peer; handlers check methods
 * against it, never against anything inside the message. The folder is
 * read again at most once a second while peers connect, so a key added or
 * removed takes effect without a restart. */
#ifndef PORTICO_BUSAUTH_H
#define PORTICO_BUSAUTH_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

/* The services, as bits of a caller set. */
#define BUS_WEB 0x1u
#define BUS_REGISTRY 0x2u
#define BUS_BROKER 0x4u
#define BUS_BITBUCKET 0x8u

/* "web", "registry", ... for one bit; "" for anything else. */
const char *busauth_name(unsigned service);
/* The bit of a service name, 0 when it is not one. */
unsigned busauth_bit(const char *name);

/* Load this process's key pair (it is `service`) and the public keys of the
 * servers it calls; when admit is not 0, start the ZAP handler that lets
 * only those services in. 0, or -1 with a message naming the variable. */
int busauth_init(const char *service, unsigned admit, unsigned servers, char *err, size_t err_size);
/* The same, but print the message and exit(2). */
void busauth_init_or_die(const char *service, unsigned admit, unsigned servers);
/* True once busauth_init succeeded in this process. */
bool busauth_enabled(void);
/* This process's service name ("" before busauth_init). */
const char *busauth_self(void);

/* Make sock a CURVE server (before it binds). 0 or -1. */
int busauth_server(zsock_t *sock);
/* Make sock a CURVE client of the service `server` (before it connects),
 * with this process's key pair, or with `as`'s secret certificate from the
 * keys folder when as is not NULL (tests speaking as another service; a
 * path when it has a '/'). */
int busauth_client(zsock_t *sock, const char *server, const char *as);

/* busauth_client, with the server's public key given (z85, 40 characters;
 * NULL: the one of <server>.cert). A client that follows a server's key
 * rotation makes one socket per key the server may have. */
int busauth_client_key(zsock_t *sock, const char *server, const char *server_key, const char *as);
/* Every public key of the service `server` in the keys folder
 * (<server>.cert and <server>.<suffix>.cert), z85, at most max; the folder
 * is read again at most once a second. The count (0 when none). */
int busauth_server_keys(const char *server, char keys[][41], int max);
/* Read this process's secret certificate again (a server whose key is
 * being replaced): 1 when the key changed (sockets made from now on use
 * it), or when a server finds a key it admitted removed from the folder
 * since it last bound (binding again cuts the connections made with it:
 * ZAP checks a key only when a connection is made); 0 when neither; -1
 * when it cannot be read (the current one stays, and the reason is
 * logged). */
int busauth_reload_secret(void);
/* Counts the times busauth_reload_secret changed the key: a client whose
 * sockets were made under an older count connects them again (their own
 * key is fixed at connect, and the old public key is removed next). */
int busauth_secret_generation(void);

/* The authenticated service a received frame came from, or NULL. */
const char *busauth_peer(zframe_t *frame);

/* Log a refused peer, at most once a second per process. */
void busauth_log_refused(const char *what, const char *peer, const char *address);

/* `portico-<service> bus-keygen [NAME]`: create <dir>/<NAME>.cert and
 * .cert_secret (0600) in PORTICO_BUS_KEYS_DIR when they are not there yet.
 * NAME defaults to the service; "web.2" makes a second key of the web (a
 * rotation). Returns the exit status. */
int busauth_keygen_main(const char *service, int argc, char **argv);
/* The same into dir, under the name <name>.cert (name may carry a suffix:
 * "web.2"). 0, or -1 with err. */
int busauth_keygen(const char *dir, const char *name, char *err, size_t err_size);

#endif
