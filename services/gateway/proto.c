/* proto.c - client protocol messages; see proto.h. */
#include "proto.h"

#include <jansson.h>
#include <msgpack.h>
#include <stddef.h>
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

const gw_subprotocol_t gw_subprotocols[GW_SUBPROTOCOLS] = {
    {GW_SUBPROTOCOL_JSON, false, 0},
    {GW_SUBPROTOCOL_MSGPACK, true, 0},
    {GW_SUBPROTOCOL_JSON_1_1, false, 1},
    {GW_SUBPROTOCOL_MSGPACK_1_1, true, 1},
};

const gw_subprotocol_t *gw_proto_subprotocol(const char *name)
{
    for (size_t i = 0; name && i < GW_SUBPROTOCOLS; i++)
        if (strcmp(gw_subprotocols[i].name, name) == 0)
            return &gw_subprotocols[i];
    return NULL;
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
    bool has_id;
    bool id_numeric;
    int64_t id_num;
    const char *id; /* a string id; NULL with has_id: a value of another type */
    size_t id_len;
    const char *token; /* NULL: absent, or not a string */
    size_t token_len;
} proto_fields_t;

static bool proto_is(const char *s, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(s, want, len) == 0;
}

/* The message types a client may send, and what each carries. */
static const struct {
    const char *name;
    gw_req_type_t type;
    bool channel; /* requires "channel" */
    bool since;   /* may carry "since" */
    bool token;   /* requires "token" */
} proto_types[] = {
    {"subscribe", GW_REQ_SUBSCRIBE, true, true, false},
    {"unsubscribe", GW_REQ_UNSUBSCRIBE, true, false, false},
    {"ping", GW_REQ_PING, false, false, false},
    {"pong", GW_REQ_PONG, false, false, false},
    {"auth", GW_REQ_AUTH, false, false, true},
};
#define PROTO_NTYPES (sizeof proto_types / sizeof proto_types[0])

/* The id first, so that even a refusal of the rest can echo it. */
static hf_err_t proto_build_id(const proto_fields_t *f, gw_req_id_t *id, gw_proto_error_t *err)
{
    memset(id, 0, sizeof *id);
    if (!f->has_id)
        return HF_OK;
    if (f->id_numeric) {
        id->present = id->numeric = true;
        id->num = f->id_num;
        return HF_OK;
    }
    if (!f->id || f->id_len > GW_PROTO_ID_MAX || memchr(f->id, '\0', f->id_len))
        return proto_fail(err, "bad_message",
                          "\"id\" must be an integer or a string of at most 64 bytes%s", NULL);
    id->present = true;
    memcpy(id->text, f->id, f->id_len);
    id->text[f->id_len] = '\0';
    return HF_OK;
}

