/* loop.c - the relay thread: lease, resync, then batch after batch.
 *
 * One batch at a time keeps every step's order obvious: read rows of the
 * owned partitions in outbox order, produce them all, wait for every
 * delivery report, stamp prev_offset, commit (offsets written back, outbox
 * rows deleted), then PUBLISH to Redis. Any failure between produce and
 * commit leaves the partition "unsynced": before producing for it again the
 * relay reads its Kafka log from the recorded next_offset to the end and
 * commits what it finds instead of producing it twice (invariant 4). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "holdfast/alloc.h"
#include "holdfast/envelope.h"
#include "holdfast/log.h"
#include "relay.h"

#define LOOP_BACKOFF_MIN_MS 100
#define LOOP_RESYNC_CHUNK   5000 /* records read from a Kafka tail at a time */

int64_t relay_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t loop_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Sleeps ms, waking early only to stop. */
static void loop_pause(relay_t *r, long long ms)
{
    int64_t until = relay_now_us() + ms * 1000;
    while (!atomic_load(&r->stopping) && relay_now_us() < until)
        usleep(20 * 1000);
}

/* Capped exponential backoff: the pause after one more failure. */
static long long loop_backoff_next(const relay_t *r, long long current_ms, long long at_least_ms)
{
    long long next = current_ms ? current_ms * 2 : LOOP_BACKOFF_MIN_MS;
    if (next > r->cfg.backoff_max_ms)
        next = r->cfg.backoff_max_ms;
    return next < at_least_ms ? at_least_ms : next;
}

static void loop_backoff(relay_t *r, long long at_least_ms)
{
    r->backoff_ms = loop_backoff_next(r, r->backoff_ms, at_least_ms);
    /* never sleep through a lease round: leases would lapse for nothing */
    loop_pause(r, r->backoff_ms < r->cfg.lease_renew_ms ? r->backoff_ms : r->cfg.lease_renew_ms);
}

/* A failing partition waits alone, with its own capped exponential
 * backoff, so one unavailable partition leader never slows the others. */
static void loop_partition_backoff(relay_t *r, int p, long long at_least_ms)
{
    relay_partition_t *part = &r->parts[p];
    part->backoff_ms = loop_backoff_next(r, part->backoff_ms, at_least_ms);
    part->retry_at_us = relay_now_us() + part->backoff_ms * 1000;
}

/* Earliest pending partition retry after now, or 0. */
static int64_t loop_next_retry_us(const relay_t *r, int64_t now)
{
    int64_t next = 0;
    for (int p = 0; p < r->partition_count; p++) {
        int64_t at = r->parts[p].retry_at_us;
        if (r->parts[p].owned && at > now && (next == 0 || at < next))
            next = at;
    }
    return next;
}

/* Test hook (--crash-at POINT:N): dies by SIGKILL at POINT of batch N. */
static void loop_crash_point(relay_t *r, const char *point)
{
    if (r->crash_batch > 0 && r->batches == r->crash_batch && strcmp(r->crash_point, point) == 0) {
        hf_logf_kv(HF_LOG_WARN, NULL, "crash-at %s:%lld: killing myself", point, r->crash_batch);
        kill(getpid(), SIGKILL);
    }
}

static void loop_unsync_all(relay_t *r)
{
    for (int p = 0; p < RELAY_MAX_PARTITIONS; p++)
        r->parts[p].synced = false;
    relay_chain_clear(r->chain);
}

/* Redis after the commit: in offset order, the batch in two halves so the
 * crash hook can stop between them. */
static void loop_publish(relay_t *r, const relay_batch_t *batch)
{
    size_t delivered = 0, half = batch->n / 2;
    for (size_t i = 0; i < batch->n; i++)
        delivered += batch->events[i].delivered;
    if (!r->redis)
        return;
    size_t done = relay_publish(r->redis, batch, 0, half, r->epoch);
    loop_crash_point(r, "publishing");
    done += relay_publish(r->redis, batch, half, batch->n, r->epoch);
    hf_counter_add(r->m.redis_published, done);
    hf_counter_add(r->m.redis_skipped, delivered - done);
    int64_t now = loop_wall_us();
    for (size_t i = 0; i < batch->n && done > 0; i++)
        if (batch->events[i].delivered)
            hf_histogram_observe(r->m.commit_to_publish,
                                 (double)(now - batch->events[i].created_at_us) / 1e6);
}

/* Partition positions after a batch: max delivered offset + 1 each. */
static size_t loop_positions(const relay_batch_t *batch, int *parts, int64_t *next)
{
    size_t n = 0;
    for (size_t i = 0; i < batch->n; i++) {
        const relay_event_t *ev = &batch->events[i];
        if (!ev->delivered)
            continue;
        size_t j = 0;
        while (j < n && parts[j] != ev->partition)
            j++;
        if (j == n) {
            parts[n] = ev->partition;
            next[n++] = ev->offset + 1;
        } else if (ev->offset + 1 > next[j]) {
            next[j] = ev->offset + 1;
        }
    }
    return n;
}

