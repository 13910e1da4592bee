/* writer.c - the PostgreSQL writer pool: group commit behind one queue.
 *
 * Each writer thread owns one connection. It takes everything queued (up
 * to group_max requests), runs holdfast.ingest() for each inside one
 * transaction and commits once, so many requests share one WAL flush.
 * Only after COMMIT succeeded does any of them get a 2xx. If one request
 * fails inside the group, the group is rolled back and every request is
 * retried in a transaction of its own, so one bad request never fails its
 * neighbours. A lost connection answers the group 503 (with Retry-After);
 * a client that retries with the same Idempotency-Key gets the original
 * events if the commit had in fact gone through. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "holdfast/alloc.h"
#include "holdfast/log.h"
#include "ingest.h"

#define WRITER_STMT "holdfast_ingest"

struct ingest_writer {
    ingest_t *ing;
    int index;
    pthread_t thread;
    PGconn *conn;           /* NULL while disconnected */
    long long backoff_ms;   /* next reconnect delay */
    int64_t next_expiry_us; /* when writer 0 next expires idempotency keys */
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
    PGresult *res; /* owned; NULL unless OUTCOME_OK */
    char message[256];
} writer_result_t;

int64_t ingest_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void writer__disconnect(ingest_writer_t *w)
{
    if (!w->conn)
        return;
    PQfinish(w->conn);
    w->conn = NULL;
    atomic_fetch_sub(&w->ing->writers_connected, 1);
}

static hf_err_t writer__exec_ok(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    PQclear(res);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? HF_OK : HF_ERR_UNAVAILABLE;
}

static hf_err_t writer__connect(ingest_writer_t *w)
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
    PGresult *prep = PQprepare(conn, WRITER_STMT,
                               "SELECT status, id, channel, partition "
                               "FROM holdfast.ingest($1, $2, $3, $4, $5, $6)",
                               6, NULL);
    bool ok = PQresultStatus(prep) == PGRES_COMMAND_OK && writer__exec_ok(conn, sql) == HF_OK;
    if (!ok)
        hf_error("writer %d: cannot prepare the ingest statement (is the schema migrated?): %s",
                 w->index, PQerrorMessage(conn));
    PQclear(prep);
    if (!ok) {
        PQfinish(conn);
        return HF_ERR_UNAVAILABLE;
    }
    w->conn = conn;
    w->backoff_ms = 0;
    atomic_fetch_add(&w->ing->writers_connected, 1);
    hf_info("writer %d: connected to PostgreSQL", w->index);
    return HF_OK;
}

static void writer__answer_error(ingest_t *ing, ingest_job_t *job, int status, const char *code,
                                 const char *message)
{
    if (status == 503)
        hf_counter_inc(ing->m.requests_unavailable);
    hf_http_respond_error(job->req, status, code, message, status == 503 ? 1 : 0);
    ingest_job_free(job);
}

static void writer__answer_result(ingest_t *ing, ingest_job_t *job, writer_result_t *r)
{
    hf_histogram_observe(ing->m.request_seconds, (ingest_now_us() - job->enqueued_us) / 1e6);
    switch (r->outcome) {
    case OUTCOME_CONFLICT:
        hf_counter_inc(ing->m.requests_conflict);
        writer__answer_error(ing, job, 409, "idempotency_key_conflict",
                             "this Idempotency-Key was used with a different body");
        return;
    case OUTCOME_REJECTED:
        writer__answer_error(ing, job, 400, "rejected", r->message);
        return;
    case OUTCOME_UNAVAILABLE:
        writer__answer_error(ing, job, 503, "unavailable", r->message);
        return;
    case OUTCOME_INTERNAL:
        writer__answer_error(ing, job, 500, "internal", r->message);
        return;
    case OUTCOME_OK:
        break;
    }
    hf_buf_t out = HF_BUF_INIT;
    int rows = PQntuples(r->res);
    bool replayed = rows > 0 && strcmp(PQgetvalue(r->res, 0, 0), "replayed") == 0;
    if (job->is_batch)
        hf_buf_append_str(&out, "[");
    for (int i = 0; i < rows; i++) {
        hf_buf_printf(&out, "%s{\"id\":\"%s\",\"channel\":\"%s\",\"partition\":%s}", i ? "," : "",
                      PQgetvalue(r->res, i, 1), PQgetvalue(r->res, i, 2), PQgetvalue(r->res, i, 3));
    }
    hf_buf_append_str(&out, job->is_batch ? "]\n" : "\n");
    if (replayed)
        hf_counter_inc(ing->m.requests_replayed);
    else
        hf_counter_add(ing->m.events_created, (uint64_t)rows);
    size_t len;
    char *body = hf_buf_release(&out, &len);
    hf_http_respond(job->req, replayed ? 200 : 201, "application/json", body, len, NULL);
    ingest_job_free(job);
}

