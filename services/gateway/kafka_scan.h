/* kafka_scan.h - the gateway's Kafka reader thread.
 *
 * Owns two log readers (hf_logread, no consumer group): one scans the
 * partitions the lws thread asks for, from the offsets it asks for, and
 * forwards every record; the other answers probes (a partition's
 * watermarks and the epoch of its latest record). Per partition it keeps
 * the scan's cursor (the next offset it will forward).
 *
 * Commands (from the lws thread, any order, answered through the inbox in
 * the order they were handled):
 *   probe(P, token)       -> KAFKA_PROBED
 *   need(P, from, token)  -> KAFKA_SCANNING once the scan's cursor is <= from
 *                            (rewinding a running scan if needed); every
 *                            record forwarded after it follows on from there
 *   catchup(P, token)     -> KAFKA_CAUGHT_UP once the cursor reaches the log
 *                            end as queried after the command arrived
 *   release(P)            -> stops scanning P
 * A scan whose offset is no longer in the log restarts at the log start
 * and reports KAFKA_LOST. */
#ifndef HOLDFAST_GW_KAFKA_SCAN_H
#define HOLDFAST_GW_KAFKA_SCAN_H

#include <stdint.h>

#include "holdfast/err.h"
#include "holdfast/kafka_props.h"
#include "inbox.h"

typedef struct gw_kafka gw_kafka_t;

/* Connects and learns the topic's partition count (waiting up to
 * wait_ms for the brokers), then starts the thread. NULL on failure. */
gw_kafka_t *gw_kafka_start(const char *brokers, const hf_kafka_props_config_t *props,
                           const char *topic, int timeout_ms, int wait_ms, gw_inbox_t *inbox,
                           int32_t *partition_count);
void gw_kafka_stop(gw_kafka_t *kafka);

void gw_kafka_probe(gw_kafka_t *kafka, int32_t partition, uint64_t token);
void gw_kafka_need(gw_kafka_t *kafka, int32_t partition, int64_t from, uint64_t token);
void gw_kafka_catchup(gw_kafka_t *kafka, int32_t partition, uint64_t token);
void gw_kafka_release(gw_kafka_t *kafka, int32_t partition);

/* Partitions being scanned (for /metrics). */
int gw_kafka_scanning(gw_kafka_t *kafka);

#endif
