/* verify.c - the verdict: every client's record against PostgreSQL's
 * holdfast.events, the source of truth.
 *
 * For each client: the events of its channel with a Kafka offset above
 * the one it first subscribed at must each have arrived exactly once, in
 * offset order, each prev_offset naming the event before it, each carrying
 * the seq PostgreSQL has for that offset. For the publisher: every
 * acknowledged event is in PostgreSQL exactly once (by Idempotency-Key).
 * The relay may still be moving the last events when the run ends, so this
 * waits (bounded) until every one of the run's events has its offset. */
#include "driver.h"

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "holdfast/alloc.h"

#define VERIFY_RELAY_WAIT_US 30000000

typedef struct verify_event {
    int64_t offset; /* Kafka offset */
    int64_t seq;    /* from the Idempotency-Key; -1 when it has none of ours */
} verify_event_t;

typedef struct verify_channel {
    verify_event_t *ev; /* owned: by offset */
    size_t n, cap;      /* length, capacity */
} verify_channel_t;

/* Keeps the first violation's description for the summary. */
__attribute__((format(printf, 2, 3))) static void verify_problem(cd_verdict_t *v, const char *fmt,
                                                                 ...)
{
    if (v->first_problem[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->first_problem, sizeof v->first_problem, fmt, ap);
    va_end(ap);
}

static char *verify_channels; /* the run's channels as a text[] literal */

/* The run's channel names as one text[] parameter, so every query goes
 * by the channel index instead of scanning the table. */
static const char *verify_channels_literal(const cd_run_t *run)
{
    if (verify_channels)
        return verify_channels;
    size_t size = (size_t)run->nchannels * (strlen(run->prefix) + 12) + 3, len = 1;
    verify_channels = hf_malloc(size);
    verify_channels[0] = '{';
    for (int c = 0; c < run->nchannels; c++)
        len += (size_t)snprintf(verify_channels + len, size - len, "%s%s:%d", c ? "," : "",
                                run->prefix, c);
    snprintf(verify_channels + len, size - len, "}");
    return verify_channels;
}

static PGresult *verify_query(PGconn *pg, const char *sql, const char *pattern)
{
    const char *params[1] = {pattern};
    PGresult *res = PQexecParams(pg, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "holdfast-chaos-driver: PostgreSQL: %s", PQerrorMessage(pg));
        PQclear(res);
        return NULL;
    }
    return res;
}

/* Waits until the relay gave every event of the run its offset. */
static int verify_wait_relayed(PGconn *pg, const char *pattern, cd_verdict_t *v)
{
    int64_t deadline = hf_now_us() + VERIFY_RELAY_WAIT_US;
    for (;;) {
        PGresult *res =
            verify_query(pg,
                         "SELECT count(*), count(*) FILTER (WHERE kafka_offset IS "
                         "NULL) FROM holdfast.event_log WHERE channel = ANY($1::text[])",
                         pattern);
        if (!res)
            return -1;
        v->pg_events = atoll(PQgetvalue(res, 0, 0));
        v->pg_unrelayed = atoll(PQgetvalue(res, 0, 1));
        PQclear(res);
        if (v->pg_unrelayed == 0 || hf_now_us() > deadline)
            return 0;
        struct timespec ts = {.tv_nsec = 200000000};
        nanosleep(&ts, NULL);
    }
}

/* The publisher's own Idempotency-Key from the stored one: ingest scopes
 * keys to the publisher's subject as "<subject length>:<subject>:<key>". */
static const char *verify_client_key(const char *stored)
{
    char *end = NULL;
    unsigned long n = stored ? strtoul(stored, &end, 10) : 0;
    if (!stored || end == stored || *end != ':' || strlen(end + 1) <= n || end[1 + n] != ':')
        return NULL;
    return end + 2 + n;
}

static int64_t verify_seq_of(const cd_run_t *run, const char *stored)
{
    const char *key = verify_client_key(stored);
    size_t n = strlen(run->prefix);
    if (!key || strncmp(key, run->prefix, n) != 0 || key[n] != '-')
        return -1;
    char *end;
    long long seq = strtoll(key + n + 1, &end, 10);
    return *end == '\0' && seq >= 0 ? seq : -1;
}

