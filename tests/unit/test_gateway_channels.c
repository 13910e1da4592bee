/* test_gateway_channels.c - the chain rule of services/gateway/channels.c
 * in isolation.
 *
 * channels.c is linked from the gateway library as it ships; the modules
 * it talks to (connections, the Kafka reader, the Redis subscriber, the
 * clock) are replaced by the definitions below, which record what
 * channels.c asked of them: every event delivered, to which connection,
 * with which prev_offset; every "subscribed"; every need, catch-up and
 * release sent to the Kafka reader. Since this file defines every symbol
 * channels.c takes from conn.c, kafka_scan.c and redis_sub.c, the linker
 * never pulls those objects out of the library. The test drives channels.c
 * only through its public entry points: gw_sub_create(), messages pushed
 * into a real inbox and handled by gw_inbox_dispatch(), and
 * gw_channels_tick() for the hand-back grace. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gateway.h"
#include "holdfast/alloc.h"
#include "holdfast/partition.h"

#define PARTITIONS 4

/* ---- what channels.c asked for ------------------------------------------- */

typedef struct delivery {
    const gw_conn_t *conn;
    int64_t offset;
    int64_t prev;
    char id[40];
} delivery_t;

typedef struct subscribed_msg {
    const gw_conn_t *conn;
    int64_t offset;
    bool recovered;
    char epoch[HF_PROTO_EPOCH_MAX + 1];
} subscribed_msg_t;

typedef struct kafka_cmd {
    enum { CMD_PROBE, CMD_NEED, CMD_CATCHUP, CMD_RELEASE } kind;
    int reader;
    int32_t partition;
    int64_t from;
    uint64_t token;
} kafka_cmd_t;

static delivery_t deliveries[1024];
static size_t ndeliveries;
static subscribed_msg_t subscribeds[64];
static size_t nsubscribeds;
static kafka_cmd_t cmds[256];
static size_t ncmds;
static int64_t fake_now_us = 1000000;
static bool replay_room = true;

struct gw_event_frames {
    int64_t offset;
    char id[40];
};

gw_event_frames_t *gw_event_frames_new(const hf_envelope_t *env, int64_t offset)
{
    gw_event_frames_t *fr = hf_calloc(1, sizeof *fr);
    fr->offset = offset;
    size_t n = env->id_len < sizeof fr->id - 1 ? env->id_len : sizeof fr->id - 1;
    memcpy(fr->id, env->id, n);
    return fr;
}

void gw_event_frames_free(gw_event_frames_t *frames)
{
    hf_free(frames);
}

void gw_conn_deliver(gateway_t *gw, gw_sub_t *sub, gw_event_frames_t *frames, int64_t prev)
{
    (void)gw;
    if (ndeliveries == sizeof deliveries / sizeof deliveries[0])
        abort();
    delivery_t *d = &deliveries[ndeliveries++];
    d->conn = sub->conn;
    d->offset = frames->offset;
    d->prev = prev;
    memcpy(d->id, frames->id, sizeof d->id);
}

void gw_conn_send_subscribed(gateway_t *gw, gw_conn_t *conn, gw_sub_t *sub, bool recovered)
{
    if (nsubscribeds == sizeof subscribeds / sizeof subscribeds[0])
        abort();
    subscribed_msg_t *m = &subscribeds[nsubscribeds++];
    m->conn = conn;
    m->offset = sub->last;
    m->recovered = recovered;
    snprintf(m->epoch, sizeof m->epoch, "%s", gw->partitions[sub->channel->partition].epoch);
    hf_free(sub->req_id);
    sub->req_id = NULL;
}

void gw_conn_send_error(gateway_t *gw, gw_conn_t *conn, const char *code, const char *channel,
                        const char *message, const gw_req_id_t *id, int64_t retry_after_ms)
{
    (void)gw, (void)conn, (void)code, (void)channel, (void)message, (void)id;
    (void)retry_after_ms;
}

bool gw_conn_room_for_replay(const gateway_t *gw, gw_conn_t *conn)
{
    (void)gw, (void)conn;
    return replay_room;
}

void gw_conn_adopt(gateway_t *gw, int fd)
{
    (void)gw, (void)fd;
}

static void record_cmd(int kind, int reader, int32_t partition, int64_t from, uint64_t token)
{
    if (ncmds == sizeof cmds / sizeof cmds[0])
        abort();
    cmds[ncmds++] = (kafka_cmd_t){kind, reader, partition, from, token};
}

void gw_kafka_probe(gw_kafka_t *kafka, int32_t partition, uint64_t token)
{
    (void)kafka;
    record_cmd(CMD_PROBE, -1, partition, -1, token);
}

void gw_kafka_need(gw_kafka_t *kafka, int reader, int32_t partition, int64_t from, uint64_t token)
{
    (void)kafka;
    record_cmd(CMD_NEED, reader, partition, from, token);
}

void gw_kafka_catchup(gw_kafka_t *kafka, int32_t partition, uint64_t token)
{
    (void)kafka;
    record_cmd(CMD_CATCHUP, -1, partition, -1, token);
}

void gw_kafka_release(gw_kafka_t *kafka, int reader, int32_t partition)
{
    (void)kafka;
    record_cmd(CMD_RELEASE, reader, partition, -1, 0);
}

