/* main.c - holdfast-gateway: settings, signals, workers and their threads, metrics. */
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway.h"
#include "holdfast/alloc.h"
#include "holdfast/config.h"
#include "holdfast/log.h"
#include "listener.h"

#define GW_MAX_WORKERS      64
#define GW_AUTO_WORKERS_MAX 8 /* each worker costs Redis and Kafka connections */

static const hf_conf_spec_t gw_settings[] = {
    {"listen-addr", HF_CONF_STRING, offsetof(gateway_config_t, listen_addr), "127.0.0.1", 0, 0,
     "address the server binds (0.0.0.0 for all)"},
    {"port", HF_CONF_INT, offsetof(gateway_config_t, port), "8090", 0, 65535,
     "port for WebSocket /v1/ws, /livez, /readyz and /metrics"},
    {"redis-url", HF_CONF_STRING, offsetof(gateway_config_t, redis_url), "redis://127.0.0.1:6379",
     0, 0, "Redis for the real-time path, redis://[USER:PASSWORD@]HOST:PORT[/DB]"},
    {"redis-password-file", HF_CONF_STRING, offsetof(gateway_config_t, redis_password_file), NULL,
     0, 0, "file holding the Redis password (instead of one in the URL)"},
    {"kafka-brokers", HF_CONF_STRING, offsetof(gateway_config_t, kafka_brokers), "127.0.0.1:9092",
     0, 0, "Kafka bootstrap servers (gap fill, resume, fallback)"},
    HF_KAFKA_PROPS_SETTINGS(gateway_config_t, kafka_props),
    {"topic", HF_CONF_STRING, offsetof(gateway_config_t, topic), "holdfast.events", 0, 0,
     "the event topic"},
    {"redis-ping-interval", HF_CONF_MS, offsetof(gateway_config_t, redis_ping_interval_ms), "150ms",
     10, 600000, "PING Redis this often"},
    {"redis-suspect-after", HF_CONF_MS, offsetof(gateway_config_t, redis_suspect_after_ms), "500ms",
     0, 600000,
     "Redis silent this long with a PING out: read Kafka as well, keeping the connection "
     "(0: never)"},
    {"redis-suspect-jitter", HF_CONF_MS, offsetof(gateway_config_t, redis_suspect_jitter_ms),
     "200ms", 0, 600000,
     "plus a random share of this per worker and silence, so workers that lose one Redis "
     "do not all turn to Kafka at once"},
    {"redis-ping-timeout", HF_CONF_MS, offsetof(gateway_config_t, redis_ping_timeout_ms), "3s", 10,
     600000,
     "Redis silent this long with a PING out: drop the connection, resubscribe when it answers "
     "(also the connect timeout)"},
    {"redis-retry", HF_CONF_MS, offsetof(gateway_config_t, redis_retry_ms), "500ms", 10, 600000,
     "pause between Redis reconnect attempts"},
    {"redis-handback-grace", HF_CONF_MS, offsetof(gateway_config_t, redis_handback_grace_ms),
     "1500ms", 0, 600000,
     "after Redis is back and no relay heartbeat (hfctl:heads) came, keep reading Kafka this "
     "long (the relay reconnects once a second)"},
    {"max-frame", HF_CONF_BYTES, offsetof(gateway_config_t, max_frame), "16KiB", 64, 1 << 24,
     "largest client message; larger closes the connection (1009)"},
    {"max-subscriptions", HF_CONF_INT, offsetof(gateway_config_t, max_subscriptions), "100", 1,
     100000, "channels one connection may subscribe to"},
    {"send-queue-bytes", HF_CONF_BYTES, offsetof(gateway_config_t, send_queue_bytes), "4MiB", 1024,
     1LL << 32, "bytes queued for one connection before it is closed (4001)"},
    {"send-queue-messages", HF_CONF_INT, offsetof(gateway_config_t, send_queue_messages), "10000",
     4, 10000000, "messages queued for one connection before it is closed (4001)"},
    {"send-queue-total-bytes", HF_CONF_BYTES, offsetof(gateway_config_t, send_queue_total_bytes),
     "256MiB", 65536, 1LL << 40,
     "bytes queued for all connections of the process together; over it, the connections "
     "holding the most are closed (4001)"},
    {"socket-sndbuf", HF_CONF_BYTES, offsetof(gateway_config_t, socket_sndbuf), "0", 0, 1 << 30,
     "kernel send buffer per client socket (0: autotuned, up to net.ipv4.tcp_wmem)"},
    {"ws-ping-interval", HF_CONF_MS, offsetof(gateway_config_t, ws_ping_interval_ms), "30s", 1000,
     3600000, "WebSocket PING to a quiet client after this"},
    {"ws-idle-timeout", HF_CONF_MS, offsetof(gateway_config_t, ws_idle_timeout_ms), "75s", 2000,
     3600000, "close a client that answered nothing for this long"},
    {"drain-timeout", HF_CONF_MS, offsetof(gateway_config_t, drain_timeout_ms), "10s", 0, 3600000,
     "on SIGTERM, longest wait for clients to take their close (1012)"},
    {"drain-reconnect-spread", HF_CONF_MS, offsetof(gateway_config_t, drain_spread_ms), "5s", 0,
     600000,
     "on SIGTERM, each client's close (1012) asks it to wait a random share of this before "
     "reconnecting, so a pod's clients do not reach the others all at once"},
    {"gateway-id", HF_CONF_STRING, offsetof(gateway_config_t, gateway_id), NULL, 0, 0,
     "this gateway's name in the welcome message (default host-pid)"},
    {"inbox-max-bytes", HF_CONF_BYTES, offsetof(gateway_config_t, inbox_max_bytes), "64MiB",
     1 << 16, 1LL << 34, "events from Redis/Kafka waiting for the service thread"},
    {"kafka-timeout", HF_CONF_MS, offsetof(gateway_config_t, kafka_timeout_ms), "2s", 100, 600000,
     "timeout of one Kafka query (watermarks, probes)"},
    {"kafka-deep-after", HF_CONF_INT, offsetof(gateway_config_t, kafka_deep_after), "10000", 2,
     1LL << 40,
     "a read from Kafka starting more records than this behind its partition's head (a resume "
     "from far back) goes to a worker's deep reader, never rewinding the reader the "
     "subscriptions near the head use"},
    {"kafka-deep-inflight", HF_CONF_BYTES, offsetof(gateway_config_t, kafka_deep_inflight),
     "512KiB", 4096, 1LL << 30,
     "records of the deep reader waiting for a worker's service thread, at most (bounds how far "
     "a deep read can queue ahead of live events)"},
    {"workers", HF_CONF_INT, offsetof(gateway_config_t, workers), "0", 0, GW_MAX_WORKERS,
     "service threads, each with its own connections and Redis/Kafka readers (0: one per CPU "
     "the process may use, cgroup CPU quota included, at most 8)"},
    {"event-loop", HF_CONF_STRING, offsetof(gateway_config_t, event_loop), "uv", 0, 0,
     "uv (libuv, epoll: for many connections) or poll"},
    HF_AUTH_SETTINGS(gateway_config_t, auth),
    {"max-conns-per-ip", HF_CONF_INT, offsetof(gateway_config_t, max_conns_per_ip), "0", 0,
     100000000,
     "open connections one client address may hold (0: unlimited; behind a proxy every "
     "client has the proxy's address)"},
    {"max-conns-per-subject", HF_CONF_INT, offsetof(gateway_config_t, max_conns_per_subject),
     "1000", 0, 100000000,
     "open connections one token subject may hold (0: unlimited; not applied with auth off)"},
    {"client-msg-rate", HF_CONF_INT, offsetof(gateway_config_t, client_msg_rate), "50", 0, 1000000,
     "client messages per second per connection (0: unlimited); over it: close 1008"},
    {"client-msg-burst", HF_CONF_INT, offsetof(gateway_config_t, client_msg_burst), "200", 1,
     1000000, "client messages a connection may send at once above its rate"},
    {"allowed-origins", HF_CONF_STRING, offsetof(gateway_config_t, allowed_origins), "*", 0, 0,
     "Origin values a WebSocket handshake may carry, comma-separated, exact (e.g. "
     "https://app.example.com); other origins get 403, a handshake without Origin (not a "
     "browser) is allowed; * allows any"},
    {"log-level", HF_CONF_STRING, offsetof(gateway_config_t, log_level), "info", 0, 0,
     "debug, info, warn or error"},
};
#define GW_NSETTINGS (sizeof gw_settings / sizeof gw_settings[0])

