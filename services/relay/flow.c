/* flow.c - each partition's events, from the stream to PostgreSQL.
 *
 * An event accepted from the stream waits in its partition's queue; the
 * partition produces a batch when it may (lease, backoff, resync) and has
 * none in flight, so its records reach Kafka in stream order and a batch
 * N+1 is produced only once N's delivery reports are all in. A batch
 * whose reports are all good is stamped with prev_offset, published to
 * Redis at once and waits in `acked` for the next commit (store.c), which
 * records several batches in one transaction. A batch with any failed
 * report publishes and records nothing: its partition reads its Kafka
 * tail again (resync.c), which records whatever landed, and the batch is
 * produced again minus what the tail held. So the set published is the set
 * recorded, and a repeat after a failure carries the same offsets.
 *
 * Each event is handled once per stream position: `accepted` skips what
 * the stream sends again after a restart, `known` skips records a resync
 * found already in Kafka. Memory is bounded by --stream-buffer: when it is
 * full, a partition that cannot produce gives up its queue (it is read
 * again from the slot once it can), so one unavailable Kafka leader never
 * stops the others. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "holdfast/alloc.h"
#include "holdfast/envelope.h"
#include "holdfast/log.h"
#include "relay.h"

#define FLOW_BACKOFF_MIN_MS    100
#define FLOW_PROBE_INTERVAL_US (150 * 1000) /* a backing-off partition's leader, looked at */
#define FLOW_PROBE_TIMEOUT_MS  100

int relay_pos_cmp(relay_pos_t a, relay_pos_t b)
{
    if (a.lsn != b.lsn)
        return a.lsn < b.lsn ? -1 : 1;
    return a.ord < b.ord ? -1 : a.ord > b.ord;
}

static relay_pos_t flow_pos_max(relay_pos_t a, relay_pos_t b)
{
    return relay_pos_cmp(a, b) >= 0 ? a : b;
}

/* ---- lists and events ---- */

void relay_list_push(relay_list_t *l, relay_event_t *ev)
{
    ev->next = NULL;
    if (l->tail)
        l->tail->next = ev;
    else
        l->head = ev;
    l->tail = ev;
    l->n++;
}

relay_event_t *relay_list_pop(relay_list_t *l)
{
    relay_event_t *ev = l->head;
    if (!ev)
        return NULL;
    l->head = ev->next;
    if (!l->head)
        l->tail = NULL;
    l->n--;
    ev->next = NULL;
    return ev;
}

void relay_list_splice(relay_list_t *dst, relay_list_t *src, bool front)
{
    if (!src->head)
        return;
    if (!dst->head) {
        *dst = *src;
    } else if (front) {
        src->tail->next = dst->head;
        dst->head = src->head;
        dst->n += src->n;
    } else {
        dst->tail->next = src->head;
        dst->tail = src->tail;
        dst->n += src->n;
    }
    memset(src, 0, sizeof *src);
}

void relay_list_free(relay_list_t *l)
{
    relay_event_t *ev;
    while ((ev = relay_list_pop(l)))
        hf_free(ev);
}

relay_event_t *relay_event_new(size_t channel_len, size_t type_len, size_t content_type_len,
                               size_t payload_len, char **channel, char **type, char **content_type,
                               uint8_t **payload)
{
    size_t size =
        sizeof(relay_event_t) + channel_len + 1 + type_len + 1 + content_type_len + 1 + payload_len;
    relay_event_t *ev = hf_calloc(1, size);
    char *p = ev->data;
    *channel = p;
    p += channel_len + 1;
    *type = p;
    p += type_len + 1;
    *content_type = p;
    p += content_type_len + 1;
    *payload = (uint8_t *)p;
    ev->channel = *channel;
    ev->type = *type;
    ev->content_type = *content_type;
    ev->payload = *payload;
    ev->payload_len = payload_len;
    ev->size = size;
    ev->offset = HF_OFFSET_NONE;
    ev->prev_offset = HF_OFFSET_NONE;
    return ev;
}

