/* tap.c - holdfast-tap: watch the real-time path.
 *
 * PSUBSCRIBEs to the relay's Redis channels (pattern "hf:*" by default),
 * decodes every envelope and prints it (stdout or --out) as one JSON object per
 * line: the `event` message clients get (holdfast/event_json.h: channel, id,
 * partition, offset, prev_offset, epoch, event_type, ts_us = insert time in
 * PostgreSQL, replay, data) plus recv_us (arrival here, same clock).
 * Tests and benchmarks use it to check the prev_offset chain and to time
 * commit-to-Redis; operators use it to see what is flowing.
 *
 * Exit: 0 after --count messages or on SIGTERM/SIGINT; 2 bad usage; 1
 * Redis unreachable or lost; 3 no message for --timeout. "ready" goes to
 * stderr once the subscription is confirmed, so a caller knows nothing
 * published after that is missed. */
#include <errno.h>
#include <poll.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/types.h>

#include "holdfast/buf.h"
#include "holdfast/config.h"
#include "holdfast/envelope.h"
#include "holdfast/event_json.h"
#include "holdfast/redis_conn.h"
#include "holdfast/wire.h"

#define TAP_CONNECT_TIMEOUT_MS 5000

typedef struct tap_config {
    char *redis_url;
    char *redis_password_file;
    char *pattern;
    char *out;
    long long count;
    long long timeout_ms;
} tap_config_t;

static const hf_conf_spec_t tap_specs[] = {
    {"redis-url", HF_CONF_STRING, offsetof(tap_config_t, redis_url), "redis://127.0.0.1:6379", 0, 0,
     "Redis to subscribe to, redis://[USER:PASSWORD@]HOST:PORT[/DB]"},
    {"redis-password-file", HF_CONF_STRING, offsetof(tap_config_t, redis_password_file), NULL, 0, 0,
     "file holding the Redis password (instead of one in the URL)"},
    {"pattern", HF_CONF_STRING, offsetof(tap_config_t, pattern), HF_REDIS_CHANNEL_PREFIX "*", 0, 0,
     "PSUBSCRIBE pattern (hf:<channel> are the relay's channels)"},
    {"out", HF_CONF_STRING, offsetof(tap_config_t, out), NULL, 0, 0,
     "write the JSON lines to this file instead of stdout"},
    {"count", HF_CONF_INT, offsetof(tap_config_t, count), "0", 0, 1LL << 62,
     "exit 0 after this many messages (0: run until signalled)"},
    {"timeout", HF_CONF_MS, offsetof(tap_config_t, timeout_ms), "0", 0, 1LL << 40,
     "exit 3 when no message arrives for this long (0: wait forever)"},
};
#define TAP_NSPECS (sizeof tap_specs / sizeof tap_specs[0])

static volatile sig_atomic_t tap_stop;

static void tap_on_signal(int sig)
{
    (void)sig;
    tap_stop = 1;
}

static long long tap_now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* One output line for one Redis message: the client-facing event message
 * (holdfast/event_json.h) plus recv_us. A message that is not a valid
 * envelope is printed as {"error":...} rather than dropped. */
static void tap_format(hf_buf_t *out, const redisReply *chan, const redisReply *msg,
                       long long recv_us)
{
    hf_envelope_t env;
    const char *why = "invalid envelope";
    hf_buf_reset(out);
    if (hf_envelope_decode((const uint8_t *)msg->str, msg->len, &env, &why) != HF_OK) {
        hf_buf_append_str(out, "{\"error\":\"");
        hf_buf_append_json_escaped(out, why, strlen(why));
        hf_buf_append_str(out, "\",\"redis_channel\":\"");
        hf_buf_append_json_escaped(out, chan->str, chan->len);
        hf_buf_printf(out, "\",\"recv_us\":%lld}\n", recv_us);
        return;
    }
    hf_event_json_append(out, &env, env.offset, env.prev_offset, NULL);
    out->len--; /* reopen the object: drop its closing brace */
    hf_buf_printf(out, ",\"recv_us\":%lld}\n", recv_us);
}

