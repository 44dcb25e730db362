#include "metrics.h"

#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every HTTP request and bus call records a few series, from many threads
 * at once: finding a series is a lock-free probe of an open-addressing
 * table, and updating it is a handful of atomic operations. The lock is
 * taken only to create a series (once per name and labels) and to render. */

#define MAX_SERIES 1024
#define TABLE_SIZE 2048 /* a power of two, at most half full */
#define MAX_HELP 64
static const double s_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof s_buckets / sizeof s_buckets[0])

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind_t;

typedef struct {
    char name[64];
    char labels[192];
    uint32_t hash;
    kind_t kind;
    _Atomic uint64_t value; /* the bits of a double: counter, gauge; sum for histograms */
    atomic_ulong count;
    atomic_ulong buckets[NBUCKETS]; /* per bucket, not cumulative: rendering adds them up */
} series_t;

typedef struct {
    char name[64];
    char type[16];
    char help[160];
} help_t;

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static series_t s_series[MAX_SERIES];
/* Updates of series that found no room: said once in the log and always
 * on /metrics, so that a full table is not silent. */
static _Atomic uint64_t s_dropped;
static atomic_int s_count;
static series_t *_Atomic s_table[TABLE_SIZE];
static help_t s_help[MAX_HELP];
static int s_help_count;

static uint32_t s_hash(const char *name, const char *labels)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ 0xffu) * 16777619u;
    for (const char *p = labels; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

/* Probe for name+labels; *slot_out is where it is, or the empty slot that
 * ends its probe sequence. */
static series_t *s_probe(const char *name, const char *labels, uint32_t h, size_t *slot_out)
{
    for (size_t i = 0, slot = h & (TABLE_SIZE - 1); i < TABLE_SIZE; i++, slot = (slot + 1) & (TABLE_SIZE - 1)) {
        series_t *s = atomic_load_explicit(&s_table[slot], memory_order_acquire);
        if (!s) {
            *slot_out = slot;
            return NULL;
        }
        if (s->hash == h && !strcmp(s->name, name) && !strcmp(s->labels, labels))
            return s;
    }
    *slot_out = TABLE_SIZE;
    return NULL;
}

static series_t *s_find(const char *name, const char *labels, kind_t kind)
{
    labels = labels ? labels : "";
    /* A series keeps its name and labels cut to size: look for them so. */
    char nbuf[sizeof s_series[0].name], lbuf[sizeof s_series[0].labels];
    if (strlen(name) >= sizeof nbuf) {
        snprintf(nbuf, sizeof nbuf, "%s", name);
        name = nbuf;
    }
    if (strlen(labels) >= sizeof lbuf) {
        snprintf(lbuf, sizeof lbuf, "%s", labels);
        labels = lbuf;
    }
    uint32_t h = s_hash(name, labels);
    size_t slot;
    series_t *s = s_probe(name, labels, h, &slot);
    if (s)
        return s;
    pthread_mutex_lock(&s_lock);
    /* Another thread may have made it meanwhile. */
    s = s_probe(name, labels, h, &slot);
    int n = atomic_load_explicit(&s_count, memory_order_relaxed);
    if (!s && slot < TABLE_SIZE && n < MAX_SERIES) {
        s = &s_series[n];
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "%s", name);
        snprintf(s->labels, sizeof s->labels, "%s", labels);
        s->hash = h;
        s->kind = kind;
        atomic_store_explicit(&s_count, n + 1, memory_order_release);
        atomic_store_explicit(&s_table[slot], s, memory_order_release);
    }
    pthread_mutex_unlock(&s_lock);
    if (!s && atomic_fetch_add_explicit(&s_dropped, 1, memory_order_relaxed) == 0)
        log_warn("the metrics table is full: new series are not counted (portico_metrics_dropped_total)",
                 "max_series=%d name=%s", MAX_SERIES, name);
    return s;
}

static double s_get(_Atomic uint64_t *bits)
{
    uint64_t v = atomic_load_explicit(bits, memory_order_relaxed);
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}

static void s_put(_Atomic uint64_t *bits, double d)
{
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    atomic_store_explicit(bits, v, memory_order_relaxed);
}

static void s_add(_Atomic uint64_t *bits, double n)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed), next;
    do {
        double d;
        memcpy(&d, &old, sizeof d);
        d += n;
        memcpy(&next, &d, sizeof next);
    } while (!atomic_compare_exchange_weak_explicit(bits, &old, next, memory_order_relaxed, memory_order_relaxed));
}

void metrics_inc(const char *name, const char *labels, double n)
{
    series_t *s = s_find(name, labels, KIND_COUNTER);
    if (s)
        s_add(&s->value, n);
}

void metrics_set(const char *name, const char *labels, double value)
{
    series_t *s = s_find(name, labels, KIND_GAUGE);
    if (s)
        s_put(&s->value, value);
}

