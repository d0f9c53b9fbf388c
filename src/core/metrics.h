/* Prometheus metrics: counters, gauges and histograms registered at start-up, updated
 * lock-free from any thread, rendered in the text exposition format. */
#ifndef SLUICE_CORE_METRICS_H
#define SLUICE_CORE_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/buf.h"

struct metric {
    const char *name;
    const char *help;
    const char *type;   /* "counter" or "gauge" */
    const char *labels; /* e.g. "outcome=\"success\"", or NULL; static storage */
    _Atomic int64_t value;
    struct metric *next;
};

#define METRIC_HIST_BUCKETS 14

struct histogram {
    const char *name; /* without _bucket/_sum/_count; values in seconds */
    const char *help;
    const char *labels;
    _Atomic uint64_t counts[METRIC_HIST_BUCKETS + 1]; /* last: +Inf */
    _Atomic uint64_t sum_us;
    struct histogram *next;
};

/* A gauge whose value is computed when /metrics is scraped; appends its lines to out. */
struct metric_fn {
    void (*render)(struct buf *out);
    struct metric_fn *next;
};

/* Registration happens on the main thread before the HTTP server starts. */
void metric_register(struct metric *m);
void histogram_register(struct histogram *h);
void metric_fn_register(struct metric_fn *f);

static inline void metric_add(struct metric *m, int64_t n)
{
    atomic_fetch_add_explicit(&m->value, n, memory_order_relaxed);
}
static inline void metric_set(struct metric *m, int64_t v)
{
    atomic_store_explicit(&m->value, v, memory_order_relaxed);
}
/* Records one observation of a duration in nanoseconds. */
void histogram_observe_ns(struct histogram *h, int64_t ns);

/* Appends every registered metric in the text exposition format. */
void metrics_render(struct buf *out);

#endif