void relay_event_envelope(const relay_event_t *ev, const char *epoch, bool with_offsets,
                          hf_buf_t *out)
{
    hf_envelope_t env;
    hf_envelope_init(&env);
    env.id = ev->id;
    env.id_len = strlen(ev->id);
    env.channel = ev->channel;
    env.channel_len = strlen(ev->channel);
    if (ev->type) {
        env.type = ev->type;
        env.type_len = strlen(ev->type);
    }
    env.content_type = ev->content_type;
    env.content_type_len = strlen(ev->content_type);
    env.epoch = epoch;
    env.epoch_len = strlen(epoch);
    env.payload = ev->payload;
    env.payload_len = ev->payload_len;
    env.partition = ev->partition;
    if (with_offsets) {
        env.offset = ev->offset;
        env.prev_offset = ev->prev_offset;
    }
    env.created_at_us = ev->created_at_us;
    hf_buf_reset(out);
    (void)hf_envelope_encode(&env, out); /* id, channel, payload always set */
}

/* ---- accepting from the stream ---- */

static void flow_queue_drop(relay_t *r, relay_partition_t *part, relay_event_t *ev)
{
    part->queued_bytes -= ev->size;
    r->queued_bytes -= ev->size;
    hf_free(ev);
}

void relay_flow_accept(relay_t *r, relay_event_t *ev)
{
    relay_partition_t *part = &r->parts[ev->partition];
    if (ev->partition >= r->parts_seen)
        r->parts_seen = ev->partition + 1;
    if (ev->pos.lsn != 0) {
        if (relay_pos_cmp(ev->pos, part->accepted) <= 0 || part->overflowed) {
            hf_free(ev); /* sent again after a restart, or read again once it can produce */
            return;
        }
        part->accepted = ev->pos;
    }
    relay_list_push(&part->queue, ev);
    part->queued_bytes += ev->size;
    r->queued_bytes += ev->size;
}

/* Removes the queue's stream events (reconciled ones, which the stream
 * never sends, stay); returns the first position removed. */
static relay_pos_t flow_queue_shed(relay_t *r, relay_partition_t *part)
{
    relay_pos_t first = {0, 0};
    relay_list_t keep = {0};
    relay_event_t *ev;
    while ((ev = relay_list_pop(&part->queue))) {
        if (ev->pos.lsn == 0) {
            relay_list_push(&keep, ev);
            continue;
        }
        if (first.lsn == 0)
            first = ev->pos;
        flow_queue_drop(r, part, ev);
    }
    part->queue = keep;
    return first;
}

static bool flow_can_produce(const relay_partition_t *part, int64_t now)
{
    return part->synced && now >= part->retry_at_us;
}

bool relay_flow_shed(relay_t *r)
{
    int64_t now = hf_now_us();
    int victim = -1;
    for (int p = 0; p < r->parts_seen; p++) {
        relay_partition_t *part = &r->parts[p];
        if (flow_can_produce(part, now) || part->queued_bytes == 0)
            continue;
        if (victim < 0 || part->queued_bytes > r->parts[victim].queued_bytes)
            victim = p;
    }
    if (victim < 0)
        return false;
    relay_partition_t *part = &r->parts[victim];
    relay_pos_t first = flow_queue_shed(r, part);
    if (first.lsn == 0)
        return false;
    if (!part->overflowed)
        part->dropped = first;
    part->overflowed = true;
    part->accepted = part->handled; /* what was dropped is accepted again after the restart */
    hf_logf_kv(HF_LOG_WARN, NULL,
               "partition %d cannot produce and the stream buffer is full: its queued events "
               "are dropped and read again from the slot once it can",
               victim);
    return true;
}

/* ---- producing ---- */

static bool flow_known(const relay_partition_t *part, const char *id)
{
    return part->known.ids && hf_strmap_get(part->known.ids, id) != NULL;
}

void relay_partition_known_clear(relay_partition_t *part)
{
    if (part->known.ids)
        hf_strmap_free(part->known.ids);
    part->known.ids = NULL;
    part->known.from = part->known.to = 0;
    part->known.lsn = 0;
}

