/* fleet.c - the driver's WebSocket clients: libwebsockets, one loop on the
 * main thread, every client a state machine driven by its callbacks and a
 * 10 ms tick.
 *
 * A client does what the protocol (schemas/websocket.md) asks of a real
 * one: after any close it reconnects to the next gateway and resubscribes
 * with `since` = the offset and epoch of the last event it got (or of its
 * subscription when none came). Every event is recorded for verify.c; no
 * judgement is made here except what only the connection can see (close
 * codes, recovered:false, events of a foreign channel). */
#include "driver.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "holdfast/alloc.h"

#define FLEET_TICK_US        10000
#define FLEET_CONNECTS_TICK  20 /* new connections per tick: 2,000/s at most */
#define FLEET_RECONNECT_US   100000
#define FLEET_RECONNECT_SPAN 200 /* clients spread their reconnects over this many ms */

static cd_run_t *fleet_run; /* the callbacks' way back to the run */
static lws_sorted_usec_list_t fleet_tick_sul;

static void fleet_connect(cd_client_t *c)
{
    const cd_url_t *u = &fleet_run->gateways[c->url_index];
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = fleet_run->lws;
    ci.address = u->host;
    ci.port = u->port;
    ci.path = u->path;
    ci.host = u->host;
    /* No Origin: a program, not a web page (gateways check the Origin of
     * browsers against --allowed-origins; "127.0.0.1" is no origin at all). */
    ci.protocol = "holdfast.v1.json";
    ci.opaque_user_data = c;
    ci.pwsi = &c->wsi;
    c->reconnect_at = 0;
    c->resubscribe_at = 0;
    c->subscribed = false;
    c->want_subscribe = false;
    c->close_code = 0;
    c->rx_len = 0;
    if (!lws_client_connect_via_info(&ci) && !c->reconnect_at) {
        /* Refused before any callback (none scheduled a retry): try the
         * next gateway later. */
        c->wsi = NULL;
        fleet_run->close_codes[4]++;
        c->url_index = (c->url_index + 1) % fleet_run->ngateways;
        c->reconnect_at = hf_now_us() + FLEET_RECONNECT_US;
    }
}

/* A connection ended (or never opened): count it, move to the next gateway. */
static void fleet_lost(cd_client_t *c, bool connect_failed)
{
    cd_run_t *run = fleet_run;
    c->wsi = NULL;
    c->subscribed = false;
    if (connect_failed) {
        run->close_codes[4]++;
    } else {
        run->closes++;
        int code = c->close_code ? c->close_code : 1006;
        run->close_codes[code == 1006 ? 0 : code == 1012 ? 1 : code == 4001 ? 2 : 3]++;
    }
    c->url_index = (c->url_index + 1) % run->ngateways;
    c->reconnect_at = hf_now_us() + FLEET_RECONNECT_US + (c->index % FLEET_RECONNECT_SPAN) * 1000LL;
}

static int fleet_write_subscribe(struct lws *wsi, cd_client_t *c)
{
    unsigned char buf[LWS_PRE + 320];
    char *p = (char *)buf + LWS_PRE;
    int n;
    c->want_subscribe = false;
    if (!c->ever_subscribed)
        n = snprintf(p, 320, "{\"type\":\"subscribe\",\"channel\":\"%s\"}", c->channel);
    else if (c->pos_epoch_null)
        n = snprintf(p, 320,
                     "{\"type\":\"subscribe\",\"channel\":\"%s\",\"since\":{\"offset\":%lld,"
                     "\"epoch\":null}}",
                     c->channel, (long long)c->pos_offset);
    else
        n = snprintf(p, 320,
                     "{\"type\":\"subscribe\",\"channel\":\"%s\",\"since\":{\"offset\":%lld,"
                     "\"epoch\":\"%s\"}}",
                     c->channel, (long long)c->pos_offset, c->pos_epoch);
    if (n <= 0 || n >= 320)
        return -1;
    return lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_TEXT) < n ? -1 : 0;
}

static void fleet_set_position(cd_client_t *c, json_t *offset, json_t *epoch)
{
    c->pos_offset = json_integer_value(offset);
    c->pos_epoch_null = !json_is_string(epoch);
    snprintf(c->pos_epoch, sizeof c->pos_epoch, "%s",
             json_is_string(epoch) ? json_string_value(epoch) : "");
}

