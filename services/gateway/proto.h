/* proto.h - the client protocol of holdfast-gateway (schemas/websocket.md).
 *
 * Owns parsing of client messages (JSON text frames under the .json
 * subprotocols, msgpack binary frames under the .msgpack ones) into
 * gw_request_t, encoding of the server's messages in either format, the
 * table of subprotocols (1.0 and 1.1), and the close reasons' format.
 * Pure functions: no I/O, no state, so they are unit-tested and fuzzed
 * directly. Parsers never read outside [data, data+len). */
#ifndef HOLDFAST_GW_PROTO_H
#define HOLDFAST_GW_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "holdfast/auth.h"
#include "holdfast/buf.h"
#include "holdfast/channel.h"
#include "holdfast/envelope.h"
#include "holdfast/err.h"

#define HF_PROTO_EPOCH_MAX 64

#define GW_SUBPROTOCOL_JSON        "holdfast.v1.json"
#define GW_SUBPROTOCOL_MSGPACK     "holdfast.v1.msgpack"
#define GW_SUBPROTOCOL_JSON_1_1    "holdfast.v1.1.json"
#define GW_SUBPROTOCOL_MSGPACK_1_1 "holdfast.v1.1.msgpack"

/* A subprotocol: its encoding and the protocol's minor version. 1.1 adds
 * what a 1.0 client would not expect unasked (welcome, the server's
 * ping), so it is chosen by name: a client offering both names first
 * gets 1.1 from a gateway that has it and 1.0 from one that has not. */
typedef struct gw_subprotocol {
    const char *name;
    bool msgpack;
    int minor; /* 0: 1.0, 1: 1.1 */
} gw_subprotocol_t;

#define GW_SUBPROTOCOLS 4
extern const gw_subprotocol_t gw_subprotocols[GW_SUBPROTOCOLS];
/* The entry of name; NULL for none of them. */
const gw_subprotocol_t *gw_proto_subprotocol(const char *name);

/* Close codes (schemas/websocket.md). */
#define GW_CLOSE_NORMAL       1000
#define GW_CLOSE_POLICY       1008 /* a limit: connections per address or subject, message rate */
#define GW_CLOSE_UNSUPPORTED  1003 /* a text frame under msgpack, or binary under JSON */
#define GW_CLOSE_TOO_BIG      1009 /* a client message over the frame limit */
#define GW_CLOSE_INTERNAL     1011
#define GW_CLOSE_RESTART      1012 /* the gateway is draining: resume elsewhere */
#define GW_CLOSE_SLOW         4001 /* send queue overflow: resume from your last position */
#define GW_CLOSE_UNAUTHORIZED 4401 /* no token, a bad one, or it expired */

/* The short codes at the start of every close reason (gw_proto_close_reason)
 * and what a client does about each: schemas/websocket.md has the table. */
#define GW_WHY_DRAIN             "drain"
#define GW_WHY_SLOW              "slow_consumer"
#define GW_WHY_TOKEN_EXPIRED     "token_expired"
#define GW_WHY_TOKEN_INVALID     "token_invalid"
#define GW_WHY_TOKEN_MISSING     "token_missing"
#define GW_WHY_LIMIT_IP          "limit:connections_per_ip"
#define GW_WHY_LIMIT_SUBJECT     "limit:connections_per_subject"
#define GW_WHY_LIMIT_RATE        "limit:message_rate"
#define GW_WHY_UNSUPPORTED_FRAME "unsupported_frame"
#define GW_WHY_TOO_BIG           "message_too_big"
#define GW_WHY_INTERNAL          "internal"

/* The retry_after_ms of the error "unavailable": Kafka did not answer a
 * probe within --kafka-timeout; a little later it may. */
#define GW_RETRY_UNAVAILABLE_MS 1000

/* Longest close reason: a close frame's payload is at most 125 bytes, two
 * of them the code. */
#define GW_CLOSE_REASON_MAX 123

typedef enum gw_req_type {
    GW_REQ_SUBSCRIBE,
    GW_REQ_UNSUBSCRIBE,
    GW_REQ_PING,
    GW_REQ_PONG, /* the answer to the server's ping (1.1); nothing is sent back */
    GW_REQ_AUTH, /* a fresh token for this connection (1.1) */
} gw_req_type_t;