static const char gw_usage[] =
    "holdfast-gateway: delivers events to WebSocket clients (ws://HOST:PORT/v1/ws,\n"
    "subprotocols holdfast.v1.json and holdfast.v1.msgpack) from Redis Pub/Sub, filling\n"
    "gaps and falling back to Kafka. GET /livez, /readyz, /metrics.";

/* The process SIGTERM and SIGINT stop; a process has one. */
static gw_process_t *gw_signal_process;

void gw_on_uv_signal(void *handle, int sig)
{
    (void)handle;
    if ((sig == SIGTERM || sig == SIGINT) && gw_signal_process)
        atomic_store(&gw_signal_process->stop, 1);
}

static void gw_on_signal(int sig)
{
    gw_on_uv_signal(NULL, sig);
}

/* ---- workers ------------------------------------------------------------- */

/* The CPU quota of this process' cgroup (v2) and its parents, in whole
 * CPUs rounded up; 0: none. */
static long gw_cgroup_cpu_limit(void)
{
    char line[512], dir[600];
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f)
        return 0;
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(dir, sizeof dir, "/sys/fs/cgroup%s", line + 3);
            found = true;
        }
    fclose(f);
    long limit = 0;
    const size_t root = strlen("/sys/fs/cgroup");
    while (found) { /* the cgroup, then each parent up to the root */
        char path[640];
        snprintf(path, sizeof path, "%s/cpu.max", dir);
        FILE *q = fopen(path, "r");
        long long quota = 0, period = 0;
        if (q && fscanf(q, "%lld %lld", &quota, &period) == 2 && quota > 0 && period > 0) {
            long cpus = (long)((quota + period - 1) / period);
            if (limit == 0 || cpus < limit)
                limit = cpus;
        }
        if (q)
            fclose(q);
        char *slash = strrchr(dir, '/');
        found = strlen(dir) > root && slash && (size_t)(slash - dir) >= root;
        if (found)
            *slash = '\0';
    }
    return limit;
}

