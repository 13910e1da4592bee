/* faultproxy.c - holdfast-faultproxy: a TCP proxy that injects latency, stalls and resets.
 *
 * Chaos scenarios need network faults between a Holdfast gateway (or relay) and Redis, and
 * the kernels we run on have no tc netem. So a scenario points the client at this proxy
 * instead of at Redis and switches faults on and off through a control port while traffic
 * flows. It is a test tool, never a network hop: it listens on loopback only and forwards
 * only to a target in 127.0.0.0/8.
 *
 * Startup: listen on --listen, open the control port, then print (stdout, flushed, one line
 * each)
 *     listen=127.0.0.1:PORT
 *     control=127.0.0.1:PORT
 * and, if asked, write the same two lines to --ready-file (tmp + rename, so its appearance
 * means "ready"). The file is removed again on a clean exit so a stale one never points at
 * dead ports.
 *
 * Forwarding: each accepted client gets its own non-blocking connection to the target. What
 * is read from one side is queued for the other as chunks, each stamped with the time it may
 * leave (read time + the delay in force when it was read), and sent in order. At most
 * FP_QUEUE_MAX bytes (chunk headers included) wait per direction and connection: when that
 * is full the proxy stops reading the sending side, so TCP backpressure reaches the sender
 * instead of the proxy growing. An EOF is passed on as a half-close (shutdown SHUT_WR) once
 * the data before it has gone, delayed like data; an error on either side resets both, so
 * the peer of a failed socket sees a failure too, not a clean end of stream.
 *
 * Control port: a line protocol on 127.0.0.1 only. One command per '\n'-terminated line (a
 * trailing '\r' is ignored), at most FP_LINE_MAX bytes; several commands per connection.
 * Each is answered by exactly one line, "ok ..." or "error ...":
 *     delay MS   from now on each chunk read is forwarded no earlier than MS ms (0..60000)
 *                after it was read, in both directions, order kept; 0 = no delay
 *     stall      forward nothing on any connection, current or new; sockets stay open and
 *                data stays queued (up to the bound, then backpressure)
 *     resume     undo stall: what was queued flows, in order, nothing lost
 *     reset      close every current proxied connection on both sides with RST
 *     refuse     accept new clients and reset them at once (the target is not contacted)
 *     accept     undo refuse
 *     normal     delay 0, resume and accept in one go
 *     status     ok mode=normal|delay+stall+refuse delay_ms=N connections=N accepted=N
 *                refused=N reset=N bytes_to_target=N bytes_to_client=N
 *                queued_to_target_max=N queued_to_client_max=N
 *                (bytes: forwarded since start; queued: the fullest connection's queue
 *                per direction now, chunk headers included, so at most FP_QUEUE_MAX)
 *     ping       ok pong
 * A longer line gets "error line too long" and the connection is closed. From bash:
 *     exec 3<>/dev/tcp/127.0.0.1/$PORT; printf 'stall\n' >&3; read -r reply <&3
 *
 * SIGTERM/SIGINT: close everything and exit 0. The signals are blocked and read through a
 * signalfd, so they are just one more epoll event. SIGPIPE is ignored (sends use
 * MSG_NOSIGNAL anyway). Timers need no timerfd: epoll_wait's timeout is computed from the
 * earliest pending chunk (CLOCK_MONOTONIC).
 *
 * Single-threaded, one epoll loop; all state lives in fp_daemon_t.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "holdfast/alloc.h"
#include "holdfast/clock.h"
#include "holdfast/config.h"
#include "holdfast/file.h"
#include "holdfast/log.h"

#define FP_QUEUE_MAX           (4u << 20)  /* bytes held per direction and connection */
#define FP_READ_MAX            (64u << 10) /* one recv, and so at most one chunk */
#define FP_READS_PER_EVENT     16          /* then let other connections have a turn */
#define FP_ACCEPTS_PER_EVENT   16
#define FP_CONNS_MAX           1000 /* beyond this new clients are reset, like "refuse" */
#define FP_LINE_MAX            256
#define FP_REPLY_MAX           320
#define FP_CONTROL_CLIENTS_MAX 8
#define FP_DELAY_MAX_MS        60000
#define FP_ACCEPT_PAUSE_NS     (100 * 1000000ull) /* after EMFILE, see fp_listener_pause */
#define FP_EVENTS_MAX          64
#define FP_NS_PER_MS           1000000ull
#define FP_NEVER               UINT64_MAX

enum { FP_EXIT_OK = 0, FP_EXIT_FAIL = 1, FP_EXIT_USAGE = 2 };

/* What an epoll event is about; epoll_event.data.ptr is always an fp_socket_t. */
typedef enum fp_socket_kind {
    FP_SOCKET_SIGNAL,
    FP_SOCKET_LISTENER,
    FP_SOCKET_CONTROL_LISTENER,
    FP_SOCKET_CONTROL_CLIENT,
    FP_SOCKET_CONN_CLIENT,
    FP_SOCKET_CONN_TARGET,
} fp_socket_kind_t;

typedef struct fp_socket {
    int fd;                /* -1 once closed */
    uint32_t events;       /* what epoll watches for; 0 = not in the epoll set at all */
    bool writable;         /* false after a send hit EAGAIN, until EPOLLOUT says otherwise */
    fp_socket_kind_t kind; /* how to dispatch its events */
    void *owner;           /* the fp_conn_t or fp_control_client_t it belongs to, or NULL */
} fp_socket_t;

/* Bytes read from one side, waiting to be written to the other. */
typedef struct fp_chunk {
    struct fp_chunk *next; /* the next chunk in the same direction, read later */
    uint64_t due_ns;       /* CLOCK_MONOTONIC time before which it must not be sent */
    size_t len;            /* bytes in data */
    size_t sent;           /* of which already written */
    char data[];
} fp_chunk_t;

