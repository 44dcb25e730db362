/* webcache: a small thread-safe cache of byte strings with an expiry, for
 * the web's hot read paths (sessions, the account page's user record and
 * repository lists).
 *
 * Every entry has a key, an owner (a user id, 0 for none) and an absolute
 * expiry on a clock the caller chooses (a monotonic one; nothing here reads
 * a clock). Values are copied in and out. Removals are immediate: by key,
 * by owner, or all at once.
 *
 * A value fetched from elsewhere must not outlive a removal that happened
 * while it was being fetched (a session ended during its own lookup).
 * Read webcache_epoch() before fetching and hand it to webcache_put(): the
 * put is dropped when anything was removed in between.
 *
 * The cache is bounded in entries and in bytes; when full, the entries
 * closest to their expiry (so expired ones first) make room. Thread-safe:
 * the table is split into shards, each with its own lock. */
#ifndef PORTICO_WEB_WEBCACHE_H
#define PORTICO_WEB_WEBCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct webcache_t webcache_t;

#define WEBCACHE_MAX_KEY 64

/* NULL on failure. max_entries and max_bytes (of keys and values) bound
 * what the cache holds. */
webcache_t *webcache_new(size_t max_entries, size_t max_bytes);
void webcache_destroy(webcache_t **self_p);

/* Changes with every removal. */
uint64_t webcache_epoch(webcache_t *self);

/* Keep a copy of value under key until expires_at (exclusive), unless
 * something was removed since epoch was read, the key is longer than
 * WEBCACHE_MAX_KEY, or the value does not fit. Replaces an entry with the
 * same key. 0 when stored, -1 otherwise. */
int webcache_put(webcache_t *self, uint64_t epoch, const void *key, size_t key_len, int64_t owner, const void *value,
                 size_t value_len, int64_t expires_at);

/* Copy the value of key into out when it is there, not expired at now and
 * at most out_size bytes. Its length, or -1. */
long webcache_get(webcache_t *self, const void *key, size_t key_len, int64_t now, void *out, size_t out_size);
/* The same into a fresh buffer (free it); NULL when absent or expired. */
void *webcache_get_copy(webcache_t *self, const void *key, size_t key_len, int64_t now, size_t *value_len);

void webcache_remove(webcache_t *self, const void *key, size_t key_len);
/* Remove key when it is cached; the epoch moves only then (true). For a
 * key nobody may have cached: a client can send any number of cookies
 * naming no session, and each webcache_remove would fail every put in
 * flight, making the cache useless for everyone. */
bool webcache_forget(webcache_t *self, const void *key, size_t key_len);
void webcache_remove_owner(webcache_t *self, int64_t owner);
void webcache_clear(webcache_t *self);

/* Entries held now, expired ones included (tests, metrics). */
size_t webcache_count(webcache_t *self);

#endif
