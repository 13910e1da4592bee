/* main.c - holdfast-gateway: configuration, start-up, the service loop, drain. */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway.h"
#include "holdfast/alloc.h"
#include "holdfast/config.h"
#include "holdfast/log.h"

#define GW_CRON_US       (50 * 1000) /* how often the loop checks signals and drain */
#define GW_KAFKA_WAIT_MS 30000       /* at start, how long to wait for the brokers */

static const hf_conf_spec_t gw_settings[] = {
    {"listen-addr", HF_CONF_STRING, offsetof(gateway_config_t, listen_addr), "127.0.0.1", 0, 0,
     "address the server binds (0.0.0.0 for all)"},
    {"port", HF_CONF_INT, offsetof(gateway_config_t, port), "8090", 0, 65535,
     "port for WebSocket /v1/ws, /livez, /readyz and /metrics"},
    {"redis-url", HF_CONF_STRING, offsetof(gateway_config_t, redis_url), "redis://127.0.0.1:6379",
     0, 0, "Redis for the real-time path"},
    {"kafka-brokers", HF_CONF_STRING, offsetof(gateway_config_t, kafka_brokers), "127.0.0.1:9092",
     0, 0, "Kafka bootstrap servers (gap fill, resume, fallback)"},
    {"topic", HF_CONF_STRING, offsetof(gateway_config_t, topic), "holdfast.events", 0, 0,
     "the event topic"},
    {"redis-ping-interval", HF_CONF_MS, offsetof(gateway_config_t, redis_ping_interval_ms), "1s",
     10, 600000, "PING Redis this often"},
    {"redis-ping-timeout", HF_CONF_MS, offsetof(gateway_config_t, redis_ping_timeout_ms), "3s", 10,
     600000, "no PONG within this: Redis counts as down (also the connect timeout)"},
    {"redis-retry", HF_CONF_MS, offsetof(gateway_config_t, redis_retry_ms), "500ms", 10, 600000,
     "pause between Redis reconnect attempts"},
    {"redis-handback-grace", HF_CONF_MS, offsetof(gateway_config_t, redis_handback_grace_ms),
     "1500ms", 0, 600000,
     "after Redis is back, keep reading Kafka this long (the relay reconnects once a second)"},
    {"max-frame", HF_CONF_BYTES, offsetof(gateway_config_t, max_frame), "16KiB", 64, 1 << 24,
     "largest client message; larger closes the connection (1009)"},
    {"max-subscriptions", HF_CONF_INT, offsetof(gateway_config_t, max_subscriptions), "100", 1,
     100000, "channels one connection may subscribe to"},
    {"send-queue-bytes", HF_CONF_BYTES, offsetof(gateway_config_t, send_queue_bytes), "4MiB", 1024,
     1LL << 32, "bytes queued for one connection before it is closed (4001)"},
    {"send-queue-messages", HF_CONF_INT, offsetof(gateway_config_t, send_queue_messages), "10000",
     4, 10000000, "messages queued for one connection before it is closed (4001)"},
    {"socket-sndbuf", HF_CONF_BYTES, offsetof(gateway_config_t, socket_sndbuf), "0", 0, 1 << 30,
     "kernel send buffer per client socket (0: autotuned, up to net.ipv4.tcp_wmem)"},
    {"ws-ping-interval", HF_CONF_MS, offsetof(gateway_config_t, ws_ping_interval_ms), "30s", 1000,
     3600000, "WebSocket PING to a quiet client after this"},
    {"ws-idle-timeout", HF_CONF_MS, offsetof(gateway_config_t, ws_idle_timeout_ms), "75s", 2000,
     3600000, "close a client that answered nothing for this long"},
    {"drain-timeout", HF_CONF_MS, offsetof(gateway_config_t, drain_timeout_ms), "10s", 0, 3600000,
     "on SIGTERM, longest wait for clients to take their close (1012)"},
    {"inbox-max-bytes", HF_CONF_BYTES, offsetof(gateway_config_t, inbox_max_bytes), "64MiB",
     1 << 16, 1LL << 34, "events from Redis/Kafka waiting for the service thread"},
    {"kafka-timeout", HF_CONF_MS, offsetof(gateway_config_t, kafka_timeout_ms), "2s", 100, 600000,
     "timeout of one Kafka query (watermarks, probes)"},
    {"event-loop", HF_CONF_STRING, offsetof(gateway_config_t, event_loop), "uv", 0, 0,
     "uv (libuv, epoll: for many connections) or poll"},
    {"log-level", HF_CONF_STRING, offsetof(gateway_config_t, log_level), "info", 0, 0,
     "debug, info, warn or error"},
};
#define GW_NSETTINGS (sizeof gw_settings / sizeof gw_settings[0])

