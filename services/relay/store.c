/* store.c - the relay's PostgreSQL side.
 *
 * One connection, owned by the relay thread: LISTEN holdfast_outbox for
 * wake-ups, batches read in outbox order per partition, and the commit
 * (holdfast.relay_commit, schemas/sql/002_relay.sql) that writes offsets
 * back, deletes outbox rows and records the partition's Kafka position in
 * one transaction, only while the relay still holds the leases. Results
 * are read in binary so payloads arrive as the exact bytes, unescaped. */
#include <endian.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "holdfast/alloc.h"
#include "holdfast/envelope.h"
#include "holdfast/log.h"
#include "relay.h"

#define STORE_STATEMENT_TIMEOUT "SET statement_timeout = '15s'"

static bool store_ok(relay_t *r, PGresult *res, ExecStatusType want, const char *what)
{
    if (PQresultStatus(res) == want)
        return true;
    hf_logf_kv(HF_LOG_WARN, NULL, "postgres %s: %s", what,
               PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res) : PQerrorMessage(r->pg));
    if (PQstatus(r->pg) != CONNECTION_OK)
        atomic_store(&r->pg_ok, false);
    return false;
}

static hf_err_t store_exec(relay_t *r, const char *sql, const char *what)
{
    PGresult *res = PQexec(r->pg, sql);
    bool ok = store_ok(r, res, PGRES_COMMAND_OK, what);
    PQclear(res);
    return ok ? HF_OK : HF_ERR_UNAVAILABLE;
}

hf_err_t relay_store_connect(relay_t *r)
{
    relay_store_close(r);
    r->pg = PQconnectdb(r->cfg.pg_url);
    if (PQstatus(r->pg) != CONNECTION_OK) {
        hf_warn("postgres: %.*s", (int)strcspn(PQerrorMessage(r->pg), "\n"), PQerrorMessage(r->pg));
        relay_store_close(r);
        return HF_ERR_UNAVAILABLE;
    }
    if (store_exec(r, STORE_STATEMENT_TIMEOUT, "statement_timeout") != HF_OK ||
        store_exec(r, "LISTEN holdfast_outbox", "LISTEN") != HF_OK ||
        relay_store_load_meta(r) != HF_OK) {
        relay_store_close(r);
        return HF_ERR_UNAVAILABLE;
    }
    atomic_store(&r->pg_ok, true);
    return HF_OK;
}

void relay_store_close(relay_t *r)
{
    if (r->pg)
        PQfinish(r->pg);
    r->pg = NULL;
    atomic_store(&r->pg_ok, false);
}

bool relay_store_wait(relay_t *r, int timeout_ms)
{
    bool notified = false;
    PGnotify *n;
    PQconsumeInput(r->pg);
    while ((n = PQnotifies(r->pg))) {
        notified = true;
        PQfreemem(n);
    }
    if (notified)
        return true;
    struct pollfd pfd = {.fd = PQsocket(r->pg), .events = POLLIN};
    if (pfd.fd < 0 || poll(&pfd, 1, timeout_ms) <= 0)
        return false;
    if (!PQconsumeInput(r->pg)) {
        atomic_store(&r->pg_ok, false);
        return false;
    }
    while ((n = PQnotifies(r->pg))) {
        notified = true;
        PQfreemem(n);
    }
    return notified;
}

hf_err_t relay_store_load_meta(relay_t *r)
{
    PGresult *res = PQexec(r->pg, "SELECT epoch, partition_count FROM holdfast.meta");
    if (!store_ok(r, res, PGRES_TUPLES_OK, "reading holdfast.meta") || PQntuples(res) != 1) {
        PQclear(res);
        return HF_ERR_UNAVAILABLE;
    }
    const char *epoch = PQgetvalue(res, 0, 0);
    int count = atoi(PQgetvalue(res, 0, 1));
    if (count < 1 || count > RELAY_MAX_PARTITIONS) {
        hf_error("holdfast.meta partition_count %d is outside 1..%d", count, RELAY_MAX_PARTITIONS);
        PQclear(res);
        return HF_ERR_INVALID;
    }
    if (r->epoch[0] && strcmp(r->epoch, epoch) != 0) {
        hf_info("epoch changed from %s to %s", r->epoch, epoch);
        relay_chain_clear(r->chain); /* a new epoch starts every chain at -1 */
    }
    snprintf(r->epoch, sizeof r->epoch, "%s", epoch);
    r->partition_count = count;
    PQclear(res);
    return HF_OK;
}

