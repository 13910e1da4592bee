/* kafka_scan.c - the Kafka reader thread; see kafka_scan.h. */
#include "kafka_scan.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "holdfast/alloc.h"
#include "holdfast/clock.h"
#include "holdfast/envelope.h"
#include "holdfast/log.h"
#include "holdfast/logread.h"

#define KAFKA_READ_BATCH 1000 /* records forwarded before commands are looked at again */
#define KAFKA_EPOCH_MAX  64   /* bytes, as the protocol allows */
/* A partition's epoch changes only with a repartitioning or a reset log;
 * reading its newest record for every probe made subscribe storms crawl
 * (one fetch per partition per round), so it is reused for this long
 * while the log end has not gone back. */
#define KAFKA_EPOCH_REUSE_US (5 * 1000000)

typedef enum kafka_cmd_kind { KCMD_PROBE, KCMD_NEED, KCMD_CATCHUP, KCMD_RELEASE } kafka_cmd_kind_t;

typedef struct kafka_cmd {
    kafka_cmd_kind_t kind;
    int reader; /* NEED, RELEASE: GW_READER_* */
    int32_t partition;
    int64_t from;
    uint64_t token;
    struct kafka_cmd *next;
} kafka_cmd_t;

/* One reader's scan of one partition. */
typedef struct kafka_scan {
    bool scanning;
    int64_t cursor;      /* next offset to forward */
    uint64_t scan_token; /* highest need answered once the assignment is applied */
} kafka_scan_t;

/* A scanning reader: the live one or the deep one. */
typedef struct kafka_reader {
    int index; /* GW_READER_* */
    hf_logread_t *log;
    kafka_scan_t *parts; /* nparts of them */
    bool reassign;       /* the partitions or cursors changed */
    atomic_int scanning; /* partitions assigned */
} kafka_reader_t;

typedef struct kafka_part {
    uint64_t probe_token;            /* highest probe waiting to run; 0: none */
    uint64_t catchup_token;          /* 0: none waiting */
    int64_t catchup_target;          /* -1: the log end is still to be queried */
    char epoch[KAFKA_EPOCH_MAX + 1]; /* of the newest record, as last read */
    int64_t epoch_high;              /* the log end when it was read */
    int64_t epoch_read_us;
} kafka_part_t;

struct gw_kafka {
    char *topic;
    int timeout_ms;
    gw_inbox_t *inbox;
    kafka_reader_t readers[GW_READERS];
    hf_logread_t *probe;
    int32_t nparts;
    kafka_part_t *parts;         /* the thread's own: probes and catch-ups */
    size_t deep_max;             /* bytes of deep records allowed in flight */
    atomic_size_t deep_inflight; /* forwarded, not yet handled by the lws thread */
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    kafka_cmd_t *cmds, *cmds_tail;
    int64_t next_error_log_us;
};

/* An answer to the lws thread; offset: for CAUGHT_UP, the log end the
 * scan reached (-1: none was asked for). */
static void kafka_push(gw_kafka_t *k, gw_msg_kind_t kind, int reader, int32_t partition,
                       uint64_t token, int64_t offset)
{
    gw_msg_t *m = gw_msg_new(kind, NULL, NULL, 0);
    m->reader = reader;
    m->partition = partition;
    m->token = token;
    m->offset = offset;
    gw_inbox_push(k->inbox, m);
}

static void kafka_warn(gw_kafka_t *k, const char *what, const char *detail)
{
    int64_t now = hf_now_us();
    if (now < k->next_error_log_us)
        return;
    k->next_error_log_us = now + 5 * 1000000;
    hf_warn("kafka: %s: %s", what, detail);
}

/* Reads the record at offset of partition and copies its epoch. */
static void kafka_record_epoch_read(gw_kafka_t *k, int32_t partition, int64_t offset, char *epoch)
{
    epoch[0] = '\0';
    if (hf_logread_seek(k->probe, partition, offset) != HF_OK)
        return;
    int64_t deadline = hf_now_us() + (int64_t)k->timeout_ms * 1000;
    while (hf_now_us() < deadline) {
        hf_log_record_t rec;
        char err[256];
        hf_err_t rc = hf_logread_next(k->probe, 50, &rec, err, sizeof err);
        if (rc == HF_ERR_TIMEOUT)
            continue;
        if (rc != HF_OK || rec.partition != partition || rec.offset < offset)
            return;
        hf_envelope_t env;
        if (hf_envelope_decode(rec.value, rec.value_len, &env, NULL) == HF_OK && env.epoch &&
            env.epoch_len <= KAFKA_EPOCH_MAX) {
            memcpy(epoch, env.epoch, env.epoch_len);
            epoch[env.epoch_len] = '\0';
        }
        return;
    }
}