void gw_kafka_deep_done(gw_kafka_t *kafka, size_t len)
{
    (void)kafka, (void)len;
}

void gw_redis_want(gw_redis_t *redis, const char *channel, bool want)
{
    (void)redis, (void)channel, (void)want;
}

int64_t gw_now_us(void)
{
    return fake_now_us;
}

/* ---- the world ------------------------------------------------------------ */

static gateway_t gw;
static hf_metrics_t *registry;

static void world_begin(void)
{
    memset(&gw, 0, sizeof gw);
    ndeliveries = nsubscribeds = ncmds = 0;
    fake_now_us = 1000000;
    replay_room = true;
    registry = hf_metrics_new();
    /* every field of gateway_metrics_t is a metric; the latency one a histogram */
    hf_metric_t **m = (hf_metric_t **)&gw.m;
    for (size_t i = 0; i < sizeof gw.m / sizeof *m; i++) {
        char name[32];
        snprintf(name, sizeof name, "t_%zu", i);
        m[i] = hf_metrics_counter(registry, name, NULL, "test");
    }
    gw.m.latency = hf_metrics_histogram(registry, "t_latency", NULL, "test", NULL, 0);
    gw.cfg.kafka_deep_after = 10000;
    gw.cfg.redis_handback_grace_ms = 1500;
    gw.inbox = gw_inbox_new(1 << 20);
    gw_channels_init(&gw, PARTITIONS);
}

static void world_end(void)
{
    gw_channels_free(&gw);
    gw_inbox_free(gw.inbox);
    hf_metrics_free(registry);
}

static int32_t part(const char *channel)
{
    return hf_partition_for(channel, strlen(channel), PARTITIONS);
}

static void push(gw_msg_t *m)
{
    gw_inbox_push(gw.inbox, m);
    gw_inbox_dispatch(&gw);
}

static gw_msg_t *envelope_msg(gw_msg_kind_t kind, const char *channel, const char *id,
                              int64_t offset, int64_t prev, const char *epoch)
{
    hf_envelope_t env;
    hf_envelope_init(&env);
    env.id = id;
    env.id_len = strlen(id);
    env.channel = channel;
    env.channel_len = strlen(channel);
    env.payload = (const uint8_t *)"{}";
    env.payload_len = 2;
    env.content_type = "application/json";
    env.content_type_len = strlen(env.content_type);
    env.epoch = epoch;
    env.epoch_len = epoch ? strlen(epoch) : 0;
    env.partition = part(channel);
    env.offset = offset;
    env.prev_offset = prev;
    hf_buf_t buf = HF_BUF_INIT;
    if (hf_envelope_encode(&env, &buf) != HF_OK)
        abort();
    gw_msg_t *m = gw_msg_new(kind, NULL, buf.data, buf.len);
    hf_buf_free(&buf);
    return m;
}

/* An event published on Redis (the relay stamped offset and prev_offset). */
static void redis_event(const char *channel, const char *id, int64_t offset, int64_t prev,
                        const char *epoch)
{
    push(envelope_msg(GW_MSG_REDIS_EVENT, channel, id, offset, prev, epoch));
}

/* A record the Kafka reader forwarded: its value knows no position. */
static void kafka_record(int reader, const char *channel, const char *id, int64_t offset,
                         const char *epoch)
{
    gw_msg_t *m = envelope_msg(GW_MSG_KAFKA_RECORD, channel, id, -1, -1, epoch);
    m->reader = reader;
    m->partition = part(channel);
    m->offset = offset;
    push(m);
}

static void control(gw_msg_kind_t kind, const char *text)
{
    push(gw_msg_new(kind, text, NULL, 0));
}

static void scanning(int reader, int32_t partition, uint64_t token)
{
    gw_msg_t *m = gw_msg_new(GW_MSG_KAFKA_SCANNING, NULL, NULL, 0);
    m->reader = reader;
    m->partition = partition;
    m->token = token;
    push(m);
}

static void caught_up(int32_t partition, uint64_t token, int64_t log_end)
{
    gw_msg_t *m = gw_msg_new(GW_MSG_KAFKA_CAUGHT_UP, NULL, NULL, 0);
    m->reader = GW_READER_LIVE;
    m->partition = partition;
    m->token = token;
    m->offset = log_end;
    push(m);
}

static void heads(const char *epoch, int32_t partition, int64_t offset)
{
    gw_head_t h = {partition, offset};
    push(gw_msg_new(GW_MSG_REDIS_HEADS, epoch, &h, sizeof h));
}

/* The last command of that kind sent to the Kafka reader; NULL: none
 * since the index `since`. */
static const kafka_cmd_t *last_cmd(int kind, size_t since)
{
    for (size_t i = ncmds; i > since; i--)
        if ((int)cmds[i - 1].kind == kind)
            return &cmds[i - 1];
    return NULL;
}

/* A connection subscribed to channel, placed at the log end high - 1
 * (or, with since >= -1, resumed from since in epoch), Redis confirming
 * the channel first as it does in the gateway. */
