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
 * subscribes everything again.
 *
 * Threading: gw_redis_want() is called from the lws thread; changes are
 * coalesced and sent in batches by the subscriber thread. */
#ifndef HOLDFAST_GW_REDIS_SUB_H
#define HOLDFAST_GW_REDIS_SUB_H

#include <stdbool.h>

#include "holdfast/err.h"
#include "inbox.h"

typedef struct gw_redis gw_redis_t;

typedef struct gw_redis_config {
    const char *url;
    long long ping_interval_ms;
    long long ping_timeout_ms;
    long long retry_ms;
} gw_redis_config_t;

/* Starts the thread. NULL on a bad URL (logged). */
gw_redis_t *gw_redis_start(const gw_redis_config_t *cfg, gw_inbox_t *inbox);
/* Stops and joins the thread, closes the connection. */
void gw_redis_stop(gw_redis_t *redis);
/* Subscribe to (want) or unsubscribe from (!want) a Holdfast channel. */
void gw_redis_want(gw_redis_t *redis, const char *channel, bool want);
/* True while connected and answering. */
bool gw_redis_connected(gw_redis_t *redis);

#endif
