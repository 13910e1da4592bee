/* event_json.h - the JSON form of one event, as clients see it.
 *
 * The one place that turns an envelope into the `event` message of the
 * WebSocket protocol (schemas/websocket.md) and holdfast-replay's output
 * lines, so both always agree:
 *   {"type":"event","channel":C,"id":I,"partition":P,"offset":N,
 *    "prev_offset":M,"epoch":E,"event_type":T,"ts_us":U,"replay":true,
 *    "data":...}
 * prev_offset is null when unknown, -1 for a channel's first event; epoch
 * and event_type are omitted when absent, replay when false. data is the
 * payload itself when its content type is application/json, otherwise a
 * base64 string with "encoding":"base64" and "content_type" beside it. */
#ifndef HOLDFAST_EVENT_JSON_H
#define HOLDFAST_EVENT_JSON_H

#include <stdint.h>

#include "holdfast/buf.h"
#include "holdfast/envelope.h"

#define HF_PREV_OFFSET_UNKNOWN (-2) /* printed as null */

/* Appends the event message for env to out. offset and prev_offset replace
 * the envelope's (records in Kafka carry neither: the log position is the
 * record's and the chain is derived). epoch NULL: the envelope's. */
void hf_event_json_append(hf_buf_t *out, const hf_envelope_t *env, int64_t offset,
                          int64_t prev_offset, const char *epoch);

/* Appends the standard base64 encoding of data (with padding). */
void hf_base64_append(hf_buf_t *out, const uint8_t *data, size_t len);

#endif
