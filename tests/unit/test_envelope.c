/* test_envelope.c - the msgpack envelope codec, including hostile input.
 *
 * Robustness cases decode exact-size heap copies so that ASan catches any
 * read past len; the buffers hf_buf hands out have slack after len. */
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "holdfast/alloc.h"
#include "holdfast/buf.h"
#include "holdfast/channel.h"
#include "holdfast/envelope.h"

/* ---- helpers ----------------------------------------------------------- */

static int write_buf(void *data, const char *bytes, size_t len)
{
    hf_buf_append(data, bytes, len);
    return 0;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t len = strlen(s);
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

static void full_envelope(hf_envelope_t *env)
{
    static const uint8_t payload[] = "{\"total\":42}";
    hf_envelope_init(env);
    env->id = "0191d5a2-7c1e-7d3a-9a4b-1f2e3d4c5b6a";
    env->id_len = strlen(env->id);
    env->channel = "orders:eu";
    env->channel_len = strlen(env->channel);
    env->type = "order.created";
    env->type_len = strlen(env->type);
    env->content_type = "application/json";
    env->content_type_len = strlen(env->content_type);
    env->epoch = "e7";
    env->epoch_len = 2;
    env->payload = payload;
    env->payload_len = sizeof payload - 1;
    env->partition = 5;
    env->offset = 1234567890123LL;
    env->prev_offset = 1234567890001LL;
    env->created_at_us = 1700000000123456LL;
    env->replay = true;
}

static void minimal_envelope(hf_envelope_t *env)
{
    static const uint8_t payload[] = "x";
    hf_envelope_init(env);
    env->id = "evt-1";
    env->id_len = 5;
    env->channel = "orders";
    env->channel_len = 6;
    env->payload = payload;
    env->payload_len = 1;
}

/* Decodes an exact-size heap copy; *copy is kept for pointer checks and
 * must be freed by the caller. */
static hf_err_t decode_copy(const void *data, size_t len, hf_envelope_t *env, const char **why,
                            uint8_t **copy)
{
    uint8_t *c = hf_malloc(len);
    if (len)
        memcpy(c, data, len);
    hf_err_t err = hf_envelope_decode(c, len, env, why);
    if (copy)
        *copy = c;
    else
        hf_free(c);
    return err;
}

static bool inside(const void *p, size_t n, const uint8_t *base, size_t len)
{
    const uint8_t *q = p;
    if (!q)
        return n == 0;
    return q >= base && q <= base + len && n <= (size_t)(base + len - q);
}

static bool all_inside(const hf_envelope_t *e, const uint8_t *base, size_t len)
{
    return inside(e->id, e->id_len, base, len) && inside(e->channel, e->channel_len, base, len) &&
           inside(e->type, e->type_len, base, len) &&
           inside(e->content_type, e->content_type_len, base, len) &&
           inside(e->epoch, e->epoch_len, base, len) &&
           inside(e->payload, e->payload_len, base, len);
}

static bool same_str(const char *a, size_t alen, const char *b, size_t blen)
{
    if (!a || !b)
        return a == b;
    return alen == blen && memcmp(a, b, alen) == 0;
}

static void check_same(const hf_envelope_t *a, const hf_envelope_t *b)
{
    CHECK(same_str(a->id, a->id_len, b->id, b->id_len));
    CHECK(same_str(a->channel, a->channel_len, b->channel, b->channel_len));
    CHECK(same_str(a->type, a->type_len, b->type, b->type_len));
    CHECK(same_str(a->content_type, a->content_type_len, b->content_type, b->content_type_len));
    CHECK(same_str(a->epoch, a->epoch_len, b->epoch, b->epoch_len));
    CHECK_MEM_EQ(a->payload, a->payload_len, b->payload, b->payload_len);
    CHECK_INT_EQ(a->partition, b->partition);
    CHECK_INT_EQ(a->offset, b->offset);
    CHECK_INT_EQ(a->prev_offset, b->prev_offset);
    CHECK_INT_EQ(a->created_at_us, b->created_at_us);
    CHECK_INT_EQ(a->replay, b->replay);
}

/* Hand-built envelopes: the twelve known keys with valid values, except
 * that `key` gets the value `val` (or is left out with VAL_OMIT), then
 * extra_count raw pre-encoded pairs. */
enum val {
    VAL_DEFAULT,
    VAL_OMIT,
    VAL_NIL,
    VAL_TRUE,
    VAL_UINT,  /* 1 */
    VAL_NEG,   /* -1 */
    VAL_NEG2,  /* -2 */
    VAL_BIG,   /* 2^63, only representable as uint64 */
    VAL_I32P1, /* INT32_MAX + 1 */
    VAL_STR,
    VAL_BIN,
    VAL_FLOAT,
    VAL_ARRAY,
    VAL_MAP,
};

static const char *const known_keys[] = {"v", "id", "ch", "t",  "ct", "ep",
                                         "d", "p",  "o",  "po", "ts", "r"};
#define KNOWN_KEYS (sizeof known_keys / sizeof known_keys[0])

static void pack_default(msgpack_packer *pk, const char *key)
{
    if (!strcmp(key, "v"))
        msgpack_pack_uint64(pk, 1);
    else if (!strcmp(key, "id"))
        pack_str(pk, "evt-1");
    else if (!strcmp(key, "ch"))
        pack_str(pk, "orders");
    else if (!strcmp(key, "t"))
        pack_str(pk, "order.created");
    else if (!strcmp(key, "ct"))
        pack_str(pk, "application/json");
    else if (!strcmp(key, "ep"))
        pack_str(pk, "e1");
    else if (!strcmp(key, "d")) {
        msgpack_pack_bin(pk, 2);
        msgpack_pack_bin_body(pk, "{}", 2);
    } else if (!strcmp(key, "p"))
        msgpack_pack_int64(pk, 3);
    else if (!strcmp(key, "o"))
        msgpack_pack_int64(pk, 100);
    else if (!strcmp(key, "po"))
        msgpack_pack_int64(pk, 99);
    else if (!strcmp(key, "ts"))
        msgpack_pack_int64(pk, 1700000000000000LL);
    else
        msgpack_pack_true(pk);
}

static void pack_val(msgpack_packer *pk, const char *key, enum val val)
{
    switch (val) {
    case VAL_DEFAULT:
    case VAL_OMIT:
        pack_default(pk, key);
        break;
    case VAL_NIL:
        msgpack_pack_nil(pk);
        break;
    case VAL_TRUE:
        msgpack_pack_true(pk);
        break;
    case VAL_UINT:
        msgpack_pack_uint64(pk, 1);
        break;
    case VAL_NEG:
        msgpack_pack_int64(pk, -1);
        break;
    case VAL_NEG2:
        msgpack_pack_int64(pk, -2);
        break;
    case VAL_BIG:
        msgpack_pack_uint64(pk, UINT64_C(1) << 63);
        break;
    case VAL_I32P1:
        msgpack_pack_int64(pk, (int64_t)INT32_MAX + 1);
        break;
    case VAL_STR:
        pack_str(pk, "str");
        break;
    case VAL_BIN:
        msgpack_pack_bin(pk, 3);
        msgpack_pack_bin_body(pk, "bin", 3);
        break;
    case VAL_FLOAT:
        msgpack_pack_double(pk, 1.5);
        break;
    case VAL_ARRAY:
        msgpack_pack_array(pk, 1);
        msgpack_pack_int64(pk, 1);
        break;
    case VAL_MAP:
        msgpack_pack_map(pk, 1);
        pack_str(pk, "k");
        msgpack_pack_nil(pk);
        break;
    }
}

static void build(hf_buf_t *out, const char *key, enum val val, size_t extra_count,
                  const void *extra, size_t extra_len)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, write_buf);
    size_t n = KNOWN_KEYS - (key && val == VAL_OMIT ? 1 : 0) + extra_count;
    msgpack_pack_map(&pk, n);
    for (size_t k = 0; k < KNOWN_KEYS; k++) {
        bool target = key && !strcmp(key, known_keys[k]);
        if (target && val == VAL_OMIT)
            continue;
        pack_str(&pk, known_keys[k]);
        pack_val(&pk, known_keys[k], target ? val : VAL_DEFAULT);
    }
    if (extra_len)
        hf_buf_append(out, extra, extra_len);
}

