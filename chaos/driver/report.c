/* report.c - what a run shows: latency before, during and after the fault,
 * time from the fault to full recovery, the verdict; as a JSON file and a
 * short summary on stdout.
 *
 * Latency is receive time minus the event's first publish attempt (both
 * CLOCK_REALTIME on this machine), so an event held up by a retried
 * publish counts its wait. Phases go by publish time: before the fault
 * mark, between it and the repair mark (or the end), after the repair. */
#include "driver.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "holdfast/alloc.h"

/* Recovered means every event is back under this, or 3 x the p99 of what
 * arrived before the fault (a loaded machine's normal tail must not count
 * as disruption). */
#define REPORT_RECOVERED_MIN_US 200000

typedef struct report_recovery {
    double threshold_ms; /* latency counted as recovered */
    double seconds;      /* fault to the moment every slowed event had arrived */
    bool recovered;      /* the run's last events were under the threshold */
    bool disrupted;      /* some event after the fault was over it */
} report_recovery_t;

static void report_hist_add(cd_hist_t *h, int64_t us)
{
    if (us < 0)
        us = 0;
    int64_t b = us / CD_HIST_BUCKET_US;
    h->bucket[b < CD_HIST_BUCKETS ? b : CD_HIST_BUCKETS - 1]++;
    h->count++;
    if (us > h->max_us)
        h->max_us = us;
}

static double report_percentile_ms(const cd_hist_t *h, double q)
{
    if (!h->count)
        return 0;
    long long rank = (long long)(q * (double)h->count), seen = 0;
    for (int i = 0; i < CD_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen > rank) {
            int64_t upper = (int64_t)(i + 1) * CD_HIST_BUCKET_US;
            return (double)(upper < h->max_us ? upper : h->max_us) / 1000.0;
        }
    }
    return (double)h->max_us / 1000.0;
}

static cd_phase_t report_phase(const cd_run_t *run, int64_t t)
{
    if (!run->fault_us || t < run->fault_us)
        return CD_BEFORE;
    if (!run->repaired_us || t < run->repaired_us)
        return CD_DURING;
    return CD_AFTER;
}

/* h: before, during, after, all; baseline: what arrived before the fault
 * (so no event the fault held up sets the bar for recovery). */
static void report_latencies(const cd_run_t *run, cd_hist_t *h, cd_hist_t *baseline)
{
    for (int i = 0; i < run->nclients; i++) {
        const cd_client_t *c = &run->clients[i];
        for (size_t k = 0; k < c->ngot; k++) {
            int64_t seq = c->got[k].seq;
            if (seq < 0 || seq >= run->nevents || !run->events[seq].first_try_us)
                continue;
            int64_t t = run->events[seq].first_try_us;
            report_hist_add(&h[report_phase(run, t)], c->got[k].recv_us - t);
            report_hist_add(&h[CD_PHASES], c->got[k].recv_us - t);
            if (!run->fault_us || c->got[k].recv_us < run->fault_us)
                report_hist_add(baseline, c->got[k].recv_us - t);
        }
    }
}

static int report_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The p99 of the time events [from, to) took to reach all their clients
 * (never: INT64_MAX). Sorts scratch. */
static int64_t report_window_p99(const cd_run_t *run, long long from, long long to,
                                 int64_t *scratch)
{
    for (long long s = from; s < to; s++) {
        const cd_publish_t *e = &run->events[s];
        scratch[s - from] = e->all_recv_us ? e->all_recv_us - e->first_try_us : INT64_MAX;
    }
    qsort(scratch, (size_t)(to - from), sizeof *scratch, report_cmp_i64);
    return scratch[(long long)((double)(to - from - 1) * 0.99)];
}

/* Events published after the fault, in one-second windows: the last window
 * whose p99 (time to reach all clients) is over the threshold ends the
 * disruption; recovery is when every event up to it had arrived. A window,
 * not single events: one slow delivery in a second on a loaded machine is
 * not a disruption. */
static report_recovery_t report_measure_recovery(const cd_run_t *run, const cd_hist_t *before)
{
    report_recovery_t r = {.recovered = true};
    int64_t threshold = (int64_t)(report_percentile_ms(before, 0.99) * 3000);
    if (threshold < REPORT_RECOVERED_MIN_US)
        threshold = REPORT_RECOVERED_MIN_US;
    r.threshold_ms = (double)threshold / 1000.0;
    if (!run->fault_us)
        return r;
    long long first = 0;
    while (first < run->pub_sent && run->events[first].first_try_us < run->fault_us)
        first++;
    int64_t *scratch = hf_calloc((size_t)(run->pub_sent - first) + 1, sizeof *scratch);
    long long slow_end = -1, from = first;
    bool last_slow = false;
    while (from < run->pub_sent) {
        long long to = from;
        int64_t window_end = run->events[from].first_try_us + 1000000;
        while (to < run->pub_sent && run->events[to].first_try_us < window_end)
            to++;
        last_slow = report_window_p99(run, from, to, scratch) > threshold;
        if (last_slow)
            slow_end = to;
        from = to;
    }
    hf_free(scratch);
    if (slow_end < 0)
        return r;
    r.disrupted = true;
    r.recovered = !last_slow;
    int64_t done = run->fault_us;
    for (long long s = first; s < slow_end; s++)
        if (run->events[s].all_recv_us > done)
            done = run->events[s].all_recv_us;
    r.seconds = (double)(done - run->fault_us) / 1e6;
    return r;
}

