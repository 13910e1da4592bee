/* proto.h - the client protocol of holdfast-gateway (schemas/websocket.md).
 *
 * Owns parsing of client messages (JSON text frames under
 * holdfast.v1.json, msgpack binary frames under holdfast.v1.msgpack) into
 * gw_request_t, and encoding of the server's messages in either format.
 * Pure functions: no I/O, no state, so they are unit-tested and fuzzed
 * directly. Parsers never read outside [data, data+len). */
#ifndef HOLDFAST_GW_PROTO_H
#define HOLDFAST_GW_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "holdfast/buf.h"
#include "holdfast/channel.h"
#include "holdfast/envelope.h"
#include "holdfast/err.h"

#define HF_PROTO_EPOCH_MAX 64

#define GW_SUBPROTOCOL_JSON    "holdfast.v1.json"
#define GW_SUBPROTOCOL_MSGPACK "holdfast.v1.msgpack"

/* Close codes (schemas/websocket.md). */
#define GW_CLOSE_NORMAL       1000
#define GW_CLOSE_POLICY       1008 /* a limit: connections per address or subject, message rate */
#define GW_CLOSE_UNSUPPORTED  1003 /* a text frame under msgpack, or binary under JSON */
#define GW_CLOSE_TOO_BIG      1009 /* a client message over the frame limit */
#define GW_CLOSE_INTERNAL     1011
#define GW_CLOSE_RESTART      1012 /* the gateway is draining: resume elsewhere */
#define GW_CLOSE_SLOW         4001 /* send queue overflow: resume from your last position */
#define GW_CLOSE_UNAUTHORIZED 4401 /* no token, a bad one, or it expired */

typedef enum gw_req_type {
    GW_REQ_SUBSCRIBE,
    GW_REQ_UNSUBSCRIBE,
    GW_REQ_PING,
} gw_req_type_t;

typedef struct gw_request {
    gw_req_type_t type;
    char channel[HF_CHANNEL_MAX + 1];
    bool has_since;
    int64_t since_offset;                     /* >= -1 */
    char since_epoch[HF_PROTO_EPOCH_MAX + 1]; /* "" when absent or null */
} gw_request_t;

/* A refused message: a stable code for programs and a sentence for people. */
typedef struct gw_proto_error {
    const char *code; /* "bad_message", "unknown_type", "invalid_channel", ... */
    char message[160];
} gw_proto_error_t;

hf_err_t gw_proto_parse_json(const char *data, size_t len, gw_request_t *req,
                             gw_proto_error_t *err);
hf_err_t gw_proto_parse_msgpack(const uint8_t *data, size_t len, gw_request_t *req,
                                gw_proto_error_t *err);

/* Server messages, appended to out in JSON (msgpack false) or msgpack.
 * epoch NULL or "" is encoded as null. */
void gw_proto_subscribed(hf_buf_t *out, bool msgpack, const char *channel, int32_t partition,
                         int64_t offset, const char *epoch, bool recovered);
void gw_proto_unsubscribed(hf_buf_t *out, bool msgpack, const char *channel);
void gw_proto_error(hf_buf_t *out, bool msgpack, const char *code, const char *channel,
                    const char *message);
void gw_proto_pong(hf_buf_t *out, bool msgpack);
/* The event message: JSON is hf_event_json_append()'s; msgpack carries the
 * same fields with data as the payload's bytes (bin) beside content_type.
 * prev_offset HF_PREV_OFFSET_UNKNOWN is encoded as null. */
void gw_proto_event(hf_buf_t *out, bool msgpack, const hf_envelope_t *env, int64_t offset,
                    int64_t prev_offset);

#endif
