/* main.c - holdfast-ingest: configuration, start-up, the service loop, drain. */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "holdfast/alloc.h"
#include "holdfast/config.h"
#include "holdfast/http_parse.h"
#include "holdfast/log.h"
#include "holdfast/lws_log.h"
#include "history.h"
#include "ingest.h"

#define INGEST_CRON_US (50 * 1000) /* how often the loop checks signals and drain */

static const hf_conf_spec_t ingest_settings[] = {
    {"listen-addr", HF_CONF_STRING, offsetof(ingest_config_t, listen_addr), "127.0.0.1", 0, 0,
     "address the HTTP server binds (0.0.0.0 for all)"},
    {"port", HF_CONF_INT, offsetof(ingest_config_t, port), "8080", 0, 65535,
     "HTTP port for the API, /livez, /readyz and /metrics"},
    {"pg-url", HF_CONF_STRING, offsetof(ingest_config_t, pg_url),
     "postgresql://holdfast@127.0.0.1:5432/holdfast", 0, 0, "PostgreSQL connection URI"},
    {"writers", HF_CONF_INT, offsetof(ingest_config_t, writers), "4", 1, INGEST_MAX_WRITERS,
     "PostgreSQL connections committing in parallel (one thread each)"},
    {"group-max", HF_CONF_INT, offsetof(ingest_config_t, group_max), "256", 1, 100000,
     "most requests committed together in one transaction"},
    {"queue-max", HF_CONF_INT, offsetof(ingest_config_t, queue_max), "10000", 1, 10000000,
     "requests waiting for a writer before new ones get 503"},
    {"queue-timeout", HF_CONF_MS, offsetof(ingest_config_t, queue_timeout_ms), "5s", 1, 3600000,
     "a request that waited this long for a writer gets 503"},
    {"max-body", HF_CONF_BYTES, offsetof(ingest_config_t, max_body), "1MiB", 64, 1 << 30,
     "largest request body; larger gets 413"},
    {"max-inflight-bytes", HF_CONF_BYTES, offsetof(ingest_config_t, max_inflight_bytes), "64MiB",
     64, 1LL << 40,
     "bytes of request bodies being received at once (by Content-Length, counted once the "
     "credentials are checked); beyond: 503 + Retry-After"},
    {"max-queued-bytes", HF_CONF_BYTES, offsetof(ingest_config_t, max_queued_bytes), "128MiB", 64,
     1LL << 40,
     "bytes of request bodies waiting for or being committed by the writers; beyond: "
     "503 + Retry-After"},
    {"max-batch", HF_CONF_INT, offsetof(ingest_config_t, max_batch), "1000", 1, 100000,
     "most events in one request; more gets 413"},
    {"body-timeout", HF_CONF_MS, offsetof(ingest_config_t, body_timeout_ms), "10s", 1000, 600000,
     "a request body must arrive within this"},
    {"statement-timeout", HF_CONF_MS, offsetof(ingest_config_t, statement_timeout_ms), "10s", 100,
     3600000, "PostgreSQL statement_timeout for the writers"},
    {"reconnect-max", HF_CONF_MS, offsetof(ingest_config_t, reconnect_max_ms), "2s", 10, 600000,
     "longest pause between PostgreSQL reconnect attempts"},
    {"idempotency-ttl", HF_CONF_MS, offsetof(ingest_config_t, idempotency_ttl_ms), "24h", 1000,
     366LL * 24 * 3600000, "how long an Idempotency-Key is remembered"},
    {"drain-timeout", HF_CONF_MS, offsetof(ingest_config_t, drain_timeout_ms), "25s", 0, 3600000,
     "on SIGTERM, longest wait for in-flight requests to commit"},
    {"kafka-brokers", HF_CONF_STRING, offsetof(ingest_config_t, kafka_brokers), "", 0, 0,
     "Kafka for the history API (empty: history from PostgreSQL only)"},
    HF_KAFKA_PROPS_SETTINGS(ingest_config_t, kafka_props),
    {"topic", HF_CONF_STRING, offsetof(ingest_config_t, topic), "holdfast.events", 0, 0,
     "the event topic"},
    {"history-queue-max", HF_CONF_INT, offsetof(ingest_config_t, history_queue_max), "64", 1,
     100000, "history requests waiting for the history worker before 503"},
    HF_AUTH_SETTINGS(ingest_config_t, auth),
    {"publish-rate", HF_CONF_INT, offsetof(ingest_config_t, publish_rate), "10000", 0, 100000000,
     "events per second one subject may publish (token bucket; 0: unlimited)"},
    {"publish-burst", HF_CONF_INT, offsetof(ingest_config_t, publish_burst), "20000", 1, 100000000,
     "events one subject may publish at once above its rate"},
    {"cors-origins", HF_CONF_STRING, offsetof(ingest_config_t, cors_origins), "", 0, 0,
     "browser origins whose pages may call the API (CORS): comma-separated exact origins "
     "(https://app.example.com), or * for any; empty: none"},
    {"log-level", HF_CONF_STRING, offsetof(ingest_config_t, log_level), "info", 0, 0,
     "debug, info, warn or error"},
};
#define INGEST_NSETTINGS (sizeof ingest_settings / sizeof ingest_settings[0])