static redisContext *tap_subscribe(const tap_config_t *cfg)
{
    hf_redis_target_t target;
    char why[700];
    hf_err_t err;
    if (hf_redis_target_parse(cfg->redis_url, cfg->redis_password_file, &target, why, sizeof why) !=
        HF_OK) {
        fprintf(stderr, "holdfast-tap: %s\n", why);
        return NULL;
    }
    redisContext *redis = hf_redis_connect(&target, TAP_CONNECT_TIMEOUT_MS, &err, why, sizeof why);
    hf_redis_target_free(&target);
    if (!redis) {
        fprintf(stderr, "holdfast-tap: %s\n", why);
        return NULL;
    }
    redisReply *reply = redisCommand(redis, "PSUBSCRIBE %s", cfg->pattern);
    bool ok = reply && reply->type == REDIS_REPLY_ARRAY;
    if (!ok)
        fprintf(stderr, "holdfast-tap: PSUBSCRIBE %s failed: %s\n", cfg->pattern,
                reply && reply->type == REDIS_REPLY_ERROR ? reply->str : redis->errstr);
    if (reply)
        freeReplyObject(reply);
    if (!ok) {
        redisFree(redis);
        return NULL;
    }
    return redis;
}

/* Next reply, waiting in short poll slices so a signal or the idle
 * timeout is noticed (hiredis retries a read interrupted by a signal).
 * Returns 1 with *reply, 0 on signal, 3 on idle timeout, -1 on error. */
static int tap_next_reply(redisContext *redis, long long timeout_ms, FILE *out, redisReply **reply)
{
    long long idle_since = tap_now_us();
    for (;;) {
        *reply = NULL;
        if (redisGetReplyFromReader(redis, (void **)reply) != REDIS_OK)
            return -1;
        if (*reply)
            return 1;
        if (tap_stop)
            return 0;
        if (timeout_ms > 0 && tap_now_us() - idle_since >= timeout_ms * 1000)
            return 3;
        fflush(out); /* nothing buffered left: let readers of the file see it all */
        struct pollfd pfd = {.fd = redis->fd, .events = POLLIN};
        int n = poll(&pfd, 1, 100);
        if (n < 0 && errno != EINTR)
            return -1;
        if (n > 0 && redisBufferRead(redis) != REDIS_OK)
            return -1;
    }
}

/* Reads messages until count, a signal, idle timeout or an error; returns the exit code. */
static int tap_run(redisContext *redis, const tap_config_t *cfg, FILE *sink)
{
    hf_buf_t line = {0};
    long long seen = 0;
    int rc = 0;
    while (cfg->count == 0 || seen < cfg->count) {
        redisReply *reply;
        int got = tap_next_reply(redis, cfg->timeout_ms, sink, &reply);
        if (got != 1) {
            if (got != 0)
                fprintf(stderr, "holdfast-tap: %s after %lld messages\n",
                        got == 3 ? "no message within --timeout" : redis->errstr, seen);
            rc = got == 0 ? 0 : got == 3 ? 3 : 1;
            break;
        }
        long long recv_us = tap_now_us();
        /* pmessage replies: ["pmessage", pattern, channel, message] */
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 4 &&
            reply->element[3]->type == REDIS_REPLY_STRING) {
            tap_format(&line, reply->element[2], reply->element[3], recv_us);
            fwrite(line.data, 1, line.len, sink);
            seen++;
        }
        freeReplyObject(reply);
    }
    fflush(sink);
    hf_buf_free(&line);
    return rc;
}

int main(int argc, char **argv)
{
    tap_config_t cfg = {0};
    const char *usage = "holdfast-tap [--redis-url URL] [--pattern P] [--count N] [--timeout MS]\n"
                        "Prints every event the relay publishes to Redis as one JSON line.";
    int loaded =
        hf_config_load_tool("holdfast-tap", tap_specs, TAP_NSPECS, &cfg, argc, argv, usage);
    if (loaded >= 0)
        return loaded;
    struct sigaction sa = {.sa_handler = tap_on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    FILE *sink = cfg.out ? fopen(cfg.out, "w") : stdout;
    if (!sink) {
        fprintf(stderr, "holdfast-tap: --out %s: %s\n", cfg.out, strerror(errno));
        hf_config_free(tap_specs, TAP_NSPECS, &cfg);
        return 2;
    }
    redisContext *redis = tap_subscribe(&cfg);
    int rc = 1;
    if (redis) {
        fprintf(stderr, "ready\n");
        rc = tap_run(redis, &cfg, sink);
        redisFree(redis);
    }
    if (sink != stdout && fclose(sink) != 0 && rc == 0) {
        fprintf(stderr, "holdfast-tap: --out %s: %s\n", cfg.out, strerror(errno));
        rc = 1;
    }
    hf_config_free(tap_specs, TAP_NSPECS, &cfg);
    return rc;
}