/* One direction of a proxied connection. */
typedef struct fp_pipe {
    fp_socket_t *from;     /* read side */
    fp_socket_t *to;       /* write side */
    fp_chunk_t *head;      /* oldest queued chunk, sent first */
    fp_chunk_t *tail;      /* newest queued chunk */
    size_t held;           /* memory queued: chunk headers + unsent payload, <= FP_QUEUE_MAX */
    bool eof_read;         /* `from` sent FIN */
    uint64_t eof_due_ns;   /* when that FIN may be passed on (read time + delay) */
    bool eof_sent;         /* shutdown(to, SHUT_WR) done */
    uint64_t *bytes_total; /* the daemon's counter for this direction */
} fp_pipe_t;

typedef struct fp_conn {
    struct fp_conn *prev, *next; /* in fp_daemon_t.conns, or next in .dead once closed */
    uint64_t id;                 /* for logs */
    fp_socket_t client;          /* the accepted socket */
    fp_socket_t target;          /* our connection to the target */
    bool connecting;             /* target connect(2) still in progress */
    bool closed;                 /* sockets closed; freed at the end of the loop iteration */
    fp_pipe_t to_target;         /* client -> target */
    fp_pipe_t to_client;         /* target -> client */
} fp_conn_t;

typedef struct fp_control_client {
    fp_socket_t sock;       /* fd -1 when the slot is free */
    size_t len;             /* bytes in line */
    char line[FP_LINE_MAX]; /* partial command line */
} fp_control_client_t;

typedef struct fp_daemon {
    /* Configuration (fp_settings: defaults, env, then flags). */
    char *listen;                   /* HOST:PORT as given */
    char *target;                   /* HOST:PORT as given */
    long long control_port;         /* replaced by the real one after bind */
    char *ready_file;               /* NULL = none */
    struct sockaddr_in listen_addr; /* from listen; port replaced by the real one after bind */
    struct sockaddr_in target_addr; /* from target */
    /* Faults, set through the control port. */
    int delay_ms;  /* added to every chunk read from now on */
    bool stalled;  /* nothing is written to any proxied socket */
    bool refusing; /* new clients are reset at once */
    /* Runtime. */
    int epoll_fd;
    fp_socket_t signal;
    fp_socket_t listener;
    fp_socket_t control_listener;
    uint64_t listener_paused_until_ns; /* 0 = listening; see fp_listener_pause */
    bool ready_file_written;
    bool stop;
    fp_conn_t *conns;  /* live connections, doubly linked */
    fp_conn_t *dead;   /* closed during this iteration, freed at its end */
    size_t conn_count; /* entries in conns */
    uint64_t next_conn_id;
    fp_control_client_t control[FP_CONTROL_CLIENTS_MAX];
    /* Counters, for status. */
    uint64_t accepted, refused, reset, bytes_to_target, bytes_to_client;
    char scratch[FP_READ_MAX]; /* recv buffer, copied into an exactly sized chunk */
} fp_daemon_t;

/* ---- sockets ------------------------------------------------------------------------ */

static void fp_socket_init(fp_socket_t *s, fp_socket_kind_t kind, void *owner)
{
    *s = (fp_socket_t){.fd = -1, .writable = true, .kind = kind, .owner = owner};
}

/* Makes epoll watch s for exactly `events`. A socket with nothing to wait for is taken out
 * of the set altogether: epoll reports EPOLLHUP whatever the mask says, and a peer that hung
 * up while we hold back (stall, full queue) would otherwise spin the loop. */
static bool fp_socket_watch(fp_daemon_t *d, fp_socket_t *s, uint32_t events)
{
    if (s->fd < 0 || s->events == events)
        return true;
    int op = s->events == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    struct epoll_event ev = {.events = events, .data.ptr = s};
    if (epoll_ctl(d->epoll_fd, op, s->fd, &ev) != 0) {
        hf_error("epoll_ctl(fd %d): %s", s->fd, strerror(errno));
        return false;
    }
    s->events = events;
    return true;
}

/* Closes s; `abortive` makes the kernel send RST instead of FIN (SO_LINGER {1, 0}), which
 * is what "reset" and "refuse" are for. close() takes the fd out of the epoll set. */
static void fp_socket_close(fp_socket_t *s, bool abortive)
{
    if (s->fd < 0)
        return;
    if (abortive) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        if (setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) != 0)
            hf_warn("SO_LINGER on fd %d: %s (closing with FIN)", s->fd, strerror(errno));
    }
    if (close(s->fd) != 0)
        hf_debug("close(fd %d): %s", s->fd, strerror(errno));
    s->fd = -1;
    s->events = 0;
}

/* Latency is what this proxy controls; Nagle must not add its own on top. */
static void fp_socket_nodelay(int fd)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        hf_debug("TCP_NODELAY on fd %d: %s", fd, strerror(errno));
}

static int fp_socket_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        return errno;
    return err;
}

static const char *fp_addr_str(const struct sockaddr_in *sa, char *buf, size_t size)
{
    char host[INET_ADDRSTRLEN];
    if (!inet_ntop(AF_INET, &sa->sin_addr, host, sizeof host))
        snprintf(host, sizeof host, "?");
    snprintf(buf, size, "%s:%u", host, (unsigned)ntohs(sa->sin_port));
    return buf;
}

/* ---- configuration ------------------------------------------------------------------ */

/* Strict decimal within [min, max] (hf_config_parse_int), into an int. */
static bool fp_parse_int(const char *s, long min, long max, int *out)
{
    long long v;
    bool ok = hf_config_parse_int(s, min, max, &v) == HF_OK;
    *out = ok ? (int)v : *out;
    return ok;
}

/* HOST:PORT with HOST an IPv4 address in 127.0.0.0/8 or "localhost". Loopback only, so the
 * tool can never be turned into a relay to somewhere else by a wrong flag. */
