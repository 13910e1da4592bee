/* resync.c - what Kafka already holds, and what the slot cannot deliver.
 *
 * Resync (invariant 4, docs/design.md). Before a partition produces after
 * becoming the leader's, after a failed batch or a failed commit, the
 * relay reads its Kafka log from next_offset (every record below it is
 * recorded) to the end. Each record found there is an event some relay
 * produced and nobody recorded: it is recorded now (its offset in
 * event_offsets, next_offset moved past it), stamped with prev_offset in
 * log order and published to Redis again (gateways drop an offset they
 * already delivered), and its id joins the partition's "known" set: when
 * the stream brings the event again it is skipped instead of produced
 * twice. The known range is written with the partition's position, so a
 * relay that crashes before the stream passed those events reads the same
 * range again at its start. A log that ends below next_offset was reset
 * (topic recreated, cluster lost): a new epoch starts before anything is
 * produced (invariant 3, docs/design.md).
 *
 * Reconcile. A slot created anew (first start, or the old one lost with a
 * PostgreSQL failover) delivers only what commits after its creation. The
 * relay then reads holdfast.events for events without an event_offsets row
 * (back from the last confirmed commit minus --reconcile-lookback, or all
 * of them the first time), one second of event ids at a time in creation
 * order, and produces them before it starts the stream. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "holdfast/alloc.h"
#include "holdfast/envelope.h"
#include "holdfast/log.h"
#include "relay.h"

#define RESYNC_CHUNK        5000 /* records read from a tail, recorded per commit */
#define RECONCILE_WINDOW_MS 1000 /* event ids read per reconcile query */

typedef struct resync_read {
    relay_t *r;
    relay_partition_t *part;
    bool record;         /* false: only learn the ids of an already recorded range */
    relay_list_t events; /* records to record */
} resync_read_t;

static void resync_known_add(relay_partition_t *part, const char *id)
{
    if (!part->known.ids)
        part->known.ids = hf_strmap_new();
    hf_strmap_put(part->known.ids, id, (void *)1);
}

/* One record of the tail: our event, rebuilt from the record. */
static hf_err_t resync_on_record(void *arg, int64_t offset, const char *id, const char *channel,
                                 const uint8_t *value, size_t value_len)
{
    resync_read_t *rr = arg;
    if (!id)
        return HF_OK; /* not one of ours: nothing to record */
    resync_known_add(rr->part, id);
    if (!rr->record)
        return HF_OK;
    hf_envelope_t env;
    if (hf_envelope_decode(value, value_len, &env, NULL) != HF_OK) {
        hf_warn("record at offset %" PRId64 " has our id %s but no valid envelope: skipped", offset,
                id);
        return HF_OK;
    }
    char *c, *t, *ct;
    uint8_t *pl;
    relay_event_t *ev = relay_event_new(strlen(channel), env.type_len, env.content_type_len,
                                        env.payload_len, &c, &t, &ct, &pl);
    memcpy(c, channel, strlen(channel));
    if (env.type)
        memcpy(t, env.type, env.type_len);
    else
        ev->type = NULL;
    if (env.content_type)
        memcpy(ct, env.content_type, env.content_type_len);
    if (env.payload_len)
        memcpy(pl, env.payload, env.payload_len);
    snprintf(ev->id, sizeof ev->id, "%s", id);
    ev->partition = (int32_t)(rr->part - rr->r->parts);
    ev->created_at_us = env.created_at_us;
    ev->commit_us = env.created_at_us;
    ev->offset = offset;
    ev->delivered = true;
    relay_list_push(&rr->events, ev);
    return HF_OK;
}

static int64_t resync_deadline(const relay_t *r)
{
    /* a lease round is due at next_lease_tick_us; never read past it by much */
    int64_t limit = hf_now_us() + r->cfg.lease_renew_ms * 1000;
    return r->next_lease_tick_us && r->next_lease_tick_us < limit ? r->next_lease_tick_us + 50000
                                                                  : limit;
}

