/* logread.c - reading the event log by position; see logread.h. */
#include "holdfast/logread.h"

#include <arpa/inet.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "holdfast/alloc.h"
#include "holdfast/log.h"
#include "holdfast/wire.h"

struct hf_logread {
    rd_kafka_t *rk;
    char *topic;
    rd_kafka_message_t *last; /* the message the last record points into */
};

static void logread_drop_last(hf_logread_t *lr)
{
    if (lr->last)
        rd_kafka_message_destroy(lr->last);
    lr->last = NULL;
}

/* librdkafka's own log lines (its errors, and its debug output when the
 * operator sets the debug property) join the service's JSON log. */
static void logread_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    hf_log(level <= 3   ? HF_LOG_ERROR
           : level <= 5 ? HF_LOG_WARN
                        : HF_LOG_INFO,
           "kafka %s: %s", fac, buf);
}

hf_logread_t *hf_logread_new(const char *brokers, const hf_kafka_props_config_t *props,
                             const char *topic, char *err, size_t err_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* No group: assign() with explicit offsets, never commit. A short fetch
     * wait keeps the tail of the log low-latency (the dev broker holds an
     * empty fetch for the whole wait). */
    const char *settings[][2] = {
        {"bootstrap.servers", brokers},
        {"group.id", "holdfast-logread-unused"},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"fetch.wait.max.ms", "5"},
        {"enable.partition.eof", "false"},
        {"auto.offset.reset", "error"},
        {"client.id", "holdfast-logread"},
        /* a broker back is read again within half a second */
        {"reconnect.backoff.ms", "50"},
        {"reconnect.backoff.max.ms", "500"},
        {"log_level", "3"},
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        if (rd_kafka_conf_set(conf, settings[i][0], settings[i][1], err, err_size) !=
            RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    if (hf_kafka_props_apply(props, conf, err, err_size) != HF_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, logread_log);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, err_size);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    hf_logread_t *lr = hf_calloc(1, sizeof *lr);
    lr->rk = rk;
    lr->topic = hf_strdup(topic);
    return lr;
}

void hf_logread_free(hf_logread_t *lr)
{
    if (!lr)
        return;
    logread_drop_last(lr);
    rd_kafka_assign(lr->rk, NULL);
    rd_kafka_consumer_close(lr->rk);
    rd_kafka_destroy(lr->rk);
    hf_free(lr->topic);
    hf_free(lr);
}

hf_err_t hf_logread_partition_count(hf_logread_t *lr, int timeout_ms, int *count)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(lr->rk, lr->topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(lr->rk, 0, t, &md, timeout_ms);
    rd_kafka_topic_destroy(t);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return HF_ERR_UNAVAILABLE;
    hf_err_t rc = HF_ERR_NOT_FOUND;
    if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topics[0].partition_cnt > 0) {
        *count = md->topics[0].partition_cnt;
        rc = HF_OK;
    }
    rd_kafka_metadata_destroy(md);
    return rc;
}

/* A TCP connection to host:port within timeout_ms. */
static bool logread_connectable(const char *host, int port, int timeout_ms)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
        if (getaddrinfo(host, NULL, &hints, &ai) != 0 || !ai)
            return true; /* cannot tell: let librdkafka try */
        sa.sin_addr = ((struct sockaddr_in *)ai->ai_addr)->sin_addr;
        freeaddrinfo(ai);
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return true;
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (!ok && errno == EINPROGRESS) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof err;
        ok = poll(&pfd, 1, timeout_ms) == 1 &&
             getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
    }
    close(fd);
    return ok;
}

hf_err_t hf_kafka_leaders_probe(rd_kafka_t *rk, const char *topic, const bool *want, bool *up,
                                int nparts, int timeout_ms)
{
    for (int p = 0; p < nparts; p++)
        up[p] = false;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, timeout_ms);
    rd_kafka_topic_destroy(t);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return HF_ERR_UNAVAILABLE;
    /* one connection attempt per broker, whatever the partitions it leads */
    for (int b = 0; b < md->broker_cnt; b++) {
        bool asked = false;
        for (int i = 0; md->topic_cnt == 1 && i < md->topics[0].partition_cnt; i++) {
            const rd_kafka_metadata_partition_t *mp = &md->topics[0].partitions[i];
            asked |= mp->id < nparts && want[mp->id] && mp->leader == md->brokers[b].id;
        }
        if (!asked || !logread_connectable(md->brokers[b].host, md->brokers[b].port, timeout_ms))
            continue;
        for (int i = 0; md->topic_cnt == 1 && i < md->topics[0].partition_cnt; i++) {
            const rd_kafka_metadata_partition_t *mp = &md->topics[0].partitions[i];
            if (mp->id < nparts && mp->leader == md->brokers[b].id)
                up[mp->id] = true;
        }
    }
    rd_kafka_metadata_destroy(md);
    return HF_OK;
}

