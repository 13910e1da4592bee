/* devbroker.c - holdfast-devbroker: an in-memory Kafka cluster for local use and tests.
 *
 * Hosts librdkafka's mock cluster (rdkafka_mock.h), which speaks the real Kafka wire
 * protocol, so the relay, kcat and any other real client can talk to it. Nothing is
 * persisted: all data lives in this process and is gone when it exits.
 *
 * Startup: create the mock cluster with N brokers (ids 1..N) and exactly one topic,
 * open the control port, then print (stdout, flushed, one line each)
 *     bootstrap=127.0.0.1:PORT,127.0.0.1:PORT,...
 *     control=127.0.0.1:PORT
 * and, if asked, write the bootstrap string to --bootstrap-file (tmp + rename, so a
 * reader never sees a partial file; its appearance means "ready"). The file is removed
 * again on a clean exit so a stale one never points at dead ports.
 *
 * Control port: a line protocol on 127.0.0.1 only, for fault injection from tests.
 * One command per '\n'-terminated line (a trailing '\r' is ignored), at most
 * DEVBROKER_LINE_MAX bytes; a longer line gets an error and the connection is closed.
 *     ping            -> ok
 *     down            all brokers down (connections dropped, new ones refused)
 *     up              all brokers up
 *     down ID         broker ID (1..N) down
 *     up ID           broker ID up
 *     rtt ID MS       add MS milliseconds of round-trip delay to broker ID (0 = none)
 * Each command is answered with "ok\n" or "error: reason\n". From bash:
 *     exec 3<>/dev/tcp/127.0.0.1/$PORT; printf 'down\n' >&3; read -r reply <&3
 * Going down does NOT move partition leaders (the mock never does), so "down 2" makes
 * the partitions led by broker 2 unavailable, which is what an outage looks like.
 *
 * SIGTERM/SIGINT: destroy the cluster and exit 0. The signals are blocked and read
 * through a signalfd, so the poll(2) loop wakes up without async-signal-safety games.
 *
 * Quirks of the librdkafka 2.0.2 mock cluster, found by experiment:
 *  - Idempotent producers (enable.idempotence=true, acks=all) work: a ProducerId is
 *    assigned and messages land in order; kcat -C -o beginning -e reads every partition.
 *  - Topics are auto-created (4 partitions, the mock's default) by any Metadata request
 *    that allows it: a producer writing to a misspelled topic, and even
 *    `kcat -L -t other`. 2.0.2 has no switch to turn that off, so we don't fight it:
 *    only the configured topic exists at startup; check topic names in the clients.
 *  - A down broker closes its listener, so clients get "connection refused" at once
 *    (not a hang); kcat -P gives up with "all broker connections are down", exit 1.
 *    Data written before is kept and readable again after "up".
 *  - Partition leaders are spread at random over the brokers, and never move.
 *  - Each partition keeps only about 5 MB of records: older ones are dropped and the
 *    log start (low watermark) moves, like a size-based retention (seen: 19,000
 *    records of ~250 bytes kept of 100,000). Readers must expect offsets below the
 *    low watermark to be gone.
 *  - The mock's broker sockets lack TCP_NODELAY, which costs ~40 ms (delayed ACK)
 *    per produce round with several partitions on one broker; we set it ourselves
 *    (devbroker_nodelay_sweep).
 *  - rd_kafka_mock_topic_create() accepts a replication factor above the broker count,
 *    hence min(3, brokers) here; broker_set_down(-1) does work for "all" in 2.0.2, but
 *    we loop over the ids so that a failure names the broker.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "holdfast/config.h"
#include "holdfast/file.h"
#include "holdfast/log.h"

#define DEVBROKER_LINE_MAX    256
#define DEVBROKER_SWEEP_MS    10 /* TCP_NODELAY sweep interval, see devbroker_nodelay_sweep */
#define DEVBROKER_CLIENTS_MAX 8
#define DEVBROKER_BROKERS_MAX 32
#define DEVBROKER_PARTS_MAX   10000
#define DEVBROKER_TOPIC_MAX   249 /* Kafka's own limit on topic name length */

