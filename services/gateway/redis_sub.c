/* redis_sub.c - the Redis subscriber thread; see redis_sub.h.
 *
 * hiredis' blocking API cannot wait for "a reply or a timeout" without
 * killing the connection, so the thread polls the socket itself and feeds
 * hiredis' reader (redisBufferRead + redisGetReplyFromReader).
 *
 * The heartbeat judges silence, not the age of a PING: a server sending a
 * long backlog answers the PING late but is plainly alive. Suspicion is
 * cheap (the lws thread reads Kafka as well, and the chain rule drops what
 * then comes twice), so it comes early; dropping the connection means
 * resubscribing every channel, so it waits for the ping timeout. */
#include "redis_sub.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "holdfast/alloc.h"
#include "holdfast/clock.h"
#include "holdfast/config.h"
#include "holdfast/log.h"
#include "holdfast/redis_conn.h"
#include "holdfast/strmap.h"
#include "holdfast/wire.h"

#define REDIS_PREFIX         HF_REDIS_CHANNEL_PREFIX
#define REDIS_SKIPPED        HF_REDIS_SKIPPED_CHANNEL
#define REDIS_HEADS          HF_REDIS_HEADS_CHANNEL
#define REDIS_HEADS_LINE_MAX (1 << 20) /* longer heartbeat lines are ignored */
#define REDIS_EPOCH_MAX      64        /* bytes of an epoch, as the protocol allows */
#define REDIS_BATCH          512       /* channels per SUBSCRIBE / UNSUBSCRIBE */
#define REDIS_WANT           ((void *)1)
#define REDIS_UNWANT         ((void *)2)

struct gw_redis {
    hf_redis_target_t target; /* where, and the credentials sent on each connect */
    gw_redis_config_t cfg;
    gw_inbox_t *inbox;
    pthread_t thread;
    atomic_bool stop;
    atomic_bool connected;
    int wake_fd;

    pthread_mutex_t lock;
    hf_strmap_t *pending; /* channel -> REDIS_WANT / REDIS_UNWANT, latest wins */
    char refusal[512];    /* Redis' refusal of the last connect; "" when none */

    /* the thread's own */
    hf_strmap_t *wanted;
    /* channel -> SUBSCRIBEs sent and not yet confirmed on this connection:
     * only the last confirmation counts, so one that answers an older
     * SUBSCRIBE (before an UNSUBSCRIBE) is not taken for the current one */
    hf_strmap_t *outstanding;
    redisContext *c;
    bool answered;        /* the first PONG came: Redis is alive, UP was reported */
    int64_t ping_sent_us; /* 0: no PING outstanding */
    int64_t last_ping_us;
    int64_t heard_us;  /* the last time anything came from Redis (or the connect) */
    int64_t jitter_us; /* added to the suspect time for the current silence */
    bool suspect;      /* REDIS_SUSPECT reported, REDIS_TRUSTED not yet */
    uint64_t rng;      /* xorshift64: the jitter */
    bool warned;
};

static void redis_drop(gw_redis_t *r, const char *why)
{
    if (!r->warned)
        hf_warn("redis %s: %s; delivering from Kafka until it is back", r->target.name, why);
    r->warned = true;
    if (r->c)
        redisFree(r->c);
    r->c = NULL;
    hf_strmap_free(r->outstanding);
    r->outstanding = hf_strmap_new();
    if (r->answered)
        gw_inbox_push(r->inbox, gw_msg_new(GW_MSG_REDIS_DOWN, why, NULL, 0));
    r->answered = false;
    r->suspect = false;
    atomic_store(&r->connected, false);
}

/* A fresh share of the jitter for the next silence: workers (and
 * gateways) that lose the same Redis at the same moment then turn to
 * Kafka spread over the jitter rather than all at once. */
static void redis_heard(gw_redis_t *r, int64_t now)
{
    r->heard_us = now;
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    int64_t span = r->cfg.suspect_jitter_ms * 1000;
    r->jitter_us = span > 0 ? (int64_t)(r->rng % (uint64_t)(span + 1)) : 0;
}

/* Appends (UN)SUBSCRIBE for up to REDIS_BATCH names at once. */
typedef struct redis_batch {
    redisContext *c;
    const char *cmd;
    const char *argv[REDIS_BATCH + 1];
    size_t lens[REDIS_BATCH + 1];
    char *owned[REDIS_BATCH + 1];
    int argc;
    hf_strmap_t *outstanding; /* SUBSCRIBE batches count what awaits confirmation */
} redis_batch_t;

