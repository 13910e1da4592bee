/* main.c - holdfast-relay: configuration, the ops HTTP server, the relay
 * thread's start and clean stop. */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "holdfast/alloc.h"
#include "holdfast/config.h"
#include "holdfast/log.h"
#include "holdfast/lws_log.h"
#include "relay.h"

#define RELAY_CRON_US (50 * 1000)

static const hf_conf_spec_t relay_settings[] = {
    {"listen-addr", HF_CONF_STRING, offsetof(relay_config_t, listen_addr), "127.0.0.1", 0, 0,
     "address the ops HTTP server binds (0.0.0.0 for all)"},
    {"port", HF_CONF_INT, offsetof(relay_config_t, port), "8090", 0, 65535,
     "HTTP port for /livez, /readyz and /metrics (0 picks a free one)"},
    {"pg-url", HF_CONF_STRING, offsetof(relay_config_t, pg_url),
     "postgresql://holdfast@127.0.0.1:5432/holdfast", 0, 0, "PostgreSQL connection URI"},
    {"kafka-brokers", HF_CONF_STRING, offsetof(relay_config_t, kafka_brokers), "127.0.0.1:9092", 0,
     0, "Kafka bootstrap servers"},
    HF_KAFKA_PROPS_SETTINGS(relay_config_t, kafka_props),
    {"topic", HF_CONF_STRING, offsetof(relay_config_t, topic), "holdfast.events", 0, 0,
     "Kafka topic; its partition count must match holdfast.meta"},
    {"redis-url", HF_CONF_STRING, offsetof(relay_config_t, redis_url), "redis://127.0.0.1:6379", 0,
     0, "Redis for the real-time path, redis://[USER:PASSWORD@]HOST:PORT[/DB] (empty: none)"},
    {"redis-password-file", HF_CONF_STRING, offsetof(relay_config_t, redis_password_file), NULL, 0,
     0, "file holding the Redis password (instead of one in the URL)"},
    {"relay-id", HF_CONF_STRING, offsetof(relay_config_t, relay_id), NULL, 0, 0,
     "lease owner name, unique per replica (default: host-pid)"},
    {"lease-ttl", HF_CONF_MS, offsetof(relay_config_t, lease_ttl_ms), "2s", 500, 3600000,
     "a standby takes over a dead leader's lease after this"},
    {"lease-renew", HF_CONF_MS, offsetof(relay_config_t, lease_renew_ms), "300ms", 50, 600000,
     "how often the lease is renewed (also the longest any query may take)"},
    {"produce-timeout", HF_CONF_MS, offsetof(relay_config_t, produce_timeout_ms), "1s", 100, 600000,
     "longest a record may wait for Kafka (message.timeout.ms); < lease-ttl"},
    {"slot", HF_CONF_STRING, offsetof(relay_config_t, slot), "holdfast_relay", 0, 0,
     "logical replication slot the leader reads (created when missing; [a-z0-9_])"},
    {"publication", HF_CONF_STRING, offsetof(relay_config_t, publication), "holdfast_events", 0, 0,
     "publication of holdfast.events inserts (made by holdfast-migrate)"},
    {"batch-max", HF_CONF_INT, offsetof(relay_config_t, batch_max), "500", 1, 100000,
     "most events of one partition produced as one batch"},
    {"commit-interval", HF_CONF_MS, offsetof(relay_config_t, commit_interval_ms), "50ms", 1, 60000,
     "longest an acknowledged event waits to be recorded in PostgreSQL (it reaches Redis "
     "before)"},
    {"commit-max", HF_CONF_INT, offsetof(relay_config_t, commit_max), "5000", 1, 1000000,
     "acknowledged events that start a commit at once"},
    {"stream-buffer", HF_CONF_BYTES, offsetof(relay_config_t, stream_buffer), "64MiB", 65536,
     1LL << 40, "streamed events held in memory before reading the slot pauses"},
    {"reconcile-lookback", HF_CONF_MS, offsetof(relay_config_t, reconcile_lookback_ms), "1h", 0,
     30LL * 24 * 3600 * 1000,
     "with a new slot (the old one lost), events this long before the last confirmed commit "
     "are checked for an offset"},
    {"message-max-bytes", HF_CONF_BYTES, offsetof(relay_config_t, message_max_bytes), "1MiB", 1000,
     1000000000, "largest Kafka record; larger events are dead-lettered"},
    {"dead-letter-after", HF_CONF_INT, offsetof(relay_config_t, dead_letter_after), "3", 1, 1000,
     "attempts before an event Kafka refuses for good is dead-lettered"},
    {"backoff-max", HF_CONF_MS, offsetof(relay_config_t, backoff_max_ms), "5s", 100, 600000,
     "longest pause between retries after a failure"},
    {"redis-timeout", HF_CONF_MS, offsetof(relay_config_t, redis_timeout_ms), "200ms", 10, 60000,
     "connect and reply timeout of Redis calls"},
    {"chain-max", HF_CONF_INT, offsetof(relay_config_t, chain_max), "100000", 100, 100000000,
     "channels whose last offset is kept in memory"},
    {"heartbeat-interval", HF_CONF_MS, offsetof(relay_config_t, heartbeat_interval_ms), "200ms", 0,
     60000,
     "how often the leader publishes every partition's last offset on Redis (hfctl:heads), so "
     "gateways find a lost event of a quiet channel; 0: never"},
    {"crash-at", HF_CONF_STRING, offsetof(relay_config_t, crash_at), "", 0, 0,
     "TESTS ONLY: POINT:N kills the relay (SIGKILL) at POINT (produced, publishing, "
     "published, overlap, committed) once N batches were produced; commit-answer-lost:N "
     "treats the first commit after that as failed although it went through; late-copy:N "
     "produces that batch again once delivered (unrecorded, unpublished)"},
    {"log-level", HF_CONF_STRING, offsetof(relay_config_t, log_level), "info", 0, 0,
     "debug, info, warn or error"},
};
#define RELAY_NSETTINGS (sizeof relay_settings / sizeof relay_settings[0])