enum { DEVBROKER_EXIT_OK = 0, DEVBROKER_EXIT_FAIL = 1, DEVBROKER_EXIT_USAGE = 2 };

typedef struct devbroker_client {
    int fd; /* -1 when the slot is free */
    size_t len;
    char line[DEVBROKER_LINE_MAX];
} devbroker_client_t;

typedef struct devbroker {
    /* Configuration (devbroker_settings: defaults, env, then flags). */
    long long brokers;
    long long partitions;
    long long control_port; /* replaced by the real one after bind */
    char *topic;
    char *bootstrap_file; /* NULL: none */
    /* Runtime state. */
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mcluster;
    int listen_fd;
    int signal_fd;
    bool bootstrap_written;
    bool stop;
    devbroker_client_t clients[DEVBROKER_CLIENTS_MAX];
} devbroker_t;

/* ---- configuration ------------------------------------------------------------------ */

/* Its own settings keep the HOLDFAST_DEVBROKER_* variables they always had; topic and
 * partitions share the daemons' HOLDFAST_TOPIC and HOLDFAST_PARTITIONS. */
static const hf_conf_spec_t devbroker_settings[] = {
    {"brokers", HF_CONF_INT, offsetof(devbroker_t, brokers), "3", 1, DEVBROKER_BROKERS_MAX,
     "mock brokers, ids 1..N (at most " HF_CONF_STR(DEVBROKER_BROKERS_MAX) ")"},
    {"brokers", HF_CONF_ENV_NAME, 0, "HOLDFAST_DEVBROKER_BROKERS", 0, 0, NULL},
    {"topic", HF_CONF_STRING, offsetof(devbroker_t, topic), "holdfast.events", 0, 0,
     "the one topic made at startup ([a-zA-Z0-9._-], at most 249 characters: Kafka's limit)"},
    {"partitions", HF_CONF_INT, offsetof(devbroker_t, partitions), "8", 1, DEVBROKER_PARTS_MAX,
     "partitions of the topic (at most " HF_CONF_STR(DEVBROKER_PARTS_MAX) ")"},
    {"bootstrap-file", HF_CONF_STRING, offsetof(devbroker_t, bootstrap_file), NULL, 0, 0,
     "written atomically once ready (the bootstrap servers, one line), removed on exit"},
    {"bootstrap-file", HF_CONF_ENV_NAME, 0, "HOLDFAST_DEVBROKER_BOOTSTRAP_FILE", 0, 0, NULL},
    {"control-port", HF_CONF_INT, offsetof(devbroker_t, control_port), "0", 0, 65535,
     "control port, on 127.0.0.1 only (0: an ephemeral one)"},
    {"control-port", HF_CONF_ENV_NAME, 0, "HOLDFAST_DEVBROKER_CONTROL_PORT", 0, 0, NULL},
};
#define DEVBROKER_NSETTINGS (sizeof devbroker_settings / sizeof devbroker_settings[0])

static const char devbroker_usage[] =
    "usage: holdfast-devbroker [flags]\n"
    "\n"
    "In-memory Kafka cluster (librdkafka mock) for local use and tests.\n"
    "Prints 'bootstrap=HOST:PORT,...' and 'control=127.0.0.1:PORT' on stdout when ready.\n"
    "SIGTERM/SIGINT exit 0.\n"
    "Control port: one command per line, answered 'ok' or 'error: reason':\n"
    "  ping | down | up | down ID | up ID | rtt ID MS     (broker ids 1..N)\n"
    "A line holds at most " HF_CONF_STR(DEVBROKER_LINE_MAX) " bytes with the newline.";

/* Strict decimal within [min, max] (hf_config_parse_int), into an int. */
static bool devbroker_parse_int(const char *s, long min, long max, int *out)
{
    long long v;
    bool ok = hf_config_parse_int(s, min, max, &v) == HF_OK;
    *out = ok ? (int)v : *out;
    return ok;
}

