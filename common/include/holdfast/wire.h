/* wire.h - names the services agree on outside the envelope itself.
 *
 * The relay writes these and the gateways and tools read them; one copy
 * here keeps the two sides from drifting. schemas/envelope.md and
 * docs/relay.md describe what travels under each. */
#ifndef HOLDFAST_WIRE_H
#define HOLDFAST_WIRE_H

/* Redis Pub/Sub: one channel per Holdfast channel, "hf:<channel>". */
#define HF_REDIS_CHANNEL_PREFIX "hf:"
/* The relay's "PARTITION:FIRST:LAST" announcements of offsets it could
 * not publish; outside the "hf:" namespace, so no channel collides. */
#define HF_REDIS_SKIPPED_CHANNEL "hfctl:skipped"
/* The leading relay's heartbeat, every --heartbeat-interval (200 ms):
 * "EPOCH P:O P:O ...", where O is the last offset of partition P the relay
 * has published (or announced as skipped). A gateway that lost messages
 * (a resubscription, a frozen connection) learns from it how far to read
 * Kafka, even for a channel whose next event is far off. */
#define HF_REDIS_HEADS_CHANNEL "hfctl:heads"

/* Kafka record headers (the key is the channel). */
#define HF_KAFKA_HEADER_ID           "hf-id"
#define HF_KAFKA_HEADER_CHANNEL      "hf-channel"
#define HF_KAFKA_HEADER_CONTENT_TYPE "hf-content-type"
#define HF_KAFKA_HEADER_TYPE         "hf-type"

#endif
