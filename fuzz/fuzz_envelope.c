/* fuzz_envelope.c - msgpack envelopes through hf_envelope_decode().
 *
 * Envelopes reach the gateways from Redis and Kafka and holdfast-replay
 * from Kafka. Besides memory errors, leaks and allocations (the decoder
 * must not allocate for counts a header claims), checks the round trip: a
 * decoded envelope encodes, and that encoding decodes to the same fields.
 * A decoded envelope is also rendered as the JSON event clients see. */
#include <stdint.h>
#include <string.h>

#include "fuzz_support.h"
#include "holdfast/buf.h"
#include "holdfast/envelope.h"
#include "holdfast/event_json.h"

static bool envelope_same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
    if (!a || !b)
        return a == b;
    return alen == blen && memcmp(a, b, alen) == 0;
}

static bool envelope_equal(const hf_envelope_t *a, const hf_envelope_t *b)
{
    return envelope_same_bytes(a->id, a->id_len, b->id, b->id_len) &&
           envelope_same_bytes(a->channel, a->channel_len, b->channel, b->channel_len) &&
           envelope_same_bytes(a->type, a->type_len, b->type, b->type_len) &&
           envelope_same_bytes(a->content_type, a->content_type_len, b->content_type,
                               b->content_type_len) &&
           envelope_same_bytes(a->epoch, a->epoch_len, b->epoch, b->epoch_len) &&
           a->payload_len == b->payload_len &&
           (a->payload_len == 0 || memcmp(a->payload, b->payload, a->payload_len) == 0) &&
           a->partition == b->partition && a->offset == b->offset &&
           a->prev_offset == b->prev_offset && a->created_at_us == b->created_at_us &&
           a->replay == b->replay;
}

static bool envelope_inside(const void *p, size_t len, const uint8_t *data, size_t size)
{
    const uint8_t *q = p;
    return !p || (q >= data && len <= size && q - data <= (ptrdiff_t)(size - len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hf_envelope_t env;
    const char *why = NULL;
    hf_err_t rc = hf_envelope_decode(data, size, &env, &why);
    if (rc != HF_OK) {
        FUZZ_CHECK((rc == HF_ERR_INVALID || rc == HF_ERR_TOO_LARGE) && why);
        return 0;
    }
    FUZZ_CHECK(!why);
    /* envelope.h: decoded fields point into the input, never elsewhere. */
    FUZZ_CHECK(envelope_inside(env.id, env.id_len, data, size));
    FUZZ_CHECK(envelope_inside(env.channel, env.channel_len, data, size));
    FUZZ_CHECK(envelope_inside(env.type, env.type_len, data, size));
    FUZZ_CHECK(envelope_inside(env.content_type, env.content_type_len, data, size));
    FUZZ_CHECK(envelope_inside(env.epoch, env.epoch_len, data, size));
    FUZZ_CHECK(envelope_inside(env.payload, env.payload_len, data, size));

    hf_buf_t encoded = HF_BUF_INIT;
    FUZZ_CHECK(hf_envelope_encode(&env, &encoded) == HF_OK);
    hf_envelope_t again;
    FUZZ_CHECK(hf_envelope_decode((const uint8_t *)encoded.data, encoded.len, &again, &why) ==
               HF_OK);
    FUZZ_CHECK(envelope_equal(&env, &again));

    hf_buf_t json = HF_BUF_INIT;
    hf_event_json_append(&json, &env, env.offset, env.prev_offset, NULL);
    FUZZ_CHECK(json.len > 0);
    hf_buf_free(&json);
    hf_buf_free(&encoded);
    return 0;
}
