/* test_gateway_proto.c - the gateway's client protocol: every message
 * type in JSON and msgpack (1.1's auth, pong and request ids too), every
 * refusal with its code, the server messages' exact encodings, the
 * subprotocol table and the close reasons' format. */
#include <jansson.h>
#include <msgpack.h>
#include <string.h>

#include "check.h"
#include "holdfast/alloc.h"
#include "proto.h"

static const char *json_code(const char *text)
{
    static gw_proto_error_t err;
    gw_request_t req;
    err.code = NULL;
    if (gw_proto_parse_json(text, strlen(text), &req, &err) == HF_OK)
        return "ok";
    return err.code;
}

static void test_json_requests(void)
{
    gw_request_t req;
    gw_proto_error_t err;
    const char *sub = "{\"type\":\"subscribe\",\"channel\":\"orders:42\","
                      "\"since\":{\"offset\":17,\"epoch\":\"e1\"}}";
    CHECK_INT_EQ(gw_proto_parse_json(sub, strlen(sub), &req, &err), HF_OK);
    CHECK_INT_EQ(req.type, GW_REQ_SUBSCRIBE);
    CHECK_STR_EQ(req.channel, "orders:42");
    CHECK(req.has_since);
    CHECK_INT_EQ(req.since_offset, 17);
    CHECK_STR_EQ(req.since_epoch, "e1");

    const char *first = "{\"type\":\"subscribe\",\"channel\":\"a\",\"since\":{\"offset\":-1,"
                        "\"epoch\":null}}";
    CHECK_INT_EQ(gw_proto_parse_json(first, strlen(first), &req, &err), HF_OK);
    CHECK_INT_EQ(req.since_offset, -1);
    CHECK_STR_EQ(req.since_epoch, "");

    CHECK_STR_EQ(json_code("{\"type\":\"ping\"}"), "ok");
    CHECK_STR_EQ(json_code("{\"type\":\"unsubscribe\",\"channel\":\"a\"}"), "ok");
    CHECK_STR_EQ(json_code("{\"type\":\"subscribe\",\"channel\":\"a\",\"since\":null}"), "ok");
    CHECK_STR_EQ(json_code(""), "bad_message");
    CHECK_STR_EQ(json_code("{"), "bad_message");
    CHECK_STR_EQ(json_code("\"subscribe\""), "bad_message");
    CHECK_STR_EQ(json_code("{\"type\":1}"), "bad_message");
    CHECK_STR_EQ(json_code("{\"type\":\"ping\",\"type\":\"ping\"}"), "bad_message");
    CHECK_STR_EQ(json_code("{\"type\":\"publish\"}"), "unknown_type");
    CHECK_STR_EQ(json_code("{\"type\":\"subscribe\"}"), "bad_message");
    CHECK_STR_EQ(json_code("{\"type\":\"subscribe\",\"channel\":\"a/b\"}"), "invalid_channel");
    CHECK_STR_EQ(json_code("{\"type\":\"subscribe\",\"channel\":\"a,b\"}"), "invalid_channel");
    /* jansson refuses NUL in strings outright */
    CHECK_STR_EQ(json_code("{\"type\":\"subscribe\",\"channel\":\"a\\u0000b\"}"), "bad_message");
    CHECK_STR_EQ(json_code("{\"type\":\"subscribe\",\"channel\":\"a\",\"since\":3}"), "bad_since");
    CHECK_STR_EQ(json_code("{\"type\":\"subscribe\",\"channel\":\"a\",\"since\":{\"offset\":-2}}"),
                 "bad_since");
    CHECK_STR_EQ(json_code("{\"type\":\"subscribe\",\"channel\":\"a\",\"since\":{\"offset\":1.5}}"),
                 "bad_since");
    CHECK_STR_EQ(json_code("{\"type\":\"unsubscribe\",\"channel\":\"a\",\"since\":{\"offset\":1}}"),
                 "bad_message");
    char long_epoch[200];
    snprintf(
        long_epoch, sizeof long_epoch,
        "{\"type\":\"subscribe\",\"channel\":\"a\",\"since\":{\"offset\":1,\"epoch\":\"%0100d\"}}",
        0);
    CHECK_STR_EQ(json_code(long_epoch), "bad_since");
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void test_msgpack_requests(void)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "type");
    pack_str(&pk, "subscribe");
    pack_str(&pk, "channel");
    pack_str(&pk, "c:1");
    pack_str(&pk, "since");
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "offset");
    msgpack_pack_int64(&pk, 99);
    pack_str(&pk, "epoch");
    pack_str(&pk, "ep");
    gw_request_t req;
    gw_proto_error_t err;
    CHECK_INT_EQ(gw_proto_parse_msgpack((const uint8_t *)sb.data, sb.size, &req, &err), HF_OK);
    CHECK_STR_EQ(req.channel, "c:1");
    CHECK_INT_EQ(req.since_offset, 99);
    CHECK_STR_EQ(req.since_epoch, "ep");
    /* trailing bytes after the map: refused */
    msgpack_pack_nil(&pk);
    CHECK_INT_EQ(gw_proto_parse_msgpack((const uint8_t *)sb.data, sb.size, &req, &err),
                 HF_ERR_INVALID);
    CHECK_STR_EQ(err.code, "bad_message");
    /* truncated */
    CHECK_INT_EQ(gw_proto_parse_msgpack((const uint8_t *)sb.data, 5, &req, &err), HF_ERR_INVALID);
    msgpack_sbuffer_destroy(&sb);
    static const uint8_t not_map[] = {0x92, 0x01, 0x02};
    CHECK_INT_EQ(gw_proto_parse_msgpack(not_map, sizeof not_map, &req, &err), HF_ERR_INVALID);
    CHECK_INT_EQ(gw_proto_parse_msgpack(NULL, 0, &req, &err), HF_ERR_INVALID);
}