static gw_sub_t *subscribe(gw_conn_t *conn, const char *channel, int64_t low, int64_t high,
                           const char *epoch, int64_t since)
{
    conn->gw = &gw;
    gw_request_t req;
    memset(&req, 0, sizeof req);
    req.type = GW_REQ_SUBSCRIBE;
    snprintf(req.channel, sizeof req.channel, "%s", channel);
    if (since >= -1) {
        req.has_since = true;
        req.since_offset = since;
        snprintf(req.since_epoch, sizeof req.since_epoch, "%s", epoch);
    }
    gw_sub_t *sub = gw_sub_create(&gw, conn, &req);
    if (sub->state == GW_SUB_WAIT_REDIS)
        control(GW_MSG_REDIS_SUBSCRIBED, channel);
    const kafka_cmd_t *probe = last_cmd(CMD_PROBE, 0);
    CHECK(probe != NULL);
    CHECK_INT_EQ(sub->state, GW_SUB_PROBING);
    gw_msg_t *m = gw_msg_new(GW_MSG_KAFKA_PROBED, epoch, NULL, 0);
    m->partition = part(channel);
    m->token = probe ? probe->token : 0;
    m->ok = true;
    m->low = low;
    m->high = high;
    push(m);
    CHECK_INT_EQ(sub->state, GW_SUB_ACTIVE);
    return sub;
}

/* The offsets delivered to conn, in order, as a string "10 11 12". */
static const char *delivered(const gw_conn_t *conn)
{
    static char out[4096];
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < ndeliveries; i++)
        if (deliveries[i].conn == conn)
            n += (size_t)snprintf(out + n, sizeof out - n, "%s%lld", n ? " " : "",
                                  (long long)deliveries[i].offset);
    return out;
}

/* The prev_offsets of those deliveries, likewise. */
static const char *delivered_prev(const gw_conn_t *conn)
{
    static char out[4096];
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < ndeliveries; i++)
        if (deliveries[i].conn == conn)
            n += (size_t)snprintf(out + n, sizeof out - n, "%s%lld", n ? " " : "",
                                  (long long)deliveries[i].prev);
    return out;
}

static void redis_up(void)
{
    control(GW_MSG_REDIS_UP, NULL);
}

/* ---- cases ---------------------------------------------------------------- */

/* offset <= last: already delivered, dropped and counted. */
static void test_duplicate(void)
{
    world_begin();
    redis_up();
    gw_conn_t a = {0};
    gw_sub_t *s = subscribe(&a, "dup:1", 0, 10, "e1", -2);
    CHECK_INT_EQ(s->last, 9);
    CHECK_INT_EQ(nsubscribeds, 1);
    CHECK(!subscribeds[0].recovered);
    redis_event("dup:1", "id-10", 10, 4, "e1");
    redis_event("dup:1", "id-10", 10, 4, "e1"); /* a duplicate (offset == last) */
    redis_event("dup:1", "id-8", 8, 3, "e1");   /* older than last */
    CHECK_STR_EQ(delivered(&a), "10");
    CHECK_INT_EQ(s->last, 10);
    CHECK_INT_EQ(hf_counter_value(gw.m.duplicates), 2);
    CHECK_INT_EQ(hf_counter_value(gw.m.gaps), 0);
    CHECK(last_cmd(CMD_NEED, 0) == NULL);
    gw_sub_destroy(&gw, s);
    world_end();
}

/* prev_offset <= last: the next one, delivered; last (and the prev given
 * to the client) advance with it. */
static void test_next_in_line(void)
{
    world_begin();
    redis_up();
    gw_conn_t a = {0}, b = {0};
    gw_sub_t *sa = subscribe(&a, "next:1", 0, 10, "e1", -2);
    gw_sub_t *sb = subscribe(&b, "next:1", 0, 10, "e1", -2);
    redis_event("next:1", "id-10", 10, 9, "e1"); /* prev == last */
    redis_event("next:1", "id-13", 13, 10, "e1");
    redis_event("next:1", "id-14", 14, 13, "e1");
    CHECK_STR_EQ(delivered(&a), "10 13 14");
    CHECK_STR_EQ(delivered_prev(&a), "9 10 13");
    CHECK_STR_EQ(delivered(&b), "10 13 14");
    CHECK_INT_EQ(sa->last, 14);
    CHECK_INT_EQ(sa->last_event, 14);
    CHECK_INT_EQ(sb->last, 14);
    CHECK_INT_EQ(hf_counter_value(gw.m.delivered_redis), 6);
    CHECK_INT_EQ(hf_counter_value(gw.m.duplicates), 0);
    CHECK(last_cmd(CMD_NEED, 0) == NULL);
    gw_sub_destroy(&gw, sa);
    gw_sub_destroy(&gw, sb);
    world_end();
}

/* prev_offset > last: a gap. Nothing more from Redis; the partition is
 * read from Kafka from last + 1, and its records are delivered only once
 * the scan answered the need (kafka_ok). */
