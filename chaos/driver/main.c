/* main.c - holdfast-chaos-driver: load, fault marks, verdict.
 *
 *   1. N WebSocket clients connect across the gateways and subscribe
 *      (client i to channel PREFIX:(i mod M)); READY file written.
 *   2. Events are published through ingest at R per second for T seconds;
 *      the scenario injects its fault meanwhile and marks it: SIGUSR1 when
 *      the fault begins, SIGUSR2 when it is repaired.
 *   3. After publishing, the clients drain until nothing arrives for the
 *      idle time (all connected) or the drain limit passes.
 *   4. Verdict against PostgreSQL; summary on stdout, JSON in --out.
 * Exit: 0 pass, 1 any loss, duplicate, reordering or unacknowledged
 * event, 2 bad settings, 3 the run could not start. */
#include "driver.h"

#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "holdfast/alloc.h"
#include "holdfast/config.h"

typedef struct cd_settings {
    char *gateway_urls;    /* ws:// URLs, comma or space separated */
    char *ingest_url;      /* http://127.0.0.1:PORT */
    char *pg_url;          /* libpq connection string */
    char *scenario;        /* name in the report */
    char *prefix;          /* channel prefix; default chaos-<time>-<pid> */
    char *out;             /* JSON result file */
    char *ready_file;      /* written when every client is subscribed */
    long long clients;     /* WebSocket clients */
    long long channels;    /* channels */
    long long rate;        /* events per second */
    long long payload;     /* padding bytes per event */
    long long duration;    /* ms of publishing */
    long long retry;       /* ms of retries allowed after publishing */
    long long idle;        /* ms without deliveries that ends the drain */
    long long drain;       /* ms the drain may take at most */
    long long connect;     /* ms for every client to subscribe */
    char *publish_token;   /* bearer token for ingest; NULL: auth off */
    char *subscribe_token; /* token for the gateways (?token=); NULL: auth off */
    char *log_level;       /* unused; the config loader's convention */
} cd_settings_t;

#define S(field) offsetof(cd_settings_t, field)
static const hf_conf_spec_t cd_specs[] = {
    {"gateway-urls", HF_CONF_STRING, S(gateway_urls), NULL, 0, 0,
     "gateways' WebSocket URLs (ws://127.0.0.1:P/v1/ws), comma or space separated"},
    {"ingest-url", HF_CONF_STRING, S(ingest_url), NULL, 0, 0, "ingest (http://127.0.0.1:P)"},
    {"pg-url", HF_CONF_STRING, S(pg_url), NULL, 0, 0, "PostgreSQL, checked at the end"},
    {"scenario", HF_CONF_STRING, S(scenario), "load", 0, 0, "name shown in the report"},
    {"prefix", HF_CONF_STRING, S(prefix), NULL, 0, 0,
     "channel/Idempotency-Key prefix (default chaos-<time>-<pid>: a fresh set each run)"},
    {"out", HF_CONF_STRING, S(out), NULL, 0, 0, "write the JSON result here"},
    {"ready-file", HF_CONF_STRING, S(ready_file), NULL, 0, 0,
     "created once every client is subscribed, just before publishing starts"},
    {"clients", HF_CONF_INT, S(clients), "100", 1, 20000, "WebSocket clients"},
    {"channels", HF_CONF_INT, S(channels), "10", 1, 10000,
     "channels (client i subscribes to i mod channels; at most clients)"},
    {"rate", HF_CONF_INT, S(rate), "200", 1, 100000, "events per second published"},
    {"payload-bytes", HF_CONF_INT, S(payload), "0", 0, 256, "padding in each event's data"},
    {"duration", HF_CONF_MS, S(duration), "20s", 100, 3600000, "how long to publish"},
    {"retry", HF_CONF_MS, S(retry), "60s", 0, 3600000,
     "how long after publishing an unacknowledged event is still retried"},
    {"idle", HF_CONF_MS, S(idle), "3s", 100, 600000,
     "after publishing: end once nothing arrived this long (every client connected)"},
    {"drain", HF_CONF_MS, S(drain), "60s", 1000, 3600000, "after publishing: end by then anyway"},
    {"connect-timeout", HF_CONF_MS, S(connect), "60s", 1000, 600000,
     "every client must be subscribed by then"},
    {"publish-token", HF_CONF_STRING, S(publish_token), NULL, 0, 0,
     "token allowed to publish to the run's channels (.run/stack.env has one)"},
    {"subscribe-token", HF_CONF_STRING, S(subscribe_token), NULL, 0, 0,
     "token allowed to subscribe to the run's channels"},
    {"log-level", HF_CONF_STRING, S(log_level), "info", 0, 0, "unused"},
};
#undef S
#define CD_NSPECS (sizeof cd_specs / sizeof cd_specs[0])

static cd_run_t cd_run;

