/* loadgen.c - holdfast-loadgen: many WebSocket clients in one process,
 * for the benchmarks (and anything else that needs load with exact
 * per-client accounting).
 *
 * Opens --clients connections (libwebsockets client, one service thread,
 * paced at --connect-rate per second, at most 256 handshakes in flight, a
 * failed connect tried again up to 5 times) spread round-robin over --urls;
 * client i subscribes to channel PREFIX:(i mod --channels). Once every
 * client is subscribed it writes --ready-file, then counts for --duration
 * seconds (or until --events deliveries arrived) and prints one JSON
 * object: connections, connect time, deliveries, their rate, latency
 * percentiles (receive time minus the event's commit time ts_us, or
 * minus a "t" field in the payload when present, microseconds since the
 * epoch, same machine's clock), duplicates, chain breaks (prev_offset
 * not the previous offset), closes, and the longest pause between two
 * deliveries (max_gap_ms, ending max_gap_end_s into the count); with
 * --timeline 1 also one line per second on stderr (deliveries,
 * p50/p99/max; --timeline-ms sets another interval); --cdf FILE writes the
 * latency CDF for plotting. Exit 1 if any client was closed, got a
 * duplicate or saw its chain break. --token T sends
 * "Authorization: Bearer T" with every upgrade, for gateways with auth on.
 *
 * --protocol socketio speaks to Socket.IO 4 servers instead (the peer the
 * benchmark compares with, bench/node/socketio_server.js), so that both
 * are measured by the same client program: the path of every URL is
 * replaced by Socket.IO's default, /socket.io/?EIO=4&transport=websocket,
 * and no WebSocket subprotocol is asked for. Over Engine.IO v4 text
 * frames a client waits for the open packet (0{...}), connects to the
 * default namespace (40), emits ["subscribe","PREFIX:K"], counts as
 * subscribed on ["subscribed",...], answers every ping (2) with a pong (3)
 * and counts ["event",{"channel":..,"data":{"t":..}}] with the latency
 * from "t". Socket.IO events carry no offsets, so duplicates and chain
 * breaks cannot be seen there; the report says "ordering_checked":false. */
#include <errno.h>
#include <inttypes.h>
#include <libwebsockets.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "holdfast/clock.h"
#include "holdfast/config.h"

#define LG_HIST_BUCKET_US 10
#define LG_HIST_BUCKETS   1000000 /* 10 s in 10 us steps; later goes to the last */
#define LG_MAX_URLS       16
/* Handshakes in flight at once: more only queue in the server's accept
 * backlog, where lws's own connect timeout fails them on a busy machine. */
#define LG_MAX_CONNECTING 256
#define LG_MAX_ATTEMPTS   5 /* per client, failed connects retried */

typedef enum lg_protocol { LG_HOLDFAST, LG_SOCKETIO } lg_protocol_t;

#define LG_SOCKETIO_PATH "/socket.io/?EIO=4&transport=websocket"

typedef struct lg_client {
    int index;
    struct lws *wsi;
    bool subscribed;
    bool sent_subscribe;
    bool closed;
    bool connecting; /* a handshake of ours is in flight */
    int attempts;
    /* Socket.IO only: the handshake's steps, and pings not yet answered.
     * Everything is written from WRITEABLE; these say what is owed. */
    bool eio_open;     /* got Engine.IO's open packet */
    bool sent_connect; /* sent the namespace connect, 40 */
    bool sio_connected;
    int pongs_due;
    int64_t last_offset; /* -2: nothing yet */
    char rx[4096];
    size_t rx_len;
} lg_client_t;

typedef struct lg_url {
    char host[128];
    int port;
    char path[128];
} lg_url_t;