/* The log ends below the recorded position: it is not the log PostgreSQL
 * remembers. One new epoch per reset, even when every partition was reset
 * at once: a partition whose position was recorded in an older epoch than
 * the current one was reset together with the one that started it. */
static hf_err_t resync_log_reset(relay_t *r, int p, int64_t high, int64_t next)
{
    relay_partition_t *part = &r->parts[p];
    char reason[160];
    snprintf(reason, sizeof reason, "kafka log of partition %d reset: end %lld < next %lld", p,
             (long long)high, (long long)next);
    relay_partition_known_clear(part);
    if (part->epoch_old) {
        hf_logf_kv(HF_LOG_WARN, NULL, "%s (epoch already new)", reason);
        return HF_OK;
    }
    hf_logf_kv(HF_LOG_ERROR, NULL, "%s: new epoch", reason);
    hf_err_t rc = relay_store_bump_epoch(r, reason);
    if (rc != HF_OK)
        return rc;
    hf_counter_inc(r->m.epoch_bumps);
    for (int q = 0; q < r->parts_seen; q++)
        if (q != p)
            r->parts[q].epoch_old = true;
    return HF_OK;
}

/* Records [from, to) of partition p's log: see the top of this file. */
static hf_err_t resync_record_range(relay_t *r, int p, int64_t from, int64_t to, uint64_t wal_lsn)
{
    relay_partition_t *part = &r->parts[p];
    resync_read_t rr = {.r = r, .part = part, .record = true};
    hf_err_t rc =
        relay_kafka_read(r->kafka, p, from, to, resync_deadline(r), resync_on_record, &rr);
    size_t n = 0;
    relay_event_t **evs = NULL;
    if (rc == HF_OK && rr.events.n > 0) {
        evs = hf_malloc(rr.events.n * sizeof *evs);
        for (relay_event_t *ev = rr.events.head; ev; ev = ev->next)
            evs[n++] = ev;
        bool wait;
        rc = relay_flow_chain_ready(r, evs, n, &wait);
        if (rc == HF_OK && wait)
            rc = HF_ERR_INTERNAL; /* cannot happen: nothing is acked during a resync */
    }
    if (rc != HF_OK) {
        hf_free(evs);
        relay_list_free(&rr.events);
        return rc;
    }
    if (n > 0)
        relay_flow_publish(r, evs, n);
    hf_free(evs);
    if (part->known.to <= part->known.from)
        part->known.from = from;
    part->known.to = to;
    if (wal_lsn > part->known.lsn)
        part->known.lsn = wal_lsn;
    part->acked_next = to;
    r->acked_total += rr.events.n;
    relay_list_splice(&part->acked, &rr.events, false);
    relay_flow_dirty(r, part);
    if ((rc = relay_store_commit_start(r)) != HF_OK)
        return rc;
    relay_store_commit_finish(r);
    if (part->next_offset != to)
        return HF_ERR_UNAVAILABLE; /* the commit failed (and said why) */
    hf_counter_add(r->m.tail_recovered, n);
    if (n > 0)
        hf_logf_kv(HF_LOG_INFO, NULL,
                   "partition %d: %zu events found in Kafka [%lld, %lld) recorded, not "
                   "produced again",
                   p, n, (long long)from, (long long)to);
    return HF_OK;
}

/* Reads the partition's tail from next_offset to the end, a chunk per
 * call; true in *done once synced. */