bool cd_url_parse(const char *text, cd_url_t *url)
{
    const char *host = strncmp(text, "ws://", 5) == 0     ? text + 5
                       : strncmp(text, "http://", 7) == 0 ? text + 7
                                                          : NULL;
    if (!host)
        return false;
    const char *colon = strchr(host, ':');
    if (!colon || (size_t)(colon - host) >= sizeof url->host)
        return false;
    memcpy(url->host, host, (size_t)(colon - host));
    url->host[colon - host] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    snprintf(url->path, sizeof url->path, "%s", *end == '/' ? end : "/");
    struct in_addr a;
    /* Traffic goes to loopback only: refuse anything else outright. */
    return port > 0 && port < 65536 && (*end == '/' || *end == '\0') &&
           inet_pton(AF_INET, url->host, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127 &&
           (url->port = (int)port) > 0;
}

static void cd_on_signal(int sig)
{
    if (sig == SIGUSR1 && !cd_run.fault_mark) {
        cd_run.fault_mark = 1;
        cd_run.fault_us = hf_wall_us();
    } else if (sig == SIGUSR2 && !cd_run.repaired_mark) {
        cd_run.repaired_mark = 1;
        cd_run.repaired_us = hf_wall_us();
    } else if (sig == SIGINT || sig == SIGTERM) {
        atomic_store(&cd_run.interrupted, 1);
    }
}

static int cd_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cd_on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) || sigaction(SIGUSR2, &sa, NULL) ||
        sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL))
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Tokens are URL- and header-safe (base64url and dots) or refused. */
static int cd_settings_tokens(const cd_settings_t *s, cd_run_t *run)
{
    static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.";
    const char *pub = s->publish_token, *sub = s->subscribe_token;
    if ((pub && (strspn(pub, safe) != strlen(pub) || strlen(pub) > 1500)) ||
        (sub && (strspn(sub, safe) != strlen(sub) || strlen(sub) > 1500))) {
        fprintf(stderr, "holdfast-chaos-driver: a token must be at most 1500 characters of "
                        "[A-Za-z0-9-_.]\n");
        return 2;
    }
    if (pub && *pub)
        snprintf(run->auth_header, sizeof run->auth_header, "Authorization: Bearer %s\r\n", pub);
    for (int i = 0; sub && *sub && i < run->ngateways; i++) {
        cd_url_t *u = &run->gateways[i];
        size_t n = strlen(u->path);
        snprintf(u->path + n, sizeof u->path - n, "%stoken=%s", strchr(u->path, '?') ? "&" : "?",
                 sub);
    }
    return 0;
}

