/* http.h - the HTTP server side every Holdfast service shares, on libwebsockets.
 *
 * Owns: per-request state (method, path, query, the headers Holdfast reads,
 * the body up to a size limit), routing through the daemon's static route
 * table, the JSON error shape, the operational endpoints every service has
 * (/livez, /healthz, /readyz, /metrics), CORS (preflights answered here,
 * the headers on every response; policy in http_parse.h), and responses
 * produced on any thread.
 *
 * Threading: everything runs on the lws service thread except
 * hf_http_respond() (and the helpers built on it), which any thread may
 * call once per request: the response is queued and the lws thread is
 * woken to write it.
 *
 * Ownership: the server owns every hf_http_req_t. A handler may keep the
 * pointer until it calls hf_http_respond(); after that the request may be
 * freed at any moment. If the client goes away first, the request stays
 * valid until responded (the response is then dropped). */
#ifndef HOLDFAST_HTTP_H
#define HOLDFAST_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <libwebsockets.h>

#include "holdfast/metrics.h"

typedef struct hf_http_server hf_http_server_t;
typedef struct hf_http_req hf_http_req_t;

/* Called on the lws thread once the request (and its body, for routes
 * that take one) has arrived. Must eventually call hf_http_respond(). */
typedef void (*hf_http_handler_fn)(hf_http_req_t *req, void *ctx);

/* Called on the lws thread once a body-taking route's headers are in,
 * before any of its body is read or room is reserved for it. Return true
 * to read the body; or answer (hf_http_respond*) and return false: the
 * connection then closes after the answer, so the unread body is never
 * taken for a next request. This is where credentials and memory budgets
 * are checked: a client that may not publish costs no body buffer. */
typedef bool (*hf_http_admit_fn)(hf_http_req_t *req, void *ctx);

/* /readyz asks this; return false and fill why to answer 503. */
typedef bool (*hf_http_ready_fn)(void *ctx, char *why, size_t why_size);

typedef struct hf_http_route {
    const char *method;         /* "GET", "POST", ... */
    const char *path;           /* exact path; a trailing '*' matches any suffix */
    bool takes_body;            /* read the body before calling the handler */
    hf_http_handler_fn handler; /* what serves it */
    hf_http_admit_fn admit;     /* before the body; NULL: the body is always read */
} hf_http_route_t;

typedef struct hf_http_cors hf_http_cors_t; /* http_parse.h */

typedef struct hf_http_config {
    const char *service;           /* name used in logs */
    const hf_http_route_t *routes; /* the daemon's table; /livez etc. are added implicitly */
    size_t nroutes;
    void *ctx;                  /* passed to handlers and ready */
    hf_http_ready_fn ready;     /* NULL: always ready (unless draining) */
    hf_metrics_t *metrics;      /* served on /metrics; not owned */
    const char *metrics_labels; /* added to the server's own series (several servers
                                   sharing one registry, e.g. "worker=\"1\""); NULL: none */
    size_t max_body;            /* bytes; larger bodies get 413 */
    int body_timeout_s;         /* a body must arrive within this (slow clients get cut) */
    const hf_http_cors_t *cors; /* browser origins allowed; not owned; NULL: CORS off */
} hf_http_config_t;

/* cfg is copied (routes and metrics must outlive the server). */
hf_http_server_t *hf_http_server_new(const hf_http_config_t *cfg);
void hf_http_server_free(hf_http_server_t *srv);

/* The lws protocol to put first in the vhost's protocol list; its user
 * pointer is srv. */
struct lws_protocols hf_http_protocol(hf_http_server_t *srv);

/* Call once the lws context exists, from the thread that will service it. */
void hf_http_server_attach(hf_http_server_t *srv, struct lws_context *lws);

/* Draining: /readyz answers 503 and new requests get 503 "draining". */
void hf_http_server_set_draining(hf_http_server_t *srv);
/* Requests received and not yet fully answered. */
size_t hf_http_server_inflight(hf_http_server_t *srv);

/* Request accessors: valid until the request is responded. */
const char *hf_http_req_method(const hf_http_req_t *req);
const char *hf_http_req_path(const hf_http_req_t *req);
/* The value of query argument name, URL-decoded, or NULL. */
const char *hf_http_req_query(const hf_http_req_t *req, const char *name);
/* One of the headers Holdfast reads: "content-type", "authorization",
 * "idempotency-key". NULL when absent. */
const char *hf_http_req_header(const hf_http_req_t *req, const char *name);
const char *hf_http_req_body(const hf_http_req_t *req, size_t *len);
/* The Content-Length the client announced (0 when none). */
size_t hf_http_req_content_length(const hf_http_req_t *req);
/* Keeps data with the request (one attachment per request): release(data)
 * runs when the request is freed, on the lws thread (or in
 * hf_http_server_free), whether it was answered or its client left. */
void hf_http_req_attach(hf_http_req_t *req, void *data, void (*release)(void *data));
void *hf_http_req_attached(const hf_http_req_t *req);

/* Answers the request. Takes ownership of body (heap, from hf_malloc or
 * hf_buf_release; may be NULL when len is 0). extra_headers is a NULL
 * terminated name/value list ("Retry-After", "1", NULL) or NULL. Any thread;
 * once per request. */
void hf_http_respond(hf_http_req_t *req, int status, const char *content_type, char *body,
                     size_t len, const char *const *extra_headers);

/* {"error":{"code":code,"message":message}}; retry_after_s > 0 adds Retry-After. */
void hf_http_respond_error(hf_http_req_t *req, int status, const char *code, const char *message,
                           int retry_after_s);

#endif