/* Kafka accepts [a-zA-Z0-9._-]{1,249}; reject anything else here rather than letting
 * clients fail later with a less obvious error. */
static bool devbroker_topic_valid(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > DEVBROKER_TOPIC_MAX || strcmp(t, ".") == 0 || strcmp(t, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* Returns -1 to continue, otherwise the exit status (0 for --help, 2 for bad usage). */
static int devbroker_load_config(devbroker_t *db, int argc, char **argv)
{
    int rc = hf_config_load_tool("holdfast-devbroker", devbroker_settings, DEVBROKER_NSETTINGS, db,
                                 argc, argv, devbroker_usage);
    if (rc >= 0)
        return rc;
    if (!devbroker_topic_valid(db->topic)) {
        fprintf(stderr, "holdfast-devbroker: invalid topic '%s'; see --help\n", db->topic);
        rc = DEVBROKER_EXIT_USAGE;
    } else if (db->bootstrap_file && db->bootstrap_file[0] == '\0') {
        fprintf(stderr, "holdfast-devbroker: bootstrap-file is empty; see --help\n");
        rc = DEVBROKER_EXIT_USAGE;
    }
    return rc;
}

/* ---- mock cluster ------------------------------------------------------------------- */

/* Routes librdkafka's own logs (from its threads; hf_log is thread-safe) into ours. */
static void devbroker_rdkafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* Our bookkeeping handle has no bootstrap.servers on purpose; don't warn about it. */
    if (strcmp(fac, "CONFWARN") == 0 && strstr(buf, "bootstrap.servers"))
        return;
    hf_log_level_t l = level <= 3   ? HF_LOG_ERROR
                       : level <= 4 ? HF_LOG_WARN
                       : level <= 6 ? HF_LOG_INFO
                                    : HF_LOG_DEBUG;
    hf_log(l, "rdkafka %s: %s", fac, buf);
}

/* The mock cluster needs an rd_kafka_t for bookkeeping only: a producer that is never
 * given a bootstrap server nor a message, so it never connects anywhere. */
static bool devbroker_create_handle(devbroker_t *db)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "client.id", "holdfast-devbroker", err, sizeof err) !=
        RD_KAFKA_CONF_OK) {
        hf_error("rdkafka config: %s", err);
        rd_kafka_conf_destroy(conf);
        return false;
    }
    rd_kafka_conf_set_log_cb(conf, devbroker_rdkafka_log);
    db->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!db->rk) {
        hf_error("rd_kafka_new: %s", err);
        rd_kafka_conf_destroy(conf); /* only owned by rk on success */
        return false;
    }
    return true;
}

static bool devbroker_start_cluster(devbroker_t *db)
{
    if (!devbroker_create_handle(db))
        return false;
    db->mcluster = rd_kafka_mock_cluster_new(db->rk, (int)db->brokers);
    if (!db->mcluster) {
        hf_error("rd_kafka_mock_cluster_new(%lld brokers) failed", db->brokers);
        return false;
    }
    int rf = db->brokers < 3 ? (int)db->brokers : 3;
    rd_kafka_resp_err_t e =
        rd_kafka_mock_topic_create(db->mcluster, db->topic, (int)db->partitions, rf);
    if (e) {
        hf_error("creating topic %s: %s", db->topic, rd_kafka_err2str(e));
        return false;
    }
    hf_info("mock cluster up: %lld brokers, topic %s with %lld partitions, replication %d",
            db->brokers, db->topic, db->partitions, rf);
    return true;
}

/* ---- sockets ------------------------------------------------------------------------ */