static int64_t store_i64(const PGresult *res, int row, int col)
{
    uint64_t v;
    memcpy(&v, PQgetvalue(res, row, col), 8);
    return (int64_t)be64toh(v);
}

static int32_t store_i32(const PGresult *res, int row, int col)
{
    uint32_t v;
    memcpy(&v, PQgetvalue(res, row, col), 4);
    return (int32_t)be32toh(v);
}

void relay_batch_clear(relay_batch_t *batch)
{
    if (batch->rows)
        PQclear(batch->rows);
    batch->rows = NULL;
    batch->n = 0;
}

/* Columns: seq, partition, id, channel, type, content_type, payload,
 * created_us, offset (offset NULL for outbox rows). */
static void store_rows_to_batch(PGresult *res, relay_batch_t *batch)
{
    int n = PQntuples(res);
    if ((size_t)n > batch->cap) {
        batch->cap = (size_t)n;
        batch->events = hf_realloc(batch->events, batch->cap * sizeof *batch->events);
    }
    for (int i = 0; i < n; i++) {
        relay_event_t *ev = &batch->events[i];
        memset(ev, 0, sizeof *ev);
        ev->seq = store_i64(res, i, 0);
        ev->partition = store_i32(res, i, 1);
        ev->id = PQgetvalue(res, i, 2);
        ev->channel = PQgetvalue(res, i, 3);
        ev->type = PQgetisnull(res, i, 4) ? NULL : PQgetvalue(res, i, 4);
        ev->content_type = PQgetvalue(res, i, 5);
        ev->payload = (const uint8_t *)PQgetvalue(res, i, 6);
        ev->payload_len = (size_t)PQgetlength(res, i, 6);
        ev->created_at_us = store_i64(res, i, 7);
        ev->delivered = !PQgetisnull(res, i, 8);
        ev->offset = ev->delivered ? store_i64(res, i, 8) : HF_OFFSET_NONE;
        ev->prev_offset = HF_OFFSET_NONE;
    }
    batch->rows = res;
    batch->n = (size_t)n;
}

static void store_int_array(hf_buf_t *out, const int *v, size_t n)
{
    hf_buf_append_str(out, "{");
    for (size_t i = 0; i < n; i++)
        hf_buf_printf(out, "%s%d", i ? "," : "", v[i]);
    hf_buf_append_str(out, "}");
}

hf_err_t relay_store_fetch(relay_t *r, relay_batch_t *batch)
{
    relay_batch_clear(batch);
    int parts[RELAY_MAX_PARTITIONS];
    size_t nparts = 0;
    int64_t now = relay_now_us();
    for (int p = 0; p < r->partition_count; p++)
        if (relay_lease_producible(r, p, now))
            parts[nparts++] = p;
    if (nparts == 0)
        return HF_OK;
    hf_buf_t arr = HF_BUF_INIT;
    store_int_array(&arr, parts, nparts);
    char limit[32];
    long long per = r->cfg.batch_max / (long long)nparts;
    snprintf(limit, sizeof limit, "%lld", per > 0 ? per : 1);
    const char *params[2] = {arr.data, limit};
    PGresult *res = PQexecParams(
        r->pg,
        "SELECT o.seq, o.partition, e.id::text, e.channel, e.type, e.content_type, e.payload,"
        "       (extract(epoch FROM e.created_at) * 1000000)::int8, NULL::int8"
        "  FROM unnest($1::int[]) AS p(part)"
        " CROSS JOIN LATERAL (SELECT seq, partition, event_id FROM holdfast.outbox"
        "                      WHERE partition = p.part ORDER BY seq LIMIT $2::int) o"
        "  JOIN holdfast.events e ON e.id = o.event_id"
        " ORDER BY o.partition, o.seq",
        2, NULL, params, NULL, NULL, 1);
    hf_buf_free(&arr);
    if (!store_ok(r, res, PGRES_TUPLES_OK, "reading the outbox")) {
        PQclear(res);
        return HF_ERR_UNAVAILABLE;
    }
    store_rows_to_batch(res, batch);
    return HF_OK;
}