static const char gw_usage[] =
    "holdfast-gateway: delivers events to WebSocket clients (ws://HOST:PORT/v1/ws,\n"
    "subprotocols holdfast.v1.json and holdfast.v1.msgpack) from Redis Pub/Sub, filling\n"
    "gaps and falling back to Kafka. GET /livez, /readyz, /metrics.";

static gateway_t *gw_signal_target;

int64_t gw_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* libuv owns SIGTERM/SIGINT once lws runs on it: this is its callback. */
static void gw_on_uv_signal(void *handle, int sig)
{
    (void)handle;
    (void)sig;
    if (gw_signal_target)
        gw_signal_target->signal_seen = 1;
}

static void gw_on_signal(int sig)
{
    (void)sig;
    if (gw_signal_target)
        gw_signal_target->signal_seen = 1;
}

static double gw_gauge_connections(void *arg)
{
    return (double)((gateway_t *)arg)->nconns;
}

static double gw_gauge_subscriptions(void *arg)
{
    return (double)((gateway_t *)arg)->nsubs;
}

static double gw_gauge_channels(void *arg)
{
    return (double)gw_strmap_len(((gateway_t *)arg)->channels);
}

static double gw_gauge_redis(void *arg)
{
    return gw_redis_connected(((gateway_t *)arg)->redis) ? 1 : 0;
}

static double gw_gauge_scanning(void *arg)
{
    return gw_kafka_scanning(((gateway_t *)arg)->kafka);
}

static double gw_gauge_queued(void *arg)
{
    return (double)((gateway_t *)arg)->queued_bytes;
}

static double gw_gauge_inbox(void *arg)
{
    return (double)gw_inbox_bytes(((gateway_t *)arg)->inbox);
}

static void gw_metrics_register(gateway_t *gw)
{
    hf_metrics_t *r = gw->metrics;
    hf_metrics_gauge_fn(r, "holdfast_gateway_connections", NULL, "Open WebSocket connections.",
                        gw_gauge_connections, gw);
    hf_metrics_gauge_fn(r, "holdfast_gateway_subscriptions", NULL,
                        "Subscriptions across all connections.", gw_gauge_subscriptions, gw);
    hf_metrics_gauge_fn(r, "holdfast_gateway_channels", NULL,
                        "Channels with local subscribers (subscribed on Redis).", gw_gauge_channels,
                        gw);
    hf_metrics_gauge_fn(r, "holdfast_gateway_redis_connected", NULL,
                        "1 while the Redis subscriber is connected and answering.", gw_gauge_redis,
                        gw);
    hf_metrics_gauge_fn(r, "holdfast_gateway_kafka_scanning_partitions", NULL,
                        "Partitions being read from Kafka (gap fill, resume or fallback).",
                        gw_gauge_scanning, gw);
    hf_metrics_gauge_fn(r, "holdfast_gateway_send_queue_bytes", NULL,
                        "Bytes waiting in all connections' send queues.", gw_gauge_queued, gw);
    hf_metrics_gauge_fn(r, "holdfast_gateway_inbox_bytes", NULL,
                        "Bytes from Redis and Kafka waiting for the service thread.",
                        gw_gauge_inbox, gw);
    gw->m.connections_total = hf_metrics_counter(r, "holdfast_gateway_connections_total", NULL,
                                                 "WebSocket connections accepted.");
    gw->m.closed_slow =
        hf_metrics_counter(r, "holdfast_gateway_slow_closes_total", NULL,
                           "Connections closed because their send queue overflowed (4001).");
    gw->m.delivered_redis =
        hf_metrics_counter(r, "holdfast_gateway_deliveries_total", "source=\"redis\"",
                           "Events queued to clients, by where the gateway got them.");
    gw->m.delivered_kafka =
        hf_metrics_counter(r, "holdfast_gateway_deliveries_total", "source=\"kafka\"",
                           "Events queued to clients, by where the gateway got them.");
    gw->m.duplicates = hf_metrics_counter(r, "holdfast_gateway_duplicates_dropped_total", NULL,
                                          "Events dropped as already delivered (offset <= last).");
    gw->m.gaps = hf_metrics_counter(r, "holdfast_gateway_gaps_total", NULL,
                                    "Gaps in a subscription's chain, filled from Kafka.");
    gw->m.fallbacks = hf_metrics_counter(r, "holdfast_gateway_redis_fallbacks_total", NULL,
                                         "Times Redis was lost and delivery fell back to Kafka.");
    gw->m.protocol_errors =
        hf_metrics_counter(r, "holdfast_gateway_protocol_errors_total", NULL,
                           "Client messages refused (malformed, unknown, too big).");
    gw->m.unrecoverable =
        hf_metrics_counter(r, "holdfast_gateway_unrecoverable_total", NULL,
                           "Subscriptions whose missing events were no longer in Kafka.");
    gw->m.latency = hf_metrics_histogram(
        r, "holdfast_gateway_event_age_seconds", NULL,
        "Age of an event (since its commit in PostgreSQL) when queued to clients.", NULL, 0);
}

