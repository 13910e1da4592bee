/* relay.h - holdfast-relay: committed events -> Kafka (exactly once) -> Redis.
 *
 * Stage 2 of the pipeline (docs/relay.md is the design note). The relay
 * holding the leader lease streams the inserts into holdfast.events from a
 * logical replication slot, in commit order, and moves them through one
 * event loop on the relay thread:
 *
 *   stream (replication connection) -> partition queue -> produce (one
 *   batch in flight per partition) -> delivery reports -> prev_offset
 *   stamped -> PUBLISH to Redis -> recorded in PostgreSQL (event_offsets,
 *   several batches per commit) -> confirmed to the slot
 *
 * Modules, each owning one piece of the state below:
 *   lease.c    the leader lease (holdfast.relay_lease_tick)
 *   store.c    the SQL connection: meta, partition positions, chain fill,
 *              dead letters, epoch bumps, the asynchronous commit
 *   pgoutput.c decoding pgoutput messages into events (no I/O)
 *   stream.c   the replication connection: slot, START_REPLICATION,
 *              reading messages, confirming positions
 *   flow.c     per-partition queues: accept, produce, complete, commit
 *   resync.c   what Kafka already holds (after a failure or a takeover)
 *              and what a lost slot never delivered (reconcile)
 *   kafka.c    the idempotent producer
 *   chain.c    channel -> last offset, for prev_offset
 *   publish.c  Redis PUBLISH of stamped envelopes
 *   loop.c     the loop calling one duty after another
 * The main thread serves /livez, /readyz and /metrics with libwebsockets
 * and turns SIGTERM into a clean stop (lease released). */
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
#include "holdfast/clock.h"
#include "holdfast/err.h"
#include "holdfast/http.h"
#include "holdfast/kafka_props.h"
#include "holdfast/metrics.h"
#include "holdfast/strmap.h"

/* How long after --produce-timeout a batch's producer is destroyed if a
 * delivery report is still missing (its queue purged, so librdkafka sends
 * nothing of it any more). librdkafka's own timeout scan runs only about
 * once a second, so the relay keeps this deadline itself (the loop wakes
 * for it). The lease margin and the start-up check include it. */
#define RELAY_REPORT_SLACK_MS 250
#define RELAY_MAX_PARTITIONS  1024
#define RELAY_EPOCH_MAX       64
#define RELAY_ID_LEN          36 /* canonical UUID text */

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
    char *slot;     /* logical replication slot */
    char *publication;
    long long lease_ttl_ms;
    long long lease_renew_ms;
    long long produce_timeout_ms; /* librdkafka message.timeout.ms; < lease TTL */
    long long batch_max;          /* events per produced batch of one partition */
    long long commit_interval_ms; /* longest an acknowledged event waits to be recorded */
    long long commit_max;         /* events recorded per commit at most */
    long long stream_buffer;      /* bytes of streamed events held before reading pauses */
    long long reconcile_lookback_ms;
    long long message_max_bytes;
    long long dead_letter_after; /* attempts before a refused event is dead-lettered */
    long long backoff_max_ms;
    long long redis_timeout_ms;
    long long chain_max;             /* channels remembered in the chain map */
    long long heartbeat_interval_ms; /* partitions' heads on Redis; 0: none */
    char *crash_at;                  /* test hook: POINT:N */
    char *log_level;
} relay_config_t;

/* A position in the stream: the commit LSN of the event's transaction and
 * its place among the transaction's events. Events of a partition are
 * handled in this order. {0, 0} is "before everything". */
typedef struct relay_pos {
    uint64_t lsn;
    int32_t ord;
} relay_pos_t;

/* One event, from the stream (or a reconcile query), in one allocation:
 * the strings and the payload live in data[]. */
typedef struct relay_event {
    struct relay_event *next; /* in its partition's queue / batch / commit list */
    relay_pos_t pos;          /* {0,0} for a reconciled event: it has none */
    int64_t commit_us;        /* its transaction's commit time, µs since the Unix epoch */
    int64_t created_at_us;    /* events.created_at */
    int32_t partition;
    char id[RELAY_ID_LEN + 1];
    const char *channel;
    const char *type; /* NULL when the event has none */
    const char *content_type;
    const uint8_t *payload;
    size_t payload_len;
    size_t size; /* bytes of the allocation, for the stream buffer */
    /* filled by kafka.c / chain.c */
    int64_t offset;
    int64_t prev_offset;
    rd_kafka_resp_err_t err;      /* delivery result */
    rd_kafka_msg_status_t status; /* NOT_PERSISTED: never reached a broker */
    bool delivered;
    char data[];
} relay_event_t;

