/* listener.c - the shared listening socket and its accept loop; see listener.h. */
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "holdfast/alloc.h"
#include "holdfast/log.h"

#define LISTENER_PROTOCOL "holdfast-accept"
#define LISTENER_BACKLOG  4096
#define LISTENER_BATCH    256 /* accepts per wake-up, so one burst cannot starve the loop */
#define LISTENER_PAUSE_US (100 * 1000) /* out of descriptors, no spare: wait this long */

struct gw_listener {
    int fd;    /* -1 once libwebsockets owns it */
    int spare; /* /dev/null, given up to accept-and-close when out of descriptors */
    int port;
    gw_accept_fn accept_fn;
    void *accept_ctx;
    hf_metric_t *refused;
    time_t warned_at; /* the last out-of-descriptors warning (one a second at most) */
    struct lws *wsi;  /* the listening socket's, once attached */
    lws_sorted_usec_list_t resume;
};

static hf_err_t listener_resolve(const char *addr, int port, struct sockaddr_in *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &sa->sin_addr) == 1)
        return HF_OK;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(addr, NULL, &hints, &res);
    if (rc != 0 || !res) {
        hf_error("listen address %s: %s", addr, gai_strerror(rc));
        return HF_ERR_INVALID;
    }
    sa->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return HF_OK;
}

hf_err_t gw_listener_open(const char *addr, int port, gw_listener_t **out)
{
    struct sockaddr_in sa;
    hf_err_t err = listener_resolve(addr, port, &sa);
    if (err != HF_OK)
        return err;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        hf_error("socket: %s", strerror(errno));
        return HF_ERR_IO;
    }
    int one = 1;
    socklen_t len = sizeof sa;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        hf_error("cannot bind %s:%d: %s", addr, port, strerror(errno));
        close(fd);
        return HF_ERR_IO;
    }
    gw_listener_t *l = hf_calloc(1, sizeof *l);
    l->fd = fd;
    l->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    l->port = ntohs(sa.sin_port);
    *out = l;
    return HF_OK;
}

int gw_listener_port(const gw_listener_t *l)
{
    return l->port;
}

static void listener_warn(gw_listener_t *l, const char *what)
{
    time_t now = time(NULL);
    if (now != l->warned_at) {
        l->warned_at = now;
        hf_warn("out of file descriptors: %s (holdfast_gateway_accept_refused_total counts "
                "refused connections)",
                what);
    }
}

static void listener_resume(lws_sorted_usec_list_t *sul)
{
    gw_listener_t *l = lws_container_of(sul, gw_listener_t, resume);
    lws_rx_flow_control(l->wsi, 1);
}

/* Out of descriptors: the pending connection would keep the socket
 * readable and the loop spinning. Free the spare, take the connection and
 * close it (the client sees a reset, not a hang), then hold the spare
 * again - the technique of libuv and nginx. Another thread may take the
 * freed slot first; with no spare the socket is not watched for a moment
 * instead. */
static void listener_shed(gw_listener_t *l, int listen_fd)
{
    if (l->spare < 0)
        l->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (l->spare >= 0) {
        close(l->spare);
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            close(fd);
        l->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            hf_counter_inc(l->refused);
            listener_warn(l, "refusing connections");
            return;
        }
    }
    lws_rx_flow_control(l->wsi, 0);
    lws_sul_schedule(lws_get_context(l->wsi), 0, &l->resume, listener_resume, LISTENER_PAUSE_US);
    listener_warn(l, "not accepting for 100 ms");
}

static void listener_accept_batch(gw_listener_t *l, int listen_fd)
{
    for (int i = 0; i < LISTENER_BATCH; i++) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE)
                listener_shed(l, listen_fd);
            else if (errno != EAGAIN && errno != EWOULDBLOCK)
                hf_warn("accept: %s", strerror(errno));
            return;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        l->accept_fn(l->accept_ctx, fd);
    }
}

static int listener_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                             void *in, size_t len)
{
    (void)user;
    (void)in;
    (void)len;
    gw_listener_t *l = lws_get_opaque_user_data(wsi);
    if (reason == LWS_CALLBACK_RAW_RX_FILE && l)
        listener_accept_batch(l, lws_get_socket_fd(wsi));
    return 0;
}

struct lws_protocols gw_listener_protocol(void)
{
    struct lws_protocols p = {.name = LISTENER_PROTOCOL, .callback = listener_callback};
    return p;
}

hf_err_t gw_listener_attach(gw_listener_t *l, struct lws_vhost *vh, gw_accept_fn fn, void *ctx,
                            hf_metric_t *refused)
{
    l->accept_fn = fn;
    l->accept_ctx = ctx;
    l->refused = refused;
    if (listen(l->fd, LISTENER_BACKLOG) != 0) {
        hf_error("cannot listen on port %d: %s", l->port, strerror(errno));
        return HF_ERR_IO;
    }
    lws_adopt_desc_t desc = {
        .vh = vh,
        .type = LWS_ADOPT_RAW_FILE_DESC,
        .fd = {.filefd = l->fd},
        .vh_prot_name = LISTENER_PROTOCOL,
        .opaque = l,
    };
    l->wsi = lws_adopt_descriptor_vhost_via_info(&desc);
    if (!l->wsi) {
        hf_error("cannot watch the listening socket");
        return HF_ERR_INTERNAL;
    }
    l->fd = -1;
    return HF_OK;
}

void gw_listener_free(gw_listener_t *l)
{
    if (!l)
        return;
    if (l->fd >= 0)
        close(l->fd);
    if (l->spare >= 0)
        close(l->spare);
    hf_free(l);
}
