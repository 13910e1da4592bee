/* kafka.c - the relay's two Kafka clients.
 *
 * The producer: idempotent (enable.idempotence, acks=all), explicit
 * partition, key = channel, headers hf-id / hf-channel / hf-content-type /
 * hf-type, value = the envelope without position (an offset is unknown
 * until Kafka acknowledges). message.timeout.ms = the produce timeout, so
 * every message has its delivery report within that bound: the lease
 * argument of docs/relay.md rests on it. enable.gapless.guarantee turns a
 * possible gap into a fatal error; the producer is then recreated and the
 * partitions resynced from the log.
 *
 * The tail reader: a simple consumer (no group: assign by partition and
 * offset) that reads [from, to) of one partition and collects each record's
 * hf-id header. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "holdfast/alloc.h"
#include "holdfast/envelope.h"
#include "holdfast/log.h"
#include "relay.h"

#define KAFKA_META_TIMEOUT_MS 5000
#define KAFKA_TAIL_TIMEOUT_MS 15000

struct relay_kafka {
    const relay_config_t *cfg;
    rd_kafka_t *producer;
    rd_kafka_topic_t *producer_topic;
    rd_kafka_t *consumer;
    rd_kafka_topic_t *consumer_topic;
    size_t pending; /* delivery reports not yet seen */
    hf_buf_t value;
};

static bool kafka_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errbuf,
                      size_t errbuf_size)
{
    if (rd_kafka_conf_set(conf, name, value, errbuf, errbuf_size) == RD_KAFKA_CONF_OK)
        return true;
    return false;
}

static void kafka_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    (void)rk;
    relay_kafka_t *k = opaque;
    relay_event_t *ev = msg->_private;
    ev->err = msg->err;
    ev->delivered = msg->err == RD_KAFKA_RESP_ERR_NO_ERROR;
    ev->offset = ev->delivered ? msg->offset : HF_OFFSET_NONE;
    k->pending--;
}

/* Client-level errors (brokers down, ...) arrive here; librdkafka retries
 * them itself. Logged once per error code per 10 s so an outage does not
 * flood the log. */
static void kafka_on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)opaque;
    static _Thread_local int last_err;
    static _Thread_local int64_t last_us;
    int64_t now = relay_now_us();
    if (err == last_err && now - last_us < 10 * 1000 * 1000)
        return;
    last_err = err;
    last_us = now;
    hf_warn("kafka %s: %s", rd_kafka_name(rk), reason);
}

static void kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (strcmp(fac, "FAIL") == 0)
        return; /* the same event reaches kafka_on_error */
    (void)rk;
    if (strstr(buf, "enable.gapless.guarantee is experimental"))
        return; /* set on purpose; see the top of this file */
    hf_log(level <= 3 ? HF_LOG_ERROR : HF_LOG_WARN, "kafka %s: %s", fac, buf);
}

static rd_kafka_t *kafka_producer_new(relay_kafka_t *k, char *errbuf, size_t errbuf_size)
{
    char timeout[32], maxbytes[32];
    snprintf(timeout, sizeof timeout, "%lld", k->cfg->produce_timeout_ms);
    snprintf(maxbytes, sizeof maxbytes, "%lld", k->cfg->message_max_bytes);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    bool ok = kafka_set(conf, "bootstrap.servers", k->cfg->kafka_brokers, errbuf, errbuf_size) &&
              kafka_set(conf, "enable.idempotence", "true", errbuf, errbuf_size) &&
              kafka_set(conf, "acks", "all", errbuf, errbuf_size) &&
              kafka_set(conf, "enable.gapless.guarantee", "true", errbuf, errbuf_size) &&
              kafka_set(conf, "message.timeout.ms", timeout, errbuf, errbuf_size) &&
              kafka_set(conf, "request.timeout.ms", timeout, errbuf, errbuf_size) &&
              kafka_set(conf, "message.max.bytes", maxbytes, errbuf, errbuf_size) &&
              kafka_set(conf, "linger.ms", "1", errbuf, errbuf_size) &&
              kafka_set(conf, "retry.backoff.ms", "50", errbuf, errbuf_size) &&
              kafka_set(conf, "client.id", "holdfast-relay", errbuf, errbuf_size) &&
              hf_kafka_props_apply(&k->cfg->kafka_props, conf, errbuf, errbuf_size) == HF_OK;
    if (!ok) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_dr_msg_cb(conf, kafka_on_delivery);
    rd_kafka_conf_set_error_cb(conf, kafka_on_error);
    rd_kafka_conf_set_log_cb(conf, kafka_log);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errbuf, errbuf_size);
    if (!rk)
        rd_kafka_conf_destroy(conf);
    return rk;
}