static hf_err_t build_decode(const char *key, enum val val, const char **why)
{
    hf_buf_t b = HF_BUF_INIT;
    hf_envelope_t env;
    build(&b, key, val, 0, NULL, 0);
    hf_err_t err = decode_copy(b.data, b.len, &env, why, NULL);
    hf_buf_free(&b);
    return err;
}

/* ---- tests ------------------------------------------------------------- */

static void test_round_trip_full(void)
{
    hf_envelope_t in, out;
    hf_buf_t b = HF_BUF_INIT;
    const char *why = "unset";
    full_envelope(&in);
    CHECK_INT_EQ(hf_envelope_encode(&in, &b), HF_OK);
    CHECK_INT_EQ((uint8_t)b.data[0], 0x8c); /* fixmap of 12 */
    CHECK_INT_EQ(hf_envelope_decode((const uint8_t *)b.data, b.len, &out, &why), HF_OK);
    CHECK(why == NULL);
    check_same(&in, &out);
    /* Zero copy: everything points into the input. */
    CHECK(all_inside(&out, (const uint8_t *)b.data, b.len));
    CHECK((const char *)out.payload > b.data);
    hf_buf_free(&b);
}

static void test_round_trip_minimal(void)
{
    hf_envelope_t in, out;
    hf_buf_t b = HF_BUF_INIT;
    minimal_envelope(&in);
    CHECK_INT_EQ(hf_envelope_encode(&in, &b), HF_OK);
    CHECK_INT_EQ((uint8_t)b.data[0], 0x88); /* t, ct, ep and r left out */
    CHECK_INT_EQ(decode_copy(b.data, b.len, &out, NULL, NULL), HF_OK);
    CHECK(out.type == NULL && out.content_type == NULL && out.epoch == NULL);
    CHECK_INT_EQ(out.partition, -1);
    CHECK_INT_EQ(out.offset, HF_OFFSET_NONE);
    CHECK_INT_EQ(out.prev_offset, HF_OFFSET_NONE);
    CHECK_INT_EQ(out.created_at_us, 0);
    CHECK(!out.replay);
    hf_buf_free(&b);
}

