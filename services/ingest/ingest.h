/* ingest.h - holdfast-ingest: HTTP POST /v1/events -> PostgreSQL holdfast.events.
 *
 * Stage 1 of the pipeline. The lws thread parses and validates requests
 * (parse.c), hands them to the writer pool through one queue (writer.c),
 * whose threads each own a PostgreSQL connection and commit whatever is
 * queued as one transaction (group commit), then answer every request of
 * the group. A request is answered 2xx only after its transaction
 * committed (invariant 1, docs/design.md). */
#ifndef HOLDFAST_INGEST_H
#define HOLDFAST_INGEST_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "holdfast/auth.h"
#include "holdfast/buf.h"
#include "holdfast/clock.h"
#include "holdfast/err.h"
#include "holdfast/http.h"
#include "holdfast/http_parse.h"
#include "holdfast/kafka_props.h"
#include "holdfast/metrics.h"
#include "holdfast/ratelimit.h"

#define INGEST_MAX_WRITERS 64

typedef struct ingest_config {
    char *listen_addr;              /* address the HTTP server binds */
    long long port;                 /* HTTP port; 0 picks a free one (printed) */
    char *pg_url;                   /* libpq connection URI */
    long long writers;              /* PostgreSQL connections, one thread each */
    long long group_max;            /* most requests committed in one transaction */
    long long queue_max;            /* requests waiting for a writer before 503 */
    long long queue_timeout_ms;     /* a request waiting longer is answered 503 */
    long long max_body;             /* request body limit, bytes */
    long long max_inflight_bytes;   /* bodies being received, bytes, before 503 */
    long long max_queued_bytes;     /* bodies waiting for or in a writer, bytes, before 503 */
    long long max_batch;            /* events in one request */
    long long body_timeout_ms;      /* a body must arrive within this */
    long long statement_timeout_ms; /* PostgreSQL statement_timeout of the writers */
    long long reconnect_max_ms;     /* cap of the reconnect backoff */
    long long idempotency_ttl_ms;   /* Idempotency-Keys are kept this long */
    long long drain_timeout_ms;     /* SIGTERM: longest wait for in-flight commits */
    char *log_level;                /* debug, info, warn, error */
    char *kafka_brokers;            /* history reads Kafka here; empty: PostgreSQL only */
    /* librdkafka properties of the history reader (security, tuning) */
    hf_kafka_props_config_t kafka_props;
    char *topic;                 /* the event topic */
    long long history_queue_max; /* history requests waiting before 503 */
    hf_auth_config_t auth;       /* who may publish and read history */
    long long publish_rate;      /* events/s per subject; 0: unlimited */
    long long publish_burst;     /* events a subject may send at once */
    char *cors_origins;          /* browser origins allowed (CORS); "": none */
} ingest_config_t;

/* One accepted HTTP request on its way to PostgreSQL. Owned by the queue,
 * then by the writer that took it, which frees it after answering. */
typedef struct ingest_job {
    hf_http_req_t *req; /* answered exactly once, by the writer */
    const char *body;   /* the request body (lives in req) */
    size_t body_len;
    hf_buf_t channels; /* text[] literal */
    hf_buf_t types;    /* text[] literal */
    hf_buf_t offsets;  /* integer[] literal: payload start in body */
    hf_buf_t lengths;  /* integer[] literal: payload length */
    char **names;      /* each event's channel (owned, nevents of them) */
    uint32_t *hashes;  /* hf_fnv1a32 of each channel: partition = hash % count */
    int nevents;
    bool is_batch;           /* answer with an array */
    char *idempotency_key;   /* owned; the client's key scoped to its subject
                                (routes.c); NULL when absent */
    int64_t enqueued_us;     /* monotonic, for queue timeouts and metrics */
    struct ingest_job *next; /* queue link */
} ingest_job_t;

typedef struct ingest_writer ingest_writer_t;
typedef struct ingest_history ingest_history_t; /* history.h */

typedef struct ingest_metrics {
    hf_metric_t *events_created;       /* events committed */
    hf_metric_t *requests_replayed;    /* idempotent retries answered with the original */
    hf_metric_t *requests_conflict;    /* key reused with another body */
    hf_metric_t *requests_rejected;    /* 4xx before reaching PostgreSQL */
    hf_metric_t *requests_unavailable; /* 503s */
    hf_metric_t *commit_seconds;       /* one group transaction, BEGIN to COMMIT */
    hf_metric_t *group_size;           /* requests per transaction */
    hf_metric_t *request_seconds;      /* enqueue to answer */
    hf_metric_t *auth_failed;          /* 401: no, bad or expired credentials */
    hf_metric_t *auth_forbidden;       /* 403: a channel the credentials do not cover */
    hf_metric_t *rate_limited;         /* 429: a subject over its publish rate */
    hf_metric_t *over_inflight_bytes;  /* 503: the bytes of bodies being received at the cap */
    hf_metric_t *over_queued_bytes;    /* 503: the bytes of bodies waiting for writers at the cap */
} ingest_metrics_t;

typedef struct ingest {
    ingest_config_t cfg;
    struct lws_context *lws;
    hf_http_server_t *http;
    hf_metrics_t *metrics;
    ingest_metrics_t m;

    pthread_mutex_t lock; /* guards the queue */
    pthread_cond_t wake;  /* queue not empty, or stopping */
    ingest_job_t *queue_head, *queue_tail;
    size_t queue_len;
    bool stopping; /* writers finish their group and exit */

    ingest_writer_t *writers[INGEST_MAX_WRITERS];
    int nwriters;
    atomic_int writers_connected; /* writers with a usable PostgreSQL connection */

    volatile sig_atomic_t signal_seen; /* set by SIGTERM/SIGINT */
    bool draining;
    int64_t drain_deadline_us;
    lws_sorted_usec_list_t cron; /* periodic duties on the lws thread */
    int bound_port;
    ingest_history_t *history; /* GET /v1/channels/{channel}/events */
    hf_auth_t *auth;
    hf_ratelimit_t *publish_limit; /* per subject; used on the lws thread only */
    hf_http_cors_t cors;           /* parsed cors_origins */
    /* Bytes of request bodies held, by where they are (routes.c). Changed
     * on the lws thread only; atomic for the gauges. */
    atomic_size_t inflight_bytes; /* admitted, still arriving */
    atomic_size_t queued_bytes;   /* handed to the writers, not yet answered */
} ingest_t;

/* parse.c: turns a request body into a job. On error returns
 * HF_ERR_INVALID / HF_ERR_TOO_LARGE with a message in errbuf. */
hf_err_t ingest_parse_body(const char *body, size_t len, long long max_batch, ingest_job_t *job,
                           char *errbuf, size_t errbuf_size);
void ingest_job_free(ingest_job_t *job);

/* writer.c: the pool of PostgreSQL writers and its queue. */
hf_err_t ingest_writers_start(ingest_t *ing);
/* Hands job to the pool; on error the caller still owns job and answers. */
hf_err_t ingest_writers_submit(ingest_t *ing, ingest_job_t *job);
size_t ingest_writers_queue_len(ingest_t *ing);
void ingest_writers_stop(ingest_t *ing);

/* routes.c */
/* Verifies the request's bearer credentials; on failure answers 401 and
 * returns NULL. The caller frees the identity. */
hf_auth_identity_t *ingest_authenticate(ingest_t *ing, hf_http_req_t *req);
extern const hf_http_route_t ingest_routes[];
extern const size_t ingest_nroutes;

#endif
