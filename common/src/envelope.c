/* envelope.c - the msgpack event envelope codec (spec: schemas/envelope.md).
 *
 * Encoding uses msgpack-c's packer. Decoding uses a small bounded reader
 * instead of msgpack_unpack_next(): msgpack-c allocates room for every
 * element an array or map header declares before checking that the input
 * holds them, so five hostile bytes (dd 02 fa f0 80, "an array of 50M")
 * make it map 2 GiB, and larger counts abort under ASan. The reader below never allocates, bounds
 * every read by len and nesting by ENVELOPE_MAX_DEPTH, and hands out
 * pointers into the caller's buffer as envelope.h promises. */
#include "holdfast/envelope.h"

#include <msgpack.h>
#include <stdint.h>
#include <string.h>

#include "holdfast/channel.h"

#define ENVELOPE_MAX_ENTRIES 64
/* Counts containers, the envelope map itself being level 1. */
#define ENVELOPE_MAX_DEPTH 8
#define ENVELOPE_ID_MAX    64

enum envelope_key {
    ENVELOPE_KEY_V,
    ENVELOPE_KEY_ID,
    ENVELOPE_KEY_CH,
    ENVELOPE_KEY_T,
    ENVELOPE_KEY_CT,
    ENVELOPE_KEY_EP,
    ENVELOPE_KEY_D,
    ENVELOPE_KEY_P,
    ENVELOPE_KEY_O,
    ENVELOPE_KEY_PO,
    ENVELOPE_KEY_TS,
    ENVELOPE_KEY_R,
    ENVELOPE_KEY_COUNT,
};

static const char *const envelope_key_names[ENVELOPE_KEY_COUNT] = {
    "v", "id", "ch", "t", "ct", "ep", "d", "p", "o", "po", "ts", "r",
};

/* ---- encoding ---------------------------------------------------------- */

static int envelope_write(void *data, const char *bytes, size_t len)
{
    /* hf_buf_append aborts on out-of-memory, so there is no failure to report. */
    if (len)
        hf_buf_append(data, bytes, len);
    return 0;
}

static void envelope_pack_str(msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str(pk, len);
    if (len)
        msgpack_pack_str_body(pk, s, len);
}

static void envelope_pack_key(msgpack_packer *pk, enum envelope_key key)
{
    const char *name = envelope_key_names[key];
    envelope_pack_str(pk, name, strlen(name));
}

/* Refuses anything the decoder would refuse, so a successful encode always
 * decodes. msgpack-c silently truncates lengths above 32 bits, hence the
 * TOO_LARGE checks. */
static hf_err_t envelope_check(const hf_envelope_t *env)
{
    if (!env->id || env->id_len == 0 || env->id_len > ENVELOPE_ID_MAX)
        return HF_ERR_INVALID;
    if (!env->channel || env->channel_len == 0 || env->channel_len > HF_CHANNEL_MAX)
        return HF_ERR_INVALID;
    if (!env->payload && env->payload_len > 0)
        return HF_ERR_INVALID;
    if (env->partition < -1 || env->offset < HF_OFFSET_NONE || env->prev_offset < HF_OFFSET_NONE)
        return HF_ERR_INVALID;
    if (env->payload_len > UINT32_MAX || (env->type && env->type_len > UINT32_MAX) ||
        (env->content_type && env->content_type_len > UINT32_MAX) ||
        (env->epoch && env->epoch_len > UINT32_MAX))
        return HF_ERR_TOO_LARGE;
    return HF_OK;
}

void hf_envelope_init(hf_envelope_t *env)
{
    memset(env, 0, sizeof *env);
    env->partition = -1;
    env->offset = HF_OFFSET_NONE;
    env->prev_offset = HF_OFFSET_NONE;
}