static bool fp_parse_loopback(const char *flag, const char *val, int min_port,
                              struct sockaddr_in *out)
{
    const char *colon = strrchr(val, ':');
    char host[64];
    int port = 0;
    if (!colon || colon == val || (size_t)(colon - val) >= sizeof host ||
        !fp_parse_int(colon + 1, min_port, 65535, &port)) {
        fprintf(stderr,
                "holdfast-faultproxy: --%s '%s': expected HOST:PORT (IPv4 host, port %d..65535)\n",
                flag, val, min_port);
        return false;
    }
    memcpy(host, val, (size_t)(colon - val));
    host[colon - val] = '\0';
    *out = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (strcmp(host, "localhost") == 0) {
        out->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (inet_pton(AF_INET, host, &out->sin_addr) != 1) {
        fprintf(stderr, "holdfast-faultproxy: --%s '%s': '%s' is not an IPv4 address\n", flag, val,
                host);
        return false;
    }
    if ((ntohl(out->sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr,
                "holdfast-faultproxy: --%s '%s': host must be in 127.0.0.0/8 (loopback only)\n",
                flag, val);
        return false;
    }
    return true;
}

static const hf_conf_spec_t fp_settings[] = {
    {"listen", HF_CONF_STRING, offsetof(fp_daemon_t, listen), NULL, 0, 0,
     "HOST:PORT where clients connect (required); HOST in 127.0.0.0/8, PORT 0 = ephemeral"},
    {"target", HF_CONF_STRING, offsetof(fp_daemon_t, target), NULL, 0, 0,
     "HOST:PORT to forward to, e.g. Redis (required); HOST in 127.0.0.0/8"},
    {"control-port", HF_CONF_INT, offsetof(fp_daemon_t, control_port), "0", 0, 65535,
     "control port on 127.0.0.1 (0: an ephemeral one)"},
    {"ready-file", HF_CONF_STRING, offsetof(fp_daemon_t, ready_file), NULL, 0, 0,
     "written once ready (the same lines as stdout); removed on exit"},
};
#define FP_NSETTINGS (sizeof fp_settings / sizeof fp_settings[0])

static const char fp_usage[] =
    "usage: holdfast-faultproxy --listen 127.0.0.1:PORT --target 127.0.0.1:PORT [flags]\n"
    "\n"
    "Fault-injecting TCP proxy for chaos tests (loopback only).\n"
    "Prints 'listen=127.0.0.1:PORT' and 'control=127.0.0.1:PORT' on stdout when ready.\n"
    "SIGTERM/SIGINT exit 0.\n"
    "Control port: one command per line, answered by one line 'ok ...' or 'error ...':\n"
    "  delay MS | stall | resume | reset | refuse | accept | normal | status | ping\n"
    "MS is 0.." HF_CONF_STR(FP_DELAY_MAX_MS) ".";

/* Returns -1 to continue, otherwise the exit status (0 for --help, 2 for bad usage). */
static int fp_load_config(fp_daemon_t *d, int argc, char **argv)
{
    int rc = hf_config_load_tool("holdfast-faultproxy", fp_settings, FP_NSETTINGS, d, argc, argv,
                                 fp_usage);
    if (rc >= 0)
        return rc;
    if (!d->listen || !d->target) {
        fprintf(stderr, "holdfast-faultproxy: --listen and --target are required; see --help\n");
        return FP_EXIT_USAGE;
    }
    if (d->ready_file && d->ready_file[0] == '\0') {
        fprintf(stderr, "holdfast-faultproxy: --ready-file: empty path\n");
        return FP_EXIT_USAGE;
    }
    if (!fp_parse_loopback("listen", d->listen, 0, &d->listen_addr) ||
        !fp_parse_loopback("target", d->target, 1, &d->target_addr))
        return FP_EXIT_USAGE;
    return -1;
}

/* ---- startup ------------------------------------------------------------------------ */

static bool fp_open_signals(fp_daemon_t *d)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
        hf_error("sigprocmask: %s", strerror(errno));
        return false;
    }
    d->signal.fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (d->signal.fd < 0) {
        hf_error("signalfd: %s", strerror(errno));
        return false;
    }
    /* A peer hanging up while we write must not kill us. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        hf_error("ignoring SIGPIPE: %s", strerror(errno));
        return false;
    }
    return fp_socket_watch(d, &d->signal, EPOLLIN);
}

/* Binds a listening socket to *sa and writes the port actually bound back into it. */
static bool fp_listen_on(fp_daemon_t *d, fp_socket_t *s, struct sockaddr_in *sa, const char *what)
{
    char addr[64];
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s->fd < 0) {
        hf_error("%s socket: %s", what, strerror(errno));
        return false;
    }
    int one = 1;
    if (setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        hf_warn("%s SO_REUSEADDR: %s", what, strerror(errno));
    socklen_t len = sizeof *sa;
    if (bind(s->fd, (struct sockaddr *)sa, sizeof *sa) != 0 || listen(s->fd, 128) != 0 ||
        getsockname(s->fd, (struct sockaddr *)sa, &len) != 0) {
        hf_error("%s on %s: %s", what, fp_addr_str(sa, addr, sizeof addr), strerror(errno));
        return false;
    }
    return fp_socket_watch(d, s, EPOLLIN);
}

static bool fp_open_listeners(fp_daemon_t *d)
{
    if (!fp_listen_on(d, &d->listener, &d->listen_addr, "listener"))
        return false;
    /* Forwarding to ourselves would loop every byte until memory runs out. */
    if (d->listen_addr.sin_addr.s_addr == d->target_addr.sin_addr.s_addr &&
        d->listen_addr.sin_port == d->target_addr.sin_port) {
        hf_error("the target is the proxy's own listen address");
        return false;
    }
    struct sockaddr_in ctl = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->control_port)};
    ctl.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!fp_listen_on(d, &d->control_listener, &ctl, "control port"))
        return false;
    d->control_port = ntohs(ctl.sin_port);
    return true;
}