void relay_flow_dirty(relay_t *r, relay_partition_t *part)
{
    part->state_dirty = true;
    if (r->first_acked_us == 0)
        r->first_acked_us = hf_now_us();
}

static void flow_handled(relay_t *r, relay_partition_t *part, relay_event_t *ev)
{
    if (ev->pos.lsn != 0)
        part->handled = flow_pos_max(part->handled, ev->pos);
    part->queued_bytes -= ev->size;
    r->queued_bytes -= ev->size;
}

/* A partition's backoff after a failure: capped exponential, ended early
 * when its leader answers a probe (relay_flow_probe), but never before
 * at_least_ms (a record that may still land is given that long). */
static void flow_backoff(relay_t *r, int p, long long at_least_ms)
{
    relay_partition_t *part = &r->parts[p];
    int64_t now = hf_now_us();
    long long next = part->backoff_ms ? part->backoff_ms * 2 : FLOW_BACKOFF_MIN_MS;
    if (next > r->cfg.backoff_max_ms)
        next = r->cfg.backoff_max_ms;
    if (next < at_least_ms)
        next = at_least_ms;
    part->backoff_ms = next;
    part->retry_at_us = now + next * 1000;
    part->floor_us = now + at_least_ms * 1000;
}

void relay_partition_unsync(relay_t *r, int p, long long at_least_ms)
{
    flow_backoff(r, p, at_least_ms);
    r->parts[p].synced = false;
}

void relay_partition_drop_acked(relay_t *r, relay_partition_t *part)
{
    r->acked_total = r->acked_total > part->acked.n ? r->acked_total - part->acked.n : 0;
    relay_list_free(&part->acked);
    part->acked_next = part->next_offset;
}

void relay_flow_probe(relay_t *r)
{
    int64_t now = hf_now_us();
    if (now < r->next_probe_us)
        return;
    bool want[RELAY_MAX_PARTITIONS] = {false}, up[RELAY_MAX_PARTITIONS];
    bool any = false;
    for (int p = 0; p < r->parts_seen; p++) {
        const relay_partition_t *part = &r->parts[p];
        want[p] = part->retry_at_us > now && part->floor_us <= now;
        any |= want[p];
    }
    if (!any)
        return;
    r->next_probe_us = now + FLOW_PROBE_INTERVAL_US;
    if (relay_kafka_probe_leaders(r->kafka, want, up, r->parts_seen, FLOW_PROBE_TIMEOUT_MS) !=
        HF_OK)
        return;
    for (int p = 0; p < r->parts_seen; p++)
        if (want[p] && up[p])
            r->parts[p].retry_at_us = now; /* its leader is back: go on */
}

/* The head of the queue was refused by Kafka for good dead_letter_after
 * times: it goes to holdfast.dead_letters and its partition moves on. */
static bool flow_dead_letter_head(relay_t *r, int p)
{
    relay_partition_t *part = &r->parts[p];
    relay_event_t *ev = part->queue.head;
    if (!ev || strcmp(ev->id, part->poison_id) != 0 ||
        part->poison_attempts < r->cfg.dead_letter_after)
        return false;
    relay_store_commit_finish(r);
    if (relay_store_dead_letter(r, ev, part->poison_reason, part->poison_attempts) != HF_OK)
        return false;
    hf_counter_inc(r->m.dead_letters);
    hf_logf_kv(HF_LOG_ERROR, NULL, "event %s dead-lettered: %s", ev->id, part->poison_reason);
    relay_list_pop(&part->queue);
    flow_handled(r, part, ev);
    hf_free(ev);
    part->poison_id[0] = '\0';
    part->poison_attempts = 0;
    relay_flow_dirty(r, part);
    return true;
}