hf_err_t hf_envelope_encode(const hf_envelope_t *env, hf_buf_t *out)
{
    if (!env || !out)
        return HF_ERR_INVALID;
    hf_err_t err = envelope_check(env);
    if (err != HF_OK)
        return err;

    size_t entries = 8 + (env->type != NULL) + (env->content_type != NULL) + (env->epoch != NULL) +
                     (env->replay ? 1 : 0);
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, envelope_write);
    msgpack_pack_map(&pk, entries);

    envelope_pack_key(&pk, ENVELOPE_KEY_V);
    msgpack_pack_uint64(&pk, HF_ENVELOPE_VERSION);
    envelope_pack_key(&pk, ENVELOPE_KEY_ID);
    envelope_pack_str(&pk, env->id, env->id_len);
    envelope_pack_key(&pk, ENVELOPE_KEY_CH);
    envelope_pack_str(&pk, env->channel, env->channel_len);
    if (env->type) {
        envelope_pack_key(&pk, ENVELOPE_KEY_T);
        envelope_pack_str(&pk, env->type, env->type_len);
    }
    if (env->content_type) {
        envelope_pack_key(&pk, ENVELOPE_KEY_CT);
        envelope_pack_str(&pk, env->content_type, env->content_type_len);
    }
    if (env->epoch) {
        envelope_pack_key(&pk, ENVELOPE_KEY_EP);
        envelope_pack_str(&pk, env->epoch, env->epoch_len);
    }
    envelope_pack_key(&pk, ENVELOPE_KEY_D);
    msgpack_pack_bin(&pk, env->payload_len);
    if (env->payload_len)
        msgpack_pack_bin_body(&pk, env->payload, env->payload_len);
    envelope_pack_key(&pk, ENVELOPE_KEY_P);
    msgpack_pack_int64(&pk, env->partition);
    envelope_pack_key(&pk, ENVELOPE_KEY_O);
    msgpack_pack_int64(&pk, env->offset);
    envelope_pack_key(&pk, ENVELOPE_KEY_PO);
    msgpack_pack_int64(&pk, env->prev_offset);
    envelope_pack_key(&pk, ENVELOPE_KEY_TS);
    msgpack_pack_int64(&pk, env->created_at_us);
    if (env->replay) {
        envelope_pack_key(&pk, ENVELOPE_KEY_R);
        msgpack_pack_true(&pk);
    }
    return HF_OK;
}

/* ---- decoding ---------------------------------------------------------- */

enum envelope_kind {
    ENVELOPE_NIL,
    ENVELOPE_BOOL,
    ENVELOPE_UINT, /* any integer >= 0, whatever its wire form */
    ENVELOPE_NEG,  /* any integer < 0 */
    ENVELOPE_FLOAT,
    ENVELOPE_STR,
    ENVELOPE_BIN,
    ENVELOPE_EXT,
    ENVELOPE_ARRAY,
    ENVELOPE_MAP,
};

/* One msgpack item. For containers only the header is consumed. */
struct envelope_item {
    enum envelope_kind kind;
    bool b;
    uint64_t u;
    int64_t i;
    const uint8_t *ptr; /* str/bin/ext body, inside the input */
    size_t len;
    uint64_t count; /* array elements or map pairs */
};

struct envelope_reader {
    const uint8_t *data;
    size_t len;
    size_t pos;
    hf_err_t err;
    const char *why;
};

static bool envelope_fail(struct envelope_reader *r, hf_err_t err, const char *why)
{
    r->err = err;
    r->why = why;
    return false;
}

static bool envelope_take(struct envelope_reader *r, size_t n, const uint8_t **out)
{
    if (r->len - r->pos < n)
        return envelope_fail(r, HF_ERR_INVALID, "truncated envelope");
    *out = r->data + r->pos;
    r->pos += n;
    return true;
}

/* Reads an n-byte big-endian unsigned integer (n <= 8). */
static bool envelope_take_be(struct envelope_reader *r, size_t n, uint64_t *out)
{
    const uint8_t *p;
    if (!envelope_take(r, n, &p))
        return false;
    uint64_t v = 0;
    for (size_t k = 0; k < n; k++)
        v = (v << 8) | p[k];
    *out = v;
    return true;
}