static void test_gap(void)
{
    world_begin();
    redis_up();
    gw_conn_t a = {0};
    gw_sub_t *s = subscribe(&a, "gap:1", 0, 10, "e1", -2);
    int32_t p = part("gap:1");
    size_t mark = ncmds;
    redis_event("gap:1", "id-15", 15, 12, "e1"); /* 12 is missing */
    CHECK_STR_EQ(delivered(&a), "");
    CHECK_INT_EQ(s->fill_until, 15);
    CHECK_INT_EQ(hf_counter_value(gw.m.gaps), 1);
    const kafka_cmd_t *need = last_cmd(CMD_NEED, mark);
    CHECK(need != NULL);
    if (!need)
        goto out;
    CHECK_INT_EQ(need->reader, GW_READER_LIVE);
    CHECK_INT_EQ(need->partition, p);
    CHECK_INT_EQ(need->from, 10);
    uint64_t token = need->token;
    redis_event("gap:1", "id-17", 17, 15, "e1"); /* still waiting for Kafka */
    CHECK_INT_EQ(s->fill_until, 17);
    CHECK_INT_EQ(hf_counter_value(gw.m.gaps), 1);
    /* a record forwarded before the scan answered may follow on from
     * anywhere: not delivered */
    kafka_record(GW_READER_LIVE, "gap:1", "id-12", 12, "e1");
    CHECK_STR_EQ(delivered(&a), "");
    scanning(GW_READER_LIVE, p, token);
    CHECK(s->kafka_ok);
    kafka_record(GW_READER_LIVE, "other:1", "id-o", 10, "e1");
    kafka_record(GW_READER_LIVE, "gap:1", "id-12", 12, "e1");
    kafka_record(GW_READER_LIVE, "gap:1", "id-15", 15, "e1");
    kafka_record(GW_READER_LIVE, "gap:1", "id-15", 15, "e1"); /* offset == last */
    CHECK_STR_EQ(delivered(&a), "12 15");
    CHECK_STR_EQ(delivered_prev(&a), "-2 12");
    mark = ncmds;
    kafka_record(GW_READER_LIVE, "gap:1", "id-17", 17, "e1");
    CHECK_STR_EQ(delivered(&a), "12 15 17");
    CHECK_INT_EQ(s->fill_until, -1);
    const kafka_cmd_t *rel = last_cmd(CMD_RELEASE, mark);
    CHECK(rel != NULL && rel->partition == p);
    CHECK(!s->kafka_ok);
    /* back on Redis */
    redis_event("gap:1", "id-17", 17, 15, "e1");
    redis_event("gap:1", "id-20", 20, 17, "e1");
    kafka_record(GW_READER_LIVE, "gap:1", "id-21", 21, "e1"); /* released: ignored */
    CHECK_STR_EQ(delivered(&a), "12 15 17 20");
    CHECK_INT_EQ(hf_counter_value(gw.m.delivered_kafka), 3);
    CHECK_INT_EQ(hf_counter_value(gw.m.duplicates), 1);
out:
    gw_sub_destroy(&gw, s);
    world_end();
}

/* Redis lost, then subscribed again: the subscriptions tail Kafka, a
 * catch-up is asked when Redis confirms the channel, and the events that
 * come both ways across the seam are delivered once, in order. The
 * relay's heartbeat after the confirmation ends the tailing once the
 * catch-up is done. */
static void test_resubscribe_seam(void)
{
    world_begin();
    redis_up();
    gw_conn_t a = {0};
    gw_sub_t *s = subscribe(&a, "seam:1", 0, 10, "e1", -2);
    int32_t p = part("seam:1");
    redis_event("seam:1", "id-10", 10, 9, "e1");
    size_t mark = ncmds;
    control(GW_MSG_REDIS_DOWN, NULL);
    CHECK(s->tail);
    CHECK_INT_EQ(hf_counter_value(gw.m.fallbacks), 1);
    const kafka_cmd_t *need = last_cmd(CMD_NEED, mark);
    CHECK(need != NULL);
    if (!need)
        goto out;
    CHECK_INT_EQ(need->from, 11);
    scanning(GW_READER_LIVE, p, need->token);
    kafka_record(GW_READER_LIVE, "seam:1", "id-11", 11, "e1");
    kafka_record(GW_READER_LIVE, "seam:1", "id-12", 12, "e1");
    /* Redis back: the channel is confirmed again, a catch-up is asked */
    redis_up();
    mark = ncmds;
    control(GW_MSG_REDIS_SUBSCRIBED, "seam:1");
    const kafka_cmd_t *cu = last_cmd(CMD_CATCHUP, mark);
    CHECK(cu != NULL);
    if (!cu)
        goto out;
    uint64_t cu_token = cu->token;
    CHECK(s->tail); /* still tailing until the hand-back */
    /* across the seam: both ways, in either order */
    redis_event("seam:1", "id-12", 12, 11, "e1");
    redis_event("seam:1", "id-13", 13, 12, "e1");
    kafka_record(GW_READER_LIVE, "seam:1", "id-13", 13, "e1");
    kafka_record(GW_READER_LIVE, "seam:1", "id-14", 14, "e1");
    redis_event("seam:1", "id-14", 14, 13, "e1");
    CHECK_STR_EQ(delivered(&a), "10 11 12 13 14");
    /* the relay's heartbeat after the confirmation, then the catch-up */
    heads("e1", p, 14);
    CHECK(s->tail);
    mark = ncmds;
    caught_up(p, cu_token, 15);
    CHECK(!s->tail);
    CHECK_INT_EQ(hf_counter_value(gw.m.handbacks_heads), 1);
    CHECK(last_cmd(CMD_RELEASE, mark) != NULL);
    redis_event("seam:1", "id-15", 15, 14, "e1");
    kafka_record(GW_READER_LIVE, "seam:1", "id-15", 15, "e1");
    kafka_record(GW_READER_LIVE, "seam:1", "id-16", 16, "e1"); /* released: not read */
    CHECK_STR_EQ(delivered(&a), "10 11 12 13 14 15");
    CHECK_INT_EQ(s->last, 15);
out:
    gw_sub_destroy(&gw, s);
    world_end();
}