/* The CPU quota of this process' cgroup v1 "cpu" controller; 0: none. */
static long gw_cgroup_v1_cpu_limit(void)
{
    char line[512], path[700];
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f)
        return 0;
    long limit = 0;
    while (limit == 0 && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *controllers = strchr(line, ':');
        char *cgroup = controllers ? strchr(controllers + 1, ':') : NULL;
        if (!cgroup || strncmp(controllers + 1, "cpu", 3) != 0 ||
            (controllers[4] != ':' && controllers[4] != ','))
            continue;
        *cgroup++ = '\0';
        snprintf(path, sizeof path, "/sys/fs/cgroup/%s%s/cpu.cfs_quota_us", controllers + 1,
                 cgroup);
        FILE *q = fopen(path, "r");
        snprintf(path, sizeof path, "/sys/fs/cgroup/%s%s/cpu.cfs_period_us", controllers + 1,
                 cgroup);
        FILE *per = fopen(path, "r");
        long long quota = 0, period = 0;
        if (q && per && fscanf(q, "%lld", &quota) == 1 && fscanf(per, "%lld", &period) == 1 &&
            quota > 0 && period > 0)
            limit = (long)((quota + period - 1) / period);
        if (q)
            fclose(q);
        if (per)
            fclose(per);
    }
    fclose(f);
    return limit;
}

/* --workers 0: the CPUs this process may use (its affinity mask, capped by
 * its cgroup's CPU quota: a container limited to 2 CPUs on a 64-CPU node
 * gets 2), at most GW_AUTO_WORKERS_MAX. */
static size_t gw_cpus_available(void)
{
    cpu_set_t set;
    long cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    long limit = gw_cgroup_cpu_limit();
    if (limit == 0)
        limit = gw_cgroup_v1_cpu_limit();
    if (limit > 0 && limit < cpus)
        cpus = limit;
    if (cpus > GW_AUTO_WORKERS_MAX)
        cpus = GW_AUTO_WORKERS_MAX;
    return cpus < 1 ? 1 : (size_t)cpus;
}

