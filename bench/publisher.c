/* publisher.c - holdfast-publisher: an open-loop, paced HTTP publisher for
 * the end-to-end latency benchmarks.
 *
 *   holdfast-publisher --url http://127.0.0.1:PORT/v1/events --rate R --duration S
 *       [--channels M] [--prefix P] [--connections C] [--token T] [--ready-file F]
 *
 * POSTs single events, each {"channel":"P:K","data":{"t":T,"n":N,"text":"hello holdfast"}},
 * to the URL (Holdfast ingest's POST /v1/events, or any server taking the
 * same body). C threads each hold one keep-alive HTTP/1.1 connection
 * (TCP_NODELAY) and send one request at a time, reading the whole answer
 * (Content-Length body, or up to the close) before the next. Together they
 * send R events per second on a fixed schedule: event j of the run is due
 * at j/R seconds after the start, and thread i sends events i, i+C, i+2C...
 * A thread that falls behind sends at once and never skips an event. K runs
 * round-robin over 0..M-1 and N counts up across all threads; T is the
 * event's scheduled send time in microseconds since the epoch
 * (CLOCK_REALTIME), so latency measured downstream includes any queueing in
 * the publisher. Only 127.0.0.0/8 targets are allowed.
 *
 * A failed connection or request counts the event as an error and the
 * next event reconnects; an answer with "Connection: close", or an idle
 * connection the server closed, makes the next event reconnect too
 * (reconnects counts connections opened after a thread's first). Sending
 * stops at S seconds, so events still behind schedule then are never sent;
 * answers awaited then get until S + 30 s, or 2 s after SIGINT/SIGTERM,
 * which also stop sending. Prints one JSON object on stdout (achieved_rate
 * is 2xx answers per second of the run; response_ms is request write to
 * answer read) and the first non-2xx answer's body on stderr. Exit 0 when
 * every event sent got a 2xx, 1 otherwise, 2 on bad arguments. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "holdfast/clock.h"
#include "holdfast/config.h"

#define PUB_NS                 1000000000LL
#define PUB_HIST_BUCKET_US     10
#define PUB_HIST_BUCKETS       1000000 /* 10 s in 10 us steps; slower ones go to the last */
#define PUB_HARD_EXTRA_NS      (30 * PUB_NS)
#define PUB_STOP_GRACE_NS      (2 * PUB_NS)
#define PUB_CONNECT_TIMEOUT_NS (5 * PUB_NS)
#define PUB_READY_WAIT_NS      (180 * PUB_NS)
#define PUB_SLICE_NS           (50 * 1000000LL) /* how often waits look at the stop flag */
#define PUB_MAX_CONNECTIONS    1024
#define PUB_MAX_PREFIX         256
#define PUB_MAX_TOKEN          4096
#define PUB_REQ_MAX            8192
#define PUB_RX_MAX             65536
#define PUB_SNIPPET_MAX        1024

typedef struct pub_cfg {
    /* Settings (pub_settings: defaults, env, then flags; strings owned). */
    char *url;             /* http://HOST[:PORT][/PATH] */
    double rate;           /* events per second */
    double duration_s;     /* seconds of sending */
    long long channels;    /* channels PREFIX:0 .. PREFIX:channels-1, round-robin */
    char *prefix;          /* channel prefix */
    long long connections; /* threads, one keep-alive connection each */
    char *token;           /* bearer token; NULL: none */
    char *ready_file;      /* wait for this file before starting; NULL: start at once */
    /* From the settings. */
    struct sockaddr_in addr;
    char host_header[64];
    char path[512];
    char prefix_json[PUB_MAX_PREFIX * 6 + 1]; /* the prefix, escaped for a JSON string */
} pub_cfg_t;

typedef enum pub_outcome { PUB_SENT_OK, PUB_SENT_NON_2XX, PUB_SENT_ERROR } pub_outcome_t;

typedef struct pub_resp {
    int status;
    long long content_length; /* -1: not given */
    bool close;
    bool chunked;
} pub_resp_t;

typedef struct pub_worker {
    int index;
    pthread_t tid;
    int fd;
    bool opened_once;
    char req[PUB_REQ_MAX];
    char rx[PUB_RX_MAX];
    size_t rx_len;
    char snippet[PUB_SNIPPET_MAX + 1];
    size_t snippet_len;
    long long sent, ok, non_2xx, errors, reconnects;
    int64_t behind_max_ns, response_max_ns;
} pub_worker_t;