static const char relay_usage[] =
    "holdfast-relay: streams committed events from PostgreSQL (a logical replication slot)\n"
    "into Kafka exactly once, in order per channel, publishes them to Redis Pub/Sub with\n"
    "their offsets and records the offsets in PostgreSQL. One replica leads; the others\n"
    "stand by. GET /livez, /readyz, /metrics.";

static relay_t *relay_signal_target;

static void relay_on_signal(int sig)
{
    (void)sig;
    if (relay_signal_target)
        relay_signal_target->signal_seen = 1;
}

static bool relay_ready(void *ctx, char *why, size_t why_size)
{
    relay_t *r = ctx;
    if (!atomic_load(&r->pg_ok)) {
        snprintf(why, why_size, "no PostgreSQL connection");
        return false;
    }
    if (atomic_load(&r->topic_unfit)) {
        snprintf(why, why_size, "topic %s not checked yet, or short of partitions", r->cfg.topic);
        return false;
    }
    return true;
}

static double relay_redis_up(void *arg)
{
    return relay_publisher_connected(((relay_t *)arg)->redis);
}

static void relay_metrics_register(relay_t *r)
{
    static const double batch_buckets[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000};
    hf_metrics_t *m = r->metrics;
    r->m.produced = hf_metrics_counter(m, "holdfast_relay_events_produced_total", NULL,
                                       "Events Kafka acknowledged.");
    r->m.produce_errors =
        hf_metrics_counter(m, "holdfast_relay_produce_errors_total", NULL,
                           "Events whose produce failed (retried or dead-lettered).");
    r->m.produce_seconds =
        hf_metrics_histogram(m, "holdfast_relay_produce_seconds", NULL,
                             "From producing a batch to its last delivery report.", NULL, 0);
    r->m.batch_events = hf_metrics_histogram(m, "holdfast_relay_batch_events", NULL,
                                             "Events per produced batch.", batch_buckets, 11);
    r->m.commit_events =
        hf_metrics_histogram(m, "holdfast_relay_commit_events", NULL,
                             "Events recorded per PostgreSQL commit.", batch_buckets, 11);
    r->m.redis_published = hf_metrics_counter(m, "holdfast_relay_redis_published_total", NULL,
                                              "Events published to Redis.");
    r->m.redis_skipped = hf_metrics_counter(m, "holdfast_relay_redis_skipped_total", NULL,
                                            "Events not published because Redis was unavailable.");
    r->m.takeovers = hf_metrics_counter(m, "holdfast_relay_lease_takeovers_total", NULL,
                                        "Leases taken over from a relay whose lease expired.");
    r->m.leases_lost = hf_metrics_counter(m, "holdfast_relay_leases_lost_total", NULL,
                                          "Times this relay stopped leading.");
    r->m.leader = hf_metrics_gauge(m, "holdfast_relay_leader", NULL,
                                   "1 while this relay holds the lease and leads.");
    r->m.slot_lag_bytes =
        hf_metrics_gauge(m, "holdfast_relay_slot_lag_bytes", NULL,
                         "WAL the slot keeps: from its confirmed position to the server's.");
    r->m.stream_lag =
        hf_metrics_gauge(m, "holdfast_relay_stream_lag_seconds", NULL,
                         "Age of the oldest committed event not yet recorded (0 when none waits).");
    r->m.stream_restarts = hf_metrics_counter(m, "holdfast_relay_stream_restarts_total", NULL,
                                              "Replication streams started.");
    r->m.dead_letters = hf_metrics_counter(m, "holdfast_relay_dead_letters_total", NULL,
                                           "Events moved to holdfast.dead_letters.");
    r->m.tail_recovered = hf_metrics_counter(
        m, "holdfast_relay_tail_recovered_total", NULL,
        "Events found already in Kafka by a resync, recorded without producing again.");
    r->m.reconciled = hf_metrics_counter(
        m, "holdfast_relay_reconciled_total", NULL,
        "Events without an offset found in holdfast.events after a slot was created.");
    r->m.resyncs = hf_metrics_counter(m, "holdfast_relay_resyncs_total", NULL,
                                      "Partition tails read before producing.");
    r->m.order_violations = hf_metrics_counter(
        m, "holdfast_relay_order_violations_total", NULL,
        "Events that will reach Kafka after a later event of their channel (should stay 0).");
    r->m.epoch_bumps = hf_metrics_counter(m, "holdfast_relay_epoch_bumps_total", NULL,
                                          "New epochs started after finding a Kafka log reset.");
    r->m.commit_to_publish = hf_metrics_histogram(
        m, "holdfast_relay_commit_to_publish_seconds", NULL,
        "From the event's commit in PostgreSQL to its PUBLISH on Redis.", NULL, 0);
    hf_metrics_gauge_fn(m, "holdfast_relay_redis_connected", NULL,
                        "1 while the Redis connection is up.", relay_redis_up, r);
}

