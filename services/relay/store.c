/* store.c - the relay's SQL connection to PostgreSQL.
 *
 * One connection, owned by the relay thread, for everything but the
 * stream: the lease (lease.c), meta and partition positions, the chain
 * fill, dead letters, epoch bumps, the reconcile queries, and the commit.
 *
 * The commit records every acknowledged event in holdfast.event_offsets
 * (COPY: PostgreSQL's multi-row insert, the fewest WAL bytes per row) and
 * each touched partition's position (holdfast.relay_commit) in one
 * transaction, behind the lease fence. It runs asynchronously: the relay
 * keeps producing and publishing while it is under way, and starts the
 * next one only when it ended (so commit N+1 never lands without N). Its
 * transaction runs with synchronous_commit = off: what it records is in
 * Kafka already, and a commit lost to a crash is found again in Kafka's
 * tail (resync.c). Results are read in binary where payloads travel, so
 * bytes arrive exactly as published. */
#include <endian.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "holdfast/alloc.h"
#include "holdfast/envelope.h"
#include "holdfast/log.h"
#include "relay.h"

#define STORE_STATEMENT_TIMEOUT "SET statement_timeout = '15s'"

enum { COMMIT_BEGIN, COMMIT_COPY, COMMIT_FINISH };

/* What one commit writes for one partition. */
typedef struct commit_part {
    int partition;
    int64_t next_offset;
    relay_pos_t pos;
    int64_t known_from, known_to; /* equal: no range */
    uint64_t known_lsn;
} commit_part_t;

struct relay_commit {
    int stage;
    bool failed;
    relay_list_t events; /* recorded by this commit (owned) */
    commit_part_t parts[RELAY_MAX_PARTITIONS];
    int nparts;
    uint64_t confirmed_lsn;
    int64_t confirmed_us;
    hf_buf_t sql;
};

static void store_commit_ended(relay_t *r, bool ok);

static bool store_ok(relay_t *r, PGresult *res, ExecStatusType want, const char *what)
{
    if (res && PQresultStatus(res) == want)
        return true;
    if (res) /* without one, relay_store_query said why */
        hf_logf_kv(HF_LOG_WARN, NULL, "postgres %s: %s", what,
                   PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res)
                                                : PQerrorMessage(r->pg));
    if (!r->pg || PQstatus(r->pg) != CONNECTION_OK)
        atomic_store(&r->pg_ok, false);
    return false;
}

int relay_query_timeout_ms(const relay_t *r)
{
    return r->cfg.lease_renew_ms > 100 ? (int)r->cfg.lease_renew_ms : 100;
}

int relay_slow_query_timeout_ms(const relay_t *r)
{
    return (int)r->cfg.lease_ttl_ms;
}

/* A query that outlived its time: the connection goes (the server may
 * still finish it; whatever it was, the relay takes it as not done). */
static void store_abandon(relay_t *r, const char *what, int timeout_ms)
{
    hf_logf_kv(HF_LOG_WARN, NULL, "postgres %s: no answer within %d ms: closing the connection",
               what, timeout_ms);
    relay_store_close(r);
}

PGresult *relay_store_query(relay_t *r, const char *sql, int nparams, const char *const *params,
                            bool binary, int timeout_ms)
{
    relay_store_commit_finish(r); /* one statement at a time on the connection */
    if (!r->pg || PQstatus(r->pg) != CONNECTION_OK)
        return NULL;
    if (!PQsendQueryParams(r->pg, sql, nparams, NULL, params, NULL, NULL, binary ? 1 : 0)) {
        hf_warn("postgres: %.*s", (int)strcspn(PQerrorMessage(r->pg), "\n"), PQerrorMessage(r->pg));
        atomic_store(&r->pg_ok, false);
        return NULL;
    }
    int64_t deadline = hf_now_us() + (int64_t)timeout_ms * 1000;
    PGresult *last = NULL;
    for (;;) {
        while (!PQisBusy(r->pg)) {
            PGresult *res = PQgetResult(r->pg);
            if (!res)
                return last; /* NULL only if the server sent nothing, i.e. a failure */
            PQclear(last);
            last = res;
        }
        int64_t left = deadline - hf_now_us();
        struct pollfd pfd = {.fd = PQsocket(r->pg), .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)((left + 999) / 1000)) < 0 || !PQconsumeInput(r->pg)) {
            PQclear(last);
            if (left <= 0)
                store_abandon(r, sql, timeout_ms);
            else
                atomic_store(&r->pg_ok, false);
            return NULL;
        }
    }
}