typedef struct pub_totals {
    long long sent, ok, non_2xx, errors, reconnects;
    int64_t behind_max_ns, response_max_ns;
} pub_totals_t;

static pub_cfg_t C;
static int64_t g_start_mono_ns, g_start_real_us, g_end_mono_ns, g_hard_mono_ns;
static atomic_int_fast64_t g_seq;
static atomic_int_fast64_t g_abort_at_ns; /* 0 until a signal; then the grace deadline */
static atomic_flag g_body_printed = ATOMIC_FLAG_INIT;
static _Atomic uint32_t *g_hist;

static bool pub_stopping(void)
{
    return atomic_load(&g_abort_at_ns) != 0;
}

static void pub_on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    int_fast64_t none = 0;
    atomic_compare_exchange_strong(&g_abort_at_ns, &none, hf_now_ns() + PUB_STOP_GRACE_NS);
    errno = saved;
}

static int pub_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = pub_on_signal;
    if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
        sigaction(SIGTERM, &sa, NULL) != 0)
        return -1;
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL);
}

/* ---- arguments ----------------------------------------------------------- */

#define PUB_SET(field) offsetof(pub_cfg_t, field)
static const hf_conf_spec_t pub_settings[] = {
    {"url", HF_CONF_STRING, PUB_SET(url), NULL, 0, 0,
     "http://HOST[:PORT][/PATH] to POST to, HOST in 127.0.0.0/8 (required)"},
    {"rate", HF_CONF_DOUBLE, PUB_SET(rate), NULL, 0, 10000000,
     "events per second, at least 0.001 (required)"},
    {"duration", HF_CONF_DOUBLE, PUB_SET(duration_s), NULL, 0, 7 * 86400,
     "seconds of sending, at least 0.001 (required)"},
    {"channels", HF_CONF_INT, PUB_SET(channels), "1000", 1, 1000000000,
     "events go round-robin to PREFIX:0 .. PREFIX:(channels - 1)"},
    {"prefix", HF_CONF_STRING, PUB_SET(prefix), "bench", 0, 0,
     "channel name prefix (at most " HF_CONF_STR(PUB_MAX_PREFIX) " bytes)"},
    {"connections", HF_CONF_INT, PUB_SET(connections), "8", 1, PUB_MAX_CONNECTIONS,
     "threads, each with one keep-alive connection"},
    {"token", HF_CONF_STRING, PUB_SET(token), NULL, 0, 0,
     "Authorization: Bearer TOKEN on every request; at most " HF_CONF_STR(PUB_MAX_TOKEN) " bytes"},
    {"ready-file", HF_CONF_STRING, PUB_SET(ready_file), NULL, 0, 0,
     "wait (at most 180 s) for this file to appear before sending"},
};
#undef PUB_SET
#define PUB_NSETTINGS (sizeof pub_settings / sizeof pub_settings[0])

static const char pub_usage[] =
    "usage: holdfast-publisher --url http://127.0.0.1:PORT/v1/events --rate R --duration S "
    "[flags]\n"
    "Open-loop, paced HTTP publisher: POSTs single events carrying their scheduled send\n"
    "time and prints one JSON report. Exit 0 every event got a 2xx, 1 otherwise, 2 bad\n"
    "settings.";

/* host is "localhost" or a dotted IPv4 address in 127.0.0.0/8. */
static int pub_loopback_addr(const char *host, struct in_addr *out)
{
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, out) != 1)
        return -1;
    return (ntohl(out->s_addr) >> 24) == 127 ? 0 : -1;
}

