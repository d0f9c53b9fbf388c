/* Tests for core/metrics: the Prometheus text rendering of counters, gauges, histograms and
 * computed gauges. The registry is process-wide and has no unregister, so every metric here
 * is static, registered once, and named unit_* to stay apart from the server's own. */
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"
#include "unit.h"

static struct metric m_ok = {.name = "unit_requests_total",
                             .help = "Requests seen by the unit test.",
                             .type = "counter",
                             .labels = "outcome=\"success\""};
static struct metric m_fail = {.name = "unit_requests_total",
                               .help = "Requests seen by the unit test.",
                               .type = "counter",
                               .labels = "outcome=\"failure\""};
static struct metric m_gauge = {.name = "unit_queue_depth", .help = "Depth.", .type = "gauge"};
static struct histogram h_lat = {.name = "unit_latency_seconds",
                                 .help = "Latency seen by the unit test.",
                                 .labels = "route=\"events\""};
static struct histogram h_plain = {.name = "unit_plain_seconds", .help = "No labels."};

static void render_fn(struct buf *out)
{
    buf_puts(out, "unit_computed 7\n");
}
static struct metric_fn m_fn = {.render = render_fn};

static bool registered;

static void register_once(void)
{
    if (registered)
        return;
    registered = true;
    metric_register(&m_ok);
    metric_register(&m_gauge);
    metric_register(&m_fail);
    histogram_register(&h_lat);
    histogram_register(&h_plain);
    metric_fn_register(&m_fn);
}

/* Renders every metric into a malloc'd string. */
static char *render(void)
{
    struct buf b = BUF_INIT;
    metrics_render(&b);
    return buf_steal(&b);
}

/* True when text holds line as a whole line. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}
#define ASSERT_LINE(text, line)                                                                    \
    do {                                                                                           \
        if (!has_line((text), (line)))                                                             \
            unit_fail(__FILE__, __LINE__, "no line \"%s\" in:\n%s", (line), (text));               \
    } while (0)

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_metrics_counters(void)
{
    register_once();
    metric_set(&m_ok, 0);
    metric_set(&m_fail, 0);
    metric_add(&m_ok, 5);
    metric_add(&m_ok, 2);
    metric_add(&m_fail, 1);
    metric_set(&m_gauge, -3);
    char *s = render();
    ASSERT_LINE(s, "# HELP unit_requests_total Requests seen by the unit test.");
    ASSERT_LINE(s, "# TYPE unit_requests_total counter");
    ASSERT_LINE(s, "unit_requests_total{outcome=\"success\"} 7");
    ASSERT_LINE(s, "unit_requests_total{outcome=\"failure\"} 1");
    /* one HELP/TYPE per name, even with several label sets */
    ASSERT_EQ_INT(count_of(s, "# TYPE unit_requests_total "), 1);
    ASSERT_LINE(s, "# TYPE unit_queue_depth gauge");
    ASSERT_LINE(s, "unit_queue_depth -3");
    ASSERT_LINE(s, "unit_computed 7");
    ASSERT_TRUE(strlen(s) > 0 && s[strlen(s) - 1] == '\n');
    free(s);
}

static void test_metrics_histogram(void)
{
    register_once();
    histogram_observe_ns(&h_lat, 200000);      /* 0.2 ms */
    histogram_observe_ns(&h_lat, 1000000);     /* 1 ms: on the bound, counts as <= 0.001 */
    histogram_observe_ns(&h_lat, 3000000);     /* 3 ms */
    histogram_observe_ns(&h_lat, 20000000000); /* 20 s: only +Inf */
    char *s = render();
    ASSERT_LINE(s, "# TYPE unit_latency_seconds histogram");
    ASSERT_LINE(s, "unit_latency_seconds_bucket{route=\"events\",le=\"0.0005\"} 1");
    ASSERT_LINE(s, "unit_latency_seconds_bucket{route=\"events\",le=\"0.001\"} 2");
    ASSERT_LINE(s, "unit_latency_seconds_bucket{route=\"events\",le=\"0.0025\"} 2");
    ASSERT_LINE(s, "unit_latency_seconds_bucket{route=\"events\",le=\"0.005\"} 3");
    ASSERT_LINE(s, "unit_latency_seconds_bucket{route=\"events\",le=\"10\"} 3");
    ASSERT_LINE(s, "unit_latency_seconds_bucket{route=\"events\",le=\"+Inf\"} 4");
    ASSERT_LINE(s, "unit_latency_seconds_count{route=\"events\"} 4");
    ASSERT_LINE(s, "unit_latency_seconds_sum{route=\"events\"} 20.004200");
    ASSERT_EQ_INT(count_of(s, "unit_latency_seconds_bucket{"), METRIC_HIST_BUCKETS + 1);

    /* buckets are cumulative: never decreasing, in order, ending at +Inf */
    unsigned long long prev = 0;
    int n = 0;
    for (const char *p = s; (p = strstr(p, "unit_latency_seconds_bucket{")); n++) {
        const char *v = strchr(p, '}');
        REQUIRE_TRUE(v != NULL);
        unsigned long long c = strtoull(v + 2, NULL, 10);
        ASSERT_TRUE(c >= prev);
        prev = c;
        p = v;
    }
    ASSERT_EQ_INT(prev, 4);
    ASSERT_EQ_INT(n, METRIC_HIST_BUCKETS + 1);

    /* without labels there are no braces on _sum and _count, only le on buckets */
    ASSERT_LINE(s, "unit_plain_seconds_bucket{le=\"+Inf\"} 0");
    ASSERT_LINE(s, "unit_plain_seconds_count 0");
    ASSERT_LINE(s, "unit_plain_seconds_sum 0.000000");
    free(s);

    histogram_observe_ns(&h_plain, -5); /* a clock step: counted as zero */
    s = render();
    ASSERT_LINE(s, "unit_plain_seconds_bucket{le=\"0.0005\"} 1");
    ASSERT_LINE(s, "unit_plain_seconds_count 1");
    free(s);
}

void unit_metrics(void)
{
    RUN(test_metrics_counters);
    RUN(test_metrics_histogram);
}
