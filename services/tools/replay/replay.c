/* replay.c - holdfast-replay: the event log's history, by position.
 *
 *   holdfast-replay --channel C [--from-offset N | --from-time T]
 *                   [--to-offset M | --limit K] [--follow] [--republish-to redis://H:P]
 *   holdfast-replay --partition P ... (every channel of that partition)
 *
 * Reads the Kafka topic directly (no consumer group, nothing committed)
 * and prints one JSON line per event on stdout, the same `event` message
 * the gateway sends (common/include/holdfast/event_json.h), with each
 * event's prev_offset derived from the log. Offsets are inclusive:
 * --from-offset N starts at N, --to-offset M ends with M. Without
 * --from-offset or --from-time it starts at the oldest record Kafka holds.
 * --from-time (RFC 3339) is resolved through PostgreSQL (events carry
 * created_at and, once relayed, their offset; the dev broker has no time
 * index). --pg-url also gives the current epoch, checks that a channel
 * exists, and finds the prev_offset of the first event read.
 *
 * --republish-to re-delivers the range to the live path: each event is
 * PUBLISHed to its Redis channel (hf:<channel>) with the envelope's replay
 * flag set, so gateways hand it only to clients that asked for replays,
 * never as part of the live stream.
 *
 * Progress goes to stderr every 2 s on long reads, and a summary at the end.
 * Exit codes: 0 done; 1 failed midway (Kafka, PostgreSQL or Redis lost);
 * 2 bad usage; 3 Kafka unreachable or no such topic; 4 partition or offset
 * out of range (the message says the valid range); 5 unknown channel (no
 * event of it in PostgreSQL). SIGINT/SIGTERM end --follow with exit 0. */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chains.h"
#include "holdfast/alloc.h"
#include "holdfast/buf.h"
#include "holdfast/channel.h"
#include "holdfast/clock.h"
#include "holdfast/config.h"
#include "holdfast/envelope.h"
#include "holdfast/event_json.h"
#include "holdfast/logread.h"
#include "holdfast/partition.h"
#include "holdfast/redis_conn.h"
#include "holdfast/wire.h"

enum {
    REPLAY_EXIT_OK = 0,
    REPLAY_EXIT_FAILED = 1,
    REPLAY_EXIT_USAGE = 2,
    REPLAY_EXIT_KAFKA = 3,
    REPLAY_EXIT_RANGE = 4,
    REPLAY_EXIT_UNKNOWN = 5,
};

#define REPLAY_KAFKA_TIMEOUT_MS 5000
#define REPLAY_STALL_MS         30000 /* no record although the log has more: give up */
#define REPLAY_PROGRESS_MS      2000
#define REPLAY_CHAINS_MAX       (1u << 20)
#define REPLAY_REDIS_PIPELINE   256
#define REPLAY_REDIS_TIMEOUT_MS 5000

typedef struct replay_config {
    char *kafka_brokers;
    hf_kafka_props_config_t kafka_props;
    char *topic;
    char *pg_url;
    char *channel;
    long long partition;
    long long from_offset;
    char *from_time;
    long long to_offset;
    long long limit;
    bool follow;
    char *republish_to;
    char *redis_password_file;
    bool quiet;
} replay_config_t;