/* http://HOST[:PORT][/PATH] */
static int pub_parse_url(const char *url)
{
    const char *scheme = "http://";
    if (strncmp(url, scheme, strlen(scheme)) != 0) {
        fprintf(stderr, "holdfast-publisher: --url must start with http://\n");
        return -1;
    }
    const char *host = url + strlen(scheme);
    size_t hostport_len = strcspn(host, "/");
    size_t host_len = strcspn(host, ":/");
    char name[64];
    long long port = 80;
    if (host_len == 0 || host_len >= sizeof name || hostport_len >= sizeof C.host_header) {
        fprintf(stderr, "holdfast-publisher: bad host in --url %s\n", url);
        return -1;
    }
    memcpy(name, host, host_len);
    name[host_len] = '\0';
    if (host_len < hostport_len) {
        char digits[16];
        size_t n = hostport_len - host_len - 1;
        if (n == 0 || n >= sizeof digits) {
            fprintf(stderr, "holdfast-publisher: bad port in --url %s\n", url);
            return -1;
        }
        memcpy(digits, host + host_len + 1, n);
        digits[n] = '\0';
        if (hf_config_parse_int(digits, 1, 65535, &port) != HF_OK) {
            fprintf(stderr, "holdfast-publisher: bad port in --url %s\n", url);
            return -1;
        }
    }
    if (pub_loopback_addr(name, &C.addr.sin_addr) != 0) {
        fprintf(stderr, "holdfast-publisher: refusing host '%s': only 127.0.0.0/8 is allowed\n",
                name);
        return -1;
    }
    C.addr.sin_family = AF_INET;
    C.addr.sin_port = htons((uint16_t)port);
    memcpy(C.host_header, host, hostport_len);
    C.host_header[hostport_len] = '\0';
    const char *path = host[hostport_len] ? host + hostport_len : "/";
    if (strlen(path) >= sizeof C.path || strpbrk(path, " \r\n\t")) {
        fprintf(stderr, "holdfast-publisher: bad path in --url %s\n", url);
        return -1;
    }
    snprintf(C.path, sizeof C.path, "%s", path);
    return 0;
}

/* Escapes text for the inside of a JSON string into out (out_size >= 6 *
 * strlen(text) + 1). */
static int pub_json_escape(const char *text, char *out, size_t out_size)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (o + 7 > out_size)
            return -1;
        if (*p == '"' || *p == '\\')
            o += (size_t)snprintf(out + o, out_size - o, "\\%c", *p);
        else if (*p < 0x20)
            o += (size_t)snprintf(out + o, out_size - o, "\\u%04x", *p);
        else
            out[o++] = (char)*p;
    }
    out[o] = '\0';
    return 0;
}

static int pub_check_prefix(const char *prefix)
{
    if (strlen(prefix) > PUB_MAX_PREFIX ||
        pub_json_escape(prefix, C.prefix_json, sizeof C.prefix_json) != 0) {
        fprintf(stderr, "holdfast-publisher: --prefix longer than %d bytes\n", PUB_MAX_PREFIX);
        return -1;
    }
    return 0;
}

/* The token goes into a header line: visible ASCII only. */
static int pub_check_token(const char *token)
{
    size_t n = strlen(token);
    for (size_t i = 0; i < n; i++)
        if (token[i] < 0x21 || token[i] > 0x7e) {
            fprintf(stderr, "holdfast-publisher: --token holds a byte not allowed in a header\n");
            return -1;
        }
    if (n == 0 || n > PUB_MAX_TOKEN) {
        fprintf(stderr, "holdfast-publisher: --token must be 1..%d bytes\n", PUB_MAX_TOKEN);
        return -1;
    }
    return 0;
}

/* Returns -1 to continue, otherwise the exit status (0 for --help, 2 for bad settings). */
static int pub_args(int argc, char **argv)
{
    int rc = hf_config_load_tool("holdfast-publisher", pub_settings, PUB_NSETTINGS, &C, argc, argv,
                                 pub_usage);
    if (rc >= 0)
        return rc;
    if (!C.url || C.rate < 0.001 || C.duration_s < 0.001) {
        fprintf(stderr, "holdfast-publisher: --url, --rate and --duration are required (rate and "
                        "duration at least 0.001)\n");
        return 2;
    }
    if (pub_parse_url(C.url) != 0 || pub_check_prefix(C.prefix) != 0 ||
        (C.token && pub_check_token(C.token) != 0))
        return 2;
    return -1;
}

/* ---- waiting ------------------------------------------------------------- */

/* The deadline for an answer: the hard cap, or the grace after a signal. */
static int64_t pub_io_deadline(void)
{
    int64_t abort_at = atomic_load(&g_abort_at_ns);
    return abort_at && abort_at < g_hard_mono_ns ? abort_at : g_hard_mono_ns;
}