#define GW_PROTO_ID_MAX 64

/* A request's "id" tag, echoed in its answer: a string of at most
 * GW_PROTO_ID_MAX bytes, or an integer. */
typedef struct gw_req_id {
    bool present;
    bool numeric;
    int64_t num;
    char text[GW_PROTO_ID_MAX + 1];
} gw_req_id_t;

typedef struct gw_request {
    gw_req_type_t type;
    gw_req_id_t id;
    char channel[HF_CHANNEL_MAX + 1];
    bool has_since;
    int64_t since_offset;                     /* >= -1 */
    char since_epoch[HF_PROTO_EPOCH_MAX + 1]; /* "" when absent or null */
    char token[HF_AUTH_TOKEN_MAX + 1];        /* auth: the token */
} gw_request_t;

/* A refused message: a stable code for programs and a sentence for people,
 * and the request's id when it could be read (the answer echoes it). */
typedef struct gw_proto_error {
    const char *code; /* "bad_message", "unknown_type", "invalid_channel", ... */
    char message[160];
    gw_req_id_t id;
} gw_proto_error_t;

/* What a 1.1 client learns on admission (the welcome message). */
typedef struct gw_welcome {
    const char *gateway;      /* the gateway's id */
    const char *subject;      /* the token's sub */
    int64_t expires_s;        /* the token's exp; 0: none */
    int64_t server_time_us;   /* the gateway's clock (Unix epoch) */
    int64_t ping_interval_ms; /* a quiet connection gets a ping this often */
    int64_t idle_timeout_ms;  /* a client heard nothing from this long is dropped */
    int64_t max_subscriptions;
    int64_t max_frame; /* bytes of one client message */
    int64_t msg_rate;  /* client messages per second; 0: unlimited */
    int64_t msg_burst;
} gw_welcome_t;

hf_err_t gw_proto_parse_json(const char *data, size_t len, gw_request_t *req,
                             gw_proto_error_t *err);
hf_err_t gw_proto_parse_msgpack(const uint8_t *data, size_t len, gw_request_t *req,
                                gw_proto_error_t *err);

/* Server messages, appended to out in JSON (msgpack false) or msgpack.
 * epoch NULL or "" is encoded as null. id NULL or not present: no "id";
 * reason NULL: no "reason"; retry_after_ms < 0: no "retry_after_ms". */
void gw_proto_subscribed(hf_buf_t *out, bool msgpack, const char *channel, int32_t partition,
                         int64_t offset, const char *epoch, bool recovered, const gw_req_id_t *id);
void gw_proto_unsubscribed(hf_buf_t *out, bool msgpack, const char *channel, const char *reason,
                           const gw_req_id_t *id);
void gw_proto_error(hf_buf_t *out, bool msgpack, const char *code, const char *channel,
                    const char *message, const gw_req_id_t *id, int64_t retry_after_ms);
void gw_proto_pong(hf_buf_t *out, bool msgpack, const gw_req_id_t *id);
/* 1.1: the server's ping on a quiet connection, answered by a pong. */
void gw_proto_ping(hf_buf_t *out, bool msgpack);
void gw_proto_welcome(hf_buf_t *out, bool msgpack, const gw_welcome_t *w);
/* 1.1: the answer to auth; expires_s 0 is encoded as null. */
void gw_proto_authenticated(hf_buf_t *out, bool msgpack, const char *subject, int64_t expires_s,
                            const gw_req_id_t *id);
/* "CODE: TEXT", or "CODE retry_after_ms=N: TEXT" when retry_after_ms >= 0,
 * into out (NUL-terminated), cut to GW_CLOSE_REASON_MAX bytes on a UTF-8
 * character boundary. */
void gw_proto_close_reason(char *out, size_t size, const char *code, int64_t retry_after_ms,
                           const char *text);
/* The event message: JSON is hf_event_json_append()'s; msgpack carries the
 * same fields with data as the payload's bytes (bin) beside content_type.
 * prev_offset HF_PREV_OFFSET_UNKNOWN is encoded as null. */
void gw_proto_event(hf_buf_t *out, bool msgpack, const hf_envelope_t *env, int64_t offset,
                    int64_t prev_offset);

#endif