static writer_outcome_t writer__classify(const PGresult *res, PGconn *conn)
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

/* Runs holdfast.ingest() for one request inside the open transaction. */
static void writer__run_job(ingest_writer_t *w, ingest_job_t *job, writer_result_t *r)
{
    const char *values[6] = {job->body,         job->channels.data, job->types.data,
                             job->offsets.data, job->lengths.data,  job->idempotency_key};
    int lengths[6] = {(int)job->body_len, 0, 0, 0, 0, 0};
    int formats[6] = {1, 0, 0, 0, 0, 0}; /* the body goes as raw bytes: no escaping */
    PGresult *res = PQexecPrepared(w->conn, WRITER_STMT, 6, values, lengths, formats, 0);
    memset(r, 0, sizeof *r);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        r->outcome = writer__classify(res, w->conn);
        snprintf(r->message, sizeof r->message, "%s", PQresultErrorMessage(res));
        r->message[strcspn(r->message, "\n")] = '\0';
        if (r->outcome == OUTCOME_UNAVAILABLE)
            snprintf(r->message, sizeof r->message, "database unavailable; retry");
        PQclear(res);
        return;
    }
    if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "conflict") == 0) {
        r->outcome = OUTCOME_CONFLICT;
        PQclear(res);
        return;
    }
    r->outcome = OUTCOME_OK;
    r->res = res;
}

static void writer__clear_results(writer_result_t *results, int n)
{
    for (int i = 0; i < n; i++) {
        PQclear(results[i].res);
        results[i].res = NULL;
    }
}

/* Commits the group as one transaction. Returns false when it had to be
 * abandoned because one request failed (then nothing was answered). */
static bool writer__commit_group(ingest_writer_t *w, ingest_job_t **jobs, int n,
                                 writer_result_t *results)
{
    int64_t t0 = ingest_now_us();
    /* A lone request commits by itself (one statement, autocommit): two
     * round trips fewer for the unloaded case. */
    bool explicit_tx = n > 1;
    if (explicit_tx && writer__exec_ok(w->conn, "BEGIN") != HF_OK) {
        for (int i = 0; i < n; i++)
            results[i].outcome = OUTCOME_UNAVAILABLE;
        goto answer;
    }
    for (int i = 0; i < n; i++) {
        writer__run_job(w, jobs[i], &results[i]);
        if (results[i].outcome == OUTCOME_OK || results[i].outcome == OUTCOME_CONFLICT)
            continue;
        bool lost = PQstatus(w->conn) != CONNECTION_OK;
        writer__clear_results(results, i + 1);
        if (lost) {
            for (int k = 0; k < n; k++)
                results[k].outcome = OUTCOME_UNAVAILABLE;
            goto answer;
        }
        if (explicit_tx)
            writer__exec_ok(w->conn, "ROLLBACK");
        return false;
    }
    if (explicit_tx && writer__exec_ok(w->conn, "COMMIT") != HF_OK) {
        /* Unknown whether it committed: only a retry with the key can tell. */
        writer__clear_results(results, n);
        for (int i = 0; i < n; i++)
            results[i].outcome = OUTCOME_UNAVAILABLE;
    }
    hf_histogram_observe(w->ing->m.commit_seconds, (ingest_now_us() - t0) / 1e6);
answer:
    for (int i = 0; i < n; i++) {
        if (results[i].outcome == OUTCOME_UNAVAILABLE)
            snprintf(results[i].message, sizeof results[i].message,
                     "database unavailable; retry (with the same Idempotency-Key)");
        writer__answer_result(w->ing, jobs[i], &results[i]);
        writer__clear_results(&results[i], 1);
    }
    return true;
}

