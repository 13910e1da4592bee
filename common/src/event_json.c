/* event_json.c - the JSON form of one event; see event_json.h. */
#include "holdfast/event_json.h"

#include <string.h>

static void event_json_string(hf_buf_t *out, const char *key, const char *s, size_t len)
{
    hf_buf_printf(out, ",\"%s\":\"", key);
    hf_buf_append_json_escaped(out, s, len);
    hf_buf_append_str(out, "\"");
}

void hf_base64_append(hf_buf_t *out, const uint8_t *data, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char quad[4];
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < len)
            v |= data[i + 2];
        quad[0] = alphabet[(v >> 18) & 63];
        quad[1] = alphabet[(v >> 12) & 63];
        quad[2] = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
        quad[3] = i + 2 < len ? alphabet[v & 63] : '=';
        hf_buf_append(out, quad, 4);
    }
}

static bool event_is_json(const hf_envelope_t *env)
{
    return env->content_type && env->content_type_len == 16 &&
           memcmp(env->content_type, "application/json", 16) == 0 && env->payload_len > 0;
}

void hf_event_json_append(hf_buf_t *out, const hf_envelope_t *env, int64_t offset,
                          int64_t prev_offset, const char *epoch)
{
    hf_buf_append_str(out, "{\"type\":\"event\"");
    event_json_string(out, "channel", env->channel, env->channel_len);
    event_json_string(out, "id", env->id, env->id_len);
    hf_buf_printf(out, ",\"partition\":%d,\"offset\":%lld", (int)env->partition, (long long)offset);
    if (prev_offset == HF_PREV_OFFSET_UNKNOWN)
        hf_buf_append_str(out, ",\"prev_offset\":null");
    else
        hf_buf_printf(out, ",\"prev_offset\":%lld", (long long)prev_offset);
    if (epoch)
        event_json_string(out, "epoch", epoch, strlen(epoch));
    else if (env->epoch)
        event_json_string(out, "epoch", env->epoch, env->epoch_len);
    if (env->type)
        event_json_string(out, "event_type", env->type, env->type_len);
    hf_buf_printf(out, ",\"ts_us\":%lld", (long long)env->created_at_us);
    if (env->replay)
        hf_buf_append_str(out, ",\"replay\":true");
    if (event_is_json(env)) {
        hf_buf_append_str(out, ",\"data\":");
        hf_buf_append(out, env->payload, env->payload_len);
    } else {
        if (env->content_type)
            event_json_string(out, "content_type", env->content_type, env->content_type_len);
        hf_buf_append_str(out, ",\"encoding\":\"base64\",\"data\":\"");
        hf_base64_append(out, env->payload, env->payload_len);
        hf_buf_append_str(out, "\"");
    }
    hf_buf_append_str(out, "}");
}
