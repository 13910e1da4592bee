/* relay.h - holdfast-relay: outbox -> Kafka (exactly once) -> Redis Pub/Sub.
 *
 * Stage 2 of the pipeline (docs/relay.md is the design note). One relay
 * thread does the work, in this order, one batch at a time:
 *   lease.c   partition leases in PostgreSQL (holdfast.relay_lease_tick)
 *   store.c   PostgreSQL: the connection, LISTEN, reading outbox batches,
 *             the commit that writes offsets back and deletes outbox rows
 *   kafka.c   the idempotent producer and the tail reader used to resync
 *   chain.c   channel -> last offset, for prev_offset
 *   publish.c Redis PUBLISH of stamped envelopes
 *   loop.c    the thread's loop tying them together
 * The main thread serves /livez, /readyz and /metrics with libwebsockets
 * and turns SIGTERM into a clean stop (leases released). */
#ifndef HOLDFAST_RELAY_H
#define HOLDFAST_RELAY_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <libwebsockets.h>
#include <librdkafka/rdkafka.h>

#include "holdfast/buf.h"
#include "holdfast/err.h"
#include "holdfast/http.h"
#include "holdfast/kafka_props.h"
#include "holdfast/metrics.h"

/* How long after --produce-timeout the relay still waits for delivery
 * reports (librdkafka scans for timed-out messages about once a second). The
 * lease margin and the start-up check include it. */
#define RELAY_REPORT_SLACK_MS 1000
#define RELAY_MAX_PARTITIONS  1024
#define RELAY_EPOCH_MAX       64

typedef struct relay_config {
    char *listen_addr;
    long long port; /* HTTP for /livez /readyz /metrics; 0 picks a free one */
    char *pg_url;
    char *kafka_brokers;
    hf_kafka_props_config_t kafka_props; /* librdkafka properties (security, tuning) */
    char *topic;
    char *redis_url; /* redis://host:port; empty: no real-time path */
    char *redis_password_file;
    char *relay_id; /* lease owner name; default host-pid */
    long long lease_ttl_ms;
    long long lease_renew_ms;
    long long produce_timeout_ms; /* librdkafka message.timeout.ms; < lease TTL */
    long long batch_max;
    long long poll_interval_ms; /* outbox poll when no notification came */
    long long message_max_bytes;
    long long dead_letter_after; /* attempts before a refused event is dead-lettered */
    long long backoff_max_ms;
    long long redis_timeout_ms;
    long long chain_max; /* channels remembered in the chain map */
    char *crash_at;      /* test hook: POINT:N */
    char *log_level;
} relay_config_t;

/* One outbox row with its event, as read by store.c. All strings owned by
 * the batch's arena (relay_batch_t.text). */
typedef struct relay_event {
    int64_t seq;
    int32_t partition;
    const char *id;
    const char *channel;
    const char *type; /* NULL when the event has none */
    const char *content_type;
    const uint8_t *payload;
    size_t payload_len;
    int64_t created_at_us;
    /* filled by kafka.c / chain.c */
    int64_t offset;
    int64_t prev_offset;
    rd_kafka_resp_err_t err; /* delivery result */
    bool delivered;
} relay_event_t;

typedef struct relay_batch {
    relay_event_t *events;
    size_t n, cap;
    PGresult *rows; /* owns the strings and payloads events point into */
} relay_batch_t;

/* The partitions this relay holds. */
typedef struct relay_partition {
    bool owned;
    bool synced; /* tail read since acquired (or since the last failure) */
    int64_t generation;
    int64_t deadline_us;  /* local monotonic time the lease is surely still ours */
    int64_t retry_at_us;  /* after a failure: no produce or resync before this */
    long long backoff_ms; /* the partition's current backoff; 0 when healthy */
} relay_partition_t;

typedef struct relay_chain relay_chain_t;
typedef struct relay_publisher relay_publisher_t;
typedef struct relay_kafka relay_kafka_t;

typedef struct relay_metrics {
    hf_metric_t *produced;
    hf_metric_t *produce_errors;
    hf_metric_t *produce_seconds;
    hf_metric_t *batch_events;
    hf_metric_t *redis_published;
    hf_metric_t *redis_skipped;
    hf_metric_t *takeovers;
    hf_metric_t *leases_lost;
    hf_metric_t *partitions_owned;
    hf_metric_t *outbox_rows;
    hf_metric_t *outbox_oldest;
    hf_metric_t *dead_letters;
    hf_metric_t *tail_skipped;
    hf_metric_t *resyncs;
    hf_metric_t *order_violations;
    hf_metric_t *epoch_bumps;
    hf_metric_t *commit_to_publish;
} relay_metrics_t;

typedef struct relay {
    relay_config_t cfg;
    struct lws_context *lws;
    hf_http_server_t *http;
    hf_metrics_t *metrics;
    relay_metrics_t m;
    int bound_port;

    /* relay thread state */
    pthread_t thread;
    PGconn *pg;
    relay_kafka_t *kafka;
    relay_publisher_t *redis;
    relay_chain_t *chain;
    char epoch[RELAY_EPOCH_MAX];
    int partition_count;
    relay_partition_t parts[RELAY_MAX_PARTITIONS];
    int64_t next_lease_tick_us;
    int64_t backoff_ms; /* current pause after a failure; 0 when healthy */
    long long batches;  /* batches produced, for the crash hook */
    char crash_point[32];
    long long crash_batch;
    /* refused-delivery attempts of the event at the head of a partition */
    char poison_id[RELAY_MAX_PARTITIONS][40];
    int poison_attempts[RELAY_MAX_PARTITIONS];

    /* shared between threads */
    atomic_bool pg_ok;
    atomic_bool stopping;
    atomic_bool finished;
    volatile sig_atomic_t signal_seen;
    lws_sorted_usec_list_t cron;
} relay_t;

