/* publish.c - the driver's publisher: one thread, one keep-alive HTTP/1.1
 * connection to ingest, events in seq order at the configured rate.
 *
 * One event at a time, so seq order is commit order within every channel
 * (the order the verifier expects). An event that gets no answer, a 5xx
 * or a 429 is sent again, same body and same Idempotency-Key, until it is
 * acknowledged or the retry deadline passes: ingest must then store it
 * once. While one event is retried the later ones wait, as an application
 * publishing in order would. */
#include "driver.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PUB_IO_TIMEOUT_S 5
#define PUB_BACKOFF_MIN  50000
#define PUB_BACKOFF_MAX  1000000

typedef struct pub_conn {
    int fd;          /* -1: not connected */
    char buf[16384]; /* response bytes read so far */
    size_t len;      /* how many */
} pub_conn_t;

static pthread_t pub_thread;

static void pub_sleep_us(int64_t us)
{
    if (us <= 0)
        return;
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void pub_close(pub_conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->len = 0;
}

static int pub_connect(pub_conn_t *c, const cd_url_t *u)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = PUB_IO_TIMEOUT_S};
    int one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)u->port)};
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
        inet_pton(AF_INET, u->host, &sa.sin_addr) != 1 ||
        connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        pub_close(c);
        return -1;
    }
    return 0;
}

static int pub_send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Appends what the socket has to the buffer (blocking up to the timeout);
 * -1 on EOF, error, timeout or a full buffer. */
static int pub_recv_more(pub_conn_t *c)
{
    for (;;) {
        if (c->len == sizeof c->buf - 1)
            return -1;
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        c->len += (size_t)r;
        return 0;
    }
}

/* Reads one response; returns its status (body skipped), or -1. Responses
 * are small JSON objects; one larger than the buffer is an error. */
static int pub_read_response(pub_conn_t *c, bool *keep_alive)
{
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (pub_recv_more(c) != 0)
            return -1;
    c->buf[c->len] = '\0';
    int status = 0;
    if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    size_t head = (size_t)(end + 4 - c->buf), body = 0;
    const char *cl = strcasestr(c->buf, "\r\ncontent-length:");
    if (cl && cl < end)
        body = strtoul(cl + 17, NULL, 10);
    const char *conn = strcasestr(c->buf, "\r\nconnection: close");
    *keep_alive = !(conn && conn < end);
    if (head + body > sizeof c->buf - 1)
        return -1;
    while (c->len < head + body)
        if (pub_recv_more(c) != 0)
            return -1;
    c->buf[head + body] = '\0';
    /* What follows belongs to no request of ours: drop it. */
    memmove(c->buf, c->buf + head, body + 1);
    c->len = 0;
    return status;
}

/* One attempt: the status, or 0 when no HTTP answer came. */
static int pub_attempt(pub_conn_t *c, const cd_url_t *u, const char *req, size_t reqlen,
                       char *answer, size_t answer_size)
{
    bool keep = true;
    int status = -1;
    for (int tries = 0; tries < 2 && status < 0; tries++) {
        /* A keep-alive connection ingest closed meanwhile fails on first use:
         * one fresh connection before counting it as an error. */
        bool fresh = c->fd < 0;
        if (fresh && pub_connect(c, u) != 0)
            return 0;
        if (pub_send_all(c->fd, req, reqlen) == 0)
            status = pub_read_response(c, &keep);
        if (status < 0)
            pub_close(c);
        if (fresh)
            break;
    }
    if (status < 0)
        return 0;
    snprintf(answer, answer_size, "%.*s", (int)(answer_size - 1), c->buf);
    if (!keep)
        pub_close(c);
    return status;
}