hf_err_t relay_store_load_events(relay_t *r, const char *const *ids, const int64_t *offsets,
                                 size_t n, int partition, relay_batch_t *batch)
{
    relay_batch_clear(batch);
    if (n == 0)
        return HF_OK;
    hf_buf_t id_arr = HF_BUF_INIT, off_arr = HF_BUF_INIT;
    hf_buf_append_str(&id_arr, "{");
    hf_buf_append_str(&off_arr, "{");
    for (size_t i = 0; i < n; i++) {
        hf_buf_printf(&id_arr, "%s\"%s\"", i ? "," : "", ids[i]);
        hf_buf_printf(&off_arr, "%s%lld", i ? "," : "", (long long)offsets[i]);
    }
    hf_buf_append_str(&id_arr, "}");
    hf_buf_append_str(&off_arr, "}");
    char part[16];
    snprintf(part, sizeof part, "%d", partition);
    const char *params[3] = {id_arr.data, off_arr.data, part};
    /* ids are canonical UUID text (kafka_header_id checks), so the primary key serves */
    PGresult *res = PQexecParams(
        r->pg,
        "SELECT 0::int8, e.partition, e.id::text, e.channel, e.type, e.content_type, e.payload,"
        "       (extract(epoch FROM e.created_at) * 1000000)::int8, u.off"
        "  FROM unnest($1::uuid[], $2::int8[]) AS u(id, off)"
        "  JOIN holdfast.events e ON e.id = u.id AND e.partition = $3::int"
        " ORDER BY u.off",
        3, NULL, params, NULL, NULL, 1);
    hf_buf_free(&id_arr);
    hf_buf_free(&off_arr);
    if (!store_ok(r, res, PGRES_TUPLES_OK, "reading events found in Kafka")) {
        PQclear(res);
        return HF_ERR_UNAVAILABLE;
    }
    store_rows_to_batch(res, batch);
    return HF_OK;
}

hf_err_t relay_store_commit(relay_t *r, const relay_batch_t *batch, const int *pos_parts,
                            const int64_t *pos_next, size_t npos)
{
    hf_buf_t parts = HF_BUF_INIT, ids = HF_BUF_INIT, offs = HF_BUF_INIT, pp = HF_BUF_INIT,
             pn = HF_BUF_INIT;
    hf_buf_append_str(&parts, "{");
    hf_buf_append_str(&ids, "{");
    hf_buf_append_str(&offs, "{");
    size_t k = 0;
    for (size_t i = 0; i < batch->n; i++) {
        const relay_event_t *ev = &batch->events[i];
        if (!ev->delivered)
            continue;
        const char *sep = k++ ? "," : "";
        hf_buf_printf(&parts, "%s%d", sep, ev->partition);
        hf_buf_printf(&ids, "%s%s", sep, ev->id);
        hf_buf_printf(&offs, "%s%lld", sep, (long long)ev->offset);
    }
    hf_buf_append_str(&parts, "}");
    hf_buf_append_str(&ids, "}");
    hf_buf_append_str(&offs, "}");
    store_int_array(&pp, pos_parts, npos);
    hf_buf_append_str(&pn, "{");
    for (size_t i = 0; i < npos; i++)
        hf_buf_printf(&pn, "%s%lld", i ? "," : "", (long long)pos_next[i]);
    hf_buf_append_str(&pn, "}");
    const char *params[7] = {r->cfg.relay_id, r->epoch, parts.data, ids.data,
                             offs.data,       pp.data,  pn.data};
    PGresult *res = PQexecParams(r->pg,
                                 "SELECT set_config('synchronous_commit', 'off', true),"
                                 " holdfast.relay_commit($1, $2, $3::int[], $4::uuid[],"
                                 " $5::int8[], $6::int[], $7::int8[])",
                                 7, NULL, params, NULL, NULL, 0);
    hf_buf_free(&parts);
    hf_buf_free(&ids);
    hf_buf_free(&offs);
    hf_buf_free(&pp);
    hf_buf_free(&pn);
    hf_err_t rc = HF_OK;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        rc = state && strcmp(state, "55P03") == 0 ? HF_ERR_CONFLICT : HF_ERR_UNAVAILABLE;
        store_ok(r, res, PGRES_TUPLES_OK, "committing a batch");
    }
    PQclear(res);
    return rc;
}

hf_err_t relay_store_dead_letter(relay_t *r, const relay_event_t *ev, const char *reason,
                                 int attempts)
{
    char att[16];
    snprintf(att, sizeof att, "%d", attempts);
    const char *params[4] = {r->cfg.relay_id, ev->id, reason, att};
    PGresult *res =
        PQexecParams(r->pg, "SELECT holdfast.relay_dead_letter($1, $2::uuid, $3, $4::int)", 4, NULL,
                     params, NULL, NULL, 0);
    bool ok = store_ok(r, res, PGRES_TUPLES_OK, "dead-lettering an event");
    PQclear(res);
    return ok ? HF_OK : HF_ERR_UNAVAILABLE;
}