int64_t relay_now_us(void);

/* store.c */
hf_err_t relay_store_connect(relay_t *r);
void relay_store_close(relay_t *r);
/* Waits up to timeout_ms for an outbox notification; true if one came. */
bool relay_store_wait(relay_t *r, int timeout_ms);
hf_err_t relay_store_load_meta(relay_t *r);
/* Reads up to batch_max rows, in outbox order per partition, of the
 * partitions that are owned, synced and safely inside their lease. */
hf_err_t relay_store_fetch(relay_t *r, relay_batch_t *batch);
void relay_batch_clear(relay_batch_t *batch);
/* Writes back offsets of delivered events, deletes their outbox rows and
 * moves next_offset of their partitions; HF_ERR_CONFLICT if a lease is gone. */
hf_err_t relay_store_commit(relay_t *r, const relay_batch_t *batch, const int *pos_parts,
                            const int64_t *pos_next, size_t npos);
hf_err_t relay_store_dead_letter(relay_t *r, const relay_event_t *ev, const char *reason,
                                 int attempts);
/* Fills prev offsets for channels the chain map does not know. */
hf_err_t relay_store_chain_fill(relay_t *r, const relay_batch_t *batch);
/* The partition's recorded position and the epoch it was recorded in
 * ("" when none). */
hf_err_t relay_store_next_offset(relay_t *r, int partition, int64_t *next, char *epoch,
                                 size_t epoch_size);
hf_err_t relay_store_bump_epoch(relay_t *r, const char *reason);
hf_err_t relay_store_outbox_stats(relay_t *r);
/* Loads the events of records found in a partition's Kafka tail into
 * batch, as delivered at the given offsets (in offset order). */
hf_err_t relay_store_load_events(relay_t *r, const char *const *ids, const int64_t *offsets,
                                 size_t n, int partition, relay_batch_t *batch);

/* lease.c */
hf_err_t relay_lease_tick(relay_t *r);
void relay_lease_leave(relay_t *r);
bool relay_lease_producible(const relay_t *r, int partition, int64_t now_us);

/* kafka.c */
hf_err_t relay_kafka_new(const relay_config_t *cfg, relay_kafka_t **out, char *errbuf,
                         size_t errbuf_size);
void relay_kafka_free(relay_kafka_t *k);
/* Produces every event of batch and waits for all delivery reports (at
 * most the produce timeout plus a margin). Sets each event's delivered,
 * offset and err. HF_ERR_INTERNAL after a fatal producer error (the
 * producer was recreated; the caller must resync). */
hf_err_t relay_kafka_produce(relay_kafka_t *k, relay_batch_t *batch, const char *epoch,
                             size_t *failed);
/* The partition's [low, high) watermarks. */
hf_err_t relay_kafka_watermarks(relay_kafka_t *k, int partition, int64_t *low, int64_t *high);
/* Reads [from, to) of partition and returns the event ids found in the
 * records' hf-id header (heap strings, caller frees with
 * relay_kafka_tail_free) with their offsets. */
hf_err_t relay_kafka_read_tail(relay_kafka_t *k, int partition, int64_t from, int64_t to,
                               char ***ids, int64_t **offsets, size_t *n);
void relay_kafka_tail_free(char **ids, int64_t *offsets, size_t n);
/* Partitions of the topic as the brokers report them; -1 if unknown. */
int relay_kafka_partition_count(relay_kafka_t *k);

/* chain.c: channel -> last offset in this epoch, bounded. */
relay_chain_t *relay_chain_new(size_t max_entries);
void relay_chain_free(relay_chain_t *c);
void relay_chain_clear(relay_chain_t *c);
/* true and *offset when known (HF_OFFSET_NONE = known to have none). */
bool relay_chain_get(relay_chain_t *c, const char *channel, int64_t *offset);
void relay_chain_set(relay_chain_t *c, const char *channel, int64_t offset);
/* Makes room for n more channels (empties the map if they would not fit);
 * called before a batch's misses are filled, never during stamping. */
void relay_chain_reserve(relay_chain_t *c, size_t n);
/* Stamps prev_offset of delivered events in offset order; all channels of
 * the batch must be in the map (relay_store_chain_fill). */
void relay_chain_stamp(relay_chain_t *c, relay_batch_t *batch);

/* publish.c */
relay_publisher_t *relay_publisher_new(const char *url, const char *password_file,
                                       long long timeout_ms);
void relay_publisher_free(relay_publisher_t *p);
/* PUBLISHes delivered events [from, to) in order, pipelined. Returns how
 * many were published; the rest were skipped (Redis down or slow). */
size_t relay_publish(relay_publisher_t *p, const relay_batch_t *batch, size_t from, size_t to,
                     const char *epoch);
bool relay_publisher_connected(const relay_publisher_t *p);
/* While idle: once Redis is back, announces the offsets skipped while it
 * was not (publish.c explains), so gateways need not wait for the next
 * event of a quiet channel. */
void relay_publisher_announce(relay_publisher_t *p);

/* loop.c */
void *relay_thread_main(void *arg);

#endif
