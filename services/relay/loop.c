/* loop.c - the relay thread: one event loop, one duty after another.
 *
 * Each pass runs the duties that are due, in the order an event travels:
 * the lease round, resyncs, the stream (or a reconcile), producing,
 * delivery reports, the commit, the slot's feedback. Then it sleeps in
 * poll() until something can move: the replication connection (new
 * events), the SQL connection (the commit's answers), librdkafka (delivery
 * reports waiting, through an fd it writes), or the next timer (lease
 * round, commit interval, a partition's retry). Nothing but a resync chunk
 * or a chain lookup waits on PostgreSQL inside a pass, and those only
 * between lease rounds. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "holdfast/alloc.h"
#include "holdfast/envelope.h"
#include "holdfast/log.h"
#include "relay.h"

#define LOOP_BACKOFF_MIN_MS  100
#define LOOP_WAIT_MAX_MS     200
#define LOOP_STREAM_RETRY_US (500 * 1000)

void relay_crash_point(relay_t *r, const char *point)
{
    if (r->crash_batch > 0 && r->batches >= r->crash_batch && strcmp(r->crash_point, point) == 0) {
        hf_logf_kv(HF_LOG_WARN, NULL, "crash-at %s:%lld: killing myself", point, r->crash_batch);
        kill(getpid(), SIGKILL);
    }
}

bool relay_test_hook(relay_t *r, const char *point)
{
    if (r->crash_batch <= 0 || r->batches < r->crash_batch || strcmp(r->crash_point, point) != 0)
        return false;
    hf_logf_kv(HF_LOG_WARN, NULL, "test hook %s:%lld", point, r->crash_batch);
    r->crash_batch = 0; /* once */
    return true;
}

/* Sleeps ms, waking early only to stop. */
static void loop_pause(relay_t *r, long long ms)
{
    int64_t until = hf_now_us() + ms * 1000;
    while (!atomic_load(&r->stopping) && hf_now_us() < until)
        usleep(20 * 1000);
}

/* After a failure that is not one partition's (PostgreSQL): capped
 * exponential, never sleeping through a lease round. */
static void loop_backoff(relay_t *r)
{
    long long next = r->backoff_ms ? r->backoff_ms * 2 : LOOP_BACKOFF_MIN_MS;
    r->backoff_ms = next > r->cfg.backoff_max_ms ? r->cfg.backoff_max_ms : next;
    loop_pause(r, r->backoff_ms < r->cfg.lease_renew_ms ? r->backoff_ms : r->cfg.lease_renew_ms);
}

void relay_stop_leading(relay_t *r)
{
    relay_stream_close(r);
    relay_kafka_shutdown(r->kafka); /* every report it owed arrives now */
    relay_flow_abandon_reports(r);
    relay_store_commit_finish(r);
    relay_flow_reset(r);
    relay_chain_clear(r->chain);
    r->leader = false;
    r->started = false;
    r->reconciling = false;
    hf_gauge_set(r->m.leader, 0);
}