/* Interprets the low `bits` bits of u as two's complement without relying on
 * implementation-defined unsigned-to-signed conversion. */
static int64_t envelope_sign_extend(uint64_t u, unsigned bits)
{
    if (bits < 64) {
        uint64_t sign = UINT64_C(1) << (bits - 1);
        if (!(u & sign))
            return (int64_t)u;
        u |= ~((sign << 1) - 1); /* fill the high bits with ones */
    }
    if (u <= INT64_MAX)
        return (int64_t)u;
    return -(int64_t)(~u) - 1;
}

static void envelope_set_int(struct envelope_item *it, int64_t v)
{
    if (v >= 0) {
        it->kind = ENVELOPE_UINT;
        it->u = (uint64_t)v;
    } else {
        it->kind = ENVELOPE_NEG;
        it->i = v;
    }
}

static bool envelope_take_body(struct envelope_reader *r, struct envelope_item *it,
                               enum envelope_kind kind, size_t len_bytes)
{
    uint64_t n;
    if (!envelope_take_be(r, len_bytes, &n))
        return false;
    it->kind = kind;
    it->len = (size_t)n;
    return envelope_take(r, it->len, &it->ptr);
}

static bool envelope_take_ext(struct envelope_reader *r, struct envelope_item *it, size_t fixed_len,
                              size_t len_bytes)
{
    uint64_t n = fixed_len;
    const uint8_t *type;
    if (len_bytes && !envelope_take_be(r, len_bytes, &n))
        return false;
    if (!envelope_take(r, 1, &type))
        return false;
    it->kind = ENVELOPE_EXT;
    it->len = (size_t)n;
    return envelope_take(r, it->len, &it->ptr);
}

static bool envelope_take_count(struct envelope_reader *r, struct envelope_item *it,
                                enum envelope_kind kind, size_t len_bytes)
{
    if (!envelope_take_be(r, len_bytes, &it->count))
        return false;
    it->kind = kind;
    return true;
}

static bool envelope_read(struct envelope_reader *r, struct envelope_item *it)
{
    const uint8_t *p;
    uint64_t u;
    if (!envelope_take(r, 1, &p))
        return false;
    uint8_t c = *p;
    memset(it, 0, sizeof *it);

    if (c <= 0x7f) {
        envelope_set_int(it, c);
        return true;
    }
    if (c >= 0xe0) {
        envelope_set_int(it, (int64_t)c - 256);
        return true;
    }
    if (c >= 0x80 && c <= 0x8f) {
        it->kind = ENVELOPE_MAP;
        it->count = c & 0x0f;
        return true;
    }
    if (c >= 0x90 && c <= 0x9f) {
        it->kind = ENVELOPE_ARRAY;
        it->count = c & 0x0f;
        return true;
    }
    if (c >= 0xa0 && c <= 0xbf) {
        it->kind = ENVELOPE_STR;
        it->len = c & 0x1f;
        return envelope_take(r, it->len, &it->ptr);
    }

    switch (c) {
    case 0xc0:
        it->kind = ENVELOPE_NIL;
        return true;
    case 0xc2:
    case 0xc3:
        it->kind = ENVELOPE_BOOL;
        it->b = c == 0xc3;
        return true;
    case 0xc4:
        return envelope_take_body(r, it, ENVELOPE_BIN, 1);
    case 0xc5:
        return envelope_take_body(r, it, ENVELOPE_BIN, 2);
    case 0xc6:
        return envelope_take_body(r, it, ENVELOPE_BIN, 4);
    case 0xc7:
        return envelope_take_ext(r, it, 0, 1);
    case 0xc8:
        return envelope_take_ext(r, it, 0, 2);
    case 0xc9:
        return envelope_take_ext(r, it, 0, 4);
    case 0xca:
        it->kind = ENVELOPE_FLOAT;
        return envelope_take(r, 4, &p);
    case 0xcb:
        it->kind = ENVELOPE_FLOAT;
        return envelope_take(r, 8, &p);
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: {
        size_t n = (size_t)1 << (c - 0xcc);
        if (!envelope_take_be(r, n, &u))
            return false;
        it->kind = ENVELOPE_UINT;
        it->u = u;
        return true;
    }
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        size_t n = (size_t)1 << (c - 0xd0);
        if (!envelope_take_be(r, n, &u))
            return false;
        envelope_set_int(it, envelope_sign_extend(u, (unsigned)(n * 8)));
        return true;
    }
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        return envelope_take_ext(r, it, (size_t)1 << (c - 0xd4), 0);
    case 0xd9:
        return envelope_take_body(r, it, ENVELOPE_STR, 1);
    case 0xda:
        return envelope_take_body(r, it, ENVELOPE_STR, 2);
    case 0xdb:
        return envelope_take_body(r, it, ENVELOPE_STR, 4);
    case 0xdc:
        return envelope_take_count(r, it, ENVELOPE_ARRAY, 2);
    case 0xdd:
        return envelope_take_count(r, it, ENVELOPE_ARRAY, 4);
    case 0xde:
        return envelope_take_count(r, it, ENVELOPE_MAP, 2);
    case 0xdf:
        return envelope_take_count(r, it, ENVELOPE_MAP, 4);
    default: /* 0xc1 is the one byte msgpack never uses */
        return envelope_fail(r, HF_ERR_INVALID, "malformed envelope");
    }
}

