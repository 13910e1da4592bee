/* gateway.h - holdfast-gateway: the daemon's state and its modules.
 *
 * Owns nothing itself; declares the process' state (gw_process_t), the
 * state of one worker (gateway_t) and what each module offers the others:
 *   main.c     settings, signals, the workers' threads, metrics
 *   worker.c   one worker: its backends, its lws context, service loop, drain
 *   listener.c the listening socket, accepting for every worker
 *   conn.c     WebSocket connections: frames in, send queues out, limits
 *   access.c   tokens at the upgrade and on subscribe, connection counts per
 *              address and subject (process-wide, one lock), message rates
 *   channels.c channels and subscriptions: the chain rule, gap fill and
 *              fallback bookkeeping (which partitions must be read from Kafka)
 *   inbox.c    the queue by which the Redis and Kafka threads hand results
 *              to the lws thread
 *   redis_sub.c the Redis subscriber thread (SUBSCRIBE, heartbeat, reconnect)
 *   kafka_scan.c the Kafka reader thread (probes, partition scans)
 *   proto.c    the client protocol's messages (schemas/websocket.md)
 *
 * Workers: a process runs --workers of them, each a service thread with
 * its own lws context, Redis subscriber, Kafka reader, channels and
 * connections - a gateway in itself, sharing only the listening socket,
 * the settings, the metrics registry, the token verifier, the connection
 * counts, the stop signal and the total of the send queues (an atomic
 * counter against --send-queue-total-bytes). A connection lives on one
 * worker for its whole life, so nothing else on the delivery path is
 * shared between workers.
 *
 * Threading: a worker's connections, channels and subscriptions live on
 * its lws service thread only. Its Redis and Kafka threads never touch
 * them; they talk to it through the inbox and take commands through their
 * own queues. Counters other threads read for /metrics are atomics. */
#ifndef HOLDFAST_GATEWAY_H
#define HOLDFAST_GATEWAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "holdfast/auth.h"
#include "holdfast/clock.h"
#include "holdfast/envelope.h"
#include "holdfast/http.h"
#include "holdfast/kafka_props.h"
#include "holdfast/metrics.h"
#include "holdfast/ratelimit.h"
#include "holdfast/strmap.h"
#include "inbox.h"
#include "kafka_scan.h"
#include "proto.h"
#include "redis_sub.h"

typedef struct gateway_config {
    char *listen_addr;
    long long port;
    char *redis_url;
    char *redis_password_file;
    char *kafka_brokers;
    hf_kafka_props_config_t kafka_props; /* librdkafka properties (security, tuning) */
    char *topic;
    long long redis_ping_interval_ms;
    long long redis_ping_timeout_ms;   /* silent this long: drop the connection */
    long long redis_suspect_after_ms;  /* silent this long: read Kafka too (0: never) */
    long long redis_suspect_jitter_ms; /* plus a random share of this, per silence */
    long long redis_retry_ms;
    long long redis_handback_grace_ms;
    long long max_frame;         /* bytes of one client message */
    long long max_subscriptions; /* per connection */
    long long send_queue_bytes;  /* per connection */
    long long send_queue_messages;
    long long send_queue_total_bytes; /* all connections of the process together */
    long long socket_sndbuf;          /* SO_SNDBUF of client sockets; 0: the kernel's autotuning */
    long long ws_ping_interval_ms;
    long long ws_idle_timeout_ms;
    long long drain_timeout_ms;
    long long drain_spread_ms; /* drained clients are told to wait up to this before reconnecting */
    char *gateway_id;          /* named in welcome messages; default host-pid */
    long long inbox_max_bytes;
    long long kafka_timeout_ms;
    long long kafka_deep_after;    /* records behind the head: read through the deep reader */
    long long kafka_deep_inflight; /* bytes of deep records waiting for the lws thread */
    char *event_loop;              /* "uv" (epoll through libuv) or "poll" */
    long long workers;             /* service threads; 0: one per CPU the process may use */
    hf_auth_config_t auth;
    long long max_conns_per_ip;      /* per client address; 0: unlimited */
    long long max_conns_per_subject; /* per token subject; 0: unlimited */
    long long client_msg_rate;       /* client messages/s per connection; 0: unlimited */
    long long client_msg_burst;
    char *allowed_origins; /* comma-separated Origin values a handshake may carry; "*": any */
    char *log_level;
} gateway_config_t;