/* Loads the run's events per channel, and counts each acknowledged seq. */
static int verify_load(cd_run_t *run, PGconn *pg, const char *pattern, verify_channel_t *ch,
                       int *copies)
{
    PGresult *res =
        verify_query(pg,
                     "SELECT channel, kafka_offset, idempotency_key FROM "
                     "holdfast.event_log WHERE channel = ANY($1::text[]) ORDER BY channel, "
                     "kafka_offset",
                     pattern);
    if (!res)
        return -1;
    size_t plen = strlen(run->prefix);
    for (int r = 0; r < PQntuples(res); r++) {
        int64_t seq = verify_seq_of(run, PQgetisnull(res, r, 2) ? NULL : PQgetvalue(res, r, 2));
        if (seq >= 0 && seq < run->nevents)
            copies[seq]++;
        int c = atoi(PQgetvalue(res, r, 0) + plen + 1);
        if (PQgetisnull(res, r, 1) || c < 0 || c >= run->nchannels)
            continue;
        verify_channel_t *vc = &ch[c];
        if (vc->n == vc->cap) {
            vc->cap = vc->cap ? vc->cap * 2 : 256;
            vc->ev = hf_realloc(vc->ev, vc->cap * sizeof *vc->ev);
        }
        vc->ev[vc->n++] = (verify_event_t){atoll(PQgetvalue(res, r, 1)), seq};
    }
    PQclear(res);
    return 0;
}

/* What the log itself must show: per channel, Kafka offsets in publish
 * (seq) order, and each event on the channel its seq was published to. */
static void verify_log_order(const cd_run_t *run, const verify_channel_t *ch, cd_verdict_t *v)
{
    for (int c = 0; c < run->nchannels; c++) {
        int64_t last = -1;
        for (size_t i = 0; i < ch[c].n; i++) {
            int64_t seq = ch[c].ev[i].seq;
            if (seq < 0)
                continue; /* not the publisher's (a scenario's ballast) */
            if (seq % run->nchannels != c) {
                v->content_mismatches++;
                verify_problem(v, "seq %lld stored on channel %d", (long long)seq, c);
            }
            if (seq < last) {
                v->order_violations++;
                verify_problem(v, "channel %d: seq %lld at offset %lld after seq %lld", c,
                               (long long)seq, (long long)ch[c].ev[i].offset, (long long)last);
            }
            last = seq;
        }
    }
}

static void verify_publisher(const cd_run_t *run, const int *copies, cd_verdict_t *v)
{
    for (long long s = 0; s < run->nevents; s++) {
        if (!run->events[s].acked_us)
            continue;
        if (copies[s] == 0) {
            v->acked_missing++;
            verify_problem(v, "event seq %lld acknowledged but not in PostgreSQL", s);
        } else if (copies[s] > 1) {
            v->acked_doubled++;
            verify_problem(v, "event seq %lld stored %d times", s, copies[s]);
        }
    }
}