static bool envelope_skip(struct envelope_reader *r, int depth);

/* Skips what follows an already-read item at nesting level depth. */
static bool envelope_skip_rest(struct envelope_reader *r, const struct envelope_item *it, int depth)
{
    if (it->kind != ENVELOPE_ARRAY && it->kind != ENVELOPE_MAP)
        return true;
    if (depth > ENVELOPE_MAX_DEPTH)
        return envelope_fail(r, HF_ERR_TOO_LARGE, "envelope nesting too deep");
    uint64_t items = it->kind == ENVELOPE_MAP ? it->count * 2 : it->count;
    /* Every item takes at least one byte: fail early on absurd counts. */
    if (items > r->len - r->pos)
        return envelope_fail(r, HF_ERR_INVALID, "truncated envelope");
    for (uint64_t k = 0; k < items; k++)
        if (!envelope_skip(r, depth + 1))
            return false;
    return true;
}

static bool envelope_skip(struct envelope_reader *r, int depth)
{
    struct envelope_item it;
    return envelope_read(r, &it) && envelope_skip_rest(r, &it, depth);
}

static int envelope_lookup(const struct envelope_item *key)
{
    if (key->kind != ENVELOPE_STR)
        return -1;
    for (int k = 0; k < ENVELOPE_KEY_COUNT; k++) {
        const char *name = envelope_key_names[k];
        if (key->len == strlen(name) && memcmp(key->ptr, name, key->len) == 0)
            return k;
    }
    return -1;
}

/* Reads the value of a known key, which the structural pass has already
 * found well formed and in bounds. */
static void envelope_value_at(const struct envelope_reader *r, size_t pos, struct envelope_item *it)
{
    struct envelope_reader v = {r->data, r->len, pos, HF_OK, NULL};
    if (!envelope_read(&v, it))
        it->kind = ENVELOPE_NIL; /* unreachable: pass 1 read the same bytes */
}

static const char *envelope_int_field(const struct envelope_item *it, int64_t min, int64_t max,
                                      int64_t *out, const char *wrong_type, const char *range)
{
    int64_t v;
    if (it->kind == ENVELOPE_UINT) {
        if (it->u > (uint64_t)max)
            return range;
        v = (int64_t)it->u;
    } else if (it->kind == ENVELOPE_NEG) {
        v = it->i;
    } else {
        return wrong_type;
    }
    if (v < min || v > max)
        return range;
    *out = v;
    return NULL;
}

static const char *envelope_str_field(const struct envelope_item *it, size_t max, const char **out,
                                      size_t *out_len, const char *wrong_type, const char *bad_len)
{
    if (it->kind != ENVELOPE_STR)
        return wrong_type;
    if (it->len == 0 || it->len > max)
        return bad_len;
    *out = (const char *)it->ptr;
    *out_len = it->len;
    return NULL;
}