typedef struct gateway gateway_t;
typedef struct gw_conn gw_conn_t;
typedef struct gw_sub gw_sub_t;
typedef struct gw_channel gw_channel_t;

/* Event ids a channel delivered, so that a copy of an event (the relay
 * left a batch twice in Kafka: same ids, new offsets) is not delivered
 * again. The key is the id's 16 bytes when it is a UUID, else a 128-bit
 * hash of it. */
#define GW_ID_WINDOW 256 /* ids kept per channel, at most (24 bytes each) */
typedef struct gw_id_seen {
    uint8_t key[16];
    int64_t offset; /* where the channel delivered it */
} gw_id_seen_t;

/* One channel with local subscribers. */
struct gw_channel {
    char *name;
    int32_t partition;
    gw_sub_t *subs; /* doubly linked through gw_sub.ch_prev/ch_next */
    size_t nsubs;
    bool redis_live;        /* Redis confirmed the subscription since it last connected */
    bool heads_wait;        /* live again with subscribers reading Kafka: the relay's next
                               heartbeat ends that (gw->heads_waiting counts these) */
    int64_t handback_at_us; /* caught up: stop reading Kafka at this time; 0: none */
    bool catchup_wanted;    /* went live with subscribers reading Kafka: ask a catch-up */
    uint64_t catchup_token; /* the catch-up asked for when it went live; 0: none */
    int64_t max_seen;       /* highest offset seen on Redis for it */
    gw_id_seen_t *ids;      /* ring of the last ids delivered; grows to GW_ID_WINDOW */
    size_t ids_cap, ids_len, ids_next;
    gw_channel_t *part_prev, *part_next; /* the partition's channels */
};

typedef enum gw_sub_state {
    GW_SUB_WAIT_REDIS, /* waiting for Redis to confirm the channel's subscription */
    GW_SUB_PROBING,    /* waiting for the partition's watermarks and epoch */
    GW_SUB_ACTIVE,     /* delivering */
} gw_sub_state_t;

/* One connection's subscription to one channel. */
struct gw_sub {
    gw_conn_t *conn;
    gw_channel_t *channel;
    gw_sub_state_t state;
    int64_t last;       /* every event of the channel up to this offset is delivered */
    int64_t last_event; /* offset of the last event delivered (the next one's prev_offset);
                           HF_PREV_OFFSET_UNKNOWN before the first */
    char epoch[HF_PROTO_EPOCH_MAX + 1]; /* the epoch `last` counts in; "" while unknown (the
                                           log was empty when it was placed) */
    int reader; /* the Kafka scan that feeds it while it reads Kafka (GW_READER_*) */
    bool has_since;
    int64_t since_offset;
    char since_epoch[HF_PROTO_EPOCH_MAX + 1];
    uint64_t probe_token;
    int probe_retries;   /* probes that could not tell the log's epoch */
    int64_t fill_until;  /* read Kafka until last >= this; -1: no gap */
    bool tail;           /* Redis is not (yet) carrying this channel: read Kafka */
    uint64_t need_token; /* the scan request answered for it; 0: none sent */
    bool kafka_ok;       /* the partition's scan covers every offset after last */
    bool kafka_paused;   /* its connection's queue is over half full: Kafka waits for it */
    gw_req_id_t *req_id; /* owned; the subscribe's id until "subscribed" answers it; or NULL */
    gw_sub_t *ch_prev, *ch_next;
    gw_sub_t *conn_next;
};

/* One queued outgoing frame, shared by every connection it goes to. */
typedef struct gw_frame {
    int refs;
    bool binary;
    size_t len;
    unsigned char data[]; /* LWS_PRE bytes of room, then the message */
} gw_frame_t;