static const hf_conf_spec_t replay_settings[] = {
    {"kafka-brokers", HF_CONF_STRING, offsetof(replay_config_t, kafka_brokers), "127.0.0.1:9092", 0,
     0, "Kafka bootstrap servers"},
    HF_KAFKA_PROPS_SETTINGS(replay_config_t, kafka_props),
    {"topic", HF_CONF_STRING, offsetof(replay_config_t, topic), "holdfast.events", 0, 0,
     "the event topic"},
    {"pg-url", HF_CONF_STRING, offsetof(replay_config_t, pg_url), NULL, 0, 0,
     "PostgreSQL (needed for --from-time; gives epoch, channel check, first prev_offset)"},
    {"channel", HF_CONF_STRING, offsetof(replay_config_t, channel), NULL, 0, 0,
     "the channel to replay, or several (a,b,c) living in one partition, read once"},
    {"partition", HF_CONF_INT, offsetof(replay_config_t, partition), "-1", -1, 1 << 30,
     "replay a whole partition instead of one channel"},
    {"from-offset", HF_CONF_INT, offsetof(replay_config_t, from_offset), "-1", -1, 1LL << 62,
     "first offset (inclusive); default: the oldest Kafka holds"},
    {"from-time", HF_CONF_STRING, offsetof(replay_config_t, from_time), NULL, 0, 0,
     "start at the first event created at or after this RFC 3339 time (needs --pg-url)"},
    {"to-offset", HF_CONF_INT, offsetof(replay_config_t, to_offset), "-1", -1, 1LL << 62,
     "last offset (inclusive)"},
    {"limit", HF_CONF_INT, offsetof(replay_config_t, limit), "0", 0, 1LL << 62,
     "stop after this many events (0: no limit)"},
    {"follow", HF_CONF_BOOL, offsetof(replay_config_t, follow), "false", 0, 0,
     "keep reading new events after the end, like tail -f"},
    {"republish-to", HF_CONF_STRING, offsetof(replay_config_t, republish_to), NULL, 0, 0,
     "also PUBLISH each event, marked as a replay, to this Redis "
     "(redis://[USER:PASSWORD@]HOST:PORT[/DB])"},
    {"redis-password-file", HF_CONF_STRING, offsetof(replay_config_t, redis_password_file), NULL, 0,
     0, "file holding the password of --republish-to's Redis (instead of one in the URL)"},
    {"quiet", HF_CONF_BOOL, offsetof(replay_config_t, quiet), "false", 0, 0,
     "no progress or summary on stderr"},
};
#define REPLAY_NSETTINGS (sizeof replay_settings / sizeof replay_settings[0])

/* The whole state of one run. */
typedef struct replay {
    replay_config_t cfg;
    hf_logread_t *log;
    PGconn *pg;          /* NULL without --pg-url */
    redisContext *redis; /* NULL without --republish-to */
    size_t redis_pending;
    replay_chains_t *chains;
    char **channels; /* --channel a,b,c: the channels printed (one partition) */
    size_t nchannels;
    char *channel_array; /* the same as a text[] literal, for PostgreSQL */
    char epoch[64];      /* current epoch from PostgreSQL, "" when unknown */
    int partition_count;
    int partition;
    int64_t from, to, low, high; /* to: inclusive, -1 = none */
    long long records, events;
    int64_t t0_us, last_progress_us; /* hf_now_us() */
    hf_buf_t line;
    hf_buf_t envelope;
} replay_t;

static volatile sig_atomic_t replay_stop;

static void replay_on_signal(int sig)
{
    (void)sig;
    replay_stop = 1;
}

static double replay_elapsed(int64_t since_us)
{
    return (double)(hf_now_us() - since_us) / 1e6;
}

