/* test_relay_pgoutput.c - decoding pgoutput messages into events: columns
 * found by name (added or dropped columns shift nothing), binary values,
 * positions in commit order, other tables skipped, and malformed or
 * truncated messages refused without reading past the end. */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "holdfast/alloc.h"
#include "relay.h"

typedef struct msg {
    uint8_t b[4096];
    size_t n;
} msg_t;

static void put8(msg_t *m, uint8_t v)
{
    m->b[m->n++] = v;
}
static void put16(msg_t *m, uint16_t v)
{
    v = htobe16(v);
    memcpy(m->b + m->n, &v, 2);
    m->n += 2;
}
static void put32(msg_t *m, uint32_t v)
{
    v = htobe32(v);
    memcpy(m->b + m->n, &v, 4);
    m->n += 4;
}
static void put64(msg_t *m, uint64_t v)
{
    v = htobe64(v);
    memcpy(m->b + m->n, &v, 8);
    m->n += 8;
}
static void putstr(msg_t *m, const char *s)
{
    memcpy(m->b + m->n, s, strlen(s) + 1);
    m->n += strlen(s) + 1;
}
static void putval(msg_t *m, const void *data, uint32_t len)
{
    put8(m, 'b');
    put32(m, len);
    memcpy(m->b + m->n, data, len);
    m->n += len;
}

typedef struct col {
    const char *name;
    uint32_t oid;
} col_t;

/* events as 004 leaves it, plus an extra column in the middle */
static const col_t cols[] = {
    {"id", 2950},         {"channel", 25}, {"partition", 23},    {"extra", 20},
    {"type", 25},         {"payload", 17}, {"content_type", 25}, {"idempotency_key", 25},
    {"created_at", 1184},
};
#define NCOLS (sizeof cols / sizeof cols[0])

static msg_t relation(uint32_t relid, const char *ns, const char *name)
{
    msg_t m = {.n = 0};
    put8(&m, 'R');
    put32(&m, relid);
    putstr(&m, ns);
    putstr(&m, name);
    put8(&m, 'd');
    put16(&m, NCOLS);
    for (size_t i = 0; i < NCOLS; i++) {
        put8(&m, i == 0);
        putstr(&m, cols[i].name);
        put32(&m, cols[i].oid);
        put32(&m, (uint32_t)-1);
    }
    return m;
}

static msg_t begin(uint64_t lsn, int64_t pg_us)
{
    msg_t m = {.n = 0};
    put8(&m, 'B');
    put64(&m, lsn);
    put64(&m, (uint64_t)pg_us);
    put32(&m, 777);
    return m;
}

static msg_t commit(uint64_t lsn, uint64_t end)
{
    msg_t m = {.n = 0};
    put8(&m, 'C');
    put8(&m, 0);
    put64(&m, lsn);
    put64(&m, end);
    put64(&m, 0);
    return m;
}

static msg_t insert(uint32_t relid, const char *channel, int32_t partition, const char *type,
                    const char *payload)
{
    msg_t m = {.n = 0};
    put8(&m, 'I');
    put32(&m, relid);
    put8(&m, 'N');
    put16(&m, NCOLS);
    uint8_t id[16];
    for (int i = 0; i < 16; i++)
        id[i] = (uint8_t)(0xa0 + i);
    putval(&m, id, 16);
    putval(&m, channel, (uint32_t)strlen(channel));
    uint32_t p = htobe32((uint32_t)partition);
    putval(&m, &p, 4);
    uint64_t extra = htobe64(99);
    putval(&m, &extra, 8);
    if (type)
        putval(&m, type, (uint32_t)strlen(type));
    else
        put8(&m, 'n');
    putval(&m, payload, (uint32_t)strlen(payload));
    putval(&m, "application/json", 16);
    put8(&m, 'n');
    uint64_t created = htobe64(1000000); /* one second after 2000-01-01 */
    putval(&m, &created, 8);
    return m;
}

static hf_err_t decode(relay_decoder_t *d, const msg_t *m, relay_msg_t *out)
{
    char err[256];
    return relay_decode(d, m->b, m->n, out, err, sizeof err);
}