static double report_rel_s(const cd_run_t *run, int64_t us)
{
    return us ? (double)(us - run->start_us) / 1e6 : -1;
}

static json_t *report_phase_json(const cd_hist_t *h)
{
    return json_pack("{s:I,s:f,s:f,s:f,s:f}", "count", (json_int_t)h->count, "p50",
                     report_percentile_ms(h, 0.50), "p99", report_percentile_ms(h, 0.99), "p999",
                     report_percentile_ms(h, 0.999), "max", (double)h->max_us / 1000.0);
}

static json_t *report_json(const cd_run_t *run, const cd_verdict_t *v, const cd_hist_t *h,
                           const report_recovery_t *rec, bool pass)
{
    json_t *gateways = json_array();
    for (int i = 0; i < run->ngateways; i++)
        /* without the query: it may hold a token */
        json_array_append_new(gateways, json_sprintf("ws://%s:%d%.*s", run->gateways[i].host,
                                                     run->gateways[i].port,
                                                     (int)strcspn(run->gateways[i].path, "?"),
                                                     run->gateways[i].path));
    json_t *lat = json_object();
    static const char *const names[] = {"before", "during", "after", "all"};
    for (int p = 0; p <= CD_PHASES; p++)
        json_object_set_new(lat, names[p], report_phase_json(&h[p]));
    return json_pack(
        "{s:s,s:s,s:s,s:{s:i,s:i,s:f,s:f,s:o},"
        "s:{s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:s},"
        "s:{s:I,s:I},s:{s:I,s:I,s:I,s:I},"
        "s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
        "s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I},"
        "s:{s:f,s:f,s:f,s:b,s:b,s:f},s:o,s:s}",
        "scenario", run->scenario, "verdict", pass ? "pass" : "FAIL", "problem", v->first_problem,
        "load", "clients", run->nclients, "channels", run->nchannels, "rate", run->rate,
        "duration_s", run->duration_s, "gateways", gateways, "published", "events",
        (json_int_t)run->pub_sent, "acknowledged", (json_int_t)run->pub_acked, "failed",
        (json_int_t)run->pub_failed, "retries", (json_int_t)run->pub_retries, "transport_errors",
        (json_int_t)run->pub_transport_errs, "status_5xx", (json_int_t)run->pub_status_5xx,
        "first_failure_s", report_rel_s(run, run->pub_first_fail_us), "last_failure_s",
        report_rel_s(run, run->pub_last_fail_us), "error", run->pub_error, "postgres", "events",
        (json_int_t)v->pg_events, "unrelayed", (json_int_t)v->pg_unrelayed, "deliveries", "owed",
        (json_int_t)v->expected, "received", (json_int_t)v->delivered, "per_client_min",
        (json_int_t)v->per_client_min, "per_client_max", (json_int_t)v->per_client_max, "missing",
        (json_int_t)v->missing, "duplicates", (json_int_t)v->duplicates, "order_violations",
        (json_int_t)v->order_violations, "chain_breaks", (json_int_t)v->chain_breaks, "unexpected",
        (json_int_t)v->unexpected, "content_mismatches", (json_int_t)v->content_mismatches,
        "acked_missing", (json_int_t)v->acked_missing, "acked_doubled",
        (json_int_t)v->acked_doubled, "not_recovered", (json_int_t)v->not_recovered,
        "client_errors", (json_int_t)v->client_errors, "unavailable_retried",
        (json_int_t)v->unavailable, "connections", "closes", (json_int_t)run->closes, "closed_1006",
        (json_int_t)run->close_codes[0], "closed_1012", (json_int_t)run->close_codes[1],
        "closed_4001", (json_int_t)run->close_codes[2], "closed_other",
        (json_int_t)run->close_codes[3], "connect_failures", (json_int_t)run->close_codes[4],
        "resubscribed", (json_int_t)run->reconnects, "fault", "at_s",
        report_rel_s(run, run->fault_us), "repaired_at_s", report_rel_s(run, run->repaired_us),
        "recovery_s", rec->seconds, "disrupted", rec->disrupted, "recovered", rec->recovered,
        "threshold_ms", rec->threshold_ms, "latency_ms", lat, "scenario_prefix", run->prefix);
}

