/* proto.c - client protocol messages; see proto.h. */
#include "proto.h"

#include <jansson.h>
#include <msgpack.h>
#include <stdio.h>
#include <string.h>

#include "holdfast/event_json.h"
#include "holdfast/utf8.h"

#define PROTO_MAX_KEYS     16 /* a client message has at most a handful of fields */
#define PROTO_MP_MAX_DEPTH 32 /* msgpack-c's unpacker stack (MSGPACK_EMBED_STACK_SIZE) */

static hf_err_t proto_fail(gw_proto_error_t *err, const char *code, const char *fmt,
                           const char *detail)
{
    err->code = code;
    snprintf(err->message, sizeof err->message, fmt, detail ? detail : "");
    hf_utf8_scrub(err->message);
    return HF_ERR_INVALID;
}

/* The fields of a request, whatever the encoding. */
typedef struct proto_fields {
    const char *type;
    size_t type_len;
    const char *channel;
    size_t channel_len;
    bool channel_present;
    bool has_since;
    bool since_offset_ok;
    int64_t since_offset;
    const char *epoch;
    size_t epoch_len;
    bool epoch_bad;
} proto_fields_t;

static bool proto_is(const char *s, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(s, want, len) == 0;
}

static hf_err_t proto_build(const proto_fields_t *f, gw_request_t *req, gw_proto_error_t *err)
{
    memset(req, 0, sizeof *req);
    if (!f->type)
        return proto_fail(err, "bad_message", "\"type\" (a string) is required%s", NULL);
    if (proto_is(f->type, f->type_len, "ping")) {
        req->type = GW_REQ_PING;
        return HF_OK;
    }
    if (proto_is(f->type, f->type_len, "subscribe"))
        req->type = GW_REQ_SUBSCRIBE;
    else if (proto_is(f->type, f->type_len, "unsubscribe"))
        req->type = GW_REQ_UNSUBSCRIBE;
    else
        return proto_fail(err, "unknown_type",
                          "unknown message type (expected subscribe, unsubscribe or ping)%s", NULL);
    if (!f->channel)
        return proto_fail(err, "bad_message", "\"channel\" (a string) is required%s", NULL);
    const char *why = NULL;
    if (hf_channel_validate(f->channel, f->channel_len, &why) != HF_OK)
        return proto_fail(err, "invalid_channel", "invalid channel name: %.100s", why);
    memcpy(req->channel, f->channel, f->channel_len);
    req->channel[f->channel_len] = '\0';
    if (!f->has_since)
        return HF_OK;
    if (req->type != GW_REQ_SUBSCRIBE)
        return proto_fail(err, "bad_message", "\"since\" only goes with subscribe%s", NULL);
    if (!f->since_offset_ok)
        return proto_fail(err, "bad_since",
                          "\"since\" must be {\"offset\": integer >= -1, \"epoch\": string}%s",
                          NULL);
    if (f->epoch_bad || f->epoch_len > HF_PROTO_EPOCH_MAX)
        return proto_fail(err, "bad_since",
                          "\"since.epoch\" must be a string of at most 64 "
                          "bytes or null%s",
                          NULL);
    req->has_since = true;
    req->since_offset = f->since_offset;
    if (f->epoch) {
        memcpy(req->since_epoch, f->epoch, f->epoch_len);
        req->since_epoch[f->epoch_len] = '\0';
    }
    return HF_OK;
}

/* ---- JSON ---------------------------------------------------------------- */

static void proto_json_since(json_t *since, proto_fields_t *f)
{
    f->has_since = true;
    if (!json_is_object(since))
        return;
    json_t *off = json_object_get(since, "offset");
    if (json_is_integer(off) && json_integer_value(off) >= -1) {
        f->since_offset = json_integer_value(off);
        f->since_offset_ok = true;
    }
    json_t *ep = json_object_get(since, "epoch");
    if (json_is_string(ep)) {
        f->epoch = json_string_value(ep);
        f->epoch_len = json_string_length(ep);
    } else if (ep && !json_is_null(ep)) {
        f->epoch_bad = true;
    }
}