/* The hand-back after the catch-up: with no heartbeat from the relay the
 * subscription reads Kafka for the grace, then stops (via "grace"); a
 * heartbeat during the grace ends it at once (via "heads"). */
static void test_catchup_handback(void)
{
    world_begin();
    redis_up();
    gw_conn_t a = {0};
    gw_sub_t *s = subscribe(&a, "hb:1", 0, 10, "e1", -2);
    int32_t p = part("hb:1");
    size_t mark = ncmds;
    control(GW_MSG_REDIS_DOWN, NULL);
    const kafka_cmd_t *need = last_cmd(CMD_NEED, mark);
    CHECK(need != NULL);
    if (!need)
        goto out;
    scanning(GW_READER_LIVE, p, need->token);
    redis_up();
    mark = ncmds;
    control(GW_MSG_REDIS_SUBSCRIBED, "hb:1");
    const kafka_cmd_t *cu = last_cmd(CMD_CATCHUP, mark);
    CHECK(cu != NULL);
    if (!cu)
        goto out;
    kafka_record(GW_READER_LIVE, "hb:1", "id-10", 10, "e1");
    /* an older catch-up's answer does not count */
    caught_up(p, cu->token - 1, 11);
    CHECK(s->tail);
    CHECK_INT_EQ(gw.handbacks_pending, 0);
    caught_up(p, cu->token, 11);
    CHECK(s->tail); /* no heartbeat yet: the grace */
    CHECK_INT_EQ(gw.handbacks_pending, 1);
    gw_channels_tick(&gw, fake_now_us + 1500 * 1000 - 1);
    CHECK(s->tail);
    kafka_record(GW_READER_LIVE, "hb:1", "id-11", 11, "e1"); /* still read meanwhile */
    mark = ncmds;
    gw_channels_tick(&gw, fake_now_us + 1500 * 1000);
    CHECK(!s->tail);
    CHECK_INT_EQ(gw.handbacks_pending, 0);
    CHECK_INT_EQ(hf_counter_value(gw.m.handbacks_timer), 1);
    CHECK_INT_EQ(hf_counter_value(gw.m.handbacks_heads), 0);
    CHECK(last_cmd(CMD_RELEASE, mark) != NULL);
    CHECK_STR_EQ(delivered(&a), "10 11");

    /* again, and this time the heartbeat comes during the grace; it names
     * a head beyond the catch-up's target: that is read too */
    mark = ncmds;
    control(GW_MSG_REDIS_DOWN, NULL);
    need = last_cmd(CMD_NEED, mark);
    CHECK(need != NULL);
    if (!need)
        goto out;
    CHECK_INT_EQ(need->from, 12);
    scanning(GW_READER_LIVE, p, need->token);
    redis_up();
    mark = ncmds;
    control(GW_MSG_REDIS_SUBSCRIBED, "hb:1");
    cu = last_cmd(CMD_CATCHUP, mark);
    CHECK(cu != NULL);
    if (!cu)
        goto out;
    caught_up(p, cu->token, 12);
    CHECK(s->tail);
    CHECK_INT_EQ(gw.handbacks_pending, 1);
    heads("e1", p, 13);
    CHECK(!s->tail);
    CHECK_INT_EQ(gw.handbacks_pending, 0);
    CHECK_INT_EQ(hf_counter_value(gw.m.handbacks_heads), 1);
    CHECK_INT_EQ(s->fill_until, 13); /* the head the relay named */
    kafka_record(GW_READER_LIVE, "hb:1", "id-13", 13, "e1");
    CHECK_STR_EQ(delivered(&a), "10 11 13");
    CHECK_INT_EQ(s->fill_until, -1);
out:
    gw_sub_destroy(&gw, s);
    world_end();
}

/* A resume with since: recovered, and the events after it come from
 * Kafka before the live ones, each once. */
static void test_resume(void)
{
    world_begin();
    redis_up();
    gw_conn_t a = {0};
    gw_sub_t *s = subscribe(&a, "res:1", 0, 20, "e1", 15);
    int32_t p = part("res:1");
    CHECK_INT_EQ(nsubscribeds, 1);
    CHECK(subscribeds[0].recovered);
    CHECK_INT_EQ(subscribeds[0].offset, 15);
    CHECK_INT_EQ(s->fill_until, 19);
    const kafka_cmd_t *need = last_cmd(CMD_NEED, 0);
    CHECK(need != NULL);
    if (!need)
        goto out;
    CHECK_INT_EQ(need->from, 16);
    redis_event("res:1", "id-20", 20, 18, "e1"); /* live meanwhile */
    scanning(GW_READER_LIVE, p, need->token);
    kafka_record(GW_READER_LIVE, "res:1", "id-16", 16, "e1");
    kafka_record(GW_READER_LIVE, "res:1", "id-18", 18, "e1");
    kafka_record(GW_READER_LIVE, "res:1", "id-20", 20, "e1");
    redis_event("res:1", "id-21", 21, 20, "e1");
    CHECK_STR_EQ(delivered(&a), "16 18 20 21");
    CHECK_STR_EQ(delivered_prev(&a), "-2 16 18 20");
out:
    gw_sub_destroy(&gw, s);
    world_end();
}