/* Found by fuzz_ws_client_message: msgpack-c allocates for the element
 * count a header declares before it checks the input holds them, so five
 * bytes cost gigabytes (and abort under ASan). Such counts are refused
 * before msgpack-c sees them. */
static void test_msgpack_hostile_counts(void)
{
    static const struct {
        uint8_t bytes[8];
        size_t len;
    } hostile[] = {
        {{0xdd, 0x02, 0xfa, 0xf0, 0x80}, 5},            /* array32 of 50M */
        {{0xdd, 0xff, 0xff, 0xff, 0xff}, 5},            /* array32 of 4G */
        {{0xdf, 0xff, 0xff, 0xff, 0xff}, 5},            /* map32 of 4G pairs */
        {{0x81, 0xa1, 'x', 0xdc, 0xff, 0xff, 0x01}, 7}, /* {"x": array16 of 65535 in one byte} */
    };
    gw_request_t req;
    gw_proto_error_t err;
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        uint8_t *copy = hf_malloc(hostile[i].len);
        memcpy(copy, hostile[i].bytes, hostile[i].len);
        err.code = NULL;
        CHECK_INT_EQ(gw_proto_parse_msgpack(copy, hostile[i].len, &req, &err), HF_ERR_INVALID);
        CHECK_STR_EQ(err.code, "bad_message");
        CHECK_STR_EQ(err.message, "a msgpack array or map claims more elements than it holds");
        hf_free(copy);
    }
    /* A declared count the bytes do hold is still fine, as an unknown key's value. */
    static const uint8_t fits[] = {0x82, 0xa4, 't',  'y', 'p',  'e',  0xa4, 'p', 'i',
                                   'n',  'g',  0xa1, 'x', 0x93, 0x01, 0x02, 0x03};
    CHECK_INT_EQ(gw_proto_parse_msgpack(fits, sizeof fits, &req, &err), HF_OK);
    CHECK_INT_EQ(req.type, GW_REQ_PING);
}

static const char *render(hf_buf_t *b)
{
    hf_buf_append(b, "", 1);
    return b->data;
}

/* Found by fuzz_ws_client_message: a refusal quotes the client's bytes,
 * and for an escape of a non-ASCII character jansson's error text ends
 * with that character's first byte only ("invalid escape near '"\xe5'");
 * the message goes back in a text frame, which a client refuses unless it
 * is UTF-8. */
