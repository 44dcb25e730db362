#include "webcache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NSHARDS 16 /* a power of two */

typedef struct entry_t {
    struct entry_t *next;
    /* The shard's entries of the same owner (owner != 0), so a user's
     * entries are found without scanning the shard. */
    struct entry_t *onext, **oprev;
    uint64_t hash;
    int64_t owner;
    int64_t expires_at;
    size_t key_len;
    size_t value_len;
    uint8_t data[]; /* key, then value */
} entry_t;

typedef struct {
    pthread_mutex_t lock;
    entry_t **buckets;
    entry_t **owners; /* by owner: chains through onext */
    size_t nbuckets;  /* a power of two, of both */
    size_t count;
    size_t bytes;
} shard_t;

struct webcache_t {
    shard_t shards[NSHARDS];
    size_t max_entries; /* per shard */
    size_t max_bytes;   /* per shard */
    atomic_uint_fast64_t epoch;
};

static uint64_t s_hash(const void *key, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a, 64 bits */
    for (const uint8_t *p = key; len--; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h ^ (h >> 29);
}

static shard_t *s_shard(webcache_t *self, uint64_t hash)
{
    return &self->shards[hash & (NSHARDS - 1)];
}

static size_t s_slot(const shard_t *sh, uint64_t hash)
{
    return (size_t)(hash >> 4) & (sh->nbuckets - 1);
}

static size_t s_owner_slot(const shard_t *sh, int64_t owner)
{
    return (size_t)s_hash(&owner, sizeof owner) & (sh->nbuckets - 1);
}

static size_t s_size(const entry_t *e)
{
    return e->key_len + e->value_len;
}

/* Unlink and free the entry that *link points at. */
static void s_drop(shard_t *sh, entry_t **link)
{
    entry_t *e = *link;
    *link = e->next;
    if (e->oprev) {
        *e->oprev = e->onext;
        if (e->onext)
            e->onext->oprev = e->oprev;
    }
    sh->count--;
    sh->bytes -= s_size(e);
    free(e);
}

static entry_t **s_find(shard_t *sh, uint64_t hash, const void *key, size_t key_len)
{
    entry_t **link = &sh->buckets[s_slot(sh, hash)];
    for (; *link; link = &(*link)->next) {
        entry_t *e = *link;
        if (e->hash == hash && e->key_len == key_len && !memcmp(e->data, key, key_len))
            return link;
    }
    return NULL;
}

/* Make room for one more entry of size bytes: the entries that expire
 * soonest go first (so those already expired), one scan of the shard each;
 * this happens only when the cache is full. */
static void s_make_room(webcache_t *self, shard_t *sh, size_t size)
{
    while (sh->count && (sh->count >= self->max_entries || sh->bytes + size > self->max_bytes)) {
        entry_t **soonest = NULL;
        for (size_t b = 0; b < sh->nbuckets; b++)
            for (entry_t **link = &sh->buckets[b]; *link; link = &(*link)->next)
                if (!soonest || (*link)->expires_at < (*soonest)->expires_at)
                    soonest = link;
        s_drop(sh, soonest);
    }
}

webcache_t *webcache_new(size_t max_entries, size_t max_bytes)
{
    webcache_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->max_entries = max_entries / NSHARDS ? max_entries / NSHARDS : 1;
    self->max_bytes = max_bytes / NSHARDS ? max_bytes / NSHARDS : 1;
    size_t nbuckets = 16;
    while (nbuckets < self->max_entries)
        nbuckets *= 2;
    for (int i = 0; i < NSHARDS; i++) {
        shard_t *sh = &self->shards[i];
        pthread_mutex_init(&sh->lock, NULL);
        sh->nbuckets = nbuckets;
        sh->buckets = calloc(nbuckets, sizeof *sh->buckets);
        sh->owners = calloc(nbuckets, sizeof *sh->owners);
        if (!sh->buckets || !sh->owners) {
            webcache_destroy(&self);
            return NULL;
        }
    }
    return self;
}

void webcache_destroy(webcache_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    webcache_t *self = *self_p;
    for (int i = 0; i < NSHARDS; i++) {
        shard_t *sh = &self->shards[i];
        for (size_t b = 0; sh->buckets && b < sh->nbuckets; b++) {
            entry_t *e = sh->buckets[b];
            while (e) {
                entry_t *next = e->next;
                free(e);
                e = next;
            }
        }
        free(sh->buckets);
        free(sh->owners);
        pthread_mutex_destroy(&sh->lock);
    }
    free(self);
    *self_p = NULL;
}

uint64_t webcache_epoch(webcache_t *self)
{
    return atomic_load(&self->epoch);
}

int webcache_put(webcache_t *self, uint64_t epoch, const void *key, size_t key_len, int64_t owner, const void *value,
                 size_t value_len, int64_t expires_at)
{
    if (key_len > WEBCACHE_MAX_KEY || key_len + value_len > self->max_bytes)
        return -1;
    entry_t *e = malloc(sizeof *e + key_len + value_len);
    if (!e)
        return -1;
    e->hash = s_hash(key, key_len);
    e->onext = NULL;
    e->oprev = NULL;
    e->owner = owner;
    e->expires_at = expires_at;
    e->key_len = key_len;
    e->value_len = value_len;
    memcpy(e->data, key, key_len);
    if (value_len)
        memcpy(e->data + key_len, value, value_len);
    shard_t *sh = s_shard(self, e->hash);
    pthread_mutex_lock(&sh->lock);
    /* Checked under the shard lock: a removal bumps the epoch before it
     * takes any shard lock, so it either stops this put or finds its entry. */
    if (atomic_load(&self->epoch) != epoch) {
        pthread_mutex_unlock(&sh->lock);
        free(e);
        return -1;
    }
    entry_t **old = s_find(sh, e->hash, key, key_len);
    if (old)
        s_drop(sh, old);
    s_make_room(self, sh, s_size(e));
    entry_t **head = &sh->buckets[s_slot(sh, e->hash)];
    e->next = *head;
    *head = e;
    if (owner) {
        entry_t **ohead = &sh->owners[s_owner_slot(sh, owner)];
        e->onext = *ohead;
        if (*ohead)
            (*ohead)->oprev = &e->onext;
        e->oprev = ohead;
        *ohead = e;
    }
    sh->count++;
    sh->bytes += s_size(e);
    pthread_mutex_unlock(&sh->lock);
    return 0;
}

/* With the shard locked: the live entry for key, or NULL (an expired one
 * is dropped on the way). */
static entry_t *s_lookup(shard_t *sh, uint64_t hash, const void *key, size_t key_len, int64_t now)
{
    entry_t **link = s_find(sh, hash, key, key_len);
    if (!link)
        return NULL;
    if ((*link)->expires_at <= now) {
        s_drop(sh, link);
        return NULL;
    }
    return *link;
}

long webcache_get(webcache_t *self, const void *key, size_t key_len, int64_t now, void *out, size_t out_size)
{
    uint64_t hash = s_hash(key, key_len);
    shard_t *sh = s_shard(self, hash);
    long n = -1;
    pthread_mutex_lock(&sh->lock);
    entry_t *e = s_lookup(sh, hash, key, key_len, now);
    if (e && e->value_len <= out_size) {
        memcpy(out, e->data + e->key_len, e->value_len);
        n = (long)e->value_len;
    }
    pthread_mutex_unlock(&sh->lock);
    return n;
}

void *webcache_get_copy(webcache_t *self, const void *key, size_t key_len, int64_t now, size_t *value_len)
{
    uint64_t hash = s_hash(key, key_len);
    shard_t *sh = s_shard(self, hash);
    void *out = NULL;
    pthread_mutex_lock(&sh->lock);
    entry_t *e = s_lookup(sh, hash, key, key_len, now);
    if (e && (out = malloc(e->value_len ? e->value_len : 1)) != NULL) {
        memcpy(out, e->data + e->key_len, e->value_len);
        *value_len = e->value_len;
    }
    pthread_mutex_unlock(&sh->lock);
    return out;
}

void webcache_remove(webcache_t *self, const void *key, size_t key_len)
{
    uint64_t hash = s_hash(key, key_len);
    shard_t *sh = s_shard(self, hash);
    atomic_fetch_add(&self->epoch, 1);
    pthread_mutex_lock(&sh->lock);
    entry_t **link = s_find(sh, hash, key, key_len);
    if (link)
        s_drop(sh, link);
    pthread_mutex_unlock(&sh->lock);
}

bool webcache_forget(webcache_t *self, const void *key, size_t key_len)
{
    uint64_t hash = s_hash(key, key_len);
    shard_t *sh = s_shard(self, hash);
    pthread_mutex_lock(&sh->lock);
    entry_t **link = s_find(sh, hash, key, key_len);
    if (link) {
        /* Under the shard lock, which a put of this key takes to check
         * the epoch: it lands before this (and is dropped) or sees it. */
        atomic_fetch_add(&self->epoch, 1);
        s_drop(sh, link);
    }
    pthread_mutex_unlock(&sh->lock);
    return link != NULL;
}

void webcache_remove_owner(webcache_t *self, int64_t owner)
{
    atomic_fetch_add(&self->epoch, 1);
    for (int i = 0; i < NSHARDS; i++) {
        shard_t *sh = &self->shards[i];
        pthread_mutex_lock(&sh->lock);
        entry_t *e = sh->owners[s_owner_slot(sh, owner)];
        while (e) {
            entry_t *next = e->onext;
            if (e->owner == owner)
                s_drop(sh, s_find(sh, e->hash, e->data, e->key_len));
            e = next;
        }
        pthread_mutex_unlock(&sh->lock);
    }
}

void webcache_clear(webcache_t *self)
{
    atomic_fetch_add(&self->epoch, 1);
    for (int i = 0; i < NSHARDS; i++) {
        shard_t *sh = &self->shards[i];
        pthread_mutex_lock(&sh->lock);
        for (size_t b = 0; b < sh->nbuckets && sh->count; b++)
            while (sh->buckets[b])
                s_drop(sh, &sh->buckets[b]);
        pthread_mutex_unlock(&sh->lock);
    }
}

size_t webcache_count(webcache_t *self)
{
    size_t n = 0;
    for (int i = 0; i < NSHARDS; i++) {
        pthread_mutex_lock(&self->shards[i].lock);
        n += self->shards[i].count;
        pthread_mutex_unlock(&self->shards[i].lock);
    }
    return n;
}