hf_err_t gw_proto_parse_json(const char *data, size_t len, gw_request_t *req, gw_proto_error_t *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return proto_fail(err, "bad_message", "not valid JSON: %.100s", jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return proto_fail(err, "bad_message", "a message is a JSON object%s", NULL);
    }
    proto_fields_t f = {0};
    json_t *v = json_object_get(root, "type");
    if (json_is_string(v)) {
        f.type = json_string_value(v);
        f.type_len = json_string_length(v);
    }
    v = json_object_get(root, "channel");
    if (json_is_string(v)) {
        f.channel = json_string_value(v);
        f.channel_len = json_string_length(v);
    }
    v = json_object_get(root, "since");
    if (v && !json_is_null(v))
        proto_json_since(v, &f);
    hf_err_t rc = proto_build(&f, req, err);
    json_decref(root);
    return rc;
}

/* ---- msgpack ------------------------------------------------------------- */

static bool proto_mp_str(const msgpack_object *o, const char **s, size_t *len)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return false;
    *s = o->via.str.ptr;
    *len = o->via.str.size;
    return true;
}

static void proto_mp_since(const msgpack_object *since, proto_fields_t *f)
{
    f->has_since = true;
    if (since->type != MSGPACK_OBJECT_MAP)
        return;
    for (uint32_t i = 0; i < since->via.map.size && i < PROTO_MAX_KEYS; i++) {
        const msgpack_object *k = &since->via.map.ptr[i].key, *v = &since->via.map.ptr[i].val;
        const char *name;
        size_t n;
        if (!proto_mp_str(k, &name, &n))
            continue;
        if (proto_is(name, n, "offset")) {
            if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX) {
                f->since_offset = (int64_t)v->via.u64;
                f->since_offset_ok = true;
            } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && v->via.i64 == -1) {
                f->since_offset = -1;
                f->since_offset_ok = true;
            }
        } else if (proto_is(name, n, "epoch")) {
            if (!proto_mp_str(v, &f->epoch, &f->epoch_len) && v->type != MSGPACK_OBJECT_NIL)
                f->epoch_bad = true;
        }
    }
}

/* Big-endian length or count of n bytes at data[*pos]. Past len: false,
 * with *pos at len (a truncated message; msgpack-c refuses it). */
static bool proto_mp_be(const uint8_t *data, size_t len, size_t *pos, size_t n, size_t *out)
{
    if (len - *pos < n) {
        *pos = len;
        return false;
    }
    *out = 0;
    for (size_t i = 0; i < n; i++)
        *out = *out << 8 | data[(*pos)++];
    return true;
}

/* Walks the value at data[*pos] and everything in it. False when a
 * container declares more elements than the bytes left could hold (each
 * takes at least one byte); anything else (truncation, nesting deeper
 * than its stack) msgpack-c judges itself. msgpack-c allocates for a
 * declared count before it checks the input holds that much, so five
 * bytes (dd 02 fa f0 80, "an array of 50M") cost it gigabytes. */
static bool proto_mp_counts_fit(const uint8_t *data, size_t len, size_t *pos, int depth)
{
    if (*pos >= len)
        return true; /* truncated: msgpack-c refuses it without allocating */
    uint8_t c = data[(*pos)++];
    size_t count = 0, skip = 0;
    bool map = false, container = true;
    if (c >= 0x80 && c <= 0x8f) {
        count = c & 0x0f;
        map = true;
    } else if (c >= 0x90 && c <= 0x9f) {
        count = c & 0x0f;
    } else if (c == 0xdc || c == 0xdd || c == 0xde || c == 0xdf) {
        map = c >= 0xde;
        if (!proto_mp_be(data, len, pos, c == 0xdc || c == 0xde ? 2 : 4, &count))
            return true;
    } else {
        container = false;
        if (c >= 0xa0 && c <= 0xbf)
            skip = c & 0x1f;
        else if (c == 0xc4 || c == 0xd9 || c == 0xc5 || c == 0xda || c == 0xc6 || c == 0xdb) {
            size_t n = c == 0xc4 || c == 0xd9 ? 1 : c == 0xc5 || c == 0xda ? 2 : 4;
            if (!proto_mp_be(data, len, pos, n, &skip))
                return true;
        } else if (c == 0xc7 || c == 0xc8 || c == 0xc9) {
            if (!proto_mp_be(data, len, pos, (size_t)1 << (c - 0xc7), &skip))
                return true;
            skip++; /* the type byte */
        } else if (c >= 0xd4 && c <= 0xd8) {
            skip = 1 + ((size_t)1 << (c - 0xd4));
        } else if (c == 0xca || c == 0xcb || (c >= 0xcc && c <= 0xd3)) {
            static const uint8_t width[] = {4, 8, 1, 2, 4, 8, 1, 2, 4, 8};
            skip = width[c - 0xca];
        }
    }
    if (!container) {
        *pos += skip < len - *pos ? skip : len - *pos;
        return true;
    }
    if (depth >= PROTO_MP_MAX_DEPTH) {
        /* msgpack-c refuses this container before allocating it, and
         * reads no further: nothing left to check. */
        *pos = len;
        return true;
    }
    if (count > (len - *pos) / (map ? 2 : 1))
        return false;
    for (size_t i = 0; i < count * (map ? 2 : 1); i++)
        if (!proto_mp_counts_fit(data, len, pos, depth + 1))
            return false;
    return true;
}