/* Commits delivered events (or, for a resync, the given positions) and
 * publishes them. On a lost lease or a broken connection the partitions
 * are resynced later; nothing is deleted that Kafka does not hold. */
static hf_err_t loop_commit_and_publish(relay_t *r, relay_batch_t *batch, const int *parts,
                                        const int64_t *next, size_t nparts)
{
    hf_err_t rc = relay_store_chain_fill(r, batch);
    if (rc == HF_OK) {
        relay_chain_stamp(r->chain, batch);
        rc = relay_store_commit(r, batch, parts, next, nparts);
    }
    if (rc != HF_OK) {
        hf_warn("commit failed (%s): partitions will be resynced from Kafka", hf_err_str(rc));
        for (size_t i = 0; i < nparts; i++)
            r->parts[parts[i]].synced = false;
        relay_chain_clear(r->chain);
        return rc;
    }
    loop_crash_point(r, "committed");
    loop_publish(r, batch);
    return HF_OK;
}

static bool loop_err_permanent(rd_kafka_resp_err_t err)
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

/* Refused events: a permanent refusal of the same event dead-letters it
 * after dead_letter_after attempts; anything else is retried, never
 * dead-lettered, and marks its partition uncertain[p]: the event may yet
 * land in Kafka, so the partition is resynced from its log. */
static void loop_handle_failures(relay_t *r, relay_batch_t *batch, bool *uncertain)
{
    bool seen[RELAY_MAX_PARTITIONS] = {false};
    for (size_t i = 0; i < batch->n; i++) {
        relay_event_t *ev = &batch->events[i];
        if (ev->delivered)
            continue;
        hf_counter_inc(r->m.produce_errors);
        int p = ev->partition;
        if (!loop_err_permanent(ev->err)) {
            uncertain[p] = true;
            r->parts[p].synced = false;
            /* a timed-out message may still land: let it, before reading the tail */
            loop_partition_backoff(r, p, r->cfg.produce_timeout_ms);
            continue;
        }
        if (seen[p])
            continue; /* one attempt counted per partition per batch */
        seen[p] = true;
        loop_partition_backoff(r, p, 0);
        if (strcmp(r->poison_id[p], ev->id) != 0) {
            snprintf(r->poison_id[p], sizeof r->poison_id[p], "%s", ev->id);
            r->poison_attempts[p] = 0;
        }
        int attempts = ++r->poison_attempts[p];
        hf_logf_kv(HF_LOG_WARN, NULL, "event %s refused by Kafka (%s), attempt %d of %lld", ev->id,
                   rd_kafka_err2str(ev->err), attempts, r->cfg.dead_letter_after);
        if (attempts >= r->cfg.dead_letter_after &&
            relay_store_dead_letter(r, ev, rd_kafka_err2str(ev->err), attempts) == HF_OK) {
            hf_counter_inc(r->m.dead_letters);
            hf_logf_kv(HF_LOG_ERROR, NULL, "event %s dead-lettered: %s", ev->id,
                       rd_kafka_err2str(ev->err));
            r->poison_id[p][0] = '\0';
            r->poison_attempts[p] = 0;
        }
    }
}

/* An event of a channel failed while a later one of the same channel was
 * delivered: retrying the first would put it after the second. The
 * idempotent producer with the gapless guarantee should make this
 * impossible except for message timeouts; count it loudly if it happens. */