/* One more refusal of the event id with a permanent error. */
static void flow_poison_note(relay_t *r, relay_partition_t *part, const relay_event_t *ev)
{
    if (strcmp(part->poison_id, ev->id) != 0) {
        snprintf(part->poison_id, sizeof part->poison_id, "%s", ev->id);
        part->poison_attempts = 0;
    }
    snprintf(part->poison_reason, sizeof part->poison_reason, "%s", rd_kafka_err2str(ev->err));
    part->poison_attempts++;
    hf_logf_kv(HF_LOG_WARN, NULL, "event %s refused by Kafka (%s), attempt %d of %lld", ev->id,
               rd_kafka_err2str(ev->err), part->poison_attempts, r->cfg.dead_letter_after);
}

bool relay_kafka_err_permanent(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        return true;
    default:
        return false;
    }
}

/* Takes the partition's next batch off its queue: events the log already
 * holds are skipped, a dead letter is moved out of the way. */
static void flow_take_batch(relay_t *r, int p, relay_list_t *batch)
{
    relay_partition_t *part = &r->parts[p];
    while (batch->n < (size_t)r->cfg.batch_max && part->queue.head) {
        relay_event_t *ev = part->queue.head;
        if (flow_known(part, ev->id)) {
            relay_list_pop(&part->queue);
            flow_handled(r, part, ev);
            hf_free(ev);
            relay_flow_dirty(r, part);
            continue;
        }
        if (batch->n == 0 && flow_dead_letter_head(r, p))
            continue;
        if (strcmp(ev->id, part->poison_id) == 0 && batch->n > 0)
            break; /* a refused event goes alone */
        relay_list_pop(&part->queue);
        flow_handled(r, part, ev);
        relay_list_push(batch, ev);
        if (strcmp(ev->id, part->poison_id) == 0)
            break;
    }
}

static void flow_produce_partition(relay_t *r, int p, int64_t now)
{
    relay_partition_t *part = &r->parts[p];
    relay_list_t batch = {0};
    flow_take_batch(r, p, &batch);
    if (batch.n == 0)
        return;
    rd_kafka_resp_err_t err = relay_kafka_produce(r->kafka, &batch, r->epoch, &part->inflight);
    part->inflight_pending = part->inflight.n;
    if (part->inflight.n > 0) {
        part->produced_us = now;
        r->batches++;
        hf_histogram_observe(r->m.batch_events, (double)part->inflight.n);
    }
    if (batch.n == 0)
        return;
    /* Refused before it was sent: it and what follows go back to the queue. */
    for (relay_event_t *ev = batch.head; ev; ev = ev->next) {
        part->queued_bytes += ev->size;
        r->queued_bytes += ev->size;
    }
    relay_event_t *head = batch.head;
    relay_list_splice(&part->queue, &batch, true);
    hf_counter_inc(r->m.produce_errors);
    if (relay_kafka_err_permanent(err)) {
        head->err = err;
        flow_poison_note(r, part, head);
        relay_partition_unsync(r, p, 0);
        part->synced = true; /* nothing was sent: no tail to read */
    } else {
        hf_warn("partition %d: produce refused (%s), retrying", p, rd_kafka_err2str(err));
        relay_partition_unsync(r, p, 0);
        part->synced = part->inflight.n == 0;
    }
}

bool relay_flow_drained(const relay_t *r)
{
    if (r->acked_total > 0 || relay_store_commit_busy(r))
        return false;
    for (int p = 0; p < r->parts_seen; p++)
        if (r->parts[p].inflight.n > 0)
            return false;
    return true;
}

void relay_flow_produce(relay_t *r)
{
    int64_t now = hf_now_us();
    if (!r->started || r->quiesce || atomic_load(&r->stopping) || !relay_lease_producible(r, now))
        return;
    for (int p = 0; p < r->parts_seen; p++) {
        relay_partition_t *part = &r->parts[p];
        if (part->inflight.n > 0 || !flow_can_produce(part, now))
            continue;
        if (part->overflowed) {
            r->restart_stream = true; /* it can take its events again */
            continue;
        }
        if (part->queue.head)
            flow_produce_partition(r, p, now);
    }
}