static rd_kafka_t *kafka_consumer_new(relay_kafka_t *k, char *errbuf, size_t errbuf_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    bool ok = kafka_set(conf, "bootstrap.servers", k->cfg->kafka_brokers, errbuf, errbuf_size) &&
              kafka_set(conf, "fetch.wait.max.ms", "5", errbuf, errbuf_size) &&
              kafka_set(conf, "enable.partition.eof", "true", errbuf, errbuf_size) &&
              kafka_set(conf, "client.id", "holdfast-relay-tail", errbuf, errbuf_size) &&
              hf_kafka_props_apply(&k->cfg->kafka_props, conf, errbuf, errbuf_size) == HF_OK;
    if (!ok) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_error_cb(conf, kafka_on_error);
    rd_kafka_conf_set_log_cb(conf, kafka_log);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, errbuf_size);
    if (!rk)
        rd_kafka_conf_destroy(conf);
    return rk;
}

static void kafka_producer_destroy(relay_kafka_t *k)
{
    if (!k->producer)
        return;
    rd_kafka_purge(k->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(k->producer, 0);
    if (k->producer_topic)
        rd_kafka_topic_destroy(k->producer_topic);
    rd_kafka_destroy(k->producer);
    k->producer = NULL;
    k->producer_topic = NULL;
    k->pending = 0;
}

static hf_err_t kafka_producer_start(relay_kafka_t *k, char *errbuf, size_t errbuf_size)
{
    k->producer = kafka_producer_new(k, errbuf, errbuf_size);
    if (!k->producer)
        return HF_ERR_INVALID;
    k->producer_topic = rd_kafka_topic_new(k->producer, k->cfg->topic, NULL);
    return HF_OK;
}

hf_err_t relay_kafka_new(const relay_config_t *cfg, relay_kafka_t **out, char *errbuf,
                         size_t errbuf_size)
{
    relay_kafka_t *k = hf_calloc(1, sizeof *k);
    k->cfg = cfg;
    if (kafka_producer_start(k, errbuf, errbuf_size) != HF_OK) {
        hf_free(k);
        return HF_ERR_INVALID;
    }
    k->consumer = kafka_consumer_new(k, errbuf, errbuf_size);
    if (!k->consumer) {
        kafka_producer_destroy(k);
        hf_free(k);
        return HF_ERR_INVALID;
    }
    k->consumer_topic = rd_kafka_topic_new(k->consumer, cfg->topic, NULL);
    *out = k;
    return HF_OK;
}

void relay_kafka_free(relay_kafka_t *k)
{
    if (!k)
        return;
    kafka_producer_destroy(k);
    if (k->consumer_topic)
        rd_kafka_topic_destroy(k->consumer_topic);
    if (k->consumer)
        rd_kafka_destroy(k->consumer);
    hf_buf_free(&k->value);
    hf_free(k);
}

static void kafka_envelope(relay_kafka_t *k, const relay_event_t *ev, const char *epoch)
{
    hf_envelope_t env;
    hf_envelope_init(&env);
    env.id = ev->id;
    env.id_len = strlen(ev->id);
    env.channel = ev->channel;
    env.channel_len = strlen(ev->channel);
    if (ev->type) {
        env.type = ev->type;
        env.type_len = strlen(ev->type);
    }
    env.content_type = ev->content_type;
    env.content_type_len = strlen(ev->content_type);
    env.payload = ev->payload;
    env.payload_len = ev->payload_len;
    env.partition = ev->partition;
    env.created_at_us = ev->created_at_us;
    env.epoch = epoch; /* records say which log they belong to; offsets are the log's own */
    env.epoch_len = strlen(epoch);
    hf_buf_reset(&k->value);
    (void)hf_envelope_encode(&env, &k->value); /* id, channel, payload always set */
}

static rd_kafka_resp_err_t kafka_produce_one(relay_kafka_t *k, relay_event_t *ev, const char *epoch)
{
    kafka_envelope(k, ev, epoch);
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(4);
    rd_kafka_header_add(hdrs, "hf-id", -1, ev->id, -1);
    rd_kafka_header_add(hdrs, "hf-channel", -1, ev->channel, -1);
    rd_kafka_header_add(hdrs, "hf-content-type", -1, ev->content_type, -1);
    if (ev->type)
        rd_kafka_header_add(hdrs, "hf-type", -1, ev->type, -1);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        k->producer, RD_KAFKA_V_RKT(k->producer_topic), RD_KAFKA_V_PARTITION(ev->partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(ev->channel, strlen(ev->channel)),
        RD_KAFKA_V_VALUE(k->value.data, k->value.len), RD_KAFKA_V_HEADERS(hdrs),
        RD_KAFKA_V_OPAQUE(ev), RD_KAFKA_V_END);
    if (err)
        rd_kafka_headers_destroy(hdrs); /* ownership passes only on success */
    return err;
}

hf_err_t relay_kafka_produce(relay_kafka_t *k, relay_batch_t *batch, const char *epoch,
                             size_t *failed)
{
    char errbuf[256];
    for (size_t i = 0; i < batch->n; i++) {
        batch->events[i].delivered = false;
        batch->events[i].offset = HF_OFFSET_NONE;
        batch->events[i].err = RD_KAFKA_RESP_ERR__TRANSPORT;
    }
    *failed = batch->n;
    if (!k->producer && kafka_producer_start(k, errbuf, sizeof errbuf) != HF_OK) {
        hf_error("kafka producer: %s", errbuf);
        return HF_ERR_UNAVAILABLE;
    }
    *failed = 0;
    for (size_t i = 0; i < batch->n; i++) {
        relay_event_t *ev = &batch->events[i];
        ev->err = kafka_produce_one(k, ev, epoch);
        if (ev->err == RD_KAFKA_RESP_ERR_NO_ERROR)
            k->pending++;
    }
    int64_t deadline = relay_now_us() + (k->cfg->produce_timeout_ms + RELAY_REPORT_SLACK_MS) * 1000;
    while (k->pending > 0 && relay_now_us() < deadline)
        rd_kafka_poll(k->producer, 10);
    hf_err_t rc = HF_OK;
    char fatal[256];
    if (k->pending > 0 || rd_kafka_fatal_error(k->producer, fatal, sizeof fatal)) {
        hf_error("kafka producer %s: recreating it",
                 k->pending > 0 ? "did not report every delivery in time" : fatal);
        kafka_producer_destroy(k); /* purges: any still-pending report arrives now */
        rc = HF_ERR_INTERNAL;
    }
    for (size_t i = 0; i < batch->n; i++)
        if (!batch->events[i].delivered)
            (*failed)++;
    return rc;
}

hf_err_t relay_kafka_watermarks(relay_kafka_t *k, int partition, int64_t *low, int64_t *high)
{
    /* bounded by the produce timeout: a resync must not outlast the lease margin */
    rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
        k->consumer, k->cfg->topic, partition, low, high, (int)k->cfg->produce_timeout_ms);
    if (err) {
        hf_warn("kafka watermarks of partition %d: %s", partition, rd_kafka_err2str(err));
        return HF_ERR_UNAVAILABLE;
    }
    return HF_OK;
}

