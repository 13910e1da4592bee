/* history.h - GET /v1/channels/{channel}/events: a channel's past, by offset.
 *
 * Owns one worker thread with its own PostgreSQL connection and Kafka log
 * reader, and the queue of history requests waiting for it. Pages come
 * from Kafka while it still holds the offsets and from PostgreSQL's events
 * table (offsets written back by the relay) for what Kafka no longer has,
 * or for everything while Kafka is unreachable. Publishing never waits
 * behind history: the writers have their own connections and queue. */
#ifndef HOLDFAST_INGEST_HISTORY_H
#define HOLDFAST_INGEST_HISTORY_H

#include "holdfast/err.h"
#include "holdfast/http.h"
#include "holdfast/kafka_props.h"

typedef struct ingest_history ingest_history_t;

#define HISTORY_LIMIT_DEFAULT 100
#define HISTORY_LIMIT_MAX     1000

/* Starts the worker. kafka_brokers NULL or "": PostgreSQL only. NULL
 * (logged) when the Kafka settings are bad. */
ingest_history_t *ingest_history_start(const char *pg_url, const char *kafka_brokers,
                                       const hf_kafka_props_config_t *kafka_props,
                                       const char *topic, long long queue_max);
void ingest_history_stop(ingest_history_t *h);

/* The route handler (lws thread): validates, then queues the request for
 * the worker, which answers it. ctx is the ingest_t. */
void ingest_history_route(hf_http_req_t *req, void *ctx);

#endif