/* A singly linked FIFO of events. */
typedef struct relay_list {
    relay_event_t *head, *tail;
    size_t n;
} relay_list_t;

/* What a partition's Kafka log holds that the stream may still bring: ids
 * of records in [from, to) recorded already, skipped by id until the
 * stream has passed lsn (docs/relay.md, "Exactly once across crashes"). */
typedef struct relay_known {
    hf_strmap_t *ids; /* id -> (void *)1; NULL when empty */
    int64_t from, to; /* to == from: no range */
    uint64_t lsn;
} relay_known_t;

/* One partition of the leader. Its events move queue -> inflight ->
 * acked -> (the store's commit list) in stream order. */
typedef struct relay_partition {
    relay_list_t queue;      /* accepted from the stream, not produced */
    relay_list_t inflight;   /* produced, delivery reports pending */
    relay_list_t acked;      /* in Kafka and on Redis, not yet recorded */
    size_t inflight_pending; /* delivery reports still to come */
    size_t queued_bytes;
    bool synced;            /* Kafka tail read since taken (or since the last failure) */
    bool overflowed;        /* queue dropped to bound memory; the stream must restart */
    relay_pos_t dropped;    /* first position dropped while overflowed */
    relay_pos_t accepted;   /* last position accepted from the stream */
    relay_pos_t handled;    /* last position taken off the queue (produced, skipped, ...) */
    relay_pos_t recorded;   /* last position recorded in PostgreSQL */
    relay_pos_t committing; /* oldest position in the commit under way; lsn 0: none */
    int64_t next_offset;    /* recorded: every record below it is in event_offsets */
    int64_t acked_next;     /* one past the last offset acknowledged */
    relay_known_t known;
    bool state_dirty; /* positions to write at the next commit */
    /* A commit of it failed, and may have gone through all the same: what
     * memory holds may be behind PostgreSQL, so nothing of it is written
     * until relay_store_reload_position read it back (resync does). */
    bool position_unknown;
    bool epoch_old;       /* next_offset was recorded in an earlier epoch */
    int64_t produced_us;  /* when the batch in flight was produced */
    int64_t retry_at_us;  /* after a failure: no produce or resync before this (or a probe)... */
    int64_t floor_us;     /* ...and never before this, whatever a probe says */
    int64_t probe_at_us;  /* next look at the partition's leader while backing off */
    long long backoff_ms; /* current backoff; 0 when healthy */
    char poison_id[RELAY_ID_LEN + 1]; /* the event Kafka refused for good, and how often */
    char poison_reason[128];
    int poison_attempts;
} relay_partition_t;

typedef struct relay_chain relay_chain_t;
typedef struct relay_publisher relay_publisher_t;
typedef struct relay_kafka relay_kafka_t;
typedef struct relay_stream relay_stream_t;
typedef struct relay_commit relay_commit_t;