static void test_binary_and_empty_payload(void)
{
    uint8_t bytes[256];
    for (int i = 0; i < 256; i++)
        bytes[i] = (uint8_t)(255 - i); /* includes NULs and 0xc1 */
    hf_envelope_t in, out;
    hf_buf_t b = HF_BUF_INIT;
    minimal_envelope(&in);
    in.payload = bytes;
    in.payload_len = sizeof bytes;
    CHECK_INT_EQ(hf_envelope_encode(&in, &b), HF_OK);
    CHECK_INT_EQ(hf_envelope_decode((const uint8_t *)b.data, b.len, &out, NULL), HF_OK);
    CHECK_MEM_EQ(out.payload, out.payload_len, bytes, sizeof bytes);

    /* Empty payload, both as NULL and as a non-NULL pointer. */
    static const uint8_t nothing[1];
    const uint8_t *empties[] = {NULL, nothing};
    for (size_t i = 0; i < 2; i++) {
        hf_buf_reset(&b);
        in.payload = empties[i];
        in.payload_len = 0;
        CHECK_INT_EQ(hf_envelope_encode(&in, &b), HF_OK);
        CHECK_INT_EQ(decode_copy(b.data, b.len, &out, NULL, NULL), HF_OK);
        CHECK_INT_EQ(out.payload_len, 0);
    }

    /* Empty optional strings survive as empty, not as absent. */
    hf_buf_reset(&b);
    in.type = "";
    in.type_len = 0;
    CHECK_INT_EQ(hf_envelope_encode(&in, &b), HF_OK);
    CHECK_INT_EQ(hf_envelope_decode((const uint8_t *)b.data, b.len, &out, NULL), HF_OK);
    CHECK(out.type != NULL);
    CHECK_INT_EQ(out.type_len, 0);
    hf_buf_free(&b);
}

static void test_large_payload(void)
{
    size_t n = 1024 * 1024;
    uint8_t *big = hf_malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 2654435761u >> 13);
    hf_envelope_t in, out;
    hf_buf_t b = HF_BUF_INIT;
    full_envelope(&in);
    in.payload = big;
    in.payload_len = n;
    CHECK_INT_EQ(hf_envelope_encode(&in, &b), HF_OK);
    CHECK_INT_EQ(decode_copy(b.data, b.len, &out, NULL, NULL), HF_OK);
    CHECK_INT_EQ(out.payload_len, n);
    uint8_t *copy = NULL;
    CHECK_INT_EQ(decode_copy(b.data, b.len, &out, NULL, &copy), HF_OK);
    CHECK_MEM_EQ(out.payload, out.payload_len, big, n);
    hf_free(copy);
    hf_buf_free(&b);
    hf_free(big);
}

static void test_encode_appends(void)
{
    hf_envelope_t in, out;
    hf_buf_t b = HF_BUF_INIT;
    hf_buf_append_str(&b, "prefix");
    full_envelope(&in);
    CHECK_INT_EQ(hf_envelope_encode(&in, &b), HF_OK);
    CHECK(memcmp(b.data, "prefix", 6) == 0);
    CHECK_INT_EQ(hf_envelope_decode((const uint8_t *)b.data + 6, b.len - 6, &out, NULL), HF_OK);
    check_same(&in, &out);
    hf_buf_free(&b);
}