static size_t gw_worker_load(gateway_t *gw)
{
    return gw->nconns + gw->handoffs;
}

/* Round robin keeps bursts even (a connection counts only once its
 * upgrade is done); a worker far above the least loaded (after its
 * clients stayed while others' left) is skipped for the least loaded. */
void gw_process_accept(void *arg, int fd)
{
    gw_process_t *p = arg;
    gateway_t *best = &p->workers[atomic_fetch_add(&p->next_worker, 1) % p->nworkers];
    gateway_t *least = best;
    for (size_t i = 0; i < p->nworkers; i++)
        if (gw_worker_load(&p->workers[i]) < gw_worker_load(least))
            least = &p->workers[i];
    size_t min = gw_worker_load(least);
    if (gw_worker_load(best) > min + 16 + min / 64)
        best = least;
    /* Draining: other workers may have finished; worker 0 accepts, so it
     * still runs and refuses the upgrade at once. */
    if (atomic_load(&p->stop))
        best = &p->workers[0];
    best->handoffs++;
    if (best == &p->workers[0]) { /* the listener runs on worker 0's thread */
        gw_conn_adopt(best, fd);
        return;
    }
    gw_msg_t *m = gw_msg_new(GW_MSG_SOCKET, NULL, NULL, 0);
    m->fd = fd;
    gw_inbox_push(best->inbox, m);
}

static void *gw_worker_thread(void *arg)
{
    gw_worker_run(arg);
    return NULL;
}

/* ---- metrics ------------------------------------------------------------- */

static double gw_gauge_sum(void *arg)
{
    const gw_gauge_arg_t *g = arg;
    size_t total = 0;
    for (size_t i = 0; i < g->proc->nworkers; i++)
        total += atomic_load((atomic_size_t *)((char *)&g->proc->workers[i] + g->field));
    return (double)total;
}

static double gw_gauge_worker_connections(void *arg)
{
    return (double)((gateway_t *)arg)->nconns;
}

static double gw_gauge_redis(void *arg)
{
    gw_process_t *p = arg;
    for (size_t i = 0; i < p->nworkers; i++)
        if (!gw_redis_connected(p->workers[i].redis))
            return 0;
    return 1;
}

static double gw_gauge_scanning(void *arg)
{
    gw_process_t *p = arg;
    int total = 0;
    for (size_t i = 0; i < p->nworkers; i++)
        total += gw_kafka_scanning(p->workers[i].kafka);
    return total;
}

static double gw_gauge_inbox(void *arg)
{
    gw_process_t *p = arg;
    size_t total = 0;
    for (size_t i = 0; i < p->nworkers; i++)
        if (p->workers[i].inbox)
            total += gw_inbox_bytes(p->workers[i].inbox);
    return (double)total;
}

static double gw_gauge_budget(void *arg)
{
    return (double)((gw_process_t *)arg)->cfg.send_queue_total_bytes;
}

static double gw_gauge_peak(void *arg)
{
    return (double)atomic_load(&((gw_process_t *)arg)->queued_peak);
}

static double gw_gauge_workers(void *arg)
{
    return (double)((gw_process_t *)arg)->nworkers;
}

static void gw_gauge_sum_register(gw_process_t *p, int slot, const char *name, const char *help,
                                  size_t field)
{
    p->gauges[slot] = (gw_gauge_arg_t){.proc = p, .field = field};
    hf_metrics_gauge_fn(p->metrics, name, NULL, help, gw_gauge_sum, &p->gauges[slot]);
}

