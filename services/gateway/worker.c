/* worker.c - one worker of the gateway: its backends, lws context, loop and drain. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gateway.h"
#include "holdfast/alloc.h"
#include "holdfast/http_parse.h"
#include "holdfast/log.h"
#include "holdfast/lws_log.h"
#include "listener.h"

#define GW_CRON_US       (50 * 1000) /* how often the loop checks signals and drain */
#define GW_KAFKA_WAIT_MS 30000       /* at start, how long to wait for the brokers */

int64_t gw_now_us(void)
{
    return hf_now_us();
}

static bool gw_ready(void *ctx, char *why, size_t why_size)
{
    gateway_t *gw = ctx;
    /* Kafka answered at start; without Redis it still delivers, so Redis
     * down is no reason to leave the rotation. Redis refusing the
     * credentials is: a configuration error an operator must see (the
     * rollout stops), not an outage to ride out quietly. */
    char refusal[512];
    if (gw_redis_refusal(gw->redis, refusal, sizeof refusal)) {
        snprintf(why, why_size, "redis refused the credentials: %s", refusal);
        return false;
    }
    return true;
}

hf_err_t gw_worker_init(gateway_t *gw, gw_process_t *proc, size_t index, int32_t *partitions)
{
    gw->proc = proc;
    gw->index = index;
    gw->cfg = proc->cfg;
    gw->m = proc->m;
    gw->uv = strcmp(gw->cfg.event_loop, "uv") == 0;
    snprintf(gw->metrics_labels, sizeof gw->metrics_labels, "worker=\"%zu\"", index);
    gw->inbox = gw_inbox_new((size_t)gw->cfg.inbox_max_bytes);
    hf_http_config_t http_cfg = {
        .service = "gateway",
        .ctx = gw,
        .ready = gw_ready,
        .metrics = proc->metrics,
        .metrics_labels = gw->metrics_labels,
        .max_body = 1024,
        .body_timeout_s = 10,
    };
    gw->http = hf_http_server_new(&http_cfg);
    int32_t count = 0;
    gw->kafka = gw_kafka_start(gw->cfg.kafka_brokers, &gw->cfg.kafka_props, gw->cfg.topic,
                               (int)gw->cfg.kafka_timeout_ms, GW_KAFKA_WAIT_MS,
                               (size_t)gw->cfg.kafka_deep_inflight, gw->inbox, &count);
    if (!gw->kafka)
        return HF_ERR_UNAVAILABLE;
    gw_channels_init(gw, count);
    *partitions = count;
    gw_redis_config_t rc = {
        .url = gw->cfg.redis_url,
        .password_file = gw->cfg.redis_password_file,
        .ping_interval_ms = gw->cfg.redis_ping_interval_ms,
        .ping_timeout_ms = gw->cfg.redis_ping_timeout_ms,
        .suspect_after_ms = gw->cfg.redis_suspect_after_ms,
        .suspect_jitter_ms = gw->cfg.redis_suspect_jitter_ms,
        .retry_ms = gw->cfg.redis_retry_ms,
    };
    gw->redis = gw_redis_start(&rc, gw->inbox);
    return gw->redis ? HF_OK : HF_ERR_INVALID;
}

static bool gw_drained(gateway_t *gw)
{
    if (!gw->draining)
        return false;
    /* A socket handed over meanwhile is still to be refused (1012 path). */
    if (gw->nconns == 0 && gw->handoffs == 0 && hf_http_server_inflight(gw->http) == 0)
        return true;
    if (hf_now_us() > gw->drain_deadline_us) {
        hf_warn("drain timeout: %zu connections still open", (size_t)gw->nconns);
        return true;
    }
    return false;
}

/* Periodic duty on the lws thread: hand-back graces, signals, the drain. */
static void gw_cron(lws_sorted_usec_list_t *sul)
{
    gateway_t *gw = lws_container_of(sul, gateway_t, cron);
    gw_channels_tick(gw, hf_now_us());
    int64_t now_s = (int64_t)time(NULL);
    if (now_s != gw->expiry_checked_s) {
        gw->expiry_checked_s = now_s;
        gw_access_expire(gw, now_s);
        gw_conns_heartbeat(gw, hf_now_us());
    }
    if (atomic_load(&gw->proc->stop) && !gw->draining) {
        gw->draining = true;
        gw->drain_deadline_us = hf_now_us() + gw->cfg.drain_timeout_ms * 1000;
        hf_http_server_set_draining(gw->http);
        hf_info("worker %zu draining: closing %zu connections with 1012", gw->index,
                (size_t)gw->nconns);
        gw_conns_drain(gw);
    }
    if (gw->uv && gw_drained(gw)) {
        /* Under libuv the loop runs inside lws_service(); destroying the
         * context stops it, and gw_worker_run() finishes the destroy. */
        gw->stopped = true;
        gw_inbox_attach(gw->inbox, NULL);
        lws_context_destroy(gw->lws);
        return;
    }
    lws_sul_schedule(gw->lws, 0, &gw->cron, gw_cron, GW_CRON_US);
}

