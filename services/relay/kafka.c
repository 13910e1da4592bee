/* kafka.c - the relay's Kafka clients.
 *
 * The producer: idempotent (enable.idempotence, acks=all), explicit
 * partition, key = channel, headers hf-id / hf-channel / hf-content-type /
 * hf-type, value = the envelope without position (an offset is unknown
 * until Kafka acknowledges). message.timeout.ms = the produce timeout, so
 * every message has its delivery report within that bound: the lease
 * argument of docs/relay.md rests on it. enable.gapless.guarantee turns a
 * possible gap into a fatal error; the producer is then recreated and the
 * partitions resynced from the log. Delivery reports are served from the
 * relay's loop (relay_kafka_poll), which an fd wakes when they wait.
 *
 * The log reader (common/src/logread.c, no consumer group) reads a
 * partition's tail for a resync. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "holdfast/alloc.h"
#include "holdfast/channel.h"
#include "holdfast/envelope.h"
#include "holdfast/log.h"
#include "holdfast/logread.h"
#include "holdfast/wire.h"
#include "relay.h"

#define KAFKA_META_TIMEOUT_MS 5000
#define KAFKA_READ_POLL_MS    100

struct relay_kafka {
    const relay_config_t *cfg;
    rd_kafka_t *producer;
    rd_kafka_topic_t *producer_topic;
    relay_report_fn on_report;
    void *report_arg;
    int wake[2];          /* written by librdkafka when delivery reports wait */
    hf_logread_t *reader; /* the tail reader, made on first use */
    hf_buf_t value;
};

static void kafka_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    (void)rk;
    relay_kafka_t *k = opaque;
    relay_event_t *ev = msg->_private;
    if (!ev)
        return; /* a test's late copy (relay_kafka_produce_late_copy): nobody waits for it */
    ev->err = msg->err;
    ev->status = rd_kafka_message_status(msg);
    ev->delivered = msg->err == RD_KAFKA_RESP_ERR_NO_ERROR;
    ev->offset = ev->delivered ? msg->offset : HF_OFFSET_NONE;
    k->on_report(k->report_arg, ev);
}

/* Client-level errors (brokers down, ...) arrive here; librdkafka retries
 * them itself. Logged once per error code per 10 s so an outage does not
 * flood the log. */