hf_err_t relay_store_chain_fill(relay_t *r, const relay_batch_t *batch)
{
    hf_buf_t arr = HF_BUF_INIT;
    size_t missing = 0;
    relay_chain_reserve(r->chain, batch->n);
    hf_buf_append_str(&arr, "{");
    for (size_t i = 0; i < batch->n; i++) {
        int64_t off;
        if (!batch->events[i].delivered ||
            relay_chain_get(r->chain, batch->events[i].channel, &off))
            continue;
        /* channel names never hold quotes or backslashes (holdfast.channel_is_valid) */
        hf_buf_printf(&arr, "%s\"%s\"", missing++ ? "," : "", batch->events[i].channel);
    }
    hf_buf_append_str(&arr, "}");
    if (missing == 0) {
        hf_buf_free(&arr);
        return HF_OK;
    }
    const char *params[2] = {arr.data, r->epoch};
    PGresult *res = PQexecParams(
        r->pg,
        "SELECT c, (SELECT max(e.kafka_offset) FROM holdfast.events e"
        "            WHERE e.channel = c AND e.epoch = $2 AND e.kafka_offset IS NOT NULL)"
        "  FROM (SELECT DISTINCT c FROM unnest($1::text[]) AS c) u",
        2, NULL, params, NULL, NULL, 0);
    hf_buf_free(&arr);
    if (!store_ok(r, res, PGRES_TUPLES_OK, "reading channels' last offsets")) {
        PQclear(res);
        return HF_ERR_UNAVAILABLE;
    }
    for (int i = 0; i < PQntuples(res); i++)
        relay_chain_set(r->chain, PQgetvalue(res, i, 0),
                        PQgetisnull(res, i, 1) ? HF_OFFSET_NONE : atoll(PQgetvalue(res, i, 1)));
    PQclear(res);
    return HF_OK;
}

hf_err_t relay_store_next_offset(relay_t *r, int partition, int64_t *next, char *epoch,
                                 size_t epoch_size)
{
    char part[16];
    snprintf(part, sizeof part, "%d", partition);
    const char *params[1] = {part};
    PGresult *res =
        PQexecParams(r->pg,
                     "SELECT next_offset, coalesce(epoch, '') FROM holdfast.relay_partitions"
                     " WHERE partition = $1::int",
                     1, NULL, params, NULL, NULL, 0);
    if (!store_ok(r, res, PGRES_TUPLES_OK, "reading the partition's position")) {
        PQclear(res);
        return HF_ERR_UNAVAILABLE;
    }
    *next = PQntuples(res) ? atoll(PQgetvalue(res, 0, 0)) : 0;
    snprintf(epoch, epoch_size, "%s", PQntuples(res) ? PQgetvalue(res, 0, 1) : "");
    PQclear(res);
    return HF_OK;
}

hf_err_t relay_store_bump_epoch(relay_t *r, const char *reason)
{
    const char *params[1] = {reason};
    PGresult *res =
        PQexecParams(r->pg, "SELECT holdfast.bump_epoch($1)", 1, NULL, params, NULL, NULL, 0);
    bool ok = store_ok(r, res, PGRES_TUPLES_OK, "bumping the epoch");
    if (ok) {
        snprintf(r->epoch, sizeof r->epoch, "%s", PQgetvalue(res, 0, 0));
        relay_chain_clear(r->chain);
    }
    PQclear(res);
    return ok ? HF_OK : HF_ERR_UNAVAILABLE;
}

hf_err_t relay_store_outbox_stats(relay_t *r)
{
    PGresult *res = PQexec(r->pg, "SELECT count(*), coalesce(extract(epoch FROM clock_timestamp()"
                                  " - min(created_at)), 0) FROM holdfast.outbox");
    bool ok = store_ok(r, res, PGRES_TUPLES_OK, "outbox statistics");
    if (ok) {
        hf_gauge_set(r->m.outbox_rows, atof(PQgetvalue(res, 0, 0)));
        hf_gauge_set(r->m.outbox_oldest, atof(PQgetvalue(res, 0, 1)));
    }
    PQclear(res);
    return ok ? HF_OK : HF_ERR_UNAVAILABLE;
}
