/* kafka_scan.h - the gateway's Kafka reader thread.
 *
 * Owns three log readers (hf_logread, no consumer group). Two scan the
 * partitions the lws thread asks for, from the offsets it asks for, and
 * forward every record: the live reader, for subscriptions near their
 * partition's head (tailing while Redis is away, gap fills, short
 * resumes), and the deep reader, for those far behind it (a resume from
 * hours back), so that one deep read never rewinds the cursor the others
 * depend on. The deep reader's records are paced: at most deep_inflight
 * bytes of them wait for the lws thread (gw_kafka_deep_done), so they
 * never queue far ahead of live events in the inbox. The third reader
 * answers probes (a partition's watermarks and the epoch of its latest
 * record). Per reader and partition it keeps the scan's cursor (the next
 * offset it will forward).
 *
 * Commands (from the lws thread, any order, answered through the inbox in
 * the order they were handled; reader is GW_READER_LIVE or _DEEP):
 *   probe(P, token)               -> KAFKA_PROBED
 *   need(reader, P, from, token)  -> KAFKA_SCANNING once that reader's
 *                                    cursor is <= from (rewinding a running
 *                                    scan if needed); every record it
 *                                    forwards after that follows on
 *   catchup(P, token)             -> KAFKA_CAUGHT_UP once the live cursor
 *                                    reaches the log end as queried after
 *                                    the command arrived
 *   release(reader, P)            -> that reader stops scanning P
 * A scan whose offset is no longer in the log restarts at the log start
 * and reports KAFKA_LOST. Records, SCANNING and LOST name their reader. */
#ifndef HOLDFAST_GW_KAFKA_SCAN_H
#define HOLDFAST_GW_KAFKA_SCAN_H

#include <stdint.h>

#include "holdfast/err.h"
#include "holdfast/kafka_props.h"
#include "inbox.h"

typedef struct gw_kafka gw_kafka_t;

#define GW_READER_LIVE 0
#define GW_READER_DEEP 1
#define GW_READERS     2

/* Connects and learns the topic's partition count (waiting up to
 * wait_ms for the brokers), then starts the thread. deep_inflight bounds
 * the bytes of deep records waiting for the lws thread. NULL on failure. */
gw_kafka_t *gw_kafka_start(const char *brokers, const hf_kafka_props_config_t *props,
                           const char *topic, int timeout_ms, int wait_ms, size_t deep_inflight,
                           gw_inbox_t *inbox, int32_t *partition_count);
void gw_kafka_stop(gw_kafka_t *kafka);

void gw_kafka_probe(gw_kafka_t *kafka, int32_t partition, uint64_t token);
void gw_kafka_need(gw_kafka_t *kafka, int reader, int32_t partition, int64_t from, uint64_t token);
void gw_kafka_catchup(gw_kafka_t *kafka, int32_t partition, uint64_t token);
void gw_kafka_release(gw_kafka_t *kafka, int reader, int32_t partition);
/* The lws thread handled a deep record of len bytes (its msg->len). */
void gw_kafka_deep_done(gw_kafka_t *kafka, size_t len);

/* Partitions being scanned by either reader (for /metrics). */
int gw_kafka_scanning(gw_kafka_t *kafka);

#endif