typedef struct relay_metrics {
    hf_metric_t *produced;
    hf_metric_t *produce_errors;
    hf_metric_t *produce_seconds;
    hf_metric_t *batch_events;
    hf_metric_t *commit_events;
    hf_metric_t *redis_published;
    hf_metric_t *redis_skipped;
    hf_metric_t *takeovers;
    hf_metric_t *leader;
    hf_metric_t *leases_lost;
    hf_metric_t *slot_lag_bytes;
    hf_metric_t *stream_lag;
    hf_metric_t *stream_restarts;
    hf_metric_t *dead_letters;
    hf_metric_t *tail_recovered;
    hf_metric_t *reconciled;
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
    PGconn *pg; /* the SQL connection */
    relay_kafka_t *kafka;
    relay_publisher_t *redis;
    relay_chain_t *chain;
    relay_stream_t *stream; /* NULL while not leading */
    relay_commit_t *commit; /* the commit under way on pg, NULL when none */
    char epoch[RELAY_EPOCH_MAX];
    int epoch_id;
    int partition_count;
    relay_partition_t parts[RELAY_MAX_PARTITIONS];
    int parts_seen;            /* partitions [0, parts_seen) may hold events */
    bool leader;               /* holds the lease */
    bool started;              /* leading: partitions loaded, slot ready, stream may run */
    int64_t generation;        /* of the lease */
    int64_t lease_deadline_us; /* local monotonic time the lease is surely still ours */
    int64_t next_lease_tick_us;
    int64_t backoff_ms;      /* current pause after a failure; 0 when healthy */
    int64_t first_acked_us;  /* when the oldest acknowledged, unrecorded event was acked */
    size_t acked_total;      /* acknowledged events not yet recorded (all partitions) */
    size_t queued_bytes;     /* stream buffer in use (all partitions) */
    bool commit_asap;        /* record what is acked now (a chain fill waits for it) */
    bool chain_stale;        /* the chain map was emptied while offsets waited to be recorded */
    bool quiesce;            /* produce nothing until what is in flight is recorded */
    bool restart_stream;     /* an overflowed partition needs the stream again */
    bool kafka_woken;        /* the last wait saw delivery reports waiting */
    int64_t stream_retry_us; /* no new stream before this after one failed */
    int64_t next_heartbeat_us;
    int64_t next_probe_us;  /* leaders of backing-off partitions, looked at */
    uint64_t confirmed_lsn; /* the last position confirmed to the slot */
    bool reconciling;       /* producing what a new slot cannot deliver */
    char reconcile_from[RELAY_ID_LEN + 1], reconcile_to[RELAY_ID_LEN + 1];
    uint64_t reconcile_lsn; /* WAL position when the reconcile began */
    char leader_seen[256];  /* the leader a standby last saw, for its log */
    long long batches;      /* batches produced, for the crash hook */
    char crash_point[32];
    long long crash_batch;

    /* shared between threads */
    atomic_bool pg_ok;
    /* Not ready while true: the topic was found with fewer partitions than
     * holdfast.meta, or not checked yet since start (the check runs right
     * after each PostgreSQL connect, which alone sets pg_ok). */
    atomic_bool topic_unfit;
    atomic_bool stopping;
    atomic_bool finished;
    volatile sig_atomic_t signal_seen;
    lws_sorted_usec_list_t cron;
} relay_t;

int relay_pos_cmp(relay_pos_t a, relay_pos_t b);
/* Test hook (--crash-at POINT:N): dies by SIGKILL at POINT once N batches
 * were produced. */
void relay_crash_point(relay_t *r, const char *point);
/* Test hook (--crash-at POINT:N) that does not kill: true once, at POINT
 * once N batches were produced. */
bool relay_test_hook(relay_t *r, const char *point);

/* flow.c: lists and events */
void relay_list_push(relay_list_t *l, relay_event_t *ev);
relay_event_t *relay_list_pop(relay_list_t *l);
/* Moves all of src to the end (or, with front, the start) of dst. */
void relay_list_splice(relay_list_t *dst, relay_list_t *src, bool front);
void relay_list_free(relay_list_t *l);
/* An event with room for its strings; the caller copies them in through
 * the returned pointers (and sets ev->type = NULL when it has none). */
relay_event_t *relay_event_new(size_t channel_len, size_t type_len, size_t content_type_len,
                               size_t payload_len, char **channel, char **type, char **content_type,
                               uint8_t **payload);
/* ev's envelope in epoch, encoded into out (reset first). with_offsets:
 * also its offset and prev_offset (for Redis; a Kafka record's offset is
 * the log's own). */
void relay_event_envelope(const relay_event_t *ev, const char *epoch, bool with_offsets,
                          hf_buf_t *out);

/* flow.c: the partitions' pipeline */
/* An event from the stream or a reconcile; the flow owns it from now on. */
void relay_flow_accept(relay_t *r, relay_event_t *ev);
/* The stream buffer is full: a partition that cannot produce drops its
 * queue (read again from the slot later). True if one did. */
bool relay_flow_shed(relay_t *r);
void relay_flow_produce(relay_t *r);
/* librdkafka's delivery report callback (kafka.c calls it). */
void relay_flow_on_report(void *arg, relay_event_t *ev);
/* After the producer was destroyed: missing reports count as failures. */
void relay_flow_abandon_reports(relay_t *r);
/* Handles batches whose delivery reports are all in. */
void relay_flow_complete(relay_t *r);
/* Every channel of evs in the chain map (filled from PostgreSQL when it
 * may be; *wait when a commit must end first). */