static void gw_gauges_register(gw_process_t *p)
{
    hf_metrics_t *r = p->metrics;
    gw_gauge_sum_register(p, 0, "holdfast_gateway_connections", "Open WebSocket connections.",
                          offsetof(gateway_t, nconns));
    gw_gauge_sum_register(p, 1, "holdfast_gateway_subscriptions",
                          "Subscriptions across all connections.", offsetof(gateway_t, nsubs));
    gw_gauge_sum_register(p, 2, "holdfast_gateway_channels",
                          "Channels with local subscribers, once per worker holding any (each "
                          "worker subscribes on Redis itself).",
                          offsetof(gateway_t, nchannels));
    gw_gauge_sum_register(p, 3, "holdfast_gateway_send_queue_bytes",
                          "Bytes waiting in all connections' send queues.",
                          offsetof(gateway_t, queued_bytes));
    hf_metrics_gauge_fn(r, "holdfast_gateway_send_queue_budget_bytes", NULL,
                        "--send-queue-total-bytes: the bound on all send queues together.",
                        gw_gauge_budget, p);
    hf_metrics_gauge_fn(r, "holdfast_gateway_send_queue_peak_bytes", NULL,
                        "The most bytes all send queues held at once since the start.",
                        gw_gauge_peak, p);
    hf_metrics_gauge_fn(r, "holdfast_gateway_redis_connected", NULL,
                        "1 while every worker's Redis subscriber is connected and answering.",
                        gw_gauge_redis, p);
    hf_metrics_gauge_fn(r, "holdfast_gateway_kafka_scanning_partitions", NULL,
                        "Partitions being read from Kafka (gap fill, resume or fallback) by the "
                        "live or the deep reader, summed over workers.",
                        gw_gauge_scanning, p);
    hf_metrics_gauge_fn(r, "holdfast_gateway_inbox_bytes", NULL,
                        "Bytes from Redis and Kafka waiting for the service threads.",
                        gw_gauge_inbox, p);
    hf_metrics_gauge_fn(r, "holdfast_gateway_workers", NULL, "Service threads (--workers).",
                        gw_gauge_workers, p);
    for (size_t i = 0; i < p->nworkers; i++) {
        char labels[32];
        snprintf(labels, sizeof labels, "worker=\"%zu\"", i);
        hf_metrics_gauge_fn(r, "holdfast_gateway_worker_connections", labels,
                            "Open WebSocket connections per worker (the balance of the accept).",
                            gw_gauge_worker_connections, &p->workers[i]);
    }
}