static hf_err_t resync_partition(relay_t *r, int p, bool *done)
{
    relay_partition_t *part = &r->parts[p];
    *done = false;
    int64_t low, high;
    hf_err_t rc = relay_store_reload_position(r, p);
    if (rc == HF_OK && part->acked.n > 0)
        relay_partition_drop_acked(r, part); /* in the tail read below */
    if (rc == HF_OK)
        rc = relay_kafka_watermarks(r->kafka, p, &low, &high);
    if (rc != HF_OK)
        return rc;
    int64_t next = part->next_offset;
    if (high < next) {
        if (!relay_flow_drained(r)) {
            r->quiesce = true; /* the new epoch waits until nothing of the old is in flight */
            return HF_OK;
        }
        if ((rc = resync_log_reset(r, p, high, next)) != HF_OK)
            return rc;
        next = part->next_offset = part->acked_next = low;
        relay_flow_dirty(r, part);
    }
    part->epoch_old = false;
    if (next < low)
        next = part->next_offset = part->acked_next = low; /* older records are gone */
    uint64_t wal_lsn;
    if ((rc = relay_store_wal_lsn(r, &wal_lsn)) != HF_OK)
        return rc;
    if (part->known.to > part->known.from && !part->known.ids) {
        /* recorded before this relay led: only their ids are needed */
        resync_read_t rr = {.r = r, .part = part, .record = false};
        int64_t kfrom = part->known.from < low ? low : part->known.from;
        int64_t kto = part->known.to < next ? part->known.to : next;
        if ((rc = relay_kafka_read(r->kafka, p, kfrom, kto, resync_deadline(r), resync_on_record,
                                   &rr)) != HF_OK)
            return rc;
        if (!part->known.ids)
            part->known.ids = hf_strmap_new();
    }
    int64_t to = high - next > RESYNC_CHUNK ? next + RESYNC_CHUNK : high;
    if (next < high || part->state_dirty)
        rc = resync_record_range(r, p, next, to, wal_lsn);
    if (rc != HF_OK)
        return rc;
    *done = to >= high;
    return HF_OK;
}

static bool resync_wanted(const relay_t *r, int p, int64_t now)
{
    const relay_partition_t *part = &r->parts[p];
    return !part->synced && now >= part->retry_at_us && part->inflight.n == 0;
}

hf_err_t relay_resync_pending(relay_t *r)
{
    int64_t now = hf_now_us();
    int first = -1;
    for (int p = 0; p < r->parts_seen && first < 0; p++)
        if (resync_wanted(r, p, now))
            first = p;
    if (first < 0 || !r->started)
        return HF_OK;
    /* the tail is stamped from PostgreSQL's offsets: nothing this relay
     * stamped may be missing there, so what is acked is recorded first */
    if (r->acked_total > 0 || relay_store_commit_busy(r)) {
        r->commit_asap = true;
        return HF_OK;
    }
    relay_flow_chain_clear(r);
    for (int p = first; p < r->parts_seen && !atomic_load(&r->stopping); p++) {
        if (!resync_wanted(r, p, hf_now_us()))
            continue;
        if (hf_now_us() >= r->next_lease_tick_us)
            break; /* the rest after the lease round */
        bool done = false;
        hf_err_t rc = resync_partition(r, p, &done);
        if (rc == HF_OK) {
            if (done) {
                r->parts[p].synced = true;
                hf_counter_inc(r->m.resyncs);
            }
            continue;
        }
        if (!relay_store_usable(r))
            return rc;
        relay_partition_unsync(r, p, 0);
        hf_warn("partition %d: resync failed (%s), retrying in %lld ms", p, hf_err_str(rc),
                r->parts[p].backoff_ms);
    }
    return HF_OK;
}

/* ---- reconcile ---- */

/* The smallest version-7 UUID of millisecond ms (ids order by time). */
static void reconcile_id_at(int64_t ms, char *out, size_t size)
{
    uint64_t t = ms < 0 ? 0 : (uint64_t)ms;
    snprintf(out, size, "%08x-%04x-0000-0000-000000000000", (unsigned)(t >> 16) & 0xffffffffu,
             (unsigned)(t & 0xffff));
}