/* The relay starts a new epoch (a reset log: offsets start again at 0,
 * chains at -1). A subscription continues in the new epoch from its
 * start, told by a "subscribed" with recovered:false, the new epoch and
 * offset -1, and gets every event of the new epoch once, in order: from
 * Redis, and from Kafka for what it missed of it. */
static void test_epoch_change(void)
{
    world_begin();
    redis_up();
    gw_conn_t a = {0}, b = {0};
    gw_sub_t *sb = NULL;
    gw_sub_t *sa = subscribe(&a, "ep:1", 0, 10, "e1", -2);
    redis_event("ep:1", "id-e1-10", 10, 9, "e1");
    CHECK_STR_EQ(sa->epoch, "e1");
    /* the log is reset: the new epoch's first events */
    redis_event("ep:1", "id-e2-0", 0, -1, "e2");
    CHECK_INT_EQ(nsubscribeds, 2);
    CHECK(!subscribeds[1].recovered);
    CHECK_INT_EQ(subscribeds[1].offset, -1);
    CHECK_STR_EQ(subscribeds[1].epoch, "e2");
    CHECK_STR_EQ(sa->epoch, "e2");
    CHECK_INT_EQ(hf_counter_value(gw.m.epoch_changes), 1);
    redis_event("ep:1", "id-e2-1", 1, 0, "e2");
    CHECK_STR_EQ(delivered(&a), "10 0 1");
    CHECK_STR_EQ(delivered_prev(&a), "9 -1 0");
    /* a gap in the new epoch is filled from Kafka as any other */
    int32_t p = part("ep:1");
    size_t mark = ncmds;
    redis_event("ep:1", "id-e2-4", 4, 2, "e2");
    const kafka_cmd_t *need = last_cmd(CMD_NEED, mark);
    CHECK(need != NULL);
    if (!need)
        goto out;
    CHECK_INT_EQ(need->from, 2);
    scanning(GW_READER_LIVE, p, need->token);
    kafka_record(GW_READER_LIVE, "ep:1", "id-e2-2", 2, "e2");
    kafka_record(GW_READER_LIVE, "ep:1", "id-e2-4", 4, "e2");
    CHECK_STR_EQ(delivered(&a), "10 0 1 2 4");
    CHECK_INT_EQ(nsubscribeds, 2);

    /* A subscription that missed the new epoch's first events on Redis
     * (it joined the channel's gap) reads them from Kafka: the new log
     * from its start. */
    redis_event("ep:2", "id-x", 30, 29, "e2"); /* no subscription yet: ignored */
    sb = subscribe(&b, "ep:2", 0, 31, "e2", -2);
    CHECK_INT_EQ(sb->last, 30);
    CHECK_STR_EQ(sb->epoch, "e2");
    mark = ncmds;
    redis_event("ep:2", "id-e3-3", 3, 1, "e3");
    CHECK_STR_EQ(sb->epoch, "e3");
    CHECK_INT_EQ(subscribeds[nsubscribeds - 1].offset, -1);
    CHECK_STR_EQ(subscribeds[nsubscribeds - 1].epoch, "e3");
    need = last_cmd(CMD_NEED, mark);
    CHECK(need != NULL);
    if (!need)
        goto out;
    CHECK_INT_EQ(need->from, 0);
    scanning(GW_READER_LIVE, part("ep:2"), need->token);
    kafka_record(GW_READER_LIVE, "ep:2", "id-e3-1", 1, "e3");
    kafka_record(GW_READER_LIVE, "ep:2", "id-e3-3", 3, "e3");
    redis_event("ep:2", "id-e3-5", 5, 3, "e3");
    CHECK_STR_EQ(delivered(&b), "1 3 5");
    CHECK_STR_EQ(delivered_prev(&b), "-2 1 3");
out:
    gw_sub_destroy(&gw, sa);
    if (sb)
        gw_sub_destroy(&gw, sb);
    world_end();
}

/* The same while Redis is down: the subscription tails Kafka, and the
 * reader, its offset gone from the reset log, starts at the new log's
 * first record: at or below `last`, in another epoch. The subscription
 * reads the new log from its start. */