/* One WebSocket connection (lws per-session data). */
struct gw_conn {
    gateway_t *gw;
    struct lws *wsi;
    bool msgpack;   /* a .msgpack subprotocol; else JSON */
    uint8_t minor;  /* protocol 1.minor, from the subprotocol */
    gw_sub_t *subs; /* singly linked through gw_sub.conn_next */
    size_t nsubs;
    gw_frame_t **queue; /* ring of frames waiting for the socket */
    size_t qcap, qhead, qlen;
    size_t qbytes;
    bool closing;    /* a close was decided; nothing more is queued */
    bool close_sent; /* its close frame is out; waiting for the client's */
    int close_code;
    /* "WHY: text" (gw_proto_close_reason) */
    char close_reason[GW_CLOSE_REASON_MAX + 1];
    hf_buf_t rx;             /* a client message arriving in fragments */
    bool kafka_paused;       /* some subscription waits for the queue to drain */
    hf_auth_identity_t *who; /* owned; NULL until admitted */
    bool counted_ip;         /* holds a place in the per-address count */
    bool counted_subject;    /* holds a place in the per-subject count */
    char peer[48];           /* client address */
    hf_bucket_t msg_bucket;  /* client messages */
    int64_t heard_us;        /* monotonic time of the client's last frame, PONGs included */
    bool ping_owed;          /* the heartbeat wants a PING written */
    bool ping_sent;          /* a PING is out, not yet answered by any frame */
    gw_conn_t *prev, *next;
};

/* Per partition of the topic, on the lws thread. */
typedef struct gw_partition {
    gw_channel_t *channels;
    bool scanning[GW_READERS]; /* a scan was asked of that reader and not released */
    bool dirty;                /* re-evaluate what it needs from Kafka */
    uint64_t next_token;       /* tokens for probes, scans and catch-ups */
    /* per reader: highest offset its scan forwarded since it last answered a need */
    int64_t scan_seen[GW_READERS];
    int64_t head; /* highest offset known to be in the log (Redis, Kafka, probes, the relay's
                     heartbeat); -1: none. Far behind it, Kafka is read by the deep reader */
    char epoch[HF_PROTO_EPOCH_MAX + 1]; /* epoch of the latest record seen; "" unknown */
    int64_t heads_max; /* highest head the relay announced in gw->heads_epoch; -1: none */
} gw_partition_t;

typedef struct gateway_metrics {
    hf_metric_t *connections_total;
    hf_metric_t *closed_slow;
    hf_metric_t *closed_budget; /* 4001 because the process' send queues were full */
    hf_metric_t *delivered_redis;
    hf_metric_t *delivered_kafka;
    hf_metric_t *records_live; /* Kafka records the live reader handed to the service thread */
    hf_metric_t *records_deep; /* ... the deep reader */
    hf_metric_t *duplicates;
    hf_metric_t *duplicate_ids; /* copies of a delivered event (same id, later offset) */
    hf_metric_t *gaps;
    hf_metric_t *fallbacks;
    hf_metric_t *suspicions;
    hf_metric_t *handbacks_heads;
    hf_metric_t *handbacks_timer;
    hf_metric_t *protocol_errors;
    hf_metric_t *unrecoverable;
    hf_metric_t *epoch_changes; /* subscriptions moved to the relay's new epoch */
    hf_metric_t *latency;
    hf_metric_t *accept_refused;
    hf_metric_t *auth_failed;
    hf_metric_t *auth_forbidden;
    hf_metric_t *limited_conns_ip;
    hf_metric_t *limited_conns_subject;
    hf_metric_t *limited_msg_rate;
    hf_metric_t *token_refreshes;
    hf_metric_t *origin_refused;
} gateway_metrics_t;

typedef struct gw_listener gw_listener_t;
typedef struct gw_process gw_process_t;

/* A gauge summing one atomic_size_t field of gateway_t over the workers. */
typedef struct gw_gauge_arg {
    gw_process_t *proc;
    size_t field; /* offsetof(gateway_t, ...) */
} gw_gauge_arg_t;

/* The process: what its workers share. */
struct gw_process {
    gateway_config_t cfg;
    hf_metrics_t *metrics;
    gateway_metrics_t m;
    gw_listener_t *listener;
    atomic_int stop;    /* SIGTERM or SIGINT: every worker drains */
    atomic_bool failed; /* a worker's loop ended on an error */
    gateway_t *workers; /* nworkers of them */
    size_t nworkers;
    atomic_size_t next_worker; /* the round robin of accepted connections */
    /* every worker's send queues together (--send-queue-total-bytes); only
     * totals within the budget are ever kept, so queued_peak is too */
    atomic_size_t queued_bytes;
    atomic_size_t queued_peak;
    gw_gauge_arg_t gauges[4];
    hf_auth_t *auth;                /* immutable: every worker verifies with it */
    pthread_mutex_t access_lock;    /* guards the two counts below */
    hf_strmap_t *conns_per_ip;      /* address -> open connections */
    hf_strmap_t *conns_per_subject; /* subject -> open connections */
    char **origins;                 /* --allowed-origins, parsed; immutable once running */
    size_t norigins;
    bool any_origin; /* "*" is among them */
};