/* ---- delivery reports ---- */

void relay_flow_on_report(void *arg, relay_event_t *ev)
{
    relay_t *r = arg;
    relay_partition_t *part = &r->parts[ev->partition];
    if (part->inflight_pending > 0)
        part->inflight_pending--;
}

/* After the producer was destroyed: reports it never gave are failures. */
void relay_flow_abandon_reports(relay_t *r)
{
    for (int p = 0; p < r->parts_seen; p++) {
        relay_partition_t *part = &r->parts[p];
        if (part->inflight_pending == 0)
            continue;
        for (relay_event_t *ev = part->inflight.head; ev; ev = ev->next)
            if (ev->err == RD_KAFKA_RESP_ERR__IN_PROGRESS) {
                ev->err = RD_KAFKA_RESP_ERR__PURGE_INFLIGHT;
                ev->delivered = false;
            }
        part->inflight_pending = 0;
    }
}

int64_t relay_flow_oldest_produce_us(const relay_t *r)
{
    int64_t oldest = 0;
    for (int p = 0; p < r->parts_seen; p++) {
        const relay_partition_t *part = &r->parts[p];
        if (part->inflight_pending > 0 && (oldest == 0 || part->produced_us < oldest))
            oldest = part->produced_us;
    }
    return oldest;
}

/* An event of a channel failed while a later one of the same channel was
 * delivered: producing the first again puts it after the second. The
 * idempotent producer makes this impossible except for message timeouts;
 * count it loudly if it happens. */
static void flow_check_order(relay_t *r, const relay_list_t *batch)
{
    for (const relay_event_t *a = batch->head; a; a = a->next) {
        if (a->delivered || relay_kafka_err_permanent(a->err))
            continue;
        for (const relay_event_t *b = a->next; b; b = b->next) {
            if (b->delivered && strcmp(b->channel, a->channel) == 0) {
                hf_counter_inc(r->m.order_violations);
                hf_logf_kv(HF_LOG_ERROR, NULL,
                           "event %s of %s failed but the later %s was delivered: it will be "
                           "produced after it",
                           a->id, a->channel, b->id);
                break;
            }
        }
    }
}

static void flow_batch_delivered(relay_t *r, int p);

/* Records that never reached a broker (NOT_PERSISTED) after the batch's
 * delivered ones, and nothing else failed: the delivered prefix is in
 * Kafka in order, the rest certainly is not. Those go back to the queue
 * without a resync and without the produce-timeout wait; true if so. */
static bool flow_batch_unsent_tail(relay_t *r, int p)
{
    relay_partition_t *part = &r->parts[p];
    relay_event_t *ev = part->inflight.head, *last_delivered = NULL;
    for (; ev && ev->delivered; ev = ev->next)
        last_delivered = ev;
    for (relay_event_t *f = ev; f; f = f->next)
        if (f->delivered || f->status != RD_KAFKA_MSG_STATUS_NOT_PERSISTED ||
            relay_kafka_err_permanent(f->err))
            return false;
    relay_list_t unsent = {0};
    if (last_delivered) {
        unsent.head = last_delivered->next;
        unsent.tail = part->inflight.tail;
        for (relay_event_t *f = unsent.head; f; f = f->next)
            unsent.n++;
        last_delivered->next = NULL;
        part->inflight.tail = last_delivered;
        part->inflight.n -= unsent.n;
    } else {
        unsent = part->inflight;
        memset(&part->inflight, 0, sizeof part->inflight);
    }
    for (relay_event_t *f = unsent.head; f; f = f->next) {
        part->queued_bytes += f->size;
        r->queued_bytes += f->size;
    }
    hf_counter_add(r->m.produce_errors, unsent.n);
    relay_list_splice(&part->queue, &unsent, true);
    flow_backoff(r, p, 0);
    return true;
}

/* A batch with a failed report: nothing of it is published or recorded.
 * The partition reads its tail (a record reported failed may have landed)
 * and produces the batch again without what the tail holds. */