static int64_t reconcile_ms_of(const char *id)
{
    char hex[13];
    if (strlen(id) < 13)
        return 0;
    memcpy(hex, id, 8);
    memcpy(hex + 8, id + 9, 4);
    hex[12] = '\0';
    return (int64_t)strtoull(hex, NULL, 16);
}

hf_err_t relay_reconcile_begin(relay_t *r)
{
    bool pending;
    int64_t floor_ms;
    hf_err_t rc = relay_store_reconcile_state(r, &pending, &floor_ms);
    if (rc != HF_OK || !pending)
        return rc;
    if ((rc = relay_store_wal_lsn(r, &r->reconcile_lsn)) != HF_OK)
        return rc;
    reconcile_id_at(floor_ms, r->reconcile_from, sizeof r->reconcile_from);
    reconcile_id_at(hf_wall_us() / 1000 + 1, r->reconcile_to, sizeof r->reconcile_to);
    r->reconciling = true;
    if (floor_ms < 0)
        hf_logf_kv(HF_LOG_INFO, NULL, "reconciling: every event without an offset is relayed");
    else
        hf_logf_kv(HF_LOG_INFO, NULL,
                   "reconciling: events since %s without an offset are relayed (new slot)",
                   r->reconcile_from);
    return HF_OK;
}

/* Queues the next window; ends the reconcile once everything it queued is
 * recorded. */
hf_err_t relay_reconcile(relay_t *r)
{
    /* its queries may be slow: only with nothing in flight to time out */
    if (!r->reconciling)
        return HF_OK;
    if (!relay_flow_drained(r)) {
        r->commit_asap = r->acked_total > 0;
        return HF_OK;
    }
    if (strcmp(r->reconcile_from, r->reconcile_to) >= 0) {
        for (int p = 0; p < r->parts_seen; p++)
            if (r->parts[p].queue.n || r->parts[p].inflight.n || !r->parts[p].synced)
                return HF_OK; /* still moving */
        if (r->acked_total > 0 || relay_store_commit_busy(r)) {
            r->commit_asap = true;
            return HF_OK;
        }
        hf_err_t rc = relay_store_slot_mark(r, false);
        if (rc == HF_OK) {
            r->reconciling = false;
            hf_logf_kv(HF_LOG_INFO, NULL, "reconciled: streaming from slot %s", r->cfg.slot);
        }
        return rc;
    }
    relay_store_commit_finish(r);
    char first[RELAY_ID_LEN + 1];
    hf_err_t rc = relay_store_first_id(r, r->reconcile_from, first, sizeof first);
    if (rc != HF_OK)
        return rc;
    if (!first[0] || strcmp(first, r->reconcile_to) >= 0) {
        snprintf(r->reconcile_from, sizeof r->reconcile_from, "%s", r->reconcile_to);
        return HF_OK;
    }
    char lo[RELAY_ID_LEN + 1], hi[RELAY_ID_LEN + 1];
    int64_t ms = reconcile_ms_of(first);
    reconcile_id_at(ms, lo, sizeof lo);
    reconcile_id_at(ms + RECONCILE_WINDOW_MS, hi, sizeof hi);
    relay_list_t found = {0};
    if ((rc = relay_store_unrelayed(r, lo, hi, &found)) != HF_OK)
        return rc;
    size_t n = found.n;
    relay_event_t *ev;
    while ((ev = relay_list_pop(&found))) {
        relay_partition_t *part = &r->parts[ev->partition];
        if (part->known.ids && hf_strmap_get(part->known.ids, ev->id)) {
            hf_free(ev); /* found in Kafka's tail and recorded by the resync */
            n--;
            continue;
        }
        relay_flow_accept(r, ev);
    }
    hf_counter_add(r->m.reconciled, n);
    if (n > 0)
        hf_logf_kv(HF_LOG_INFO, NULL, "reconciling: %zu events from %s queued", n, lo);
    snprintf(r->reconcile_from, sizeof r->reconcile_from, "%s", hi);
    return HF_OK;
}
