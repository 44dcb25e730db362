/* endpoints: every address behind a service's endpoint setting.
 *
 * A setting (PORTICO_REGISTRY_ENDPOINT and the like) is one ZeroMQ endpoint
 * or several separated by commas. A tcp:// endpoint whose host is a name
 * stands for every address the name resolves to: in compose a service's
 * name resolves to each of its containers, in Swarm tasks.<service> to each
 * of its tasks. ZeroMQ itself would connect to the first address only, so
 * a client resolves the name here, connects once per address, and resolves
 * it again now and then to connect to instances that appeared and drop
 * those that vanished. ipc:// and inproc:// endpoints, and tcp:// ones with
 * a literal address, stand for themselves.
 *
 * A name that fails to resolve keeps the addresses it had: a DNS hiccup
 * must not cut a client off from instances that still answer (ZeroMQ's
 * heartbeats drop the connections of those that do not). */
#ifndef PORTICO_ENDPOINTS_H
#define PORTICO_ENDPOINTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENDPOINTS_MAX 64
#define ENDPOINTS_LEN 128
/* How often a client resolves its names again. */
#define ENDPOINTS_REFRESH_MS 3000

typedef struct endpoints_t endpoints_t;

/* The addresses host resolves to, as text (IPv6 without brackets): how
 * many (at most max), or -1 when it does not resolve. Tests replace it. */
typedef int (*endpoints_resolver_fn)(const char *host, char out[][64], int max);

/* 0 when spec is a valid setting; -1 with why set otherwise. */
int endpoints_check(const char *spec, char *why, size_t why_size);

/* NULL when spec is not valid. Nothing is resolved until the first
 * endpoints_refresh. resolver NULL: the system's (getaddrinfo). */
endpoints_t *endpoints_new(const char *spec, endpoints_resolver_fn resolver);
void endpoints_destroy(endpoints_t **self_p);

/* Called once for every endpoint that appeared (added) or vanished. */
typedef void (*endpoints_change_fn)(void *arg, const char *endpoint, bool added);

/* Resolve again when ENDPOINTS_REFRESH_MS passed since the last time (or
 * always, when force), calling fn for each change. now_ms is any clock the
 * caller keeps using. Returns how many changes were reported. */
int endpoints_refresh(endpoints_t *self, int64_t now_ms, bool force, endpoints_change_fn fn, void *arg);

/* The current endpoints, sorted. */
int endpoints_count(const endpoints_t *self);
const char *endpoints_at(const endpoints_t *self, int i);

/* Resolve spec once into out (for a one-off probe of every instance):
 * how many endpoints, or -1 when spec is not valid. */
int endpoints_resolve_once(const char *spec, char out[][ENDPOINTS_LEN], int max);

#endif