hf_err_t relay_flow_chain_ready(relay_t *r, relay_event_t *const *evs, size_t n, bool *wait);
/* Empties the chain map (noting whether offsets waited to be recorded). */
void relay_flow_chain_clear(relay_t *r);
/* Nothing in flight, acknowledged-but-unrecorded or being committed. */
bool relay_flow_drained(const relay_t *r);
/* Stamps prev_offset on evs (offset order) and publishes them to Redis. */
void relay_flow_publish(relay_t *r, relay_event_t *const *evs, size_t n);
/* Positions to write at the next commit. */
void relay_flow_dirty(relay_t *r, relay_partition_t *part);
bool relay_flow_commit_due(const relay_t *r, int64_t now_us, int64_t *due_us);
/* The LSN before which every transaction is recorded in full. */
uint64_t relay_flow_confirmable(const relay_t *r);
/* The commit time before which every transaction is recorded in full. */
int64_t relay_flow_confirmed_us(const relay_t *r);
/* Commit time of the oldest event not yet recorded; 0 when none waits. */
int64_t relay_flow_oldest_pending_us(const relay_t *r);
/* When the oldest batch in flight was produced; 0 when none is. */
int64_t relay_flow_oldest_produce_us(const relay_t *r);
int64_t relay_flow_next_retry_us(const relay_t *r, int64_t now);
/* Ends the backoff of partitions whose Kafka leader answers again (at
 * most every 150 ms; never before a partition's floor). */
void relay_flow_probe(relay_t *r);
/* Could a pass do something right now (produce, resync)? */
bool relay_flow_ready(const relay_t *r, int64_t now);
/* Frees every event (no delivery report may be outstanding). */
void relay_flow_reset(relay_t *r);
/* A failure: the partition reads its Kafka tail again after a backoff of
 * at least at_least_ms. */
void relay_partition_unsync(relay_t *r, int p, long long at_least_ms);
/* Forgets the partition's acknowledged, unrecorded events (a resync will
 * read them from Kafka again). */
void relay_partition_drop_acked(relay_t *r, relay_partition_t *part);
void relay_partition_known_clear(relay_partition_t *part);
bool relay_kafka_err_permanent(rd_kafka_resp_err_t err);

/* store.c */
/* Runs sql (text parameters; binary results if asked) on the SQL
 * connection, waiting at most timeout_ms: past it the connection is
 * closed. Returns the result (an error result too; the caller clears it),
 * or NULL when there was none (timeout, a broken connection). */
PGresult *relay_store_query(relay_t *r, const char *sql, int nparams, const char *const *params,
                            bool binary, int timeout_ms);
/* What a query may take: under one lease-renew interval, so that nothing
 * holds the loop past a lease round (docs/relay.md); the slow ones run
 * only with nothing in flight. */
int relay_query_timeout_ms(const relay_t *r);
int relay_slow_query_timeout_ms(const relay_t *r);
/* libpq's tcp_user_timeout (ms, as text) for the relay's connections. */
void relay_store_conn_timeouts(const relay_t *r, char *user_timeout, size_t size);
hf_err_t relay_store_connect(relay_t *r);
void relay_store_close(relay_t *r);
bool relay_store_usable(relay_t *r);
int relay_store_socket(const relay_t *r);
hf_err_t relay_store_load_meta(relay_t *r);
/* Positions, next offsets and known ranges of every partition. */
hf_err_t relay_store_load_partitions(relay_t *r);
/* After a failure: partition p's position as PostgreSQL has it (a commit
 * whose answer was lost may have gone through). */
hf_err_t relay_store_reload_position(relay_t *r, int p);
/* Fills the chain map for the channels of evs[0..n) it does not know. */
hf_err_t relay_store_chain_fill(relay_t *r, relay_event_t *const *evs, size_t n);
hf_err_t relay_store_dead_letter(relay_t *r, const relay_event_t *ev, const char *reason,
                                 int attempts);
/* A new epoch (a reset log); reloads meta. */
hf_err_t relay_store_bump_epoch(relay_t *r, const char *reason);
/* The server's current WAL insert position. */
hf_err_t relay_store_wal_lsn(relay_t *r, uint64_t *lsn);
hf_err_t relay_store_slot_stats(relay_t *r);
/* Sets (before a slot is created) or clears (after the reconcile)
 * holdfast.relay_slot.reconcile_pending. */
