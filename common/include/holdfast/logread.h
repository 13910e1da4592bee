/* logread.h - reading the event log (the Kafka topic) by position.
 *
 * Owns one librdkafka consumer with no consumer group: partitions are
 * assigned with explicit offsets, nothing is committed, so any number of
 * readers (holdfast-replay, gateways filling gaps) read the same log
 * without coordinating. One partition is read at a time.
 *
 * Ownership: hf_logread_t is created and freed by the caller. A record
 * returned by hf_logread_next() points into librdkafka's message and is
 * valid until the next call to hf_logread_next/seek/free.
 *
 * Threading: one reader per thread. */
#ifndef HOLDFAST_LOGREAD_H
#define HOLDFAST_LOGREAD_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "holdfast/err.h"
#include "holdfast/kafka_props.h"

typedef struct hf_logread hf_logread_t;

typedef struct hf_log_record {
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms; /* the record's timestamp (producer create time), -1 if none */
    const char *key;      /* the channel, as the relay writes it; not NUL-terminated */
    size_t key_len;
    const uint8_t *value; /* the msgpack envelope */
    size_t value_len;
    const char *id; /* the hf-id header (event id), NULL when absent; not NUL-terminated */
    size_t id_len;
} hf_log_record_t;

/* A reader for topic at brokers, with the operator's client properties
 * (props may be NULL: none). NULL (with a message in err, librdkafka's own
 * for a property it refuses) on bad settings. */
hf_logread_t *hf_logread_new(const char *brokers, const hf_kafka_props_config_t *props,
                             const char *topic, char *err, size_t err_size);
void hf_logread_free(hf_logread_t *lr);

/* The topic's partition count. HF_ERR_NOT_FOUND when the topic does not
 * exist, HF_ERR_UNAVAILABLE when no broker answered within timeout_ms. */
hf_err_t hf_logread_partition_count(hf_logread_t *lr, int timeout_ms, int *count);

/* The partition's first offset still held (low) and the offset the next
 * record will get (high). HF_ERR_UNAVAILABLE when no broker answered. */
hf_err_t hf_logread_watermarks(hf_logread_t *lr, int partition, int timeout_ms, int64_t *low,
                               int64_t *high);

/* HF_OK when the partition's leader (from metadata) accepts a TCP
 * connection within timeout_ms. librdkafka 2.0's offset queries wait for
 * a down leader far beyond their own timeout (seen: > 40 s for 1 s), so
 * callers probe first. Any rd_kafka_t will do (the relay passes its own). */
hf_err_t hf_kafka_leader_probe(rd_kafka_t *rk, const char *topic, int partition, int timeout_ms);
/* The same for many partitions at once (one metadata request, one
 * connection attempt per broker): up[p] for every p < nparts whose leader
 * answered, looking only at brokers leading a partition with want[p]. */
hf_err_t hf_kafka_leaders_probe(rd_kafka_t *rk, const char *topic, const bool *want, bool *up,
                                int nparts, int timeout_ms);

/* Starts reading partition at offset (replacing any earlier assignment). */
hf_err_t hf_logread_seek(hf_logread_t *lr, int partition, int64_t offset);

/* Reads the n partitions parts[i] from offsets[i] at once (replacing any
 * earlier assignment; n == 0 stops reading). Records then come from any of
 * them, each partition's in log order. */
hf_err_t hf_logread_assign(hf_logread_t *lr, const int32_t *parts, const int64_t *offsets,
                           size_t n);

/* The next record of the assigned partition(s), waiting up to timeout_ms.
 * HF_OK with *rec filled; HF_ERR_TIMEOUT when none arrived in time (at the
 * end of the log this is the normal answer); HF_ERR_NOT_FOUND when the
 * offset asked for is no longer (or not yet) in the log;
 * HF_ERR_UNAVAILABLE on a broker error (message in err). On an error
 * rec->partition names the partition concerned (-1: none in particular). */
hf_err_t hf_logread_next(hf_logread_t *lr, int timeout_ms, hf_log_record_t *rec, char *err,
                         size_t err_size);

#endif
