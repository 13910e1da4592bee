/* redis_sub.h - the gateway's Redis Pub/Sub subscriber thread.
 *
 * Owns one Redis connection in subscribe mode, the set of channels the
 * gateway wants ("hf:<channel>"), the heartbeat that notices a frozen
 * server (a SIGSTOPped Redis keeps its sockets open: no PONG within the
 * ping timeout counts as down), and reconnecting. It reports to the lws
 * thread through the inbox: REDIS_UP once Redis answers, SUBSCRIBED per
 * confirmed channel, each published envelope, and REDIS_DOWN whenever the
 * stream may have lost something (connection lost, frozen, cut by Redis'
 * output-buffer limit, or the inbox full), after which it reconnects and
 * subscribes everything again. Every connect authenticates (AUTH, SELECT:
 * redis_conn.h); credentials Redis refuses stop the start, and later make
 * the gateway unready (gw_redis_refusal) until a reconnect succeeds.
 *
 * Threading: gw_redis_want() is called from the lws thread; changes are
 * coalesced and sent in batches by the subscriber thread. */
#ifndef HOLDFAST_GW_REDIS_SUB_H
#define HOLDFAST_GW_REDIS_SUB_H

#include <stdbool.h>
#include <stddef.h>

#include "holdfast/err.h"
#include "inbox.h"

typedef struct gw_redis gw_redis_t;

typedef struct gw_redis_config {
    const char *url;
    const char *password_file; /* NULL: the URL's password, if any */
    long long ping_interval_ms;
    long long ping_timeout_ms;
    long long retry_ms;
} gw_redis_config_t;

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