hf_err_t relay_store_slot_mark(relay_t *r, bool reconcile_pending);
/* Whether a reconcile is pending and from when (Unix ms; -1: all events). */
hf_err_t relay_store_reconcile_state(relay_t *r, bool *pending, int64_t *floor_ms);
/* The first event id at or after from_id, "" when none. */
hf_err_t relay_store_first_id(relay_t *r, const char *from_id, char *id, size_t size);
/* Events with ids in [from_id, to_id) without an event_offsets row or a
 * dead letter, in creation order, appended to out. */
hf_err_t relay_store_unrelayed(relay_t *r, const char *from_id, const char *to_id,
                               relay_list_t *out);
/* The commit: records every partition's acked events and changed
 * positions; runs asynchronously (relay_store_commit_step advances it
 * without blocking, relay_store_commit_finish waits for its end). */
hf_err_t relay_store_commit_start(relay_t *r);
typedef enum { RELAY_COMMIT_BUSY, RELAY_COMMIT_DONE, RELAY_COMMIT_FAILED } relay_commit_state_t;
relay_commit_state_t relay_store_commit_step(relay_t *r);
void relay_store_commit_finish(relay_t *r);
bool relay_store_commit_busy(const relay_t *r);
void relay_store_commit_free(relay_t *r);

/* lease.c */
hf_err_t relay_lease_tick(relay_t *r);
void relay_lease_leave(relay_t *r);
/* May the leader produce now (its lease far enough from its deadline)? */
bool relay_lease_producible(const relay_t *r, int64_t now_us);

/* pgoutput.c: decoding of the pgoutput plugin's messages (protocol 1,
 * binary values), kept free of I/O so it can be tested and fuzzed. */
typedef struct relay_decoder relay_decoder_t;
typedef enum {
    RELAY_MSG_NONE,   /* nothing for the relay (another table, a type, an origin...) */
    RELAY_MSG_BEGIN,  /* a transaction starts: lsn = its commit LSN, commit_us */
    RELAY_MSG_EVENT,  /* an insert into holdfast.events: event (the caller owns it) */
    RELAY_MSG_COMMIT, /* the transaction ends: lsn = its end LSN */
} relay_msg_kind_t;
typedef struct relay_msg {
    relay_msg_kind_t kind;
    uint64_t lsn;
    int64_t commit_us;
    relay_event_t *event;
} relay_msg_t;
relay_decoder_t *relay_decoder_new(void);
void relay_decoder_free(relay_decoder_t *d);
/* Decodes one pgoutput message. HF_ERR_INVALID (with err) for a message
 * that breaks the protocol or an events row that cannot be ours. */
hf_err_t relay_decode(relay_decoder_t *d, const uint8_t *msg, size_t len, relay_msg_t *out,
                      char *err, size_t err_size);

/* stream.c */
bool relay_stream_names_ok(const char *slot, const char *publication);
/* Makes sure the slot exists (creating it; *created says so) and that no
 * other session reads it. */
hf_err_t relay_stream_prepare(relay_t *r, bool *created);
hf_err_t relay_stream_open(relay_t *r);
void relay_stream_close(relay_t *r);
int relay_stream_socket(const relay_t *r);
/* Reads and dispatches what has arrived, until nothing waits or the
 * stream buffer is full; never blocks. */
hf_err_t relay_stream_read(relay_t *r);
/* Tells the server how far everything is recorded (when it moved, at
 * most every few ms; at once when forced). */
hf_err_t relay_stream_feedback(relay_t *r, bool force);
/* End of the last transaction received (0 before the first). */
uint64_t relay_stream_received(const relay_t *r);
int64_t relay_stream_received_commit_us(const relay_t *r);
/* The last position confirmed to the slot. */
uint64_t relay_stream_confirmed(const relay_t *r);

/* resync.c */
/* Resyncs the partitions that need it and may (not backing off). */
hf_err_t relay_resync_pending(relay_t *r);
/* With a reconcile pending (a new slot): where to start. */
hf_err_t relay_reconcile_begin(relay_t *r);
/* Queues the next window of events without an offset; ends the reconcile. */
hf_err_t relay_reconcile(relay_t *r);

/* kafka.c */
typedef void (*relay_report_fn)(void *arg, relay_event_t *ev);
hf_err_t relay_kafka_new(const relay_config_t *cfg, relay_report_fn on_report, void *arg,
                         relay_kafka_t **out, char *errbuf, size_t errbuf_size);