/* After a failed group: each request alone, so only the bad one fails. */
static void writer__commit_each(ingest_writer_t *w, ingest_job_t **jobs, int n,
                                writer_result_t *results)
{
    for (int i = 0; i < n; i++) {
        if (!writer__commit_group(w, &jobs[i], 1, &results[i]))
            writer__answer_result(w->ing, jobs[i], &results[i]);
    }
}

static void writer__process(ingest_writer_t *w, ingest_job_t **jobs, int n)
{
    writer_result_t *results = hf_calloc((size_t)n, sizeof *results);
    hf_histogram_observe(w->ing->m.group_size, n);
    if (!writer__commit_group(w, jobs, n, results))
        writer__commit_each(w, jobs, n, results);
    if (w->conn && PQstatus(w->conn) != CONNECTION_OK) {
        hf_warn("writer %d: lost the PostgreSQL connection", w->index);
        writer__disconnect(w);
    }
    hf_free(results);
}

/* Takes up to group_max jobs; answers those that waited too long. */
static int writer__take(ingest_writer_t *w, ingest_job_t **jobs, int max)
{
    ingest_t *ing = w->ing;
    int64_t now = ingest_now_us(), limit = ing->cfg.queue_timeout_ms * 1000;
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
        writer__answer_error(ing, expired, 503, "overloaded",
                             "request waited too long for the database; retry");
        expired = next;
    }
    return n;
}

/* With no writer connected, nothing queued can be committed soon. */
static void writer__fail_queue(ingest_t *ing)
{
    pthread_mutex_lock(&ing->lock);
    ingest_job_t *list = ing->queue_head;
    ing->queue_head = ing->queue_tail = NULL;
    ing->queue_len = 0;
    pthread_mutex_unlock(&ing->lock);
    while (list) {
        ingest_job_t *next = list->next;
        writer__answer_error(ing, list, 503, "unavailable", "database unavailable; retry");
        list = next;
    }
}

/* Sleeps up to ms; wakes early when stopping, or on new work if wake_on_work. */
static void writer__wait(ingest_t *ing, long long ms, bool wake_on_work)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&ing->lock);
    if (!ing->stopping && !(wake_on_work && ing->queue_head))
        pthread_cond_timedwait(&ing->wake, &ing->lock, &ts);
    pthread_mutex_unlock(&ing->lock);
}

static void writer__reconnect(ingest_writer_t *w)
{
    if (writer__connect(w) == HF_OK)
        return;
    if (atomic_load(&w->ing->writers_connected) == 0)
        writer__fail_queue(w->ing);
    long long cap = w->ing->cfg.reconnect_max_ms;
    w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : 100;
    if (w->backoff_ms > cap)
        w->backoff_ms = cap;
    writer__wait(w->ing, w->backoff_ms, false);
}

static void writer__expire_keys(ingest_writer_t *w)
{
    int64_t now = ingest_now_us();
    if (w->index != 0 || now < w->next_expiry_us)
        return;
    w->next_expiry_us = now + 60 * 1000000LL;
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT holdfast.expire_idempotency_keys('%lld milliseconds')",
             w->ing->cfg.idempotency_ttl_ms);
    if (writer__exec_ok(w->conn, sql) != HF_OK)
        hf_warn("writer 0: expiring idempotency keys failed: %s", PQerrorMessage(w->conn));
}

static void *writer__main(void *arg)
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
            writer__reconnect(w);
            continue;
        }
        int n = writer__take(w, jobs, max);
        if (n > 0) {
            writer__process(w, jobs, n);
            continue;
        }
        writer__expire_keys(w);
        writer__wait(ing, 1000, true);
    }
    writer__disconnect(w);
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
        int rc = pthread_create(&w->thread, NULL, writer__main, w);
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
    job->enqueued_us = ingest_now_us();
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