static void flow_batch_failed(relay_t *r, int p)
{
    relay_partition_t *part = &r->parts[p];
    if (flow_batch_unsent_tail(r, p)) {
        if (part->inflight.n > 0)
            flow_batch_delivered(r, p); /* the delivered prefix */
        return;
    }
    bool uncertain = false, poison_noted = false;
    for (relay_event_t *ev = part->inflight.head; ev; ev = ev->next) {
        if (ev->delivered)
            continue;
        hf_counter_inc(r->m.produce_errors);
        if (!relay_kafka_err_permanent(ev->err)) {
            uncertain = true;
        } else if (!poison_noted) {
            flow_poison_note(r, part, ev);
            poison_noted = true;
        }
    }
    flow_check_order(r, &part->inflight);
    for (relay_event_t *ev = part->inflight.head; ev; ev = ev->next) {
        part->queued_bytes += ev->size;
        r->queued_bytes += ev->size;
        ev->delivered = false;
        ev->offset = HF_OFFSET_NONE;
    }
    relay_list_splice(&part->queue, &part->inflight, true);
    /* a timed-out record may still land: let it, before reading the tail */
    relay_partition_unsync(r, p, uncertain ? r->cfg.produce_timeout_ms : 0);
}

/* Collects the batch's events as an array (offset order: the producer
 * keeps a partition's order). */
static relay_event_t **flow_array(const relay_list_t *l, size_t *n)
{
    relay_event_t **evs = hf_malloc((l->n ? l->n : 1) * sizeof *evs);
    size_t k = 0;
    for (relay_event_t *ev = l->head; ev; ev = ev->next)
        evs[k++] = ev;
    *n = k;
    return evs;
}

static bool flow_chain_misses(relay_t *r, relay_event_t *const *evs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int64_t off;
        if (!relay_chain_get(r->chain, evs[i]->channel, &off))
            return true;
    }
    return false;
}

/* Makes sure every channel of evs is in the chain map. The map may be
 * refilled from PostgreSQL only while PostgreSQL knows every offset this
 * relay stamped: no acknowledged event waits to be recorded. */
hf_err_t relay_flow_chain_ready(relay_t *r, relay_event_t *const *evs, size_t n, bool *wait)
{
    *wait = false;
    if (!flow_chain_misses(r, evs, n))
        return HF_OK;
    /* A channel missing from a map that was never emptied has no offset
     * waiting to be recorded (it would be in the map): PostgreSQL's last
     * offset is its last. Once the map was emptied with offsets waiting,
     * or must be emptied to make room, the commit goes first. */
    bool waiting = r->acked_total > 0 || relay_store_commit_busy(r);
    if (!waiting)
        r->chain_stale = false;
    bool fits = relay_chain_fits(r->chain, n);
    if (waiting && (r->chain_stale || !fits)) {
        r->commit_asap = true;
        *wait = true;
        return HF_OK;
    }
    relay_store_commit_finish(r); /* the connection runs one statement at a time */
    if (!fits)
        relay_flow_chain_clear(r);
    return relay_store_chain_fill(r, evs, n);
}

void relay_flow_chain_clear(relay_t *r)
{
    relay_chain_clear(r->chain);
    if (r->acked_total > 0 || relay_store_commit_busy(r))
        r->chain_stale = true;
}

/* A reconciled event is in Kafka: the stream, which may still bring it,
 * skips it (the known range is recorded with the commit). */
static void flow_known_reconciled(relay_t *r, relay_partition_t *part, const relay_event_t *ev)
{
    if (!part->known.ids)
        part->known.ids = hf_strmap_new();
    hf_strmap_put(part->known.ids, ev->id, (void *)1);
    if (part->known.to <= part->known.from)
        part->known.from = ev->offset;
    if (ev->offset + 1 > part->known.to)
        part->known.to = ev->offset + 1;
    if (r->reconcile_lsn > part->known.lsn)
        part->known.lsn = r->reconcile_lsn;
}