struct gateway {
    gw_process_t *proc;
    size_t index;
    char metrics_labels[32]; /* worker="N" */
    gateway_config_t cfg;    /* the process' settings (strings owned there) */
    gateway_metrics_t m;     /* the process' metrics */
    struct lws_context *lws;
    /* HTTP, each subprotocol, the listener; the end */
    struct lws_protocols protocols[GW_SUBPROTOCOLS + 3];
    hf_http_server_t *http;
    lws_sorted_usec_list_t cron;
    pthread_t thread;
    bool thread_started;
    bool draining;
    bool uv;      /* lws runs on libuv: lws_service() returns only once the loop stops */
    bool stopped; /* the loop was told to stop (uv) */
    int64_t drain_deadline_us;
    int64_t expiry_checked_s; /* the second tokens were last checked for expiry */
    uint64_t rng;             /* xorshift64 state: each drained client's reconnect delay */

    gw_inbox_t *inbox;
    gw_redis_t *redis;
    gw_kafka_t *kafka;
    int32_t partition_count;
    gw_partition_t *partitions;
    hf_strmap_t *channels; /* name -> gw_channel_t */
    bool redis_up;
    bool redis_suspect;       /* Redis went silent; the connection is kept (redis_sub.h) */
    size_t handbacks_pending; /* channels with handback_at_us set */
    size_t heads_waiting;     /* channels with heads_wait set */
    char heads_epoch[HF_PROTO_EPOCH_MAX + 1]; /* the epoch of the relay's last heartbeat */

    gw_conn_t *conns; /* doubly linked */
    atomic_size_t nconns;
    atomic_size_t nsubs;
    atomic_size_t nchannels;
    atomic_size_t queued_bytes; /* across every send queue */
    atomic_size_t handoffs;     /* accepted sockets on their way to this worker */
};

/* worker.c */
/* Starts a worker's Redis and Kafka threads; *partitions gets the topic's
 * partition count. gw_worker_free() undoes any part that was done. */
hf_err_t gw_worker_init(gateway_t *gw, gw_process_t *proc, size_t index, int32_t *partitions);
/* Creates its lws context (worker 0 also serves the listening socket). */
hf_err_t gw_worker_listen(gateway_t *gw);
/* The service loop, until the drain ends; then destroys the context. */
void gw_worker_run(gateway_t *gw);
void gw_worker_free(gateway_t *gw);
/* main.c */
/* The listener's callback: gives fd to the next worker (round robin,
 * skipping one far above the least loaded). */
void gw_process_accept(void *proc, int fd);
/* libuv's signal callback (it owns SIGTERM and SIGINT under libuv). */
void gw_on_uv_signal(void *handle, int sig);

/* access.c */
hf_err_t gw_access_init(gw_process_t *p, char *errbuf, size_t errbuf_size);
void gw_access_free(gw_process_t *p);
/* Whether a handshake carrying this Origin header may proceed: no header
 * (not a browser) or one listed in --allowed-origins (exact match), or
 * the list holds "*". */
bool gw_access_origin_allowed(const gw_process_t *p, const char *origin);
/* Parses --allowed-origins into p (gw_access_init does); HF_ERR_INVALID
 * with the reason for an entry that is no Origin (a path, a trailing
 * slash, upper case: a browser would never send it, so it could never
 * match). */
hf_err_t gw_access_origins_parse(gw_process_t *p, const char *list, char *errbuf,
                                 size_t errbuf_size);
/* At the handshake (lws' FILTER_PROTOCOL_CONNECTION, before the 101):
 * false when the Origin is not allowed, after writing the 403 (the caller
 * then refuses the connection, which lws closes). */
bool gw_access_handshake(gateway_t *gw, struct lws *wsi);
/* At the upgrade: the token and the connection limits. false: c is being
 * closed (4401 or 1008) and must not be served. */
bool gw_access_admit(gateway_t *gw, gw_conn_t *c, struct lws *wsi);
/* At close: gives back c's place in the limits, frees its identity. */
void gw_access_release(gateway_t *gw, gw_conn_t *c);
/* false: an error (echoing req's id) was sent, or c is being closed (token
 * expired). */