/* The epoch stamped on the partition's record at offset; "" when unknown.
 * The probe reader lets go of the partition afterwards: assigned, it would
 * go on prefetching every new record of it (up to librdkafka's
 * queued.max.messages.kbytes) for nobody. */
static void kafka_record_epoch(gw_kafka_t *k, int32_t partition, int64_t offset, char *epoch)
{
    kafka_record_epoch_read(k, partition, offset, epoch);
    if (hf_logread_assign(k->probe, NULL, NULL, 0) != HF_OK)
        kafka_warn(k, "probe", "could not release the partition it read");
}

static void kafka_run_probe(gw_kafka_t *k, int32_t p)
{
    gw_msg_t *m = gw_msg_new(GW_MSG_KAFKA_PROBED, NULL, NULL, 0);
    m->partition = p;
    m->token = k->parts[p].probe_token;
    k->parts[p].probe_token = 0;
    m->ok = hf_logread_watermarks(k->probe, p, k->timeout_ms, &m->low, &m->high) == HF_OK;
    kafka_part_t *part = &k->parts[p];
    char epoch[KAFKA_EPOCH_MAX + 1];
    epoch[0] = '\0';
    int64_t now = hf_now_us();
    if (m->ok && m->high > m->low) {
        if (part->epoch_read_us && now - part->epoch_read_us < KAFKA_EPOCH_REUSE_US &&
            m->high >= part->epoch_high && part->epoch[0]) {
            memcpy(epoch, part->epoch, sizeof epoch);
        } else {
            kafka_record_epoch(k, p, m->high - 1, epoch);
            memcpy(part->epoch, epoch, sizeof epoch);
            part->epoch_high = m->high;
            part->epoch_read_us = now;
        }
    }
    m->text = hf_strdup(epoch);
    if (!m->ok)
        kafka_warn(k, "probe", "watermarks unavailable");
    gw_inbox_push(k->inbox, m);
}

static void kafka_handle(gw_kafka_t *k, const kafka_cmd_t *c)
{
    kafka_part_t *p = &k->parts[c->partition];
    kafka_reader_t *rd = &k->readers[c->reader];
    kafka_scan_t *scan = &rd->parts[c->partition];
    kafka_scan_t *live = &k->readers[GW_READER_LIVE].parts[c->partition];
    switch (c->kind) {
    case KCMD_PROBE:
        if (c->token > p->probe_token)
            p->probe_token = c->token;
        break;
    case KCMD_NEED:
        if (!scan->scanning || scan->cursor > c->from) {
            scan->scanning = true;
            scan->cursor = c->from < 0 ? 0 : c->from;
            rd->reassign = true;
        }
        if (c->token > scan->scan_token)
            scan->scan_token = c->token;
        break;
    case KCMD_CATCHUP:
        if (!live->scanning) {
            kafka_push(k, GW_MSG_KAFKA_CAUGHT_UP, GW_READER_LIVE, c->partition, c->token, -1);
        } else {
            p->catchup_token = c->token;
            p->catchup_target = -1;
        }
        break;
    case KCMD_RELEASE:
        if (scan->scanning)
            rd->reassign = true;
        scan->scanning = false;
        scan->scan_token = 0;
        if (c->reader == GW_READER_LIVE && p->catchup_token) /* nothing left to catch up with */
            kafka_push(k, GW_MSG_KAFKA_CAUGHT_UP, GW_READER_LIVE, c->partition, p->catchup_token,
                       p->catchup_target);
        if (c->reader == GW_READER_LIVE)
            p->catchup_token = 0;
        break;
    }
}

/* Applies a reader's scan set; then answers the needs it satisfies
 * (records forwarded after these answers come from the new positions). */
