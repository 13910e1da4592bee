/* writer.c - the PostgreSQL writer pool: group commit behind one queue.
 *
 * Each writer thread owns one connection. It takes everything queued (up
 * to group_max requests), inserts each request's events inside one
 * transaction and commits once, so many requests share one WAL flush.
 * Only after COMMIT succeeded does any of them get a 2xx. If one request
 * fails inside the group, the group is rolled back and every request is
 * retried in a transaction of its own, so one bad request never fails its
 * neighbours. A lost connection answers the group 503 (with Retry-After);
 * a client that retries with the same Idempotency-Key gets the original
 * events if the commit had in fact gone through.
 *
 * A request costs PostgreSQL one prepared INSERT: the writer makes the
 * event ids (version 7 UUIDs) and partitions (hf_partition_for, the same
 * hash as holdfast.partition_for) itself, and the statement inserts only
 * while holdfast.meta still has the partition count they were computed
 * with (otherwise it inserts nothing, the writer rereads the count and
 * tries again). An Idempotency-Key is recorded by the same statement, with
 * the event ids; a key already recorded inserts nothing and the writer
 * answers with the originals, or 409 for another body. The rows are the
 * ones holdfast.publish() writes from SQL (invariant 2, docs/design.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "holdfast/alloc.h"
#include "holdfast/clock.h"
#include "holdfast/log.h"
#include "holdfast/uuid.h"
#include "ingest.h"

#define WRITER_STMT_INSERT "holdfast_insert"
#define WRITER_STMT_KEYED  "holdfast_insert_keyed"
#define WRITER_STMT_REPLAY "holdfast_replay"
#define WRITER_NPARAMS     9

/* $1 ids uuid[], $2 channels text[], $3 partitions int[], $4 the body
 * (bytea, binary), $5 types text[], $6 offsets int[], $7 lengths int[],
 * $8 the partition count the partitions were computed with, $9 the key. */
#define WRITER_EVENTS_SELECT                                                                       \
    "SELECT u.id, u.channel, u.partition, u.type, substring($4::bytea FROM u.off + 1 FOR u.len)"   \
    "  FROM unnest($1::uuid[], $2::text[], $3::int[], $5::text[], $6::int[], $7::int[])"           \
    "       WITH ORDINALITY AS u(id, channel, partition, type, off, len, ord)"

static const char writer_insert_sql[] =
    "INSERT INTO holdfast.events (id, channel, partition, type, payload) " WRITER_EVENTS_SELECT
    " WHERE (SELECT partition_count FROM holdfast.meta) = $8::int ORDER BY u.ord";

/* Answers (keys recorded, events inserted, partition count now). */
static const char writer_keyed_sql[] =
    "WITH k AS (INSERT INTO holdfast.idempotency_keys (key, request_hash, event_ids)"
    "           SELECT $9, sha256($4::bytea), $1::uuid[]"
    "            WHERE (SELECT partition_count FROM holdfast.meta) = $8::int"
    "           ON CONFLICT (key) DO NOTHING RETURNING 1),"
    "     e AS (INSERT INTO holdfast.events (id, channel, partition, type, payload,"
    "                                        idempotency_key)"
    "           SELECT i.id, i.channel, i.partition, i.type, i.substring, $9"
    "             FROM (" WRITER_EVENTS_SELECT ") i"
    "            WHERE EXISTS (SELECT 1 FROM k) RETURNING 1)"
    "SELECT (SELECT count(*) FROM k), (SELECT count(*) FROM e),"
    "       (SELECT partition_count FROM holdfast.meta)";

/* A recorded key: (same body?, id, channel, partition) of each original
 * event, in order. */
static const char writer_replay_sql[] =
    "SELECT k.request_hash = sha256($2::bytea), e.id, e.channel, e.partition"
    "  FROM holdfast.idempotency_keys k"
    "  LEFT JOIN LATERAL unnest(k.event_ids) WITH ORDINALITY AS u(eid, ord) ON true"
    "  LEFT JOIN holdfast.events e ON e.id = u.eid"
    " WHERE k.key = $1 ORDER BY u.ord";