/* Sleeps until the CLOCK_MONOTONIC time due_ns; -1 if told to stop first. */
static int pub_sleep_until(int64_t due_ns)
{
    for (;;) {
        if (pub_stopping())
            return -1;
        int64_t now = hf_now_ns();
        if (now >= due_ns)
            return 0;
        int64_t until = due_ns - now > PUB_SLICE_NS ? now + PUB_SLICE_NS : due_ns;
        struct timespec ts = {.tv_sec = until / PUB_NS, .tv_nsec = until % PUB_NS};
        int rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        if (rc != 0 && rc != EINTR)
            return -1;
    }
}

/* Waits for events on fd until deadline_ns (and the I/O deadline); -1 on
 * timeout or poll failure. */
static int pub_wait_fd(int fd, short events, int64_t deadline_ns)
{
    for (;;) {
        int64_t limit = pub_io_deadline();
        if (deadline_ns < limit)
            limit = deadline_ns;
        int64_t left = limit - hf_now_ns();
        if (left <= 0)
            return -1;
        int ms = (int)((left < PUB_SLICE_NS ? left : PUB_SLICE_NS) / 1000000) + 1;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, ms);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* ---- the connection ------------------------------------------------------ */

static void pub_close(pub_worker_t *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    w->rx_len = 0;
}

static int pub_finish_connect(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (pub_wait_fd(fd, POLLOUT, hf_now_ns() + PUB_CONNECT_TIMEOUT_NS) != 0)
        return -1;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
        return -1;
    return 0;
}

static int pub_connect(pub_worker_t *w)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
        (connect(fd, (const struct sockaddr *)&C.addr, sizeof C.addr) != 0 &&
         (errno != EINPROGRESS || pub_finish_connect(fd) != 0))) {
        close(fd);
        return -1;
    }
    w->fd = fd;
    w->rx_len = 0;
    if (w->opened_once)
        w->reconnects++;
    w->opened_once = true;
    return 0;
}

/* An idle keep-alive connection the server has closed (or sent something
 * unasked on) is of no use: true when fd is in that state. */
static bool pub_conn_stale(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) == 0)
        return false;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

static int pub_ensure_conn(pub_worker_t *w)
{
    if (w->fd >= 0 && (w->rx_len > 0 || pub_conn_stale(w->fd)))
        pub_close(w);
    if (w->fd >= 0)
        return 0;
    return pub_connect(w);
}

