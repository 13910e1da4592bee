/* test_gateway_proto.c - the gateway's client protocol: every message
 * type in JSON and msgpack, every refusal with its code, and the server
 * messages' exact encodings. */
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
        gw_proto_error(&frame, false, err.code, NULL, err.message);
        json_t *msg = json_loadb(frame.data, frame.len, 0, NULL);
        CHECK(msg != NULL);
        json_decref(msg);
        hf_buf_free(&frame);
    }
}

static void test_server_messages(void)
{
    hf_buf_t b = HF_BUF_INIT;
    gw_proto_subscribed(&b, false, "a\"b", 3, 41, "e1", true);
    CHECK_STR_EQ(render(&b), "{\"type\":\"subscribed\",\"channel\":\"a\\\"b\",\"partition\":3,"
                             "\"offset\":41,\"epoch\":\"e1\",\"recovered\":true}");
    hf_buf_reset(&b);
    gw_proto_subscribed(&b, false, "a", 0, -1, "", false);
    CHECK_STR_EQ(render(&b), "{\"type\":\"subscribed\",\"channel\":\"a\",\"partition\":0,"
                             "\"offset\":-1,\"epoch\":null,\"recovered\":false}");
    hf_buf_reset(&b);
    gw_proto_error(&b, false, "invalid_channel", NULL, "bad \"x\"");
    CHECK_STR_EQ(render(&b), "{\"type\":\"error\",\"code\":\"invalid_channel\","
                             "\"message\":\"bad \\\"x\\\"\"}");
    hf_buf_reset(&b);
    gw_proto_pong(&b, false);
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

int main(void)
{
    test_json_requests();
    test_msgpack_requests();
    test_msgpack_hostile_counts();
    test_refusals_are_utf8();
    test_server_messages();
    CHECK_MAIN_END();
}