static void test_refusals_are_utf8(void)
{
    static const char *const bad[] = {
        "\"\\\xe5\x83\x9f\x99\x99\x99\x99\x99", /* the fuzzer's input */
        "{\"type\":\"\\\xc3\xa9\"}",
        "{\"type\":\"subscribe\",\"channel\":\"a\\\xe2\x82\xac\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gw_request_t req;
        gw_proto_error_t err;
        CHECK_INT_EQ(gw_proto_parse_json(bad[i], strlen(bad[i]), &req, &err), HF_ERR_INVALID);
        CHECK_STR_EQ(err.code, "bad_message");
        json_t *text = json_string(err.message); /* NULL unless UTF-8 */
        CHECK(text != NULL);
        json_decref(text);
        hf_buf_t frame = HF_BUF_INIT;
        gw_proto_error(&frame, false, err.code, NULL, err.message, &err.id, -1);
        json_t *msg = json_loadb(frame.data, frame.len, 0, NULL);
        CHECK(msg != NULL);
        json_decref(msg);
        hf_buf_free(&frame);
    }
}

static void test_server_messages(void)
{
    hf_buf_t b = HF_BUF_INIT;
    gw_proto_subscribed(&b, false, "a\"b", 3, 41, "e1", true, NULL);
    CHECK_STR_EQ(render(&b), "{\"type\":\"subscribed\",\"channel\":\"a\\\"b\",\"partition\":3,"
                             "\"offset\":41,\"epoch\":\"e1\",\"recovered\":true}");
    hf_buf_reset(&b);
    gw_proto_subscribed(&b, false, "a", 0, -1, "", false, NULL);
    CHECK_STR_EQ(render(&b), "{\"type\":\"subscribed\",\"channel\":\"a\",\"partition\":0,"
                             "\"offset\":-1,\"epoch\":null,\"recovered\":false}");
    hf_buf_reset(&b);
    gw_proto_error(&b, false, "invalid_channel", NULL, "bad \"x\"", NULL, -1);
    CHECK_STR_EQ(render(&b), "{\"type\":\"error\",\"code\":\"invalid_channel\","
                             "\"message\":\"bad \\\"x\\\"\"}");
    hf_buf_reset(&b);
    gw_proto_pong(&b, false, NULL);
    CHECK_STR_EQ(render(&b), "{\"type\":\"pong\"}");
    hf_buf_reset(&b);
    /* msgpack event: a map of 11 with data as bin */
    hf_envelope_t env;
    hf_envelope_init(&env);
    env.id = "id1";
    env.id_len = 3;
    env.channel = "c";
    env.channel_len = 1;
    env.payload = (const uint8_t *)"{}";
    env.payload_len = 2;
    env.partition = 2;
    gw_proto_event(&b, true, &env, 7, 5);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    CHECK_INT_EQ(msgpack_unpack_next(&u, b.data, b.len, &off), MSGPACK_UNPACK_SUCCESS);
    CHECK_INT_EQ(u.data.type, MSGPACK_OBJECT_MAP);
    CHECK_INT_EQ(u.data.via.map.size, 11);
    CHECK_INT_EQ(off, b.len);
    const msgpack_object *data = &u.data.via.map.ptr[10].val;
    CHECK_INT_EQ(data->type, MSGPACK_OBJECT_BIN);
    CHECK_INT_EQ(data->via.bin.size, 2);
    CHECK_INT_EQ(u.data.via.map.ptr[4].val.via.i64, 7);
    CHECK_INT_EQ(u.data.via.map.ptr[5].val.via.i64, 5);
    msgpack_unpacked_destroy(&u);
    hf_buf_free(&b);
}

/* 1.1: request ids (strings and integers, echoed even on refusals), the
 * auth message with its token, the client's pong. */