struct ingest_writer {
    ingest_t *ing;
    int index;
    pthread_t thread;
    PGconn *conn;           /* NULL while disconnected */
    long long backoff_ms;   /* next reconnect delay */
    int64_t next_expiry_us; /* when writer 0 next expires idempotency keys */
    int partition_count;    /* holdfast.meta's, as last read */
};

/* How a request of the group ended. */
typedef enum {
    OUTCOME_OK,          /* rows in res; answer after commit */
    OUTCOME_CONFLICT,    /* 409 */
    OUTCOME_REJECTED,    /* 400: PostgreSQL refused the data */
    OUTCOME_UNAVAILABLE, /* 503 */
    OUTCOME_INTERNAL,    /* 500 */
} writer_outcome_t;

typedef struct writer_result {
    writer_outcome_t outcome;
    bool replayed; /* the key's original events, not new ones */
    hf_buf_t body; /* OUTCOME_OK: the answer's JSON */
    char message[256];
} writer_result_t;

static void writer_disconnect(ingest_writer_t *w)
{
    if (!w->conn)
        return;
    PQfinish(w->conn);
    w->conn = NULL;
    atomic_fetch_sub(&w->ing->writers_connected, 1);
}

static hf_err_t writer_exec_ok(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    PQclear(res);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? HF_OK : HF_ERR_UNAVAILABLE;
}

static bool writer_prepare(PGconn *conn, const char *name, const char *sql, int nparams)
{
    PGresult *res = PQprepare(conn, name, sql, nparams, NULL);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    return ok;
}

static hf_err_t writer_read_partition_count(PGconn *conn, int *count)
{
    PGresult *res = PQexec(conn, "SELECT partition_count FROM holdfast.meta");
    hf_err_t rc = HF_ERR_UNAVAILABLE;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        *count = atoi(PQgetvalue(res, 0, 0));
        rc = *count > 0 ? HF_OK : HF_ERR_INVALID;
    }
    PQclear(res);
    return rc;
}

static hf_err_t writer_connect(ingest_writer_t *w)
{
    const ingest_config_t *cfg = &w->ing->cfg;
    /* Settings first so that the URL, expanded last, can override them. */
    const char *keys[] = {"connect_timeout",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          "application_name",
                          "dbname",
                          NULL};
    const char *vals[] = {"5", "10", "5", "3", "15000", "holdfast-ingest", cfg->pg_url, NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(conn) != CONNECTION_OK) {
        if (w->backoff_ms <= 100 || hf_log_enabled(HF_LOG_DEBUG))
            hf_warn("writer %d: cannot connect to PostgreSQL: %s", w->index, PQerrorMessage(conn));
        PQfinish(conn);
        return HF_ERR_UNAVAILABLE;
    }
    char sql[96];
    snprintf(sql, sizeof sql, "SET statement_timeout = %lld", cfg->statement_timeout_ms);
    bool ok = writer_exec_ok(conn, sql) == HF_OK &&
              writer_prepare(conn, WRITER_STMT_INSERT, writer_insert_sql, 8) &&
              writer_prepare(conn, WRITER_STMT_KEYED, writer_keyed_sql, 9) &&
              writer_prepare(conn, WRITER_STMT_REPLAY, writer_replay_sql, 2) &&
              writer_read_partition_count(conn, &w->partition_count) == HF_OK;
    if (!ok) {
        hf_error("writer %d: cannot prepare the ingest statements (is the schema migrated?): %s",
                 w->index, PQerrorMessage(conn));
        PQfinish(conn);
        return HF_ERR_UNAVAILABLE;
    }
    w->conn = conn;
    w->backoff_ms = 0;
    atomic_fetch_add(&w->ing->writers_connected, 1);
    hf_info("writer %d: connected to PostgreSQL", w->index);
    return HF_OK;
}

static void writer_answer_error(ingest_t *ing, ingest_job_t *job, int status, const char *code,
                                const char *message)
{
    if (status == 503)
        hf_counter_inc(ing->m.requests_unavailable);
    hf_http_respond_error(job->req, status, code, message, status == 503 ? 1 : 0);
    ingest_job_free(job);
}