static void fleet_on_subscribed(cd_client_t *c, json_t *m)
{
    cd_run_t *run = fleet_run;
    json_t *offset = json_object_get(m, "offset");
    if (!json_is_integer(offset))
        return;
    if (c->ever_subscribed) {
        run->reconnects++;
        if (!json_is_true(json_object_get(m, "recovered")))
            c->not_recovered++;
    } else {
        c->ever_subscribed = true;
        c->start_offset = json_integer_value(offset);
        run->nsubscribed++;
    }
    /* A resubscription's answer repeats the since given, so this only
     * moves the position on a first subscription or a refused resume. */
    fleet_set_position(c, offset, json_object_get(m, "epoch"));
    c->subscribed = true;
}

static void fleet_on_event(cd_client_t *c, json_t *m)
{
    cd_run_t *run = fleet_run;
    const char *channel = json_string_value(json_object_get(m, "channel"));
    json_t *offset = json_object_get(m, "offset"), *prev = json_object_get(m, "prev_offset");
    json_t *seq = json_object_get(json_object_get(m, "data"), "seq");
    if (!channel || strcmp(channel, c->channel) != 0 || !json_is_integer(offset)) {
        c->wrong_channel++;
        return;
    }
    if (c->ngot == c->capgot) {
        c->capgot = c->capgot ? c->capgot * 2 : 256;
        c->got = hf_realloc(c->got, c->capgot * sizeof *c->got);
    }
    cd_delivery_t *d = &c->got[c->ngot++];
    d->offset = json_integer_value(offset);
    d->prev = json_is_integer(prev) ? json_integer_value(prev) : -2;
    d->seq = json_is_integer(seq) ? json_integer_value(seq) : -1;
    d->recv_us = hf_wall_us();
    if (d->seq >= 0 && d->seq < run->nevents && d->recv_us > run->events[d->seq].all_recv_us)
        run->events[d->seq].all_recv_us = d->recv_us;
    fleet_set_position(c, offset, json_object_get(m, "epoch"));
    run->last_recv_us = hf_now_us();
}

static void fleet_on_message(cd_client_t *c)
{
    json_error_t jerr;
    json_t *m = json_loadb(c->rx, c->rx_len, 0, &jerr);
    const char *type = json_string_value(json_object_get(m, "type"));
    if (!type) {
        c->errors++;
        snprintf(c->last_error, sizeof c->last_error, "unparsable message");
    } else if (strcmp(type, "event") == 0) {
        fleet_on_event(c, m);
    } else if (strcmp(type, "subscribed") == 0) {
        fleet_on_subscribed(c, m);
    } else if (strcmp(type, "error") == 0) {
        const char *code = json_string_value(json_object_get(m, "code"));
        if (code && strcmp(code, "unavailable") == 0 && !c->subscribed) {
            /* The protocol's "subscribe again shortly" (Kafka unreachable
             * while the gateway looks up a position). */
            c->unavailable++;
            c->resubscribe_at = hf_now_us() + FLEET_RECONNECT_US * 5;
        } else {
            c->errors++;
            snprintf(c->last_error, sizeof c->last_error, "%s", code ? code : "?");
        }
    }
    json_decref(m);
}

static void fleet_receive(cd_client_t *c, struct lws *wsi, const void *in, size_t len)
{
    if (lws_is_first_fragment(wsi)) {
        c->rx_len = 0;
        c->rx_oversized = false;
    }
    if (c->rx_len + len > CD_MAX_MESSAGE) {
        c->rx_oversized = true;
    } else if (!c->rx_oversized) {
        if (c->rx_len + len > c->rx_cap) {
            c->rx_cap = c->rx_len + len > 2 * c->rx_cap ? c->rx_len + len : 2 * c->rx_cap;
            c->rx = hf_realloc(c->rx, c->rx_cap);
        }
        memcpy(c->rx + c->rx_len, in, len);
        c->rx_len += len;
    }
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) != 0)
        return;
    if (!c->rx_oversized) {
        fleet_on_message(c);
    } else {
        c->errors++;
        snprintf(c->last_error, sizeof c->last_error, "message over %d bytes", CD_MAX_MESSAGE);
    }
    c->rx_len = 0;
}