/* Optional strings: nil is accepted as "absent" for other encoders' sake. */
static const char *envelope_opt_str_field(const struct envelope_item *it, const char **out,
                                          size_t *out_len, const char *wrong_type)
{
    if (it->kind == ENVELOPE_NIL)
        return NULL;
    if (it->kind != ENVELOPE_STR)
        return wrong_type;
    *out = (const char *)it->ptr;
    *out_len = it->len;
    return NULL;
}

/* Pass 1: checks that the whole input is one well-formed, bounded map and
 * remembers where each known key's value starts. */
static bool envelope_scan(struct envelope_reader *r, size_t *at, bool *seen)
{
    struct envelope_item top;
    if (r->len == 0)
        return envelope_fail(r, HF_ERR_INVALID, "truncated envelope");
    uint8_t c = r->data[0];
    if (!((c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf))
        return envelope_fail(r, HF_ERR_INVALID, "envelope is not a map");
    if (!envelope_read(r, &top))
        return false;
    if (top.count > ENVELOPE_MAX_ENTRIES)
        return envelope_fail(r, HF_ERR_TOO_LARGE, "envelope has too many entries");

    for (uint64_t n = 0; n < top.count; n++) {
        struct envelope_item key;
        if (!envelope_read(r, &key))
            return false;
        int k = envelope_lookup(&key);
        if (k < 0) {
            /* Unknown keys of any type (even containers) are skipped. */
            if (!envelope_skip_rest(r, &key, 2) || !envelope_skip(r, 2))
                return false;
            continue;
        }
        /* Two values for one key would let two decoders disagree. */
        if (seen[k])
            return envelope_fail(r, HF_ERR_INVALID, "duplicate key in envelope");
        seen[k] = true;
        at[k] = r->pos;
        if (!envelope_skip(r, 2))
            return false;
    }
    if (r->pos != r->len)
        return envelope_fail(r, HF_ERR_INVALID, "trailing bytes after envelope");
    return true;
}

/* Pass 2: types and ranges of the known fields. The version is checked
 * first so that a future version's retyped fields report as a version
 * mismatch rather than as a type error. */
static const char *envelope_fields(const struct envelope_reader *r, const size_t *at,
                                   const bool *seen, hf_envelope_t *env)
{
    struct envelope_item it;
    const char *why;
    int64_t v;

    if (!seen[ENVELOPE_KEY_V])
        return "envelope has no version";
    envelope_value_at(r, at[ENVELOPE_KEY_V], &it);
    if (it.kind != ENVELOPE_UINT && it.kind != ENVELOPE_NEG)
        return "envelope version is not an integer";
    if (it.kind != ENVELOPE_UINT || it.u != HF_ENVELOPE_VERSION)
        return "unsupported envelope version";

    if (!seen[ENVELOPE_KEY_ID])
        return "envelope has no id";
    envelope_value_at(r, at[ENVELOPE_KEY_ID], &it);
    why = envelope_str_field(&it, ENVELOPE_ID_MAX, &env->id, &env->id_len,
                             "envelope id is not a string",
                             "envelope id is empty or longer than 64 bytes");
    if (why)
        return why;

    if (!seen[ENVELOPE_KEY_CH])
        return "envelope has no channel";
    envelope_value_at(r, at[ENVELOPE_KEY_CH], &it);
    why = envelope_str_field(&it, HF_CHANNEL_MAX, &env->channel, &env->channel_len,
                             "envelope channel is not a string",
                             "envelope channel is empty or longer than 200 bytes");
    if (why)
        return why;

    if (seen[ENVELOPE_KEY_T]) {
        envelope_value_at(r, at[ENVELOPE_KEY_T], &it);
        why = envelope_opt_str_field(&it, &env->type, &env->type_len,
                                     "envelope type is not a string");
        if (why)
            return why;
    }
    if (seen[ENVELOPE_KEY_CT]) {
        envelope_value_at(r, at[ENVELOPE_KEY_CT], &it);
        why = envelope_opt_str_field(&it, &env->content_type, &env->content_type_len,
                                     "envelope content type is not a string");
        if (why)
            return why;
    }
    if (seen[ENVELOPE_KEY_EP]) {
        envelope_value_at(r, at[ENVELOPE_KEY_EP], &it);
        why = envelope_opt_str_field(&it, &env->epoch, &env->epoch_len,
                                     "envelope epoch is not a string");
        if (why)
            return why;
    }

    if (!seen[ENVELOPE_KEY_D])
        return "envelope has no payload";
    envelope_value_at(r, at[ENVELOPE_KEY_D], &it);
    /* str is tolerated: some msgpack encoders have no bin type. */
    if (it.kind != ENVELOPE_BIN && it.kind != ENVELOPE_STR)
        return "envelope payload is not binary";
    env->payload = it.ptr;
    env->payload_len = it.len;

    if (seen[ENVELOPE_KEY_P]) {
        envelope_value_at(r, at[ENVELOPE_KEY_P], &it);
        why = envelope_int_field(&it, -1, INT32_MAX, &v, "envelope partition is not an integer",
                                 "envelope partition is out of range");
        if (why)
            return why;
        env->partition = (int32_t)v;
    }
    if (seen[ENVELOPE_KEY_O]) {
        envelope_value_at(r, at[ENVELOPE_KEY_O], &it);
        why = envelope_int_field(&it, HF_OFFSET_NONE, INT64_MAX, &env->offset,
                                 "envelope offset is not an integer",
                                 "envelope offset is out of range");
        if (why)
            return why;
    }
    if (seen[ENVELOPE_KEY_PO]) {
        envelope_value_at(r, at[ENVELOPE_KEY_PO], &it);
        why = envelope_int_field(&it, HF_OFFSET_NONE, INT64_MAX, &env->prev_offset,
                                 "envelope previous offset is not an integer",
                                 "envelope previous offset is out of range");
        if (why)
            return why;
    }
    if (seen[ENVELOPE_KEY_TS]) {
        envelope_value_at(r, at[ENVELOPE_KEY_TS], &it);
        why = envelope_int_field(&it, INT64_MIN, INT64_MAX, &env->created_at_us,
                                 "envelope timestamp is not an integer",
                                 "envelope timestamp is out of range");
        if (why)
            return why;
    }
    if (seen[ENVELOPE_KEY_R]) {
        envelope_value_at(r, at[ENVELOPE_KEY_R], &it);
        if (it.kind != ENVELOPE_BOOL)
            return "envelope replay flag is not a boolean";
        env->replay = it.b;
    }
    return NULL;
}

hf_err_t hf_envelope_decode(const uint8_t *data, size_t len, hf_envelope_t *env, const char **why)
{
    const char *reason = NULL;
    hf_err_t err = HF_ERR_INVALID;
    size_t at[ENVELOPE_KEY_COUNT] = {0};
    bool seen[ENVELOPE_KEY_COUNT] = {false};
    hf_envelope_t out;

    hf_envelope_init(&out);
    if (env)
        hf_envelope_init(env);
    if (!env) {
        reason = "no envelope to decode into";
    } else if (!data && len > 0) {
        reason = "envelope data is NULL";
    } else {
        /* data may be NULL only with len 0, which scan rejects before any
         * pointer arithmetic. */
        struct envelope_reader r = {data, len, 0, HF_OK, NULL};
        if (!envelope_scan(&r, at, seen)) {
            err = r.err;
            reason = r.why;
        } else {
            reason = envelope_fields(&r, at, seen, &out);
        }
    }

    if (reason) {
        if (why)
            *why = reason;
        return err;
    }
    /* Only a fully valid envelope reaches the caller; on error env stays
     * in its init state. */
    *env = out;
    if (why)
        *why = NULL;
    return HF_OK;
}