static struct lws_context *gw_lws_create(gateway_t *gw, struct lws_context_creation_info *info)
{
    info->user = gw;
    if (gw->uv) {
        /* Without NO_SIGSEGV_SIGFPE_SPIN lws' libuv loops catch SIGSEGV
         * and SIGFPE too: a crash would hang instead of dying. */
        info->options |= LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN;
        info->signal_cb = gw_on_uv_signal;
    }
    struct lws_context *lws = lws_create_context(info);
    if (!lws && gw->uv) {
        hf_warn("libuv event loop unavailable (libwebsockets-evlib-uv missing?): using poll");
        gw->uv = false;
        info->options &=
            ~(uint64_t)(LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN);
        info->signal_cb = NULL;
        lws = lws_create_context(info);
    }
    return lws;
}

hf_err_t gw_worker_listen(gateway_t *gw)
{
    /* A client without Sec-WebSocket-Protocol gets JSON. */
    static const struct lws_protocol_vhost_options gw_default_ws = {NULL, NULL, "default", ""};
    static const struct lws_protocol_vhost_options gw_pvo = {NULL, &gw_default_ws,
                                                             GW_SUBPROTOCOL_JSON, ""};
    /* Every refused handshake (an Origin not allowed, a wrong path) makes
     * lws warn; those are counted in metrics, not logged one by one. */
    hf_lws_log_init("User code denied connection");
    gw->protocols[0] = hf_http_protocol(gw->http);
    for (size_t i = 0; i < GW_SUBPROTOCOLS; i++)
        gw->protocols[1 + i] = gw_ws_protocol(gw_subprotocols[i].name);
    gw->protocols[1 + GW_SUBPROTOCOLS] = gw_listener_protocol();
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* the listener accepts for every worker */
    info.protocols = gw->protocols;
    info.pvo = &gw_pvo;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.max_http_header_pool = 1024;
    info.max_http_header_data = HF_HTTP_HEADER_MAX;
    info.keepalive_timeout = 60;
    info.timeout_secs = 20;
    /* lws' validity timers are off (a policy with no hangup time; without
     * one lws applies its default): lws 4.1 keeps one per connection in a
     * sorted list and re-inserts it on every PONG by walking that list, so
     * 17,000 idle connections kept a core busy. gw_conns_heartbeat() does
     * the same job in one pass a second. */
    static const lws_retry_bo_t gw_no_validity_timers = {0};
    info.retry_and_idle_policy = &gw_no_validity_timers;
    gw->lws = gw_lws_create(gw, &info);
    if (!gw->lws) {
        hf_error("worker %zu: cannot create its libwebsockets context", gw->index);
        return HF_ERR_IO;
    }
    gw_inbox_attach(gw->inbox, gw->lws);
    if (gw->index == 0 &&
        gw_listener_attach(gw->proc->listener, lws_get_vhost_by_name(gw->lws, "default"),
                           gw_process_accept, gw->proc, gw->m.accept_refused) != HF_OK)
        return HF_ERR_INTERNAL;
    lws_sul_schedule(gw->lws, 0, &gw->cron, gw_cron, GW_CRON_US);
    return HF_OK;
}

void gw_worker_run(gateway_t *gw)
{
    /* Here, on the thread that serves it: responses from other threads
     * are queued to it, its own are written at once. */
    hf_http_server_attach(gw->http, gw->lws);
    if (gw->uv) {
        while (!gw->stopped && lws_service(gw->lws, 0) == 0) {
        }
    } else {
        while (!gw_drained(gw) && lws_service(gw->lws, 0) >= 0) {
        }
    }
    if (!gw->draining) {
        hf_error("worker %zu: its service loop failed; stopping the gateway", gw->index);
        atomic_store(&gw->proc->failed, true);
        atomic_store(&gw->proc->stop, 1);
    }
    gw_inbox_attach(gw->inbox, NULL); /* the Redis and Kafka threads still run */
    lws_context_destroy(gw->lws);     /* closes what is left; CLOSED frees their state */
    gw->lws = NULL;
}

void gw_worker_free(gateway_t *gw)
{
    gw_redis_stop(gw->redis);
    gw_kafka_stop(gw->kafka);
    if (gw->partitions)
        gw_channels_free(gw);
    if (gw->lws)
        lws_context_destroy(gw->lws);
    gw_inbox_free(gw->inbox);
    hf_http_server_free(gw->http);
}