static void redis_batch_flush(redis_batch_t *b)
{
    if (b->argc > 1)
        redisAppendCommandArgv(b->c, b->argc, b->argv, b->lens);
    for (int i = 1; i < b->argc; i++)
        hf_free(b->owned[i]);
    b->argc = 1;
}

static void redis_batch_init(redis_batch_t *b, redisContext *c, const char *cmd,
                             hf_strmap_t *outstanding)
{
    b->outstanding = outstanding;
    b->c = c;
    b->cmd = cmd;
    b->argv[0] = cmd;
    b->lens[0] = strlen(cmd);
    b->argc = 1;
}

static void redis_batch_add(redis_batch_t *b, const char *channel)
{
    size_t n = strlen(channel);
    char *name = hf_malloc(sizeof REDIS_PREFIX + n);
    memcpy(name, REDIS_PREFIX, sizeof REDIS_PREFIX - 1);
    memcpy(name + sizeof REDIS_PREFIX - 1, channel, n + 1);
    b->owned[b->argc] = name;
    b->argv[b->argc] = name;
    b->lens[b->argc] = n + sizeof REDIS_PREFIX - 1;
    if (b->outstanding) {
        intptr_t count = (intptr_t)hf_strmap_get(b->outstanding, channel);
        hf_strmap_put(b->outstanding, channel, (void *)(count + 1));
    }
    if (++b->argc == REDIS_BATCH + 1)
        redis_batch_flush(b);
}

static void redis_subscribe_each(const char *key, void *value, void *arg)
{
    (void)value;
    redis_batch_add(arg, key);
}

static void redis_set_refusal(gw_redis_t *r, const char *why)
{
    pthread_mutex_lock(&r->lock);
    snprintf(r->refusal, sizeof r->refusal, "%s", why);
    pthread_mutex_unlock(&r->lock);
}

static bool redis_connect(gw_redis_t *r)
{
    hf_err_t err;
    char why[512];
    /* The ping timeout bounds the connect, AUTH and every later write to a
     * server that stopped reading. */
    r->c = hf_redis_connect(&r->target, r->cfg.ping_timeout_ms, &err, why, sizeof why);
    if (!r->c) {
        if (err == HF_ERR_AUTH && !r->refusal[0]) /* a configuration to fix: said loudly, once */
            hf_error("%s: the gateway is not ready until this is fixed", why);
        redis_set_refusal(r, err == HF_ERR_AUTH ? why : "");
        redis_drop(r, why);
        return false;
    }
    if (r->refusal[0])
        hf_info("redis %s accepts the credentials again", r->target.name);
    redis_set_refusal(r, "");
    /* The PING's answer proves the server alive before anything is reported. */
    redisAppendCommand(r->c, "PING");
    r->ping_sent_us = r->last_ping_us = hf_now_us();
    redis_heard(r, r->ping_sent_us);
    return true;
}

/* Sends the wanted set (after connecting) once Redis has answered. */
static void redis_subscribe_all(gw_redis_t *r)
{
    redisAppendCommand(r->c, "SUBSCRIBE %s %s", REDIS_SKIPPED, REDIS_HEADS);
    redis_batch_t b;
    redis_batch_init(&b, r->c, "SUBSCRIBE", r->outstanding);
    hf_strmap_each(r->wanted, redis_subscribe_each, &b);
    redis_batch_flush(&b);
}

typedef struct redis_apply {
    gw_redis_t *r;
    redis_batch_t sub, unsub;
} redis_apply_t;

static void redis_apply_one(const char *channel, void *value, void *arg)
{
    redis_apply_t *a = arg;
    bool have = hf_strmap_get(a->r->wanted, channel) != NULL;
    if (value == REDIS_WANT) {
        /* Even when already wanted: the gateway re-created the channel and
         * waits for a confirmation (re-subscribing is harmless). */
        hf_strmap_put(a->r->wanted, channel, REDIS_WANT);
        if (a->r->c && a->r->answered)
            redis_batch_add(&a->sub, channel);
    } else if (value == REDIS_UNWANT && have) {
        hf_strmap_remove(a->r->wanted, channel);
        if (a->r->c && a->r->answered)
            redis_batch_add(&a->unsub, channel);
    }
}

static void redis_apply_pending(gw_redis_t *r)
{
    uint64_t drained;
    if (read(r->wake_fd, &drained, sizeof drained) < 0) { /* nothing pending: fine */
    }
    pthread_mutex_lock(&r->lock);
    hf_strmap_t *pending = r->pending;
    r->pending = hf_strmap_new();
    pthread_mutex_unlock(&r->lock);
    redis_apply_t a = {.r = r};
    redis_batch_init(&a.sub, r->c, "SUBSCRIBE", r->outstanding);
    redis_batch_init(&a.unsub, r->c, "UNSUBSCRIBE", NULL);
    hf_strmap_each(pending, redis_apply_one, &a);
    redis_batch_flush(&a.sub); /* no-ops while down: nothing was added */
    redis_batch_flush(&a.unsub);
    hf_strmap_free(pending);
}