static bool fp_write_ready_file(fp_daemon_t *d, const char *lines)
{
    if (hf_file_write_atomic(d->ready_file, lines) != HF_OK)
        return false;
    d->ready_file_written = true;
    return true;
}

static bool fp_announce(fp_daemon_t *d)
{
    char listen[64], target[64], lines[160];
    fp_addr_str(&d->listen_addr, listen, sizeof listen);
    fp_addr_str(&d->target_addr, target, sizeof target);
    snprintf(lines, sizeof lines, "listen=%s\ncontrol=127.0.0.1:%lld\n", listen, d->control_port);
    if (fputs(lines, stdout) < 0 || fflush(stdout) != 0)
        hf_warn("stdout: %s", strerror(errno)); /* nobody reading is not fatal */
    hf_info("ready: listen=%s target=%s control=127.0.0.1:%lld", listen, target, d->control_port);
    /* Last, so the file appearing means the stdout lines and both ports are ready too. */
    return !d->ready_file || fp_write_ready_file(d, lines);
}

/* ---- one direction of a connection -------------------------------------------------- */

static void fp_pipe_init(fp_pipe_t *p, fp_socket_t *from, fp_socket_t *to, uint64_t *bytes_total)
{
    *p = (fp_pipe_t){.from = from, .to = to, .bytes_total = bytes_total};
}

static void fp_pipe_free(fp_pipe_t *p)
{
    while (p->head) {
        fp_chunk_t *next = p->head->next;
        hf_free(p->head);
        p->head = next;
    }
    p->tail = NULL;
    p->held = 0;
}

/* Room left for one more chunk's payload under the FP_QUEUE_MAX bound. */
static size_t fp_pipe_room(const fp_pipe_t *p)
{
    size_t need = p->held + sizeof(fp_chunk_t);
    size_t room = need < FP_QUEUE_MAX ? FP_QUEUE_MAX - need : 0;
    return room < FP_READ_MAX ? room : FP_READ_MAX;
}

static bool fp_pipe_can_read(const fp_pipe_t *p)
{
    return p->from->fd >= 0 && !p->eof_read && fp_pipe_room(p) > 0;
}

static void fp_pipe_push(fp_pipe_t *p, const char *data, size_t len, uint64_t due_ns)
{
    fp_chunk_t *ch = hf_malloc(sizeof *ch + len);
    *ch = (fp_chunk_t){.due_ns = due_ns, .len = len};
    memcpy(ch->data, data, len);
    if (p->tail)
        p->tail->next = ch;
    else
        p->head = ch;
    p->tail = ch;
    p->held += sizeof *ch + len;
}

static void fp_pipe_pop(fp_pipe_t *p)
{
    fp_chunk_t *ch = p->head;
    p->head = ch->next;
    if (!p->head)
        p->tail = NULL;
    p->held -= sizeof *ch; /* the payload was taken off as it was sent */
    hf_free(ch);
}

/* The time a chunk read now may leave. */
static uint64_t fp_due(const fp_daemon_t *d)
{
    return (uint64_t)hf_now_ns() + (uint64_t)d->delay_ms * FP_NS_PER_MS;
}

/* ---- connections -------------------------------------------------------------------- */

/* Closes both sides at once (RST on both when `abortive`); the memory goes on the dead
 * list, because later events of the same epoll batch may still point at it. */
static void fp_conn_close(fp_daemon_t *d, fp_conn_t *c, bool abortive, const char *why)
{
    if (c->closed)
        return;
    hf_debug("conn %llu closed (%s), dropping %zu/%zu bytes queued to target/client",
             (unsigned long long)c->id, why, c->to_target.held, c->to_client.held);
    fp_socket_close(&c->client, abortive);
    fp_socket_close(&c->target, abortive);
    c->closed = true;
    if (c->prev)
        c->prev->next = c->next;
    else
        d->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = NULL;
    c->next = d->dead;
    d->dead = c;
    d->conn_count--;
}

static void fp_conn_free(fp_conn_t *c)
{
    fp_pipe_free(&c->to_target);
    fp_pipe_free(&c->to_client);
    hf_free(c);
}

static void fp_conns_free_dead(fp_daemon_t *d)
{
    while (d->dead) {
        fp_conn_t *next = d->dead->next;
        fp_conn_free(d->dead);
        d->dead = next;
    }
}

/* Starts the connection to the target; false (client untouched) if it failed at once. */
static bool fp_conn_connect(fp_daemon_t *d, fp_conn_t *c)
{
    c->target.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->target.fd < 0) {
        hf_warn("conn %llu: target socket: %s", (unsigned long long)c->id, strerror(errno));
        return false;
    }
    fp_socket_nodelay(c->target.fd);
    if (connect(c->target.fd, (struct sockaddr *)&d->target_addr, sizeof d->target_addr) == 0)
        return true;
    if (errno == EINPROGRESS) {
        c->connecting = true;
        return true;
    }
    char target[64];
    hf_warn("conn %llu: connecting to %s: %s", (unsigned long long)c->id,
            fp_addr_str(&d->target_addr, target, sizeof target), strerror(errno));
    return false;
}

/* Takes ownership of client_fd: it ends up in a new connection or closed. */
static void fp_conn_open(fp_daemon_t *d, int client_fd)
{
    fp_conn_t *c = hf_calloc(1, sizeof *c);
    c->id = ++d->next_conn_id;
    fp_socket_init(&c->client, FP_SOCKET_CONN_CLIENT, c);
    fp_socket_init(&c->target, FP_SOCKET_CONN_TARGET, c);
    c->client.fd = client_fd;
    fp_socket_nodelay(client_fd);
    fp_pipe_init(&c->to_target, &c->client, &c->target, &d->bytes_to_target);
    fp_pipe_init(&c->to_client, &c->target, &c->client, &d->bytes_to_client);
    /* Linked in first so that fp_conn_close can take it out again on any failure. */
    c->next = d->conns;
    if (d->conns)
        d->conns->prev = c;
    d->conns = c;
    d->conn_count++;
    if (!fp_conn_connect(d, c)) {
        /* The client sees what it would have seen from the target: a reset. */
        fp_conn_close(d, c, true, "target unreachable");
        return;
    }
    hf_debug("conn %llu opened%s", (unsigned long long)c->id, c->connecting ? " (connecting)" : "");
}