static void writer_answer_result(ingest_t *ing, ingest_job_t *job, writer_result_t *r)
{
    hf_histogram_observe(ing->m.request_seconds, (hf_now_us() - job->enqueued_us) / 1e6);
    switch (r->outcome) {
    case OUTCOME_CONFLICT:
        hf_counter_inc(ing->m.requests_conflict);
        writer_answer_error(ing, job, 409, "idempotency_key_conflict",
                            "this Idempotency-Key was used with a different body");
        return;
    case OUTCOME_REJECTED:
        writer_answer_error(ing, job, 400, "rejected", r->message);
        return;
    case OUTCOME_UNAVAILABLE:
        writer_answer_error(ing, job, 503, "unavailable", r->message);
        return;
    case OUTCOME_INTERNAL:
        writer_answer_error(ing, job, 500, "internal", r->message);
        return;
    case OUTCOME_OK:
        break;
    }
    if (r->replayed)
        hf_counter_inc(ing->m.requests_replayed);
    else
        hf_counter_add(ing->m.events_created, (uint64_t)job->nevents);
    size_t len;
    char *body = hf_buf_release(&r->body, &len);
    hf_http_respond(job->req, r->replayed ? 200 : 201, "application/json", body, len, NULL);
    ingest_job_free(job);
}

static writer_outcome_t writer_classify(const PGresult *res, PGconn *conn)
{
    if (PQstatus(conn) != CONNECTION_OK)
        return OUTCOME_UNAVAILABLE;
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (!state)
        return OUTCOME_UNAVAILABLE;
    if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0)
        return OUTCOME_REJECTED;
    /* connection, rollback (deadlock, serialization), cancel/timeout, shutdown, resources */
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "40", 2) == 0 ||
        strncmp(state, "57", 2) == 0 || strncmp(state, "53", 2) == 0)
        return OUTCOME_UNAVAILABLE;
    return OUTCOME_INTERNAL;
}

/* The answer's JSON: each event's id, channel and partition, in order. */
static void writer_answer_append(hf_buf_t *out, int i, const char *id, const char *channel,
                                 int partition)
{
    hf_buf_printf(out, "%s{\"id\":\"%s\",\"channel\":\"%s\",\"partition\":%d}", i ? "," : "", id,
                  channel, partition);
}

static void writer_fail(writer_result_t *r, const PGresult *res, PGconn *conn)
{
    r->outcome = writer_classify(res, conn);
    snprintf(r->message, sizeof r->message, "%s", PQresultErrorMessage(res));
    r->message[strcspn(r->message, "\n")] = '\0';
    if (r->outcome == OUTCOME_UNAVAILABLE)
        snprintf(r->message, sizeof r->message, "database unavailable; retry");
}

/* The key was recorded before: the original events, or 409 for another body. */
static void writer_replay(ingest_writer_t *w, ingest_job_t *job, writer_result_t *r)
{
    const char *values[2] = {job->idempotency_key, job->body};
    int lengths[2] = {0, (int)job->body_len}, formats[2] = {0, 1};
    PGresult *res = PQexecPrepared(w->conn, WRITER_STMT_REPLAY, 2, values, lengths, formats, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        writer_fail(r, res, w->conn);
    } else if (PQntuples(res) == 0) {
        /* expired between the two statements: as if it had never been */
        r->outcome = OUTCOME_UNAVAILABLE;
        snprintf(r->message, sizeof r->message, "database busy; retry");
    } else if (PQgetvalue(res, 0, 0)[0] != 't') {
        r->outcome = OUTCOME_CONFLICT;
    } else {
        r->outcome = OUTCOME_OK;
        r->replayed = true;
        hf_buf_append_str(&r->body, job->is_batch ? "[" : "");
        for (int i = 0; i < PQntuples(res); i++)
            writer_answer_append(&r->body, i, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                                 atoi(PQgetvalue(res, i, 3)));
        hf_buf_append_str(&r->body, job->is_batch ? "]\n" : "\n");
    }
    PQclear(res);
}

/* One attempt at inserting the request's events with ids and partitions
 * made here. Returns false when holdfast.meta's partition count was not
 * the one used (nothing inserted; w->partition_count now holds the new). */