static bool redis_flush(gw_redis_t *r)
{
    int done = 0;
    while (!done)
        if (redisBufferWrite(r->c, &done) != REDIS_OK) {
            redis_drop(r, "write failed");
            return false;
        }
    return true;
}

static bool redis_is(const redisReply *e, const char *s)
{
    return e->type == REDIS_REPLY_STRING && e->len == strlen(s) && memcmp(e->str, s, e->len) == 0;
}

static void redis_on_pong(gw_redis_t *r)
{
    r->ping_sent_us = 0;
    if (r->suspect) {
        /* Everything Redis had for us before it took the PING came first:
         * from here on the stream is current again. */
        r->suspect = false;
        hf_info("redis %s answers again: handing back from Kafka", r->target.name);
        gw_inbox_push(r->inbox, gw_msg_new(GW_MSG_REDIS_TRUSTED, NULL, NULL, 0));
    }
    if (r->answered)
        return;
    r->answered = true;
    atomic_store(&r->connected, true);
    if (r->warned)
        hf_info("redis %s is back: resubscribing %zu channels", r->target.name,
                hf_strmap_len(r->wanted));
    r->warned = false;
    gw_inbox_push(r->inbox, gw_msg_new(GW_MSG_REDIS_UP, NULL, NULL, 0));
    redis_subscribe_all(r);
}

static void redis_on_skipped(gw_redis_t *r, const char *text, size_t len)
{
    char buf[96];
    long long part, first, last;
    if (len >= sizeof buf)
        return;
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (sscanf(buf, "%lld:%lld:%lld", &part, &first, &last) != 3 || part < 0 || part > INT32_MAX ||
        first < 0 || last < first)
        return;
    gw_msg_t *m = gw_msg_new(GW_MSG_REDIS_SKIPPED, NULL, NULL, 0);
    m->partition = (int32_t)part;
    m->low = first;
    m->high = last;
    gw_inbox_push(r->inbox, m);
}

static bool heads_is_epoch_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '-';
}

/* A decimal number of at most 18 digits at *at, moving *at past it. */
static bool heads_number(const char **at, const char *end, int64_t *out)
{
    const char *p = *at;
    int64_t v = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (++digits > 18)
            return false;
        v = v * 10 + (*p++ - '0');
    }
    if (digits == 0)
        return false;
    *at = p;
    *out = v;
    return true;
}

hf_err_t gw_heads_parse(const char *text, size_t len, char *epoch, size_t epoch_size,
                        gw_head_t **heads, size_t *nheads)
{
    const char *p = text, *end = text + len;
    size_t n = 0;
    while (p < end && heads_is_epoch_char(*p))
        p++;
    n = (size_t)(p - text);
    if (n == 0 || n > REDIS_EPOCH_MAX || n >= epoch_size || (p < end && *p != ' '))
        return HF_ERR_INVALID;
    gw_head_t *out = NULL;
    size_t count = 0, cap = 0;
    while (p < end) {
        while (p < end && *p == ' ')
            p++;
        if (p == end)
            break;
        int64_t part, offset;
        if (!heads_number(&p, end, &part) || p == end || *p++ != ':' ||
            !heads_number(&p, end, &offset) || (p < end && *p != ' ') || part > INT32_MAX ||
            offset >= ((int64_t)1 << 62) || count == GW_HEADS_MAX) {
            hf_free(out);
            return HF_ERR_INVALID;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            out = hf_realloc(out, cap * sizeof *out);
        }
        out[count].partition = (int32_t)part;
        out[count].offset = offset;
        count++;
    }
    memcpy(epoch, text, n);
    epoch[n] = '\0';
    *heads = out;
    *nheads = count;
    return HF_OK;
}

/* The relay's heartbeat: parsed here, applied by the lws thread. */
static void redis_on_heads(gw_redis_t *r, const char *text, size_t len)
{
    char epoch[REDIS_EPOCH_MAX + 1];
    gw_head_t *heads = NULL;
    size_t n = 0;
    if (len > REDIS_HEADS_LINE_MAX ||
        gw_heads_parse(text, len, epoch, sizeof epoch, &heads, &n) != HF_OK) {
        hf_debug("redis: malformed line on %s ignored", REDIS_HEADS);
        return;
    }
    gw_msg_t *m = gw_msg_new(GW_MSG_REDIS_HEADS, epoch, NULL, 0);
    m->data = (uint8_t *)heads; /* the message owns it now */
    m->len = n * sizeof *heads;
    gw_inbox_push(r->inbox, m);
}

