/* Metric registry and rendering. Registration: main thread at start-up; updates: any
 * thread (atomics); rendering: HTTP threads. */
#include "core/metrics.h"

#include <string.h>

static struct metric *g_metrics, **g_metrics_tail = &g_metrics;
static struct histogram *g_hists, **g_hists_tail = &g_hists;
static struct metric_fn *g_fns, **g_fns_tail = &g_fns;

/* Upper bounds in microseconds: 0.5 ms .. 10 s. */
static const uint64_t bounds_us[METRIC_HIST_BUCKETS] = {500,     1000,    2500,    5000,    10000,
                                                        25000,   50000,   100000,  250000,  500000,
                                                        1000000, 2500000, 5000000, 10000000};

void metric_register(struct metric *m)
{
    m->next = NULL;
    *g_metrics_tail = m;
    g_metrics_tail = &m->next;
}

void histogram_register(struct histogram *h)
{
    h->next = NULL;
    *g_hists_tail = h;
    g_hists_tail = &h->next;
}

void metric_fn_register(struct metric_fn *f)
{
    f->next = NULL;
    *g_fns_tail = f;
    g_fns_tail = &f->next;
}

void histogram_observe_ns(struct histogram *h, int64_t ns)
{
    uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
    int i = 0;
    while (i < METRIC_HIST_BUCKETS && us > bounds_us[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}

static void render_metrics(struct buf *out)
{
    for (struct metric *m = g_metrics; m; m = m->next) {
        int seen = 0;
        for (struct metric *p = g_metrics; p != m; p = p->next)
            if (!strcmp(p->name, m->name))
                seen = 1;
        if (seen)
            continue;
        buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, m->type);
        for (struct metric *s = m; s; s = s->next) {
            if (strcmp(s->name, m->name))
                continue;
            long long v = (long long)atomic_load_explicit(&s->value, memory_order_relaxed);
            if (s->labels)
                buf_printf(out, "%s{%s} %lld\n", s->name, s->labels, v);
            else
                buf_printf(out, "%s %lld\n", s->name, v);
        }
    }
}

static void render_hists(struct buf *out)
{
    for (struct histogram *h = g_hists; h; h = h->next) {
        int seen = 0;
        for (struct histogram *p = g_hists; p != h; p = p->next)
            if (!strcmp(p->name, h->name))
                seen = 1;
        if (seen)
            continue;
        buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", h->name, h->help, h->name);
        for (struct histogram *s = h; s; s = s->next) {
            if (strcmp(s->name, h->name))
                continue;
            const char *sep = s->labels ? "," : "";
            const char *lab = s->labels ? s->labels : "";
            uint64_t cum = 0;
            for (int i = 0; i <= METRIC_HIST_BUCKETS; i++) {
                cum += atomic_load_explicit(&s->counts[i], memory_order_relaxed);
                if (i < METRIC_HIST_BUCKETS)
                    buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", s->name, lab, sep,
                               (double)bounds_us[i] / 1e6, (unsigned long long)cum);
                else
                    buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", s->name, lab, sep,
                               (unsigned long long)cum);
            }
            double sum = (double)atomic_load_explicit(&s->sum_us, memory_order_relaxed) / 1e6;
            if (s->labels) {
                buf_printf(out, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", s->name, lab, sum, s->name,
                           lab, (unsigned long long)cum);
            } else {
                buf_printf(out, "%s_sum %.6f\n%s_count %llu\n", s->name, sum, s->name,
                           (unsigned long long)cum);
            }
        }
    }
}

void metrics_render(struct buf *out)
{
    render_metrics(out);
    render_hists(out);
    for (struct metric_fn *f = g_fns; f; f = f->next)
        f->render(out);
}
