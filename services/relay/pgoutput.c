/* pgoutput.c - decoding the messages of PostgreSQL's pgoutput plugin.
 *
 * The relay asks for protocol version 1 with binary values, publication
 * holdfast_events (inserts into holdfast.events only). It needs Begin (the
 * transaction's commit LSN and time), Relation (which columns the events
 * table sends, by name, so added or dropped columns never shift a value),
 * Insert and Commit; anything else is skipped. The format is PostgreSQL's
 * "Logical Replication Message Formats". Nothing here does I/O: the input
 * is one message as the walsender sent it, so the decoder is unit tested
 * and fuzzed like any parser of outside input. */
#include <endian.h>
#include <stdio.h>
#include <string.h>

#include "holdfast/alloc.h"
#include "holdfast/channel.h"
#include "holdfast/envelope.h"
#include "holdfast/uuid.h"
#include "relay.h"

/* PostgreSQL's epoch (2000-01-01) in Unix microseconds. */
#define PG_EPOCH_UNIX_US 946684800000000LL

/* PostgreSQL µs since 2000 to Unix µs. 'infinity' (INT64_MAX) stays at the
 * top of the range rather than wrapping: a row someone stamped so is still
 * an event to relay, not a reason to stop the stream. */
static int64_t pg_time_to_unix_us(uint64_t pg_raw)
{
    int64_t unix_us;
    if (__builtin_add_overflow((int64_t)pg_raw, PG_EPOCH_UNIX_US, &unix_us))
        return INT64_MAX;
    return unix_us;
}

/* Type oids of the columns the relay reads (pg_type.dat). */
#define OID_BYTEA       17
#define OID_INT4        23
#define OID_TEXT        25
#define OID_TIMESTAMPTZ 1184
#define OID_UUID        2950

enum {
    COL_ID,
    COL_CHANNEL,
    COL_PARTITION,
    COL_TYPE,
    COL_PAYLOAD,
    COL_CONTENT_TYPE,
    COL_CREATED,
    NCOLS
};

static const struct {
    const char *name;
    uint32_t oid;
    bool required;
} decoder_columns[NCOLS] = {
    [COL_ID] = {"id", OID_UUID, true},
    [COL_CHANNEL] = {"channel", OID_TEXT, true},
    [COL_PARTITION] = {"partition", OID_INT4, true},
    [COL_TYPE] = {"type", OID_TEXT, false},
    [COL_PAYLOAD] = {"payload", OID_BYTEA, true},
    [COL_CONTENT_TYPE] = {"content_type", OID_TEXT, false},
    [COL_CREATED] = {"created_at", OID_TIMESTAMPTZ, true},
};

#define DECODER_MAX_ATTS 1600 /* PostgreSQL's MaxHeapAttributeNumber */

struct relay_decoder {
    uint32_t relid;   /* holdfast.events as the stream names it; 0 before its Relation */
    int natts;        /* columns the stream sends for it */
    int col[NCOLS];   /* position of each column we read, -1 when absent */
    bool in_txn;      /* between Begin and Commit */
    uint64_t txn_lsn; /* the open transaction's commit LSN */
    int64_t txn_us;   /* its commit time, Unix µs */
    int32_t txn_ord;  /* events of it decoded so far */
};

/* A bounds-checked reader over one message. */
typedef struct reader {
    const uint8_t *p, *end;
    bool bad;
} reader_t;

static bool rd_need(reader_t *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return false;
    }
    return true;
}

static uint8_t rd_u8(reader_t *r)
{
    return rd_need(r, 1) ? *r->p++ : 0;
}

static uint16_t rd_u16(reader_t *r)
{
    uint16_t v = 0;
    if (rd_need(r, 2)) {
        memcpy(&v, r->p, 2);
        r->p += 2;
    }
    return be16toh(v);
}

static uint32_t rd_u32(reader_t *r)
{
    uint32_t v = 0;
    if (rd_need(r, 4)) {
        memcpy(&v, r->p, 4);
        r->p += 4;
    }
    return be32toh(v);
}

static uint64_t rd_u64(reader_t *r)
{
    uint64_t v = 0;
    if (rd_need(r, 8)) {
        memcpy(&v, r->p, 8);
        r->p += 8;
    }
    return be64toh(v);
}

/* A NUL-terminated string inside the message. */
static const char *rd_str(reader_t *r)
{
    if (r->bad)
        return "";
    const uint8_t *nul = memchr(r->p, 0, (size_t)(r->end - r->p));
    if (!nul) {
        r->bad = true;
        return "";
    }
    const char *s = (const char *)r->p;
    r->p = nul + 1;
    return s;
}