static bool gw_ready(void *ctx, char *why, size_t why_size)
{
    (void)ctx;
    (void)why;
    (void)why_size;
    return true; /* Kafka answered at start; without Redis it still delivers */
}

static bool gw_drained(gateway_t *gw);

/* Periodic duty on the lws thread: hand-back graces, signals, the drain. */
static void gw_cron(lws_sorted_usec_list_t *sul)
{
    gateway_t *gw = lws_container_of(sul, gateway_t, cron);
    gw_channels_tick(gw, gw_now_us());
    if (gw->signal_seen && !gw->draining) {
        gw->draining = true;
        gw->drain_deadline_us = gw_now_us() + gw->cfg.drain_timeout_ms * 1000;
        hf_http_server_set_draining(gw->http);
        hf_info("draining: closing %zu connections with 1012", gw->nconns);
        gw_conns_close_all(gw, GW_CLOSE_RESTART, "gateway restarting: resume elsewhere");
    }
    if (gw->uv && gw_drained(gw)) {
        /* Under libuv the loop runs inside lws_service(); destroying the
         * context stops it, and main() finishes the destroy. */
        gw->stopped = true;
        gw_inbox_attach(gw->inbox, NULL);
        lws_context_destroy(gw->lws);
        return;
    }
    lws_sul_schedule(gw->lws, 0, &gw->cron, gw_cron, GW_CRON_US);
}

static bool gw_drained(gateway_t *gw)
{
    if (!gw->draining)
        return false;
    if (gw->nconns == 0 && hf_http_server_inflight(gw->http) == 0)
        return true;
    if (gw_now_us() > gw->drain_deadline_us) {
        hf_warn("drain timeout: %zu connections still open", gw->nconns);
        return true;
    }
    return false;
}

static void gw_lws_log(int level, const char *line)
{
    hf_log(level == LLL_ERR ? HF_LOG_ERROR : HF_LOG_WARN, "lws: %.*s", (int)strcspn(line, "\n"),
           line);
}

static hf_err_t gw_lws_start(gateway_t *gw, struct lws_protocols *protocols,
                             const lws_retry_bo_t *idle)
{
    /* A client without Sec-WebSocket-Protocol gets JSON. */
    static const struct lws_protocol_vhost_options gw_default_ws = {NULL, NULL, "default", ""};
    static const struct lws_protocol_vhost_options gw_pvo = {NULL, &gw_default_ws,
                                                             GW_SUBPROTOCOL_JSON, ""};
    lws_set_log_level(LLL_ERR | LLL_WARN, gw_lws_log);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = (int)gw->cfg.port;
    info.iface = gw->cfg.listen_addr;
    info.protocols = protocols;
    info.pvo = &gw_pvo;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.max_http_header_pool = 1024;
    info.max_http_header_data = 4096;
    info.keepalive_timeout = 60;
    info.timeout_secs = 20;
    info.retry_and_idle_policy = idle;
    if (gw->uv) {
        info.options |= LWS_SERVER_OPTION_LIBUV;
        info.signal_cb = gw_on_uv_signal;
    }
    info.user = gw;
    gw->lws = lws_create_context(&info);
    if (!gw->lws && gw->uv) {
        hf_warn("libuv event loop unavailable (libwebsockets-evlib-uv missing?): using poll");
        gw->uv = false;
        info.options &= ~(uint64_t)LWS_SERVER_OPTION_LIBUV;
        info.signal_cb = NULL;
        gw->lws = lws_create_context(&info);
    }
    if (!gw->lws) {
        hf_error("cannot start the server on %s:%lld", gw->cfg.listen_addr, gw->cfg.port);
        return HF_ERR_IO;
    }
    hf_http_server_attach(gw->http, gw->lws);
    gw_inbox_attach(gw->inbox, gw->lws);
    gw->bound_port = lws_get_vhost_listen_port(lws_get_vhost_by_name(gw->lws, "default"));
    return HF_OK;
}