static size_t verify_find(const verify_channel_t *vc, int64_t offset)
{
    size_t lo = 0, hi = vc->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (vc->ev[mid].offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < vc->n && vc->ev[lo].offset == offset ? lo : SIZE_MAX;
}

static void verify_client(const cd_client_t *c, const verify_channel_t *vc, unsigned *seen,
                          cd_verdict_t *v)
{
    long long owed = 0, missing = 0;
    memset(seen, 0, vc->n * sizeof *seen);
    for (size_t k = 0; k < c->ngot; k++) {
        const cd_delivery_t *d = &c->got[k];
        size_t i = verify_find(vc, d->offset);
        if (i == SIZE_MAX) {
            v->unexpected++;
            verify_problem(v, "client %d: offset %lld not owed", c->index, (long long)d->offset);
        } else if (seen[i]++) {
            v->duplicates++;
            verify_problem(v, "client %d: offset %lld twice", c->index, (long long)d->offset);
        } else if (vc->ev[i].seq != d->seq) {
            v->content_mismatches++;
            verify_problem(v, "client %d: offset %lld carried seq %lld", c->index,
                           (long long)d->offset, (long long)d->seq);
        }
        if (k > 0 && d->offset < c->got[k - 1].offset) {
            v->order_violations++;
            verify_problem(v, "client %d: offset %lld after %lld", c->index, (long long)d->offset,
                           (long long)c->got[k - 1].offset);
        }
        int64_t before = k > 0 ? c->got[k - 1].offset : c->start_offset;
        if (d->prev != -2 && (k > 0 ? d->prev != before : d->prev > before)) {
            v->chain_breaks++;
            verify_problem(v, "client %d: offset %lld has prev_offset %lld", c->index,
                           (long long)d->offset, (long long)d->prev);
        }
    }
    for (size_t i = 0; i < vc->n; i++) {
        /* Every event of the channel is owed: the clients subscribed before
         * the first was published (a gateway answering `subscribed` past
         * one of them must not make it unowed). */
        owed++;
        if (!seen[i]) {
            if (!missing)
                verify_problem(v, "client %d: offset %lld never arrived", c->index,
                               (long long)vc->ev[i].offset);
            missing++;
        }
    }
    v->expected += owed;
    v->missing += missing;
    v->delivered += (long long)c->ngot;
    v->unexpected += c->wrong_channel;
    v->not_recovered += c->not_recovered;
    v->client_errors += c->errors;
    v->unavailable += c->unavailable;
    if (c->errors)
        verify_problem(v, "client %d: %d errors, the last: %s", c->index, c->errors, c->last_error);
    v->clients_incomplete += missing > 0;
    if (v->per_client_min < 0 || (long long)c->ngot < v->per_client_min)
        v->per_client_min = (long long)c->ngot;
    if ((long long)c->ngot > v->per_client_max)
        v->per_client_max = (long long)c->ngot;
}

static PGconn *verify_pg; /* the drain's connection, kept between calls */

long long cd_verify_unrelayed(cd_run_t *run)
{
    if (verify_pg && PQstatus(verify_pg) != CONNECTION_OK)
        cd_verify_close(); /* PostgreSQL restarted: a new connection */
    if (!verify_pg)
        verify_pg = PQconnectdb(run->pg_url);
    if (PQstatus(verify_pg) != CONNECTION_OK)
        return -1;
    const char *pattern = verify_channels_literal(run);
    PGresult *res = verify_query(
        verify_pg,
        "SELECT count(*) FROM holdfast.events e WHERE e.channel = ANY($1::text[])"
        " AND NOT EXISTS (SELECT 1 FROM holdfast.event_offsets o WHERE o.event_id = e.id)",
        pattern);
    if (!res) {
        cd_verify_close();
        return -1;
    }
    long long n = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

int cd_verify_max_offsets(cd_run_t *run, int64_t *max_offset)
{
    if (!verify_pg || PQstatus(verify_pg) != CONNECTION_OK)
        return -1;
    const char *pattern = verify_channels_literal(run);
    PGresult *res =
        verify_query(verify_pg,
                     "SELECT channel, max(kafka_offset) FROM holdfast.event_offsets WHERE "
                     "channel = ANY($1::text[]) AND kafka_offset IS NOT NULL GROUP BY channel",
                     pattern);
    if (!res)
        return -1;
    for (int c = 0; c < run->nchannels; c++)
        max_offset[c] = -1;
    for (int r = 0; r < PQntuples(res); r++) {
        int c = atoi(PQgetvalue(res, r, 0) + strlen(run->prefix) + 1);
        if (c >= 0 && c < run->nchannels && !PQgetisnull(res, r, 1))
            max_offset[c] = atoll(PQgetvalue(res, r, 1));
    }
    PQclear(res);
    return 0;
}

void cd_verify_close(void)
{
    PQfinish(verify_pg);
    verify_pg = NULL;
}

/* The end of the run: the channel list goes too. */
static void verify_done(void)
{
    cd_verify_close();
    hf_free(verify_channels);
    verify_channels = NULL;
}

int cd_verify(cd_run_t *run, cd_verdict_t *v)
{
    memset(v, 0, sizeof *v);
    v->per_client_min = -1;
    cd_verify_close();
    PGconn *pg = PQconnectdb(run->pg_url);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "holdfast-chaos-driver: PostgreSQL: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return -1;
    }
    const char *pattern = verify_channels_literal(run);
    verify_channel_t *ch = hf_calloc((size_t)run->nchannels, sizeof *ch);
    int *copies = hf_calloc((size_t)run->nevents + 1, sizeof *copies);
    int rc = verify_wait_relayed(pg, pattern, v);
    if (rc == 0)
        rc = verify_load(run, pg, pattern, ch, copies);
    PQfinish(pg);
    if (rc == 0) {
        size_t most = 1;
        for (int c = 0; c < run->nchannels; c++)
            most = ch[c].n > most ? ch[c].n : most;
        unsigned *seen = hf_calloc(most, sizeof *seen);
        verify_publisher(run, copies, v);
        verify_log_order(run, ch, v);
        for (int i = 0; i < run->nclients; i++)
            verify_client(&run->clients[i], &ch[i % run->nchannels], seen, v);
        hf_free(seen);
    }
    for (int c = 0; c < run->nchannels; c++)
        hf_free(ch[c].ev);
    hf_free(ch);
    hf_free(copies);
    verify_done();
    return rc;
}