relay_decoder_t *relay_decoder_new(void)
{
    relay_decoder_t *d = hf_calloc(1, sizeof *d);
    for (int i = 0; i < NCOLS; i++)
        d->col[i] = -1;
    return d;
}

void relay_decoder_free(relay_decoder_t *d)
{
    hf_free(d);
}

static hf_err_t decoder_fail(char *err, size_t err_size, const char *what)
{
    snprintf(err, err_size, "pgoutput: %s", what);
    return HF_ERR_INVALID;
}

static hf_err_t decode_relation(relay_decoder_t *d, reader_t *r, char *err, size_t err_size)
{
    uint32_t relid = rd_u32(r);
    const char *nspname = rd_str(r), *relname = rd_str(r);
    (void)rd_u8(r); /* replica identity */
    int natts = rd_u16(r);
    if (r->bad)
        return decoder_fail(err, err_size, "truncated Relation message");
    if (strcmp(nspname, "holdfast") != 0 || strcmp(relname, "events") != 0)
        return HF_OK; /* not ours; its inserts are skipped by relid */
    if (natts > DECODER_MAX_ATTS)
        return decoder_fail(err, err_size, "Relation with too many columns");
    int col[NCOLS];
    for (int i = 0; i < NCOLS; i++)
        col[i] = -1;
    for (int a = 0; a < natts; a++) {
        (void)rd_u8(r); /* flags */
        const char *name = rd_str(r);
        uint32_t oid = rd_u32(r);
        (void)rd_u32(r); /* type modifier */
        for (int i = 0; i < NCOLS && !r->bad; i++) {
            if (strcmp(name, decoder_columns[i].name) != 0)
                continue;
            if (oid != decoder_columns[i].oid) {
                snprintf(err, err_size, "pgoutput: holdfast.events.%s has type oid %u, not %u",
                         name, oid, decoder_columns[i].oid);
                return HF_ERR_INVALID;
            }
            col[i] = a;
        }
    }
    if (r->bad)
        return decoder_fail(err, err_size, "truncated Relation message");
    for (int i = 0; i < NCOLS; i++)
        if (decoder_columns[i].required && col[i] < 0) {
            snprintf(err, err_size, "pgoutput: holdfast.events has no column %s",
                     decoder_columns[i].name);
            return HF_ERR_INVALID;
        }
    d->relid = relid;
    d->natts = natts;
    memcpy(d->col, col, sizeof col);
    return HF_OK;
}

/* One column value of a TupleData: its bytes, or NULL for SQL NULL. */
typedef struct tuple_value {
    const uint8_t *data;
    uint32_t len;
    bool null;
} tuple_value_t;

static hf_err_t decode_tuple(relay_decoder_t *d, reader_t *r, tuple_value_t *vals, char *err,
                             size_t err_size)
{
    int natts = rd_u16(r);
    if (!r->bad && natts != d->natts)
        return decoder_fail(err, err_size, "Insert with another column count than its Relation");
    for (int a = 0; a < natts && !r->bad; a++) {
        uint8_t kind = rd_u8(r);
        tuple_value_t v = {.null = true};
        if (kind == 'b' || kind == 't') {
            v.len = rd_u32(r);
            if (rd_need(r, v.len)) {
                v.data = r->p;
                v.null = false;
                r->p += v.len;
            }
        } else if (kind != 'n') {
            return decoder_fail(err, err_size, "Insert with an unchanged or unknown value kind");
        }
        for (int i = 0; i < NCOLS; i++)
            if (d->col[i] == a)
                vals[i] = v;
    }
    return r->bad ? decoder_fail(err, err_size, "truncated Insert message") : HF_OK;
}

static bool value_text_ok(const tuple_value_t *v)
{
    return !v->null && memchr(v->data, 0, v->len) == NULL;
}