static hf_err_t store_exec(relay_t *r, const char *sql, const char *what)
{
    PGresult *res = PQexec(r->pg, sql);
    bool ok = store_ok(r, res, PGRES_COMMAND_OK, what);
    PQclear(res);
    return ok ? HF_OK : HF_ERR_UNAVAILABLE;
}

/* A PostgreSQL server that vanished (its host down, the network cut)
 * sends no reset: keepalives (idle 2 s, then 2 probes 1 s apart) and
 * tcp_user_timeout (data unacknowledged for a lease TTL) end the
 * connection in seconds instead of the kernel's many minutes, so a
 * standby can take over and this relay stops believing it leads. */
void relay_store_conn_timeouts(const relay_t *r, char *user_timeout, size_t size)
{
    snprintf(user_timeout, size, "%lld", r->cfg.lease_ttl_ms);
}

hf_err_t relay_store_connect(relay_t *r)
{
    relay_store_close(r);
    /* settings first so the URL, expanded last, can override them */
    const char *keys[] = {"connect_timeout",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          "application_name",
                          "dbname",
                          NULL};
    char user_timeout[32];
    relay_store_conn_timeouts(r, user_timeout, sizeof user_timeout);
    const char *vals[] = {"2", "2", "1", "2", user_timeout, "holdfast-relay", r->cfg.pg_url, NULL};
    r->pg = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(r->pg) != CONNECTION_OK) {
        hf_warn("postgres: %.*s", (int)strcspn(PQerrorMessage(r->pg), "\n"), PQerrorMessage(r->pg));
        relay_store_close(r);
        return HF_ERR_UNAVAILABLE;
    }
    if (store_exec(r, STORE_STATEMENT_TIMEOUT, "statement_timeout") != HF_OK ||
        relay_store_load_meta(r) != HF_OK) {
        relay_store_close(r);
        return HF_ERR_UNAVAILABLE;
    }
    if (!r->commit)
        r->commit = hf_calloc(1, sizeof *r->commit);
    atomic_store(&r->pg_ok, true);
    return HF_OK;
}

void relay_store_close(relay_t *r)
{
    if (r->commit && r->commit->nparts > 0) {
        r->commit->failed = true;
        store_commit_ended(r, false);
    }
    if (r->pg)
        PQfinish(r->pg);
    r->pg = NULL;
    atomic_store(&r->pg_ok, false);
}

bool relay_store_usable(relay_t *r)
{
    return atomic_load(&r->pg_ok) && r->pg && PQstatus(r->pg) == CONNECTION_OK;
}

int relay_store_socket(const relay_t *r)
{
    return r->pg ? PQsocket(r->pg) : -1;
}

hf_err_t relay_store_load_meta(relay_t *r)
{
    PGresult *res = relay_store_query(r,
                                      "SELECT m.epoch, m.partition_count, e.id FROM holdfast.meta m"
                                      " JOIN holdfast.epochs e ON e.epoch = m.epoch",
                                      0, NULL, false, relay_query_timeout_ms(r));
    if (!store_ok(r, res, PGRES_TUPLES_OK, "reading holdfast.meta") || PQntuples(res) != 1) {
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            hf_error(
                "holdfast.meta's epoch has no row in holdfast.epochs (is the schema migrated?)");
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
        /* What is in flight was produced, stamped and published in the old
         * epoch and is recorded in it: the switch waits until it is. */
        if (!relay_flow_drained(r)) {
            r->quiesce = true;
            PQclear(res);
            return HF_OK;
        }
        hf_info("epoch changed from %s to %s", r->epoch, epoch);
        relay_flow_chain_clear(r); /* a new epoch starts every chain at -1 */
    }
    r->quiesce = false;
    snprintf(r->epoch, sizeof r->epoch, "%s", epoch);
    r->epoch_id = atoi(PQgetvalue(res, 0, 2));
    r->partition_count = count;
    PQclear(res);
    return HF_OK;
}

