#include "ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 16
#define PROBES 4

typedef struct {
    uint64_t hash; /* 0: empty */
    double tokens;
    int64_t last_ms;
} bucket_t;

typedef struct {
    pthread_mutex_t lock;
    bucket_t *slots;
    size_t n;
} shard_t;

struct ratelimit_t {
    shard_t shards[SHARDS];
};

static uint64_t s_hash(const char *key)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h ? h : 1;
}

ratelimit_t *ratelimit_new(size_t slots)
{
    ratelimit_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    size_t per = slots / SHARDS < PROBES ? PROBES : slots / SHARDS;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&self->shards[i].lock, NULL);
        self->shards[i].n = per;
        self->shards[i].slots = calloc(per, sizeof(bucket_t));
        if (!self->shards[i].slots) {
            ratelimit_destroy(&self);
            return NULL;
        }
    }
    return self;
}

void ratelimit_destroy(ratelimit_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ratelimit_t *self = *self_p;
    for (int i = 0; i < SHARDS; i++) {
        free(self->shards[i].slots);
        pthread_mutex_destroy(&self->shards[i].lock);
    }
    free(self);
    *self_p = NULL;
}

int ratelimit_check(ratelimit_t *self, const char *key, double burst, double per_minute, int64_t now_ms, bool take)
{
    uint64_t h = s_hash(key);
    shard_t *s = &self->shards[h % SHARDS];
    int wait = 0;
    pthread_mutex_lock(&s->lock);
    size_t start = (size_t)((h / SHARDS) % s->n);
    bucket_t *b = NULL, *victim = NULL;
    for (size_t i = 0; i < PROBES; i++) {
        bucket_t *c = &s->slots[(start + i) % s->n];
        if (c->hash == h) {
            b = c;
            break;
        }
        if (!victim || c->hash == 0 || (victim->hash != 0 && c->last_ms < victim->last_ms))
            victim = c;
    }
    if (!b) {
        b = victim;
        b->hash = h;
        b->tokens = burst;
        b->last_ms = now_ms;
    }
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * per_minute / 60000.0;
        if (b->tokens > burst)
            b->tokens = burst;
        b->last_ms = now_ms;
    }
    if (b->tokens >= 1.0) {
        if (take)
            b->tokens -= 1.0;
    } else {
        double w = (1.0 - b->tokens) * 60.0 / per_minute;
        wait = (int)w;
        if ((double)wait < w)
            wait++;
        if (wait < 1)
            wait = 1;
    }
    pthread_mutex_unlock(&s->lock);
    return wait;
}
