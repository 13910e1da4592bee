/* Prometheus rendering: counters, gauges, callback gauges, histograms. */
#include <string.h>

#include "check.h"
#include "holdfast/metrics.h"

static double answer(void *arg)
{
    return *(double *)arg;
}

int main(void)
{
    hf_metrics_t *reg = hf_metrics_new();
    hf_metric_t *ok = hf_metrics_counter(reg, "holdfast_test_total", "code=\"ok\"", "Tests.");
    hf_metric_t *bad = hf_metrics_counter(reg, "holdfast_test_total", "code=\"bad\"", "Tests.");
    hf_metric_t *g = hf_metrics_gauge(reg, "holdfast_test_gauge", NULL, "A gauge.");
    double fortytwo = 42;
    hf_metrics_gauge_fn(reg, "holdfast_test_fn", NULL, "Computed.", answer, &fortytwo);
    static const double buckets[] = {0.1, 1};
    hf_metric_t *h =
        hf_metrics_histogram(reg, "holdfast_test_seconds", NULL, "Durations.", buckets, 2);
    hf_counter_add(ok, 3);
    hf_counter_inc(bad);
    hf_gauge_set(g, 1.5);
    hf_gauge_add(g, -0.5);
    hf_histogram_observe(h, 0.05);
    hf_histogram_observe(h, 0.5);
    hf_histogram_observe(h, 5);

    hf_buf_t out = HF_BUF_INIT;
    hf_metrics_render(reg, &out);
    const char *text = out.data;
    CHECK(strstr(text, "# TYPE holdfast_test_total counter\n") != NULL);
    /* one HELP/TYPE per family, however many series */
    CHECK(strstr(strstr(text, "# TYPE holdfast_test_total") + 1, "# TYPE holdfast_test_total") ==
          NULL);
    CHECK(strstr(text, "holdfast_test_total{code=\"ok\"} 3\n") != NULL);
    CHECK(strstr(text, "holdfast_test_total{code=\"bad\"} 1\n") != NULL);
    CHECK(strstr(text, "holdfast_test_gauge 1\n") != NULL);
    CHECK(strstr(text, "holdfast_test_fn 42\n") != NULL);
    CHECK(strstr(text, "holdfast_test_seconds_bucket{le=\"0.10000000000000001\"} 1\n") != NULL);
    CHECK(strstr(text, "holdfast_test_seconds_bucket{le=\"1\"} 2\n") != NULL);
    CHECK(strstr(text, "holdfast_test_seconds_bucket{le=\"+Inf\"} 3\n") != NULL);
    CHECK(strstr(text, "holdfast_test_seconds_count 3\n") != NULL);
    CHECK(strstr(text, "holdfast_test_seconds_sum 5.5") != NULL);
    hf_buf_free(&out);
    hf_metrics_free(reg);
    CHECK_MAIN_END();
}