static void test_encode_invalid(void)
{
    static const char long_id[] =
        "01234567890123456789012345678901234567890123456789012345678901234"; /* 65 */
    char long_ch[HF_CHANNEL_MAX + 1];
    memset(long_ch, 'c', sizeof long_ch);
    hf_envelope_t in;
    hf_buf_t b = HF_BUF_INIT;

    for (int c = 0; c < 11; c++) {
        full_envelope(&in);
        hf_err_t want = HF_ERR_INVALID;
        switch (c) {
        case 0:
            in.id = NULL;
            break;
        case 1:
            in.id_len = 0;
            break;
        case 2:
            in.id = long_id;
            in.id_len = 65;
            break;
        case 3:
            in.channel = NULL;
            break;
        case 4:
            in.channel_len = 0;
            break;
        case 5:
            in.channel = long_ch;
            in.channel_len = sizeof long_ch;
            break;
        case 6:
            in.payload = NULL; /* with a non-zero length */
            break;
        case 7:
            in.offset = -2;
            break;
        case 8:
            in.prev_offset = INT64_MIN;
            break;
        case 9:
            in.partition = -2;
            break;
        case 10:
            in.payload_len = (size_t)UINT32_MAX + 1; /* never read: rejected first */
            want = HF_ERR_TOO_LARGE;
            break;
        }
        CHECK_INT_EQ(hf_envelope_encode(&in, &b), want);
        CHECK_INT_EQ(b.len, 0); /* nothing half-written */
    }
    full_envelope(&in);
    CHECK_INT_EQ(hf_envelope_encode(NULL, &b), HF_ERR_INVALID);
    CHECK_INT_EQ(hf_envelope_encode(&in, NULL), HF_ERR_INVALID);

    /* The limits themselves are fine. */
    in.id = long_id;
    in.id_len = 64;
    in.channel = long_ch;
    in.channel_len = HF_CHANNEL_MAX;
    in.offset = in.prev_offset = HF_OFFSET_NONE;
    in.partition = -1;
    CHECK_INT_EQ(hf_envelope_encode(&in, &b), HF_OK);
    hf_envelope_t out;
    uint8_t *copy = NULL;
    CHECK_INT_EQ(decode_copy(b.data, b.len, &out, NULL, &copy), HF_OK);
    check_same(&in, &out);
    hf_free(copy);
    hf_buf_free(&b);
}

static void test_truncations(void)
{
    hf_envelope_t in, out;
    hf_buf_t b = HF_BUF_INIT;
    full_envelope(&in);
    CHECK_INT_EQ(hf_envelope_encode(&in, &b), HF_OK);
    int failures = 0;
    for (size_t n = 0; n < b.len; n++) {
        const char *why = NULL;
        hf_err_t err = decode_copy(b.data, n, &out, &why, NULL);
        /* Every prefix, the empty one included, is short of something. */
        if (err != HF_ERR_INVALID || !why || strcmp(why, "truncated envelope") != 0)
            failures++;
    }
    CHECK_INT_EQ(failures, 0);
    const char *why = NULL;
    CHECK_INT_EQ(hf_envelope_decode(NULL, 0, &out, &why), HF_ERR_INVALID);
    CHECK_STR_EQ(why, "truncated envelope");
    CHECK_INT_EQ(hf_envelope_decode(NULL, 5, &out, &why), HF_ERR_INVALID);
    CHECK_INT_EQ(hf_envelope_decode((const uint8_t *)b.data, b.len, NULL, &why), HF_ERR_INVALID);
    hf_buf_free(&b);
}

static void test_byte_flips(void)
{
    hf_envelope_t in, out;
    hf_buf_t b = HF_BUF_INIT;
    full_envelope(&in);
    CHECK_INT_EQ(hf_envelope_encode(&in, &b), HF_OK);
    int bad = 0, ok = 0;
    uint8_t *mut = hf_malloc(b.len);
    for (size_t i = 0; i < b.len; i++) {
        for (int v = 0; v < 256; v++) {
            memcpy(mut, b.data, b.len);
            mut[i] = (uint8_t)v;
            const char *why = NULL;
            hf_err_t err = hf_envelope_decode(mut, b.len, &out, &why);
            if (err == HF_OK) {
                ok++;
                if (!all_inside(&out, mut, b.len) || out.offset < -1 || out.prev_offset < -1 ||
                    out.partition < -1 || out.id_len == 0 || out.id_len > 64)
                    bad++;
            } else if (!why || (err != HF_ERR_INVALID && err != HF_ERR_TOO_LARGE)) {
                bad++;
            }
        }
    }
    CHECK_INT_EQ(bad, 0);
    CHECK(ok > 0); /* e.g. changes inside the payload stay valid */
    hf_free(mut);
    hf_buf_free(&b);
}