static hf_err_t proto_build(const proto_fields_t *f, gw_request_t *req, gw_proto_error_t *err)
{
    memset(req, 0, offsetof(gw_request_t, token));
    req->token[0] = '\0';
    memset(&err->id, 0, sizeof err->id);
    if (proto_build_id(f, &req->id, err) != HF_OK)
        return HF_ERR_INVALID;
    err->id = req->id;
    if (!f->type)
        return proto_fail(err, "bad_message", "\"type\" (a string) is required%s", NULL);
    size_t t = 0;
    while (t < PROTO_NTYPES && !proto_is(f->type, f->type_len, proto_types[t].name))
        t++;
    if (t == PROTO_NTYPES)
        return proto_fail(err, "unknown_type",
                          "unknown message type (expected subscribe, unsubscribe, ping, pong or "
                          "auth)%s",
                          NULL);
    req->type = proto_types[t].type;
    if (proto_types[t].token) {
        if (!f->token || f->token_len == 0)
            return proto_fail(err, "bad_message", "\"token\" (a string) is required%s", NULL);
        if (f->token_len > HF_AUTH_TOKEN_MAX || memchr(f->token, '\0', f->token_len))
            return proto_fail(err, "token_invalid", "token longer than 8192 bytes%s", NULL);
        memcpy(req->token, f->token, f->token_len);
        req->token[f->token_len] = '\0';
    }
    if (!proto_types[t].channel)
        return HF_OK;
    if (!f->channel)
        return proto_fail(err, "bad_message", "\"channel\" (a string) is required%s", NULL);
    const char *why = NULL;
    if (hf_channel_validate(f->channel, f->channel_len, &why) != HF_OK)
        return proto_fail(err, "invalid_channel", "invalid channel name: %.100s", why);
    memcpy(req->channel, f->channel, f->channel_len);
    req->channel[f->channel_len] = '\0';
    if (!f->has_since)
        return HF_OK;
    if (!proto_types[t].since)
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
    memset(&err->id, 0, sizeof err->id);
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
    v = json_object_get(root, "id");
    if (v && !json_is_null(v)) {
        f.has_id = true;
        if (json_is_integer(v)) {
            f.id_numeric = true;
            f.id_num = json_integer_value(v);
        } else if (json_is_string(v)) {
            f.id = json_string_value(v);
            f.id_len = json_string_length(v);
        }
    }
    v = json_object_get(root, "token");
    if (json_is_string(v)) {
        f.token = json_string_value(v);
        f.token_len = json_string_length(v);
    }
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

static void proto_mp_id(const msgpack_object *v, proto_fields_t *f)
{
    f->has_id = true;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX) {
        f->id_numeric = true;
        f->id_num = (int64_t)v->via.u64;
    } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        f->id_numeric = true;
        f->id_num = v->via.i64;
    } else {
        proto_mp_str(v, &f->id, &f->id_len);
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
    memset(&err->id, 0, sizeof err->id);
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
            else if (proto_is(name, n, "id") && v->type != MSGPACK_OBJECT_NIL)
                proto_mp_id(v, &f);
            else if (proto_is(name, n, "token"))
                proto_mp_str(v, &f.token, &f.token_len);
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

/* Writes one server message, a flat map, in either format: JSON keys in
 * the order written, no spaces; msgpack needs the count of fields first. */
typedef struct proto_writer {
    hf_buf_t *out;
    bool msgpack;
    msgpack_packer pk;
    size_t n; /* fields written */
} proto_writer_t;

static void pw_begin(proto_writer_t *w, hf_buf_t *out, bool msgpack, size_t nfields)
{
    w->out = out;
    w->msgpack = msgpack;
    w->n = 0;
    if (msgpack) {
        msgpack_packer_init(&w->pk, out, proto_write);
        msgpack_pack_map(&w->pk, nfields);
    } else {
        hf_buf_append_str(out, "{");
    }
}

static void pw_key(proto_writer_t *w, const char *key)
{
    if (w->msgpack) {
        proto_mp_cstr(&w->pk, key);
    } else {
        hf_buf_printf(w->out, "%s\"%s\":", w->n ? "," : "", key);
    }
    w->n++;
}

/* NULL is null. */
static void pw_str(proto_writer_t *w, const char *key, const char *s)
{
    pw_key(w, key);
    if (w->msgpack) {
        proto_mp_strn(&w->pk, s, s ? strlen(s) : 0);
    } else if (!s) {
        hf_buf_append_str(w->out, "null");
    } else {
        hf_buf_append_str(w->out, "\"");
        hf_buf_append_json_escaped(w->out, s, strlen(s));
        hf_buf_append_str(w->out, "\"");
    }
}

static void pw_int(proto_writer_t *w, const char *key, int64_t v)
{
    pw_key(w, key);
    if (w->msgpack)
        msgpack_pack_int64(&w->pk, v);
    else
        hf_buf_printf(w->out, "%lld", (long long)v);
}

static void pw_bool(proto_writer_t *w, const char *key, bool v)
{
    pw_key(w, key);
    if (!w->msgpack)
        hf_buf_append_str(w->out, v ? "true" : "false");
    else if (v)
        msgpack_pack_true(&w->pk);
    else
        msgpack_pack_false(&w->pk);
}

static void pw_null(proto_writer_t *w, const char *key)
{
    pw_key(w, key);
    if (w->msgpack)
        msgpack_pack_nil(&w->pk);
    else
        hf_buf_append_str(w->out, "null");
}

static void pw_id(proto_writer_t *w, const gw_req_id_t *id)
{
    if (id->numeric)
        pw_int(w, "id", id->num);
    else
        pw_str(w, "id", id->text);
}

static void pw_end(proto_writer_t *w)
{
    if (!w->msgpack)
        hf_buf_append_str(w->out, "}");
}

static bool proto_has_id(const gw_req_id_t *id)
{
    return id && id->present;
}

void gw_proto_subscribed(hf_buf_t *out, bool msgpack, const char *channel, int32_t partition,
                         int64_t offset, const char *epoch, bool recovered, const gw_req_id_t *id)
{
    proto_writer_t w;
    pw_begin(&w, out, msgpack, 6 + proto_has_id(id));
    pw_str(&w, "type", "subscribed");
    pw_str(&w, "channel", channel);
    pw_int(&w, "partition", partition);
    pw_int(&w, "offset", offset);
    pw_str(&w, "epoch", epoch && *epoch ? epoch : NULL);
    pw_bool(&w, "recovered", recovered);
    if (proto_has_id(id))
        pw_id(&w, id);
    pw_end(&w);
}

void gw_proto_unsubscribed(hf_buf_t *out, bool msgpack, const char *channel, const char *reason,
                           const gw_req_id_t *id)
{
    proto_writer_t w;
    pw_begin(&w, out, msgpack, 2 + (reason != NULL) + proto_has_id(id));
    pw_str(&w, "type", "unsubscribed");
    pw_str(&w, "channel", channel);
    if (reason)
        pw_str(&w, "reason", reason);
    if (proto_has_id(id))
        pw_id(&w, id);
    pw_end(&w);
}

void gw_proto_error(hf_buf_t *out, bool msgpack, const char *code, const char *channel,
                    const char *message, const gw_req_id_t *id, int64_t retry_after_ms)
{
    proto_writer_t w;
    pw_begin(&w, out, msgpack, 3 + (channel != NULL) + proto_has_id(id) + (retry_after_ms >= 0));
    pw_str(&w, "type", "error");
    pw_str(&w, "code", code);
    if (channel)
        pw_str(&w, "channel", channel);
    pw_str(&w, "message", message);
    if (retry_after_ms >= 0)
        pw_int(&w, "retry_after_ms", retry_after_ms);
    if (proto_has_id(id))
        pw_id(&w, id);
    pw_end(&w);
}

void gw_proto_pong(hf_buf_t *out, bool msgpack, const gw_req_id_t *id)
{
    proto_writer_t w;
    pw_begin(&w, out, msgpack, 1 + proto_has_id(id));
    pw_str(&w, "type", "pong");
    if (proto_has_id(id))
        pw_id(&w, id);
    pw_end(&w);
}

void gw_proto_ping(hf_buf_t *out, bool msgpack)
{
    proto_writer_t w;
    pw_begin(&w, out, msgpack, 1);
    pw_str(&w, "type", "ping");
    pw_end(&w);
}

void gw_proto_welcome(hf_buf_t *out, bool msgpack, const gw_welcome_t *wl)
{
    proto_writer_t w;
    pw_begin(&w, out, msgpack, 12);
    pw_str(&w, "type", "welcome");
    pw_str(&w, "version", "1.1");
    pw_str(&w, "gateway", wl->gateway);
    pw_str(&w, "sub", wl->subject);
    if (wl->expires_s)
        pw_int(&w, "exp", wl->expires_s);
    else
        pw_null(&w, "exp");
    pw_int(&w, "server_time_us", wl->server_time_us);
    pw_int(&w, "ping_interval_ms", wl->ping_interval_ms);
    pw_int(&w, "idle_timeout_ms", wl->idle_timeout_ms);
    pw_int(&w, "max_subscriptions", wl->max_subscriptions);
    pw_int(&w, "max_frame", wl->max_frame);
    pw_int(&w, "msg_rate", wl->msg_rate);
    pw_int(&w, "msg_burst", wl->msg_burst);
    pw_end(&w);
}

void gw_proto_authenticated(hf_buf_t *out, bool msgpack, const char *subject, int64_t expires_s,
                            const gw_req_id_t *id)
{
    proto_writer_t w;
    pw_begin(&w, out, msgpack, 3 + proto_has_id(id));
    pw_str(&w, "type", "authenticated");
    pw_str(&w, "sub", subject);
    if (expires_s)
        pw_int(&w, "exp", expires_s);
    else
        pw_null(&w, "exp");
    if (proto_has_id(id))
        pw_id(&w, id);
    pw_end(&w);
}

void gw_proto_close_reason(char *out, size_t size, const char *code, int64_t retry_after_ms,
                           const char *text)
{
    char buf[512];
    if (retry_after_ms >= 0)
        snprintf(buf, sizeof buf, "%s retry_after_ms=%lld: %s", code, (long long)retry_after_ms,
                 text);
    else
        snprintf(buf, sizeof buf, "%s: %s", code, text);
    size_t n = strlen(buf);
    if (n > GW_CLOSE_REASON_MAX)
        n = GW_CLOSE_REASON_MAX;
    if (n + 1 > size)
        n = size ? size - 1 : 0;
    /* Never end inside a UTF-8 character: step back over continuation
     * bytes, and the lead byte whose character they would complete. */
    if (n < strlen(buf)) {
        while (n > 0 && ((unsigned char)buf[n] & 0xc0) == 0x80)
            n--;
    }
    if (size) {
        memcpy(out, buf, n);
        out[n] = '\0';
    }
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