static void kafka_apply_assignment(gw_kafka_t *k, kafka_reader_t *rd)
{
    if (rd->reassign) {
        int32_t *parts = hf_calloc((size_t)k->nparts, sizeof *parts);
        int64_t *offsets = hf_calloc((size_t)k->nparts, sizeof *offsets);
        size_t n = 0;
        for (int32_t i = 0; i < k->nparts; i++)
            if (rd->parts[i].scanning) {
                parts[n] = i;
                offsets[n++] = rd->parts[i].cursor;
            }
        hf_err_t rc = hf_logread_assign(rd->log, parts, offsets, n);
        hf_free(parts);
        hf_free(offsets);
        if (rc != HF_OK) { /* no answer to the needs until the scan really covers them */
            kafka_warn(k, "assign", "failed; retrying");
            return;
        }
        atomic_store(&rd->scanning, (int)n);
        rd->reassign = false;
    }
    for (int32_t i = 0; i < k->nparts; i++)
        if (rd->parts[i].scan_token && rd->parts[i].scanning) {
            kafka_push(k, GW_MSG_KAFKA_SCANNING, rd->index, i, rd->parts[i].scan_token, -1);
            rd->parts[i].scan_token = 0;
        }
}

static bool kafka_take_commands(gw_kafka_t *k, int wait_ms)
{
    pthread_mutex_lock(&k->lock);
    if (!k->cmds && wait_ms > 0 && !atomic_load(&k->stop)) {
        struct timespec until = hf_wall_deadline(wait_ms);
        pthread_cond_timedwait(&k->wake, &k->lock, &until);
    }
    kafka_cmd_t *c = k->cmds;
    k->cmds = k->cmds_tail = NULL;
    pthread_mutex_unlock(&k->lock);
    bool any = c != NULL;
    while (c) {
        kafka_cmd_t *next = c->next;
        kafka_handle(k, c);
        hf_free(c);
        c = next;
    }
    for (int r = 0; r < GW_READERS; r++)
        kafka_apply_assignment(k, &k->readers[r]);
    for (int32_t i = 0; i < k->nparts; i++)
        if (k->parts[i].probe_token)
            kafka_run_probe(k, i);
    return any;
}

static void kafka_on_lost(gw_kafka_t *k, kafka_reader_t *rd, int32_t p)
{
    int64_t low = 0, high = 0;
    if (hf_logread_watermarks(k->probe, p, k->timeout_ms, &low, &high) != HF_OK) {
        /* The consumer reports the error once and stops fetching: assign
         * again at the same cursor, which brings the error (and this try)
         * back. */
        rd->reassign = true;
        return;
    }
    hf_warn("kafka: partition %d offset %lld is no longer in the log; scanning from %lld", p,
            (long long)rd->parts[p].cursor, (long long)low);
    rd->parts[p].cursor = low;
    rd->reassign = true;
    gw_msg_t *m = gw_msg_new(GW_MSG_KAFKA_LOST, NULL, NULL, 0);
    m->reader = rd->index;
    m->partition = p;
    m->low = low;
    m->high = high;
    gw_inbox_push(k->inbox, m);
}

static void kafka_forward(gw_kafka_t *k, kafka_reader_t *rd, const hf_log_record_t *rec)
{
    kafka_scan_t *scan = &rd->parts[rec->partition];
    if (!scan->scanning || rec->offset < scan->cursor)
        return; /* from before a rewind or release */
    scan->cursor = rec->offset + 1;
    gw_inbox_wait_room(k->inbox, 1000);
    gw_msg_t *m = gw_msg_new(GW_MSG_KAFKA_RECORD, NULL, rec->value, rec->value_len);
    m->reader = rd->index;
    m->partition = rec->partition;
    m->offset = rec->offset;
    m->recv_us = hf_now_us();
    if (rd->index == GW_READER_DEEP)
        atomic_fetch_add(&k->deep_inflight, m->len);
    gw_inbox_push(k->inbox, m);
}

static bool kafka_deep_room(gw_kafka_t *k)
{
    return atomic_load(&k->deep_inflight) < k->deep_max;
}

/* Up to KAFKA_READ_BATCH records of one reader, waiting up to wait_ms for
 * the first; the deep reader stops when its share of the inbox is full.
 * Returns how many came. */