static uint64_t store_lsn_parse(const char *text)
{
    unsigned hi, lo;
    if (!text || sscanf(text, "%X/%X", &hi, &lo) != 2)
        return 0;
    return (uint64_t)hi << 32 | lo;
}

static void store_lsn_format(uint64_t lsn, char *out, size_t size)
{
    snprintf(out, size, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
}

hf_err_t relay_store_load_partitions(relay_t *r)
{
    PGresult *res =
        relay_store_query(r,
                          "SELECT partition, next_offset, coalesce(epoch, ''), stream_lsn,"
                          " coalesce(stream_ord, 0), known_from, known_to, known_lsn"
                          " FROM holdfast.relay_partitions",
                          0, NULL, false, relay_query_timeout_ms(r));
    if (!store_ok(r, res, PGRES_TUPLES_OK, "reading the partitions' positions")) {
        PQclear(res);
        return HF_ERR_UNAVAILABLE;
    }
    for (int p = 0; p < RELAY_MAX_PARTITIONS; p++)
        r->parts[p].position_unknown = false;
    for (int i = 0; i < PQntuples(res); i++) {
        int p = atoi(PQgetvalue(res, i, 0));
        if (p < 0 || p >= RELAY_MAX_PARTITIONS)
            continue;
        relay_partition_t *part = &r->parts[p];
        part->next_offset = atoll(PQgetvalue(res, i, 1));
        part->acked_next = part->next_offset;
        part->epoch_old = strcmp(PQgetvalue(res, i, 2), r->epoch) != 0;
        part->recorded.lsn = store_lsn_parse(PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3));
        part->recorded.ord = atoi(PQgetvalue(res, i, 4));
        part->accepted = part->handled = part->recorded;
        if (!PQgetisnull(res, i, 5) && !PQgetisnull(res, i, 6)) {
            part->known.from = atoll(PQgetvalue(res, i, 5));
            part->known.to = atoll(PQgetvalue(res, i, 6));
            part->known.lsn = store_lsn_parse(PQgetvalue(res, i, 7));
        }
        if (p >= r->parts_seen)
            r->parts_seen = p + 1;
    }
    PQclear(res);
    if (r->parts_seen < r->partition_count)
        r->parts_seen = r->partition_count;
    return HF_OK;
}

hf_err_t relay_store_reload_position(relay_t *r, int p)
{
    char part_text[16];
    snprintf(part_text, sizeof part_text, "%d", p);
    const char *params[1] = {part_text};
    PGresult *res = relay_store_query(r,
                                      "SELECT next_offset, stream_lsn, coalesce(stream_ord, 0),"
                                      " known_from, known_to, known_lsn"
                                      " FROM holdfast.relay_partitions WHERE partition = $1::int",
                                      1, params, false, relay_query_timeout_ms(r));
    if (!store_ok(r, res, PGRES_TUPLES_OK, "reading a partition's position")) {
        PQclear(res);
        return HF_ERR_UNAVAILABLE;
    }
    relay_partition_t *part = &r->parts[p];
    part->position_unknown = false;
    if (PQntuples(res) == 1) {
        part->next_offset = part->acked_next = atoll(PQgetvalue(res, 0, 0));
        relay_pos_t pos = {store_lsn_parse(PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1)),
                           atoi(PQgetvalue(res, 0, 2))};
        if (relay_pos_cmp(pos, part->recorded) > 0)
            part->recorded = pos;
        if (!PQgetisnull(res, 0, 3) && !PQgetisnull(res, 0, 4)) {
            int64_t from = atoll(PQgetvalue(res, 0, 3)), to = atoll(PQgetvalue(res, 0, 4));
            uint64_t lsn = store_lsn_parse(PQgetvalue(res, 0, 5));
            bool have = part->known.to > part->known.from;
            part->known.from = have && part->known.from < from ? part->known.from : from;
            part->known.to = have && part->known.to > to ? part->known.to : to;
            part->known.lsn = part->known.lsn > lsn ? part->known.lsn : lsn;
        }
    }
    PQclear(res);
    return HF_OK;
}

