/* publish.c - the real-time path: PUBLISH each delivered event to Redis.
 *
 * Redis channel "hf:<channel>"; the message is the msgpack envelope with
 * partition, offset, prev_offset and epoch filled (schemas/envelope.md).
 * The epoch travels in the message, not in the channel name, so gateways
 * stay subscribed across an epoch change and see it on the next event.
 *
 * Redis is never allowed to stall the Kafka path: every call has a short
 * timeout, a failure drops the connection, publishes are then skipped
 * (and counted by the caller) and a reconnect is tried at most once per
 * second. Gateways fill whatever was skipped from Kafka (invariant 6,
 * docs/design.md).
 *
 * A gateway notices a skipped event by the chain only when the channel's
 * next event arrives, which for a quiet channel may be much later. So the
 * publisher remembers, per partition, the offsets it skipped, and once
 * Redis takes publishes again it first announces them on the control
 * channel "hfctl:skipped" (outside the "hf:" namespace of user channels)
 * as "PARTITION:FIRST:LAST": gateways then read those offsets from Kafka
 * right away. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "holdfast/alloc.h"
#include "holdfast/config.h"
#include "holdfast/envelope.h"
#include "holdfast/log.h"
#include "holdfast/redis_conn.h"
#include "holdfast/wire.h"
#include "relay.h"

#define PUBLISH_RECONNECT_US (1000 * 1000)

typedef struct publisher_skip {
    int64_t first, last; /* offsets skipped; first < 0: none */
} publisher_skip_t;

struct relay_publisher {
    hf_redis_target_t target; /* where, and the credentials AUTH sends on each connect */
    long long timeout_ms;
    redisContext *redis; /* NULL while down */
    int64_t next_connect_us;
    bool warned_down;
    bool refused; /* the last connect failed on the credentials, not the network */
    hf_buf_t buf;
    publisher_skip_t skipped[RELAY_MAX_PARTITIONS];
    bool any_skipped;
};

static bool publisher_connect(relay_publisher_t *p);

relay_publisher_t *relay_publisher_new(const char *url, const char *password_file,
                                       long long timeout_ms)
{
    if (!url || !*url)
        return NULL;
    relay_publisher_t *p = hf_calloc(1, sizeof *p);
    char why[700];
    if (hf_redis_target_parse(url, password_file, &p->target, why, sizeof why) != HF_OK) {
        hf_error("%s", why);
        hf_free(p);
        return NULL;
    }
    p->timeout_ms = timeout_ms;
    for (int i = 0; i < RELAY_MAX_PARTITIONS; i++)
        p->skipped[i].first = -1;
    /* Credentials Redis refuses are a start-up error; Redis merely down is
     * an outage the relay rides out (publishes skipped, announced later). */
    if (!publisher_connect(p) && p->refused) {
        hf_error("redis %s refused the relay's credentials: fix --redis-url or "
                 "--redis-password-file",
                 p->target.name);
        relay_publisher_free(p);
        return NULL;
    }
    return p;
}

static void publisher_drop(relay_publisher_t *p, const char *why)
{
    if (!p->warned_down)
        hf_warn("redis %s unavailable (%s): publishes skipped until it is back", p->target.name,
                why);
    p->warned_down = true;
    if (p->redis)
        redisFree(p->redis);
    p->redis = NULL;
    p->next_connect_us = hf_now_us() + PUBLISH_RECONNECT_US;
}

static bool publisher_connect(relay_publisher_t *p)
{
    if (p->redis)
        return true;
    if (hf_now_us() < p->next_connect_us)
        return false;
    hf_err_t err;
    char why[700];
    p->redis = hf_redis_connect(&p->target, p->timeout_ms, &err, why, sizeof why);
    p->refused = !p->redis && err == HF_ERR_AUTH;
    if (!p->redis) {
        publisher_drop(p, why);
        return false;
    }
    if (p->warned_down)
        hf_info("redis %s is back: publishing resumes", p->target.name);
    p->warned_down = false;
    return true;
}