static void test_epoch_change_kafka(void)
{
    world_begin();
    redis_up();
    gw_conn_t a = {0};
    gw_sub_t *s = subscribe(&a, "ek:1", 0, 10, "e1", -2);
    int32_t p = part("ek:1");
    size_t mark = ncmds;
    control(GW_MSG_REDIS_DOWN, NULL);
    const kafka_cmd_t *need = last_cmd(CMD_NEED, mark);
    CHECK(need != NULL);
    if (!need)
        goto out;
    scanning(GW_READER_LIVE, p, need->token);
    kafka_record(GW_READER_LIVE, "ek:1", "id-e1-10", 10, "e1");
    mark = ncmds;
    kafka_record(GW_READER_LIVE, "ek:1", "id-e2-0", 0, "e2");
    CHECK_STR_EQ(s->epoch, "e2");
    CHECK_INT_EQ(s->last, -1);
    CHECK_INT_EQ(nsubscribeds, 2);
    CHECK_INT_EQ(subscribeds[1].offset, -1);
    CHECK_STR_EQ(subscribeds[1].epoch, "e2");
    CHECK(!subscribeds[1].recovered);
    need = last_cmd(CMD_NEED, mark);
    CHECK(need != NULL);
    if (!need)
        goto out;
    CHECK_INT_EQ(need->from, 0);
    kafka_record(GW_READER_LIVE, "ek:1", "id-e2-1", 1, "e2"); /* before the answer */
    scanning(GW_READER_LIVE, p, need->token);
    kafka_record(GW_READER_LIVE, "ek:1", "id-e2-0", 0, "e2");
    kafka_record(GW_READER_LIVE, "ek:1", "id-e2-1", 1, "e2");
    kafka_record(GW_READER_LIVE, "ek:1", "id-e2-2", 2, "e2");
    CHECK_STR_EQ(delivered(&a), "10 0 1 2");
    CHECK_STR_EQ(delivered_prev(&a), "-2 -2 0 1");
    CHECK_INT_EQ(nsubscribeds, 2);
    gw_sub_destroy(&gw, s);
    world_end();

    /* Redis up, the subscription only filling a gap (not tailing) when
     * the reset shows: it still reads the new log from its start. */
    world_begin();
    redis_up();
    s = subscribe(&a, "ek:1", 0, 10, "e1", -2);
    mark = ncmds;
    redis_event("ek:1", "id-e1-12", 12, 11, "e1");
    need = last_cmd(CMD_NEED, mark);
    CHECK(need != NULL);
    if (!need)
        goto out;
    scanning(GW_READER_LIVE, p, need->token);
    mark = ncmds;
    kafka_record(GW_READER_LIVE, "ek:1", "id-e2-0", 0, "e2");
    CHECK(!s->tail);
    need = last_cmd(CMD_NEED, mark);
    CHECK(need != NULL);
    if (!need)
        goto out;
    CHECK_INT_EQ(need->from, 0);
    scanning(GW_READER_LIVE, p, need->token);
    kafka_record(GW_READER_LIVE, "ek:1", "id-e2-0", 0, "e2");
    redis_event("ek:1", "id-e2-1", 1, 0, "e2");
    CHECK_STR_EQ(delivered(&a), "0 1");
out:
    gw_sub_destroy(&gw, s);
    world_end();
}

/* Ids as the relay makes them. */
static const char *uuid(int n)
{
    static char out[8][37];
    static int at;
    char *u = out[at++ % 8];
    snprintf(u, 37, "0193f2e4-0000-7000-8000-%012d", n);
    return u;
}

/* The relay left a batch twice in Kafka: the copies have new offsets and
 * the same ids, and Redis never carried them. A subscription reading
 * Kafka (a resume, the tail) gets each id once; the chain goes on past
 * the copies, and the next event's prev_offset is the original's. */
static void test_copy_on_kafka(void)
{
    world_begin();
    redis_up();
    gw_conn_t live = {0}, res = {0};
    gw_sub_t *sl = subscribe(&live, "cp:1", 0, 10, "e1", -2);
    redis_event("cp:1", uuid(10), 10, 9, "e1");
    redis_event("cp:1", uuid(11), 11, 10, "e1");
    /* 12, 13: the copies of 10, 11; Redis goes on with 14 */
    redis_event("cp:1", uuid(14), 14, 11, "e1");
    CHECK_STR_EQ(delivered(&live), "10 11 14");
    /* a resume from 9 reads the copies from Kafka */
    gw_sub_t *sr = subscribe(&res, "cp:1", 0, 15, "e1", 9);
    const kafka_cmd_t *need = last_cmd(CMD_NEED, 0);
    CHECK(need != NULL && need->from == 10);
    if (!need)
        goto out;
    scanning(GW_READER_LIVE, part("cp:1"), need->token);
    kafka_record(GW_READER_LIVE, "cp:1", uuid(10), 10, "e1");
    kafka_record(GW_READER_LIVE, "cp:1", uuid(11), 11, "e1");
    kafka_record(GW_READER_LIVE, "cp:1", uuid(10), 12, "e1");
    kafka_record(GW_READER_LIVE, "cp:1", uuid(11), 13, "e1");
    CHECK_INT_EQ(sr->last, 13);
    kafka_record(GW_READER_LIVE, "cp:1", uuid(14), 14, "e1");
    redis_event("cp:1", uuid(15), 15, 14, "e1");
    CHECK_STR_EQ(delivered(&res), "10 11 14 15");
    CHECK_STR_EQ(delivered_prev(&res), "-2 10 11 14");
    CHECK_STR_EQ(delivered(&live), "10 11 14 15");
    CHECK_INT_EQ(hf_counter_value(gw.m.duplicate_ids), 2);
    CHECK_INT_EQ(hf_counter_value(gw.m.duplicates), 0);
out:
    gw_sub_destroy(&gw, sl);
    gw_sub_destroy(&gw, sr);
    world_end();
}

