/* fuzz_ws_client_message.c - WebSocket client messages through the
 * gateway's parsers (gw_proto_parse_json and gw_proto_parse_msgpack).
 *
 * Every input goes through both: the JSON parser sees text frames under
 * holdfast.v1.json, the msgpack parser binary frames under
 * holdfast.v1.msgpack. Besides memory errors, leaks and allocations, checks
 * what conn.c relies on: an accepted request names a valid channel (ping,
 * pong and auth aside), a since offset >= -1 and an epoch of at most 64
 * bytes, an auth token of 1..8192 bytes, an id of at most 64; a refused
 * one has a code and a message, and the error message the gateway then
 * sends (echoing the id) is valid JSON (a text frame must be UTF-8) or
 * msgpack. */
#include <stdint.h>
#include <string.h>

#include <msgpack.h>

#include "fuzz_support.h"
#include "holdfast/buf.h"
#include "holdfast/channel.h"
#include "proto.h"

static void ws_check_accepted(const gw_request_t *req)
{
    FUZZ_CHECK(req->type == GW_REQ_PING || req->type == GW_REQ_SUBSCRIBE ||
               req->type == GW_REQ_UNSUBSCRIBE || req->type == GW_REQ_PONG ||
               req->type == GW_REQ_AUTH);
    FUZZ_CHECK(!req->id.present || req->id.numeric || strlen(req->id.text) <= GW_PROTO_ID_MAX);
    if (req->type == GW_REQ_AUTH) {
        size_t n = strlen(req->token);
        FUZZ_CHECK(n > 0 && n <= HF_AUTH_TOKEN_MAX);
        return;
    }
    if (req->type == GW_REQ_PING || req->type == GW_REQ_PONG)
        return;
    FUZZ_CHECK(hf_channel_validate(req->channel, strlen(req->channel), NULL) == HF_OK);
    if (req->has_since) {
        FUZZ_CHECK(req->type == GW_REQ_SUBSCRIBE);
        FUZZ_CHECK(req->since_offset >= -1);
        FUZZ_CHECK(strlen(req->since_epoch) <= HF_PROTO_EPOCH_MAX);
    }
}

/* The answer conn.c sends for a refused message, in the connection's format. */
static void ws_check_refused(const gw_proto_error_t *err, bool msgpack)
{
    FUZZ_CHECK(err->code && err->code[0]);
    FUZZ_CHECK(memchr(err->message, '\0', sizeof err->message));
    hf_buf_t out = HF_BUF_INIT;
    gw_proto_error(&out, msgpack, err->code, NULL, err->message, &err->id, -1);
    if (!msgpack) {
        FUZZ_CHECK(fuzz_is_json(out.data, out.len));
    } else {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        FUZZ_CHECK(msgpack_unpack_next(&u, out.data, out.len, &off) == MSGPACK_UNPACK_SUCCESS);
        FUZZ_CHECK(off == out.len && u.data.type == MSGPACK_OBJECT_MAP);
        msgpack_unpacked_destroy(&u);
    }
    hf_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_request_t req;
    gw_proto_error_t err;

    memset(&err, 0, sizeof err);
    if (gw_proto_parse_json((const char *)data, size, &req, &err) == HF_OK)
        ws_check_accepted(&req);
    else
        ws_check_refused(&err, false);

    memset(&err, 0, sizeof err);
    if (gw_proto_parse_msgpack(data, size, &req, &err) == HF_OK)
        ws_check_accepted(&req);
    else
        ws_check_refused(&err, true);
    return 0;
}