int relay_kafka_partition_count(relay_kafka_t *k)
{
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(k->consumer, 0, k->consumer_topic, &md, KAFKA_META_TIMEOUT_MS))
        return -1;
    int n = -1;
    if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
        n = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    return n;
}

/* Canonical UUID text (8-4-4-4-12 hex digits), as the relay writes hf-id. */
static bool kafka_is_uuid(const char *s, size_t len)
{
    if (len != 36)
        return false;
    for (size_t i = 0; i < len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* The record's hf-id, or NULL when it has none that could be ours: a
 * foreign record never reaches a query. */
static char *kafka_header_id(const rd_kafka_message_t *msg)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *val = NULL;
    size_t len = 0;
    if (rd_kafka_message_headers(msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(hdrs, "hf-id", &val, &len) != RD_KAFKA_RESP_ERR_NO_ERROR || !val ||
        !kafka_is_uuid(val, len))
        return NULL;
    char *id = hf_malloc(len + 1);
    memcpy(id, val, len);
    id[len] = '\0';
    return id;
}

hf_err_t relay_kafka_read_tail(relay_kafka_t *k, int partition, int64_t from, int64_t to,
                               char ***ids_out, int64_t **offsets_out, size_t *n_out)
{
    size_t cap = (size_t)(to - from), n = 0;
    char **ids = hf_calloc(cap ? cap : 1, sizeof *ids);
    int64_t *offsets = hf_calloc(cap ? cap : 1, sizeof *offsets);
    if (rd_kafka_consume_start(k->consumer_topic, partition, from) == -1) {
        hf_warn("kafka tail of partition %d: %s", partition,
                rd_kafka_err2str(rd_kafka_last_error()));
        hf_free(ids);
        hf_free(offsets);
        return HF_ERR_UNAVAILABLE;
    }
    hf_err_t rc = HF_OK;
    int64_t next = from, deadline = relay_now_us() + KAFKA_TAIL_TIMEOUT_MS * 1000LL;
    while (next < to) {
        if (relay_now_us() > deadline) {
            hf_warn("kafka tail of partition %d: stuck at %lld of [%lld, %lld)", partition,
                    (long long)next, (long long)from, (long long)to);
            rc = HF_ERR_TIMEOUT;
            break;
        }
        rd_kafka_message_t *msg = rd_kafka_consume(k->consumer_topic, partition, 100);
        if (!msg)
            continue;
        if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            rd_kafka_message_destroy(msg);
            continue;
        }
        if (msg->err) {
            hf_warn("kafka tail of partition %d: %s", partition, rd_kafka_message_errstr(msg));
            rd_kafka_message_destroy(msg);
            rc = HF_ERR_UNAVAILABLE;
            break;
        }
        if (msg->offset >= next && msg->offset < to) {
            char *id = kafka_header_id(msg);
            if (id && n < cap) {
                ids[n] = id;
                offsets[n++] = msg->offset;
            } else {
                hf_free(id); /* a record without our header: not one of ours */
            }
            next = msg->offset + 1;
        }
        rd_kafka_message_destroy(msg);
    }
    rd_kafka_consume_stop(k->consumer_topic, partition);
    if (rc != HF_OK) {
        relay_kafka_tail_free(ids, offsets, n);
        return rc;
    }
    *ids_out = ids;
    *offsets_out = offsets;
    *n_out = n;
    return HF_OK;
}

void relay_kafka_tail_free(char **ids, int64_t *offsets, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hf_free(ids[i]);
    hf_free(ids);
    hf_free(offsets);
}