static void test_json_requests_1_1(void)
{
    gw_request_t req;
    gw_proto_error_t err;
    const char *auth = "{\"type\":\"auth\",\"token\":\"abc.def.ghi\",\"id\":\"r-1\"}";
    CHECK_INT_EQ(gw_proto_parse_json(auth, strlen(auth), &req, &err), HF_OK);
    CHECK_INT_EQ(req.type, GW_REQ_AUTH);
    CHECK_STR_EQ(req.token, "abc.def.ghi");
    CHECK(req.id.present && !req.id.numeric);
    CHECK_STR_EQ(req.id.text, "r-1");
    const char *sub = "{\"type\":\"subscribe\",\"channel\":\"a\",\"id\":42}";
    CHECK_INT_EQ(gw_proto_parse_json(sub, strlen(sub), &req, &err), HF_OK);
    CHECK(req.id.present && req.id.numeric);
    CHECK_INT_EQ(req.id.num, 42);
    const char *noid = "{\"type\":\"unsubscribe\",\"channel\":\"a\",\"id\":null}";
    CHECK_INT_EQ(gw_proto_parse_json(noid, strlen(noid), &req, &err), HF_OK);
    CHECK(!req.id.present);
    CHECK_STR_EQ(json_code("{\"type\":\"pong\"}"), "ok");
    CHECK_STR_EQ(json_code("{\"type\":\"auth\"}"), "bad_message");
    CHECK_STR_EQ(json_code("{\"type\":\"auth\",\"token\":\"\"}"), "bad_message");
    CHECK_STR_EQ(json_code("{\"type\":\"auth\",\"token\":5}"), "bad_message");
    CHECK_STR_EQ(json_code("{\"type\":\"ping\",\"id\":[1]}"), "bad_message");
    CHECK_STR_EQ(json_code("{\"type\":\"ping\",\"id\":1.5}"), "bad_message");
    char long_id[200];
    snprintf(long_id, sizeof long_id, "{\"type\":\"ping\",\"id\":\"%065d\"}", 0);
    CHECK_STR_EQ(json_code(long_id), "bad_message");
    snprintf(long_id, sizeof long_id, "{\"type\":\"ping\",\"id\":\"%064d\"}", 0);
    CHECK_STR_EQ(json_code(long_id), "ok");
    /* A refusal still carries the id, so the answer can echo it. */
    const char *bad = "{\"type\":\"subscribe\",\"channel\":\"a/b\",\"id\":\"x9\"}";
    CHECK_INT_EQ(gw_proto_parse_json(bad, strlen(bad), &req, &err), HF_ERR_INVALID);
    CHECK_STR_EQ(err.code, "invalid_channel");
    CHECK(err.id.present);
    CHECK_STR_EQ(err.id.text, "x9");
    const char *unknown = "{\"type\":\"publish\",\"id\":3}";
    CHECK_INT_EQ(gw_proto_parse_json(unknown, strlen(unknown), &req, &err), HF_ERR_INVALID);
    CHECK(err.id.present && err.id.numeric && err.id.num == 3);
    CHECK_INT_EQ(gw_proto_parse_json("{", 1, &req, &err), HF_ERR_INVALID);
    CHECK(!err.id.present);
    /* A token longer than any the verifier takes is refused here. */
    size_t n = HF_AUTH_TOKEN_MAX + 1;
    char *huge = hf_malloc(n + 64);
    int k = snprintf(huge, n + 64, "{\"type\":\"auth\",\"token\":\"");
    memset(huge + k, 'a', n);
    snprintf(huge + k + n, 64, "\"}");
    CHECK_STR_EQ(json_code(huge), "token_invalid");
    hf_free(huge);
}

static void test_msgpack_requests_1_1(void)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "type");
    pack_str(&pk, "auth");
    pack_str(&pk, "token");
    pack_str(&pk, "t.o.k");
    pack_str(&pk, "id");
    msgpack_pack_int64(&pk, -5);
    gw_request_t req;
    gw_proto_error_t err;
    CHECK_INT_EQ(gw_proto_parse_msgpack((const uint8_t *)sb.data, sb.size, &req, &err), HF_OK);
    CHECK_INT_EQ(req.type, GW_REQ_AUTH);
    CHECK_STR_EQ(req.token, "t.o.k");
    CHECK(req.id.present && req.id.numeric && req.id.num == -5);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "type");
    pack_str(&pk, "pong");
    pack_str(&pk, "id");
    pack_str(&pk, "p");
    CHECK_INT_EQ(gw_proto_parse_msgpack((const uint8_t *)sb.data, sb.size, &req, &err), HF_OK);
    CHECK_INT_EQ(req.type, GW_REQ_PONG);
    CHECK_STR_EQ(req.id.text, "p");
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "type");
    pack_str(&pk, "auth");
    pack_str(&pk, "id");
    msgpack_pack_true(&pk);
    CHECK_INT_EQ(gw_proto_parse_msgpack((const uint8_t *)sb.data, sb.size, &req, &err),
                 HF_ERR_INVALID);
    CHECK_STR_EQ(err.code, "bad_message");
    msgpack_sbuffer_destroy(&sb);
}