static void test_version(void)
{
    const char *why = NULL;
    hf_buf_t b = HF_BUF_INIT;
    hf_envelope_t env;
    CHECK_INT_EQ(build_decode(NULL, VAL_DEFAULT, &why), HF_OK);

    CHECK_INT_EQ(build_decode("v", VAL_NEG, &why), HF_ERR_INVALID);
    CHECK_STR_EQ(why, "unsupported envelope version");
    CHECK_INT_EQ(build_decode("v", VAL_BIG, &why), HF_ERR_INVALID);
    CHECK_STR_EQ(why, "unsupported envelope version");
    CHECK_INT_EQ(build_decode("v", VAL_OMIT, &why), HF_ERR_INVALID);
    CHECK_STR_EQ(why, "envelope has no version");
    CHECK_INT_EQ(build_decode("v", VAL_STR, &why), HF_ERR_INVALID);
    CHECK_STR_EQ(why, "envelope version is not an integer");

    /* A v2 envelope whose id changed type reports the version, not the
     * type, even though v comes last. */
    static const uint8_t later_v[] = {0x82, 0xa2, 'i', 'd', 0x07, 0xa1, 'v', 0x02};
    CHECK_INT_EQ(decode_copy(later_v, sizeof later_v, &env, &why, NULL), HF_ERR_INVALID);
    CHECK_STR_EQ(why, "unsupported envelope version");
    static const uint8_t v0[] = {0x81, 0xa1, 'v', 0x00};
    CHECK_INT_EQ(decode_copy(v0, sizeof v0, &env, &why, NULL), HF_ERR_INVALID);
    CHECK_STR_EQ(why, "unsupported envelope version");

    /* v = 1 in the widest wire form is still version 1. */
    static const uint8_t v1_wide[] = {0xcf, 0, 0, 0, 0, 0, 0, 0, 1};
    build(&b, "v", VAL_OMIT, 1, "\xa1v", 2);
    hf_buf_append(&b, v1_wide, sizeof v1_wide);
    CHECK_INT_EQ(decode_copy(b.data, b.len, &env, &why, NULL), HF_OK);
    hf_buf_free(&b);
}

static void test_wrong_types(void)
{
    static const enum val kinds[] = {VAL_NIL, VAL_TRUE,  VAL_UINT,  VAL_NEG, VAL_STR,
                                     VAL_BIN, VAL_FLOAT, VAL_ARRAY, VAL_MAP};
    int mismatches = 0;
    for (size_t k = 0; k < KNOWN_KEYS; k++) {
        const char *key = known_keys[k];
        for (size_t j = 0; j < sizeof kinds / sizeof kinds[0]; j++) {
            enum val val = kinds[j];
            bool want_ok;
            if (!strcmp(key, "v"))
                want_ok = val == VAL_UINT;
            else if (!strcmp(key, "id") || !strcmp(key, "ch"))
                want_ok = val == VAL_STR;
            else if (!strcmp(key, "t") || !strcmp(key, "ct") || !strcmp(key, "ep"))
                want_ok = val == VAL_STR || val == VAL_NIL;
            else if (!strcmp(key, "d"))
                want_ok = val == VAL_BIN || val == VAL_STR;
            else if (!strcmp(key, "r"))
                want_ok = val == VAL_TRUE;
            else /* p, o, po, ts */
                want_ok = val == VAL_UINT || val == VAL_NEG;
            const char *why = NULL;
            hf_err_t err = build_decode(key, val, &why);
            if ((err == HF_OK) != want_ok || (!want_ok && !why)) {
                mismatches++;
                fprintf(stderr, "key %s kind %d: got %d (%s)\n", key, (int)val, (int)err,
                        why ? why : "-");
            }
        }
    }
    CHECK_INT_EQ(mismatches, 0);

    const char *why = NULL;
    CHECK_INT_EQ(build_decode("id", VAL_BIN, &why), HF_ERR_INVALID);
    CHECK_STR_EQ(why, "envelope id is not a string");
    CHECK_INT_EQ(build_decode("d", VAL_ARRAY, &why), HF_ERR_INVALID);
    CHECK_STR_EQ(why, "envelope payload is not binary");
    CHECK_INT_EQ(build_decode("r", VAL_UINT, &why), HF_ERR_INVALID);
    CHECK_STR_EQ(why, "envelope replay flag is not a boolean");
}