static void loop_check_order(relay_t *r, const relay_batch_t *batch)
{
    for (size_t i = 0; i < batch->n; i++) {
        const relay_event_t *a = &batch->events[i];
        if (a->delivered || loop_err_permanent(a->err))
            continue;
        for (size_t j = i + 1; j < batch->n; j++) {
            const relay_event_t *b = &batch->events[j];
            if (b->delivered && b->partition == a->partition && b->seq > a->seq &&
                strcmp(b->channel, a->channel) == 0) {
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

static void loop_move_batch(relay_t *r, relay_batch_t *batch)
{
    int64_t t0 = relay_now_us();
    size_t failed = 0;
    hf_err_t rc = relay_kafka_produce(r->kafka, batch, r->epoch, &failed);
    hf_histogram_observe(r->m.produce_seconds, (double)(relay_now_us() - t0) / 1e6);
    hf_histogram_observe(r->m.batch_events, (double)batch->n);
    r->batches++;
    loop_crash_point(r, "produced");
    hf_counter_add(r->m.produced, batch->n - failed);
    for (size_t i = 0; i < batch->n; i++)
        if (batch->events[i].delivered)
            r->parts[batch->events[i].partition].backoff_ms = 0;
    if (failed > 0) {
        bool uncertain[RELAY_MAX_PARTITIONS] = {false};
        loop_check_order(r, batch);
        loop_handle_failures(r, batch, uncertain);
        /* A partition with an event in doubt commits nothing of this batch:
         * its resync reads the log from the old position and commits what
         * landed, in log order. Committing the delivered ones would move
         * the position past a timed-out event that did land, and it would
         * be produced a second time. */
        for (size_t i = 0; i < batch->n; i++)
            if (uncertain[batch->events[i].partition])
                batch->events[i].delivered = false;
    }
    int parts[RELAY_MAX_PARTITIONS];
    int64_t next[RELAY_MAX_PARTITIONS];
    size_t nparts = loop_positions(batch, parts, next);
    bool commit_failed =
        nparts > 0 && loop_commit_and_publish(r, batch, parts, next, nparts) != HF_OK;
    if (rc != HF_OK || commit_failed) /* the producer or PostgreSQL, not one partition */
        loop_backoff(r, rc != HF_OK ? r->cfg.produce_timeout_ms : 0);
    else
        r->backoff_ms = 0;
}

/* Reads [from, to) of partition p from Kafka and commits the events found
 * there (offsets written back, outbox rows deleted, next_offset = to). */
static hf_err_t loop_resync_range(relay_t *r, int p, int64_t from, int64_t to, relay_batch_t *batch)
{
    char **ids = NULL;
    int64_t *offsets = NULL;
    size_t n = 0;
    hf_err_t rc = HF_OK;
    if (from < to && (rc = relay_kafka_read_tail(r->kafka, p, from, to, &ids, &offsets, &n)))
        return rc;
    rc = relay_store_load_events(r, (const char *const *)ids, offsets, n, p, batch);
    relay_kafka_tail_free(ids, offsets, n);
    if (rc != HF_OK)
        return rc;
    int part = p;
    if ((rc = loop_commit_and_publish(r, batch, &part, &to, 1)) != HF_OK)
        return rc;
    if (batch->n > 0)
        hf_logf_kv(HF_LOG_INFO, NULL,
                   "partition %d: %zu events found in Kafka [%lld, %lld) committed, not "
                   "produced again",
                   p, batch->n, (long long)from, (long long)to);
    hf_counter_add(r->m.tail_skipped, batch->n);
    relay_batch_clear(batch);
    return HF_OK;
}

/* The log ends below the recorded position: it is not the log PostgreSQL
 * remembers. One new epoch per reset, even when every partition was reset
 * at once: a partition whose position was recorded in an older epoch than
 * the current one was reset together with the one that started it. */
static hf_err_t loop_log_reset(relay_t *r, int p, int64_t high, int64_t next,
                               const char *recorded_epoch)
{
    char reason[160];
    snprintf(reason, sizeof reason, "kafka log of partition %d reset: end %lld < next %lld", p,
             (long long)high, (long long)next);
    if (recorded_epoch[0] && strcmp(recorded_epoch, r->epoch) != 0) {
        hf_logf_kv(HF_LOG_WARN, NULL, "%s (epoch already new)", reason);
        return HF_OK;
    }
    hf_logf_kv(HF_LOG_ERROR, NULL, "%s: new epoch", reason);
    hf_err_t rc = relay_store_bump_epoch(r, reason);
    if (rc == HF_OK)
        hf_counter_inc(r->m.epoch_bumps);
    return rc;
}

/* Before producing for partition p again: what of its outbox is already in
 * Kafka (after the recorded position) is committed, not produced again.
 * Read in chunks so memory stays bounded however long the tail is. */
static hf_err_t loop_resync(relay_t *r, int p, relay_batch_t *batch)
{
    int64_t low, high, next;
    char recorded_epoch[RELAY_EPOCH_MAX];
    hf_err_t rc = relay_kafka_watermarks(r->kafka, p, &low, &high);
    if (rc == HF_OK)
        rc = relay_store_next_offset(r, p, &next, recorded_epoch, sizeof recorded_epoch);
    if (rc != HF_OK)
        return rc;
    int64_t from = next;
    if (high < next) {
        if ((rc = loop_log_reset(r, p, high, next, recorded_epoch)) != HF_OK)
            return rc;
        from = low;
    }
    if (from < low)
        from = low;
    do {
        int64_t to = high - from > LOOP_RESYNC_CHUNK ? from + LOOP_RESYNC_CHUNK : high;
        if ((rc = loop_resync_range(r, p, from, to, batch)) != HF_OK)
            return rc;
        from = to;
    } while (from < high);
    hf_counter_inc(r->m.resyncs);
    r->parts[p].synced = true;
    return HF_OK;
}

/* Resyncs every owned partition that needs it and is not backing off,
 * until a lease round is due (each resync can take a Kafka timeout; the
 * rest wait for the next pass). A partition whose Kafka side fails backs
 * off alone; only a broken PostgreSQL connection fails the pass. */
static hf_err_t loop_resync_pending(relay_t *r, relay_batch_t *batch)
{
    for (int p = 0; p < r->partition_count && !atomic_load(&r->stopping); p++) {
        relay_partition_t *part = &r->parts[p];
        int64_t now = relay_now_us();
        if (now >= r->next_lease_tick_us)
            break;
        if (!part->owned || part->synced || now < part->retry_at_us)
            continue;
        hf_err_t rc = loop_resync(r, p, batch);
        if (rc == HF_OK)
            continue;
        relay_batch_clear(batch);
        if (!atomic_load(&r->pg_ok) || PQstatus(r->pg) != CONNECTION_OK)
            return rc;
        loop_partition_backoff(r, p, 0);
        hf_warn("partition %d: resync failed (%s), retrying in %lld ms", p, hf_err_str(rc),
                part->backoff_ms);
    }
    return HF_OK;
}

static bool loop_connected(relay_t *r)
{
    if (atomic_load(&r->pg_ok) && r->pg && PQstatus(r->pg) == CONNECTION_OK)
        return true;
    if (relay_store_connect(r) != HF_OK)
        return false;
    /* a commit may have been cut: know nothing, read the logs again */
    loop_unsync_all(r);
    int topic_partitions = relay_kafka_partition_count(r->kafka);
    if (topic_partitions >= 0 && topic_partitions < r->partition_count) {
        hf_error("topic %s has %d partitions but holdfast.meta says %d: not relaying until the "
                 "topic has enough",
                 r->cfg.topic, topic_partitions, r->partition_count);
        relay_store_close(r);
        return false;
    }
    r->next_lease_tick_us = 0;
    hf_info("connected to PostgreSQL (epoch %s, %d partitions)", r->epoch, r->partition_count);
    return true;
}

static hf_err_t loop_lease_duty(relay_t *r)
{
    int64_t now = relay_now_us();
    if (now < r->next_lease_tick_us)
        return HF_OK;
    r->next_lease_tick_us = now + r->cfg.lease_renew_ms * 1000;
    hf_err_t rc = relay_store_load_meta(r);
    if (rc == HF_OK)
        rc = relay_lease_tick(r);
    if (rc == HF_OK)
        (void)relay_store_outbox_stats(r); /* metrics only */
    return rc;
}

void *relay_thread_main(void *arg)
{
    relay_t *r = arg;
    relay_batch_t batch = {0};
    bool fetch_due = true;
    int64_t next_poll_us = 0, retry_wake_us = 0;
    while (!atomic_load(&r->stopping)) {
        if (!loop_connected(r)) {
            loop_backoff(r, 0);
            continue;
        }
        int64_t tick_before = r->next_lease_tick_us;
        if (loop_lease_duty(r) != HF_OK || loop_resync_pending(r, &batch) != HF_OK) {
            loop_backoff(r, 0);
            continue;
        }
        if (r->next_lease_tick_us != tick_before)
            fetch_due = true; /* partitions may have been acquired or resynced */
        int64_t now = relay_now_us();
        if (retry_wake_us && now >= retry_wake_us)
            fetch_due = true; /* a partition's backoff ended */
        retry_wake_us = loop_next_retry_us(r, now);
        if (!fetch_due && now < next_poll_us) {
            /* idle: a NOTIFY, the slow poll, the next lease round, a partition's retry or a
             * stop ends the wait */
            relay_publisher_announce(r->redis);
            int64_t wait =
                next_poll_us < r->next_lease_tick_us ? next_poll_us : r->next_lease_tick_us;
            if (retry_wake_us && retry_wake_us < wait)
                wait = retry_wake_us;
            wait = (wait - now) / 1000;
            fetch_due = relay_store_wait(r, wait < 1 ? 1 : wait > 200 ? 200 : (int)wait);
            continue;
        }
        next_poll_us = now + r->cfg.poll_interval_ms * 1000;
        if (relay_store_fetch(r, &batch) != HF_OK) {
            loop_backoff(r, 0);
            continue;
        }
        fetch_due = batch.n > 0; /* a full or partial batch: look again at once */
        if (batch.n > 0)
            loop_move_batch(r, &batch);
        relay_batch_clear(&batch);
    }
    relay_batch_clear(&batch);
    hf_free(batch.events);
    relay_lease_leave(r);
    relay_store_close(r);
    atomic_store(&r->finished, true);
    return NULL;
}