static const char ingest_usage[] =
    "holdfast-ingest: accepts events over HTTP and commits them to PostgreSQL\n"
    "(holdfast.events; the relay reads them from the WAL). POST /v1/events; GET /livez,\n"
    "/readyz, /metrics.";

static ingest_t *ingest_signal_target;

static void ingest_on_signal(int sig)
{
    (void)sig;
    if (ingest_signal_target)
        ingest_signal_target->signal_seen = 1;
}

static bool ingest_ready(void *ctx, char *why, size_t why_size)
{
    ingest_t *ing = ctx;
    if (atomic_load(&ing->writers_connected) > 0)
        return true;
    snprintf(why, why_size, "no PostgreSQL connection");
    return false;
}

static double ingest_queue_depth(void *arg)
{
    return (double)ingest_writers_queue_len(arg);
}

static double ingest_pg_connections(void *arg)
{
    return atomic_load(&((ingest_t *)arg)->writers_connected);
}

static double ingest_inflight_bytes(void *arg)
{
    return (double)atomic_load(&((ingest_t *)arg)->inflight_bytes);
}

static double ingest_queued_bytes(void *arg)
{
    return (double)atomic_load(&((ingest_t *)arg)->queued_bytes);
}

static void ingest_metrics_register(ingest_t *ing)
{
    static const double group_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
    hf_metrics_t *r = ing->metrics;
    ing->m.events_created = hf_metrics_counter(r, "holdfast_ingest_events_total", NULL,
                                               "Events committed to PostgreSQL.");
    ing->m.requests_replayed =
        hf_metrics_counter(r, "holdfast_ingest_idempotent_replays_total", NULL,
                           "Requests answered with the original events of their Idempotency-Key.");
    ing->m.requests_conflict =
        hf_metrics_counter(r, "holdfast_ingest_idempotency_conflicts_total", NULL,
                           "Requests reusing an Idempotency-Key with a different body.");
    ing->m.requests_rejected = hf_metrics_counter(r, "holdfast_ingest_rejected_total", NULL,
                                                  "Requests refused as invalid (4xx).");
    ing->m.requests_unavailable =
        hf_metrics_counter(r, "holdfast_ingest_unavailable_total", NULL, "Requests answered 503.");
    ing->m.commit_seconds = hf_metrics_histogram(r, "holdfast_ingest_commit_seconds", NULL,
                                                 "Duration of one group transaction.", NULL, 0);
    ing->m.group_size =
        hf_metrics_histogram(r, "holdfast_ingest_group_requests", NULL,
                             "Requests committed per transaction.", group_buckets, 10);
    ing->m.auth_failed =
        hf_metrics_counter(r, "holdfast_ingest_auth_failed_total", NULL,
                           "Requests refused 401: missing, bad or expired credentials.");
    ing->m.auth_forbidden =
        hf_metrics_counter(r, "holdfast_ingest_auth_forbidden_total", NULL,
                           "Requests refused 403: a channel the credentials do not cover.");
    ing->m.rate_limited =
        hf_metrics_counter(r, "holdfast_ingest_rate_limited_total", NULL,
                           "Requests refused 429: a subject over its publish rate.");
    ing->m.over_inflight_bytes = hf_metrics_counter(
        r, "holdfast_ingest_byte_limit_rejections_total", "limit=\"inflight\"",
        "Requests refused 503 because their body would exceed a byte limit, by limit.");
    ing->m.over_queued_bytes = hf_metrics_counter(
        r, "holdfast_ingest_byte_limit_rejections_total", "limit=\"queued\"",
        "Requests refused 503 because their body would exceed a byte limit, by limit.");
    hf_metrics_gauge_fn(r, "holdfast_ingest_inflight_bytes", NULL,
                        "Bytes of request bodies admitted and still arriving (by Content-Length).",
                        ingest_inflight_bytes, ing);
    hf_metrics_gauge_fn(r, "holdfast_ingest_queued_bytes", NULL,
                        "Bytes of request bodies waiting for or being committed by the writers.",
                        ingest_queued_bytes, ing);
    ing->m.request_seconds = hf_metrics_histogram(
        r, "holdfast_ingest_request_seconds", NULL,
        "Time from a request's arrival at the writers to its answer.", NULL, 0);
    hf_metrics_gauge_fn(r, "holdfast_ingest_queue_requests", NULL, "Requests waiting for a writer.",
                        ingest_queue_depth, ing);
    hf_metrics_gauge_fn(r, "holdfast_ingest_pg_connections", NULL,
                        "Writers with a usable PostgreSQL connection.", ingest_pg_connections, ing);
}

