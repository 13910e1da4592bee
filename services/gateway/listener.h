/* listener.h - the gateway's listening socket, shared by its workers.
 *
 * Owns the listening TCP socket, a spare descriptor held for the moment
 * the process runs out of them, and the accept loop. libwebsockets as
 * packaged (LWS_MAX_SMP 1) serves one context per thread and sets
 * SO_REUSEPORT only for its own service threads, so contexts cannot share
 * a port: the gateway accepts itself. The socket is adopted into worker
 * 0's context as a raw descriptor; every accepted connection is handed to
 * the callback, which gives it to the next worker (gw_conn_adopt). The
 * port is bound at open but listened on only at attach, once every worker
 * is ready: until then connections are refused, not left hanging.
 *
 * Ownership: the listener owns the socket until gw_listener_attach() hands
 * it to libwebsockets, which closes it with that context;
 * gw_listener_free() closes what it still owns. */
#ifndef HOLDFAST_GW_LISTENER_H
#define HOLDFAST_GW_LISTENER_H

#include <libwebsockets.h>

#include "holdfast/err.h"
#include "holdfast/metrics.h"

typedef struct gw_listener gw_listener_t;

/* Takes ownership of fd, a connected, non-blocking client socket. */
typedef void (*gw_accept_fn)(void *ctx, int fd);

/* Binds addr:port (port 0: any free one). */
hf_err_t gw_listener_open(const char *addr, int port, gw_listener_t **out);
int gw_listener_port(const gw_listener_t *l);
/* The raw protocol the listener's descriptor is bound to; put it in the
 * protocol list of the context passed to gw_listener_attach(). */
struct lws_protocols gw_listener_protocol(void);
/* Listens and starts accepting on vh's service thread. refused counts
 * connections closed at once because the process had no descriptor left. */
hf_err_t gw_listener_attach(gw_listener_t *l, struct lws_vhost *vh, gw_accept_fn fn, void *ctx,
                            hf_metric_t *refused);
void gw_listener_free(gw_listener_t *l);

#endif
