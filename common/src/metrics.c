/* metrics.c - Prometheus registry: atomics for values, a mutex only for
 * registration and rendering. */
#include "holdfast/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "holdfast/alloc.h"

#define METRICS_MAX_BUCKETS 32

typedef enum { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_kind_t;

struct hf_metric {
    metric_kind_t kind;
    char *labels;           /* owned; NULL when none */
    _Atomic uint64_t count; /* counter value, or histogram observation count */
    _Atomic double value;   /* gauge value, or histogram sum */
    hf_gauge_fn fn;         /* when set, the gauge is computed at render time */
    void *fn_arg;           /* argument for fn */
    double bounds[METRICS_MAX_BUCKETS];
    size_t nbuckets;
    _Atomic uint64_t buckets[METRICS_MAX_BUCKETS]; /* non-cumulative counts per bucket */
    hf_metric_t *next;                             /* next series of the same family */
};

typedef struct metrics_family {
    char *name; /* owned */
    char *help; /* owned */
    metric_kind_t kind;
    hf_metric_t *series; /* owned list, in registration order */
    hf_metric_t *last;
    struct metrics_family *next;
} metrics_family_t;

struct hf_metrics {
    pthread_mutex_t lock; /* guards the family and series lists */
    metrics_family_t *families, *last;
};

static const double metrics_default_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};

hf_metrics_t *hf_metrics_new(void)
{
    hf_metrics_t *reg = hf_calloc(1, sizeof *reg);
    pthread_mutex_init(&reg->lock, NULL);
    return reg;
}

void hf_metrics_free(hf_metrics_t *reg)
{
    if (!reg)
        return;
    metrics_family_t *f = reg->families;
    while (f) {
        metrics_family_t *fnext = f->next;
        for (hf_metric_t *m = f->series, *mnext; m; m = mnext) {
            mnext = m->next;
            hf_free(m->labels);
            hf_free(m);
        }
        hf_free(f->name);
        hf_free(f->help);
        hf_free(f);
        f = fnext;
    }
    pthread_mutex_destroy(&reg->lock);
    hf_free(reg);
}