hf_err_t relay_store_chain_fill(relay_t *r, relay_event_t *const *evs, size_t n)
{
    hf_buf_t arr = HF_BUF_INIT;
    size_t missing = 0;
    hf_buf_append_str(&arr, "{");
    for (size_t i = 0; i < n; i++) {
        int64_t off;
        if (relay_chain_get(r->chain, evs[i]->channel, &off))
            continue;
        /* channel names never hold quotes or backslashes (hf_channel_validate) */
        hf_buf_printf(&arr, "%s\"%s\"", missing++ ? "," : "", evs[i]->channel);
    }
    hf_buf_append_str(&arr, "}");
    if (missing == 0) {
        hf_buf_free(&arr);
        return HF_OK;
    }
    char epoch_id[16];
    snprintf(epoch_id, sizeof epoch_id, "%d", r->epoch_id);
    const char *params[2] = {arr.data, epoch_id};
    PGresult *res =
        relay_store_query(r,
                          "SELECT c, (SELECT max(o.kafka_offset) FROM holdfast.event_offsets o"
                          "            WHERE o.channel = c AND o.epoch_id = $2::int)"
                          "  FROM (SELECT DISTINCT c FROM unnest($1::text[]) AS c) u",
                          2, params, false, relay_query_timeout_ms(r));
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

hf_err_t relay_store_dead_letter(relay_t *r, const relay_event_t *ev, const char *reason,
                                 int attempts)
{
    char gen[32], part[16], att[16];
    snprintf(gen, sizeof gen, "%" PRId64, r->generation);
    snprintf(part, sizeof part, "%d", ev->partition);
    snprintf(att, sizeof att, "%d", attempts);
    const char *params[7] = {r->cfg.relay_id, gen, ev->id, part, ev->channel, reason, att};
    PGresult *res = relay_store_query(r,
                                      "SELECT holdfast.relay_dead_letter($1, $2::int8, $3::uuid,"
                                      " $4::int, $5, $6, $7::int)",
                                      7, params, false, relay_query_timeout_ms(r));
    bool ok = store_ok(r, res, PGRES_TUPLES_OK, "dead-lettering an event");
    PQclear(res);
    return ok ? HF_OK : HF_ERR_UNAVAILABLE;
}

hf_err_t relay_store_bump_epoch(relay_t *r, const char *reason)
{
    const char *params[1] = {reason};
    PGresult *res = relay_store_query(r, "SELECT holdfast.bump_epoch($1)", 1, params, false,
                                      relay_query_timeout_ms(r));
    bool ok = store_ok(r, res, PGRES_TUPLES_OK, "bumping the epoch");
    PQclear(res);
    if (!ok)
        return HF_ERR_UNAVAILABLE;
    relay_flow_chain_clear(r);
    return relay_store_load_meta(r);
}

hf_err_t relay_store_wal_lsn(relay_t *r, uint64_t *lsn)
{
    PGresult *res = relay_store_query(r, "SELECT pg_current_wal_insert_lsn()", 0, NULL, false,
                                      relay_query_timeout_ms(r));
    bool ok = store_ok(r, res, PGRES_TUPLES_OK, "reading the WAL position");
    if (ok)
        *lsn = store_lsn_parse(PQgetvalue(res, 0, 0));
    PQclear(res);
    return ok ? HF_OK : HF_ERR_UNAVAILABLE;
}

hf_err_t relay_store_slot_stats(relay_t *r)
{
    const char *params[1] = {r->cfg.slot};
    PGresult *res = relay_store_query(r,
                                      "SELECT pg_current_wal_lsn() - confirmed_flush_lsn"
                                      "  FROM pg_replication_slots WHERE slot_name = $1",
                                      1, params, false, relay_query_timeout_ms(r));
    bool ok = store_ok(r, res, PGRES_TUPLES_OK, "slot statistics");
    if (ok && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        hf_gauge_set(r->m.slot_lag_bytes, atof(PQgetvalue(res, 0, 0)));
    PQclear(res);
    return ok ? HF_OK : HF_ERR_UNAVAILABLE;
}

/* ---- reconcile ---- */

hf_err_t relay_store_slot_mark(relay_t *r, bool reconcile_pending)
{
    const char *params[2] = {r->cfg.slot, reconcile_pending ? "true" : "false"};
    PGresult *res = relay_store_query(
        r,
        reconcile_pending
            ? "INSERT INTO holdfast.relay_slot (name, reconcile_pending) VALUES ($1, $2::bool)"
              " ON CONFLICT (name) DO UPDATE SET reconcile_pending = true"
            : "UPDATE holdfast.relay_slot SET reconcile_pending = $2::bool,"
              " confirmed_at = greatest(confirmed_at, now()), created_at = now() WHERE name = $1",
        2, params, false, relay_query_timeout_ms(r));
    bool ok = store_ok(r, res, PGRES_COMMAND_OK, "recording the slot's state");
    PQclear(res);
    return ok ? HF_OK : HF_ERR_UNAVAILABLE;
}

hf_err_t relay_store_reconcile_state(relay_t *r, bool *pending, int64_t *floor_ms)
{
    char lookback[32];
    snprintf(lookback, sizeof lookback, "%lld", r->cfg.reconcile_lookback_ms);
    const char *params[2] = {r->cfg.slot, lookback};
    PGresult *res = relay_store_query(
        r,
        "SELECT reconcile_pending, (extract(epoch FROM confirmed_at) * 1000 - $2::int8)::int8"
        "  FROM holdfast.relay_slot WHERE name = $1",
        2, params, false, relay_query_timeout_ms(r));
    bool ok = store_ok(r, res, PGRES_TUPLES_OK, "reading the slot's state");
    if (ok) {
        *pending = PQntuples(res) == 0 || PQgetvalue(res, 0, 0)[0] == 't';
        *floor_ms =
            PQntuples(res) == 0 || PQgetisnull(res, 0, 1) ? -1 : atoll(PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    return ok ? HF_OK : HF_ERR_UNAVAILABLE;
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

/* Columns: id, channel, partition, type, content_type, payload, created_us. */
static relay_event_t *store_row_event(const PGresult *res, int i)
{
    const char *channel = PQgetvalue(res, i, 1);
    bool has_type = !PQgetisnull(res, i, 3);
    const char *type = has_type ? PQgetvalue(res, i, 3) : "";
    const char *ct = PQgetvalue(res, i, 4);
    size_t plen = (size_t)PQgetlength(res, i, 5);
    char *c, *t, *cty;
    uint8_t *pl;
    relay_event_t *ev =
        relay_event_new(strlen(channel), strlen(type), strlen(ct), plen, &c, &t, &cty, &pl);
    memcpy(c, channel, strlen(channel));
    memcpy(t, type, strlen(type));
    if (!has_type)
        ev->type = NULL;
    memcpy(cty, ct, strlen(ct));
    if (plen)
        memcpy(pl, PQgetvalue(res, i, 5), plen);
    snprintf(ev->id, sizeof ev->id, "%s", PQgetvalue(res, i, 0));
    ev->partition = store_i32(res, i, 2);
    ev->created_at_us = store_i64(res, i, 6);
    ev->commit_us = ev->created_at_us;
    return ev;
}

hf_err_t relay_store_unrelayed(relay_t *r, const char *from_id, const char *to_id,
                               relay_list_t *out)
{
    const char *params[2] = {from_id, to_id};
    /* the window bounds both tables: the events by their primary key, the
     * offsets by the BRIN index on the same time-ordered ids */
    PGresult *res = relay_store_query(
        r,
        "SELECT e.id::text, e.channel, e.partition, e.type, e.content_type, e.payload,"
        "       (extract(epoch FROM e.created_at) * 1000000)::int8"
        "  FROM holdfast.events e"
        " WHERE e.id >= $1::uuid AND e.id < $2::uuid"
        "   AND e.id NOT IN (SELECT o.event_id FROM holdfast.event_offsets o"
        "                     WHERE o.event_id >= $1::uuid AND o.event_id < $2::uuid)"
        "   AND NOT EXISTS (SELECT 1 FROM holdfast.dead_letters d WHERE d.event_id = e.id)"
        " ORDER BY e.created_at, e.ctid",
        2, params, true, relay_slow_query_timeout_ms(r));
    if (!store_ok(r, res, PGRES_TUPLES_OK, "reading events without an offset")) {
        PQclear(res);
        return HF_ERR_UNAVAILABLE;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        relay_event_t *ev = store_row_event(res, i);
        if (ev->partition < 0 || ev->partition >= RELAY_MAX_PARTITIONS) {
            hf_error("event %s has partition %d: not relayed", ev->id, ev->partition);
            hf_free(ev);
            continue;
        }
        relay_list_push(out, ev);
    }
    PQclear(res);
    return HF_OK;
}

hf_err_t relay_store_first_id(relay_t *r, const char *from_id, char *id, size_t size)
{
    const char *params[1] = {from_id};
    PGresult *res = relay_store_query(r,
                                      "SELECT id::text FROM holdfast.events WHERE id >= $1::uuid"
                                      " ORDER BY id LIMIT 1",
                                      1, params, false, relay_slow_query_timeout_ms(r));
    bool ok = store_ok(r, res, PGRES_TUPLES_OK, "reading the first event id");
    if (ok)
        snprintf(id, size, "%s", PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return ok ? HF_OK : HF_ERR_UNAVAILABLE;
}

/* ---- the commit ---- */

bool relay_store_commit_busy(const relay_t *r)
{
    return r->commit && r->commit->nparts > 0;
}

static relay_pos_t store_last_pos(const relay_list_t *l, relay_pos_t pos)
{
    for (const relay_event_t *ev = l->head; ev; ev = ev->next)
        if (ev->pos.lsn != 0 && relay_pos_cmp(ev->pos, pos) > 0)
            pos = ev->pos;
    return pos;
}

/* What partition p writes in this commit; false when nothing. */
static bool store_commit_part(relay_t *r, int p, uint64_t confirmed, commit_part_t *cp)
{
    relay_partition_t *part = &r->parts[p];
    if (part->position_unknown)
        return false; /* writing it could move PostgreSQL's position back */
    bool idle = part->queue.n == 0 && part->inflight.n == 0 && part->synced;
    relay_pos_t pos = store_last_pos(&part->acked, part->recorded);
    if (idle && relay_pos_cmp(part->handled, pos) > 0)
        pos = part->handled; /* skipped or dead-lettered events: nothing before them waits */
    /* the stream can no longer bring what the known range covers */
    if (part->known.to > part->known.from && part->known.lsn < confirmed) {
        relay_partition_known_clear(part);
        part->state_dirty = true;
    }
    if (part->acked.n == 0 && !part->state_dirty && relay_pos_cmp(pos, part->recorded) <= 0)
        return false;
    cp->partition = p;
    cp->next_offset = part->acked.n ? part->acked_next : part->next_offset;
    cp->pos = pos;
    cp->known_from = part->known.from;
    cp->known_to = part->known.to;
    cp->known_lsn = part->known.lsn;
    return true;
}

static void store_copy_rows(relay_t *r, const relay_list_t *events, hf_buf_t *out)
{
    hf_buf_reset(out);
    for (const relay_event_t *ev = events->head; ev; ev = ev->next)
        hf_buf_printf(out, "%" PRId64 "\t%s\t%d\t%s\n", ev->offset, ev->id, r->epoch_id,
                      ev->channel);
}

static void store_array_i64(hf_buf_t *b, const commit_part_t *cp, int n, int which)
{
    hf_buf_append_str(b, "'{");
    for (int i = 0; i < n; i++) {
        const commit_part_t *c = &cp[i];
        bool none = which > 0 && c->known_to <= c->known_from;
        int64_t v = which == 0 ? c->next_offset : which == 1 ? c->known_from : c->known_to;
        if (none)
            hf_buf_printf(b, "%sNULL", i ? "," : "");
        else
            hf_buf_printf(b, "%s%" PRId64, i ? "," : "", v);
    }
    hf_buf_append_str(b, "}'::int8[]");
}

static void store_array_lsn(hf_buf_t *b, const commit_part_t *cp, int n, bool known)
{
    hf_buf_append_str(b, "'{");
    for (int i = 0; i < n; i++) {
        uint64_t lsn =
            known ? (cp[i].known_to > cp[i].known_from ? cp[i].known_lsn : 0) : cp[i].pos.lsn;
        char text[32] = "NULL";
        if (lsn)
            store_lsn_format(lsn, text, sizeof text);
        hf_buf_printf(b, "%s%s", i ? "," : "", text);
    }
    hf_buf_append_str(b, "}'::pg_lsn[]");
}

/* SELECT holdfast.relay_commit(...); COMMIT, as one simple query. */
static void store_finish_sql(relay_t *r, hf_buf_t *b)
{
    relay_commit_t *c = r->commit;
    char *owner = PQescapeLiteral(r->pg, r->cfg.relay_id, strlen(r->cfg.relay_id));
    char *slot = PQescapeLiteral(r->pg, r->cfg.slot, strlen(r->cfg.slot));
    hf_buf_reset(b);
    hf_buf_printf(b, "SELECT holdfast.relay_commit(%s, %" PRId64 ", '%s', '{", owner ? owner : "''",
                  r->generation, r->epoch);
    for (int i = 0; i < c->nparts; i++)
        hf_buf_printf(b, "%s%d", i ? "," : "", c->parts[i].partition);
    hf_buf_append_str(b, "}'::int[], ");
    store_array_i64(b, c->parts, c->nparts, 0);
    hf_buf_append_str(b, ", ");
    store_array_lsn(b, c->parts, c->nparts, false);
    hf_buf_append_str(b, ", '{");
    for (int i = 0; i < c->nparts; i++)
        hf_buf_printf(b, "%s%d", i ? "," : "", c->parts[i].pos.ord);
    hf_buf_append_str(b, "}'::int[], ");
    store_array_i64(b, c->parts, c->nparts, 1);
    hf_buf_append_str(b, ", ");
    store_array_i64(b, c->parts, c->nparts, 2);
    hf_buf_append_str(b, ", ");
    store_array_lsn(b, c->parts, c->nparts, true);
    char lsn[32] = "NULL";
    if (c->confirmed_lsn) {
        lsn[0] = '\'';
        store_lsn_format(c->confirmed_lsn, lsn + 1, sizeof lsn - 2);
        strcat(lsn, "'");
    }
    hf_buf_printf(b, ", %s, %s::pg_lsn, to_timestamp(%" PRId64 " / 1e6)); COMMIT",
                  slot ? slot : "''", lsn, c->confirmed_us);
    PQfreemem(owner);
    PQfreemem(slot);
}

hf_err_t relay_store_commit_start(relay_t *r)
{
    relay_commit_t *c = r->commit;
    if (!c || c->nparts > 0 || !relay_store_usable(r))
        return HF_ERR_UNAVAILABLE;
    c->failed = false;
    c->confirmed_lsn = relay_flow_confirmable(r);
    c->confirmed_us = relay_flow_confirmed_us(r);
    for (int p = 0; p < r->parts_seen; p++) {
        commit_part_t *cp = &c->parts[c->nparts];
        if (!store_commit_part(r, p, relay_stream_confirmed(r), cp))
            continue;
        relay_partition_t *part = &r->parts[p];
        part->committing.lsn = 0;
        for (relay_event_t *ev = part->acked.head; ev && !part->committing.lsn; ev = ev->next)
            part->committing = ev->pos;
        part->state_dirty = false;
        relay_list_splice(&c->events, &part->acked, false);
        c->nparts++;
    }
    r->acked_total = 0;
    r->first_acked_us = 0;
    r->commit_asap = false;
    if (c->nparts == 0)
        return HF_OK;
    hf_histogram_observe(r->m.commit_events, (double)c->events.n);
    const char *sql = c->events.n ? "BEGIN; SET LOCAL synchronous_commit = off;"
                                    " COPY holdfast.event_offsets (kafka_offset, event_id,"
                                    " epoch_id, channel) FROM STDIN"
                                  : "BEGIN; SET LOCAL synchronous_commit = off";
    c->stage = COMMIT_BEGIN;
    if (!PQsendQuery(r->pg, sql)) {
        hf_warn("postgres commit: %s", PQerrorMessage(r->pg));
        c->failed = true;
    }
    return HF_OK;
}

static bool store_commit_send_finish(relay_t *r)
{
    store_finish_sql(r, &r->commit->sql);
    r->commit->stage = COMMIT_FINISH;
    return PQsendQuery(r->pg, r->commit->sql.data) == 1;
}

/* Takes one result of the commit; false when it failed. */
static bool store_commit_result(relay_t *r, PGresult *res)
{
    relay_commit_t *c = r->commit;
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COPY_IN) {
        hf_buf_t rows = HF_BUF_INIT;
        store_copy_rows(r, &c->events, &rows);
        bool ok =
            PQputCopyData(r->pg, rows.data, (int)rows.len) == 1 && PQputCopyEnd(r->pg, NULL) == 1;
        hf_buf_free(&rows);
        c->stage = COMMIT_COPY;
        return ok;
    }
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return true;
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (state && strcmp(state, "55P03") == 0)
        hf_warn("commit refused: the lease was lost");
    else
        store_ok(r, res, PGRES_COMMAND_OK, "committing");
    return false;
}

relay_commit_state_t relay_store_commit_step(relay_t *r)
{
    relay_commit_t *c = r->commit;
    if (!c || c->nparts == 0)
        return RELAY_COMMIT_DONE;
    if (!c->failed && !PQconsumeInput(r->pg))
        c->failed = true;
    while (!c->failed && !PQisBusy(r->pg)) {
        PGresult *res = PQgetResult(r->pg);
        if (!res) {
            /* this stage's results are all in */
            if (c->stage == COMMIT_FINISH)
                break;
            if (!store_commit_send_finish(r))
                c->failed = true;
            continue;
        }
        if (!store_commit_result(r, res))
            c->failed = true;
        PQclear(res);
    }
    if (!c->failed && (PQisBusy(r->pg) || c->stage != COMMIT_FINISH))
        return RELAY_COMMIT_BUSY;
    if (c->failed) {
        PGresult *res;
        while (PQstatus(r->pg) == CONNECTION_OK && (res = PQgetResult(r->pg))) {
            ExecStatusType st = PQresultStatus(res);
            PQclear(res);
            if (st == PGRES_COPY_IN)
                PQputCopyEnd(r->pg, "commit abandoned");
        }
        if (PQstatus(r->pg) == CONNECTION_OK)
            (void)store_exec(r, "ROLLBACK", "rolling back a commit");
        else
            atomic_store(&r->pg_ok, false);
    }
    /* test hook: the commit went through, but as if its answer were lost */
    bool ok = !c->failed && !relay_test_hook(r, "commit-answer-lost");
    store_commit_ended(r, ok);
    if (ok)
        relay_crash_point(r, "committed");
    return ok ? RELAY_COMMIT_DONE : RELAY_COMMIT_FAILED;
}

void relay_store_commit_finish(relay_t *r)
{
    int timeout_ms = 4 * relay_query_timeout_ms(r);
    int64_t deadline = hf_now_us() + (int64_t)timeout_ms * 1000;
    while (relay_store_commit_busy(r)) {
        if (relay_store_commit_step(r) != RELAY_COMMIT_BUSY)
            return;
        int64_t left = deadline - hf_now_us();
        if (left <= 0) {
            store_abandon(r, "commit", timeout_ms); /* fails it: its partitions resync */
            return;
        }
        struct pollfd pfd = {.fd = PQsocket(r->pg), .events = POLLIN};
        if (pfd.fd < 0 || poll(&pfd, 1, (int)((left + 999) / 1000)) < 0)
            r->commit->failed = true;
    }
}

/* The commit ended: what it recorded is freed, positions move on (or, when
 * it failed, its partitions are resynced from Kafka). */
static void store_commit_ended(relay_t *r, bool ok)
{
    relay_commit_t *c = r->commit;
    for (int i = 0; i < c->nparts; i++) {
        const commit_part_t *cp = &c->parts[i];
        relay_partition_t *part = &r->parts[cp->partition];
        part->committing.lsn = 0;
        if (ok) {
            part->next_offset = cp->next_offset;
            part->recorded = cp->pos;
            continue;
        }
        part->state_dirty = true;
        part->position_unknown = true;
        relay_partition_drop_acked(r, part); /* acked since: the resync reads them again */
        if (part->synced)
            relay_partition_unsync(r, cp->partition, 0);
    }
    if (!ok && c->events.n)
        hf_warn("commit failed: %zu events in Kafka but not recorded; their partitions are "
                "resynced from Kafka",
                c->events.n);
    relay_list_free(&c->events);
    c->nparts = 0;
}

void relay_store_commit_free(relay_t *r)
{
    if (!r->commit)
        return;
    relay_list_free(&r->commit->events);
    hf_buf_free(&r->commit->sql);
    hf_free(r->commit);
    r->commit = NULL;
}