static int pub_send_all(pub_worker_t *w, const char *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(w->fd, data + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (pub_wait_fd(w->fd, POLLOUT, g_hard_mono_ns) != 0)
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

/* Reads more of the answer into rx; 1 on data, 0 at EOF, -1 on error, a
 * full buffer or the deadline. */
static int pub_read_more(pub_worker_t *w)
{
    if (w->rx_len >= sizeof w->rx)
        return -1;
    for (;;) {
        ssize_t n = recv(w->fd, w->rx + w->rx_len, sizeof w->rx - w->rx_len, 0);
        if (n > 0) {
            w->rx_len += (size_t)n;
            return 1;
        }
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if ((errno != EAGAIN && errno != EWOULDBLOCK) ||
            pub_wait_fd(w->fd, POLLIN, g_hard_mono_ns) != 0)
            return -1;
    }
}

/* ---- HTTP ---------------------------------------------------------------- */

static int pub_build_request(pub_worker_t *w, int64_t seq, int64_t t_us, size_t *len)
{
    char body[PUB_MAX_PREFIX * 6 + 256];
    int blen = snprintf(body, sizeof body,
                        "{\"channel\":\"%s:%ld\",\"data\":{\"t\":%" PRId64 ",\"n\":%" PRId64
                        ",\"text\":\"hello holdfast\"}}",
                        C.prefix_json, (long)((seq - 1) % C.channels), t_us, seq);
    if (blen < 0 || (size_t)blen >= sizeof body)
        return -1;
    int n = snprintf(w->req, sizeof w->req,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n%s%s%s\r\n%s",
                     C.path, C.host_header, blen, C.token ? "Authorization: Bearer " : "",
                     C.token ? C.token : "", C.token ? "\r\n" : "", body);
    if (n < 0 || (size_t)n >= sizeof w->req)
        return -1;
    *len = (size_t)n;
    return 0;
}

/* Reads until rx holds the whole head; *head_len is its length with the
 * blank line. */
static int pub_read_head(pub_worker_t *w, size_t *head_len)
{
    for (;;) {
        const char *end = memmem(w->rx, w->rx_len, "\r\n\r\n", 4);
        if (end) {
            *head_len = (size_t)(end - w->rx) + 4;
            return 0;
        }
        if (pub_read_more(w) != 1)
            return -1;
    }
}

static bool pub_header_is(const char *line, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (strncasecmp(line, name, n) != 0 || line[n] != ':')
        return false;
    *value = line + n + 1 + strspn(line + n + 1, " \t");
    return true;
}

static int pub_parse_header(const char *line, pub_resp_t *r)
{
    const char *v = NULL;
    if (pub_header_is(line, "Content-Length", &v)) {
        char *end = NULL;
        errno = 0;
        r->content_length = strtoll(v, &end, 10);
        if (errno != 0 || end == v || r->content_length < 0 || (*end && !strchr(" \t\r", *end)))
            return -1;
    } else if (pub_header_is(line, "Connection", &v)) {
        r->close = strncasecmp(v, "close", 5) == 0;
    } else if (pub_header_is(line, "Transfer-Encoding", &v)) {
        r->chunked = strncasecmp(v, "identity", 8) != 0;
    }
    return 0;
}

/* Parses the head at rx (head_len bytes) in place. */
static int pub_parse_head(pub_worker_t *w, size_t head_len, pub_resp_t *r)
{
    w->rx[head_len - 2] = '\0';
    memset(r, 0, sizeof *r);
    r->content_length = -1;
    if (strncmp(w->rx, "HTTP/1.", 7) != 0 || w->rx[8] != ' ')
        return -1;
    r->status = atoi(w->rx + 9);
    r->close = w->rx[7] == '0'; /* HTTP/1.0 closes unless told otherwise */
    if (r->status < 100 || r->status > 999)
        return -1;
    for (char *line = strstr(w->rx, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n"))
        if (pub_parse_header(line + 2, r) != 0)
            return -1;
    return r->chunked ? -1 : 0; /* only Content-Length or read-to-close bodies */
}

static void pub_keep_snippet(pub_worker_t *w, const char *data, size_t len)
{
    size_t room = PUB_SNIPPET_MAX - w->snippet_len;
    size_t take = len < room ? len : room;
    memcpy(w->snippet + w->snippet_len, data, take);
    w->snippet_len += take;
    w->snippet[w->snippet_len] = '\0';
}

/* Takes up to want bytes of body from the front of rx; returns how many. */
static size_t pub_take_body(pub_worker_t *w, long long want)
{
    size_t take = (unsigned long long)want < w->rx_len ? (size_t)want : w->rx_len;
    pub_keep_snippet(w, w->rx, take);
    memmove(w->rx, w->rx + take, w->rx_len - take);
    w->rx_len -= take;
    return take;
}

/* Consumes the body that follows a head already removed from rx: length
 * bytes, or (length -1) everything up to the close. */
static int pub_read_body(pub_worker_t *w, long long length)
{
    long long left = length < 0 ? LLONG_MAX : length;
    w->snippet_len = 0;
    w->snippet[0] = '\0';
    for (;;) {
        left -= (long long)pub_take_body(w, left);
        if (left == 0)
            return 0;
        int rc = pub_read_more(w);
        if (rc == 0 && length < 0)
            return 0;
        if (rc != 1)
            return -1;
    }
}

static bool pub_status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

/* Reads one head into r and drops it from rx, skipping interim (1xx)
 * answers. */
static int pub_read_final_head(pub_worker_t *w, pub_resp_t *r)
{
    do {
        size_t head_len = 0;
        if (pub_read_head(w, &head_len) != 0 || pub_parse_head(w, head_len, r) != 0)
            return -1;
        memmove(w->rx, w->rx + head_len, w->rx_len - head_len);
        w->rx_len -= head_len;
    } while (r->status < 200 && r->status != 101);
    return r->status == 101 ? -1 : 0;
}

/* Reads one whole answer: head, then body. */
static int pub_read_response(pub_worker_t *w, pub_resp_t *r)
{
    if (pub_read_final_head(w, r) != 0)
        return -1;
    long long length = pub_status_has_body(r->status) ? r->content_length : 0;
    if (length < 0)
        r->close = true; /* the body ends with the connection */
    return pub_read_body(w, length);
}

/* ---- one event ----------------------------------------------------------- */

static void pub_record_response(pub_worker_t *w, int64_t ns)
{
    if (ns > w->response_max_ns)
        w->response_max_ns = ns;
    int64_t b = ns / 1000 / PUB_HIST_BUCKET_US;
    atomic_fetch_add_explicit(&g_hist[b < PUB_HIST_BUCKETS ? b : PUB_HIST_BUCKETS - 1], 1,
                              memory_order_relaxed);
}

static void pub_report_body_once(const pub_worker_t *w, int status)
{
    if (atomic_flag_test_and_set(&g_body_printed))
        return;
    fprintf(stderr, "holdfast-publisher: first non-2xx answer: HTTP %d: %s\n", status, w->snippet);
}

/* Sends the prepared request of len bytes and reads its answer. */
static pub_outcome_t pub_exchange(pub_worker_t *w, size_t len)
{
    pub_resp_t r;
    if (pub_ensure_conn(w) != 0)
        return PUB_SENT_ERROR;
    int64_t t0 = hf_now_ns();
    if (pub_send_all(w, w->req, len) != 0 || pub_read_response(w, &r) != 0) {
        pub_close(w);
        return PUB_SENT_ERROR;
    }
    pub_record_response(w, hf_now_ns() - t0);
    if (r.close)
        pub_close(w);
    if (r.status >= 200 && r.status < 300)
        return PUB_SENT_OK;
    pub_report_body_once(w, r.status);
    return PUB_SENT_NON_2XX;
}

/* Publishes one event due at the CLOCK_MONOTONIC time due_ns. */
static pub_outcome_t pub_send_event(pub_worker_t *w, int64_t due_ns)
{
    int64_t seq = (int64_t)atomic_fetch_add(&g_seq, 1) + 1;
    int64_t t_us = g_start_real_us + (due_ns - g_start_mono_ns) / 1000;
    size_t len = 0;
    if (pub_build_request(w, seq, t_us, &len) != 0)
        return PUB_SENT_ERROR;
    return pub_exchange(w, len);
}

static void pub_count(pub_worker_t *w, pub_outcome_t outcome)
{
    w->sent++;
    if (outcome == PUB_SENT_OK)
        w->ok++;
    else if (outcome == PUB_SENT_NON_2XX)
        w->non_2xx++;
    else
        w->errors++;
}

/* The CLOCK_MONOTONIC time this worker's k-th event is due. */
static int64_t pub_due_ns(const pub_worker_t *w, int64_t k)
{
    double slot = (double)k * C.connections + w->index;
    return g_start_mono_ns + (int64_t)(slot / C.rate * 1e9);
}

static void *pub_worker_main(void *arg)
{
    pub_worker_t *w = arg;
    for (int64_t k = 0;; k++) {
        int64_t due = pub_due_ns(w, k);
        if (due >= g_end_mono_ns || pub_sleep_until(due) != 0)
            break;
        int64_t now = hf_now_ns();
        if (now >= g_end_mono_ns)
            break;
        if (now - due > w->behind_max_ns)
            w->behind_max_ns = now - due;
        pub_count(w, pub_send_event(w, due));
    }
    pub_close(w);
    return NULL;
}

/* ---- the run ------------------------------------------------------------- */

/* Waits up to 180 s for the ready file; -1 if it never came (or a signal). */
static int pub_wait_ready(void)
{
    if (!C.ready_file)
        return 0;
    int64_t deadline = hf_now_ns() + PUB_READY_WAIT_NS;
    while (access(C.ready_file, F_OK) != 0) {
        if (hf_now_ns() >= deadline) {
            fprintf(stderr, "holdfast-publisher: %s did not appear within 180 s\n", C.ready_file);
            return -1;
        }
        if (pub_sleep_until(hf_now_ns() + PUB_SLICE_NS) != 0)
            return -1;
    }
    return 0;
}

static int pub_alloc_hist(void)
{
    g_hist = malloc(PUB_HIST_BUCKETS * sizeof *g_hist);
    if (!g_hist)
        return -1;
    for (size_t i = 0; i < PUB_HIST_BUCKETS; i++)
        atomic_init(&g_hist[i], 0);
    return 0;
}

static void pub_start_clock(void)
{
    g_start_real_us = hf_wall_us();
    g_start_mono_ns = hf_now_ns();
    g_end_mono_ns = g_start_mono_ns + (int64_t)(C.duration_s * 1e9);
    g_hard_mono_ns = g_end_mono_ns + PUB_HARD_EXTRA_NS;
}

/* Starts the workers; on failure, joins the ones started and returns -1. */
static int pub_run(pub_worker_t *workers)
{
    int started = 0, rc = 0;
    for (; started < C.connections; started++) {
        workers[started].index = started;
        workers[started].fd = -1;
        if (pthread_create(&workers[started].tid, NULL, pub_worker_main, &workers[started]) != 0) {
            fprintf(stderr, "holdfast-publisher: cannot start thread %d\n", started);
            pub_on_signal(0);
            rc = -1;
            break;
        }
    }
    for (int i = 0; i < started; i++)
        if (pthread_join(workers[i].tid, NULL) != 0)
            rc = -1;
    if (rc == 0 && pub_sleep_until(g_end_mono_ns) != 0 && !pub_stopping())
        rc = -1; /* the run lasts the whole duration, even past the last event */
    return rc;
}

static double pub_percentile_ms(double q, long long total, int64_t max_ns)
{
    long long seen = 0, rank = (long long)(q * (double)total);
    if (!total)
        return 0;
    for (int i = 0; i < PUB_HIST_BUCKETS; i++) {
        seen += atomic_load_explicit(&g_hist[i], memory_order_relaxed);
        if (seen > rank) {
            double upper = (i + 1) * PUB_HIST_BUCKET_US / 1000.0;
            return upper < max_ns / 1e6 ? upper : max_ns / 1e6;
        }
    }
    return max_ns / 1e6;
}

static void pub_sum(const pub_worker_t *workers, int n, pub_totals_t *t)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < n; i++) {
        const pub_worker_t *w = &workers[i];
        t->sent += w->sent;
        t->ok += w->ok;
        t->non_2xx += w->non_2xx;
        t->errors += w->errors;
        t->reconnects += w->reconnects;
        if (w->behind_max_ns > t->behind_max_ns)
            t->behind_max_ns = w->behind_max_ns;
        if (w->response_max_ns > t->response_max_ns)
            t->response_max_ns = w->response_max_ns;
    }
}

/* Prints the report; returns the exit status it implies. */
static int pub_report(const pub_worker_t *workers, int64_t end_ns)
{
    pub_totals_t totals, *t = &totals;
    pub_sum(workers, C.connections, t);
    double secs = g_start_mono_ns ? (end_ns - g_start_mono_ns) / 1e9 : 0;
    long long answered = t->ok + t->non_2xx;
    printf("{\"asked_rate\":%g,\"connections\":%lld,\"seconds\":%.3f,\"sent\":%lld,\"ok\":%lld,"
           "\"non_2xx\":%lld,\"errors\":%lld,\"reconnects\":%lld,\"achieved_rate\":%.1f,"
           "\"behind_ms_max\":%.3f,\"response_ms\":{\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f}}\n",
           C.rate, C.connections, secs, t->sent, t->ok, t->non_2xx, t->errors, t->reconnects,
           secs > 0 ? t->ok / secs : 0, t->behind_max_ns / 1e6,
           pub_percentile_ms(0.50, answered, t->response_max_ns),
           pub_percentile_ms(0.99, answered, t->response_max_ns), t->response_max_ns / 1e6);
    int status = t->non_2xx == 0 && t->errors == 0 ? 0 : 1;
    return fflush(stdout) == 0 ? status : 1;
}

int main(int argc, char **argv)
{
    int rc = pub_args(argc, argv);
    if (rc >= 0) {
        hf_config_free(pub_settings, PUB_NSETTINGS, &C);
        return rc;
    }
    pub_worker_t *workers = calloc((size_t)C.connections, sizeof *workers);
    if (!workers || pub_alloc_hist() != 0 || pub_install_signals() != 0) {
        fprintf(stderr, "holdfast-publisher: out of memory or no signal handlers\n");
        return 1;
    }
    rc = 0;
    if (pub_wait_ready() != 0 && !pub_stopping())
        rc = 1;
    if (rc == 0 && !pub_stopping()) {
        pub_start_clock();
        rc = pub_run(workers);
    }
    int status = pub_report(workers, hf_now_ns());
    free(workers);
    free((void *)g_hist);
    hf_config_free(pub_settings, PUB_NSETTINGS, &C);
    return rc != 0 ? 1 : status;
}