static void fp_conn_finish_connect(fp_daemon_t *d, fp_conn_t *c)
{
    int err = fp_socket_error(c->target.fd);
    if (err) {
        char target[64];
        hf_warn("conn %llu: connecting to %s: %s", (unsigned long long)c->id,
                fp_addr_str(&d->target_addr, target, sizeof target), strerror(err));
        fp_conn_close(d, c, true, "target unreachable");
        return;
    }
    c->connecting = false;
    c->target.writable = true;
}

/* Reads what `p->from` has into chunks, up to the bound; the rest waits in the kernel, which
 * is the backpressure on the sender. */
static void fp_conn_read(fp_daemon_t *d, fp_conn_t *c, fp_pipe_t *p)
{
    for (int i = 0; i < FP_READS_PER_EVENT && !c->closed && fp_pipe_can_read(p); i++) {
        ssize_t n = recv(p->from->fd, d->scratch, fp_pipe_room(p), 0);
        if (n > 0) {
            fp_pipe_push(p, d->scratch, (size_t)n, fp_due(d));
        } else if (n == 0) {
            p->eof_read = true;
            p->eof_due_ns = fp_due(d);
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else if (errno != EINTR) {
            hf_debug("conn %llu: recv: %s", (unsigned long long)c->id, strerror(errno));
            fp_conn_close(d, c, true, "read error");
        }
    }
}

static void fp_conn_on_event(fp_daemon_t *d, fp_conn_t *c, fp_socket_t *s, uint32_t events)
{
    if (c->closed)
        return; /* closed earlier in this batch */
    if (s == &c->target && c->connecting) {
        fp_conn_finish_connect(d, c);
        return;
    }
    if (events & EPOLLERR) {
        int err = fp_socket_error(s->fd);
        hf_debug("conn %llu: %s socket: %s", (unsigned long long)c->id,
                 s == &c->client ? "client" : "target", strerror(err));
        fp_conn_close(d, c, true, "socket error");
        return;
    }
    /* After a hang-up a send fails at once, which is how a pending write learns of it;
     * waiting for an EPOLLOUT that might not come would make epoll report the hang-up
     * again and again. */
    if (events & (EPOLLOUT | EPOLLHUP))
        s->writable = true;
    /* A hang-up is read like data: recv returns what is left, then 0 or the error. */
    if (events & (EPOLLIN | EPOLLHUP))
        fp_conn_read(d, c, s == &c->client ? &c->to_target : &c->to_client);
}

/* Writes every chunk whose time has come, oldest first, then passes the EOF on once nothing
 * is left before it. Returns false if the connection was closed. */
static bool fp_conn_forward(fp_daemon_t *d, fp_conn_t *c, fp_pipe_t *p, uint64_t now)
{
    if (d->stalled || c->connecting)
        return true;
    while (p->head && p->head->due_ns <= now && p->to->writable) {
        fp_chunk_t *ch = p->head;
        ssize_t n = send(p->to->fd, ch->data + ch->sent, ch->len - ch->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                p->to->writable = false; /* until EPOLLOUT */
                break;
            }
            if (errno == EINTR)
                continue;
            hf_debug("conn %llu: send: %s", (unsigned long long)c->id, strerror(errno));
            fp_conn_close(d, c, true, "write error");
            return false;
        }
        ch->sent += (size_t)n;
        p->held -= (size_t)n;
        *p->bytes_total += (uint64_t)n;
        if (ch->sent == ch->len)
            fp_pipe_pop(p);
    }
    if (!p->head && p->eof_read && !p->eof_sent && p->eof_due_ns <= now) {
        if (shutdown(p->to->fd, SHUT_WR) != 0) {
            hf_debug("conn %llu: shutdown: %s", (unsigned long long)c->id, strerror(errno));
            fp_conn_close(d, c, true, "shutdown error");
            return false;
        }
        p->eof_sent = true;
    }
    return true;
}

/* Whether p waits for its destination to accept more (and so wants EPOLLOUT): only after a
 * send hit EAGAIN with data due; data not yet due waits for the timer instead. */
static bool fp_pipe_wants_write(const fp_daemon_t *d, const fp_conn_t *c, const fp_pipe_t *p,
                                uint64_t now)
{
    return !d->stalled && !c->connecting && p->head && p->head->due_ns <= now && !p->to->writable;
}

/* When p next needs the loop to wake up without any socket event; FP_NEVER if it does not
 * (nothing queued, stalled, or waiting for EPOLLOUT). */
static uint64_t fp_pipe_next_due(const fp_daemon_t *d, const fp_conn_t *c, const fp_pipe_t *p,
                                 uint64_t now)
{
    if (d->stalled || c->connecting)
        return FP_NEVER;
    uint64_t due = p->head                       ? p->head->due_ns
                   : p->eof_read && !p->eof_sent ? p->eof_due_ns
                                                 : FP_NEVER;
    return due > now ? due : FP_NEVER;
}

static bool fp_conn_watch(fp_daemon_t *d, fp_conn_t *c, uint64_t now)
{
    uint32_t client = (fp_pipe_can_read(&c->to_target) ? EPOLLIN : 0) |
                      (fp_pipe_wants_write(d, c, &c->to_client, now) ? EPOLLOUT : 0);
    uint32_t target = c->connecting
                          ? EPOLLOUT
                          : (fp_pipe_can_read(&c->to_client) ? EPOLLIN : 0) |
                                (fp_pipe_wants_write(d, c, &c->to_target, now) ? EPOLLOUT : 0);
    return fp_socket_watch(d, &c->client, client) && fp_socket_watch(d, &c->target, target);
}