bool gw_access_may_subscribe(gateway_t *gw, gw_conn_t *c, const gw_request_t *req);
/* The auth message: a fresh token of the same subject replaces c's; the
 * subscriptions it no longer covers end ("unsubscribed", reason
 * "forbidden"); answered "authenticated", or an error leaving c as it was. */
void gw_access_refresh(gateway_t *gw, gw_conn_t *c, const gw_request_t *req);
/* One client message against c's rate; false: c is being closed (1008). */
bool gw_access_message_allowed(gateway_t *gw, gw_conn_t *c);
/* Closes connections whose token expired (the cron, once a second). */
void gw_access_expire(gateway_t *gw, int64_t now_s);

/* conn.c */
/* Adopts an accepted client socket into gw's context (on its thread). */
void gw_conn_adopt(gateway_t *gw, int fd);
/* The lws protocol for one subprotocol name (JSON or msgpack by name). */
struct lws_protocols gw_ws_protocol(const char *name);
/* One event's frames, encoded on first use per format and prev_offset and
 * shared by every connection that gets it. */
typedef struct gw_event_frames gw_event_frames_t;
gw_event_frames_t *gw_event_frames_new(const hf_envelope_t *env, int64_t offset);
void gw_event_frames_free(gw_event_frames_t *frames);
/* Queues the event for sub's connection. Overflow of the send queue
 * closes the connection (GW_CLOSE_SLOW); it never blocks. */
void gw_conn_deliver(gateway_t *gw, gw_sub_t *sub, gw_event_frames_t *frames, int64_t prev);
/* Control messages to conn. The first "subscribed" of a subscription
 * echoes (and frees) its subscribe's id. */
void gw_conn_send_subscribed(gateway_t *gw, gw_conn_t *conn, gw_sub_t *sub, bool recovered);
/* id may be NULL; retry_after_ms < 0: none. */
void gw_conn_send_error(gateway_t *gw, gw_conn_t *conn, const char *code, const char *channel,
                        const char *message, const gw_req_id_t *id, int64_t retry_after_ms);
/* Sends one encoded message (msg is freed). */
void gw_conn_send_buf(gateway_t *gw, gw_conn_t *conn, hf_buf_t *msg);
/* Whether conn's queue has room for Kafka catch-up (under half full).
 * Catch-up is paced by the client; only the live stream can overflow it. */
bool gw_conn_room_for_replay(const gateway_t *gw, gw_conn_t *conn);
/* Closes c with code once what is being written is out; the reason is
 * "WHY: TEXT" (why: a GW_WHY_* code), with retry_after_ms when >= 0. */
void gw_conn_close(gateway_t *gw, gw_conn_t *c, int code, const char *why, int64_t retry_after_ms,
                   const char *text);
/* The drain: closes every connection with 1012, each told to wait its own
 * share of --drain-reconnect-spread before reconnecting. */
void gw_conns_drain(gateway_t *gw);
/* The 1012 of one connection during the drain. */
void gw_conn_close_drain(gateway_t *gw, gw_conn_t *c);
/* The WebSocket heartbeat, called once a second: PINGs clients quiet for
 * ws-ping-interval, drops those quiet for ws-idle-timeout. */
void gw_conns_heartbeat(gateway_t *gw, int64_t now_us);

/* channels.c */
void gw_channels_init(gateway_t *gw, int32_t partition_count);
void gw_channels_free(gateway_t *gw);
/* A client's subscribe (validated, not a duplicate): creates the
 * subscription, linked into conn; "subscribed" is sent once it is placed. */
gw_sub_t *gw_sub_create(gateway_t *gw, gw_conn_t *conn, const gw_request_t *req);
/* Unlinks sub from its channel and connection and frees it. */
void gw_sub_destroy(gateway_t *gw, gw_sub_t *sub);
/* conn's queue drained: its paused subscriptions read Kafka again. */
void gw_conn_resume_replay(gateway_t *gw, gw_conn_t *conn);
/* Sends the scan requests and releases that changes since the last call
 * call for (partitions marked dirty). */
void gw_partitions_evaluate(gateway_t *gw);
/* Periodic: ends the Kafka reading of channels whose hand-back grace
 * passed. */
void gw_channels_tick(gateway_t *gw, int64_t now_us);
/* The monotonic clock the chain rule reads (hf_now_us): one function of
 * the gateway's, so that its unit test can set the time. */
int64_t gw_now_us(void);
/* Handles everything the inbox holds; called on the lws thread. */
void gw_inbox_dispatch(gateway_t *gw);

#endif