static bool writer_insert(ingest_writer_t *w, ingest_job_t *job, writer_result_t *r)
{
    int n = job->nevents;
    char(*ids)[HF_UUID_TEXT_LEN + 1] = hf_malloc((size_t)n * sizeof *ids);
    hf_buf_t id_arr = HF_BUF_INIT, part_arr = HF_BUF_INIT;
    char count[16];
    snprintf(count, sizeof count, "%d", w->partition_count);
    for (int i = 0; i < n; i++) {
        hf_uuid_v7(ids[i]);
        hf_buf_printf(&id_arr, "%s%s", i ? "," : "{", ids[i]);
        hf_buf_printf(&part_arr, "%s%u", i ? "," : "{",
                      job->hashes[i] % (uint32_t)w->partition_count);
    }
    hf_buf_append_str(&id_arr, "}");
    hf_buf_append_str(&part_arr, "}");
    const char *values[WRITER_NPARAMS] = {
        id_arr.data,       job->channels.data, part_arr.data, job->body,           job->types.data,
        job->offsets.data, job->lengths.data,  count,         job->idempotency_key};
    int lengths[WRITER_NPARAMS] = {0, 0, 0, (int)job->body_len};
    int formats[WRITER_NPARAMS] = {0, 0, 0, 1}; /* the body goes as raw bytes: no escaping */
    bool keyed = job->idempotency_key != NULL;
    PGresult *res = PQexecPrepared(w->conn, keyed ? WRITER_STMT_KEYED : WRITER_STMT_INSERT,
                                   keyed ? 9 : 8, values, lengths, formats, 0);
    hf_buf_free(&id_arr);
    hf_buf_free(&part_arr);
    bool done = true;
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        writer_fail(r, res, w->conn);
    } else if ((keyed ? atoi(PQgetvalue(res, 0, 2)) : w->partition_count) != w->partition_count ||
               (!keyed && atoi(PQcmdTuples(res)) != n)) {
        done = false; /* repartitioned: read the count again */
        if (writer_read_partition_count(w->conn, &w->partition_count) != HF_OK) {
            r->outcome = OUTCOME_UNAVAILABLE;
            snprintf(r->message, sizeof r->message, "database unavailable; retry");
            done = true;
        }
    } else if (keyed && atoi(PQgetvalue(res, 0, 0)) == 0) {
        writer_replay(w, job, r);
    } else {
        r->outcome = OUTCOME_OK;
        hf_buf_append_str(&r->body, job->is_batch ? "[" : "");
        for (int i = 0; i < n; i++)
            writer_answer_append(&r->body, i, ids[i], job->names[i],
                                 (int)(job->hashes[i] % (uint32_t)w->partition_count));
        hf_buf_append_str(&r->body, job->is_batch ? "]\n" : "\n");
    }
    PQclear(res);
    hf_free(ids);
    return done;
}

/* Inserts one request's events inside the open transaction. */
static void writer_run_job(ingest_writer_t *w, ingest_job_t *job, writer_result_t *r)
{
    memset(r, 0, sizeof *r);
    for (int attempt = 0; attempt < 3; attempt++)
        if (writer_insert(w, job, r))
            return;
    r->outcome = OUTCOME_UNAVAILABLE;
    snprintf(r->message, sizeof r->message, "the partition count is changing; retry");
}

static void writer_clear_results(writer_result_t *results, int n)
{
    for (int i = 0; i < n; i++)
        hf_buf_free(&results[i].body);
}

/* Commits the group as one transaction. Returns false when it had to be
 * abandoned because one request failed (then nothing was answered). */