typedef struct lg {
    /* Settings (lg_settings: defaults, env, then flags; strings owned). */
    char *urls_text;            /* ws:// URLs, comma-separated */
    long long clients;          /* connections */
    long long channels;         /* client i subscribes to PREFIX:(i mod channels) */
    char *prefix;               /* channel prefix */
    long long connect_rate;     /* connects started per second */
    double duration_s;          /* seconds counted once all are subscribed */
    long long want_events;      /* stop counting after this many deliveries; 0: no limit */
    char *ready_file;           /* written once every client is subscribed; NULL: none */
    long long timeline_setting; /* 1: timeline lines on stderr */
    long long timeline_ms;      /* their interval; > 0 also turns them on */
    char *cdf_file;             /* latency CDF written here; NULL: none */
    char *protocol_name;        /* holdfast or socketio */
    char *token;                /* bearer token on every upgrade; NULL: none */
    /* From the settings. */
    lg_protocol_t protocol;
    lg_url_t urls[LG_MAX_URLS];
    int nurls;
    struct lws_context *ctx;
    lg_client_t *cl;
    int next_connect;
    int connected, subscribed, closes, connect_errors, connect_retries;
    int connecting; /* handshakes in flight */
    int *retry;     /* clients whose connect failed, to try again */
    int retry_len;
    int64_t last_delivery_us, max_gap_us, max_gap_end_us; /* monotonic */
    int64_t t_start_us, t_all_subscribed_us, t_count_start_us;
    long long events, duplicates, chain_breaks, oversized;
    uint32_t *hist;
    int64_t lat_max_us;
    bool timeline; /* one line per timeline_us on stderr */
    int64_t timeline_us;
    int64_t next_line_us;
    uint32_t sec_hist[10001]; /* this second's latencies, 1 ms buckets */
    long long sec_events;
    int64_t sec_max_us;
    lws_sorted_usec_list_t tick;
    bool done;
    bool reported;
} lg_t;

static lg_t G;
static volatile sig_atomic_t lg_interrupted;

static void lg_report(void);
static bool lg_connect_settled(lg_client_t *c);
static bool lg_connect_ended_badly(lg_client_t *c);

static bool lg_parse_url(const char *text, lg_url_t *u)
{
    if (strncmp(text, "ws://", 5) != 0)
        return false;
    const char *host = text + 5, *colon = strchr(host, ':'), *slash = strchr(host, '/');
    if (!colon || !slash || colon > slash || (size_t)(colon - host) >= sizeof u->host)
        return false;
    memcpy(u->host, host, (size_t)(colon - host));
    u->host[colon - host] = '\0';
    u->port = atoi(colon + 1);
    snprintf(u->path, sizeof u->path, "%s", slash);
    return u->port > 0;
}

/* The integer after "key": in s, or def when absent or null. */
static int64_t lg_field(const char *s, const char *key, int64_t def)
{
    const char *p = strstr(s, key);
    if (!p)
        return def;
    p += strlen(key);
    if (*p == 'n')
        return def;
    return strtoll(p, NULL, 10);
}

/* ordered: the message carries offsets (Holdfast), so duplicates and
 * chain breaks are checked; Socket.IO's carry none. */
static void lg_on_event(lg_client_t *c, const char *msg, bool ordered)
{
    int64_t t = lg_field(msg, "\"t\":", -1);
    if (t < 0)
        t = lg_field(msg, "\"ts_us\":", -1);
    if (ordered) {
        int64_t offset = lg_field(msg, "\"offset\":", -1);
        int64_t prev = lg_field(msg, "\"prev_offset\":", -3);
        if (offset <= c->last_offset) {
            G.duplicates++;
            return;
        }
        if (c->last_offset >= 0 && prev != -3 && prev != c->last_offset)
            G.chain_breaks++;
        c->last_offset = offset;
    }
    if (!G.t_count_start_us)
        return; /* still connecting: not counted */
    G.events++;
    int64_t mono = hf_now_us();
    if (G.last_delivery_us && mono - G.last_delivery_us > G.max_gap_us) {
        G.max_gap_us = mono - G.last_delivery_us;
        G.max_gap_end_us = mono - G.t_count_start_us;
    }
    G.last_delivery_us = mono;
    if (t > 0) {
        int64_t lat = hf_wall_us() - t;
        if (lat < 0)
            lat = 0;
        if (lat > G.lat_max_us)
            G.lat_max_us = lat;
        int64_t b = lat / LG_HIST_BUCKET_US;
        G.hist[b < LG_HIST_BUCKETS ? b : LG_HIST_BUCKETS - 1]++;
        G.sec_hist[lat / 1000 < 10000 ? lat / 1000 : 10000]++;
        G.sec_events++;
        if (lat > G.sec_max_us)
            G.sec_max_us = lat;
    }
}