/* One reply; false when the connection must be dropped. */
static bool redis_on_reply(gw_redis_t *r, redisReply *reply)
{
    if (reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0) {
        redis_on_pong(r);
        return true;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2) {
        if (reply->type == REDIS_REPLY_ERROR)
            hf_warn("redis: %s", reply->str);
        return true;
    }
    redisReply **e = reply->element;
    if (redis_is(e[0], "pong")) {
        redis_on_pong(r);
    } else if (redis_is(e[0], "message") && reply->elements == 3 && redis_is(e[1], REDIS_SKIPPED) &&
               e[2]->type == REDIS_REPLY_STRING) {
        redis_on_skipped(r, e[2]->str, e[2]->len);
    } else if (redis_is(e[0], "message") && reply->elements == 3 && redis_is(e[1], REDIS_HEADS) &&
               e[2]->type == REDIS_REPLY_STRING) {
        redis_on_heads(r, e[2]->str, e[2]->len);
    } else if (redis_is(e[0], "message") && reply->elements == 3 &&
               e[2]->type == REDIS_REPLY_STRING) {
        gw_msg_t *m = gw_msg_new(GW_MSG_REDIS_EVENT, NULL, e[2]->str, e[2]->len);
        m->recv_us = hf_now_us();
        if (!gw_inbox_push_bounded(r->inbox, m)) {
            redis_drop(r, "gateway inbox full (the lws thread is behind)");
            return false;
        }
    } else if (redis_is(e[0], "subscribe") && e[1]->type == REDIS_REPLY_STRING &&
               e[1]->len > sizeof REDIS_PREFIX - 1 &&
               memcmp(e[1]->str, REDIS_PREFIX, sizeof REDIS_PREFIX - 1) == 0) {
        char *channel =
            hf_strndup(e[1]->str + sizeof REDIS_PREFIX - 1, e[1]->len - (sizeof REDIS_PREFIX - 1));
        intptr_t left = (intptr_t)hf_strmap_get(r->outstanding, channel) - 1;
        if (left > 0)
            hf_strmap_put(r->outstanding, channel, (void *)left);
        else
            hf_strmap_remove(r->outstanding, channel);
        if (left <= 0 && hf_strmap_get(r->wanted, channel))
            gw_inbox_push(r->inbox, gw_msg_new(GW_MSG_REDIS_SUBSCRIBED, channel, NULL, 0));
        hf_free(channel);
    }
    return true;
}

static void redis_read(gw_redis_t *r)
{
    if (redisBufferRead(r->c) != REDIS_OK) {
        redis_drop(r, r->c->err == REDIS_ERR_EOF ? "connection closed by the server"
                                                 : "connection lost");
        return;
    }
    redis_heard(r, hf_now_us());
    void *reply = NULL;
    while (r->c && redisGetReplyFromReader(r->c, &reply) == REDIS_OK && reply) {
        bool keep = redis_on_reply(r, reply);
        freeReplyObject(reply);
        reply = NULL;
        if (!keep)
            return;
    }
    if (r->c && r->c->err)
        redis_drop(r, "protocol error");
}

/* PING every interval. Silent with a PING outstanding: suspect after the
 * suspect time (plus jitter), down after the ping timeout. */
static void redis_heartbeat(gw_redis_t *r, int64_t now)
{
    int64_t silent = now - r->heard_us;
    if (r->ping_sent_us && silent > r->cfg.ping_timeout_ms * 1000) {
        redis_drop(r, "no answer to PING (server frozen?)");
        return;
    }
    if (r->ping_sent_us && r->answered && !r->suspect && r->cfg.suspect_after_ms > 0 &&
        silent > r->cfg.suspect_after_ms * 1000 + r->jitter_us) {
        r->suspect = true;
        hf_info("redis %s silent for %lld ms: reading Kafka as well until it answers",
                r->target.name, (long long)(silent / 1000));
        gw_inbox_push(r->inbox, gw_msg_new(GW_MSG_REDIS_SUSPECT, NULL, NULL, 0));
    }
    if (!r->ping_sent_us && now - r->last_ping_us >= r->cfg.ping_interval_ms * 1000) {
        redisAppendCommand(r->c, "PING");
        r->ping_sent_us = r->last_ping_us = now;
    }
}