static bool writer_commit_group(ingest_writer_t *w, ingest_job_t **jobs, int n,
                                writer_result_t *results)
{
    int64_t t0 = hf_now_us();
    /* A lone request commits by itself (one statement, autocommit): two
     * round trips fewer for the unloaded case. */
    bool explicit_tx = n > 1;
    if (explicit_tx && writer_exec_ok(w->conn, "BEGIN") != HF_OK) {
        for (int i = 0; i < n; i++)
            results[i].outcome = OUTCOME_UNAVAILABLE;
        goto answer;
    }
    for (int i = 0; i < n; i++) {
        writer_run_job(w, jobs[i], &results[i]);
        if (results[i].outcome == OUTCOME_OK || results[i].outcome == OUTCOME_CONFLICT)
            continue;
        bool lost = PQstatus(w->conn) != CONNECTION_OK;
        writer_clear_results(results, i + 1);
        if (lost) {
            for (int k = 0; k < n; k++)
                results[k].outcome = OUTCOME_UNAVAILABLE;
            goto answer;
        }
        if (explicit_tx)
            writer_exec_ok(w->conn, "ROLLBACK");
        return false;
    }
    if (explicit_tx && writer_exec_ok(w->conn, "COMMIT") != HF_OK) {
        /* Unknown whether it committed: only a retry with the key can tell. */
        writer_clear_results(results, n);
        for (int i = 0; i < n; i++)
            results[i].outcome = OUTCOME_UNAVAILABLE;
    }
    hf_histogram_observe(w->ing->m.commit_seconds, (hf_now_us() - t0) / 1e6);
answer:
    for (int i = 0; i < n; i++) {
        if (results[i].outcome == OUTCOME_UNAVAILABLE)
            snprintf(results[i].message, sizeof results[i].message,
                     "database unavailable; retry (with the same Idempotency-Key)");
        writer_answer_result(w->ing, jobs[i], &results[i]);
        writer_clear_results(&results[i], 1);
    }
    return true;
}

/* After a failed group: each request alone, so only the bad one fails. */
static void writer_commit_each(ingest_writer_t *w, ingest_job_t **jobs, int n,
                               writer_result_t *results)
{
    for (int i = 0; i < n; i++) {
        if (!writer_commit_group(w, &jobs[i], 1, &results[i]))
            writer_answer_result(w->ing, jobs[i], &results[i]);
    }
}

static void writer_process(ingest_writer_t *w, ingest_job_t **jobs, int n)
{
    writer_result_t *results = hf_calloc((size_t)n, sizeof *results);
    hf_histogram_observe(w->ing->m.group_size, n);
    if (!writer_commit_group(w, jobs, n, results))
        writer_commit_each(w, jobs, n, results);
    if (w->conn && PQstatus(w->conn) != CONNECTION_OK) {
        hf_warn("writer %d: lost the PostgreSQL connection", w->index);
        writer_disconnect(w);
    }
    hf_free(results);
}

/* Takes up to group_max jobs; answers those that waited too long. */
static int writer_take(ingest_writer_t *w, ingest_job_t **jobs, int max)
{
    ingest_t *ing = w->ing;
    int64_t now = hf_now_us(), limit = ing->cfg.queue_timeout_ms * 1000;
    int n = 0;
    ingest_job_t *expired = NULL;
    pthread_mutex_lock(&ing->lock);
    while (n < max && ing->queue_head) {
        ingest_job_t *job = ing->queue_head;
        ing->queue_head = job->next;
        ing->queue_len--;
        job->next = NULL;
        if (now - job->enqueued_us > limit) {
            job->next = expired;
            expired = job;
        } else {
            jobs[n++] = job;
        }
    }
    if (!ing->queue_head)
        ing->queue_tail = NULL;
    pthread_mutex_unlock(&ing->lock);
    while (expired) {
        ingest_job_t *next = expired->next;
        writer_answer_error(ing, expired, 503, "overloaded",
                            "request waited too long for the database; retry");
        expired = next;
    }
    return n;
}

/* With no writer connected, nothing queued can be committed soon. */
static void writer_fail_queue(ingest_t *ing)
{
    pthread_mutex_lock(&ing->lock);
    ingest_job_t *list = ing->queue_head;
    ing->queue_head = ing->queue_tail = NULL;
    ing->queue_len = 0;
    pthread_mutex_unlock(&ing->lock);
    while (list) {
        ingest_job_t *next = list->next;
        writer_answer_error(ing, list, 503, "unavailable", "database unavailable; retry");
        list = next;
    }
}

/* Sleeps up to ms; wakes early when stopping, or on new work if wake_on_work. */
static void writer_wait(ingest_t *ing, long long ms, bool wake_on_work)
{
    struct timespec ts = hf_wall_deadline(ms);
    pthread_mutex_lock(&ing->lock);
    if (!ing->stopping && !(wake_on_work && ing->queue_head))
        pthread_cond_timedwait(&ing->wake, &ing->lock, &ts);
    pthread_mutex_unlock(&ing->lock);
}