bool relay_publisher_connected(const relay_publisher_t *p)
{
    return p && p->redis;
}

void relay_publisher_free(relay_publisher_t *p)
{
    if (!p)
        return;
    if (p->redis)
        redisFree(p->redis);
    hf_redis_target_free(&p->target);
    hf_buf_free(&p->buf);
    hf_free(p);
}

static void publisher_note_skipped(relay_publisher_t *p, relay_event_t *const *evs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const relay_event_t *ev = evs[i];
        publisher_skip_t *s = &p->skipped[ev->partition];
        if (s->first < 0 || ev->offset < s->first)
            s->first = ev->offset;
        if (ev->offset > s->last)
            s->last = ev->offset;
        p->any_skipped = true;
    }
}

/* Announces what was skipped (see the top of this file); false when Redis
 * failed again (the ranges are kept for the next try). */
static bool publisher_announce_skipped(relay_publisher_t *p)
{
    if (!p->any_skipped)
        return true;
    for (int i = 0; i < RELAY_MAX_PARTITIONS; i++) {
        publisher_skip_t *s = &p->skipped[i];
        if (s->first < 0)
            continue;
        redisReply *reply =
            redisCommand(p->redis, "PUBLISH %s %d:%lld:%lld", HF_REDIS_SKIPPED_CHANNEL, i,
                         (long long)s->first, (long long)s->last);
        bool ok = reply && reply->type != REDIS_REPLY_ERROR;
        if (reply)
            freeReplyObject(reply);
        if (!ok) {
            publisher_drop(p, "announcing skipped events failed");
            return false;
        }
        s->first = -1;
        s->last = 0;
    }
    p->any_skipped = false;
    return true;
}

void relay_publisher_announce(relay_publisher_t *p)
{
    if (p && p->any_skipped && publisher_connect(p))
        (void)publisher_announce_skipped(p); /* a failure keeps them for the next call */
}

void relay_publisher_heartbeat(relay_publisher_t *p, const char *text)
{
    if (!p || !publisher_connect(p))
        return;
    redisReply *reply = redisCommand(p->redis, "PUBLISH %s %s", HF_REDIS_HEADS_CHANNEL, text);
    bool ok = reply && reply->type != REDIS_REPLY_ERROR;
    if (reply)
        freeReplyObject(reply);
    if (!ok)
        publisher_drop(p, "heartbeat failed");
}

size_t relay_publish(relay_publisher_t *p, relay_event_t *const *evs, size_t n, const char *epoch)
{
    if (!p || n == 0)
        return 0;
    if (!publisher_connect(p) || !publisher_announce_skipped(p)) {
        publisher_note_skipped(p, evs, n);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        relay_event_envelope(evs[i], epoch, true, &p->buf);
        char channel[256];
        snprintf(channel, sizeof channel, HF_REDIS_CHANNEL_PREFIX "%s", evs[i]->channel);
        if (redisAppendCommand(p->redis, "PUBLISH %s %b", channel, p->buf.data, p->buf.len) !=
            REDIS_OK) {
            publisher_drop(p, "out of memory");
            publisher_note_skipped(p, evs, n);
            return 0;
        }
    }
    size_t done = 0;
    for (; done < n; done++) {
        redisReply *reply = NULL;
        if (redisGetReply(p->redis, (void **)&reply) != REDIS_OK || !reply ||
            reply->type == REDIS_REPLY_ERROR) {
            char why[160];
            snprintf(why, sizeof why, "%s",
                     reply ? reply->str : (p->redis->errstr[0] ? p->redis->errstr : "no reply"));
            if (reply)
                freeReplyObject(reply);
            publisher_drop(p, why);
            break;
        }
        freeReplyObject(reply);
    }
    /* the rest may or may not have gone out: announce them all */
    publisher_note_skipped(p, evs + done, n - done);
    return done;
}