static void report_summary(const cd_run_t *run, const cd_verdict_t *v, const cd_hist_t *h,
                           const report_recovery_t *rec, bool pass)
{
    static const char *const names[] = {"before", "during", "after", "all"};
    printf("chaos %s: %s\n", run->scenario, pass ? "PASS" : "FAIL");
    printf("  published %lld events: %lld acknowledged, %lld never, %lld retries "
           "(%lld without answer, %lld 5xx/429); in PostgreSQL %lld (%lld not relayed)\n",
           run->pub_sent, run->pub_acked, run->pub_failed, run->pub_retries,
           run->pub_transport_errs, run->pub_status_5xx, v->pg_events, v->pg_unrelayed);
    printf("  %d clients on %d gateways, %d channels: %lld of %lld deliveries owed arrived; "
           "per client %lld..%lld\n",
           run->nclients, run->ngateways, run->nchannels, v->delivered, v->expected,
           v->per_client_min, v->per_client_max);
    printf("  missing %lld  duplicates %lld  order violations %lld  chain breaks %lld  "
           "unexpected %lld  wrong content %lld  acknowledged but lost %lld  stored twice %lld  "
           "resume refused %lld  client errors %lld (unavailable, retried: %lld)\n",
           v->missing, v->duplicates, v->order_violations, v->chain_breaks, v->unexpected,
           v->content_mismatches, v->acked_missing, v->acked_doubled, v->not_recovered,
           v->client_errors, v->unavailable);
    printf("  connections closed %lld (1006 %lld, 1012 %lld, 4001 %lld, other %lld), connect "
           "failures %lld, resubscribed %lld\n",
           run->closes, run->close_codes[0], run->close_codes[1], run->close_codes[2],
           run->close_codes[3], run->close_codes[4], run->reconnects);
    printf("  latency ms   deliveries      p50      p99    p99.9      max\n");
    for (int p = 0; p <= CD_PHASES; p++)
        if (h[p].count)
            printf("    %-8s %12lld %8.1f %8.1f %8.1f %8.1f\n", names[p], h[p].count,
                   report_percentile_ms(&h[p], 0.5), report_percentile_ms(&h[p], 0.99),
                   report_percentile_ms(&h[p], 0.999), (double)h[p].max_us / 1000.0);
    if (run->fault_us) {
        printf("  fault at %.1f s", report_rel_s(run, run->fault_us));
        if (run->repaired_us)
            printf(", repaired at %.1f s", report_rel_s(run, run->repaired_us));
        if (!rec->disrupted)
            printf("; no event slower than %.0f ms after it\n", rec->threshold_ms);
        else if (rec->recovered)
            printf("; full recovery %.2f s after the fault (every event under %.0f ms again)\n",
                   rec->seconds, rec->threshold_ms);
        else
            printf("; still slower than %.0f ms at the end of the run\n", rec->threshold_ms);
    }
    if (v->first_problem[0])
        printf("  first problem: %s\n", v->first_problem);
    if (run->pub_error[0])
        printf("  publisher stopped: %s\n", run->pub_error);
}

int cd_report(cd_run_t *run, const cd_verdict_t *v, bool verified)
{
    cd_hist_t h[CD_PHASES + 2]; /* the phases, all, and the baseline */
    memset(h, 0, sizeof h);
    for (int p = 0; p <= CD_PHASES + 1; p++)
        h[p].bucket = hf_calloc(CD_HIST_BUCKETS, sizeof *h[p].bucket);
    report_latencies(run, h, &h[CD_PHASES + 1]);
    report_recovery_t rec = report_measure_recovery(run, &h[CD_PHASES + 1]);
    bool pass = verified && run->nsubscribed == run->nclients && run->pub_sent > 0 &&
                run->pub_failed == 0 && !run->pub_error[0] && v->pg_unrelayed == 0 &&
                v->delivered > 0 && v->missing == 0 && v->duplicates == 0 &&
                v->order_violations == 0 && v->chain_breaks == 0 && v->unexpected == 0 &&
                v->content_mismatches == 0 && v->acked_missing == 0 && v->acked_doubled == 0 &&
                v->not_recovered == 0 && v->client_errors == 0;
    report_summary(run, v, h, &rec, pass);
    if (run->out_path) {
        json_t *j = report_json(run, v, h, &rec, pass);
        if (!j || json_dump_file(j, run->out_path, JSON_INDENT(1)) != 0) {
            fprintf(stderr, "holdfast-chaos-driver: cannot write %s\n", run->out_path);
            pass = false;
        }
        json_decref(j);
    }
    for (int p = 0; p <= CD_PHASES + 1; p++)
        hf_free(h[p].bucket);
    fflush(stdout);
    return pass ? 0 : 1;
}