static void writer_reconnect(ingest_writer_t *w)
{
    if (writer_connect(w) == HF_OK)
        return;
    if (atomic_load(&w->ing->writers_connected) == 0)
        writer_fail_queue(w->ing);
    long long cap = w->ing->cfg.reconnect_max_ms;
    w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : 100;
    if (w->backoff_ms > cap)
        w->backoff_ms = cap;
    writer_wait(w->ing, w->backoff_ms, false);
}

static void writer_expire_keys(ingest_writer_t *w)
{
    int64_t now = hf_now_us();
    if (w->index != 0 || now < w->next_expiry_us)
        return;
    w->next_expiry_us = now + 60 * 1000000LL;
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT holdfast.expire_idempotency_keys('%lld milliseconds')",
             w->ing->cfg.idempotency_ttl_ms);
    if (writer_exec_ok(w->conn, sql) != HF_OK)
        hf_warn("writer 0: expiring idempotency keys failed: %s", PQerrorMessage(w->conn));
}

static void *writer_main(void *arg)
{
    ingest_writer_t *w = arg;
    ingest_t *ing = w->ing;
    int max = (int)ing->cfg.group_max;
    ingest_job_t **jobs = hf_calloc((size_t)max, sizeof *jobs);
    for (;;) {
        pthread_mutex_lock(&ing->lock);
        bool stop = ing->stopping && !ing->queue_head;
        pthread_mutex_unlock(&ing->lock);
        if (stop)
            break;
        if (!w->conn) {
            writer_reconnect(w);
            continue;
        }
        int n = writer_take(w, jobs, max);
        if (n > 0) {
            writer_process(w, jobs, n);
            continue;
        }
        writer_expire_keys(w);
        writer_wait(ing, 1000, true);
    }
    writer_disconnect(w);
    hf_free(jobs);
    return NULL;
}

hf_err_t ingest_writers_start(ingest_t *ing)
{
    ing->nwriters = (int)ing->cfg.writers;
    for (int i = 0; i < ing->nwriters; i++) {
        ingest_writer_t *w = hf_calloc(1, sizeof *w);
        w->ing = ing;
        w->index = i;
        ing->writers[i] = w;
        int rc = pthread_create(&w->thread, NULL, writer_main, w);
        if (rc != 0) {
            hf_error("cannot start writer thread: %s", strerror(rc));
            ing->nwriters = i;
            hf_free(w);
            return HF_ERR_INTERNAL;
        }
    }
    return HF_OK;
}

hf_err_t ingest_writers_submit(ingest_t *ing, ingest_job_t *job)
{
    if (atomic_load(&ing->writers_connected) == 0)
        return HF_ERR_UNAVAILABLE;
    job->enqueued_us = hf_now_us();
    pthread_mutex_lock(&ing->lock);
    if (ing->stopping || ing->queue_len >= (size_t)ing->cfg.queue_max) {
        pthread_mutex_unlock(&ing->lock);
        return ing->stopping ? HF_ERR_SHUTDOWN : HF_ERR_TOO_LARGE;
    }
    if (ing->queue_tail)
        ing->queue_tail->next = job;
    else
        ing->queue_head = job;
    ing->queue_tail = job;
    ing->queue_len++;
    pthread_cond_signal(&ing->wake);
    pthread_mutex_unlock(&ing->lock);
    return HF_OK;
}

size_t ingest_writers_queue_len(ingest_t *ing)
{
    pthread_mutex_lock(&ing->lock);
    size_t n = ing->queue_len;
    pthread_mutex_unlock(&ing->lock);
    return n;
}

void ingest_writers_stop(ingest_t *ing)
{
    pthread_mutex_lock(&ing->lock);
    ing->stopping = true;
    pthread_cond_broadcast(&ing->wake);
    pthread_mutex_unlock(&ing->lock);
    for (int i = 0; i < ing->nwriters; i++) {
        pthread_join(ing->writers[i]->thread, NULL);
        hf_free(ing->writers[i]);
        ing->writers[i] = NULL;
    }
    ing->nwriters = 0;
}