static bool devbroker_open_signals(devbroker_t *db)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    /* Blocked before librdkafka starts threads, so no thread takes them by default
     * action and they all land in the signalfd. */
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
        hf_error("sigprocmask: %s", strerror(errno));
        return false;
    }
    db->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (db->signal_fd < 0) {
        hf_error("signalfd: %s", strerror(errno));
        return false;
    }
    /* A test client hanging up must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    return true;
}

static bool devbroker_listen(devbroker_t *db)
{
    db->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (db->listen_fd < 0) {
        hf_error("control socket: %s", strerror(errno));
        return false;
    }
    int one = 1;
    setsockopt(db->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)db->control_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(db->listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(db->listen_fd, 16) != 0) {
        hf_error("control port 127.0.0.1:%lld: %s", db->control_port, strerror(errno));
        return false;
    }
    socklen_t len = sizeof sa;
    if (getsockname(db->listen_fd, (struct sockaddr *)&sa, &len) != 0) {
        hf_error("getsockname: %s", strerror(errno));
        return false;
    }
    db->control_port = ntohs(sa.sin_port); /* the real one when 0 was asked for */
    return true;
}

/* ---- readiness ---------------------------------------------------------------------- */

static bool devbroker_write_bootstrap_file(devbroker_t *db, const char *bootstrap)
{
    char text[4096];
    int n = snprintf(text, sizeof text, "%s\n", bootstrap);
    if (n < 0 || (size_t)n >= sizeof text ||
        hf_file_write_atomic(db->bootstrap_file, text) != HF_OK)
        return false;
    db->bootstrap_written = true;
    return true;
}

static bool devbroker_announce(devbroker_t *db)
{
    const char *bootstrap = rd_kafka_mock_cluster_bootstraps(db->mcluster);
    printf("bootstrap=%s\ncontrol=127.0.0.1:%lld\n", bootstrap, db->control_port);
    if (fflush(stdout) != 0)
        hf_warn("stdout: %s", strerror(errno)); /* nobody reading is not fatal */
    hf_info("ready: bootstrap=%s control=127.0.0.1:%lld", bootstrap, db->control_port);
    /* Last, so the file appearing means stdout lines and control port are ready too. */
    return !db->bootstrap_file || devbroker_write_bootstrap_file(db, bootstrap);
}

/* ---- control protocol --------------------------------------------------------------- */