static bool loop_connected(relay_t *r)
{
    if (relay_store_usable(r))
        return true;
    if (r->started) {
        /* a commit may have been cut, the stream is gone: start over */
        relay_stop_leading(r);
        r->leader = false;
    }
    if (relay_store_connect(r) != HF_OK)
        return false;
    /* Unknown (Kafka unreachable) is not a refusal: produces wait for it. */
    int topic_partitions = relay_kafka_partition_count(r->kafka);
    bool unfit = topic_partitions >= 0 && topic_partitions < r->partition_count;
    atomic_store(&r->topic_unfit, unfit);
    if (unfit) {
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
    int64_t now = hf_now_us();
    if (now < r->next_lease_tick_us)
        return HF_OK;
    r->next_lease_tick_us = now + r->cfg.lease_renew_ms * 1000;
    relay_store_commit_finish(r); /* the connection runs one query at a time */
    hf_err_t rc = relay_store_load_meta(r);
    if (rc == HF_OK)
        rc = relay_lease_tick(r);
    if (rc == HF_OK && r->started)
        (void)relay_store_slot_stats(r); /* metrics only */
    return rc;
}

/* Becoming the leader: positions, the slot, then resyncs and (with a new
 * slot) a reconcile before the stream starts. */
static hf_err_t loop_start_leading(relay_t *r)
{
    relay_flow_reset(r);
    relay_chain_clear(r->chain);
    hf_err_t rc = relay_store_load_partitions(r);
    bool created = false;
    if (rc == HF_OK)
        rc = relay_stream_prepare(r, &created);
    if (rc == HF_OK)
        rc = relay_reconcile_begin(r);
    if (rc != HF_OK) {
        relay_flow_reset(r);
        return rc;
    }
    r->started = true;
    r->stream_retry_us = 0;
    return HF_OK;
}

static void loop_stream(relay_t *r)
{
    int64_t now = hf_now_us();
    if (r->restart_stream && r->stream) {
        hf_info("restarting the stream: a partition dropped its queue and can produce again");
        relay_stream_close(r);
    }
    r->restart_stream = false;
    if (!r->stream) {
        if (now < r->stream_retry_us)
            return;
        if (relay_stream_open(r) != HF_OK) {
            r->stream_retry_us = now + LOOP_STREAM_RETRY_US;
            return;
        }
        hf_counter_inc(r->m.stream_restarts);
    }
    if (r->queued_bytes > (size_t)r->cfg.stream_buffer)
        (void)relay_flow_shed(r);
    if (r->queued_bytes <= (size_t)r->cfg.stream_buffer && relay_stream_read(r) != HF_OK) {
        relay_stream_close(r);
        r->stream_retry_us = now + LOOP_STREAM_RETRY_US;
    }
}

static void loop_commit(relay_t *r)
{
    int64_t due;
    if (!relay_store_commit_busy(r) && relay_flow_commit_due(r, hf_now_us(), &due))
        (void)relay_store_commit_start(r);
    if (relay_store_commit_busy(r))
        (void)relay_store_commit_step(r);
}

/* Every partition's last offset published (or skipped) on Redis. */
static void loop_heartbeat(relay_t *r, int64_t now)
{
    if (!r->redis || r->cfg.heartbeat_interval_ms <= 0 || now < r->next_heartbeat_us)
        return;
    r->next_heartbeat_us = now + r->cfg.heartbeat_interval_ms * 1000;
    hf_buf_t text = HF_BUF_INIT;
    hf_buf_append_str(&text, r->epoch);
    for (int p = 0; p < r->parts_seen; p++)
        if (r->parts[p].acked_next > 0)
            hf_buf_printf(&text, " %d:%lld", p, (long long)r->parts[p].acked_next - 1);
    relay_publisher_heartbeat(r->redis, text.data);
    hf_buf_free(&text);
}

/* The leader's pass; an error (PostgreSQL) makes the loop back off. */
static hf_err_t loop_lead(relay_t *r)
{
    relay_flow_probe(r);
    hf_err_t rc = relay_resync_pending(r);
    if (rc == HF_OK && r->reconciling)
        rc = relay_reconcile(r);
    else if (rc == HF_OK && !atomic_load(&r->stopping))
        loop_stream(r);
    if (rc != HF_OK)
        return rc;
    relay_flow_produce(r);
    relay_kafka_poll(r->kafka, r->kafka_woken);
    r->kafka_woken = false;
    if (relay_kafka_check(r->kafka, relay_flow_oldest_produce_us(r)))
        relay_flow_abandon_reports(r);
    relay_flow_complete(r);
    loop_commit(r);
    (void)relay_stream_feedback(r, false);
    /* between batches: skipped offsets, once Redis is back; the heads */
    if (!relay_flow_oldest_produce_us(r))
        relay_publisher_announce(r->redis);
    if (!r->reconciling)
        loop_heartbeat(r, hf_now_us());
    int64_t oldest = relay_flow_oldest_pending_us(r);
    hf_gauge_set(r->m.stream_lag, oldest ? (double)(hf_wall_us() - oldest) / 1e6 : 0);
    return HF_OK;
}

/* Sleeps until something can move, or the next timer. */
static void loop_wait(relay_t *r)
{
    int64_t now = hf_now_us(), wake = now + LOOP_WAIT_MAX_MS * 1000, due;
    if (r->next_lease_tick_us < wake)
        wake = r->next_lease_tick_us;
    if (relay_flow_commit_due(r, now, &due) || r->restart_stream)
        wake = now;
    else if (due && due < wake)
        wake = due;
    int64_t retry = relay_flow_next_retry_us(r, now);
    if (retry && retry < wake)
        wake = retry;
    if (retry && r->next_probe_us < wake)
        wake = r->next_probe_us > now ? r->next_probe_us : now;
    /* a producer whose report is overdue is destroyed on time */
    int64_t produced = relay_flow_oldest_produce_us(r);
    int64_t overdue = produced + (r->cfg.produce_timeout_ms + RELAY_REPORT_SLACK_MS) * 1000;
    if (produced && overdue < wake)
        wake = overdue;
    if ((r->reconciling && relay_flow_drained(r)) || (r->started && relay_flow_ready(r, now)))
        wake = now;
    if (r->started && r->cfg.heartbeat_interval_ms > 0 && r->next_heartbeat_us < wake)
        wake = r->next_heartbeat_us;
    struct pollfd fds[3];
    int n = 0;
    fds[n++] = (struct pollfd){.fd = relay_kafka_wakeup_fd(r->kafka), .events = POLLIN};
    if (r->stream && r->queued_bytes <= (size_t)r->cfg.stream_buffer)
        fds[n++] = (struct pollfd){.fd = relay_stream_socket(r), .events = POLLIN};
    if (relay_store_commit_busy(r))
        fds[n++] = (struct pollfd){.fd = relay_store_socket(r), .events = POLLIN};
    int timeout = wake > now ? (int)((wake - now + 999) / 1000) : 0;
    if (poll(fds, (nfds_t)n, timeout) > 0 && (fds[0].revents & POLLIN))
        r->kafka_woken = true;
}

/* SIGTERM: what is in flight finishes, is published and recorded; the
 * slot learns how far; the lease is given back at once. */
static void loop_finish(relay_t *r)
{
    if (r->started) {
        int64_t deadline = hf_now_us() + (r->cfg.produce_timeout_ms + RELAY_REPORT_SLACK_MS) * 1000;
        while (relay_flow_oldest_produce_us(r) && hf_now_us() < deadline) {
            relay_kafka_poll(r->kafka, true);
            relay_flow_complete(r);
            loop_commit(r);
            usleep(5 * 1000);
        }
        relay_kafka_poll(r->kafka, true);
        relay_flow_complete(r);
        relay_store_commit_finish(r);
        if (relay_store_commit_start(r) == HF_OK)
            relay_store_commit_finish(r);
        (void)relay_stream_feedback(r, true);
    }
    relay_stop_leading(r);
    relay_lease_leave(r);
}

void *relay_thread_main(void *arg)
{
    relay_t *r = arg;
    while (!atomic_load(&r->stopping)) {
        if (!loop_connected(r)) {
            loop_backoff(r);
            continue;
        }
        if (loop_lease_duty(r) != HF_OK) {
            loop_backoff(r);
            continue;
        }
        if (r->leader && !r->started && loop_start_leading(r) != HF_OK) {
            loop_backoff(r);
            continue;
        }
        if (r->started && loop_lead(r) != HF_OK) {
            loop_backoff(r);
            continue;
        }
        r->backoff_ms = 0;
        loop_wait(r);
    }
    if (relay_store_usable(r))
        loop_finish(r);
    relay_store_close(r);
    atomic_store(&r->finished, true);
    return NULL;
}