static int cd_settings_apply(const cd_settings_t *s, cd_run_t *run)
{
    if (!s->gateway_urls || !s->ingest_url || !s->pg_url) {
        fprintf(stderr, "holdfast-chaos-driver: --gateway-urls, --ingest-url and --pg-url are "
                        "required (or HOLDFAST_GATEWAY_URLS, HOLDFAST_INGEST_URL, "
                        "HOLDFAST_PG_URL: source .run/stack.env)\n");
        return 2;
    }
    char *copy = hf_strdup(s->gateway_urls), *save = NULL;
    for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        if (run->ngateways == CD_MAX_URLS || !cd_url_parse(t, &run->gateways[run->ngateways++])) {
            fprintf(stderr, "holdfast-chaos-driver: bad or non-loopback gateway URL %s\n", t);
            hf_free(copy);
            return 2;
        }
    }
    hf_free(copy);
    if (cd_settings_tokens(s, run) != 0)
        return 2;
    if (!run->ngateways || !cd_url_parse(s->ingest_url, &run->ingest) || s->channels > s->clients) {
        fprintf(stderr, "holdfast-chaos-driver: need a gateway URL, a loopback ingest URL and "
                        "no more channels than clients\n");
        return 2;
    }
    /* The prefix names channels and keys, and goes into a text[] literal. */
    if (s->prefix && (!*s->prefix || strlen(s->prefix) >= sizeof run->prefix ||
                      strspn(s->prefix, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789._-") != strlen(s->prefix))) {
        fprintf(stderr, "holdfast-chaos-driver: --prefix: 1-63 of [A-Za-z0-9._-]\n");
        return 2;
    }
    if (s->prefix)
        snprintf(run->prefix, sizeof run->prefix, "%s", s->prefix);
    else
        snprintf(run->prefix, sizeof run->prefix, "chaos-%lld-%d", (long long)time(NULL),
                 (int)getpid());
    run->pg_url = s->pg_url;
    run->scenario = s->scenario;
    run->out_path = s->out;
    run->ready_path = s->ready_file;
    run->nclients = (int)s->clients;
    run->nchannels = (int)s->channels;
    run->rate = (double)s->rate;
    run->payload_bytes = (int)s->payload;
    run->duration_s = (double)s->duration / 1000;
    run->retry_s = (double)s->retry / 1000;
    run->idle_s = (double)s->idle / 1000;
    run->drain_s = (double)s->drain / 1000;
    run->connect_s = (double)s->connect / 1000;
    run->nevents = (long long)(run->rate * run->duration_s);
    if (run->nevents < 1)
        run->nevents = 1;
    run->events = hf_calloc((size_t)run->nevents, sizeof *run->events);
    return -1;
}

static int cd_ready_write(const char *path)
{
    FILE *f = path ? fopen(path, "w") : NULL;
    if (path && (!f || fputs("ready\n", f) < 0 || fclose(f) != 0)) {
        fprintf(stderr, "holdfast-chaos-driver: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

static void cd_run_free(cd_run_t *run)
{
    for (int i = 0; run->clients && i < run->nclients; i++) {
        hf_free(run->clients[i].got);
        hf_free(run->clients[i].rx);
    }
    hf_free(run->clients);
    hf_free(run->events);
}

/* Runs the clients while publishing, then until every event of the run
 * is relayed and nothing arrived for the idle time with every client
 * connected (or the drain limit passes). */
static void cd_run_load(cd_run_t *run)
{
    int64_t drain_deadline = 0, next_check = 0, idle_us = (int64_t)(run->idle_s * 1e6);
    bool reached = false;
    int64_t *max_offset = hf_calloc((size_t)run->nchannels, sizeof *max_offset);
    while (!atomic_load(&run->interrupted) && cd_fleet_service(run)) {
        if (!atomic_load(&run->pub_done))
            continue;
        int64_t now = hf_now_us();
        if (!drain_deadline) {
            drain_deadline = now + (int64_t)(run->drain_s * 1e6);
            if (run->last_recv_us < now)
                run->last_recv_us = now; /* idle counts from the last publish on */
        }
        if (now >= drain_deadline)
            break;
        /* Done once every event of the run is relayed and every client has
         * its channel's last one, then quiet for the idle time (a late
         * duplicate would still be seen). The relay writes offsets before
         * it publishes, so "relayed" alone would end too early. */
        /* PostgreSQL is asked only in a quiet moment: the loop blocks on
         * it, and deliveries must not wait behind it. */
        if (!reached && now >= next_check && now - run->last_recv_us >= 100000) {
            next_check = now + 200000;
            reached = cd_verify_unrelayed(run) == 0 &&
                      cd_verify_max_offsets(run, max_offset) == 0 &&
                      cd_fleet_reached(run, max_offset);
        }
        if (reached && now - run->last_recv_us >= idle_us && cd_fleet_all_subscribed_now(run))
            break;
    }
    hf_free(max_offset);
}

/* Load, drain, verify. Returns the exit status. */
static int cd_run_execute(cd_run_t *run)
{
    if (cd_fleet_init(run) != 0)
        return 3;
    if (!cd_fleet_wait_subscribed(run)) {
        fprintf(stderr, "holdfast-chaos-driver: %d of %d clients subscribed in time\n",
                run->nsubscribed, run->nclients);
        cd_fleet_stop(run);
        return 3;
    }
    run->start_us = hf_wall_us();
    if (cd_ready_write(run->ready_path) != 0 || cd_publish_start(run) != 0) {
        cd_fleet_stop(run);
        return 3;
    }
    cd_run_load(run);
    /* An interrupt during the drain still ends the publisher promptly. */
    if (!atomic_load(&run->pub_done))
        atomic_store(&run->interrupted, 1);
    cd_publish_join();
    cd_fleet_stop(run);
    cd_verdict_t verdict;
    bool verified = cd_verify(run, &verdict) == 0;
    return cd_report(run, &verdict, verified);
}

int main(int argc, char **argv)
{
    cd_settings_t settings;
    memset(&settings, 0, sizeof settings);
    char err[256];
    bool help = false;
    static const char usage[] =
        "usage: holdfast-chaos-driver [--setting value ...]\n"
        "Opens WebSocket clients across the gateways, publishes through ingest, and checks\n"
        "every delivery against PostgreSQL. SIGUSR1 marks the fault, SIGUSR2 its repair.\n"
        "Exit 0 pass, 1 loss/duplicate/reorder/unacknowledged, 2 bad settings, 3 no start.";
    if (hf_config_load(cd_specs, CD_NSPECS, &settings, argc, argv, usage, &help, err, sizeof err) !=
        HF_OK) {
        fprintf(stderr, "holdfast-chaos-driver: %s\n", err);
        hf_config_free(cd_specs, CD_NSPECS, &settings);
        return 2;
    }
    int rc = help ? 0 : cd_settings_apply(&settings, &cd_run);
    if (rc < 0 && cd_signals_install() != 0) {
        perror("holdfast-chaos-driver: sigaction");
        rc = 3;
    }
    if (rc < 0)
        rc = cd_run_execute(&cd_run);
    cd_run_free(&cd_run);
    hf_config_free(cd_specs, CD_NSPECS, &settings);
    return rc;
}