/* Moves everything that is due on c, closes it once both directions have ended, and points
 * epoll at what c waits for next. Returns when c next needs a timer wake-up. */
static uint64_t fp_conn_pump(fp_daemon_t *d, fp_conn_t *c, uint64_t now)
{
    if (!fp_conn_forward(d, c, &c->to_target, now) || !fp_conn_forward(d, c, &c->to_client, now))
        return FP_NEVER;
    if (c->to_target.eof_sent && c->to_client.eof_sent) {
        fp_conn_close(d, c, false, "both sides done");
        return FP_NEVER;
    }
    if (!fp_conn_watch(d, c, now)) {
        fp_conn_close(d, c, true, "epoll failed");
        return FP_NEVER;
    }
    uint64_t a = fp_pipe_next_due(d, c, &c->to_target, now);
    uint64_t b = fp_pipe_next_due(d, c, &c->to_client, now);
    return a < b ? a : b;
}

/* Every connection, every loop iteration: with few connections (a chaos test) this is cheap,
 * and it keeps the timer logic in one place instead of a heap of deadlines. */
static uint64_t fp_conns_pump(fp_daemon_t *d)
{
    uint64_t now = (uint64_t)hf_now_ns(), next = FP_NEVER;
    for (fp_conn_t *c = d->conns, *after; c; c = after) {
        after = c->next; /* c may close and move to the dead list */
        uint64_t due = fp_conn_pump(d, c, now);
        if (due < next)
            next = due;
    }
    return next;
}

static size_t fp_conns_reset(fp_daemon_t *d)
{
    size_t n = 0;
    while (d->conns) {
        fp_conn_close(d, d->conns, true, "reset");
        n++;
    }
    return n;
}

/* ---- the client listener ------------------------------------------------------------ */

/* Out of descriptors: the pending connection cannot be accepted and the level-triggered
 * listener would wake us forever, so stop watching it for a moment. */
static void fp_listener_pause(fp_daemon_t *d)
{
    hf_warn("accept: %s; pausing the listener for %llu ms", strerror(errno),
            FP_ACCEPT_PAUSE_NS / FP_NS_PER_MS);
    if (fp_socket_watch(d, &d->listener, 0))
        d->listener_paused_until_ns = (uint64_t)hf_now_ns() + FP_ACCEPT_PAUSE_NS;
}

static void fp_listener_unpause(fp_daemon_t *d)
{
    if (d->listener_paused_until_ns && (uint64_t)hf_now_ns() >= d->listener_paused_until_ns &&
        fp_socket_watch(d, &d->listener, EPOLLIN))
        d->listener_paused_until_ns = 0;
}

static void fp_listener_accept(fp_daemon_t *d)
{
    for (int i = 0; i < FP_ACCEPTS_PER_EVENT; i++) {
        int fd = accept4(d->listener.fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                fp_listener_pause(d);
            else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                     errno != ECONNABORTED)
                hf_warn("accept: %s", strerror(errno));
            return;
        }
        d->accepted++;
        if (d->refusing || d->conn_count >= FP_CONNS_MAX) {
            fp_socket_t s = {.fd = fd};
            fp_socket_close(&s, true);
            d->refused++;
            continue;
        }
        fp_conn_open(d, fd);
    }
}

/* ---- control protocol --------------------------------------------------------------- */

/* "normal", or the faults in force joined by '+' (e.g. "delay+stall"). */
static const char *fp_mode_str(const fp_daemon_t *d, char *buf, size_t size)
{
    const char *faults[] = {d->delay_ms ? "delay" : NULL, d->stalled ? "stall" : NULL,
                            d->refusing ? "refuse" : NULL};
    size_t len = 0;
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        int n = faults[i] ? snprintf(buf + len, size - len, "%s%s", len ? "+" : "", faults[i]) : 0;
        if (n > 0 && (size_t)n < size - len)
            len += (size_t)n;
    }
    return len ? buf : "normal";
}

/* Each command's handler writes the reply (without "ok "); `ms` is the parsed argument of
 * the commands that take one. */
typedef void (*fp_control_fn)(fp_daemon_t *d, int ms, char *reply, size_t size);

static void fp_control_delay(fp_daemon_t *d, int ms, char *reply, size_t size)
{
    d->delay_ms = ms;
    snprintf(reply, size, "delay_ms=%d", ms);
}

static void fp_control_stall(fp_daemon_t *d, int ms, char *reply, size_t size)
{
    d->stalled = true;
    snprintf(reply, size, "stalled");
}

static void fp_control_resume(fp_daemon_t *d, int ms, char *reply, size_t size)
{
    d->stalled = false; /* the pump after this batch sends what waited */
    snprintf(reply, size, "resumed");
}

static void fp_control_reset(fp_daemon_t *d, int ms, char *reply, size_t size)
{
    size_t n = fp_conns_reset(d);
    d->reset += n;
    snprintf(reply, size, "reset connections=%zu", n);
}

static void fp_control_refuse(fp_daemon_t *d, int ms, char *reply, size_t size)
{
    d->refusing = true;
    snprintf(reply, size, "refusing");
}

static void fp_control_accept(fp_daemon_t *d, int ms, char *reply, size_t size)
{
    d->refusing = false;
    snprintf(reply, size, "accepting");
}

static void fp_control_normal(fp_daemon_t *d, int ms, char *reply, size_t size)
{
    d->delay_ms = 0;
    d->stalled = false;
    d->refusing = false;
    snprintf(reply, size, "normal");
}

/* The largest queue of any one connection per direction, so a test can see the bound. */
static void fp_conns_queued_max(const fp_daemon_t *d, size_t *to_target, size_t *to_client)
{
    *to_target = *to_client = 0;
    for (const fp_conn_t *c = d->conns; c; c = c->next) {
        if (c->to_target.held > *to_target)
            *to_target = c->to_target.held;
        if (c->to_client.held > *to_client)
            *to_client = c->to_client.held;
    }
}

