/* metrics.h - Prometheus text-format metrics.
 *
 * A registry owns families (one name, one type, one help text) and their
 * series (one label set each). Register at start-up; update from any
 * thread (values are atomics, no locks on the hot path); render from the
 * thread serving /metrics. Names follow Prometheus conventions: prefix
 * holdfast_, base units (seconds, bytes), counters end in _total.
 *
 * Ownership: the registry owns every hf_metric_t it returns; they live
 * until hf_metrics_free(). */
#ifndef HOLDFAST_METRICS_H
#define HOLDFAST_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "holdfast/buf.h"

typedef struct hf_metrics hf_metrics_t;
typedef struct hf_metric hf_metric_t;

/* Returns a value for a gauge computed at scrape time. */
typedef double (*hf_gauge_fn)(void *arg);

hf_metrics_t *hf_metrics_new(void);
void hf_metrics_free(hf_metrics_t *reg);

/* labels is the inside of the braces, e.g. "code=\"201\"", or NULL. */
hf_metric_t *hf_metrics_counter(hf_metrics_t *reg, const char *name, const char *labels,
                                const char *help);
hf_metric_t *hf_metrics_gauge(hf_metrics_t *reg, const char *name, const char *labels,
                              const char *help);
hf_metric_t *hf_metrics_gauge_fn(hf_metrics_t *reg, const char *name, const char *labels,
                                 const char *help, hf_gauge_fn fn, void *arg);
/* buckets: ascending upper bounds (the +Inf bucket is implicit); NULL for
 * the default latency buckets (0.5 ms .. 10 s). */
hf_metric_t *hf_metrics_histogram(hf_metrics_t *reg, const char *name, const char *labels,
                                  const char *help, const double *buckets, size_t nbuckets);

void hf_counter_add(hf_metric_t *m, uint64_t n);
void hf_counter_inc(hf_metric_t *m);
uint64_t hf_counter_value(const hf_metric_t *m);
void hf_gauge_set(hf_metric_t *m, double v);
void hf_gauge_add(hf_metric_t *m, double delta);
double hf_gauge_value(const hf_metric_t *m);
void hf_histogram_observe(hf_metric_t *m, double v);

/* Appends the whole registry in Prometheus text exposition format 0.0.4. */
void hf_metrics_render(hf_metrics_t *reg, hf_buf_t *out);

#endif