/* The event of an Insert into holdfast.events; the caller owns it. */
static hf_err_t decode_event(relay_decoder_t *d, const tuple_value_t *v, relay_event_t **out,
                             char *err, size_t err_size)
{
    const tuple_value_t *id = &v[COL_ID], *ch = &v[COL_CHANNEL], *part = &v[COL_PARTITION],
                        *type = &v[COL_TYPE], *ct = &v[COL_CONTENT_TYPE], *pl = &v[COL_PAYLOAD],
                        *created = &v[COL_CREATED];
    if (id->null || id->len != 16 || part->null || part->len != 4 || created->null ||
        created->len != 8 || pl->null)
        return decoder_fail(err, err_size, "events row with a missing or malformed value");
    if (!value_text_ok(ch) || hf_channel_validate((const char *)ch->data, ch->len, NULL) != HF_OK)
        return decoder_fail(err, err_size, "events row with an invalid channel");
    bool has_type = d->col[COL_TYPE] >= 0 && !type->null;
    bool has_ct = d->col[COL_CONTENT_TYPE] >= 0 && !ct->null;
    if ((has_type && !value_text_ok(type)) || (has_ct && !value_text_ok(ct)))
        return decoder_fail(err, err_size, "events row with a malformed type or content type");
    uint32_t p;
    memcpy(&p, part->data, 4);
    int32_t partition = (int32_t)be32toh(p);
    if (partition < 0 || partition >= RELAY_MAX_PARTITIONS)
        return decoder_fail(err, err_size, "events row with a partition out of range");
    static const char json[] = "application/json";
    const uint8_t *ct_data = has_ct ? ct->data : (const uint8_t *)json;
    size_t ct_len = has_ct ? ct->len : sizeof json - 1;
    char *channel, *ev_type, *content_type;
    uint8_t *payload;
    relay_event_t *ev = relay_event_new(ch->len, has_type ? type->len : 0, ct_len, pl->len,
                                        &channel, &ev_type, &content_type, &payload);
    memcpy(channel, ch->data, ch->len);
    if (has_type)
        memcpy(ev_type, type->data, type->len);
    else
        ev->type = NULL;
    memcpy(content_type, ct_data, ct_len);
    if (pl->len)
        memcpy(payload, pl->data, pl->len);
    hf_uuid_format(id->data, ev->id);
    ev->partition = partition;
    uint64_t c;
    memcpy(&c, created->data, 8);
    ev->created_at_us = pg_time_to_unix_us(be64toh(c));
    ev->pos.lsn = d->txn_lsn;
    ev->pos.ord = d->txn_ord++;
    ev->commit_us = d->txn_us;
    *out = ev;
    return HF_OK;
}

static hf_err_t decode_insert(relay_decoder_t *d, reader_t *r, relay_msg_t *out, char *err,
                              size_t err_size)
{
    uint32_t relid = rd_u32(r);
    uint8_t marker = rd_u8(r);
    if (r->bad || marker != 'N')
        return decoder_fail(err, err_size, "malformed Insert message");
    if (d->relid == 0 || relid != d->relid)
        return HF_OK; /* another table */
    if (!d->in_txn)
        return decoder_fail(err, err_size, "Insert outside a transaction");
    tuple_value_t vals[NCOLS];
    memset(vals, 0, sizeof vals);
    for (int i = 0; i < NCOLS; i++)
        vals[i].null = true;
    hf_err_t rc = decode_tuple(d, r, vals, err, err_size);
    if (rc == HF_OK)
        rc = decode_event(d, vals, &out->event, err, err_size);
    if (rc == HF_OK)
        out->kind = RELAY_MSG_EVENT;
    return rc;
}

hf_err_t relay_decode(relay_decoder_t *d, const uint8_t *msg, size_t len, relay_msg_t *out,
                      char *err, size_t err_size)
{
    memset(out, 0, sizeof *out);
    if (len == 0)
        return decoder_fail(err, err_size, "empty message");
    reader_t r = {.p = msg, .end = msg + len};
    uint8_t type = rd_u8(&r);
    switch (type) {
    case 'B': {
        uint64_t lsn = rd_u64(&r);
        uint64_t pg_us = rd_u64(&r);
        (void)rd_u32(&r); /* xid */
        if (r.bad)
            return decoder_fail(err, err_size, "truncated Begin message");
        d->txn_lsn = lsn;
        d->txn_us = pg_time_to_unix_us(pg_us);
        d->in_txn = true;
        d->txn_ord = 0;
        out->kind = RELAY_MSG_BEGIN;
        out->lsn = d->txn_lsn;
        out->commit_us = d->txn_us;
        return HF_OK;
    }
    case 'C': {
        (void)rd_u8(&r); /* flags */
        uint64_t commit_lsn = rd_u64(&r), end_lsn = rd_u64(&r);
        (void)rd_u64(&r); /* commit time, as in Begin */
        if (r.bad)
            return decoder_fail(err, err_size, "truncated Commit message");
        if (!d->in_txn || commit_lsn != d->txn_lsn)
            return decoder_fail(err, err_size, "Commit that matches no Begin");
        d->in_txn = false;
        out->kind = RELAY_MSG_COMMIT;
        out->lsn = end_lsn;
        out->commit_us = d->txn_us;
        return HF_OK;
    }
    case 'R':
        return decode_relation(d, &r, err, err_size);
    case 'I':
        return decode_insert(d, &r, out, err, err_size);
    default:
        return HF_OK; /* Type, Origin, Truncate, Message, ...: nothing for the relay */
    }
}