static void fp_control_status(fp_daemon_t *d, int ms, char *reply, size_t size)
{
    char mode_buf[32];
    const char *mode = fp_mode_str(d, mode_buf, sizeof mode_buf);
    size_t queued_to_target, queued_to_client;
    fp_conns_queued_max(d, &queued_to_target, &queued_to_client);
    snprintf(reply, size,
             "mode=%s delay_ms=%d connections=%zu accepted=%llu refused=%llu reset=%llu "
             "bytes_to_target=%llu bytes_to_client=%llu queued_to_target_max=%zu "
             "queued_to_client_max=%zu",
             mode, d->delay_ms, d->conn_count, (unsigned long long)d->accepted,
             (unsigned long long)d->refused, (unsigned long long)d->reset,
             (unsigned long long)d->bytes_to_target, (unsigned long long)d->bytes_to_client,
             queued_to_target, queued_to_client);
}

static void fp_control_ping(fp_daemon_t *d, int ms, char *reply, size_t size)
{
    snprintf(reply, size, "pong");
}

typedef struct fp_control_command {
    const char *name;
    bool takes_ms; /* exactly one argument, MS in 0..FP_DELAY_MAX_MS; otherwise none */
    fp_control_fn run;
} fp_control_command_t;

static const fp_control_command_t fp_control_commands[] = {
    {"delay", true, fp_control_delay},    {"stall", false, fp_control_stall},
    {"resume", false, fp_control_resume}, {"reset", false, fp_control_reset},
    {"refuse", false, fp_control_refuse}, {"accept", false, fp_control_accept},
    {"normal", false, fp_control_normal}, {"status", false, fp_control_status},
    {"ping", false, fp_control_ping},
};
#define FP_NCOMMANDS (sizeof fp_control_commands / sizeof fp_control_commands[0])

/* Executes one command line; writes the whole reply line, "ok ..." or "error ...". */
static void fp_control_execute(fp_daemon_t *d, char *line, char *out, size_t size)
{
    char *save = NULL;
    char *name = strtok_r(line, " \t", &save);
    char *arg = strtok_r(NULL, " \t", &save);
    char *extra = strtok_r(NULL, " \t", &save);
    if (!name) {
        snprintf(out, size, "error empty command\n");
        return;
    }
    const fp_control_command_t *cmd = NULL;
    for (size_t i = 0; i < FP_NCOMMANDS && !cmd; i++)
        if (strcmp(name, fp_control_commands[i].name) == 0)
            cmd = &fp_control_commands[i];
    if (!cmd) {
        snprintf(out, size,
                 "error unknown command '%.32s' (delay MS, stall, resume, reset, refuse, "
                 "accept, normal, status, ping)\n",
                 name);
        return;
    }
    int ms = 0;
    if (cmd->takes_ms && (extra || !fp_parse_int(arg, 0, FP_DELAY_MAX_MS, &ms))) {
        snprintf(out, size, "error usage: %s MS (MS 0..%d)\n", cmd->name, FP_DELAY_MAX_MS);
        return;
    }
    if (!cmd->takes_ms && arg) {
        snprintf(out, size, "error %s takes no argument\n", cmd->name);
        return;
    }
    char reply[FP_REPLY_MAX - 8];
    cmd->run(d, ms, reply, sizeof reply);
    snprintf(out, size, "ok %s\n", reply);
    if (strcmp(cmd->name, "status") != 0 && strcmp(cmd->name, "ping") != 0)
        hf_info("control: %s%s%s -> %s", cmd->name, arg ? " " : "", arg ? arg : "", reply);
}