static void test_subprotocols(void)
{
    const gw_subprotocol_t *p = gw_proto_subprotocol("holdfast.v1.1.msgpack");
    CHECK(p && p->msgpack && p->minor == 1);
    p = gw_proto_subprotocol("holdfast.v1.1.json");
    CHECK(p && !p->msgpack && p->minor == 1);
    p = gw_proto_subprotocol("holdfast.v1.json");
    CHECK(p && !p->msgpack && p->minor == 0);
    p = gw_proto_subprotocol("holdfast.v1.msgpack");
    CHECK(p && p->msgpack && p->minor == 0);
    CHECK(gw_proto_subprotocol("holdfast.v2.json") == NULL);
    CHECK(gw_proto_subprotocol(NULL) == NULL);
}

/* The value of key in a msgpack map; NULL when absent. */
static const msgpack_object *mp_get(const msgpack_object *map, const char *key)
{
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
            memcmp(k->via.str.ptr, key, k->via.str.size) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static void test_server_messages_1_1(void)
{
    hf_buf_t b = HF_BUF_INIT;
    gw_req_id_t sid = {.present = true};
    snprintf(sid.text, sizeof sid.text, "s\"1");
    gw_req_id_t nid = {.present = true, .numeric = true, .num = 9};
    gw_proto_subscribed(&b, false, "a", 1, 5, "e", true, &sid);
    CHECK_STR_EQ(render(&b), "{\"type\":\"subscribed\",\"channel\":\"a\",\"partition\":1,"
                             "\"offset\":5,\"epoch\":\"e\",\"recovered\":true,\"id\":\"s\\\"1\"}");
    hf_buf_reset(&b);
    gw_proto_unsubscribed(&b, false, "a", "forbidden", NULL);
    CHECK_STR_EQ(render(&b),
                 "{\"type\":\"unsubscribed\",\"channel\":\"a\",\"reason\":\"forbidden\"}");
    hf_buf_reset(&b);
    gw_proto_unsubscribed(&b, false, "a", NULL, &nid);
    CHECK_STR_EQ(render(&b), "{\"type\":\"unsubscribed\",\"channel\":\"a\",\"id\":9}");
    hf_buf_reset(&b);
    gw_proto_error(&b, false, "unavailable", "c", "later", &nid, 1000);
    CHECK_STR_EQ(render(&b), "{\"type\":\"error\",\"code\":\"unavailable\",\"channel\":\"c\","
                             "\"message\":\"later\",\"retry_after_ms\":1000,\"id\":9}");
    hf_buf_reset(&b);
    gw_proto_pong(&b, false, &nid);
    CHECK_STR_EQ(render(&b), "{\"type\":\"pong\",\"id\":9}");
    hf_buf_reset(&b);
    gw_proto_ping(&b, false);
    CHECK_STR_EQ(render(&b), "{\"type\":\"ping\"}");
    hf_buf_reset(&b);
    gw_proto_authenticated(&b, false, "alice", 1700000000, &sid);
    CHECK_STR_EQ(render(&b), "{\"type\":\"authenticated\",\"sub\":\"alice\",\"exp\":1700000000,"
                             "\"id\":\"s\\\"1\"}");
    hf_buf_reset(&b);
    gw_proto_authenticated(&b, false, "bob", 0, NULL);
    CHECK_STR_EQ(render(&b), "{\"type\":\"authenticated\",\"sub\":\"bob\",\"exp\":null}");
    hf_buf_reset(&b);
    gw_welcome_t w = {.gateway = "gw-1",
                      .subject = "alice",
                      .expires_s = 1700000000,
                      .server_time_us = 1699999999000001,
                      .ping_interval_ms = 25000,
                      .idle_timeout_ms = 75000,
                      .max_subscriptions = 100,
                      .max_frame = 16384,
                      .msg_rate = 50,
                      .msg_burst = 200};
    gw_proto_welcome(&b, false, &w);
    CHECK_STR_EQ(
        render(&b),
        "{\"type\":\"welcome\",\"version\":\"1.1\",\"gateway\":\"gw-1\",\"sub\":\"alice\","
        "\"exp\":1700000000,\"server_time_us\":1699999999000001,\"ping_interval_ms\":25000,"
        "\"idle_timeout_ms\":75000,\"max_subscriptions\":100,\"max_frame\":16384,"
        "\"msg_rate\":50,\"msg_burst\":200}");
    hf_buf_reset(&b);
    /* msgpack: the same fields, a map whose count matches what follows */
    w.expires_s = 0;
    gw_proto_welcome(&b, true, &w);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    CHECK_INT_EQ(msgpack_unpack_next(&u, b.data, b.len, &off), MSGPACK_UNPACK_SUCCESS);
    CHECK_INT_EQ(off, b.len);
    CHECK_INT_EQ(u.data.type, MSGPACK_OBJECT_MAP);
    CHECK_INT_EQ(u.data.via.map.size, 12);
    const msgpack_object *v = mp_get(&u.data, "exp");
    CHECK(v && v->type == MSGPACK_OBJECT_NIL);
    v = mp_get(&u.data, "server_time_us");
    CHECK(v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 == 1699999999000001ULL);
    msgpack_unpacked_destroy(&u);
    hf_buf_reset(&b);
    gw_proto_error(&b, true, "forbidden", "c", "no", &sid, -1);
    msgpack_unpacked_init(&u);
    off = 0;
    CHECK_INT_EQ(msgpack_unpack_next(&u, b.data, b.len, &off), MSGPACK_UNPACK_SUCCESS);
    CHECK_INT_EQ(off, b.len);
    CHECK_INT_EQ(u.data.via.map.size, 5);
    v = mp_get(&u.data, "id");
    CHECK(v && v->type == MSGPACK_OBJECT_STR && v->via.str.size == 3);
    CHECK(mp_get(&u.data, "retry_after_ms") == NULL);
    msgpack_unpacked_destroy(&u);
    hf_buf_free(&b);
}

static void test_close_reasons(void)
{
    char r[GW_CLOSE_REASON_MAX + 1];
    gw_proto_close_reason(r, sizeof r, GW_WHY_DRAIN, 2500, "gateway restarting: resume elsewhere");
    CHECK_STR_EQ(r, "drain retry_after_ms=2500: gateway restarting: resume elsewhere");
    gw_proto_close_reason(r, sizeof r, GW_WHY_LIMIT_RATE, -1, "too many messages");
    CHECK_STR_EQ(r, "limit:message_rate: too many messages");
    gw_proto_close_reason(r, sizeof r, GW_WHY_DRAIN, 0, "x");
    CHECK_STR_EQ(r, "drain retry_after_ms=0: x");
    /* Cut to 123 bytes, never inside a character: 120 ASCII bytes of
     * prefix and text, then a 4-byte character that does not fit. */
    char text[200];
    memset(text, 'a', 111);
    memcpy(text + 111, "\xf0\x9f\x98\x80tail", 9);
    gw_proto_close_reason(r, sizeof r, "internal", -1, text); /* "internal: " is 10 bytes */
    CHECK_INT_EQ(strlen(r), 121);
    CHECK(r[120] == 'a');
    memset(text, 'b', 150);
    text[150] = '\0';
    gw_proto_close_reason(r, sizeof r, "internal", -1, text);
    CHECK_INT_EQ(strlen(r), GW_CLOSE_REASON_MAX);
}

int main(void)
{
    test_json_requests();
    test_msgpack_requests();
    test_msgpack_hostile_counts();
    test_refusals_are_utf8();
    test_server_messages();
    test_json_requests_1_1();
    test_msgpack_requests_1_1();
    test_subprotocols();
    test_server_messages_1_1();
    test_close_reasons();
    CHECK_MAIN_END();
}