static void kafka_on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)opaque;
    static _Thread_local int last_err;
    static _Thread_local int64_t last_us;
    int64_t now = hf_now_us();
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
    /* linger 0: at low load a batch is one partition's few events and waits
     * for nothing; at high load the relay's own batches fill requests */
    const char *settings[][2] = {
        {"bootstrap.servers", k->cfg->kafka_brokers},
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"enable.gapless.guarantee", "true"},
        {"message.timeout.ms", timeout},
        {"request.timeout.ms", timeout},
        {"message.max.bytes", maxbytes},
        {"linger.ms", "0"},
        {"retry.backoff.ms", "50"},
        /* a broker back is used within half a second (librdkafka's default
         * backs off reconnects up to 10 s) */
        {"reconnect.backoff.ms", "50"},
        {"reconnect.backoff.max.ms", "500"},
        {"client.id", "holdfast-relay"},
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if (rd_kafka_conf_set(conf, settings[i][0], settings[i][1], errbuf, errbuf_size) !=
            RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    if (hf_kafka_props_apply(&k->cfg->kafka_props, conf, errbuf, errbuf_size) != HF_OK) {
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

/* Destroys the producer: what it still held fails (purged) and is
 * reported now, before the events the reports point to can be freed. */
static void kafka_producer_destroy(relay_kafka_t *k)
{
    if (!k->producer)
        return;
    rd_kafka_purge(k->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 50 && rd_kafka_outq_len(k->producer) > 0; i++)
        rd_kafka_poll(k->producer, 10);
    rd_kafka_poll(k->producer, 0);
    if (k->producer_topic)
        rd_kafka_topic_destroy(k->producer_topic);
    rd_kafka_destroy(k->producer);
    k->producer = NULL;
    k->producer_topic = NULL;
}

static hf_err_t kafka_producer_start(relay_kafka_t *k, char *errbuf, size_t errbuf_size)
{
    k->producer = kafka_producer_new(k, errbuf, errbuf_size);
    if (!k->producer)
        return HF_ERR_INVALID;
    k->producer_topic = rd_kafka_topic_new(k->producer, k->cfg->topic, NULL);
    rd_kafka_queue_t *main_q = rd_kafka_queue_get_main(k->producer);
    rd_kafka_queue_io_event_enable(main_q, k->wake[1], "r", 1);
    rd_kafka_queue_destroy(main_q);
    return HF_OK;
}

hf_err_t relay_kafka_new(const relay_config_t *cfg, relay_report_fn on_report, void *arg,
                         relay_kafka_t **out, char *errbuf, size_t errbuf_size)
{
    relay_kafka_t *k = hf_calloc(1, sizeof *k);
    k->cfg = cfg;
    k->on_report = on_report;
    k->report_arg = arg;
    if (pipe2(k->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf(errbuf, errbuf_size, "pipe: %s", strerror(errno));
        hf_free(k);
        return HF_ERR_IO;
    }
    if (kafka_producer_start(k, errbuf, errbuf_size) != HF_OK) {
        close(k->wake[0]);
        close(k->wake[1]);
        hf_free(k);
        return HF_ERR_INVALID;
    }
    *out = k;
    return HF_OK;
}

void relay_kafka_free(relay_kafka_t *k)
{
    if (!k)
        return;
    kafka_producer_destroy(k);
    hf_logread_free(k->reader);
    close(k->wake[0]);
    close(k->wake[1]);
    hf_buf_free(&k->value);
    hf_free(k);
}

int relay_kafka_wakeup_fd(const relay_kafka_t *k)
{
    return k->wake[0];
}

void relay_kafka_poll(relay_kafka_t *k, bool woken)
{
    char drain[64];
    /* one byte per wakeup, a handful at most: what one read leaves keeps
     * the fd readable, and the next wait returns at once */
    if (woken)
        (void)!read(k->wake[0], drain, sizeof drain);
    if (k->producer)
        rd_kafka_poll(k->producer, 0);
}

bool relay_kafka_check(relay_kafka_t *k, int64_t oldest_produce_us)
{
    if (!k->producer)
        return false;
    char fatal[256];
    int64_t limit_us = (k->cfg->produce_timeout_ms + RELAY_REPORT_SLACK_MS) * 1000;
    bool overdue = oldest_produce_us && hf_now_us() - oldest_produce_us > limit_us;
    bool failed = rd_kafka_fatal_error(k->producer, fatal, sizeof fatal) != 0;
    if (!overdue && !failed)
        return false;
    hf_error("kafka producer %s: recreating it",
             overdue ? "did not report every delivery in time" : fatal);
    kafka_producer_destroy(k);
    return true;
}

void relay_kafka_shutdown(relay_kafka_t *k)
{
    kafka_producer_destroy(k);
}

static rd_kafka_resp_err_t kafka_produce_one(relay_kafka_t *k, relay_event_t *ev, const char *epoch,
                                             void *opaque)
{
    /* Records say which log they belong to; offsets are the log's own. */
    relay_event_envelope(ev, epoch, false, &k->value);
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(4);
    rd_kafka_header_add(hdrs, HF_KAFKA_HEADER_ID, -1, ev->id, -1);
    rd_kafka_header_add(hdrs, HF_KAFKA_HEADER_CHANNEL, -1, ev->channel, -1);
    rd_kafka_header_add(hdrs, HF_KAFKA_HEADER_CONTENT_TYPE, -1, ev->content_type, -1);
    if (ev->type)
        rd_kafka_header_add(hdrs, HF_KAFKA_HEADER_TYPE, -1, ev->type, -1);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        k->producer, RD_KAFKA_V_RKT(k->producer_topic), RD_KAFKA_V_PARTITION(ev->partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(ev->channel, strlen(ev->channel)),
        RD_KAFKA_V_VALUE(k->value.data, k->value.len), RD_KAFKA_V_HEADERS(hdrs),
        RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (err)
        rd_kafka_headers_destroy(hdrs); /* ownership passes only on success */
    return err;
}

rd_kafka_resp_err_t relay_kafka_produce(relay_kafka_t *k, relay_list_t *batch, const char *epoch,
                                        relay_list_t *inflight)
{
    char errbuf[256];
    if (!k->producer && kafka_producer_start(k, errbuf, sizeof errbuf) != HF_OK) {
        hf_error("kafka producer: %s", errbuf);
        return RD_KAFKA_RESP_ERR__FAIL;
    }
    while (batch->head) {
        relay_event_t *ev = batch->head;
        ev->delivered = false;
        ev->offset = HF_OFFSET_NONE;
        ev->err = RD_KAFKA_RESP_ERR__IN_PROGRESS;
        rd_kafka_resp_err_t err = kafka_produce_one(k, ev, epoch, ev);
        if (err) {
            ev->err = err;
            return err; /* it and the rest stay in batch */
        }
        relay_list_push(inflight, relay_list_pop(batch));
    }
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

void relay_kafka_produce_late_copy(relay_kafka_t *k, relay_event_t *const *evs, size_t n,
                                   const char *epoch)
{
    for (size_t i = 0; k->producer && i < n; i++)
        if (kafka_produce_one(k, evs[i], epoch, NULL) != RD_KAFKA_RESP_ERR_NO_ERROR)
            hf_warn("test hook late-copy: event %s not produced again", evs[i]->id);
}

static hf_err_t kafka_reader(relay_kafka_t *k)
{
    if (k->reader)
        return HF_OK;
    char err[256];
    k->reader =
        hf_logread_new(k->cfg->kafka_brokers, &k->cfg->kafka_props, k->cfg->topic, err, sizeof err);
    if (!k->reader) {
        hf_error("kafka log reader: %s", err);
        return HF_ERR_INVALID;
    }
    return HF_OK;
}

hf_err_t relay_kafka_watermarks(relay_kafka_t *k, int partition, int64_t *low, int64_t *high)
{
    hf_err_t rc = kafka_reader(k);
    /* bounded by the produce timeout: a resync must not outlast the lease margin */
    if (rc == HF_OK)
        rc =
            hf_logread_watermarks(k->reader, partition, (int)k->cfg->produce_timeout_ms, low, high);
    if (rc != HF_OK)
        hf_warn("kafka watermarks of partition %d: %s", partition, hf_err_str(rc));
    return rc;
}

hf_err_t relay_kafka_probe_leaders(relay_kafka_t *k, const bool *want, bool *up, int nparts,
                                   int timeout_ms)
{
    char errbuf[256];
    if (!k->producer && kafka_producer_start(k, errbuf, sizeof errbuf) != HF_OK)
        return HF_ERR_UNAVAILABLE;
    return hf_kafka_leaders_probe(k->producer, k->cfg->topic, want, up, nparts, timeout_ms);
}

int relay_kafka_partition_count(relay_kafka_t *k)
{
    int n = -1;
    if (kafka_reader(k) != HF_OK ||
        hf_logread_partition_count(k->reader, KAFKA_META_TIMEOUT_MS, &n) != HF_OK)
        return -1;
    return n;
}

/* The record's id and channel as our own records carry them, or false for
 * a record that cannot be ours. */
static bool kafka_record_ours(const hf_log_record_t *rec, char *id, char *channel)
{
    if (!rec->id || rec->id_len != RELAY_ID_LEN || !rec->key || rec->key_len == 0 ||
        rec->key_len > HF_CHANNEL_MAX || hf_channel_validate(rec->key, rec->key_len, NULL) != HF_OK)
        return false;
    memcpy(id, rec->id, RELAY_ID_LEN);
    id[RELAY_ID_LEN] = '\0';
    for (int i = 0; i < RELAY_ID_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = id[i];
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (dash ? c != '-' : !hex)
            return false;
    }
    memcpy(channel, rec->key, rec->key_len);
    channel[rec->key_len] = '\0';
    return true;
}

hf_err_t relay_kafka_read(relay_kafka_t *k, int partition, int64_t from, int64_t to,
                          int64_t deadline_us, relay_tail_fn fn, void *arg)
{
    if (from >= to)
        return HF_OK;
    hf_err_t rc = kafka_reader(k);
    if (rc == HF_OK)
        rc = hf_logread_seek(k->reader, partition, from);
    if (rc != HF_OK)
        return rc;
    int64_t next = from;
    while (next < to) {
        if (hf_now_us() > deadline_us) {
            hf_warn("kafka tail of partition %d: stuck at %lld of [%lld, %lld)", partition,
                    (long long)next, (long long)from, (long long)to);
            return HF_ERR_TIMEOUT;
        }
        hf_log_record_t rec;
        char err[256];
        rc = hf_logread_next(k->reader, KAFKA_READ_POLL_MS, &rec, err, sizeof err);
        if (rc == HF_ERR_TIMEOUT)
            continue;
        if (rc != HF_OK) {
            hf_warn("kafka tail of partition %d: %s", partition, err);
            return rc;
        }
        if (rec.partition != partition || rec.offset < next || rec.offset >= to)
            continue;
        char id[RELAY_ID_LEN + 1], channel[HF_CHANNEL_MAX + 1];
        bool ours = kafka_record_ours(&rec, id, channel);
        rc = fn(arg, rec.offset, ours ? id : NULL, ours ? channel : NULL, rec.value, rec.value_len);
        if (rc != HF_OK)
            return rc;
        next = rec.offset + 1;
    }
    return HF_OK;
}