static void test_events_in_order(void)
{
    relay_decoder_t *d = relay_decoder_new();
    relay_msg_t out;
    msg_t m = relation(16400, "holdfast", "events");
    CHECK_INT_EQ(decode(d, &m, &out), HF_OK);
    CHECK_INT_EQ(out.kind, RELAY_MSG_NONE);
    m = begin(0x1234, 5000000);
    CHECK_INT_EQ(decode(d, &m, &out), HF_OK);
    CHECK_INT_EQ(out.kind, RELAY_MSG_BEGIN);
    CHECK(out.lsn == 0x1234);
    CHECK(out.commit_us == 946684800000000LL + 5000000);
    for (int i = 0; i < 2; i++) {
        m = insert(16400, i ? "orders:2" : "orders:1", 3, i ? NULL : "order.created", "{\"a\":1}");
        CHECK_INT_EQ(decode(d, &m, &out), HF_OK);
        CHECK_INT_EQ(out.kind, RELAY_MSG_EVENT);
        relay_event_t *ev = out.event;
        CHECK_STR_EQ(ev->channel, i ? "orders:2" : "orders:1");
        CHECK_STR_EQ(ev->id, "a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf");
        CHECK_INT_EQ(ev->partition, 3);
        if (i)
            CHECK(ev->type == NULL);
        else
            CHECK_STR_EQ(ev->type, "order.created");
        CHECK_INT_EQ(ev->payload_len, 7);
        CHECK(memcmp(ev->payload, "{\"a\":1}", 7) == 0);
        CHECK_STR_EQ(ev->content_type, "application/json");
        CHECK(ev->created_at_us == 946684800000000LL + 1000000);
        CHECK(ev->pos.lsn == 0x1234);
        CHECK_INT_EQ(ev->pos.ord, i);
        hf_free(ev);
    }
    m = insert(16401, "other", 0, NULL, "x"); /* another table: skipped */
    CHECK_INT_EQ(decode(d, &m, &out), HF_OK);
    CHECK_INT_EQ(out.kind, RELAY_MSG_NONE);
    m = commit(0x1234, 0x1300);
    CHECK_INT_EQ(decode(d, &m, &out), HF_OK);
    CHECK_INT_EQ(out.kind, RELAY_MSG_COMMIT);
    CHECK(out.lsn == 0x1300);
    relay_decoder_free(d);
}

static void test_refusals(void)
{
    relay_decoder_t *d = relay_decoder_new();
    relay_msg_t out;
    msg_t rel = relation(16400, "holdfast", "events");
    CHECK_INT_EQ(decode(d, &rel, &out), HF_OK);
    /* an insert outside a transaction */
    msg_t m = insert(16400, "a", 0, NULL, "x");
    CHECK_INT_EQ(decode(d, &m, &out), HF_ERR_INVALID);
    /* a commit matching no begin */
    m = commit(1, 2);
    CHECK_INT_EQ(decode(d, &m, &out), HF_ERR_INVALID);
    m = begin(0x10, 0);
    CHECK_INT_EQ(decode(d, &m, &out), HF_OK);
    /* an invalid channel name cannot be ours */
    m = insert(16400, "bad channel", 0, NULL, "x");
    CHECK_INT_EQ(decode(d, &m, &out), HF_ERR_INVALID);
    /* every truncation of a valid insert is refused, never read past */
    msg_t full = insert(16400, "a", 0, NULL, "payload");
    for (size_t len = 1; len < full.n; len++) {
        uint8_t *copy = hf_malloc(len);
        memcpy(copy, full.b, len);
        char err[256];
        CHECK_INT_EQ(relay_decode(d, copy, len, &out, err, sizeof err), HF_ERR_INVALID);
        hf_free(copy);
    }
    /* an empty message */
    char err[256];
    CHECK_INT_EQ(relay_decode(d, (const uint8_t *)"", 0, &out, err, sizeof err), HF_ERR_INVALID);
    /* a Relation of holdfast.events without a required column, or with a wrong type */
    relay_decoder_t *d2 = relay_decoder_new();
    msg_t bad = {.n = 0};
    put8(&bad, 'R');
    put32(&bad, 1);
    putstr(&bad, "holdfast");
    putstr(&bad, "events");
    put8(&bad, 'd');
    put16(&bad, 1);
    put8(&bad, 1);
    putstr(&bad, "id");
    put32(&bad, 25); /* text, not uuid */
    put32(&bad, 0);
    CHECK_INT_EQ(decode(d2, &bad, &out), HF_ERR_INVALID);
    relay_decoder_free(d2);
    /* a message type the relay does not use is skipped */
    m = (msg_t){.n = 0};
    put8(&m, 'Y');
    put32(&m, 5);
    CHECK_INT_EQ(decode(d, &m, &out), HF_OK);
    CHECK_INT_EQ(out.kind, RELAY_MSG_NONE);
    relay_decoder_free(d);
}

/* 'infinity' (INT64_MAX µs) would overflow on the shift to the Unix epoch. */
static void test_infinite_commit_time(void)
{
    relay_decoder_t *d = relay_decoder_new();
    relay_msg_t out;
    msg_t m = begin(0x20, INT64_MAX);
    CHECK_INT_EQ(decode(d, &m, &out), HF_OK);
    CHECK(out.commit_us == INT64_MAX);
    relay_decoder_free(d);
}

int main(void)
{
    test_events_in_order();
    test_infinite_commit_time();
    test_refusals();
    CHECK_MAIN_END();
}