static void test_missing_fields(void)
{
    const char *why = NULL;
    CHECK_INT_EQ(build_decode("id", VAL_OMIT, &why), HF_ERR_INVALID);
    CHECK_STR_EQ(why, "envelope has no id");
    CHECK_INT_EQ(build_decode("ch", VAL_OMIT, &why), HF_ERR_INVALID);
    CHECK_STR_EQ(why, "envelope has no channel");
    CHECK_INT_EQ(build_decode("d", VAL_OMIT, &why), HF_ERR_INVALID);
    CHECK_STR_EQ(why, "envelope has no payload");
    /* Everything else is optional on the wire. */
    static const char *const optional[] = {"t", "ct", "ep", "p", "o", "po", "ts", "r"};
    for (size_t i = 0; i < sizeof optional / sizeof optional[0]; i++)
        CHECK_INT_EQ(build_decode(optional[i], VAL_OMIT, &why), HF_OK);

    /* Empty id / channel and over-long ones. */
    hf_buf_t b = HF_BUF_INIT;
    hf_envelope_t env;
    char long_id[66];
    memset(long_id, 'i', sizeof long_id);
    long_id[65] = '\0';
    const char *ids[] = {"", long_id, long_id + 1};
    hf_err_t want[] = {HF_ERR_INVALID, HF_ERR_INVALID, HF_OK};
    for (size_t i = 0; i < 3; i++) {
        msgpack_packer pk;
        hf_buf_reset(&b);
        build(&b, "id", VAL_OMIT, 1, NULL, 0);
        msgpack_packer_init(&pk, &b, write_buf);
        pack_str(&pk, "id");
        pack_str(&pk, ids[i]);
        CHECK_INT_EQ(decode_copy(b.data, b.len, &env, &why, NULL), want[i]);
    }
    CHECK_INT_EQ(build_decode("ch", VAL_STR, &why), HF_OK);
    hf_buf_free(&b);
}

