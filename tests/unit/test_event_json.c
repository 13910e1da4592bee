/* test_event_json.c - the JSON event message: base64 vectors (RFC 4648),
 * JSON payloads inline, other payloads base64, null/-1 prev_offset, the
 * epoch override, escaping, and the replay flag. */
#include <string.h>

#include "check.h"
#include "holdfast/event_json.h"

static const char *b64(const char *s)
{
    static hf_buf_t out = HF_BUF_INIT;
    hf_buf_reset(&out);
    hf_base64_append(&out, (const uint8_t *)s, strlen(s));
    hf_buf_append(&out, "", 1);
    return out.data;
}

static void test_base64_vectors(void)
{
    CHECK_STR_EQ(b64(""), "");
    CHECK_STR_EQ(b64("f"), "Zg==");
    CHECK_STR_EQ(b64("fo"), "Zm8=");
    CHECK_STR_EQ(b64("foo"), "Zm9v");
    CHECK_STR_EQ(b64("foob"), "Zm9vYg==");
    CHECK_STR_EQ(b64("fooba"), "Zm9vYmE=");
    CHECK_STR_EQ(b64("foobar"), "Zm9vYmFy");
}

static hf_envelope_t event(const char *payload, const char *content_type)
{
    hf_envelope_t env;
    hf_envelope_init(&env);
    env.id = "01a2";
    env.id_len = 4;
    env.channel = "orders:\"42\"";
    env.channel_len = strlen(env.channel);
    env.payload = (const uint8_t *)payload;
    env.payload_len = strlen(payload);
    env.content_type = content_type;
    env.content_type_len = content_type ? strlen(content_type) : 0;
    env.partition = 3;
    env.created_at_us = 17;
    return env;
}

static const char *render(const hf_envelope_t *env, int64_t offset, int64_t prev, const char *epoch)
{
    static hf_buf_t out = HF_BUF_INIT;
    hf_buf_reset(&out);
    hf_event_json_append(&out, env, offset, prev, epoch);
    hf_buf_append(&out, "", 1);
    return out.data;
}

static void test_json_payload_inline(void)
{
    hf_envelope_t env = event("{\"total\":12.5}", "application/json");
    env.type = "order.created";
    env.type_len = strlen(env.type);
    CHECK_STR_EQ(render(&env, 9, 4, "e1"),
                 "{\"type\":\"event\",\"channel\":\"orders:\\\"42\\\"\",\"id\":\"01a2\","
                 "\"partition\":3,\"offset\":9,\"prev_offset\":4,\"epoch\":\"e1\","
                 "\"event_type\":\"order.created\",\"ts_us\":17,\"data\":{\"total\":12.5}}");
}

static void test_other_payload_base64(void)
{
    hf_envelope_t env = event("foo", "application/octet-stream");
    env.epoch = "env-epoch";
    env.epoch_len = strlen(env.epoch);
    env.replay = true;
    CHECK_STR_EQ(render(&env, 0, HF_PREV_OFFSET_UNKNOWN, NULL),
                 "{\"type\":\"event\",\"channel\":\"orders:\\\"42\\\"\",\"id\":\"01a2\","
                 "\"partition\":3,\"offset\":0,\"prev_offset\":null,\"epoch\":\"env-epoch\","
                 "\"ts_us\":17,\"replay\":true,\"content_type\":\"application/octet-stream\","
                 "\"encoding\":\"base64\",\"data\":\"Zm9v\"}");
    /* an empty JSON payload is not valid JSON: base64 (empty), never a bare "data": */
    hf_envelope_t empty = event("", "application/json");
    CHECK(strstr(render(&empty, 1, -1, NULL), "\"prev_offset\":-1") != NULL);
    CHECK(strstr(render(&empty, 1, -1, NULL), "\"data\":\"\"") != NULL);
}

int main(void)
{
    test_base64_vectors();
    test_json_payload_inline();
    test_other_payload_base64();
    CHECK_MAIN_END();
}