static int fleet_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len)
{
    cd_client_t *c = (cd_client_t *)lws_get_opaque_user_data(wsi);
    (void)user;
    if (!c || !fleet_run) /* fleet_run is NULL while cd_fleet_stop closes everything */
        return 0;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        c->want_subscribe = true;
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return c->want_subscribe ? fleet_write_subscribe(wsi, c) : 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        fleet_receive(c, wsi, in, len);
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len >= 2)
            c->close_code = ((const unsigned char *)in)[0] << 8 | ((const unsigned char *)in)[1];
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (c->wsi == wsi || !c->wsi)
            fleet_lost(c, true);
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (c->wsi == wsi || !c->wsi)
            fleet_lost(c, false);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols fleet_protocols[] = {
    {"holdfast.v1.json", fleet_callback, 0, 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void fleet_tick(lws_sorted_usec_list_t *sul)
{
    cd_run_t *run = fleet_run;
    int64_t now = hf_now_us();
    for (int k = 0; k < FLEET_CONNECTS_TICK && run->next_connect < run->nclients; k++)
        fleet_connect(&run->clients[run->next_connect++]);
    for (int i = 0; i < run->next_connect; i++) {
        cd_client_t *c = &run->clients[i];
        if (!c->wsi && c->reconnect_at && now >= c->reconnect_at)
            fleet_connect(c);
        if (c->wsi && c->resubscribe_at && now >= c->resubscribe_at) {
            c->resubscribe_at = 0;
            c->want_subscribe = true;
            lws_callback_on_writable(c->wsi);
        }
    }
    lws_sul_schedule(run->lws, 0, sul, fleet_tick, FLEET_TICK_US);
}

int cd_fleet_init(cd_run_t *run)
{
    fleet_run = run;
    run->clients = hf_calloc((size_t)run->nclients, sizeof *run->clients);
    for (int i = 0; i < run->nclients; i++) {
        cd_client_t *c = &run->clients[i];
        c->index = i;
        c->url_index = i % run->ngateways;
        snprintf(c->channel, sizeof c->channel, "%s:%d", run->prefix, i % run->nchannels);
    }
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = fleet_protocols;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    info.fd_limit_per_thread = (unsigned int)run->nclients + 64;
    run->lws = lws_create_context(&info);
    if (!run->lws) {
        fprintf(stderr, "holdfast-chaos-driver: cannot create the lws context\n");
        return -1;
    }
    lws_sul_schedule(run->lws, 0, &fleet_tick_sul, fleet_tick, 1000);
    return 0;
}

bool cd_fleet_wait_subscribed(cd_run_t *run)
{
    int64_t deadline = hf_now_us() + (int64_t)(run->connect_s * 1e6);
    while (run->nsubscribed < run->nclients && !atomic_load(&run->interrupted) &&
           hf_now_us() < deadline)
        if (lws_service(run->lws, 0) < 0)
            return false;
    return run->nsubscribed == run->nclients;
}

bool cd_fleet_all_subscribed_now(const cd_run_t *run)
{
    for (int i = 0; i < run->nclients; i++)
        if (!run->clients[i].subscribed)
            return false;
    return true;
}

bool cd_fleet_reached(const cd_run_t *run, const int64_t *max_offset)
{
    for (int i = 0; i < run->nclients; i++) {
        const cd_client_t *c = &run->clients[i];
        int64_t want = max_offset[i % run->nchannels];
        if (want >= 0 && (!c->ngot || c->got[c->ngot - 1].offset < want))
            return false;
    }
    return true;
}

bool cd_fleet_service(cd_run_t *run)
{
    return lws_service(run->lws, 0) >= 0;
}

void cd_fleet_stop(cd_run_t *run)
{
    if (!run->lws)
        return;
    lws_sul_cancel(&fleet_tick_sul);
    /* Closes every connection; the callbacks still run, and count closes
     * the run did not cause: stop counting first. */
    fleet_run = NULL;
    for (int i = 0; i < run->nclients; i++)
        run->clients[i].wsi = NULL;
    lws_context_destroy(run->lws);
    run->lws = NULL;
}