static size_t pub_request(const cd_run_t *run, long long seq, int64_t t, char *req, size_t size)
{
    char body[1024];
    static const char dots[] = "................................................................"
                               "................................................................"
                               "................................................................"
                               "................................................................";
    int pad = run->payload_bytes < (int)sizeof dots - 1 ? run->payload_bytes : (int)sizeof dots - 1;
    int blen = snprintf(body, sizeof body,
                        "{\"channel\":\"%s:%lld\",\"data\":{\"seq\":%lld,\"t\":%" PRId64
                        ",\"pad\":\"%.*s\"}}",
                        run->prefix, seq % run->nchannels, seq, t, pad, dots);
    if (blen < 0 || (size_t)blen >= sizeof body)
        return 0;
    int n = snprintf(req, size,
                     "POST /v1/events HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                     "%sIdempotency-Key: %s-%lld\r\nContent-Length: %d\r\n\r\n%s",
                     run->ingest.host, run->ingest.port, run->auth_header, run->prefix, seq, blen,
                     body);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

static void pub_note_failure(cd_run_t *run, int status)
{
    int64_t now = hf_wall_us();
    if (!run->pub_first_fail_us)
        run->pub_first_fail_us = now;
    run->pub_last_fail_us = now;
    if (status == 0)
        run->pub_transport_errs++;
    else
        run->pub_status_5xx++;
}

/* Publishes one event until acknowledged, rejected or out of time. */
static void pub_event(cd_run_t *run, pub_conn_t *c, long long seq, int64_t deadline_mono)
{
    cd_publish_t *e = &run->events[seq];
    char req[4096], answer[512];
    run->pub_sent++;
    e->first_try_us = hf_wall_us();
    size_t reqlen = pub_request(run, seq, e->first_try_us, req, sizeof req);
    if (!reqlen) { /* the settings were checked: a prefix too long for the buffer */
        snprintf(run->pub_error, sizeof run->pub_error, "event %lld: request too large", seq);
        run->pub_failed++;
        return;
    }
    int64_t backoff = PUB_BACKOFF_MIN;
    while (!atomic_load(&run->interrupted)) {
        int status = pub_attempt(c, &run->ingest, req, reqlen, answer, sizeof answer);
        if (status == 200 || status == 201) {
            e->acked_us = hf_wall_us();
            run->pub_acked++;
            return;
        }
        if (status != 0 && status != 429 && status < 500) {
            snprintf(run->pub_error, sizeof run->pub_error, "event %lld: HTTP %d %.100s", seq,
                     status, answer);
            break;
        }
        pub_note_failure(run, status);
        if (hf_now_us() + backoff > deadline_mono)
            break;
        pub_sleep_us(backoff);
        run->pub_retries++;
        backoff = backoff * 2 > PUB_BACKOFF_MAX ? PUB_BACKOFF_MAX : backoff * 2;
    }
    run->pub_failed++;
}

static void *pub_main(void *arg)
{
    cd_run_t *run = arg;
    pub_conn_t conn = {.fd = -1};
    int64_t start = hf_now_us();
    int64_t deadline = start + (int64_t)((run->duration_s + run->retry_s) * 1e6);
    for (long long seq = 0; seq < run->nevents; seq++) {
        if (atomic_load(&run->interrupted) || run->pub_error[0] || hf_now_us() > deadline) {
            run->pub_failed += run->nevents - seq; /* never sent: the run fails */
            break;
        }
        pub_sleep_us(start + (int64_t)((double)seq * 1e6 / run->rate) - hf_now_us());
        pub_event(run, &conn, seq, deadline);
    }
    pub_close(&conn);
    atomic_store(&run->pub_done, true);
    return NULL;
}

int cd_publish_start(cd_run_t *run)
{
    /* The scenario's marks and stops are for the main thread: a signal
     * landing here would cut a blocking connect() short (EINTR) and fake a
     * transport error. The thread inherits this mask; main's is restored. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int err = pthread_create(&pub_thread, NULL, pub_main, run);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        fprintf(stderr, "holdfast-chaos-driver: publisher thread: %s\n", strerror(err));
        return -1;
    }
    return 0;
}

void cd_publish_join(void)
{
    pthread_join(pub_thread, NULL);
}