void metrics_observe(const char *name, const char *labels, double seconds)
{
    series_t *s = s_find(name, labels, KIND_HISTOGRAM);
    if (!s)
        return;
    s_add(&s->value, seconds);
    for (size_t b = 0; b < NBUCKETS; b++) {
        if (seconds <= s_buckets[b]) {
            atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
            break;
        }
    }
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

void metrics_help(const char *name, const char *type, const char *help)
{
    pthread_mutex_lock(&s_lock);
    int i;
    for (i = 0; i < s_help_count; i++)
        if (!strcmp(s_help[i].name, name))
            break;
    if (i < MAX_HELP) {
        snprintf(s_help[i].name, sizeof s_help[i].name, "%s", name);
        snprintf(s_help[i].type, sizeof s_help[i].type, "%s", type);
        snprintf(s_help[i].help, sizeof s_help[i].help, "%s", help);
        if (i == s_help_count)
            s_help_count++;
    }
    pthread_mutex_unlock(&s_lock);
}

const char *metrics_label(const char *value, char *out, size_t out_size)
{
    size_t o = 0;
    for (const char *p = value ? value : ""; *p && o + 2 < out_size; p++) {
        if (*p == '\n' || *p == '\r')
            continue;
        if (*p == '"' || *p == '\\')
            out[o++] = '\\';
        out[o++] = *p;
    }
    out[o] = '\0';
    return out;
}

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf_t;

static void s_append(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_append(sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *nb = realloc(b->buf, cap);
        if (!nb)
            return;
        b->buf = nb;
        b->cap = cap;
    }
}

static const char *s_kind_name(kind_t k)
{
    return k == KIND_COUNTER ? "counter" : k == KIND_GAUGE ? "gauge" : "histogram";
}

char *metrics_render(void)
{
    sbuf_t b = {malloc(4096), 0, 4096};
    if (!b.buf)
        return NULL;
    b.buf[0] = '\0';
    pthread_mutex_lock(&s_lock);
    int count = atomic_load_explicit(&s_count, memory_order_acquire);
    for (int i = 0; i < count; i++) {
        series_t *s = &s_series[i];
        bool first = true;
        for (int j = 0; j < i; j++)
            if (!strcmp(s_series[j].name, s->name))
                first = false;
        if (!first)
            continue;
        for (int h = 0; h < s_help_count; h++)
            if (!strcmp(s_help[h].name, s->name))
                s_append(&b, "# HELP %s %s\n", s->name, s_help[h].help);
        s_append(&b, "# TYPE %s %s\n", s->name, s_kind_name(s->kind));
        for (int j = i; j < count; j++) {
            series_t *t = &s_series[j];
            if (strcmp(t->name, s->name))
                continue;
            const char *sep = t->labels[0] ? "," : "";
            if (t->kind != KIND_HISTOGRAM) {
                s_append(&b, "%s%s%s%s %.17g\n", t->name, t->labels[0] ? "{" : "", t->labels, t->labels[0] ? "}" : "",
                         s_get(&t->value));
                continue;
            }
            /* Observations go on while we read: keep the buckets
             * cumulative and never above the count. */
            unsigned long cum = 0;
            for (size_t k = 0; k < NBUCKETS; k++) {
                cum += atomic_load_explicit(&t->buckets[k], memory_order_relaxed);
                s_append(&b, "%s_bucket{%s%sle=\"%g\"} %lu\n", t->name, t->labels, sep, s_buckets[k], cum);
            }
            unsigned long n = atomic_load_explicit(&t->count, memory_order_relaxed);
            if (n < cum)
                n = cum;
            s_append(&b, "%s_bucket{%s%sle=\"+Inf\"} %lu\n", t->name, t->labels, sep, n);
            s_append(&b, "%s_sum%s%s%s %.9f\n", t->name, t->labels[0] ? "{" : "", t->labels, t->labels[0] ? "}" : "",
                     s_get(&t->value));
            s_append(&b, "%s_count%s%s%s %lu\n", t->name, t->labels[0] ? "{" : "", t->labels, t->labels[0] ? "}" : "",
                     n);
        }
    }
    pthread_mutex_unlock(&s_lock);
    s_append(&b,
             "# HELP portico_metrics_dropped_total Updates of series this process had no room for (%d at most).\n"
             "# TYPE portico_metrics_dropped_total counter\nportico_metrics_dropped_total %llu\n",
             MAX_SERIES, (unsigned long long)atomic_load_explicit(&s_dropped, memory_order_relaxed));
    return b.buf;
}

void metrics_reset(void)
{
    pthread_mutex_lock(&s_lock);
    for (size_t i = 0; i < TABLE_SIZE; i++)
        atomic_store_explicit(&s_table[i], NULL, memory_order_relaxed);
    atomic_store_explicit(&s_count, 0, memory_order_release);
    atomic_store_explicit(&s_dropped, 0, memory_order_relaxed);
    s_help_count = 0;
    pthread_mutex_unlock(&s_lock);
}