static int kafka_read(gw_kafka_t *k, kafka_reader_t *rd, int wait_ms)
{
    int i;
    for (i = 0; i < KAFKA_READ_BATCH; i++) {
        if (rd->index == GW_READER_DEEP && !kafka_deep_room(k))
            break;
        hf_log_record_t rec;
        char err[256];
        hf_err_t rc = hf_logread_next(rd->log, i == 0 ? wait_ms : 0, &rec, err, sizeof err);
        if (rc == HF_ERR_TIMEOUT)
            break;
        if (rc == HF_ERR_NOT_FOUND && rec.partition >= 0 && rec.partition < k->nparts &&
            rd->parts[rec.partition].scanning) {
            kafka_on_lost(k, rd, rec.partition);
            break;
        }
        if (rc != HF_OK) {
            kafka_warn(k, "scan", err);
            break;
        }
        if (rec.partition >= 0 && rec.partition < k->nparts)
            kafka_forward(k, rd, &rec);
    }
    return i;
}

static void kafka_check_catchups(gw_kafka_t *k)
{
    for (int32_t i = 0; i < k->nparts; i++) {
        kafka_part_t *p = &k->parts[i];
        if (!p->catchup_token)
            continue;
        if (p->catchup_target < 0) {
            int64_t low, high;
            if (hf_logread_watermarks(k->probe, i, k->timeout_ms, &low, &high) != HF_OK)
                continue;
            p->catchup_target = high;
        }
        if (k->readers[GW_READER_LIVE].parts[i].cursor >= p->catchup_target) {
            kafka_push(k, GW_MSG_KAFKA_CAUGHT_UP, GW_READER_LIVE, i, p->catchup_token,
                       p->catchup_target);
            p->catchup_token = 0;
        }
    }
}

/* One consumer cannot wait on the other's records, so with both readers
 * on each waits a little in turn (KAFKA_SHARED_WAIT_MS): never both at
 * zero, which would spin, and never long on one while the other has
 * records (the live reader's wait is at most that much added latency). */
#define KAFKA_SHARED_WAIT_MS 2

static void *kafka_main(void *arg)
{
    gw_kafka_t *k = arg;
    kafka_reader_t *live = &k->readers[GW_READER_LIVE], *deep = &k->readers[GW_READER_DEEP];
    while (!atomic_load(&k->stop)) {
        bool live_on = atomic_load(&live->scanning) > 0;
        bool deep_on = atomic_load(&deep->scanning) > 0 && kafka_deep_room(k);
        /* Idle, or only a deep read waiting for the lws thread: sleep until
         * a command (or gw_kafka_deep_done) wakes us. */
        int idle_ms = atomic_load(&deep->scanning) > 0 ? 10 : 100;
        kafka_take_commands(k, live_on || deep_on ? 0 : idle_ms);
        int got = 0;
        if (atomic_load(&live->scanning) > 0) {
            got = kafka_read(k, live, deep_on ? KAFKA_SHARED_WAIT_MS : 10);
            if (live->reassign)
                kafka_apply_assignment(k, live);
        }
        if (atomic_load(&deep->scanning) > 0 && kafka_deep_room(k)) {
            kafka_read(k, deep, !live_on ? 10 : got ? 0 : KAFKA_SHARED_WAIT_MS);
            if (deep->reassign)
                kafka_apply_assignment(k, deep);
        }
        kafka_check_catchups(k);
    }
    return NULL;
}

static void kafka_free_logs(gw_kafka_t *k)
{
    for (int r = 0; r < GW_READERS; r++) {
        hf_logread_free(k->readers[r].log);
        hf_free(k->readers[r].parts);
    }
    hf_logread_free(k->probe);
}