/* Stamps and publishes evs (in offset order), which Kafka holds. */
void relay_flow_publish(relay_t *r, relay_event_t *const *evs, size_t n)
{
    relay_chain_stamp(r->chain, evs, n);
    if (!r->redis)
        return;
    /* one round trip; in halves only for the crash hook between them */
    size_t half = strcmp(r->crash_point, "publishing") == 0 ? n / 2 : n;
    size_t done = relay_publish(r->redis, evs, half, r->epoch);
    relay_crash_point(r, "publishing");
    if (half < n)
        done += relay_publish(r->redis, evs + half, n - half, r->epoch);
    hf_counter_add(r->m.redis_published, done);
    hf_counter_add(r->m.redis_skipped, n - done);
    int64_t now = hf_wall_us();
    for (size_t i = 0; i < n && done > 0; i++)
        hf_histogram_observe(r->m.commit_to_publish, (double)(now - evs[i]->commit_us) / 1e6);
}

/* A batch whose reports are all good: stamped, published, then it waits
 * for the next commit. */
static void flow_batch_delivered(relay_t *r, int p)
{
    relay_partition_t *part = &r->parts[p];
    if (!part->synced) {
        /* A commit failed while these were in flight: the partition's next
         * resync finds them in Kafka and records them. */
        relay_list_free(&part->inflight);
        part->inflight_pending = 0;
        return;
    }
    size_t n;
    relay_event_t **evs = flow_array(&part->inflight, &n);
    bool wait;
    hf_err_t rc = relay_flow_chain_ready(r, evs, n, &wait);
    if (wait) {
        hf_free(evs);
        return; /* after the commit under way */
    }
    if (rc != HF_OK) {
        /* In Kafka but neither stamped nor recorded: the resync does both. */
        hf_warn("partition %d: chain lookup failed (%s): resyncing from Kafka", p, hf_err_str(rc));
        relay_list_free(&part->inflight);
        part->inflight_pending = 0;
        relay_partition_unsync(r, p, 0);
        hf_free(evs);
        return;
    }
    if (relay_store_commit_busy(r))
        relay_crash_point(r, "overlap");
    relay_crash_point(r, "produced");
    hf_histogram_observe(r->m.produce_seconds, (double)(hf_now_us() - part->produced_us) / 1e6);
    hf_counter_add(r->m.produced, n);
    relay_flow_publish(r, evs, n);
    relay_crash_point(r, "published");
    if (relay_test_hook(r, "late-copy"))
        relay_kafka_produce_late_copy(r->kafka, evs, n, r->epoch);
    for (size_t i = 0; i < n; i++)
        if (evs[i]->pos.lsn == 0)
            flow_known_reconciled(r, part, evs[i]);
    part->acked_next = evs[n - 1]->offset + 1;
    hf_free(evs);
    r->acked_total += part->inflight.n;
    relay_list_splice(&part->acked, &part->inflight, false);
    if (r->first_acked_us == 0)
        r->first_acked_us = hf_now_us();
    part->backoff_ms = 0;
}

void relay_flow_complete(relay_t *r)
{
    for (int p = 0; p < r->parts_seen; p++) {
        relay_partition_t *part = &r->parts[p];
        if (part->inflight.n == 0 || part->inflight_pending > 0)
            continue;
        bool failed = false;
        for (relay_event_t *ev = part->inflight.head; ev && !failed; ev = ev->next)
            failed = !ev->delivered;
        if (failed)
            flow_batch_failed(r, p);
        else
            flow_batch_delivered(r, p);
    }
}

/* ---- commit timing and the slot's position ---- */

bool relay_flow_commit_due(const relay_t *r, int64_t now_us, int64_t *due_us)
{
    *due_us = 0;
    if (r->first_acked_us == 0)
        return false;
    if (r->commit_asap || atomic_load(&r->stopping) || r->acked_total >= (size_t)r->cfg.commit_max)
        return true;
    *due_us = r->first_acked_us + r->cfg.commit_interval_ms * 1000;
    return now_us >= *due_us;
}

