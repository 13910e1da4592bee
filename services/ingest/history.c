/* history.c - GET /v1/channels/{channel}/events; see history.h.
 *
 * Answer: {"channel","partition","epoch","since","events":[event...],
 * "next_since","more","source","complete"}. events are the WebSocket
 * `event` messages (common/src/event_json.c) in offset order, each with
 * the offset of the channel's previous event; next_since is the offset to
 * pass as since for the next page; more says the page was cut by limit;
 * source is "kafka", "postgres" or "postgres+kafka"; complete is false
 * only when since belongs to another epoch (the log was reset or
 * repartitioned), in which case the page starts at the current epoch's
 * first event instead. */
#include "history.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "holdfast/alloc.h"
#include "holdfast/buf.h"
#include "holdfast/channel.h"
#include "holdfast/envelope.h"
#include "holdfast/event_json.h"
#include "holdfast/log.h"
#include "holdfast/logread.h"
#include "holdfast/partition.h"
#include "ingest.h"

#define HISTORY_KAFKA_TIMEOUT_MS 1000
#define HISTORY_READ_TIMEOUT_MS  3000 /* a page read from Kafka gives up after this */

typedef struct history_job {
    hf_http_req_t *req;
    char channel[HF_CHANNEL_MAX + 1];
    long long since, limit;
    char epoch[64]; /* the epoch since belongs to; "" when not given */
    struct history_job *next;
} history_job_t;

struct ingest_history {
    char *pg_url, *brokers, *topic;
    long long queue_max;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    history_job_t *head, *tail;
    long long queued;
    bool stopping;
    PGconn *pg;        /* worker only */
    hf_logread_t *log; /* worker only; NULL without brokers */
};

/* One page being built. */
typedef struct history_page {
    history_job_t *job;
    char epoch[64];
    int partition;
    long long since;
    int64_t last; /* offset of the last event added, or since */
    int64_t prev; /* the channel's previous offset for the next event */
    long long n;
    bool from_pg, from_kafka, more, complete;
    hf_buf_t events;
} history_page_t;

/* ---- PostgreSQL side (worker thread) ---- */

static bool history_pg_ready(ingest_history_t *h)
{
    if (h->pg && PQstatus(h->pg) == CONNECTION_OK)
        return true;
    if (h->pg)
        PQfinish(h->pg);
    h->pg = PQconnectdb(h->pg_url);
    if (PQstatus(h->pg) == CONNECTION_OK)
        return true;
    hf_warn("history: postgres: %s", PQerrorMessage(h->pg));
    return false;
}

/* Current epoch and partition of the page's channel. */
static hf_err_t history_meta(ingest_history_t *h, history_page_t *page)
{
    PGresult *res = PQexec(h->pg, "SELECT epoch, partition_count FROM holdfast.meta");
    hf_err_t rc = HF_ERR_UNAVAILABLE;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        snprintf(page->epoch, sizeof page->epoch, "%s", PQgetvalue(res, 0, 0));
        int count = atoi(PQgetvalue(res, 0, 1));
        page->partition = hf_partition_for(page->job->channel, strlen(page->job->channel), count);
        rc = HF_OK;
    }
    PQclear(res);
    return rc;
}

/* The channel's last offset before `before` in the current epoch; -1 if none. */
static hf_err_t history_pg_prev(ingest_history_t *h, history_page_t *page, int64_t before)
{
    char off[32];
    snprintf(off, sizeof off, "%lld", (long long)before);
    const char *params[3] = {page->job->channel, page->epoch, off};
    PGresult *res =
        PQexecParams(h->pg,
                     "SELECT coalesce(max(kafka_offset), -1) FROM holdfast.event_offsets"
                     " WHERE channel = $1 AND kafka_offset < $3::int8 AND epoch_id ="
                     " (SELECT id FROM holdfast.epochs WHERE epoch = $2)",
                     3, NULL, params, NULL, NULL, 0);
    hf_err_t rc = HF_ERR_UNAVAILABLE;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        page->prev = atoll(PQgetvalue(res, 0, 0));
        rc = HF_OK;
    }
    PQclear(res);
    return rc;
}

static void history_add(history_page_t *page, const hf_envelope_t *env, int64_t offset)
{
    if (page->n > 0)
        hf_buf_append_str(&page->events, ",");
    hf_event_json_append(&page->events, env, offset, page->prev, page->epoch);
    page->prev = offset;
    page->last = offset;
    page->n++;
}

