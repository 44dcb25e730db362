#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERIES 1024
#define MAX_HELP 64
static const double s_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof s_buckets / sizeof s_buckets[0])

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind_t;

typedef struct {
    char name[64];
    char labels[192];
    kind_t kind;
    double value; /* counter, gauge; sum for histograms */
    unsigned long count;
    unsigned long buckets[NBUCKETS];
} series_t;

typedef struct {
    char name[64];
    char type[16];
    char help[160];
} help_t;

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static series_t s_series[MAX_SERIES];
static int s_count;
static help_t s_help[MAX_HELP];
static int s_help_count;

static series_t *s_find(const char *name, const char *labels, kind_t kind)
{
    labels = labels ? labels : "";
    for (int i = 0; i < s_count; i++)
        if (!strcmp(s_series[i].name, name) && !strcmp(s_series[i].labels, labels))
            return &s_series[i];
    if (s_count == MAX_SERIES)
        return NULL;
    series_t *s = &s_series[s_count++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->labels, sizeof s->labels, "%s", labels);
    s->kind = kind;
    return s;
}

void metrics_inc(const char *name, const char *labels, double n)
{
    pthread_mutex_lock(&s_lock);
    series_t *s = s_find(name, labels, KIND_COUNTER);
    if (s)
        s->value += n;
    pthread_mutex_unlock(&s_lock);
}

void metrics_set(const char *name, const char *labels, double value)
{
    pthread_mutex_lock(&s_lock);
    series_t *s = s_find(name, labels, KIND_GAUGE);
    if (s)
        s->value = value;
    pthread_mutex_unlock(&s_lock);
}

void metrics_observe(const char *name, const char *labels, double seconds)
{
    pthread_mutex_lock(&s_lock);
    series_t *s = s_find(name, labels, KIND_HISTOGRAM);
    if (s) {
        s->value += seconds;
        s->count++;
        for (size_t b = 0; b < NBUCKETS; b++)
            if (seconds <= s_buckets[b])
                s->buckets[b]++;
    }
    pthread_mutex_unlock(&s_lock);
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
    for (int i = 0; i < s_count; i++) {
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
        for (int j = i; j < s_count; j++) {
            series_t *t = &s_series[j];
            if (strcmp(t->name, s->name))
                continue;
            const char *sep = t->labels[0] ? "," : "";
            if (t->kind != KIND_HISTOGRAM) {
                s_append(&b, "%s%s%s%s %.17g\n", t->name, t->labels[0] ? "{" : "", t->labels, t->labels[0] ? "}" : "",
                         t->value);
                continue;
            }
            for (size_t k = 0; k < NBUCKETS; k++)
                s_append(&b, "%s_bucket{%s%sle=\"%g\"} %lu\n", t->name, t->labels, sep, s_buckets[k], t->buckets[k]);
            s_append(&b, "%s_bucket{%s%sle=\"+Inf\"} %lu\n", t->name, t->labels, sep, t->count);
            s_append(&b, "%s_sum%s%s%s %.9f\n", t->name, t->labels[0] ? "{" : "", t->labels, t->labels[0] ? "}" : "",
                     t->value);
            s_append(&b, "%s_count%s%s%s %lu\n", t->name, t->labels[0] ? "{" : "", t->labels, t->labels[0] ? "}" : "",
                     t->count);
        }
    }
    pthread_mutex_unlock(&s_lock);
    return b.buf;
}

void metrics_reset(void)
{
    pthread_mutex_lock(&s_lock);
    s_count = 0;
    s_help_count = 0;
    pthread_mutex_unlock(&s_lock);
}
