/* fanout_raw.c - holdfast-fanout-raw: the fan-out benchmark's baseline.
 *
 * The least a WebSocket server can do to fan one channel out: one thread,
 * epoll, non-blocking sockets. It accepts WebSocket clients (the HTTP
 * upgrade, echoing the holdfast.v1.json subprotocol), answers each
 * client's first message with a "subscribed" frame, and --rate times a
 * second encodes one event frame of the same shape and size as the
 * gateway's and writes it to every subscribed client. No Redis, no Kafka,
 * no chain rule, no per-client protocol state beyond an output buffer: what
 * the gateway's fan-out is measured against (the same holdfast-loadgen
 * counts deliveries and latency for both). Runs --duration seconds after
 * --clients clients subscribed (or until SIGTERM, or --duration + 120 s
 * after start if they never all subscribe), then prints one JSON line:
 * events, frames written, bytes, frames dropped (a client's buffer over
 * --max-buffer). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "holdfast/clock.h"
#include "holdfast/config.h"

#define RAW_MAX_EVENTS 256
#define RAW_IN_MAX     4096

typedef struct raw_conn {
    int fd;
    bool upgraded, subscribed;
    char in[RAW_IN_MAX];
    size_t in_len;
    unsigned char *out; /* pending bytes, written on EPOLLOUT */
    size_t out_len, out_cap;
    bool want_out;
} raw_conn_t;

typedef struct raw {
    /* Settings (raw_settings: defaults, env, then flags). */
    long long port;       /* 127.0.0.1 port to listen on */
    long long rate;       /* events per second */
    long long clients;    /* subscribed clients that start the run */
    double duration_s;    /* seconds of publishing */
    long long max_buffer; /* bytes pending per client before frames are dropped */
    /* Runtime. */
    int epfd, listen_fd, timer_fd;
    raw_conn_t **conns; /* by fd */
    int nfds;
    int subscribed;
    int64_t offset;
    int64_t t_end_us;
    long long events, frames, dropped;
    unsigned long long bytes;
} raw_t;

static raw_t R;
static volatile sig_atomic_t raw_stop;

static void raw_on_signal(int sig)
{
    (void)sig;
    raw_stop = 1;
}