static uint64_t flow_first_lsn(const relay_list_t *l)
{
    for (const relay_event_t *ev = l->head; ev; ev = ev->next)
        if (ev->pos.lsn != 0)
            return ev->pos.lsn;
    return 0;
}

/* The commit LSN of the partition's oldest event not yet recorded; 0 when
 * it waits for none. Lists are in stream order, oldest first. */
static uint64_t flow_oldest_lsn(const relay_t *r, const relay_partition_t *part)
{
    uint64_t lsn = part->committing.lsn;
    if (!lsn)
        lsn = flow_first_lsn(&part->acked);
    if (!lsn)
        lsn = flow_first_lsn(&part->inflight);
    if (!lsn)
        lsn = flow_first_lsn(&part->queue);
    /* dropped events count until the stream has brought them again */
    bool refilling =
        part->dropped.lsn && (part->overflowed || relay_stream_received(r) <= part->dropped.lsn);
    if (refilling && (!lsn || part->dropped.lsn < lsn))
        lsn = part->dropped.lsn;
    return lsn;
}

uint64_t relay_flow_confirmable(const relay_t *r)
{
    uint64_t received = relay_stream_received(r), min = 0;
    for (int p = 0; p < r->parts_seen; p++) {
        uint64_t lsn = flow_oldest_lsn(r, &r->parts[p]);
        if (lsn && (!min || lsn < min))
            min = lsn;
    }
    /* every transaction that committed before min is recorded in full */
    return min && min < received ? min : received;
}

void relay_flow_reset(relay_t *r)
{
    for (int p = 0; p < RELAY_MAX_PARTITIONS; p++) {
        relay_partition_t *part = &r->parts[p];
        relay_list_free(&part->queue);
        relay_list_free(&part->inflight);
        relay_list_free(&part->acked);
        relay_partition_known_clear(part);
        memset(part, 0, sizeof *part);
    }
    r->parts_seen = 0;
    r->queued_bytes = 0;
    r->acked_total = 0;
    r->first_acked_us = 0;
    r->commit_asap = false;
    r->chain_stale = false;
    r->quiesce = false;
    r->restart_stream = false;
}

static int64_t flow_first_commit_us(const relay_list_t *l)
{
    for (const relay_event_t *ev = l->head; ev; ev = ev->next)
        if (ev->pos.lsn != 0)
            return ev->commit_us;
    return 0;
}

int64_t relay_flow_oldest_pending_us(const relay_t *r)
{
    int64_t oldest = 0;
    for (int p = 0; p < r->parts_seen; p++) {
        const relay_partition_t *part = &r->parts[p];
        int64_t t = flow_first_commit_us(&part->acked);
        if (!t)
            t = flow_first_commit_us(&part->inflight);
        if (!t)
            t = flow_first_commit_us(&part->queue);
        if (t && (!oldest || t < oldest))
            oldest = t;
    }
    return oldest;
}

int64_t relay_flow_confirmed_us(const relay_t *r)
{
    int64_t oldest = relay_flow_oldest_pending_us(r);
    return oldest ? oldest : relay_stream_received_commit_us(r);
}

int64_t relay_flow_next_retry_us(const relay_t *r, int64_t now)
{
    int64_t next = 0;
    for (int p = 0; p < r->parts_seen; p++) {
        int64_t at = r->parts[p].retry_at_us;
        if (at > now && (next == 0 || at < next))
            next = at;
    }
    return next;
}

bool relay_flow_ready(const relay_t *r, int64_t now)
{
    if (atomic_load(&r->stopping) || !relay_lease_producible(r, now))
        return false;
    for (int p = 0; p < r->parts_seen; p++) {
        const relay_partition_t *part = &r->parts[p];
        if (part->queue.head && part->inflight.n == 0 && flow_can_produce(part, now))
            return true;
        if (!part->synced && now >= part->retry_at_us && part->inflight.n == 0 &&
            r->acked_total == 0 && (!r->quiesce || relay_flow_drained(r)))
            return true; /* a resync can run */
    }
    return false;
}