/* Periodic duty on the lws thread: notice signals, finish the drain. */
static void ingest_cron(lws_sorted_usec_list_t *sul)
{
    ingest_t *ing = lws_container_of(sul, ingest_t, cron);
    if (ing->signal_seen && !ing->draining) {
        ing->draining = true;
        ing->drain_deadline_us = hf_now_us() + ing->cfg.drain_timeout_ms * 1000;
        hf_http_server_set_draining(ing->http);
        hf_info("draining: finishing %zu in-flight requests", hf_http_server_inflight(ing->http));
    }
    lws_sul_schedule(ing->lws, 0, &ing->cron, ingest_cron, INGEST_CRON_US);
}

static bool ingest_drained(ingest_t *ing)
{
    if (!ing->draining)
        return false;
    if (hf_http_server_inflight(ing->http) == 0 && ingest_writers_queue_len(ing) == 0)
        return true;
    if (hf_now_us() > ing->drain_deadline_us) {
        hf_warn("drain timeout: %zu requests still in flight", hf_http_server_inflight(ing->http));
        return true;
    }
    return false;
}

static hf_err_t ingest_lws_start(ingest_t *ing, struct lws_protocols *protocols)
{
    hf_lws_log_init(NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = (int)ing->cfg.port;
    info.iface = ing->cfg.listen_addr;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.max_http_header_pool = 1024;
    info.max_http_header_data = HF_HTTP_HEADER_MAX;
    /* Bodies are read in pieces of this size (lws' default, 4 KiB, costs a
     * read and a callback per 4 KiB of a 1 MiB body). */
    info.pt_serv_buf_size = 64 * 1024;
    info.keepalive_timeout = 60;
    info.timeout_secs = 20;
    info.user = ing;
    ing->lws = lws_create_context(&info);
    if (!ing->lws) {
        hf_error("cannot start the HTTP server on %s:%lld", ing->cfg.listen_addr, ing->cfg.port);
        return HF_ERR_IO;
    }
    hf_http_server_attach(ing->http, ing->lws);
    ing->bound_port = lws_get_vhost_listen_port(lws_get_vhost_by_name(ing->lws, "default"));
    return HF_OK;
}

static int ingest_load_config(ingest_t *ing, int argc, char **argv)
{
    int rc = hf_config_load_daemon("ingest", ingest_settings, INGEST_NSETTINGS, &ing->cfg,
                                   &ing->cfg.log_level, argc, argv, ingest_usage);
    if (rc < 0 && (ing->cfg.max_inflight_bytes < ing->cfg.max_body ||
                   ing->cfg.max_queued_bytes < ing->cfg.max_body)) {
        fprintf(stderr, "holdfast-ingest: max-inflight-bytes and max-queued-bytes must be at "
                        "least max-body (a largest body could never be accepted)\n");
        return 2;
    }
    return rc;
}

int main(int argc, char **argv)
{
    ingest_t *ing = hf_calloc(1, sizeof *ing);
    int rc = ingest_load_config(ing, argc, argv);
    if (rc >= 0) {
        hf_config_free(ingest_settings, INGEST_NSETTINGS, &ing->cfg);
        hf_free(ing);
        return rc;
    }
    char err[512];
    ing->auth = hf_auth_new(&ing->cfg.auth, err, sizeof err);
    if (!ing->auth) {
        fprintf(stderr, "holdfast-ingest: %s\n", err);
        hf_config_free(ingest_settings, INGEST_NSETTINGS, &ing->cfg);
        hf_free(ing);
        return 2;
    }
    if (hf_http_cors_parse(ing->cfg.cors_origins, &ing->cors, err, sizeof err) != HF_OK) {
        fprintf(stderr, "holdfast-ingest: %s\n", err);
        hf_auth_free(ing->auth);
        hf_config_free(ingest_settings, INGEST_NSETTINGS, &ing->cfg);
        hf_free(ing);
        return 2;
    }
    if (ing->cors.any)
        hf_warn("cors-origins is *: a page from any origin may call the API with a token it holds");
    ing->publish_limit =
        hf_ratelimit_new((double)ing->cfg.publish_rate, (double)ing->cfg.publish_burst);
    pthread_mutex_init(&ing->lock, NULL);
    pthread_cond_init(&ing->wake, NULL);
    ing->metrics = hf_metrics_new();
    ingest_metrics_register(ing);
    hf_http_config_t http_cfg = {
        .service = "ingest",
        .routes = ingest_routes,
        .nroutes = ingest_nroutes,
        .ctx = ing,
        .ready = ingest_ready,
        .metrics = ing->metrics,
        .max_body = (size_t)ing->cfg.max_body,
        .body_timeout_s = (int)((ing->cfg.body_timeout_ms + 999) / 1000),
        .cors = &ing->cors,
    };
    ing->http = hf_http_server_new(&http_cfg);
    struct lws_protocols protocols[2] = {hf_http_protocol(ing->http),
                                         {NULL, NULL, 0, 0, 0, NULL, 0}};

    ingest_signal_target = ing;
    struct sigaction sa = {.sa_handler = ingest_on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc = 1;
    ing->history =
        ingest_history_start(ing->cfg.pg_url, ing->cfg.kafka_brokers, &ing->cfg.kafka_props,
                             ing->cfg.topic, ing->cfg.history_queue_max);
    if (ing->history && ingest_writers_start(ing) == HF_OK &&
        ingest_lws_start(ing, protocols) == HF_OK) {
        hf_logf_kv(HF_LOG_INFO, NULL, "listening on http://%s:%d (writers %lld)",
                   ing->cfg.listen_addr, ing->bound_port, ing->cfg.writers);
        lws_sul_schedule(ing->lws, 0, &ing->cron, ingest_cron, INGEST_CRON_US);
        while (!ingest_drained(ing) && lws_service(ing->lws, 0) >= 0) {
        }
        rc = 0;
    }
    ingest_history_stop(ing->history); /* drained: nothing of it is in flight */
    ingest_writers_stop(ing);
    if (ing->lws)
        lws_context_destroy(ing->lws);
    hf_http_server_free(ing->http);
    hf_metrics_free(ing->metrics);
    hf_ratelimit_free(ing->publish_limit);
    hf_auth_free(ing->auth);
    hf_http_cors_free(&ing->cors);
    hf_info("stopped");
    hf_config_free(ingest_settings, INGEST_NSETTINGS, &ing->cfg);
    pthread_cond_destroy(&ing->wake);
    pthread_mutex_destroy(&ing->lock);
    hf_free(ing);
    return rc;
}