static void lg_mark_subscribed(lg_client_t *c)
{
    if (c->subscribed)
        return;
    c->subscribed = true;
    if (++G.subscribed == G.clients)
        G.t_all_subscribed_us = hf_now_us();
}

static bool lg_sio_owes_output(const lg_client_t *c)
{
    return c->pongs_due > 0 || (c->eio_open && !c->sent_connect) ||
           (c->sio_connected && !c->sent_subscribe);
}

/* One Engine.IO packet (a whole text frame) from a Socket.IO server;
 * nonzero closes the connection, which the report counts. Packets of
 * the default namespace carry no namespace, so an emit is 42[...]. */
static int lg_on_socketio(struct lws *wsi, lg_client_t *c, const char *msg)
{
    switch (msg[0]) {
    case '0': /* open: the session exists, the namespace can be joined */
        c->eio_open = true;
        break;
    case '2': /* ping: unanswered for pingTimeout, the server drops us */
        c->pongs_due++;
        break;
    case '4':
        if (strncmp(msg, "42[\"event\",", 11) == 0) {
            lg_on_event(c, msg, false);
            return 0;
        }
        if (strncmp(msg, "42[\"subscribed\",", 16) == 0) {
            lg_mark_subscribed(c);
            return 0;
        }
        if (strncmp(msg, "40", 2) == 0) {
            c->sio_connected = true;
            break;
        }
        if (strncmp(msg, "41", 2) == 0 || strncmp(msg, "44", 2) == 0) {
            fprintf(stderr, "holdfast-loadgen: client %d: Socket.IO %s: %.200s\n", c->index,
                    msg[1] == '1' ? "disconnect" : "connect refused", msg + 2);
            return -1;
        }
        return 0;
    default: /* close (1), noop (6) and anything else: nothing to do */
        return 0;
    }
    if (lg_sio_owes_output(c))
        lws_callback_on_writable(wsi);
    return 0;
}

static int lg_on_message(struct lws *wsi, lg_client_t *c, const char *msg)
{
    if (G.protocol == LG_SOCKETIO)
        return lg_on_socketio(wsi, c, msg);
    if (strncmp(msg, "{\"type\":\"event\"", 15) == 0)
        lg_on_event(c, msg, true);
    else if (strncmp(msg, "{\"type\":\"subscribed\"", 20) == 0)
        lg_mark_subscribed(c);
    return 0;
}

/* The next thing a Socket.IO client owes its server, written once the
 * socket is writable: pongs first, since a late one costs the session. */
static int lg_socketio_write(struct lws *wsi, lg_client_t *c)
{
    unsigned char buf[LWS_PRE + 256];
    char *out = (char *)buf + LWS_PRE;
    int n;
    if (c->pongs_due > 0) {
        n = snprintf(out, 256, "3");
        c->pongs_due--;
    } else if (c->eio_open && !c->sent_connect) {
        n = snprintf(out, 256, "40");
        c->sent_connect = true;
    } else if (c->sio_connected && !c->sent_subscribe) {
        n = snprintf(out, 256, "42[\"subscribe\",\"%s:%lld\"]", G.prefix, c->index % G.channels);
        c->sent_subscribe = true;
    } else {
        return 0;
    }
    if (lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_TEXT) < n)
        return -1;
    if (lg_sio_owes_output(c))
        lws_callback_on_writable(wsi);
    return 0;
}