static int gw_load_config(gateway_t *gw, int argc, char **argv)
{
    int rc = hf_config_load_daemon("gateway", gw_settings, GW_NSETTINGS, &gw->cfg,
                                   &gw->cfg.log_level, argc, argv, gw_usage);
    if (rc >= 0)
        return rc;
    if (strcmp(gw->cfg.event_loop, "uv") != 0 && strcmp(gw->cfg.event_loop, "poll") != 0) {
        fprintf(stderr, "holdfast-gateway: event-loop=%s is not one of uv, poll\n",
                gw->cfg.event_loop);
        return 2;
    }
    gw->uv = strcmp(gw->cfg.event_loop, "uv") == 0;
    if (gw->cfg.ws_idle_timeout_ms <= gw->cfg.ws_ping_interval_ms) {
        fprintf(stderr, "holdfast-gateway: ws-idle-timeout must exceed ws-ping-interval\n");
        return 2;
    }
    return -1;
}

static hf_err_t gw_start_backends(gateway_t *gw)
{
    int32_t count = 0;
    gw->kafka = gw_kafka_start(gw->cfg.kafka_brokers, gw->cfg.topic, (int)gw->cfg.kafka_timeout_ms,
                               GW_KAFKA_WAIT_MS, gw->inbox, &count);
    if (!gw->kafka)
        return HF_ERR_UNAVAILABLE;
    gw_channels_init(gw, count);
    gw_redis_config_t rc = {
        .url = gw->cfg.redis_url,
        .ping_interval_ms = gw->cfg.redis_ping_interval_ms,
        .ping_timeout_ms = gw->cfg.redis_ping_timeout_ms,
        .retry_ms = gw->cfg.redis_retry_ms,
    };
    gw->redis = gw_redis_start(&rc, gw->inbox);
    return gw->redis ? HF_OK : HF_ERR_INVALID;
}

static void gw_run(gateway_t *gw)
{
    struct lws_protocols protocols[4] = {hf_http_protocol(gw->http),
                                         gw_ws_protocol(GW_SUBPROTOCOL_JSON),
                                         gw_ws_protocol(GW_SUBPROTOCOL_MSGPACK),
                                         {NULL, NULL, 0, 0, 0, NULL, 0}};
    lws_retry_bo_t idle = {
        .secs_since_valid_ping = (uint16_t)(gw->cfg.ws_ping_interval_ms / 1000),
        .secs_since_valid_hangup = (uint16_t)(gw->cfg.ws_idle_timeout_ms / 1000),
    };
    if (gw_lws_start(gw, protocols, &idle) != HF_OK)
        return;
    hf_logf_kv(HF_LOG_INFO, NULL, "listening on ws://%s:%d/v1/ws (%d partitions)",
               gw->cfg.listen_addr, gw->bound_port, gw->partition_count);
    lws_sul_schedule(gw->lws, 0, &gw->cron, gw_cron, GW_CRON_US);
    if (gw->uv) {
        while (!gw->stopped && lws_service(gw->lws, 0) == 0) {
        }
    } else {
        while (!gw_drained(gw) && lws_service(gw->lws, 0) >= 0) {
        }
    }
    gw_inbox_attach(gw->inbox, NULL); /* the Redis and Kafka threads still run */
    lws_context_destroy(gw->lws);     /* closes what is left; CLOSED frees their state */
    gw->lws = NULL;
}

int main(int argc, char **argv)
{
    gateway_t *gw = hf_calloc(1, sizeof *gw);
    int rc = gw_load_config(gw, argc, argv);
    if (rc >= 0) {
        hf_config_free(gw_settings, GW_NSETTINGS, &gw->cfg);
        hf_free(gw);
        return rc;
    }
    gw->metrics = hf_metrics_new();
    gw->inbox = gw_inbox_new((size_t)gw->cfg.inbox_max_bytes);
    hf_http_config_t http_cfg = {
        .service = "gateway",
        .ctx = gw,
        .ready = gw_ready,
        .metrics = gw->metrics,
        .max_body = 1024,
        .body_timeout_s = 10,
    };
    gw->http = hf_http_server_new(&http_cfg);

    gw_signal_target = gw;
    struct sigaction sa = {.sa_handler = gw_on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc = 1;
    if (gw_start_backends(gw) == HF_OK) {
        gw_metrics_register(gw);
        gw_run(gw);
        rc = 0;
    }
    gw_redis_stop(gw->redis);
    gw_kafka_stop(gw->kafka);
    if (gw->partitions)
        gw_channels_free(gw);
    gw_inbox_free(gw->inbox);
    hf_http_server_free(gw->http);
    hf_metrics_free(gw->metrics);
    hf_info("stopped");
    hf_config_free(gw_settings, GW_NSETTINGS, &gw->cfg);
    hf_free(gw);
    return rc;
}