static void fp_control_reply(fp_control_client_t *cl, const char *msg)
{
    /* Replies are tiny; a client that does not read them just loses them. */
    if (send(cl->sock.fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        hf_debug("control reply lost: %s", strerror(errno));
}

static void fp_control_close(fp_control_client_t *cl)
{
    fp_socket_close(&cl->sock, false);
    cl->len = 0;
}

/* Closing with unread input makes the kernel send RST, which can destroy our error reply
 * before the client reads it; so send FIN first and discard what already arrived. */
static void fp_control_drain_close(fp_control_client_t *cl)
{
    char scratch[4096];
    if (shutdown(cl->sock.fd, SHUT_WR) != 0)
        hf_debug("control shutdown: %s", strerror(errno));
    for (int i = 0; i < 16 && recv(cl->sock.fd, scratch, sizeof scratch, MSG_DONTWAIT) > 0; i++)
        continue;
    fp_control_close(cl);
}

/* Runs every complete line in the buffer, keeps the partial rest. */
static void fp_control_lines(fp_daemon_t *d, fp_control_client_t *cl)
{
    char *nl;
    while (cl->sock.fd >= 0 && (nl = memchr(cl->line, '\n', cl->len)) != NULL) {
        size_t n = (size_t)(nl - cl->line);
        *nl = '\0';
        if (n > 0 && cl->line[n - 1] == '\r')
            cl->line[n - 1] = '\0';
        char out[FP_REPLY_MAX];
        fp_control_execute(d, cl->line, out, sizeof out);
        fp_control_reply(cl, out);
        cl->len -= n + 1;
        memmove(cl->line, nl + 1, cl->len);
    }
    if (cl->sock.fd >= 0 && cl->len == sizeof cl->line) {
        fp_control_reply(cl, "error line too long\n");
        fp_control_drain_close(cl);
    }
}

static void fp_control_read(fp_daemon_t *d, fp_control_client_t *cl)
{
    if (cl->sock.fd < 0)
        return; /* closed earlier in this batch */
    ssize_t n = recv(cl->sock.fd, cl->line + cl->len, sizeof cl->line - cl->len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        /* EOF or error; an unterminated last line is dropped, commands need '\n'. */
        fp_control_close(cl);
        return;
    }
    cl->len += (size_t)n;
    fp_control_lines(d, cl);
}

static void fp_control_accept_client(fp_daemon_t *d)
{
    int fd = accept4(d->control_listener.fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
            hf_warn("control accept: %s", strerror(errno));
        return;
    }
    for (int i = 0; i < FP_CONTROL_CLIENTS_MAX; i++) {
        fp_control_client_t *cl = &d->control[i];
        if (cl->sock.fd >= 0)
            continue;
        cl->sock.fd = fd;
        cl->len = 0;
        if (!fp_socket_watch(d, &cl->sock, EPOLLIN))
            fp_control_close(cl);
        return;
    }
    fp_control_client_t busy = {.sock = {.fd = fd}};
    fp_control_reply(&busy, "error too many control clients\n");
    fp_socket_close(&busy.sock, false);
}

/* ---- main loop ---------------------------------------------------------------------- */

static void fp_signal_read(fp_daemon_t *d)
{
    struct signalfd_siginfo si;
    while (read(d->signal.fd, &si, sizeof si) == (ssize_t)sizeof si) {
        hf_info("received %s, shutting down", strsignal((int)si.ssi_signo));
        d->stop = true;
    }
}

static void fp_dispatch(fp_daemon_t *d, fp_socket_t *s, uint32_t events)
{
    switch (s->kind) {
    case FP_SOCKET_SIGNAL:
        fp_signal_read(d);
        break;
    case FP_SOCKET_LISTENER:
        fp_listener_accept(d);
        break;
    case FP_SOCKET_CONTROL_LISTENER:
        fp_control_accept_client(d);
        break;
    case FP_SOCKET_CONTROL_CLIENT:
        fp_control_read(d, s->owner);
        break;
    case FP_SOCKET_CONN_CLIENT:
    case FP_SOCKET_CONN_TARGET:
        fp_conn_on_event(d, s->owner, s, events);
        break;
    }
}

/* epoll_wait's timeout for the earliest of `next_due` and the listener's pause, rounded
 * up so that a chunk is never found "not quite due" on waking. */
static int fp_timeout_ms(const fp_daemon_t *d, uint64_t next_due)
{
    if (d->listener_paused_until_ns && d->listener_paused_until_ns < next_due)
        next_due = d->listener_paused_until_ns;
    if (next_due == FP_NEVER)
        return -1;
    uint64_t now = (uint64_t)hf_now_ns();
    if (next_due <= now)
        return 0;
    uint64_t ms = (next_due - now + FP_NS_PER_MS - 1) / FP_NS_PER_MS;
    return ms > (uint64_t)FP_DELAY_MAX_MS ? FP_DELAY_MAX_MS : (int)ms;
}

static int fp_run(fp_daemon_t *d)
{
    struct epoll_event events[FP_EVENTS_MAX];
    uint64_t next_due = FP_NEVER;
    while (!d->stop) {
        int n = epoll_wait(d->epoll_fd, events, FP_EVENTS_MAX, fp_timeout_ms(d, next_due));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            hf_error("epoll_wait: %s", strerror(errno));
            return FP_EXIT_FAIL;
        }
        for (int i = 0; i < n; i++)
            fp_dispatch(d, events[i].data.ptr, events[i].events);
        fp_listener_unpause(d);
        next_due = fp_conns_pump(d);
        fp_conns_free_dead(d);
    }
    return FP_EXIT_OK;
}

static void fp_init(fp_daemon_t *d)
{
    memset(d, 0, sizeof *d); /* scratch included, so an uninitialised read never shows up */
    d->epoll_fd = -1;
    fp_socket_init(&d->signal, FP_SOCKET_SIGNAL, NULL);
    fp_socket_init(&d->listener, FP_SOCKET_LISTENER, NULL);
    fp_socket_init(&d->control_listener, FP_SOCKET_CONTROL_LISTENER, NULL);
    for (int i = 0; i < FP_CONTROL_CLIENTS_MAX; i++)
        fp_socket_init(&d->control[i].sock, FP_SOCKET_CONTROL_CLIENT, &d->control[i]);
}

static bool fp_open_epoll(fp_daemon_t *d)
{
    d->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (d->epoll_fd < 0)
        hf_error("epoll_create1: %s", strerror(errno));
    return d->epoll_fd >= 0;
}

static void fp_destroy(fp_daemon_t *d)
{
    while (d->conns)
        fp_conn_close(d, d->conns, false, "shutting down");
    fp_conns_free_dead(d);
    for (int i = 0; i < FP_CONTROL_CLIENTS_MAX; i++)
        fp_control_close(&d->control[i]);
    fp_socket_close(&d->listener, false);
    fp_socket_close(&d->control_listener, false);
    if (d->ready_file_written && unlink(d->ready_file) != 0)
        hf_warn("removing %s: %s", d->ready_file, strerror(errno));
    if (d->signal.fd >= 0 && close(d->signal.fd) != 0)
        hf_debug("close(signalfd): %s", strerror(errno));
    if (d->epoll_fd >= 0 && close(d->epoll_fd) != 0)
        hf_debug("close(epoll): %s", strerror(errno));
    hf_config_free(fp_settings, FP_NSETTINGS, d);
}

int main(int argc, char **argv)
{
    /* Static: the daemon holds a 64 KiB read buffer. */
    static fp_daemon_t fp_state;
    fp_daemon_t *d = &fp_state;
    fp_init(d);
    int rc = fp_load_config(d, argc, argv);
    if (rc >= 0) {
        hf_config_free(fp_settings, FP_NSETTINGS, d);
        return rc;
    }
    hf_log_init("faultproxy", HF_LOG_INFO);

    rc = FP_EXIT_FAIL;
    if (fp_open_epoll(d) && fp_open_signals(d) && fp_open_listeners(d) && fp_announce(d))
        rc = fp_run(d);
    fp_destroy(d);
    hf_info("exited with status %d", rc);
    return rc;
}