hf_err_t hf_kafka_leader_probe(rd_kafka_t *rk, const char *topic, int partition, int timeout_ms)
{
    bool *want = hf_calloc((size_t)partition + 1, sizeof *want);
    bool *up = hf_calloc((size_t)partition + 1, sizeof *up);
    want[partition] = true;
    hf_err_t rc = hf_kafka_leaders_probe(rk, topic, want, up, partition + 1, timeout_ms);
    if (rc == HF_OK && !up[partition])
        rc = HF_ERR_UNAVAILABLE;
    hf_free(want);
    hf_free(up);
    return rc;
}

hf_err_t hf_logread_watermarks(hf_logread_t *lr, int partition, int timeout_ms, int64_t *low,
                               int64_t *high)
{
    /* librdkafka 2.0's watermark query waits for a down leader far beyond
     * its timeout: ask only a leader that answers. */
    if (hf_kafka_leader_probe(lr->rk, lr->topic, partition, timeout_ms) != HF_OK)
        return HF_ERR_UNAVAILABLE;
    return rd_kafka_query_watermark_offsets(lr->rk, lr->topic, partition, low, high, timeout_ms) ==
                   RD_KAFKA_RESP_ERR_NO_ERROR
               ? HF_OK
               : HF_ERR_UNAVAILABLE;
}

hf_err_t hf_logread_assign(hf_logread_t *lr, const int32_t *parts, const int64_t *offsets, size_t n)
{
    logread_drop_last(lr);
    if (n == 0)
        return rd_kafka_assign(lr->rk, NULL) == RD_KAFKA_RESP_ERR_NO_ERROR ? HF_OK
                                                                           : HF_ERR_UNAVAILABLE;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(list, lr->topic, parts[i])->offset = offsets[i];
    rd_kafka_resp_err_t e = rd_kafka_assign(lr->rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    return e == RD_KAFKA_RESP_ERR_NO_ERROR ? HF_OK : HF_ERR_UNAVAILABLE;
}

hf_err_t hf_logread_seek(hf_logread_t *lr, int partition, int64_t offset)
{
    int32_t part = partition;
    return hf_logread_assign(lr, &part, &offset, 1);
}

static void logread_fill(const rd_kafka_message_t *m, hf_log_record_t *rec)
{
    memset(rec, 0, sizeof *rec);
    rec->partition = m->partition;
    rec->offset = m->offset;
    rd_kafka_timestamp_type_t tstype;
    rec->timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
    rec->key = m->key;
    rec->key_len = m->key_len;
    rec->value = m->payload;
    rec->value_len = m->len;
    rd_kafka_headers_t *hdrs = NULL;
    const void *val = NULL;
    size_t len = 0;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(hdrs, HF_KAFKA_HEADER_ID, &val, &len) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        val) {
        rec->id = val;
        rec->id_len = len;
    }
}

hf_err_t hf_logread_next(hf_logread_t *lr, int timeout_ms, hf_log_record_t *rec, char *err,
                         size_t err_size)
{
    logread_drop_last(lr);
    rd_kafka_message_t *m = rd_kafka_consumer_poll(lr->rk, timeout_ms);
    if (!m)
        return HF_ERR_TIMEOUT;
    if (m->err) {
        hf_err_t rc = m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE ||
                              m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET
                          ? HF_ERR_NOT_FOUND
                      : m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF ? HF_ERR_TIMEOUT
                                                                   : HF_ERR_UNAVAILABLE;
        snprintf(err, err_size, "%s", rd_kafka_message_errstr(m));
        memset(rec, 0, sizeof *rec);
        rec->partition = m->partition; /* which partition failed, -1 for a client error */
        rec->offset = m->offset;
        rd_kafka_message_destroy(m);
        return rc;
    }
    lr->last = m;
    logread_fill(m, rec);
    return HF_OK;
}