static void devbroker_reply(devbroker_client_t *cl, const char *msg)
{
    /* Replies are tiny; a client that does not read them just loses them. */
    if (send(cl->fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        hf_debug("control reply lost: %s", strerror(errno));
}

/* Applies up/down to one broker id, or to all when id is 0; on failure *failed is the
 * broker that refused. */
static rd_kafka_resp_err_t devbroker_set_state(devbroker_t *db, int id, bool up, int *failed)
{
    int first = id ? id : 1, last = id ? id : (int)db->brokers;
    for (int b = first; b <= last; b++) {
        rd_kafka_resp_err_t e = up ? rd_kafka_mock_broker_set_up(db->mcluster, b)
                                   : rd_kafka_mock_broker_set_down(db->mcluster, b);
        if (e) {
            *failed = b;
            return e;
        }
    }
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Executes one command; writes the reply line into `out`. */
static void devbroker_exec(devbroker_t *db, char *line, char *out, size_t outsz)
{
    char *save = NULL;
    char *cmd = strtok_r(line, " \t", &save);
    char *a1 = strtok_r(NULL, " \t", &save);
    char *a2 = strtok_r(NULL, " \t", &save);
    char *extra = strtok_r(NULL, " \t", &save);
    int id = 0, ms = 0, failed = 0;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;

    if (!cmd) {
        snprintf(out, outsz, "error: empty command\n");
        return;
    }
    bool is_up = strcmp(cmd, "up") == 0, is_down = strcmp(cmd, "down") == 0;
    if (strcmp(cmd, "ping") == 0 && !a1) {
        /* nothing to do */
    } else if ((is_up || is_down) && !a2) {
        if (a1 && !devbroker_parse_int(a1, 1, db->brokers, &id)) {
            snprintf(out, outsz, "error: broker id must be 1..%lld\n", db->brokers);
            return;
        }
        e = devbroker_set_state(db, id, is_up, &failed);
        hf_info("control: broker %s %s", a1 ? a1 : "all", is_up ? "up" : "down");
    } else if (strcmp(cmd, "rtt") == 0 && a2 && !extra) {
        if (!devbroker_parse_int(a1, 1, db->brokers, &id) ||
            !devbroker_parse_int(a2, 0, 3600000, &ms)) {
            snprintf(out, outsz, "error: usage: rtt ID MS (ID 1..%lld, MS 0..3600000)\n",
                     db->brokers);
            return;
        }
        e = rd_kafka_mock_broker_set_rtt(db->mcluster, id, ms);
        failed = id;
        hf_info("control: broker %d rtt %d ms", id, ms);
    } else {
        snprintf(out, outsz, "error: unknown command (ping, up [ID], down [ID], rtt ID MS)\n");
        return;
    }
    if (e)
        snprintf(out, outsz, "error: broker %d: %s\n", failed, rd_kafka_err2str(e));
    else
        snprintf(out, outsz, "ok\n");
}

static void devbroker_client_close(devbroker_client_t *cl)
{
    close(cl->fd);
    cl->fd = -1;
    cl->len = 0;
}

/* Closing with unread input makes the kernel send RST, which can destroy our error
 * reply before the client reads it; so send FIN first and discard what already arrived. */
static void devbroker_client_drain_close(devbroker_client_t *cl)
{
    char scratch[4096];
    shutdown(cl->fd, SHUT_WR);
    for (int i = 0; i < 16 && recv(cl->fd, scratch, sizeof scratch, MSG_DONTWAIT) > 0; i++)
        continue;
    devbroker_client_close(cl);
}

/* Runs every complete line in the buffer, keeps the partial rest. */
static void devbroker_client_lines(devbroker_t *db, devbroker_client_t *cl)
{
    char *nl;
    while (cl->fd >= 0 && (nl = memchr(cl->line, '\n', cl->len)) != NULL) {
        size_t n = (size_t)(nl - cl->line);
        *nl = '\0';
        if (n > 0 && cl->line[n - 1] == '\r')
            cl->line[n - 1] = '\0';
        char out[160];
        devbroker_exec(db, cl->line, out, sizeof out);
        devbroker_reply(cl, out);
        cl->len -= n + 1;
        memmove(cl->line, nl + 1, cl->len);
    }
    if (cl->fd >= 0 && cl->len == sizeof cl->line) {
        devbroker_reply(cl, "error: line too long\n");
        devbroker_client_drain_close(cl);
    }
}

static void devbroker_client_read(devbroker_t *db, devbroker_client_t *cl)
{
    ssize_t n = recv(cl->fd, cl->line + cl->len, sizeof cl->line - cl->len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        /* EOF or error; an unterminated last line is dropped, commands need '\n'. */
        devbroker_client_close(cl);
        return;
    }
    cl->len += (size_t)n;
    devbroker_client_lines(db, cl);
}

static void devbroker_accept(devbroker_t *db)
{
    int fd = accept4(db->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR)
            hf_warn("control accept: %s", strerror(errno));
        return;
    }
    for (int i = 0; i < DEVBROKER_CLIENTS_MAX; i++) {
        if (db->clients[i].fd < 0) {
            db->clients[i].fd = fd;
            db->clients[i].len = 0;
            return;
        }
    }
    devbroker_client_t tmp = {.fd = fd};
    devbroker_reply(&tmp, "error: too many control clients\n");
    close(fd);
}

/* ---- main loop ---------------------------------------------------------------------- */

static void devbroker_on_signal(devbroker_t *db)
{
    struct signalfd_siginfo si;
    while (read(db->signal_fd, &si, sizeof si) == (ssize_t)sizeof si) {
        hf_info("received %s, shutting down", strsignal((int)si.ssi_signo));
        db->stop = true;
    }
}

/* The mock cluster's broker sockets (created inside librdkafka, in this
 * process) do not set TCP_NODELAY: two responses written back to back on
 * one connection then wait for the client's delayed ACK, about 40 ms on
 * Linux, whenever a client has requests for several partitions of one
 * broker in flight. Real brokers set it. So sweep our own descriptors and
 * set it on every TCP socket; new connections are caught within one sweep
 * interval. A descriptor closed and reused meanwhile is harmless: a
 * non-socket fails getsockopt, another TCP socket wants the option too. */
static void devbroker_nodelay_sweep(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        if (*end != '\0' || fd < 0 || fd == dirfd(dir))
            continue;
        int type = 0, on = 0;
        socklen_t len = sizeof type;
        if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
            continue;
        len = sizeof on;
        if (getsockopt((int)fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) != 0 || on)
            continue;
        on = 1;
        (void)setsockopt((int)fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    }
    closedir(dir);
}

static int devbroker_run(devbroker_t *db)
{
    /* Slot 0: signals, 1: listener, 2..: clients (fd -1 is ignored by poll). */
    struct pollfd pfd[2 + DEVBROKER_CLIENTS_MAX];
    while (!db->stop) {
        pfd[0] = (struct pollfd){.fd = db->signal_fd, .events = POLLIN};
        pfd[1] = (struct pollfd){.fd = db->listen_fd, .events = POLLIN};
        for (int i = 0; i < DEVBROKER_CLIENTS_MAX; i++)
            pfd[2 + i] = (struct pollfd){.fd = db->clients[i].fd, .events = POLLIN};
        devbroker_nodelay_sweep();
        if (poll(pfd, 2 + DEVBROKER_CLIENTS_MAX, DEVBROKER_SWEEP_MS) < 0) {
            if (errno == EINTR)
                continue;
            hf_error("poll: %s", strerror(errno));
            return DEVBROKER_EXIT_FAIL;
        }
        if (pfd[0].revents)
            devbroker_on_signal(db);
        if (pfd[1].revents)
            devbroker_accept(db);
        for (int i = 0; i < DEVBROKER_CLIENTS_MAX; i++)
            if (pfd[2 + i].revents && db->clients[i].fd >= 0)
                devbroker_client_read(db, &db->clients[i]);
    }
    return DEVBROKER_EXIT_OK;
}

static void devbroker_init(devbroker_t *db)
{
    /* The settings come from devbroker_load_config. */
    *db = (devbroker_t){.listen_fd = -1, .signal_fd = -1};
    for (int i = 0; i < DEVBROKER_CLIENTS_MAX; i++)
        db->clients[i].fd = -1;
}

static void devbroker_destroy(devbroker_t *db)
{
    for (int i = 0; i < DEVBROKER_CLIENTS_MAX; i++)
        if (db->clients[i].fd >= 0)
            devbroker_client_close(&db->clients[i]);
    if (db->listen_fd >= 0)
        close(db->listen_fd);
    if (db->bootstrap_written)
        unlink(db->bootstrap_file);
    /* Cluster first: it belongs to rk and must go before it. */
    if (db->mcluster)
        rd_kafka_mock_cluster_destroy(db->mcluster);
    if (db->rk)
        rd_kafka_destroy(db->rk);
    if (db->signal_fd >= 0)
        close(db->signal_fd);
    hf_config_free(devbroker_settings, DEVBROKER_NSETTINGS, db);
}

int main(int argc, char **argv)
{
    devbroker_t db;
    devbroker_init(&db);
    int rc = devbroker_load_config(&db, argc, argv);
    if (rc >= 0) {
        hf_config_free(devbroker_settings, DEVBROKER_NSETTINGS, &db);
        return rc;
    }
    hf_log_init("devbroker", HF_LOG_INFO);

    rc = DEVBROKER_EXIT_FAIL;
    if (devbroker_open_signals(&db) && devbroker_start_cluster(&db) && devbroker_listen(&db) &&
        devbroker_announce(&db))
        rc = devbroker_run(&db);
    devbroker_destroy(&db);
    hf_info("exited with status %d", rc);
    return rc;
}