static int lg_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    lg_client_t *c = (lg_client_t *)lws_get_opaque_user_data(wsi);
    (void)user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        if (!G.token)
            return 0;
        unsigned char **p = (unsigned char **)in, *end = *p + len;
        char value[4096];
        int n = snprintf(value, sizeof value, "Bearer %s", G.token);
        if (n < 0 || (size_t)n >= sizeof value)
            return -1;
        return lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
                                            (unsigned char *)value, n, p, end)
                   ? -1
                   : 0;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        G.connected++;
        lg_connect_settled(c);
        /* Socket.IO speaks first (the open packet); Holdfast waits for us. */
        if (G.protocol == LG_HOLDFAST)
            lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
        if (c && G.protocol == LG_SOCKETIO)
            return lg_socketio_write(wsi, c);
        if (!c || c->sent_subscribe)
            return 0;
        unsigned char buf[LWS_PRE + 256];
        int n =
            snprintf((char *)buf + LWS_PRE, 256, "{\"type\":\"subscribe\",\"channel\":\"%s:%lld\"}",
                     G.prefix, c->index % G.channels);
        c->sent_subscribe = true;
        return lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_TEXT) < n ? -1 : 0;
    }
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (!c)
            return 0;
        if (lws_is_first_fragment(wsi))
            c->rx_len = 0;
        if (c->rx_len + len >= sizeof c->rx) {
            G.oversized++;
            c->rx_len = sizeof c->rx; /* dropped; marks the message as unusable */
            return 0;
        }
        memcpy(c->rx + c->rx_len, in, len);
        c->rx_len += len;
        if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
            int rc = 0;
            if (c->rx_len < sizeof c->rx) {
                c->rx[c->rx_len] = '\0';
                rc = lg_on_message(wsi, c, c->rx);
            }
            c->rx_len = 0;
            return rc;
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    case LWS_CALLBACK_WSI_DESTROY:
        lg_connect_ended_badly(c);
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        /* lws 4.1 ends some handshakes (a server that stops answering) with
         * CLOSED rather than CONNECTION_ERROR: a failed connect too. */
        if (lg_connect_ended_badly(c))
            return 0;
        if (c && !G.done) {
            G.closes++;
            c->closed = true;
        }
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols lg_protocols[] = {
    {"holdfast.v1.json", lg_callback, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* Whether c had a handshake in flight (now ended): a failure reported
 * twice for one attempt (lws may call back and return NULL) counts once. */
static bool lg_connect_settled(lg_client_t *c)
{
    if (!c || !c->connecting)
        return false;
    c->connecting = false;
    G.connecting--;
    return true;
}

/* A handshake of c that ended without ESTABLISHED: counted once (lws may
 * report one attempt's end more than once) and tried again later, up to
 * LG_MAX_ATTEMPTS. False when c had no handshake in flight. */
static bool lg_connect_ended_badly(lg_client_t *c)
{
    if (!lg_connect_settled(c))
        return false;
    G.connect_errors++;
    if (c->attempts < LG_MAX_ATTEMPTS && !G.done)
        G.retry[G.retry_len++] = c->index;
    else
        c->closed = true;
    return true;
}

static void lg_connect_one(int i)
{
    lg_client_t *c = &G.cl[i];
    const lg_url_t *u = &G.urls[i % G.nurls];
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = G.ctx;
    ci.address = u->host;
    ci.port = u->port;
    ci.path = u->path;
    ci.host = u->host;
    /* No Origin: a program, not a web page (gateways check the Origin of
     * browsers against --allowed-origins; "127.0.0.1" is no origin at all). */
    ci.protocol = "holdfast.v1.json";
    if (G.protocol == LG_SOCKETIO) {
        /* Socket.IO's server offers no subprotocol; asking for none keeps
         * lws from failing the upgrade over the missing answer, and the
         * local name still binds the connection to our callback. */
        ci.path = LG_SOCKETIO_PATH;
        ci.protocol = NULL;
        ci.local_protocol_name = lg_protocols[0].name;
    }
    ci.opaque_user_data = c;
    ci.pwsi = &c->wsi;
    c->attempts++;
    c->connecting = true;
    G.connecting++;
    if (!lws_client_connect_via_info(&ci))
        lg_connect_ended_badly(c);
}

/* Starts this tick's share of connects, failed ones first, while fewer
 * than LG_MAX_CONNECTING handshakes are in flight. */
static void lg_connect_some(void)
{
    int per_tick = G.connect_rate / 100 > 0 ? (int)(G.connect_rate / 100) : 1;
    for (int k = 0; k < per_tick && G.connecting < LG_MAX_CONNECTING; k++) {
        if (G.retry_len > 0) {
            G.connect_retries++;
            lg_connect_one(G.retry[--G.retry_len]);
        } else if (G.next_connect < G.clients) {
            lg_connect_one(G.next_connect++);
        } else {
            return;
        }
    }
}

/* t (seconds since counting began), deliveries in the last second, and
 * their p50/p99/max latency in ms. */
static void lg_timeline_line(int64_t now)
{
    long long seen = 0, p50 = -1, p99 = -1;
    for (int i = 0; i <= 10000 && G.sec_events; i++) {
        seen += G.sec_hist[i];
        if (p50 < 0 && seen * 2 > G.sec_events)
            p50 = i + 1;
        if (p99 < 0 && seen * 100 > G.sec_events * 99)
            p99 = i + 1;
    }
    fprintf(stderr, "timeline t=%.2f deliveries=%lld p50_ms<=%lld p99_ms<=%lld max_ms=%.1f\n",
            (now - G.t_count_start_us) / 1e6, G.sec_events, p50, p99, G.sec_max_us / 1000.0);
    memset(G.sec_hist, 0, sizeof G.sec_hist);
    G.sec_events = 0;
    G.sec_max_us = 0;
}

static void lg_tick(lws_sorted_usec_list_t *sul)
{
    lg_connect_some();
    int64_t now = hf_now_us();
    if (G.t_all_subscribed_us && !G.t_count_start_us) {
        G.t_count_start_us = now;
        if (G.ready_file) {
            FILE *f = fopen(G.ready_file, "w");
            if (f) {
                fputs("ready\n", f);
                fclose(f);
            }
        }
    }
    if (G.timeline && G.t_count_start_us && now >= G.next_line_us) {
        if (G.next_line_us)
            lg_timeline_line(now);
        G.next_line_us = (G.next_line_us ? G.next_line_us : now) + G.timeline_us;
    }
    if (G.t_count_start_us && (now - G.t_count_start_us > (int64_t)(G.duration_s * 1e6) ||
                               (G.want_events > 0 && G.events >= G.want_events)))
        G.done = true;
    if (now - G.t_start_us > (int64_t)(G.duration_s * 1e6) + 120 * 1000000LL)
        G.done = true; /* never subscribed fully: give up, the report says so */
    if (G.done || lg_interrupted) {
        G.done = true;
        lg_report();
        G.reported = true;
        lws_context_destroy(G.ctx); /* stops the loop; main finishes the destroy */
        return;
    }
    lws_sul_schedule(G.ctx, 0, &G.tick, lg_tick, 10 * 1000);
}

static double lg_percentile(double q)
{
    long long total = 0, seen = 0;
    for (int i = 0; i < LG_HIST_BUCKETS; i++)
        total += G.hist[i];
    if (!total)
        return 0;
    long long rank = (long long)(q * (double)total);
    for (int i = 0; i < LG_HIST_BUCKETS; i++) {
        seen += G.hist[i];
        if (seen > rank)
            return (i + 1) * LG_HIST_BUCKET_US / 1000.0;
    }
    return G.lat_max_us / 1000.0;
}

/* The latency CDF as "ms fraction" lines, one per 0.1 % step (gnuplot's
 * input for the benchmark's plots). */
static int lg_write_cdf(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    long long total = 0, seen = 0;
    for (int i = 0; i < LG_HIST_BUCKETS; i++)
        total += G.hist[i];
    double next = 0;
    for (int i = 0; i < LG_HIST_BUCKETS && total; i++) {
        seen += G.hist[i];
        double frac = (double)seen / (double)total;
        if (G.hist[i] && (frac >= next || seen == total)) {
            fprintf(f, "%.3f %.5f\n", (i + 1) * LG_HIST_BUCKET_US / 1000.0, frac);
            next = frac + 0.001;
        }
    }
    return fclose(f) == 0 ? 0 : -1;
}

static void lg_report(void)
{
    if (G.cdf_file && lg_write_cdf(G.cdf_file) != 0)
        fprintf(stderr, "holdfast-loadgen: cannot write %s: %s\n", G.cdf_file, strerror(errno));
    int64_t end = hf_now_us();
    double counted_s = G.t_count_start_us ? (end - G.t_count_start_us) / 1e6 : 0;
    double connect_s = G.t_all_subscribed_us ? (G.t_all_subscribed_us - G.t_start_us) / 1e6 : -1;
    printf("{\"clients\":%lld,\"connected\":%d,\"subscribed\":%d,\"connect_errors\":%d,"
           "\"closes\":%d,\"connect_seconds\":%.3f,\"connect_rate\":%.0f,\"counted_seconds\":%.3f,"
           "\"deliveries\":%lld,\"deliveries_per_second\":%.0f,\"duplicates\":%lld,"
           "\"chain_breaks\":%lld,\"ordering_checked\":%s,\"connect_retries\":%d,"
           "\"max_gap_ms\":%.1f,\"max_gap_end_s\":%.2f,\"oversized\":%lld,"
           "\"latency_ms\":{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"p999\":%.2f,"
           "\"max\":%.2f}}\n",
           G.clients, G.connected, G.subscribed, G.connect_errors, G.closes, connect_s,
           connect_s > 0 ? G.clients / connect_s : 0, counted_s, G.events,
           counted_s > 0 ? G.events / counted_s : 0, G.duplicates, G.chain_breaks,
           G.protocol == LG_HOLDFAST ? "true" : "false", G.connect_retries, G.max_gap_us / 1000.0,
           G.max_gap_end_us / 1e6, G.oversized, lg_percentile(0.50), lg_percentile(0.90),
           lg_percentile(0.99), lg_percentile(0.999), G.lat_max_us / 1000.0);
}

static void lg_uv_signal(void *handle, int sig)
{
    (void)handle;
    (void)sig;
    lg_interrupted = 1;
}

static void lg_on_signal(int sig)
{
    (void)sig;
    lg_interrupted = 1;
}

#define LG_SET(field) offsetof(lg_t, field)
static const hf_conf_spec_t lg_settings[] = {
    {"urls", HF_CONF_STRING, LG_SET(urls_text), NULL, 0, 0,
     "ws://HOST:PORT/PATH URLs, comma-separated, at most " HF_CONF_STR(LG_MAX_URLS) " (required)"},
    {"clients", HF_CONF_INT, LG_SET(clients), "100", 1, 1000000,
     "WebSocket connections, spread round-robin over the URLs"},
    {"channels", HF_CONF_INT, LG_SET(channels), "1", 1, 1000000,
     "channels; client i subscribes to PREFIX:(i mod channels)"},
    {"prefix", HF_CONF_STRING, LG_SET(prefix), "bench", 0, 0, "channel name prefix"},
    {"connect-rate", HF_CONF_INT, LG_SET(connect_rate), "2000", 1, 10000000,
     "connects started per second"},
    {"duration", HF_CONF_DOUBLE, LG_SET(duration_s), "10", 0, 604800,
     "seconds to count deliveries once every client is subscribed"},
    {"events", HF_CONF_INT, LG_SET(want_events), "0", 0, LLONG_MAX,
     "stop counting after this many deliveries (0: no limit)"},
    {"ready-file", HF_CONF_STRING, LG_SET(ready_file), NULL, 0, 0,
     "written once every client is subscribed"},
    {"timeline", HF_CONF_INT, LG_SET(timeline_setting), "0", 0, 1,
     "1: a line per second on stderr (deliveries, p50/p99/max latency)"},
    {"timeline-ms", HF_CONF_MS, LG_SET(timeline_ms), "0", 0, 3600000,
     "the timeline's interval; more than 0 turns the timeline on (0: a second)"},
    {"cdf", HF_CONF_STRING, LG_SET(cdf_file), NULL, 0, 0, "write the latency CDF here"},
    {"protocol", HF_CONF_STRING, LG_SET(protocol_name), "holdfast", 0, 0,
     "holdfast, or socketio for Socket.IO 4 servers (each URL's path replaced by " LG_SOCKETIO_PATH
     ")"},
    {"token", HF_CONF_STRING, LG_SET(token), NULL, 0, 0,
     "sent as Authorization: Bearer TOKEN with every upgrade (holdfast only)"},
};
#undef LG_SET
#define LG_NSETTINGS (sizeof lg_settings / sizeof lg_settings[0])

static const char lg_usage[] =
    "usage: holdfast-loadgen --urls ws://H:P/v1/ws[,...] [flags]\n"
    "Many WebSocket clients in one process: counts every delivery and prints one JSON\n"
    "object (deliveries, latency percentiles, duplicates, chain breaks, closes).\n"
    "Exit 0 clean, 1 a client was closed or saw a duplicate or a chain break, 2 bad settings.";

static bool lg_parse_urls(const char *text)
{
    char *copy = strdup(text), *save = NULL;
    bool ok = copy != NULL;
    for (char *t = strtok_r(copy, ",", &save); ok && t; t = strtok_r(NULL, ",", &save)) {
        ok = G.nurls < LG_MAX_URLS && lg_parse_url(t, &G.urls[G.nurls++]);
        if (!ok)
            fprintf(stderr, "holdfast-loadgen: bad URL %s (or more than %d)\n", t, LG_MAX_URLS);
    }
    free(copy);
    return ok && G.nurls > 0;
}

/* Returns -1 to continue, otherwise the exit status (0 for --help, 2 for bad settings). */
static int lg_args(int argc, char **argv)
{
    int rc = hf_config_load_tool("holdfast-loadgen", lg_settings, LG_NSETTINGS, &G, argc, argv,
                                 lg_usage);
    if (rc >= 0)
        return rc;
    if (!G.urls_text) {
        fprintf(stderr, "holdfast-loadgen: --urls is required (see --help)\n");
        return 2;
    }
    if (!lg_parse_urls(G.urls_text))
        return 2;
    if (strcmp(G.protocol_name, "holdfast") == 0) {
        G.protocol = LG_HOLDFAST;
    } else if (strcmp(G.protocol_name, "socketio") == 0) {
        G.protocol = LG_SOCKETIO;
    } else {
        fprintf(stderr, "holdfast-loadgen: unknown protocol %s\n", G.protocol_name);
        return 2;
    }
    if (G.token && G.protocol == LG_SOCKETIO) {
        /* Socket.IO would take credentials in its connect packet, and the
         * peer server checks none: refuse rather than silently drop it. */
        fprintf(stderr, "holdfast-loadgen: --token is for --protocol holdfast\n");
        return 2;
    }
    G.timeline = G.timeline_setting || G.timeline_ms > 0;
    G.timeline_us = (G.timeline_ms > 0 ? G.timeline_ms : 1000) * 1000;
    return -1;
}

int main(int argc, char **argv)
{
    int rc = lg_args(argc, argv);
    if (rc >= 0) {
        hf_config_free(lg_settings, LG_NSETTINGS, &G);
        return rc;
    }
    G.cl = calloc((size_t)G.clients, sizeof *G.cl);
    G.retry = calloc((size_t)G.clients, sizeof *G.retry);
    G.hist = calloc(LG_HIST_BUCKETS, sizeof *G.hist);
    if (!G.cl || !G.hist || !G.retry)
        return 1;
    for (int i = 0; i < G.clients; i++) {
        G.cl[i].index = i;
        G.cl[i].last_offset = -2;
    }
    signal(SIGINT, lg_on_signal);
    signal(SIGTERM, lg_on_signal);
    signal(SIGPIPE, SIG_IGN);
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = lg_protocols;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    info.fd_limit_per_thread = (unsigned int)G.clients + 64;
    /* No lws validity timers (a policy without a hangup time): lws 4.1
     * re-inserts each into one sorted list by walking it, which at tens of
     * thousands of connections costs more than the load itself. */
    static const lws_retry_bo_t no_validity_timers = {0};
    info.retry_and_idle_policy = &no_validity_timers;
    /* poll() over thousands of sockets per wake-up costs more than the
     * work: libuv (epoll) when Debian's lws plugin is there. */
    info.options |= LWS_SERVER_OPTION_LIBUV;
    info.signal_cb = lg_uv_signal;
    G.ctx = lws_create_context(&info);
    if (!G.ctx) {
        fprintf(stderr, "holdfast-loadgen: no lws context\n");
        return 1;
    }
    G.t_start_us = hf_now_us();
    lws_sul_schedule(G.ctx, 0, &G.tick, lg_tick, 1000);
    while (!G.done && lws_service(G.ctx, 0) == 0) {
    }
    G.done = true;
    if (!G.reported)
        lg_report();
    lws_context_destroy(G.ctx);
    bool clean =
        G.subscribed == G.clients && G.closes == 0 && G.duplicates == 0 && G.chain_breaks == 0;
    free(G.cl);
    free(G.hist);
    free(G.retry);
    hf_config_free(lg_settings, LG_NSETTINGS, &G);
    return clean ? 0 : 1;
}