static void test_ranges(void)
{
    const char *why = NULL;
    CHECK_INT_EQ(build_decode("o", VAL_NEG2, &why), HF_ERR_INVALID);
    CHECK_STR_EQ(why, "envelope offset is out of range");
    CHECK_INT_EQ(build_decode("po", VAL_NEG2, &why), HF_ERR_INVALID);
    CHECK_STR_EQ(why, "envelope previous offset is out of range");
    CHECK_INT_EQ(build_decode("p", VAL_NEG2, &why), HF_ERR_INVALID);
    CHECK_STR_EQ(why, "envelope partition is out of range");
    CHECK_INT_EQ(build_decode("p", VAL_I32P1, &why), HF_ERR_INVALID);
    CHECK_STR_EQ(why, "envelope partition is out of range");
    CHECK_INT_EQ(build_decode("o", VAL_BIG, &why), HF_ERR_INVALID);
    CHECK_INT_EQ(build_decode("ts", VAL_BIG, &why), HF_ERR_INVALID);
    CHECK_INT_EQ(build_decode("ts", VAL_NEG2, &why), HF_OK); /* before 1970 is fine */
    CHECK_INT_EQ(build_decode("o", VAL_I32P1, &why), HF_OK);

    /* Extremes round-trip, and every signed/unsigned wire width decodes. */
    hf_envelope_t in, out;
    hf_buf_t b = HF_BUF_INIT;
    full_envelope(&in);
    in.partition = INT32_MAX;
    in.offset = INT64_MAX;
    in.prev_offset = HF_OFFSET_NONE;
    in.created_at_us = INT64_MIN;
    CHECK_INT_EQ(hf_envelope_encode(&in, &b), HF_OK);
    CHECK_INT_EQ(decode_copy(b.data, b.len, &out, NULL, NULL), HF_OK);
    CHECK_INT_EQ(out.partition, INT32_MAX);
    CHECK(out.offset == INT64_MAX);
    CHECK(out.created_at_us == INT64_MIN);

    static const struct {
        uint8_t bytes[9];
        size_t len;
        int64_t value;
    } forms[] = {
        {{0x05}, 1, 5},
        {{0xff}, 1, -1},
        {{0xcc, 0xc8}, 2, 200},
        {{0xcd, 0x12, 0x34}, 3, 0x1234},
        {{0xce, 0x80, 0, 0, 0}, 5, 0x80000000LL},
        {{0xcf, 0, 0, 0, 0, 0, 0, 0, 7}, 9, 7},
        {{0xd0, 0xe0}, 2, -32},
        {{0xd0, 0x10}, 2, 16},
        {{0xd1, 0xff, 0xfe}, 3, -2},
        {{0xd2, 0x7f, 0xff, 0xff, 0xff}, 5, INT32_MAX},
        {{0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, 9, INT64_MIN},
        {{0xd3, 0, 0, 0, 0, 0, 0, 0, 9}, 9, 9},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        hf_buf_reset(&b);
        build(&b, "ts", VAL_OMIT, 1, "\xa2ts", 3);
        hf_buf_append(&b, forms[i].bytes, forms[i].len);
        CHECK_INT_EQ(decode_copy(b.data, b.len, &out, NULL, NULL), HF_OK);
        CHECK(out.created_at_us == forms[i].value);
    }
    hf_buf_free(&b);
}

static void test_unknown_keys(void)
{
    /* Unknown keys of every shape: nested containers, ext, floats, and
     * keys that are not strings at all. */
    hf_buf_t extra = HF_BUF_INIT;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &extra, write_buf);
    pack_str(&pk, "zz");
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "a");
    msgpack_pack_array(&pk, 3);
    msgpack_pack_int64(&pk, 1);
    msgpack_pack_float(&pk, 2.5f);
    msgpack_pack_map(&pk, 1);
    pack_str(&pk, "id"); /* a known name, but nested: not the envelope's id */
    msgpack_pack_nil(&pk);
    pack_str(&pk, "c");
    msgpack_pack_bin(&pk, 300);
    for (int i = 0; i < 300; i++)
        msgpack_pack_bin_body(&pk, "\0", 1);
    msgpack_pack_int64(&pk, 42); /* integer key */
    pack_str(&pk, "int key");
    msgpack_pack_array(&pk, 2); /* array key */
    msgpack_pack_true(&pk);
    msgpack_pack_false(&pk);
    msgpack_pack_double(&pk, -0.25);
    pack_str(&pk, "ext");
    msgpack_pack_ext(&pk, 3, 7);
    msgpack_pack_ext_body(&pk, "abc", 3);
    pack_str(&pk, "fixext");
    static const uint8_t fixext16[18] = {0xd8, 0x01};
    hf_buf_append(&extra, fixext16, sizeof fixext16);
    pack_str(&pk, "ext16");
    static const uint8_t ext16[4 + 2] = {0xc8, 0x00, 0x02, 0x05, 'h', 'i'};
    hf_buf_append(&extra, ext16, sizeof ext16);
    pack_str(&pk, "str8");
    static const uint8_t str8[] = {0xd9, 0x03, 'a', 'b', 'c'};
    hf_buf_append(&extra, str8, sizeof str8);
    pack_str(&pk, "arr16");
    static const uint8_t arr16[] = {0xdc, 0x00, 0x01, 0xc0};
    hf_buf_append(&extra, arr16, sizeof arr16);
    pack_str(&pk, "map32");
    static const uint8_t map32[] = {0xdf, 0, 0, 0, 1, 0xa1, 'x', 0xc3};
    hf_buf_append(&extra, map32, sizeof map32);
    const size_t extras = 9;

    hf_buf_t b = HF_BUF_INIT;
    hf_envelope_t env;
    const char *why = NULL;
    uint8_t *copy = NULL;
    build(&b, NULL, VAL_DEFAULT, extras, extra.data, extra.len);
    CHECK_INT_EQ(decode_copy(b.data, b.len, &env, &why, &copy), HF_OK);
    CHECK(why == NULL);
    CHECK(same_str(env.id, env.id_len, "evt-1", 5));
    CHECK(same_str(env.channel, env.channel_len, "orders", 6));
    CHECK_INT_EQ(env.partition, 3);
    CHECK(env.replay);
    hf_free(copy);

    /* 64 entries in all is the limit; 65 is too many. */
    hf_buf_t many = HF_BUF_INIT;
    msgpack_packer_init(&pk, &many, write_buf);
    for (int i = 0; i < 52; i++) {
        msgpack_pack_int64(&pk, 1000 + i);
        msgpack_pack_nil(&pk);
    }
    hf_buf_reset(&b);
    build(&b, NULL, VAL_DEFAULT, 52, many.data, many.len);
    CHECK_INT_EQ((uint8_t)b.data[0], 0xde); /* map16 */
    CHECK_INT_EQ(decode_copy(b.data, b.len, &env, &why, NULL), HF_OK);
    msgpack_pack_int64(&pk, 2000);
    msgpack_pack_nil(&pk);
    hf_buf_reset(&b);
    build(&b, NULL, VAL_DEFAULT, 53, many.data, many.len);
    CHECK_INT_EQ(decode_copy(b.data, b.len, &env, &why, NULL), HF_ERR_TOO_LARGE);
    CHECK_STR_EQ(why, "envelope has too many entries");

    /* A known key twice is ambiguous. */
    hf_buf_reset(&b);
    build(&b, NULL, VAL_DEFAULT, 1, "\xa2id\xa1x", 5);
    CHECK_INT_EQ(decode_copy(b.data, b.len, &env, &why, NULL), HF_ERR_INVALID);
    CHECK_STR_EQ(why, "duplicate key in envelope");

    /* Malformed unknown value (0xc1 is never valid msgpack). */
    hf_buf_reset(&b);
    build(&b, NULL, VAL_DEFAULT, 1, "\xa1q\xc1", 3);
    CHECK_INT_EQ(decode_copy(b.data, b.len, &env, &why, NULL), HF_ERR_INVALID);
    CHECK_STR_EQ(why, "malformed envelope");

    hf_buf_free(&many);
    hf_buf_free(&extra);
    hf_buf_free(&b);
}

