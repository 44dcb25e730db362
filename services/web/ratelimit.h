/* ratelimit: token buckets per client and purpose, in memory (the web is
 * one instance). A bucket holds up to `burst` tokens and gains `per_minute`
 * a minute; a request that finds less than one token is refused and told
 * how many seconds to wait.
 *
 * The table has a fixed size: when it is full, the bucket that has been
 * left alone longest is forgotten. Forgetting only ever gives a client a
 * full bucket again, so a flood of addresses can weaken the limit for a
 * while but never lock anyone out. Safe to use from every civetweb thread. */
#ifndef PORTICO_WEB_RATELIMIT_H
#define PORTICO_WEB_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ratelimit_t ratelimit_t;

ratelimit_t *ratelimit_new(size_t slots);
void ratelimit_destroy(ratelimit_t **self_p);

/* Does key's bucket hold a token at now_ms? When take, one is used. 0 when
 * allowed, else the seconds until a token is there (at least 1). */
int ratelimit_check(ratelimit_t *self, const char *key, double burst, double per_minute, int64_t now_ms, bool take);

#endif