static void gw_counters_register(gw_process_t *p)
{
    hf_metrics_t *r = p->metrics;
    gateway_metrics_t *m = &p->m;
    m->connections_total = hf_metrics_counter(r, "holdfast_gateway_connections_total", NULL,
                                              "WebSocket connections accepted.");
    m->accept_refused =
        hf_metrics_counter(r, "holdfast_gateway_accept_refused_total", NULL,
                           "Connections closed at accept: no file descriptor left.");
    m->closed_slow =
        hf_metrics_counter(r, "holdfast_gateway_slow_closes_total", NULL,
                           "Connections closed because their send queue overflowed (4001).");
    m->closed_budget = hf_metrics_counter(
        r, "holdfast_gateway_budget_closes_total", NULL,
        "Connections closed (4001) to keep all send queues within --send-queue-total-bytes, the "
        "ones holding the most first.");
    m->delivered_redis =
        hf_metrics_counter(r, "holdfast_gateway_deliveries_total", "source=\"redis\"",
                           "Events queued to clients, by where the gateway got them.");
    m->delivered_kafka =
        hf_metrics_counter(r, "holdfast_gateway_deliveries_total", "source=\"kafka\"",
                           "Events queued to clients, by where the gateway got them.");
    m->records_live = hf_metrics_counter(
        r, "holdfast_gateway_kafka_records_total", "reader=\"live\"",
        "Kafka records read, by reader: live (near the head: fallback, gap fill, short resume) or "
        "deep (reads from further back than --kafka-deep-after).");
    m->records_deep = hf_metrics_counter(
        r, "holdfast_gateway_kafka_records_total", "reader=\"deep\"",
        "Kafka records read, by reader: live (near the head: fallback, gap fill, short resume) or "
        "deep (reads from further back than --kafka-deep-after).");
    m->duplicates = hf_metrics_counter(r, "holdfast_gateway_duplicates_dropped_total", NULL,
                                       "Events dropped as already delivered (offset <= last).");
    m->duplicate_ids = hf_metrics_counter(
        r, "holdfast_gateway_duplicate_ids_total", NULL,
        "Events dropped as copies: their id was delivered on the channel at a lower offset.");
    m->gaps = hf_metrics_counter(r, "holdfast_gateway_gaps_total", NULL,
                                 "Gaps in a subscription's chain, filled from Kafka.");
    m->fallbacks =
        hf_metrics_counter(r, "holdfast_gateway_redis_fallbacks_total", NULL,
                           "Times a worker lost Redis and its delivery fell back to Kafka.");
    m->suspicions = hf_metrics_counter(
        r, "holdfast_gateway_redis_suspicions_total", NULL,
        "Times a worker's Redis went silent past --redis-suspect-after and it read Kafka as well, "
        "keeping the connection.");
    m->handbacks_heads =
        hf_metrics_counter(r, "holdfast_gateway_handbacks_total", "via=\"heads\"",
                           "Channels handed back from Kafka to Redis, by what ended the Kafka "
                           "reading: the relay's heartbeat, or the catch-up and grace.");
    m->handbacks_timer =
        hf_metrics_counter(r, "holdfast_gateway_handbacks_total", "via=\"grace\"",
                           "Channels handed back from Kafka to Redis, by what ended the Kafka "
                           "reading: the relay's heartbeat, or the catch-up and grace.");
    m->protocol_errors =
        hf_metrics_counter(r, "holdfast_gateway_protocol_errors_total", NULL,
                           "Client messages refused (malformed, unknown, too big).");
    m->unrecoverable =
        hf_metrics_counter(r, "holdfast_gateway_unrecoverable_total", NULL,
                           "Subscriptions whose missing events were no longer in Kafka.");
    m->epoch_changes = hf_metrics_counter(
        r, "holdfast_gateway_epoch_changes_total", NULL,
        "Subscriptions moved to a new epoch (a reset log), told with recovered:false.");
    m->auth_failed = hf_metrics_counter(r, "holdfast_gateway_auth_failed_total", NULL,
                                        "Connections closed 4401: missing, bad or expired token.");
    m->auth_forbidden =
        hf_metrics_counter(r, "holdfast_gateway_auth_forbidden_total", NULL,
                           "Subscribes refused: a channel the token does not allow.");
    m->limited_conns_ip =
        hf_metrics_counter(r, "holdfast_gateway_limited_total", "limit=\"connections_per_ip\"",
                           "Connections closed 1008 by a limit, by limit.");
    m->limited_conns_subject =
        hf_metrics_counter(r, "holdfast_gateway_limited_total", "limit=\"connections_per_subject\"",
                           "Connections closed 1008 by a limit, by limit.");
    m->origin_refused =
        hf_metrics_counter(r, "holdfast_gateway_origin_refused_total", NULL,
                           "WebSocket handshakes refused 403: an Origin not in --allowed-origins.");
    m->limited_msg_rate =
        hf_metrics_counter(r, "holdfast_gateway_limited_total", "limit=\"message_rate\"",
                           "Connections closed 1008 by a limit, by limit.");
    m->token_refreshes =
        hf_metrics_counter(r, "holdfast_gateway_token_refreshes_total", NULL,
                           "Fresh tokens taken on open connections (the auth message).");
    m->latency = hf_metrics_histogram(
        r, "holdfast_gateway_event_age_seconds", NULL,
        "Age of an event (since its commit in PostgreSQL) when queued to clients.", NULL, 0);
}

/* ---- start and stop ------------------------------------------------------ */

static int gw_load_config(gw_process_t *p, int argc, char **argv)
{
    int rc = hf_config_load_daemon("gateway", gw_settings, GW_NSETTINGS, &p->cfg, &p->cfg.log_level,
                                   argc, argv, gw_usage);
    if (rc >= 0)
        return rc;
    if (strcmp(p->cfg.event_loop, "uv") != 0 && strcmp(p->cfg.event_loop, "poll") != 0) {
        fprintf(stderr, "holdfast-gateway: event-loop=%s is not one of uv, poll\n",
                p->cfg.event_loop);
        return 2;
    }
    if (p->cfg.redis_suspect_after_ms > 0 &&
        p->cfg.redis_suspect_after_ms + p->cfg.redis_suspect_jitter_ms >=
            p->cfg.redis_ping_timeout_ms) {
        fprintf(stderr, "holdfast-gateway: redis-suspect-after plus redis-suspect-jitter must be "
                        "below redis-ping-timeout\n");
        return 2;
    }
    if (p->cfg.ws_idle_timeout_ms <= p->cfg.ws_ping_interval_ms) {
        fprintf(stderr, "holdfast-gateway: ws-idle-timeout must exceed ws-ping-interval\n");
        return 2;
    }
    if (!p->cfg.gateway_id || !*p->cfg.gateway_id) {
        char host[200] = "", id[256];
        gethostname(host, sizeof host - 1);
        snprintf(id, sizeof id, "%s-%d", host[0] ? host : "gateway", (int)getpid());
        hf_free(p->cfg.gateway_id);
        p->cfg.gateway_id = hf_strdup(id);
    }
    if (strlen(p->cfg.gateway_id) > 128) {
        fprintf(stderr, "holdfast-gateway: gateway-id is longer than 128 bytes\n");
        return 2;
    }
    return -1;
}