gw_kafka_t *gw_kafka_start(const char *brokers, const hf_kafka_props_config_t *props,
                           const char *topic, int timeout_ms, int wait_ms, size_t deep_inflight,
                           gw_inbox_t *inbox, int32_t *partition_count)
{
    char err[512] = "";
    gw_kafka_t *k = hf_calloc(1, sizeof *k);
    k->topic = hf_strdup(topic);
    k->timeout_ms = timeout_ms;
    k->inbox = inbox;
    k->deep_max = deep_inflight;
    bool made = true;
    for (int r = 0; r < GW_READERS; r++) {
        k->readers[r].index = r;
        if (made)
            made = (k->readers[r].log = hf_logread_new(brokers, props, topic, err, sizeof err)) !=
                   NULL;
    }
    if (made)
        made = (k->probe = hf_logread_new(brokers, props, topic, err, sizeof err)) != NULL;
    int count = 0;
    hf_err_t rc = made ? HF_ERR_UNAVAILABLE : HF_ERR_INVALID;
    for (int64_t deadline = hf_now_us() + (int64_t)wait_ms * 1000;
         rc == HF_ERR_UNAVAILABLE && hf_now_us() < deadline;) {
        rc = hf_logread_partition_count(k->probe, timeout_ms, &count);
        if (rc != HF_OK)
            usleep(200 * 1000);
    }
    if (rc != HF_OK) {
        hf_error("kafka %s topic %s: %s", brokers, topic,
                 rc == HF_ERR_INVALID ? err : hf_err_str(rc));
        kafka_free_logs(k);
        hf_free(k->topic);
        hf_free(k);
        return NULL;
    }
    k->nparts = count;
    k->parts = hf_calloc((size_t)count, sizeof *k->parts);
    for (int r = 0; r < GW_READERS; r++) {
        k->readers[r].parts = hf_calloc((size_t)count, sizeof *k->readers[r].parts);
        /* Connected and with the topic's metadata now, not on the first
         * scan: a cold consumer's first records came some 0.8 s after its
         * assignment, which is when Redis has just failed. */
        int n = 0;
        if (hf_logread_partition_count(k->readers[r].log, timeout_ms, &n) != HF_OK)
            hf_warn("kafka: the %s reader has no metadata yet; it will fetch it on first use",
                    r == GW_READER_LIVE ? "live" : "deep");
    }
    pthread_mutex_init(&k->lock, NULL);
    pthread_cond_init(&k->wake, NULL);
    pthread_create(&k->thread, NULL, kafka_main, k);
    *partition_count = count;
    return k;
}

void gw_kafka_stop(gw_kafka_t *k)
{
    if (!k)
        return;
    atomic_store(&k->stop, true);
    pthread_mutex_lock(&k->lock);
    pthread_cond_signal(&k->wake);
    pthread_mutex_unlock(&k->lock);
    pthread_join(k->thread, NULL);
    kafka_cmd_t *c = k->cmds;
    while (c) {
        kafka_cmd_t *next = c->next;
        hf_free(c);
        c = next;
    }
    kafka_free_logs(k);
    pthread_cond_destroy(&k->wake);
    pthread_mutex_destroy(&k->lock);
    hf_free(k->parts);
    hf_free(k->topic);
    hf_free(k);
}

static void kafka_command(gw_kafka_t *k, kafka_cmd_kind_t kind, int reader, int32_t partition,
                          int64_t from, uint64_t token)
{
    if (partition < 0 || partition >= k->nparts || reader < 0 || reader >= GW_READERS)
        return;
    kafka_cmd_t *c = hf_calloc(1, sizeof *c);
    c->kind = kind;
    c->reader = reader;
    c->partition = partition;
    c->from = from;
    c->token = token;
    pthread_mutex_lock(&k->lock);
    if (k->cmds_tail)
        k->cmds_tail->next = c;
    else
        k->cmds = c;
    k->cmds_tail = c;
    pthread_cond_signal(&k->wake);
    pthread_mutex_unlock(&k->lock);
}

void gw_kafka_probe(gw_kafka_t *k, int32_t partition, uint64_t token)
{
    kafka_command(k, KCMD_PROBE, GW_READER_LIVE, partition, 0, token);
}

void gw_kafka_need(gw_kafka_t *k, int reader, int32_t partition, int64_t from, uint64_t token)
{
    kafka_command(k, KCMD_NEED, reader, partition, from, token);
}

void gw_kafka_catchup(gw_kafka_t *k, int32_t partition, uint64_t token)
{
    kafka_command(k, KCMD_CATCHUP, GW_READER_LIVE, partition, 0, token);
}

void gw_kafka_release(gw_kafka_t *k, int reader, int32_t partition)
{
    kafka_command(k, KCMD_RELEASE, reader, partition, 0, 0);
}

void gw_kafka_deep_done(gw_kafka_t *k, size_t len)
{
    size_t before = atomic_fetch_sub(&k->deep_inflight, len);
    /* Wake the thread when the deep reader may go on (it sleeps meanwhile). */
    if (before >= k->deep_max && before - len < k->deep_max) {
        pthread_mutex_lock(&k->lock);
        pthread_cond_signal(&k->wake);
        pthread_mutex_unlock(&k->lock);
    }
}

int gw_kafka_scanning(gw_kafka_t *k)
{
    if (!k)
        return 0;
    return atomic_load(&k->readers[GW_READER_LIVE].scanning) +
           atomic_load(&k->readers[GW_READER_DEEP].scanning);
}
