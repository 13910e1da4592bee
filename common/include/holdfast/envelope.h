/* envelope.h - the versioned msgpack event envelope.
 *
 * The one record format between relay, Kafka, Redis and gateways
 * (schemas/envelope.md is the written spec). A msgpack map with short
 * string keys; decoders ignore keys they do not know, so fields can be
 * added without a version bump. Removing or retyping a field bumps
 * HF_ENVELOPE_VERSION.
 *
 * Ownership: hf_envelope_t holds pointers only. hf_envelope_encode() reads
 * them; hf_envelope_decode() points them into the caller's input buffer
 * (no copies), so a decoded envelope lives as long as that buffer. */
#ifndef HOLDFAST_ENVELOPE_H
#define HOLDFAST_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "holdfast/buf.h"
#include "holdfast/err.h"

#define HF_ENVELOPE_VERSION 1
#define HF_OFFSET_NONE      (-1) /* "no offset": not yet in Kafka, or no predecessor */

typedef struct hf_envelope {
    const char *id; /* event id (UUID text), required */
    size_t id_len;
    const char *channel; /* required */
    size_t channel_len;
    const char *type; /* optional event type; NULL when absent */
    size_t type_len;
    const char *content_type; /* e.g. "application/json"; NULL when absent */
    size_t content_type_len;
    const char *epoch; /* partitioning epoch; NULL when absent */
    size_t epoch_len;
    const uint8_t *payload; /* the payload bytes exactly as published, required */
    size_t payload_len;
    int32_t partition;     /* -1 when unknown */
    int64_t offset;        /* Kafka offset, HF_OFFSET_NONE before Kafka acknowledged it */
    int64_t prev_offset;   /* offset of the channel's previous event, HF_OFFSET_NONE if first */
    int64_t created_at_us; /* commit time in PostgreSQL, microseconds since the Unix epoch */
    bool replay;           /* re-delivered by holdfast-replay, not part of the live stream */
} hf_envelope_t;

/* Sets every field to its "absent" value (pointers NULL, numbers -1/0). */
void hf_envelope_init(hf_envelope_t *env);

/* Appends the msgpack encoding of env to out. HF_ERR_INVALID when a
 * required field (id, channel, payload) is missing. */
hf_err_t hf_envelope_encode(const hf_envelope_t *env, hf_buf_t *out);

/* Decodes data into env. On error returns HF_ERR_INVALID (or
 * HF_ERR_TOO_LARGE for nesting/size abuse) and, if why is not NULL, points
 * it at a static explanation. Never reads outside [data, data+len). */
hf_err_t hf_envelope_decode(const uint8_t *data, size_t len, hf_envelope_t *env, const char **why);

#endif