static void raw_base64(const unsigned char *in, size_t n, char *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = tbl[v >> 18 & 63];
        out[o++] = tbl[v >> 12 & 63];
        out[o++] = i + 1 < n ? tbl[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    out[o] = '\0';
}

/* A server-to-client text frame (unmasked) of len bytes of payload. */
static size_t raw_frame(unsigned char *buf, const char *payload, size_t len)
{
    size_t h = 0;
    buf[h++] = 0x81;
    if (len < 126) {
        buf[h++] = (unsigned char)len;
    } else {
        buf[h++] = 126;
        buf[h++] = (unsigned char)(len >> 8);
        buf[h++] = (unsigned char)len;
    }
    memcpy(buf + h, payload, len);
    return h + len;
}

static void raw_close(raw_conn_t *c)
{
    epoll_ctl(R.epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->subscribed)
        R.subscribed--;
    R.conns[c->fd] = NULL;
    free(c->out);
    free(c);
}

static void raw_want_out(raw_conn_t *c, bool want)
{
    if (c->want_out == want)
        return;
    c->want_out = want;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.fd = c->fd};
    epoll_ctl(R.epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes what is pending; false if the connection failed. */
static bool raw_flush(raw_conn_t *c)
{
    size_t done = 0;
    while (done < c->out_len) {
        ssize_t n = write(c->fd, c->out + done, c->out_len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0)
            return false;
        done += (size_t)n;
        R.bytes += (unsigned long long)n;
    }
    memmove(c->out, c->out + done, c->out_len - done);
    c->out_len -= done;
    raw_want_out(c, c->out_len > 0);
    return true;
}

/* Queues bytes behind what is pending, or writes them at once. */
static bool raw_send(raw_conn_t *c, const unsigned char *buf, size_t len)
{
    if (c->out_len == 0) {
        ssize_t n = write(c->fd, buf, len);
        if (n == (ssize_t)len) {
            R.bytes += len;
            return true;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return false;
        if (n > 0) {
            R.bytes += (unsigned long long)n;
            buf += n;
            len -= (size_t)n;
        }
    }
    if (c->out_len + len > (size_t)R.max_buffer) {
        R.dropped++;
        return true;
    }
    if (c->out_len + len > c->out_cap) {
        c->out_cap = (c->out_len + len) * 2;
        c->out = realloc(c->out, c->out_cap);
        if (!c->out)
            return false;
    }
    memcpy(c->out + c->out_len, buf, len);
    c->out_len += len;
    raw_want_out(c, true);
    return true;
}

static bool raw_upgrade(raw_conn_t *c)
{
    c->in[c->in_len] = '\0';
    char *end = strstr(c->in, "\r\n\r\n");
    if (!end)
        return c->in_len < RAW_IN_MAX - 1;
    const char *key = strcasestr(c->in, "\r\nSec-WebSocket-Key:");
    if (!key)
        return false;
    key += strlen("\r\nSec-WebSocket-Key:");
    while (*key == ' ')
        key++;
    char text[128];
    size_t klen = strcspn(key, "\r\n");
    if (klen > 60)
        return false;
    snprintf(text, sizeof text, "%.*s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", (int)klen, key);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)text, strlen(text), digest);
    char accept[64];
    raw_base64(digest, sizeof digest, accept);
    char reply[256];
    int n = snprintf(reply, sizeof reply,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                     "Sec-WebSocket-Protocol: holdfast.v1.json\r\n\r\n",
                     accept);
    size_t rest = c->in_len - (size_t)(end + 4 - c->in);
    memmove(c->in, end + 4, rest);
    c->in_len = rest;
    c->upgraded = true;
    return raw_send(c, (const unsigned char *)reply, (size_t)n);
}

/* The client's first complete frame is its subscribe: answer it. Later
 * frames (pings, closes) are read and ignored. */
static bool raw_on_frames(raw_conn_t *c)
{
    while (c->in_len >= 6) {
        size_t len = c->in[1] & 0x7f, h = 2;
        if (len == 126) {
            len = (size_t)(unsigned char)c->in[2] << 8 | (unsigned char)c->in[3];
            h = 4;
        } else if (len == 127) {
            return false;
        }
        h += 4; /* client frames are masked */
        if (c->in_len < h + len)
            return true;
        if ((c->in[0] & 0x0f) == 0x8)
            return false; /* close */
        memmove(c->in, c->in + h + len, c->in_len - h - len);
        c->in_len -= h + len;
        if (!c->subscribed) {
            static const char msg[] = "{\"type\":\"subscribed\",\"channel\":\"bench:0\","
                                      "\"partition\":0,\"offset\":-1,\"epoch\":\"raw\","
                                      "\"recovered\":true}";
            unsigned char buf[256];
            c->subscribed = true;
            R.subscribed++;
            if (R.subscribed == R.clients && R.t_end_us == 0)
                R.t_end_us = hf_now_us() + (int64_t)(R.duration_s * 1e6);
            if (!raw_send(c, buf, raw_frame(buf, msg, sizeof msg - 1)))
                return false;
        }
    }
    return true;
}

static void raw_on_readable(raw_conn_t *c)
{
    for (;;) {
        ssize_t n = read(c->fd, c->in + c->in_len, RAW_IN_MAX - 1 - c->in_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            raw_close(c);
            return;
        }
        c->in_len += (size_t)n;
        bool ok =
            c->upgraded ? raw_on_frames(c) : raw_upgrade(c) && (!c->upgraded || raw_on_frames(c));
        if (!ok || c->in_len >= RAW_IN_MAX - 1) {
            raw_close(c);
            return;
        }
    }
}

static void raw_accept(void)
{
    for (;;) {
        int fd = accept4(R.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (fd >= R.nfds) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        raw_conn_t *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        R.conns[fd] = c;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(R.epfd, EPOLL_CTL_ADD, fd, &ev);
    }
}

/* One event, the gateway's frame shape and size, to every subscriber. */
static void raw_publish(void)
{
    char msg[512];
    int64_t off = R.offset++;
    int n = snprintf(msg, sizeof msg,
                     "{\"type\":\"event\",\"channel\":\"bench:0\","
                     "\"id\":\"01900000-0000-7000-8000-%012" PRId64 "\",\"partition\":0,"
                     "\"offset\":%" PRId64 ",\"prev_offset\":%" PRId64
                     ",\"epoch\":\"raw0000000000000\","
                     "\"ts_us\":%" PRId64 ",\"data\":{\"n\": 1, \"text\": \"hello holdfast\"}}",
                     off, off, off - 1, hf_wall_us());
    unsigned char frame[600];
    size_t len = raw_frame(frame, msg, (size_t)n);
    R.events++;
    for (int fd = 0; fd < R.nfds; fd++) {
        raw_conn_t *c = R.conns[fd];
        if (!c || !c->subscribed)
            continue;
        R.frames++;
        if (!raw_send(c, frame, len))
            raw_close(c);
    }
}

static int raw_listen(void)
{
    R.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)R.port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (R.listen_fd < 0 ||
        setsockopt(R.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(R.listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(R.listen_fd, 4096) != 0) {
        fprintf(stderr, "holdfast-fanout-raw: cannot listen on 127.0.0.1:%lld: %s\n", R.port,
                strerror(errno));
        return -1;
    }
    return 0;
}

#define RAW_SET(field) offsetof(raw_t, field)
static const hf_conf_spec_t raw_settings[] = {
    {"port", HF_CONF_INT, RAW_SET(port), NULL, 0, 65535, "port on 127.0.0.1 (required)"},
    {"rate", HF_CONF_INT, RAW_SET(rate), "20", 1, 1000000, "events per second to every client"},
    {"clients", HF_CONF_INT, RAW_SET(clients), "1000", 1, 1000000,
     "subscribed clients that start the run"},
    {"duration", HF_CONF_DOUBLE, RAW_SET(duration_s), "10", 0, 604800,
     "seconds of publishing once every client is subscribed"},
    {"max-buffer", HF_CONF_BYTES, RAW_SET(max_buffer), "4MiB", 1, 1LL << 40,
     "bytes pending for one client; frames beyond are dropped"},
};
#undef RAW_SET
#define RAW_NSETTINGS (sizeof raw_settings / sizeof raw_settings[0])

static const char raw_usage[] =
    "usage: holdfast-fanout-raw --port P [flags]\n"
    "The fan-out benchmark's baseline: one epoll thread sending one pre-encoded event\n"
    "frame --rate times a second to every subscribed WebSocket client, then one JSON line.";

/* Returns -1 to continue, otherwise the exit status (0 for --help, 2 for bad settings). */
static int raw_args(int argc, char **argv)
{
    int rc = hf_config_load_tool("holdfast-fanout-raw", raw_settings, RAW_NSETTINGS, &R, argc, argv,
                                 raw_usage);
    if (rc < 0 && (R.port == 0 || R.duration_s <= 0)) {
        fprintf(stderr, "holdfast-fanout-raw: --port and a --duration above 0 are required\n");
        rc = 2;
    }
    return rc;
}

static int raw_timer_start(void)
{
    R.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    long period_ns = 1000000000L / R.rate;
    struct itimerspec it = {.it_interval = {period_ns / 1000000000L, period_ns % 1000000000L},
                            .it_value = {period_ns / 1000000000L, period_ns % 1000000000L}};
    if (R.timer_fd < 0 || timerfd_settime(R.timer_fd, 0, &it, NULL) != 0)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = R.timer_fd};
    return epoll_ctl(R.epfd, EPOLL_CTL_ADD, R.timer_fd, &ev);
}

static void raw_dispatch(const struct epoll_event *ev)
{
    int fd = ev->data.fd;
    if (fd == R.listen_fd) {
        raw_accept();
    } else if (fd == R.timer_fd) {
        uint64_t ticks = 0;
        if (read(R.timer_fd, &ticks, sizeof ticks) == sizeof ticks && R.t_end_us)
            for (uint64_t t = 0; t < ticks; t++)
                raw_publish();
    } else if (R.conns[fd]) {
        raw_conn_t *c = R.conns[fd];
        if ((ev->events & EPOLLOUT) && !raw_flush(c)) {
            raw_close(c);
            return;
        }
        if (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            raw_on_readable(c);
    }
}

int main(int argc, char **argv)
{
    int rc = raw_args(argc, argv);
    if (rc >= 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, raw_on_signal);
    signal(SIGINT, raw_on_signal);
    R.nfds = R.clients + 1024;
    R.conns = calloc((size_t)R.nfds, sizeof *R.conns);
    R.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!R.conns || R.epfd < 0 || raw_listen() != 0 || raw_timer_start() != 0)
        return 1;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = R.listen_fd};
    epoll_ctl(R.epfd, EPOLL_CTL_ADD, R.listen_fd, &ev);
    struct epoll_event evs[RAW_MAX_EVENTS];
    int64_t deadline_us = hf_now_us() + (int64_t)((R.duration_s + 120) * 1e6);
    while (!raw_stop && !(R.t_end_us && hf_now_us() > R.t_end_us) && hf_now_us() < deadline_us) {
        int n = epoll_wait(R.epfd, evs, RAW_MAX_EVENTS, 100);
        for (int i = 0; i < n; i++)
            raw_dispatch(&evs[i]);
    }
    printf("{\"events\":%lld,\"frames\":%lld,\"bytes\":%llu,\"dropped\":%lld,\"subscribed\":%d}\n",
           R.events, R.frames, R.bytes, R.dropped, R.subscribed);
    return 0;
}