static void history_add_pg_row(history_page_t *page, PGresult *res, int row)
{
    size_t payload_len = 0;
    unsigned char *payload =
        PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, 3), &payload_len);
    hf_envelope_t env;
    hf_envelope_init(&env);
    env.id = PQgetvalue(res, row, 0);
    env.id_len = strlen(env.id);
    env.channel = page->job->channel;
    env.channel_len = strlen(env.channel);
    if (!PQgetisnull(res, row, 1)) {
        env.type = PQgetvalue(res, row, 1);
        env.type_len = strlen(env.type);
    }
    env.content_type = PQgetvalue(res, row, 2);
    env.content_type_len = strlen(env.content_type);
    env.payload = payload ? payload : (const uint8_t *)"";
    env.payload_len = payload ? payload_len : 0;
    env.partition = page->partition;
    env.created_at_us = atoll(PQgetvalue(res, row, 4));
    history_add(page, &env, atoll(PQgetvalue(res, row, 5)));
    PQfreemem(payload);
}

/* Events with offsets in [start, end) from the events table, up to the limit. */
static hf_err_t history_pg_read(ingest_history_t *h, history_page_t *page, int64_t start,
                                int64_t end)
{
    char from[32], to[32], limit[32];
    snprintf(from, sizeof from, "%lld", (long long)start);
    snprintf(to, sizeof to, "%lld", (long long)end);
    snprintf(limit, sizeof limit, "%lld", page->job->limit - page->n + 1); /* +1: is there more? */
    const char *params[5] = {page->job->channel, page->epoch, from, to, limit};
    PGresult *res =
        PQexecParams(h->pg,
                     "SELECT e.id::text, e.type, e.content_type, e.payload,"
                     "       (extract(epoch FROM e.created_at) * 1000000)::int8, o.kafka_offset"
                     "  FROM holdfast.event_offsets o JOIN holdfast.events e ON e.id = o.event_id"
                     " WHERE o.channel = $1"
                     "   AND o.epoch_id = (SELECT id FROM holdfast.epochs WHERE epoch = $2)"
                     "   AND o.kafka_offset >= $3::int8 AND o.kafka_offset < $4::int8"
                     " ORDER BY o.kafka_offset LIMIT $5::int8",
                     5, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        hf_warn("history: postgres: %s", PQresultErrorMessage(res));
        PQclear(res);
        return HF_ERR_UNAVAILABLE;
    }
    int rows = PQntuples(res);
    for (int i = 0; i < rows; i++) {
        if (page->n >= page->job->limit) {
            page->more = true;
            break;
        }
        history_add_pg_row(page, res, i);
        page->from_pg = true;
    }
    PQclear(res);
    return HF_OK;
}

/* ---- Kafka side (worker thread) ---- */

/* The channel's events from Kafka, offsets [start, high), up to the limit. */
static hf_err_t history_kafka_read(ingest_history_t *h, history_page_t *page, int64_t start,
                                   int64_t high)
{
    if (start >= high || page->n >= page->job->limit)
        return HF_OK;
    if (hf_logread_seek(h->log, page->partition, start) != HF_OK)
        return HF_ERR_UNAVAILABLE;
    int64_t deadline = hf_now_us() + HISTORY_READ_TIMEOUT_MS * 1000LL;
    size_t channel_len = strlen(page->job->channel);
    while (hf_now_us() < deadline) {
        hf_log_record_t rec;
        char err[256];
        hf_err_t e = hf_logread_next(h->log, 100, &rec, err, sizeof err);
        if (e == HF_ERR_TIMEOUT)
            continue;
        if (e != HF_OK) {
            hf_warn("history: kafka partition %d offset %lld: %s", page->partition,
                    (long long)start, err);
            return e;
        }
        hf_envelope_t env;
        if (rec.key_len == channel_len && memcmp(rec.key, page->job->channel, channel_len) == 0 &&
            hf_envelope_decode(rec.value, rec.value_len, &env, NULL) == HF_OK) {
            if (page->n >= page->job->limit) {
                page->more = true;
                return HF_OK;
            }
            env.partition = rec.partition;
            history_add(page, &env, rec.offset);
            page->from_kafka = true;
        }
        if (rec.offset + 1 >= high)
            return HF_OK;
    }
    hf_warn("history: kafka partition %d: no record within %d ms", page->partition,
            HISTORY_READ_TIMEOUT_MS);
    return HF_ERR_TIMEOUT;
}