static void relay_cron(lws_sorted_usec_list_t *sul)
{
    relay_t *r = lws_container_of(sul, relay_t, cron);
    if (r->signal_seen && !atomic_load(&r->stopping)) {
        hf_info("stopping: finishing the batches in flight, then releasing the lease");
        hf_http_server_set_draining(r->http);
        atomic_store(&r->stopping, true);
    }
    lws_sul_schedule(r->lws, 0, &r->cron, relay_cron, RELAY_CRON_US);
}

static hf_err_t relay_lws_start(relay_t *r, struct lws_protocols *protocols)
{
    hf_lws_log_init(NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = (int)r->cfg.port;
    info.iface = r->cfg.listen_addr;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    info.timeout_secs = 20;
    info.user = r;
    r->lws = lws_create_context(&info);
    if (!r->lws) {
        hf_error("cannot start the HTTP server on %s:%lld", r->cfg.listen_addr, r->cfg.port);
        return HF_ERR_IO;
    }
    hf_http_server_attach(r->http, r->lws);
    r->bound_port = lws_get_vhost_listen_port(lws_get_vhost_by_name(r->lws, "default"));
    return HF_OK;
}

/* Checks that make a misconfiguration fail at start, not at the first
 * failover: the lease argument needs TTL > produce timeout + 2 renewals. */
static int relay_check_config(relay_t *r)
{
    relay_config_t *c = &r->cfg;
    long long lease_min_ms = c->produce_timeout_ms + RELAY_REPORT_SLACK_MS + 2 * c->lease_renew_ms;
    if (c->lease_ttl_ms <= lease_min_ms) {
        fprintf(stderr,
                "holdfast-relay: lease-ttl (%lld ms) must exceed produce-timeout + %d ms "
                "(delivery report slack) + 2 x lease-renew (%lld ms)\n",
                c->lease_ttl_ms, RELAY_REPORT_SLACK_MS, lease_min_ms);
        return 2;
    }
    if (!relay_stream_names_ok(c->slot, c->publication)) {
        fprintf(stderr, "holdfast-relay: slot and publication names are 1-63 of [a-z0-9_]\n");
        return 2;
    }
    if (!c->relay_id || !*c->relay_id) {
        char host[128] = "relay";
        gethostname(host, sizeof host - 1);
        char id[200];
        snprintf(id, sizeof id, "%s-%d", host, (int)getpid());
        hf_free(c->relay_id);
        c->relay_id = hf_strdup(id);
    }
    if (c->crash_at && *c->crash_at) {
        const char *colon = strchr(c->crash_at, ':');
        size_t len = colon ? (size_t)(colon - c->crash_at) : 0;
        if (!colon || len >= sizeof r->crash_point || atoll(colon + 1) < 1) {
            fprintf(stderr, "holdfast-relay: crash-at must be POINT:N\n");
            return 2;
        }
        memcpy(r->crash_point, c->crash_at, len);
        r->crash_batch = atoll(colon + 1);
    }
    return -1;
}

static int relay_load_config(relay_t *r, int argc, char **argv)
{
    int rc = hf_config_load_daemon("relay", relay_settings, RELAY_NSETTINGS, &r->cfg,
                                   &r->cfg.log_level, argc, argv, relay_usage);
    return rc >= 0 ? rc : relay_check_config(r);
}

static hf_err_t relay_start(relay_t *r, struct lws_protocols *protocols)
{
    char errbuf[512];
    if (relay_kafka_new(&r->cfg, relay_flow_on_report, r, &r->kafka, errbuf, sizeof errbuf) !=
        HF_OK) {
        hf_error("kafka: %s", errbuf);
        return HF_ERR_INVALID;
    }
    if (r->cfg.redis_url && *r->cfg.redis_url) {
        r->redis = relay_publisher_new(r->cfg.redis_url, r->cfg.redis_password_file,
                                       r->cfg.redis_timeout_ms);
        if (!r->redis)
            return HF_ERR_INVALID;
    } else {
        hf_warn("no redis-url: events go to Kafka only (gateways fall back to Kafka)");
    }
    if (relay_lws_start(r, protocols) != HF_OK)
        return HF_ERR_IO;
    if (pthread_create(&r->thread, NULL, relay_thread_main, r) != 0) {
        hf_error("cannot start the relay thread");
        return HF_ERR_INTERNAL;
    }
    return HF_OK;
}

int main(int argc, char **argv)
{
    relay_t *r = hf_calloc(1, sizeof *r);
    atomic_store(&r->topic_unfit, true);
    int rc = relay_load_config(r, argc, argv);
    if (rc >= 0) {
        hf_config_free(relay_settings, RELAY_NSETTINGS, &r->cfg);
        hf_free(r);
        return rc;
    }
    r->metrics = hf_metrics_new();
    relay_metrics_register(r);
    r->chain = relay_chain_new((size_t)r->cfg.chain_max);
    hf_http_config_t http_cfg = {
        .service = "relay",
        .ctx = r,
        .ready = relay_ready,
        .metrics = r->metrics,
        .max_body = 1024,
        .body_timeout_s = 10,
    };
    r->http = hf_http_server_new(&http_cfg);
    struct lws_protocols protocols[2] = {hf_http_protocol(r->http), {NULL, NULL, 0, 0, 0, NULL, 0}};
    relay_signal_target = r;
    struct sigaction sa = {.sa_handler = relay_on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc = 1;
    bool thread_started = false;
    if (relay_start(r, protocols) == HF_OK) {
        thread_started = true;
        hf_logf_kv(HF_LOG_INFO, NULL, "listening on http://%s:%d (relay %s, topic %s)",
                   r->cfg.listen_addr, r->bound_port, r->cfg.relay_id, r->cfg.topic);
        lws_sul_schedule(r->lws, 0, &r->cron, relay_cron, RELAY_CRON_US);
        while (!atomic_load(&r->finished) && lws_service(r->lws, 0) >= 0) {
        }
        rc = 0;
    }
    if (thread_started) {
        atomic_store(&r->stopping, true);
        pthread_join(r->thread, NULL);
    }
    if (r->lws)
        lws_context_destroy(r->lws);
    relay_kafka_free(r->kafka);
    relay_store_commit_free(r);
    relay_publisher_free(r->redis);
    relay_chain_free(r->chain);
    hf_http_server_free(r->http);
    hf_metrics_free(r->metrics);
    hf_info("stopped");
    hf_config_free(relay_settings, RELAY_NSETTINGS, &r->cfg);
    hf_free(r);
    return rc;
}