static void redis_wait(gw_redis_t *r, int timeout_ms)
{
    struct pollfd pfd[2] = {{.fd = r->wake_fd, .events = POLLIN},
                            {.fd = r->c ? r->c->fd : -1, .events = POLLIN}};
    if (poll(pfd, 2, timeout_ms) > 0 && r->c && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
        redis_read(r);
}

/* Whatever already arrived, before silence is judged: this thread may
 * have been kept off the CPU, and that is no reason to suspect Redis. */
static void redis_read_ready(gw_redis_t *r)
{
    struct pollfd pfd = {.fd = r->c->fd, .events = POLLIN};
    if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR)))
        redis_read(r);
}

static void *redis_main(void *arg)
{
    gw_redis_t *r = arg;
    while (!atomic_load(&r->stop)) {
        if (!r->c && !redis_connect(r)) {
            struct pollfd pfd = {.fd = r->wake_fd, .events = POLLIN};
            poll(&pfd, 1, (int)r->cfg.retry_ms);
            redis_apply_pending(r); /* keeps the wanted set current while down */
            continue;
        }
        redis_apply_pending(r);
        redis_read_ready(r);
        if (r->c)
            redis_heartbeat(r, hf_now_us());
        if (r->c && redis_flush(r))
            redis_wait(r, 50);
    }
    if (r->c)
        redisFree(r->c);
    r->c = NULL;
    return NULL;
}

/* Frees what gw_redis_start made, once its thread is gone (or never ran). */
static void redis_state_free(gw_redis_t *r)
{
    if (r->wake_fd >= 0)
        close(r->wake_fd);
    hf_strmap_free(r->pending);
    hf_strmap_free(r->wanted);
    hf_strmap_free(r->outstanding);
    pthread_mutex_destroy(&r->lock);
    hf_redis_target_free(&r->target);
    hf_free(r);
}

gw_redis_t *gw_redis_start(const gw_redis_config_t *cfg, gw_inbox_t *inbox)
{
    gw_redis_t *r = hf_calloc(1, sizeof *r);
    char why[700];
    if (hf_redis_target_parse(cfg->url, cfg->password_file, &r->target, why, sizeof why) != HF_OK) {
        hf_error("%s", why);
        hf_free(r);
        return NULL;
    }
    /* Refused credentials stop the start (Redis unreachable does not: the
     * gateway delivers from Kafka meanwhile). */
    hf_err_t err = HF_OK;
    redisContext *probe = hf_redis_connect(&r->target, cfg->ping_timeout_ms, &err, why, sizeof why);
    if (probe)
        redisFree(probe);
    else if (err == HF_ERR_AUTH) {
        hf_error("%s: fix --redis-url or --redis-password-file", why);
        hf_redis_target_free(&r->target);
        hf_free(r);
        return NULL;
    }
    r->cfg = *cfg;
    r->inbox = inbox;
    r->rng = (uint64_t)hf_now_us() ^ ((uint64_t)(uintptr_t)r << 16) ^ 0x9e3779b97f4a7c15u;
    r->pending = hf_strmap_new();
    r->wanted = hf_strmap_new();
    r->outstanding = hf_strmap_new();
    r->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&r->lock, NULL);
    if (r->wake_fd < 0 || pthread_create(&r->thread, NULL, redis_main, r) != 0) {
        hf_error("cannot start the Redis subscriber thread");
        redis_state_free(r);
        return NULL;
    }
    return r;
}

static void redis_wake(gw_redis_t *r)
{
    uint64_t one = 1;
    if (write(r->wake_fd, &one, sizeof one) < 0) { /* counter full: it is awake anyway */
    }
}

void gw_redis_stop(gw_redis_t *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, true);
    redis_wake(r);
    pthread_join(r->thread, NULL);
    redis_state_free(r);
}

void gw_redis_want(gw_redis_t *r, const char *channel, bool want)
{
    pthread_mutex_lock(&r->lock);
    hf_strmap_put(r->pending, channel, want ? REDIS_WANT : REDIS_UNWANT);
    pthread_mutex_unlock(&r->lock);
    redis_wake(r);
}

bool gw_redis_connected(gw_redis_t *r)
{
    return r && atomic_load(&r->connected);
}

bool gw_redis_refusal(gw_redis_t *r, char *why, size_t why_size)
{
    if (!r)
        return false;
    pthread_mutex_lock(&r->lock);
    bool refused = r->refusal[0] != '\0';
    snprintf(why, why_size, "%s", r->refusal);
    pthread_mutex_unlock(&r->lock);
    return refused;
}