static void test_nesting(void)
{
    hf_buf_t b = HF_BUF_INIT;
    hf_envelope_t env;
    const char *why = NULL;
    uint8_t deep[2 + 100000 + 1];
    deep[0] = 0xa1;
    deep[1] = 'q';

    /* The envelope is level 1, so an unknown value may hold 7 levels. */
    for (size_t levels = 1; levels <= 8; levels++) {
        memset(deep + 2, 0x91, levels); /* fixarray of 1 */
        deep[2 + levels] = 0xc0;
        hf_buf_reset(&b);
        build(&b, NULL, VAL_DEFAULT, 1, deep, 3 + levels);
        hf_err_t err = decode_copy(b.data, b.len, &env, &why, NULL);
        if (levels <= 7) {
            CHECK_INT_EQ(err, HF_OK);
        } else {
            CHECK_INT_EQ(err, HF_ERR_TOO_LARGE);
            CHECK_STR_EQ(why, "envelope nesting too deep");
        }
    }
    /* Very deep: rejected without recursing that far. */
    memset(deep + 2, 0x81, 100000); /* fixmap of 1, alternating key/value */
    deep[2 + 100000] = 0xc0;
    hf_buf_reset(&b);
    build(&b, NULL, VAL_DEFAULT, 1, deep, sizeof deep);
    CHECK_INT_EQ(decode_copy(b.data, b.len, &env, &why, NULL), HF_ERR_TOO_LARGE);

    /* Deep nesting inside a map key is bounded too. */
    memset(deep, 0x91, 20);
    deep[20] = 0xc0;
    deep[21] = 0xc0;
    hf_buf_reset(&b);
    build(&b, NULL, VAL_DEFAULT, 1, deep, 22);
    CHECK_INT_EQ(decode_copy(b.data, b.len, &env, &why, NULL), HF_ERR_TOO_LARGE);

    /* Huge declared counts with no elements: a quick error, no allocation. */
    static const uint8_t huge[][7] = {
        {0xa1, 'q', 0xdd, 0xff, 0xff, 0xff, 0xff}, {0xa1, 'q', 0xdf, 0xff, 0xff, 0xff, 0xff},
        {0xa1, 'q', 0xdb, 0xff, 0xff, 0xff, 0xff}, {0xa1, 'q', 0xc6, 0xff, 0xff, 0xff, 0xff},
        {0xa1, 'q', 0xc9, 0xff, 0xff, 0xff, 0xff},
    };
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        hf_buf_reset(&b);
        build(&b, NULL, VAL_DEFAULT, 1, huge[i], sizeof huge[i]);
        CHECK_INT_EQ(decode_copy(b.data, b.len, &env, &why, NULL), HF_ERR_INVALID);
        CHECK_STR_EQ(why, "truncated envelope");
    }
    static const uint8_t huge_top[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    CHECK_INT_EQ(decode_copy(huge_top, sizeof huge_top, &env, &why, NULL), HF_ERR_TOO_LARGE);
    hf_buf_free(&b);
}

static void test_framing(void)
{
    hf_envelope_t in, env;
    hf_buf_t b = HF_BUF_INIT;
    const char *why = NULL;
    full_envelope(&in);
    CHECK_INT_EQ(hf_envelope_encode(&in, &b), HF_OK);
    hf_buf_append(&b, "\xc0", 1);
    CHECK_INT_EQ(decode_copy(b.data, b.len, &env, &why, NULL), HF_ERR_INVALID);
    CHECK_STR_EQ(why, "trailing bytes after envelope");
    /* On error the caller's envelope is left in its init state. */
    CHECK(env.id == NULL && env.payload == NULL && env.offset == HF_OFFSET_NONE);

    static const uint8_t *const not_maps[] = {
        (const uint8_t *)"\x91\x01",
        (const uint8_t *)"\xa3"
                         "abc",
        (const uint8_t *)"\xc0",
        (const uint8_t *)"\x01",
        (const uint8_t *)"\xdc\x00\x00",
        (const uint8_t *)"\xc1",
    };
    static const size_t not_map_lens[] = {2, 4, 1, 1, 3, 1};
    for (size_t i = 0; i < sizeof not_map_lens / sizeof not_map_lens[0]; i++) {
        CHECK_INT_EQ(decode_copy(not_maps[i], not_map_lens[i], &env, &why, NULL), HF_ERR_INVALID);
        CHECK_STR_EQ(why, "envelope is not a map");
    }
    static const uint8_t empty_map[] = {0x80};
    CHECK_INT_EQ(decode_copy(empty_map, 1, &env, &why, NULL), HF_ERR_INVALID);
    CHECK_STR_EQ(why, "envelope has no version");
    hf_buf_free(&b);
}

int main(void)
{
    test_round_trip_full();
    test_round_trip_minimal();
    test_binary_and_empty_payload();
    test_large_payload();
    test_encode_appends();
    test_encode_invalid();
    test_truncations();
    test_byte_flips();
    test_version();
    test_wrong_types();
    test_missing_fields();
    test_ranges();
    test_unknown_keys();
    test_nesting();
    test_framing();
    CHECK_MAIN_END();
}
