/* metrics: counters, gauges and latency histograms in Prometheus text form.
 *
 * Series are identified by name and a label string such as
 * `method="user.get",code="OK"`; the caller quotes label values it built
 * from outside input with metrics_label(). Thread-safe. */
#ifndef PORTICO_METRICS_H
#define PORTICO_METRICS_H

#include <stddef.h>

void metrics_inc(const char *name, const char *labels, double n);
void metrics_set(const char *name, const char *labels, double value);
/* Record one duration in seconds in a histogram. */
void metrics_observe(const char *name, const char *labels, double seconds);
/* Declare help text for a name (shown as # HELP). */
void metrics_help(const char *name, const char *type, const char *help);
/* The whole exposition, malloc'd. */
char *metrics_render(void);
/* Copy value into out with " and \ escaped and newlines dropped. */
const char *metrics_label(const char *value, char *out, size_t out_size);
/* Forget every series (tests). */
void metrics_reset(void);

#endif