/* ---- one request ---- */

static void history_respond(history_page_t *page)
{
    hf_buf_t out = HF_BUF_INIT;
    hf_buf_append_str(&out, "{\"channel\":\"");
    hf_buf_append_json_escaped(&out, page->job->channel, strlen(page->job->channel));
    hf_buf_printf(&out, "\",\"partition\":%d,\"epoch\":\"%s\",\"since\":%lld,\"events\":[",
                  page->partition, page->epoch, page->since);
    hf_buf_append(&out, page->events.data, page->events.len);
    const char *source = page->from_pg && page->from_kafka ? "postgres+kafka"
                         : page->from_pg                   ? "postgres"
                                                           : "kafka";
    hf_buf_printf(&out, "],\"next_since\":%lld,\"more\":%s,\"source\":\"%s\",\"complete\":%s}",
                  (long long)page->last, page->more ? "true" : "false", source,
                  page->complete ? "true" : "false");
    size_t len;
    char *body = hf_buf_release(&out, &len);
    hf_http_respond(page->job->req, 200, "application/json", body, len, NULL);
}

/* Builds and sends one page: PostgreSQL for offsets Kafka no longer holds
 * (or all of them when Kafka is unreachable), then Kafka. */
static void history_serve(ingest_history_t *h, history_job_t *job)
{
    history_page_t page = {.job = job, .complete = true};
    if (!history_pg_ready(h) || history_meta(h, &page) != HF_OK) {
        hf_http_respond_error(job->req, 503, "unavailable", "database unavailable; retry", 1);
        return;
    }
    page.since = job->since;
    if (job->epoch[0] && strcmp(job->epoch, page.epoch) != 0) {
        page.since = -1; /* offsets of another epoch mean nothing here: start this one */
        page.complete = false;
    }
    page.last = page.since;
    int64_t start = page.since + 1, low = 0, high = 0;
    bool kafka = h->log && hf_logread_watermarks(h->log, page.partition, HISTORY_KAFKA_TIMEOUT_MS,
                                                 &low, &high) == HF_OK;
    hf_err_t rc = history_pg_prev(h, &page, start);
    if (rc == HF_OK && (!kafka || start < low))
        rc = history_pg_read(h, &page, start, kafka ? low : INT64_MAX);
    if (rc == HF_OK && kafka && !page.more) {
        int64_t from = start > low ? start : low;
        if (page.n > 0 && page.last + 1 > from)
            from = page.last + 1;
        if (history_kafka_read(h, &page, from, high) != HF_OK) {
            if (page.n == 0) /* PostgreSQL has the same events */
                rc = history_pg_read(h, &page, from, INT64_MAX);
            else /* keep what was read; the next page goes on from there */
                page.more = true;
        }
    }
    if (rc != HF_OK)
        hf_http_respond_error(job->req, 503, "unavailable", "database unavailable; retry", 1);
    else
        history_respond(&page);
    hf_buf_free(&page.events);
}

/* ---- the worker and its queue ---- */

static void *history_main(void *arg)
{
    ingest_history_t *h = arg;
    pthread_mutex_lock(&h->lock);
    for (;;) {
        while (!h->head && !h->stopping)
            pthread_cond_wait(&h->wake, &h->lock);
        history_job_t *job = h->head;
        if (!job)
            break; /* stopping with nothing queued */
        h->head = job->next;
        if (!h->head)
            h->tail = NULL;
        h->queued--;
        pthread_mutex_unlock(&h->lock);
        if (h->stopping)
            hf_http_respond_error(job->req, 503, "draining", "server is shutting down; retry", 1);
        else
            history_serve(h, job);
        hf_free(job);
        pthread_mutex_lock(&h->lock);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

ingest_history_t *ingest_history_start(const char *pg_url, const char *kafka_brokers,
                                       const hf_kafka_props_config_t *kafka_props,
                                       const char *topic, long long queue_max)
{
    ingest_history_t *h = hf_calloc(1, sizeof *h);
    h->pg_url = hf_strdup(pg_url);
    h->queue_max = queue_max;
    if (kafka_brokers && *kafka_brokers) {
        char err[512];
        h->log = hf_logread_new(kafka_brokers, kafka_props, topic, err, sizeof err);
        if (!h->log) { /* bad settings: a start-up error, not a quietly degraded service */
            hf_error("history: kafka settings: %s", err);
            hf_free(h->pg_url);
            hf_free(h);
            return NULL;
        }
    }
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->wake, NULL);
    if (pthread_create(&h->thread, NULL, history_main, h) != 0) {
        hf_error("history: cannot start its thread");
        hf_logread_free(h->log);
        hf_free(h->pg_url);
        hf_free(h);
        return NULL;
    }
    return h;
}

void ingest_history_stop(ingest_history_t *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->stopping = true;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    hf_logread_free(h->log);
    if (h->pg)
        PQfinish(h->pg);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->wake);
    hf_free(h->pg_url);
    hf_free(h);
}