static metrics_family_t *metrics_family_get(hf_metrics_t *reg, const char *name, const char *help,
                                            metric_kind_t kind)
{
    for (metrics_family_t *f = reg->families; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    metrics_family_t *f = hf_calloc(1, sizeof *f);
    f->name = hf_strdup(name);
    f->help = hf_strdup(help);
    f->kind = kind;
    if (reg->last)
        reg->last->next = f;
    else
        reg->families = f;
    reg->last = f;
    return f;
}

static hf_metric_t *metrics_add(hf_metrics_t *reg, const char *name, const char *labels,
                                const char *help, metric_kind_t kind)
{
    hf_metric_t *m = hf_calloc(1, sizeof *m);
    m->kind = kind;
    m->labels = labels && labels[0] ? hf_strdup(labels) : NULL;
    pthread_mutex_lock(&reg->lock);
    metrics_family_t *f = metrics_family_get(reg, name, help, kind);
    if (f->last)
        f->last->next = m;
    else
        f->series = m;
    f->last = m;
    pthread_mutex_unlock(&reg->lock);
    return m;
}

hf_metric_t *hf_metrics_counter(hf_metrics_t *reg, const char *name, const char *labels,
                                const char *help)
{
    return metrics_add(reg, name, labels, help, METRIC_COUNTER);
}

hf_metric_t *hf_metrics_gauge(hf_metrics_t *reg, const char *name, const char *labels,
                              const char *help)
{
    return metrics_add(reg, name, labels, help, METRIC_GAUGE);
}

hf_metric_t *hf_metrics_gauge_fn(hf_metrics_t *reg, const char *name, const char *labels,
                                 const char *help, hf_gauge_fn fn, void *arg)
{
    hf_metric_t *m = metrics_add(reg, name, labels, help, METRIC_GAUGE);
    m->fn = fn;
    m->fn_arg = arg;
    return m;
}

hf_metric_t *hf_metrics_histogram(hf_metrics_t *reg, const char *name, const char *labels,
                                  const char *help, const double *buckets, size_t nbuckets)
{
    if (!buckets) {
        buckets = metrics_default_buckets;
        nbuckets = sizeof metrics_default_buckets / sizeof metrics_default_buckets[0];
    }
    if (nbuckets > METRICS_MAX_BUCKETS)
        nbuckets = METRICS_MAX_BUCKETS;
    hf_metric_t *m = metrics_add(reg, name, labels, help, METRIC_HISTOGRAM);
    memcpy(m->bounds, buckets, nbuckets * sizeof *buckets);
    m->nbuckets = nbuckets;
    return m;
}

void hf_counter_add(hf_metric_t *m, uint64_t n)
{
    atomic_fetch_add_explicit(&m->count, n, memory_order_relaxed);
}

void hf_counter_inc(hf_metric_t *m)
{
    hf_counter_add(m, 1);
}

uint64_t hf_counter_value(const hf_metric_t *m)
{
    return atomic_load_explicit(&m->count, memory_order_relaxed);
}

void hf_gauge_set(hf_metric_t *m, double v)
{
    atomic_store_explicit(&m->value, v, memory_order_relaxed);
}

static void metrics_add_double(_Atomic double *target, double delta)
{
    double old = atomic_load_explicit(target, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(target, &old, old + delta, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

void hf_gauge_add(hf_metric_t *m, double delta)
{
    metrics_add_double(&m->value, delta);
}

double hf_gauge_value(const hf_metric_t *m)
{
    return m->fn ? m->fn(m->fn_arg) : atomic_load_explicit(&m->value, memory_order_relaxed);
}

void hf_histogram_observe(hf_metric_t *m, double v)
{
    size_t i = 0;
    while (i < m->nbuckets && v > m->bounds[i])
        i++;
    if (i < m->nbuckets)
        atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
    metrics_add_double(&m->value, v);
}

static void metrics_series_name(hf_buf_t *out, const char *name, const char *suffix,
                                const char *labels, const char *extra)
{
    hf_buf_printf(out, "%s%s", name, suffix);
    if (labels || extra)
        hf_buf_printf(out, "{%s%s%s}", labels ? labels : "", labels && extra ? "," : "",
                      extra ? extra : "");
}

static void metrics_double(hf_buf_t *out, double v)
{
    if (isinf(v))
        hf_buf_append_str(out, v > 0 ? "+Inf" : "-Inf");
    else if (isnan(v))
        hf_buf_append_str(out, "NaN");
    else
        hf_buf_printf(out, "%.17g", v);
}

static void metrics_render_histogram(hf_buf_t *out, const char *name, const hf_metric_t *m)
{
    uint64_t cumulative = 0;
    char le[64];
    for (size_t i = 0; i < m->nbuckets; i++) {
        cumulative += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
        snprintf(le, sizeof le, "le=\"%.17g\"", m->bounds[i]);
        metrics_series_name(out, name, "_bucket", m->labels, le);
        hf_buf_printf(out, " %llu\n", (unsigned long long)cumulative);
    }
    uint64_t count = atomic_load_explicit(&m->count, memory_order_relaxed);
    metrics_series_name(out, name, "_bucket", m->labels, "le=\"+Inf\"");
    hf_buf_printf(out, " %llu\n", (unsigned long long)count);
    metrics_series_name(out, name, "_sum", m->labels, NULL);
    hf_buf_append(out, " ", 1);
    metrics_double(out, atomic_load_explicit(&m->value, memory_order_relaxed));
    hf_buf_append(out, "\n", 1);
    metrics_series_name(out, name, "_count", m->labels, NULL);
    hf_buf_printf(out, " %llu\n", (unsigned long long)count);
}

void hf_metrics_render(hf_metrics_t *reg, hf_buf_t *out)
{
    static const char *const kind_names[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&reg->lock);
    for (metrics_family_t *f = reg->families; f; f = f->next) {
        hf_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                      kind_names[f->kind]);
        for (hf_metric_t *m = f->series; m; m = m->next) {
            if (m->kind == METRIC_HISTOGRAM) {
                metrics_render_histogram(out, f->name, m);
                continue;
            }
            metrics_series_name(out, f->name, "", m->labels, NULL);
            hf_buf_append(out, " ", 1);
            if (m->kind == METRIC_COUNTER)
                hf_buf_printf(out, "%llu", (unsigned long long)hf_counter_value(m));
            else
                metrics_double(out, hf_gauge_value(m));
            hf_buf_append(out, "\n", 1);
        }
    }
    pthread_mutex_unlock(&reg->lock);
}