void relay_kafka_free(relay_kafka_t *k);
/* Produces batch's events in order, moving each to inflight; stops at the
 * first one librdkafka refuses (it and the rest stay in batch) and returns
 * that error. Every produced event gets exactly one delivery report. */
rd_kafka_resp_err_t relay_kafka_produce(relay_kafka_t *k, relay_list_t *batch, const char *epoch,
                                        relay_list_t *inflight);
/* TESTS ONLY (--crash-at late-copy:N): produces delivered events again,
 * as a broker that appends a dead leader's write late would hold them. */
void relay_kafka_produce_late_copy(relay_kafka_t *k, relay_event_t *const *evs, size_t n,
                                   const char *epoch);
/* Serves delivery reports; woken: the wakeup fd was seen readable (only
 * then is it drained: a read per pass would be a syscall per pass). */
void relay_kafka_poll(relay_kafka_t *k, bool woken);
/* Readable when delivery reports wait. */
int relay_kafka_wakeup_fd(const relay_kafka_t *k);
/* Destroys the producer when a report is overdue or it hit a fatal error
 * (every report it owed arrives first, failed); true if it did. */
bool relay_kafka_check(relay_kafka_t *k, int64_t oldest_produce_us);
/* Destroys the producer now (its owed reports arrive, failed). */
void relay_kafka_shutdown(relay_kafka_t *k);
/* The partition's [low, high) watermarks, bounded by the produce timeout. */
hf_err_t relay_kafka_watermarks(relay_kafka_t *k, int partition, int64_t *low, int64_t *high);
/* Reads [from, to) of partition until deadline_us, calling fn for each
 * record (id and channel NULL when it is not one of ours). */
typedef hf_err_t (*relay_tail_fn)(void *arg, int64_t offset, const char *id, const char *channel,
                                  const uint8_t *value, size_t value_len);
hf_err_t relay_kafka_read(relay_kafka_t *k, int partition, int64_t from, int64_t to,
                          int64_t deadline_us, relay_tail_fn fn, void *arg);
/* Partitions of the topic as the brokers report them; -1 if unknown. */
int relay_kafka_partition_count(relay_kafka_t *k);
/* up[p] when the leader of a partition with want[p] accepts a connection
 * (hf_kafka_leaders_probe), bounded by timeout_ms. */
hf_err_t relay_kafka_probe_leaders(relay_kafka_t *k, const bool *want, bool *up, int nparts,
                                   int timeout_ms);

/* chain.c: channel -> last offset in this epoch, bounded. */
relay_chain_t *relay_chain_new(size_t max_entries);
void relay_chain_free(relay_chain_t *c);
void relay_chain_clear(relay_chain_t *c);
size_t relay_chain_count(const relay_chain_t *c);
/* true and *offset when known (HF_OFFSET_NONE = known to have none). */
bool relay_chain_get(relay_chain_t *c, const char *channel, int64_t *offset);
void relay_chain_set(relay_chain_t *c, const char *channel, int64_t offset);
/* Would n more channels fit? (Otherwise the map is emptied first.) */
bool relay_chain_fits(const relay_chain_t *c, size_t n);
/* Stamps prev_offset of evs[0..n), which are in offset order; every
 * channel must be in the map. */
void relay_chain_stamp(relay_chain_t *c, relay_event_t *const *evs, size_t n);

/* publish.c */
relay_publisher_t *relay_publisher_new(const char *url, const char *password_file,
                                       long long timeout_ms);
void relay_publisher_free(relay_publisher_t *p);
/* PUBLISHes evs[0..n) in order, pipelined (one round trip). Returns how
 * many were published; the rest were skipped (Redis down or slow). */
size_t relay_publish(relay_publisher_t *p, relay_event_t *const *evs, size_t n, const char *epoch);
bool relay_publisher_connected(const relay_publisher_t *p);
/* While idle: once Redis is back, announces the offsets skipped while it
 * was not (publish.c explains), so gateways need not wait for the next
 * event of a quiet channel. */
void relay_publisher_announce(relay_publisher_t *p);

/* PUBLISHes text on the heartbeat channel (wire.h); a failure drops the
 * connection like any publish. */
void relay_publisher_heartbeat(relay_publisher_t *p, const char *text);

/* loop.c */
void *relay_thread_main(void *arg);
/* Leaves the leader's work: stream closed, producer purged, events freed. */
void relay_stop_leading(relay_t *r);

#endif