hf_err_t gw_proto_parse_msgpack(const uint8_t *data, size_t len, gw_request_t *req,
                                gw_proto_error_t *err)
{
    size_t pos = 0;
    if (!proto_mp_counts_fit(data, len, &pos, 0))
        return proto_fail(err, "bad_message",
                          "a msgpack array or map claims more elements than it holds%s", NULL);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(&u, (const char *)data, len, &off);
    hf_err_t rc;
    if (r != MSGPACK_UNPACK_SUCCESS || off != len) {
        rc = proto_fail(err, "bad_message", "not one valid msgpack value%s", NULL);
    } else if (u.data.type != MSGPACK_OBJECT_MAP) {
        rc = proto_fail(err, "bad_message", "a message is a msgpack map%s", NULL);
    } else {
        proto_fields_t f = {0};
        const msgpack_object_map *m = &u.data.via.map;
        for (uint32_t i = 0; i < m->size && i < PROTO_MAX_KEYS; i++) {
            const char *name;
            size_t n;
            if (!proto_mp_str(&m->ptr[i].key, &name, &n))
                continue;
            const msgpack_object *v = &m->ptr[i].val;
            if (proto_is(name, n, "type"))
                proto_mp_str(v, &f.type, &f.type_len);
            else if (proto_is(name, n, "channel"))
                proto_mp_str(v, &f.channel, &f.channel_len);
            else if (proto_is(name, n, "since") && v->type != MSGPACK_OBJECT_NIL)
                proto_mp_since(v, &f);
        }
        rc = proto_build(&f, req, err);
    }
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* ---- encoding ------------------------------------------------------------ */

static int proto_write(void *data, const char *bytes, size_t len)
{
    if (len)
        hf_buf_append(data, bytes, len);
    return 0;
}

static void proto_mp_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void proto_mp_strn(msgpack_packer *pk, const char *s, size_t n)
{
    if (!s) {
        msgpack_pack_nil(pk);
        return;
    }
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void proto_json_str_or_null(hf_buf_t *out, const char *s)
{
    if (!s || !*s) {
        hf_buf_append_str(out, "null");
        return;
    }
    hf_buf_append_str(out, "\"");
    hf_buf_append_json_escaped(out, s, strlen(s));
    hf_buf_append_str(out, "\"");
}

void gw_proto_subscribed(hf_buf_t *out, bool msgpack, const char *channel, int32_t partition,
                         int64_t offset, const char *epoch, bool recovered)
{
    if (!msgpack) {
        hf_buf_append_str(out, "{\"type\":\"subscribed\",\"channel\":\"");
        hf_buf_append_json_escaped(out, channel, strlen(channel));
        hf_buf_printf(out, "\",\"partition\":%d,\"offset\":%lld,\"epoch\":", partition,
                      (long long)offset);
        proto_json_str_or_null(out, epoch);
        hf_buf_printf(out, ",\"recovered\":%s}", recovered ? "true" : "false");
        return;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, proto_write);
    msgpack_pack_map(&pk, 6);
    proto_mp_cstr(&pk, "type");
    proto_mp_cstr(&pk, "subscribed");
    proto_mp_cstr(&pk, "channel");
    proto_mp_cstr(&pk, channel);
    proto_mp_cstr(&pk, "partition");
    msgpack_pack_int32(&pk, partition);
    proto_mp_cstr(&pk, "offset");
    msgpack_pack_int64(&pk, offset);
    proto_mp_cstr(&pk, "epoch");
    proto_mp_strn(&pk, epoch && *epoch ? epoch : NULL, epoch ? strlen(epoch) : 0);
    proto_mp_cstr(&pk, "recovered");
    if (recovered)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
}

void gw_proto_unsubscribed(hf_buf_t *out, bool msgpack, const char *channel)
{
    if (!msgpack) {
        hf_buf_append_str(out, "{\"type\":\"unsubscribed\",\"channel\":\"");
        hf_buf_append_json_escaped(out, channel, strlen(channel));
        hf_buf_append_str(out, "\"}");
        return;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, proto_write);
    msgpack_pack_map(&pk, 2);
    proto_mp_cstr(&pk, "type");
    proto_mp_cstr(&pk, "unsubscribed");
    proto_mp_cstr(&pk, "channel");
    proto_mp_cstr(&pk, channel);
}

void gw_proto_error(hf_buf_t *out, bool msgpack, const char *code, const char *channel,
                    const char *message)
{
    if (!msgpack) {
        hf_buf_append_str(out, "{\"type\":\"error\",\"code\":\"");
        hf_buf_append_json_escaped(out, code, strlen(code));
        if (channel) {
            hf_buf_append_str(out, "\",\"channel\":\"");
            hf_buf_append_json_escaped(out, channel, strlen(channel));
        }
        hf_buf_append_str(out, "\",\"message\":\"");
        hf_buf_append_json_escaped(out, message, strlen(message));
        hf_buf_append_str(out, "\"}");
        return;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, proto_write);
    msgpack_pack_map(&pk, channel ? 4 : 3);
    proto_mp_cstr(&pk, "type");
    proto_mp_cstr(&pk, "error");
    proto_mp_cstr(&pk, "code");
    proto_mp_cstr(&pk, code);
    if (channel) {
        proto_mp_cstr(&pk, "channel");
        proto_mp_cstr(&pk, channel);
    }
    proto_mp_cstr(&pk, "message");
    proto_mp_cstr(&pk, message);
}

void gw_proto_pong(hf_buf_t *out, bool msgpack)
{
    if (!msgpack) {
        hf_buf_append_str(out, "{\"type\":\"pong\"}");
        return;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, proto_write);
    msgpack_pack_map(&pk, 1);
    proto_mp_cstr(&pk, "type");
    proto_mp_cstr(&pk, "pong");
}

void gw_proto_event(hf_buf_t *out, bool msgpack, const hf_envelope_t *env, int64_t offset,
                    int64_t prev_offset)
{
    if (!msgpack) {
        hf_event_json_append(out, env, offset, prev_offset, NULL);
        return;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, proto_write);
    msgpack_pack_map(&pk, 11);
    proto_mp_cstr(&pk, "type");
    proto_mp_cstr(&pk, "event");
    proto_mp_cstr(&pk, "channel");
    proto_mp_strn(&pk, env->channel, env->channel_len);
    proto_mp_cstr(&pk, "id");
    proto_mp_strn(&pk, env->id, env->id_len);
    proto_mp_cstr(&pk, "partition");
    msgpack_pack_int32(&pk, env->partition);
    proto_mp_cstr(&pk, "offset");
    msgpack_pack_int64(&pk, offset);
    proto_mp_cstr(&pk, "prev_offset");
    if (prev_offset == HF_PREV_OFFSET_UNKNOWN)
        msgpack_pack_nil(&pk);
    else
        msgpack_pack_int64(&pk, prev_offset);
    proto_mp_cstr(&pk, "epoch");
    proto_mp_strn(&pk, env->epoch, env->epoch_len);
    proto_mp_cstr(&pk, "event_type");
    proto_mp_strn(&pk, env->type, env->type_len);
    proto_mp_cstr(&pk, "ts_us");
    msgpack_pack_int64(&pk, env->created_at_us);
    proto_mp_cstr(&pk, "content_type");
    proto_mp_strn(&pk, env->content_type, env->content_type_len);
    proto_mp_cstr(&pk, "data");
    msgpack_pack_bin(&pk, env->payload_len);
    msgpack_pack_bin_body(&pk, env->payload, env->payload_len);
}