static int replay_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int replay_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("holdfast-replay: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

/* ---- PostgreSQL: epoch, channel check, time -> offset, first prev_offset ---- */

/* One-row, one-column query; *out is "" for NULL or no row. */
static int replay_pg_value(replay_t *r, const char *sql, int nparams, const char *const *params,
                           char *out, size_t out_size)
{
    PGresult *res = PQexecParams(r->pg, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        int code = state && strncmp(state, "22", 2) == 0 ? REPLAY_EXIT_USAGE : REPLAY_EXIT_FAILED;
        replay_fail(code, "postgres: %s", PQresultErrorMessage(res));
        PQclear(res);
        return code;
    }
    snprintf(out, out_size, "%s",
             PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return REPLAY_EXIT_OK;
}

static int replay_pg_open(replay_t *r)
{
    if (!r->cfg.pg_url)
        return REPLAY_EXIT_OK;
    r->pg = PQconnectdb(r->cfg.pg_url);
    if (PQstatus(r->pg) != CONNECTION_OK)
        return replay_fail(REPLAY_EXIT_FAILED, "postgres: %s", PQerrorMessage(r->pg));
    char count[32];
    int rc =
        replay_pg_value(r, "SELECT epoch FROM holdfast.meta", 0, NULL, r->epoch, sizeof r->epoch);
    if (rc == REPLAY_EXIT_OK)
        rc = replay_pg_value(r, "SELECT partition_count FROM holdfast.meta", 0, NULL, count,
                             sizeof count);
    if (rc == REPLAY_EXIT_OK && count[0])
        r->partition_count = atoi(count);
    return rc;
}

static int replay_pg_channel_known(replay_t *r)
{
    for (size_t i = 0; i < r->nchannels; i++) {
        char found[8];
        const char *params[1] = {r->channels[i]};
        int rc = replay_pg_value(r, "SELECT 1 FROM holdfast.events WHERE channel = $1 LIMIT 1", 1,
                                 params, found, sizeof found);
        if (rc != REPLAY_EXIT_OK)
            return rc;
        if (!found[0])
            return replay_fail(REPLAY_EXIT_UNKNOWN,
                               "unknown channel %s: PostgreSQL has no event of it", r->channels[i]);
    }
    return REPLAY_EXIT_OK;
}

/* --from-time: the offset of the first relayed event at or after it. */
static int replay_pg_offset_at(replay_t *r, int64_t *offset)
{
    char part[16], value[32];
    snprintf(part, sizeof part, "%d", r->partition);
    const char *params[3] = {r->cfg.from_time, part, r->channel_array};
    int rc = replay_pg_value(
        r,
        "SELECT min(o.kafka_offset)"
        "  FROM holdfast.events e JOIN holdfast.event_offsets o ON o.event_id = e.id"
        " WHERE e.created_at >= $1::timestamptz AND e.partition = $2::int"
        "   AND ($3::text[] IS NULL OR e.channel = ANY($3::text[]))"
        "   AND o.epoch_id = (SELECT ep.id FROM holdfast.meta m"
        "                     JOIN holdfast.epochs ep ON ep.epoch = m.epoch)",
        3, params, value, sizeof value);
    if (rc == REPLAY_EXIT_OK)
        *offset = value[0] ? atoll(value) : r->high; /* nothing that recent yet: from the end */
    return rc;
}

/* The channel's offset before `before` in the current epoch (-1: none), or
 * HF_PREV_OFFSET_UNKNOWN without PostgreSQL. */
static int64_t replay_pg_prev(replay_t *r, const char *channel, size_t len, int64_t before)
{
    if (!r->pg)
        return HF_PREV_OFFSET_UNKNOWN;
    char ch[HF_CHANNEL_MAX + 1], off[32], part[16], value[32];
    snprintf(ch, sizeof ch, "%.*s", (int)len, channel);
    snprintf(off, sizeof off, "%lld", (long long)before);
    snprintf(part, sizeof part, "%d", r->partition);
    const char *params[3] = {ch, off, part};
    if (replay_pg_value(r,
                        "SELECT coalesce(max(kafka_offset), -1) FROM holdfast.event_offsets"
                        " WHERE channel = $1 AND kafka_offset < $2::int8 AND $3::int >= 0"
                        "   AND epoch_id = (SELECT ep.id FROM holdfast.meta m"
                        "                   JOIN holdfast.epochs ep ON ep.epoch = m.epoch)",
                        3, params, value, sizeof value) != REPLAY_EXIT_OK)
        return HF_PREV_OFFSET_UNKNOWN;
    return atoll(value);
}

/* ---- setup: which partition, which range ---- */

/* --channel a,b,c -> r->channels (commas cannot occur in channel names). */
static int replay_parse_channels(replay_t *r)
{
    if (!r->cfg.channel)
        return REPLAY_EXIT_OK;
    hf_buf_t array = HF_BUF_INIT;
    hf_buf_append_str(&array, "{");
    for (const char *p = r->cfg.channel; *p;) {
        size_t len = strcspn(p, ",");
        const char *why = NULL;
        if (hf_channel_validate(p, len, &why) != HF_OK) {
            hf_buf_free(&array);
            return replay_fail(REPLAY_EXIT_USAGE, "--channel %.*s: %s", (int)len, p, why);
        }
        r->channels = hf_realloc(r->channels, (r->nchannels + 1) * sizeof *r->channels);
        r->channels[r->nchannels] = hf_malloc(len + 1);
        memcpy(r->channels[r->nchannels], p, len);
        r->channels[r->nchannels][len] = '\0';
        hf_buf_printf(&array, "%s%s", r->nchannels ? "," : "", r->channels[r->nchannels]);
        r->nchannels++;
        p += len;
        if (*p == ',')
            p++;
    }
    hf_buf_append_str(&array, "}");
    r->channel_array = hf_buf_release(&array, NULL);
    return REPLAY_EXIT_OK;
}

static bool replay_wanted(const replay_t *r, const char *channel, size_t len)
{
    for (size_t i = 0; i < r->nchannels; i++)
        if (strlen(r->channels[i]) == len && memcmp(r->channels[i], channel, len) == 0)
            return true;
    return false;
}

static int replay_check_usage(const replay_config_t *c)
{
    if (!c->channel == (c->partition < 0))
        return replay_fail(REPLAY_EXIT_USAGE, "give exactly one of --channel or --partition");
    if (c->channel && !*c->channel)
        return replay_fail(REPLAY_EXIT_USAGE, "--channel is empty");
    if (c->from_time && c->from_offset >= 0)
        return replay_fail(REPLAY_EXIT_USAGE, "give at most one of --from-offset or --from-time");
    if (c->from_time && !c->pg_url)
        return replay_fail(REPLAY_EXIT_USAGE, "--from-time needs --pg-url (the dev broker and "
                                              "the events table resolve times, not Kafka)");
    if (c->to_offset >= 0 && c->from_offset >= 0 && c->to_offset < c->from_offset)
        return replay_fail(REPLAY_EXIT_USAGE, "--to-offset %lld is before --from-offset %lld",
                           c->to_offset, c->from_offset);
    if (c->follow && c->to_offset >= 0)
        return replay_fail(REPLAY_EXIT_USAGE, "--follow and --to-offset exclude each other");
    return REPLAY_EXIT_OK;
}

static int replay_open_kafka(replay_t *r)
{
    char err[512];
    r->log =
        hf_logread_new(r->cfg.kafka_brokers, &r->cfg.kafka_props, r->cfg.topic, err, sizeof err);
    if (!r->log)
        return replay_fail(REPLAY_EXIT_USAGE, "kafka settings: %s", err);
    int topic_partitions = 0;
    hf_err_t e = hf_logread_partition_count(r->log, REPLAY_KAFKA_TIMEOUT_MS, &topic_partitions);
    if (e == HF_ERR_NOT_FOUND)
        return replay_fail(REPLAY_EXIT_KAFKA, "topic %s does not exist at %s", r->cfg.topic,
                           r->cfg.kafka_brokers);
    if (e != HF_OK)
        return replay_fail(REPLAY_EXIT_KAFKA, "kafka unreachable at %s (no answer in %d ms)",
                           r->cfg.kafka_brokers, REPLAY_KAFKA_TIMEOUT_MS);
    if (r->partition_count == 0) /* without PostgreSQL: the topic's count is the mapping's */
        r->partition_count = topic_partitions;
    if (r->partition_count > topic_partitions)
        return replay_fail(REPLAY_EXIT_KAFKA, "topic %s has %d partitions, holdfast.meta says %d",
                           r->cfg.topic, topic_partitions, r->partition_count);
    return REPLAY_EXIT_OK;
}

static int replay_resolve_range(replay_t *r)
{
    const replay_config_t *c = &r->cfg;
    r->partition = (int)c->partition;
    for (size_t i = 0; i < r->nchannels; i++) {
        const char *ch = r->channels[i];
        int p = hf_partition_for(ch, strlen(ch), r->partition_count);
        if (i == 0)
            r->partition = p;
        else if (p != r->partition) /* one read of one partition serves all of them */
            return replay_fail(REPLAY_EXIT_USAGE,
                               "channels %s (partition %d) and %s (partition %d) live in "
                               "different partitions: run once per partition",
                               r->channels[0], r->partition, ch, p);
    }
    if (r->partition >= r->partition_count)
        return replay_fail(REPLAY_EXIT_RANGE, "partition %d out of range: valid 0..%d",
                           r->partition, r->partition_count - 1);
    if (hf_logread_watermarks(r->log, r->partition, REPLAY_KAFKA_TIMEOUT_MS, &r->low, &r->high) !=
        HF_OK)
        return replay_fail(REPLAY_EXIT_KAFKA, "kafka unreachable at %s (offsets of partition %d)",
                           c->kafka_brokers, r->partition);
    r->from = c->from_offset >= 0 ? c->from_offset : r->low;
    if (c->from_time) {
        int rc = replay_pg_offset_at(r, &r->from);
        if (rc != REPLAY_EXIT_OK)
            return rc;
    }
    r->to = c->to_offset;
    if (r->from < r->low || r->from > r->high)
        return replay_fail(REPLAY_EXIT_RANGE,
                           "offset %lld of partition %d is %s: Kafka holds offsets %lld..%lld "
                           "(the next event gets %lld)",
                           (long long)r->from, r->partition,
                           r->from < r->low ? "older than the log keeps" : "past the end",
                           (long long)r->low, (long long)r->high - 1, (long long)r->high);
    return REPLAY_EXIT_OK;
}

static int replay_open_redis(replay_t *r)
{
    const char *url = r->cfg.republish_to;
    if (!url)
        return REPLAY_EXIT_OK;
    hf_redis_target_t target;
    char why[700];
    hf_err_t err;
    if (hf_redis_target_parse(url, r->cfg.redis_password_file, &target, why, sizeof why) != HF_OK)
        return replay_fail(REPLAY_EXIT_USAGE, "--republish-to: %s", why);
    r->redis = hf_redis_connect(&target, REPLAY_REDIS_TIMEOUT_MS, &err, why, sizeof why);
    hf_redis_target_free(&target);
    if (!r->redis)
        return replay_fail(REPLAY_EXIT_FAILED, "%s", why);
    return REPLAY_EXIT_OK;
}

/* ---- reading and printing ---- */

static int replay_redis_drain(replay_t *r, size_t keep)
{
    while (r->redis_pending > keep) {
        redisReply *reply = NULL;
        if (redisGetReply(r->redis, (void **)&reply) != REDIS_OK || !reply ||
            reply->type == REDIS_REPLY_ERROR) {
            replay_fail(REPLAY_EXIT_FAILED, "redis: %s", reply ? reply->str : r->redis->errstr);
            if (reply)
                freeReplyObject(reply);
            return REPLAY_EXIT_FAILED;
        }
        freeReplyObject(reply);
        r->redis_pending--;
    }
    return REPLAY_EXIT_OK;
}

/* The envelope as the live path carries it, plus the replay flag. */
static int replay_republish(replay_t *r, hf_envelope_t env, int64_t offset, int64_t prev)
{
    env.offset = offset;
    env.prev_offset = prev == HF_PREV_OFFSET_UNKNOWN ? HF_OFFSET_NONE : prev;
    env.replay = true;
    if (!env.epoch && r->epoch[0]) {
        env.epoch = r->epoch;
        env.epoch_len = strlen(r->epoch);
    }
    hf_buf_reset(&r->envelope);
    if (hf_envelope_encode(&env, &r->envelope) != HF_OK)
        return replay_fail(REPLAY_EXIT_FAILED, "cannot encode event %.*s", (int)env.id_len, env.id);
    char channel[HF_CHANNEL_MAX + 8];
    snprintf(channel, sizeof channel, HF_REDIS_CHANNEL_PREFIX "%.*s", (int)env.channel_len,
             env.channel);
    if (redisAppendCommand(r->redis, "PUBLISH %s %b", channel, r->envelope.data, r->envelope.len) !=
        REDIS_OK)
        return replay_fail(REPLAY_EXIT_FAILED, "redis: out of memory");
    r->redis_pending++;
    return replay_redis_drain(r, REPLAY_REDIS_PIPELINE);
}

/* One record: decode, derive prev_offset, filter, print, republish. */
static int replay_record(replay_t *r, const hf_log_record_t *rec)
{
    hf_envelope_t env;
    const char *why = NULL;
    r->records++;
    if (hf_envelope_decode(rec->value, rec->value_len, &env, &why) != HF_OK) {
        fprintf(stderr, "holdfast-replay: partition %d offset %lld: not an event (%s), skipped\n",
                r->partition, (long long)rec->offset, why);
        return REPLAY_EXIT_OK;
    }
    const char *epoch = env.epoch ? env.epoch : r->epoch;
    size_t epoch_len = env.epoch ? env.epoch_len : strlen(r->epoch);
    int64_t prev;
    bool known = replay_chains_step(r->chains, env.channel, env.channel_len, epoch, epoch_len,
                                    rec->offset, &prev);
    if (r->nchannels && !replay_wanted(r, env.channel, env.channel_len))
        return REPLAY_EXIT_OK;
    if (!known) /* first of its channel in this read */
        prev = r->from == 0 && !replay_chains_forgot(r->chains)
                   ? -1 /* read from the log's first record: truly its first */
                   : replay_pg_prev(r, env.channel, env.channel_len, rec->offset);
    env.partition = rec->partition;
    hf_buf_reset(&r->line);
    hf_event_json_append(&r->line, &env, rec->offset, prev,
                         env.epoch || !r->epoch[0] ? NULL : r->epoch);
    hf_buf_append_str(&r->line, "\n");
    if (fwrite(r->line.data, 1, r->line.len, stdout) != r->line.len)
        return replay_fail(REPLAY_EXIT_FAILED, "stdout: %s", strerror(errno));
    r->events++;
    return r->redis ? replay_republish(r, env, rec->offset, prev) : REPLAY_EXIT_OK;
}

static void replay_progress(replay_t *r, int64_t offset, bool final)
{
    if (r->cfg.quiet)
        return;
    double secs = replay_elapsed(r->t0_us);
    double rate = secs > 0 ? (double)r->records / secs : 0;
    if (final) {
        fprintf(stderr,
                "holdfast-replay: %lld events printed from %lld records of partition %d "
                "(offsets %lld..%lld) in %.2f s, %.0f records/s\n",
                r->events, r->records, r->partition, (long long)r->from, (long long)offset, secs,
                rate);
        return;
    }
    if (replay_elapsed(r->last_progress_us) * 1000 < REPLAY_PROGRESS_MS)
        return;
    r->last_progress_us = hf_now_us();
    int64_t end = r->to >= 0 && r->to < r->high ? r->to + 1 : r->high;
    fprintf(stderr,
            "holdfast-replay: partition %d at offset %lld, %lld offsets left, %lld records read, "
            "%lld events printed, %.0f records/s\n",
            r->partition, (long long)offset, (long long)(end > offset ? end - offset - 1 : 0),
            r->records, r->events, rate);
}

/* True when the read is over: past --to-offset, --limit reached, or (not
 * following) the end of the log as it was when the run started. */
static bool replay_done(const replay_t *r, int64_t next)
{
    if (r->to >= 0 && next > r->to)
        return true;
    if (r->cfg.limit > 0 && r->events >= r->cfg.limit)
        return true;
    return !r->cfg.follow && next >= r->high;
}

static int replay_read(replay_t *r)
{
    int64_t next = r->from, last = r->from - 1;
    int64_t idle_since_us = hf_now_us();
    if (replay_done(r, next)) {
        replay_progress(r, last, true);
        return REPLAY_EXIT_OK;
    }
    if (hf_logread_seek(r->log, r->partition, r->from) != HF_OK)
        return replay_fail(REPLAY_EXIT_KAFKA, "kafka: cannot assign partition %d", r->partition);
    while (!replay_stop) {
        hf_log_record_t rec;
        char err[256];
        hf_err_t e = hf_logread_next(r->log, 200, &rec, err, sizeof err);
        if (e == HF_ERR_TIMEOUT) {
            fflush(stdout);
            if (!r->cfg.follow && replay_elapsed(idle_since_us) * 1000 > REPLAY_STALL_MS)
                return replay_fail(REPLAY_EXIT_FAILED,
                                   "kafka: no record for %d s at offset %lld of partition %d "
                                   "although the log ends at %lld",
                                   REPLAY_STALL_MS / 1000, (long long)next, r->partition,
                                   (long long)r->high);
            continue;
        }
        if (e == HF_ERR_NOT_FOUND)
            return replay_fail(REPLAY_EXIT_RANGE, "kafka: offset %lld of partition %d: %s",
                               (long long)next, r->partition, err);
        if (e != HF_OK)
            return replay_fail(REPLAY_EXIT_FAILED, "kafka: %s", err);
        idle_since_us = hf_now_us();
        if (r->to >= 0 && rec.offset > r->to)
            break;
        int rc = replay_record(r, &rec);
        if (rc != REPLAY_EXIT_OK)
            return rc;
        last = rec.offset;
        next = rec.offset + 1;
        replay_progress(r, rec.offset, false);
        if (replay_done(r, next))
            break;
    }
    fflush(stdout);
    replay_progress(r, last, true);
    return r->redis ? replay_redis_drain(r, 0) : REPLAY_EXIT_OK;
}

/* ---- main ---- */

static int replay_run(replay_t *r)
{
    int rc = replay_check_usage(&r->cfg);
    if (rc == REPLAY_EXIT_OK)
        rc = replay_parse_channels(r);
    if (rc == REPLAY_EXIT_OK)
        rc = replay_pg_open(r);
    if (rc == REPLAY_EXIT_OK && r->pg && r->nchannels)
        rc = replay_pg_channel_known(r);
    if (rc == REPLAY_EXIT_OK)
        rc = replay_open_kafka(r);
    if (rc == REPLAY_EXIT_OK)
        rc = replay_resolve_range(r);
    if (rc == REPLAY_EXIT_OK)
        rc = replay_open_redis(r);
    if (rc != REPLAY_EXIT_OK)
        return rc;
    r->chains = replay_chains_new(REPLAY_CHAINS_MAX);
    r->t0_us = hf_now_us();
    r->last_progress_us = r->t0_us;
    return replay_read(r);
}

static void replay_free(replay_t *r)
{
    hf_logread_free(r->log);
    if (r->pg)
        PQfinish(r->pg);
    if (r->redis)
        redisFree(r->redis);
    replay_chains_free(r->chains);
    for (size_t i = 0; i < r->nchannels; i++)
        hf_free(r->channels[i]);
    hf_free(r->channels);
    hf_free(r->channel_array);
    hf_buf_free(&r->line);
    hf_buf_free(&r->envelope);
    hf_config_free(replay_settings, REPLAY_NSETTINGS, &r->cfg);
}

int main(int argc, char **argv)
{
    static replay_t r;
    bool help = false;
    char err[512];
    const char *usage =
        "holdfast-replay (--channel C | --partition P) [--from-offset N | --from-time T]\n"
        "                [--to-offset M | --limit K] [--follow] [--republish-to redis://H:P]\n"
        "Prints the events of a channel (or a whole partition) from the Kafka log, one JSON\n"
        "line each. Exit: 0 ok, 1 failed midway, 2 usage, 3 Kafka unreachable, 4 out of\n"
        "range, 5 unknown channel.";
    if (hf_config_load(replay_settings, REPLAY_NSETTINGS, &r.cfg, argc, argv, usage, &help, err,
                       sizeof err) != HF_OK) {
        fprintf(stderr, "holdfast-replay: %s\n", err);
        hf_config_free(replay_settings, REPLAY_NSETTINGS, &r.cfg);
        return REPLAY_EXIT_USAGE;
    }
    if (help) {
        hf_config_free(replay_settings, REPLAY_NSETTINGS, &r.cfg);
        return REPLAY_EXIT_OK;
    }
    struct sigaction sa = {.sa_handler = replay_on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = replay_run(&r);
    replay_free(&r);
    return rc;
}