/* The other order: the first copy only in Kafka (its publish was given
 * up), the second one published on Redis. A subscription that read the
 * first from Kafka skips the second; one that never had the first (it
 * was past it on Redis's chain) gets the second: each id once per
 * subscription. */
static void test_copy_on_redis(void)
{
    world_begin();
    redis_up();
    gw_conn_t a = {0}, b = {0};
    gw_sub_t *sa = subscribe(&a, "cr:1", 0, 20, "e1", -2);
    gw_sub_t *sb = subscribe(&b, "cr:1", 0, 20, "e1", -2);
    /* a: a gap reveals 22; it reads 20 and 21 from Kafka */
    size_t mark = ncmds;
    redis_event("cr:1", uuid(99), 22, 21, "e1");
    CHECK_STR_EQ(delivered(&b), "");
    const kafka_cmd_t *need = last_cmd(CMD_NEED, mark);
    CHECK(need != NULL);
    if (!need)
        goto out;
    scanning(GW_READER_LIVE, part("cr:1"), need->token);
    kafka_record(GW_READER_LIVE, "cr:1", uuid(20), 20, "e1"); /* the unpublished first copy */
    kafka_record(GW_READER_LIVE, "cr:1", uuid(21), 21, "e1");
    kafka_record(GW_READER_LIVE, "cr:1", uuid(99), 22, "e1");
    CHECK_STR_EQ(delivered(&a), "20 21 22");
    CHECK_STR_EQ(delivered(&b), "20 21 22");
    /* the published copy of 20 at 23, chained to 22 */
    redis_event("cr:1", uuid(20), 23, 22, "e1");
    redis_event("cr:1", uuid(24), 24, 23, "e1");
    CHECK_STR_EQ(delivered(&a), "20 21 22 24");
    CHECK_STR_EQ(delivered_prev(&a), "-2 20 21 22");
    CHECK_INT_EQ(sa->last, 24);
    CHECK_INT_EQ(hf_counter_value(gw.m.duplicate_ids), 2);
    gw_sub_destroy(&gw, sb);
    sb = NULL;

    /* c sits at 29 on Redis; d resumes from 25 and reads 30 (id 40, its
     * publish given up) from Kafka; the published copy at 31 is c's first
     * sight of the id and a copy for d */
    gw_conn_t c = {0}, d = {0};
    gw_sub_t *sc = subscribe(&c, "cr:1", 0, 30, "e1", -2);
    gw_sub_t *sd = subscribe(&d, "cr:1", 0, 31, "e1", 25);
    need = last_cmd(CMD_NEED, 0);
    CHECK(need != NULL && need->from == 26);
    if (need)
        scanning(GW_READER_LIVE, part("cr:1"), need->token);
    kafka_record(GW_READER_LIVE, "cr:1", uuid(40), 30, "e1");
    redis_event("cr:1", uuid(40), 31, 29, "e1");
    CHECK_STR_EQ(delivered(&c), "31");
    CHECK_STR_EQ(delivered(&d), "30");
    CHECK_INT_EQ(sd->last, 31);
    gw_sub_destroy(&gw, sd);
    gw_sub_destroy(&gw, sc);
out:
    gw_sub_destroy(&gw, sa);
    if (sb)
        gw_sub_destroy(&gw, sb);
    world_end();
}

/* The window is bounded: GW_ID_WINDOW ids per channel; a copy further
 * behind than that is delivered again. */
static void test_copy_window(void)
{
    world_begin();
    redis_up();
    gw_conn_t a = {0};
    gw_sub_t *s = subscribe(&a, "win:1", 0, 0, "e1", -1);
    int64_t off = 0;
    for (; off < GW_ID_WINDOW; off++)
        redis_event("win:1", uuid((int)off), off, off - 1, "e1");
    redis_event("win:1", uuid(0), off, off - 1, "e1"); /* within the window: a copy */
    off++;
    CHECK_INT_EQ(hf_counter_value(gw.m.duplicate_ids), 1);
    CHECK_INT_EQ(ndeliveries, GW_ID_WINDOW);
    CHECK(s->channel->ids_cap <= GW_ID_WINDOW);
    redis_event("win:1", uuid(1000), off, off - 1, "e1"); /* pushes id 0 out */
    off++;
    redis_event("win:1", uuid(0), off, off - 1, "e1");
    CHECK_INT_EQ(hf_counter_value(gw.m.duplicate_ids), 1);
    CHECK_INT_EQ(ndeliveries, GW_ID_WINDOW + 2);
    gw_sub_destroy(&gw, s);
    world_end();
}

int main(void)
{
    test_duplicate();
    test_next_in_line();
    test_gap();
    test_resubscribe_seam();
    test_catchup_handback();
    test_resume();
    test_epoch_change();
    test_epoch_change_kafka();
    test_copy_on_kafka();
    test_copy_on_redis();
    test_copy_window();
    CHECK_MAIN_END();
}