/* ---- the route (lws thread) ---- */

/* since and limit: decimal integers in range, or the defaults when absent. */
static bool history_query_int(hf_http_req_t *req, const char *name, long long def, long long min,
                              long long max, long long *out)
{
    const char *v = hf_http_req_query(req, name);
    if (!v) {
        *out = def;
        return true;
    }
    char *end;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || n < min || n > max)
        return false;
    *out = n;
    return true;
}

/* /v1/channels/{channel}/events -> channel; false when the path is not that. */
static bool history_path_channel(const char *path, char *channel, size_t size)
{
    const char *prefix = "/v1/channels/", *suffix = "/events";
    size_t plen = strlen(prefix), slen = strlen(suffix), len = strlen(path);
    if (len <= plen + slen || strncmp(path, prefix, plen) != 0 ||
        strcmp(path + len - slen, suffix) != 0 || len - plen - slen >= size)
        return false;
    memcpy(channel, path + plen, len - plen - slen);
    channel[len - plen - slen] = '\0';
    return true;
}

void ingest_history_route(hf_http_req_t *req, void *ctx)
{
    ingest_t *ing = ctx;
    ingest_history_t *h = ing->history;
    history_job_t *job = hf_calloc(1, sizeof *job);
    const char *why = NULL, *epoch = hf_http_req_query(req, "epoch");
    if (!history_path_channel(hf_http_req_path(req), job->channel, sizeof job->channel)) {
        hf_free(job);
        hf_http_respond_error(req, 404, "not_found", "expected /v1/channels/{channel}/events", 0);
        return;
    }
    if (hf_channel_validate(job->channel, strlen(job->channel), &why) != HF_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "channel: %s", why);
        hf_free(job);
        hf_http_respond_error(req, 400, "invalid_channel", msg, 0);
        return;
    }
    hf_auth_identity_t *who = ingest_authenticate(ing, req);
    if (!who) {
        hf_free(job);
        return;
    }
    bool allowed = hf_auth_may_subscribe(who, job->channel);
    hf_auth_identity_free(who);
    if (!allowed) {
        char msg[300];
        snprintf(msg, sizeof msg, "token may not read channel '%s'", job->channel);
        hf_free(job);
        hf_counter_inc(ing->m.auth_forbidden);
        hf_http_respond_error(req, 403, "forbidden", msg, 0);
        return;
    }
    if (!history_query_int(req, "since", -1, -1, INT64_MAX - 1, &job->since) ||
        !history_query_int(req, "limit", HISTORY_LIMIT_DEFAULT, 1, HISTORY_LIMIT_MAX,
                           &job->limit) ||
        (epoch && strlen(epoch) >= sizeof job->epoch)) {
        hf_free(job);
        hf_http_respond_error(
            req, 400, "invalid_request",
            "since must be an offset >= -1, limit 1..1000, epoch at most 63 bytes", 0);
        return;
    }
    if (epoch)
        snprintf(job->epoch, sizeof job->epoch, "%s", epoch);
    job->req = req;
    pthread_mutex_lock(&h->lock);
    bool full = h->queued >= h->queue_max || h->stopping;
    if (!full) {
        if (h->tail)
            h->tail->next = job;
        else
            h->head = job;
        h->tail = job;
        h->queued++;
        pthread_cond_signal(&h->wake);
    }
    pthread_mutex_unlock(&h->lock);
    if (full) {
        hf_free(job);
        hf_http_respond_error(req, 503, "overloaded", "too many history requests queued; retry", 1);
    }
}