/* Workers' backends, then their contexts: a failure stops before any
 * client is served. */
static hf_err_t gw_process_start(gw_process_t *p)
{
    if (gw_listener_open(p->cfg.listen_addr, (int)p->cfg.port, &p->listener) != HF_OK)
        return HF_ERR_IO;
    int32_t partitions = -1;
    for (size_t i = 0; i < p->nworkers; i++) {
        int32_t count = 0;
        if (gw_worker_init(&p->workers[i], p, i, &count) != HF_OK)
            return HF_ERR_UNAVAILABLE;
        if (i > 0 && count != partitions) {
            hf_error("the topic's partition count changed during start-up (%d, then %d)",
                     partitions, count);
            return HF_ERR_UNAVAILABLE;
        }
        partitions = count;
    }
    for (size_t i = 0; i < p->nworkers; i++)
        if (gw_worker_listen(&p->workers[i]) != HF_OK)
            return HF_ERR_IO;
    hf_info("listening on ws://%s:%d/v1/ws (%d partitions, %zu workers)", p->cfg.listen_addr,
            gw_listener_port(p->listener), partitions, p->nworkers);
    return HF_OK;
}

static void gw_process_run(gw_process_t *p)
{
    for (size_t i = 1; i < p->nworkers; i++) {
        gateway_t *gw = &p->workers[i];
        if (pthread_create(&gw->thread, NULL, gw_worker_thread, gw) != 0) {
            hf_error("cannot start worker %zu's thread", i);
            atomic_store(&p->failed, true);
            atomic_store(&p->stop, 1);
            break;
        }
        gw->thread_started = true;
    }
    gw_worker_run(&p->workers[0]);
    for (size_t i = 1; i < p->nworkers; i++)
        if (p->workers[i].thread_started)
            pthread_join(p->workers[i].thread, NULL);
}

int main(int argc, char **argv)
{
    gw_process_t *p = hf_calloc(1, sizeof *p);
    int rc = gw_load_config(p, argc, argv);
    if (rc >= 0) {
        hf_config_free(gw_settings, GW_NSETTINGS, &p->cfg);
        hf_free(p);
        return rc;
    }
    char err[512];
    if (gw_access_init(p, err, sizeof err) != HF_OK) {
        fprintf(stderr, "holdfast-gateway: %s\n", err);
        hf_config_free(gw_settings, GW_NSETTINGS, &p->cfg);
        hf_free(p);
        return 2;
    }
    p->nworkers = p->cfg.workers > 0 ? (size_t)p->cfg.workers : gw_cpus_available();
    if (p->nworkers > GW_MAX_WORKERS)
        p->nworkers = GW_MAX_WORKERS;
    p->workers = hf_calloc(p->nworkers, sizeof *p->workers);
    p->metrics = hf_metrics_new();
    gw_counters_register(p);

    gw_signal_process = p;
    struct sigaction sa = {.sa_handler = gw_on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc = 1;
    if (gw_process_start(p) == HF_OK) {
        gw_gauges_register(p);
        gw_process_run(p);
        /* libuv put the default action back when its last loop closed. */
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        rc = atomic_load(&p->failed) ? 1 : 0;
    }
    for (size_t i = 0; i < p->nworkers; i++)
        gw_worker_free(&p->workers[i]);
    gw_listener_free(p->listener);
    gw_access_free(p);
    hf_metrics_free(p->metrics);
    hf_info("stopped");
    hf_config_free(gw_settings, GW_NSETTINGS, &p->cfg);
    hf_free(p->workers);
    hf_free(p);
    return rc;
}
