/* redis_sub.h - the gateway's Redis Pub/Sub subscriber thread.
 *
 * Owns one Redis connection in subscribe mode, the set of channels the
 * gateway wants ("hf:<channel>"), the heartbeat that notices a frozen
 * server, and reconnecting. A SIGSTOPped Redis keeps its sockets open, so
 * only silence tells: with a PING outstanding and nothing heard for the
 * suspect time (plus this thread's jitter) it reports REDIS_SUSPECT and
 * keeps the connection; heard from again (the PONG), REDIS_TRUSTED; silent
 * for the ping timeout, the connection is dropped. It reports to the lws
 * thread through the inbox: REDIS_UP once Redis answers, SUBSCRIBED per
 * confirmed channel, each published envelope, the relay's announcements
 * (skipped offsets, the partitions' heads), and REDIS_DOWN whenever the
 * stream may have lost something (connection lost, silent past the ping
 * timeout, cut by Redis' output-buffer limit, or the inbox full), after
 * which it reconnects and subscribes everything again. Every connect
 * authenticates (AUTH, SELECT: redis_conn.h); credentials Redis refuses
 * stop the start, and later make the gateway unready (gw_redis_refusal)
 * until a reconnect succeeds.
 *
 * Threading: gw_redis_want() is called from the lws thread; changes are
 * coalesced and sent in batches by the subscriber thread. */
#ifndef HOLDFAST_GW_REDIS_SUB_H
#define HOLDFAST_GW_REDIS_SUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "holdfast/err.h"
#include "inbox.h"

typedef struct gw_redis gw_redis_t;

typedef struct gw_redis_config {
    const char *url;
    const char *password_file; /* NULL: the URL's password, if any */
    long long ping_interval_ms;
    long long ping_timeout_ms;   /* silent this long: the connection is dropped */
    long long suspect_after_ms;  /* silent this long: REDIS_SUSPECT (0: never) */
    long long suspect_jitter_ms; /* plus a random share of this, drawn per silence */
    long long retry_ms;
} gw_redis_config_t;

/* One partition's head in the relay's heartbeat (wire.h, hfctl:heads). */
typedef struct gw_head {
    int32_t partition;
    int64_t offset; /* the last offset of the partition the relay published or skipped */
} gw_head_t;

#define GW_HEADS_MAX 65536 /* partitions in one heartbeat line, at most */

/* Parses "EPOCH P:O P:O ..." (fields separated by spaces; EPOCH 1..64
 * bytes of [0-9A-Za-z_-]; P, O decimal, P < 2^31, O < 2^62) into epoch
 * (NUL-terminated; epoch_size > 64) and *heads (the caller's, hf_free;
 * NULL when there are none). HF_ERR_INVALID on anything else, heads then
 * untouched: a malformed line is ignored as a whole. */
hf_err_t gw_heads_parse(const char *text, size_t len, char *epoch, size_t epoch_size,
                        gw_head_t **heads, size_t *nheads);

/* Starts the thread. NULL (logged) on a bad URL, an unreadable password
 * file, or credentials Redis refuses at start (Redis unreachable is not
 * an error: the thread keeps trying). */
gw_redis_t *gw_redis_start(const gw_redis_config_t *cfg, gw_inbox_t *inbox);
/* Stops and joins the thread, closes the connection. */
void gw_redis_stop(gw_redis_t *redis);
/* Subscribe to (want) or unsubscribe from (!want) a Holdfast channel. */
void gw_redis_want(gw_redis_t *redis, const char *channel, bool want);
/* True while connected and answering. */
bool gw_redis_connected(gw_redis_t *redis);
/* True while the last connect failed because Redis refused the
 * credentials (or a command: NOPERM); why gets Redis' answer. */
bool gw_redis_refusal(gw_redis_t *redis, char *why, size_t why_size);

#endif
