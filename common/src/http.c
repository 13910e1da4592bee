/* http.c - HTTP server side shared by every service (see http.h).
 *
 * Request life cycle, all on the lws thread unless said otherwise:
 *   READING   headers parsed, route found, body arriving
 *   HANDLING  the handler has it (possibly on another thread)
 *   RESPONDED hf_http_respond() stored the answer; queued for writing
 * The wsi may close in any state. A request in HANDLING or RESPONDED
 * outlives its wsi (marked closed) and is freed when its response is
 * drained; otherwise it is freed at close or after its answer is written. */
#include "holdfast/http.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "holdfast/alloc.h"
#include "holdfast/buf.h"
#include "holdfast/http_parse.h"
#include "holdfast/log.h"

#define HTTP_MAX_QUERY_ARGS HF_HTTP_QUERY_ARGS_MAX
#define HTTP_MAX_EXTRA      4 /* extra response headers */
#define HTTP_HEADER_MAX     HF_HTTP_HEADER_MAX
#define HTTP_LINGER_US      (2 * LWS_US_PER_SEC) /* after an early answer, drop body this long */

typedef enum { REQ_READING, REQ_HANDLING, REQ_RESPONDED } http_req_state_t;

struct hf_http_req {
    hf_http_server_t *srv;
    struct lws *wsi;        /* NULL once the connection closed */
    http_req_state_t state; /* guarded by srv->lock once HANDLING */
    bool closed;            /* the client went away; drop the response */
    bool close_after;       /* answer with Connection: close (body not consumed) */
    bool linger;            /* answered before its body: read and drop that body, then close */
    const hf_http_route_t *route;
    char method[8];
    char *path;                              /* owned */
    char *query_names[HTTP_MAX_QUERY_ARGS];  /* owned */
    char *query_values[HTTP_MAX_QUERY_ARGS]; /* owned */
    int nquery;
    char *content_type;    /* owned, or NULL */
    char *authorization;   /* owned, or NULL */
    char *idempotency_key; /* owned, or NULL */
    char *origin;          /* owned, or NULL: the Origin header (CORS) */
    bool preflight;        /* a CORS preflight: answered with its headers */
    hf_buf_t body;         /* received body */
    size_t content_length;
    lws_sorted_usec_list_t body_deadline; /* the whole body must be in by then */
    void *attached;                       /* the daemon's, released at free */
    void (*release)(void *attached);
    int status; /* response */
    char *resp_ctype;
    char *resp_body; /* owned */
    size_t resp_len;
    char *extra[HTTP_MAX_EXTRA * 2]; /* owned name/value pairs */
    hf_http_req_t *next_done;        /* link in srv->done */
};

struct hf_http_server {
    hf_http_config_t cfg;
    struct lws_context *lws;
    pthread_t lws_thread;
    pthread_mutex_t lock;   /* guards done list and request state after READING */
    hf_http_req_t *done;    /* responded requests waiting for the lws thread */
    atomic_size_t inflight; /* allocated requests */
    atomic_bool draining;
    hf_metric_t *m_requests[6]; /* by status class: 1xx..5xx, other */
};

/* A request answered before its body (401, 413, 503, ...) closes its
 * connection, but closing with body bytes unread makes the kernel send a
 * reset, and a client still uploading may lose the answer with it (most
 * clients send the whole body before reading). So the connection lingers:
 * the rest of the announced body (at most max_body) is read and dropped,
 * for at most HTTP_LINGER_US, then it closes cleanly. Nothing is kept. */
typedef struct http_pss {
    hf_http_req_t *req; /* the connection's current request */
    struct lws *wsi;    /* for the linger deadline */
    size_t body_left;   /* announced body bytes not yet seen (this request) */
    bool lingering;     /* answered early, dropping body_left, then closing */
    lws_sorted_usec_list_t linger_deadline;
} http_pss_t;

static const hf_http_route_t http_ops_routes[] = {
    {"GET", "/livez", false, NULL, NULL},
    {"GET", "/healthz", false, NULL, NULL},
    {"GET", "/readyz", false, NULL, NULL},
    {"GET", "/metrics", false, NULL, NULL},
};

static double http_inflight_gauge(void *arg)
{
    return (double)hf_http_server_inflight(arg);
}

hf_http_server_t *hf_http_server_new(const hf_http_config_t *cfg)
{
    hf_http_server_t *srv = hf_calloc(1, sizeof *srv);
    srv->cfg = *cfg;
    pthread_mutex_init(&srv->lock, NULL);
    if (cfg->metrics) {
        static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};
        const char *extra = cfg->metrics_labels ? cfg->metrics_labels : "";
        for (int i = 0; i < 6; i++) {
            char labels[160];
            snprintf(labels, sizeof labels, "%s%scode=\"%s\"", extra, extra[0] ? "," : "",
                     classes[i]);
            srv->m_requests[i] =
                hf_metrics_counter(cfg->metrics, "holdfast_http_requests_total", labels,
                                   "HTTP requests answered, by status class.");
        }
        hf_metrics_gauge_fn(cfg->metrics, "holdfast_http_inflight_requests", cfg->metrics_labels,
                            "HTTP requests received and not yet answered (this scrape included).",
                            http_inflight_gauge, srv);
    }
    return srv;
}

static void http_req_free(hf_http_req_t *req)
{
    lws_sul_cancel(&req->body_deadline); /* harmless when never scheduled */
    if (req->release)
        req->release(req->attached);
    hf_free(req->path);
    for (int i = 0; i < req->nquery; i++) {
        hf_free(req->query_names[i]);
        hf_free(req->query_values[i]);
    }
    hf_free(req->content_type);
    hf_free(req->authorization);
    hf_free(req->idempotency_key);
    hf_free(req->origin);
    hf_buf_free(&req->body);
    hf_free(req->resp_ctype);
    hf_free(req->resp_body);
    for (int i = 0; i < HTTP_MAX_EXTRA * 2; i++)
        hf_free(req->extra[i]);
    atomic_fetch_sub(&req->srv->inflight, 1);
    hf_free(req);
}

void hf_http_server_free(hf_http_server_t *srv)
{
    if (!srv)
        return;
    /* Requests still queued belong to connections lws already closed. */
    for (hf_http_req_t *req = srv->done, *next; req; req = next) {
        next = req->next_done;
        http_req_free(req);
    }
    pthread_mutex_destroy(&srv->lock);
    hf_free(srv);
}

void hf_http_server_attach(hf_http_server_t *srv, struct lws_context *lws)
{
    srv->lws = lws;
    srv->lws_thread = pthread_self();
}

void hf_http_server_set_draining(hf_http_server_t *srv)
{
    atomic_store(&srv->draining, true);
}

size_t hf_http_server_inflight(hf_http_server_t *srv)
{
    return atomic_load(&srv->inflight);
}

const char *hf_http_req_method(const hf_http_req_t *req)
{
    return req->method;
}

const char *hf_http_req_path(const hf_http_req_t *req)
{
    return req->path;
}

const char *hf_http_req_query(const hf_http_req_t *req, const char *name)
{
    for (int i = 0; i < req->nquery; i++)
        if (strcmp(req->query_names[i], name) == 0)
            return req->query_values[i];
    return NULL;
}

const char *hf_http_req_header(const hf_http_req_t *req, const char *name)
{
    if (strcasecmp(name, "content-type") == 0)
        return req->content_type;
    if (strcasecmp(name, "authorization") == 0)
        return req->authorization;
    if (strcasecmp(name, "idempotency-key") == 0)
        return req->idempotency_key;
    return NULL;
}

const char *hf_http_req_body(const hf_http_req_t *req, size_t *len)
{
    *len = req->body.len;
    return req->body.data ? req->body.data : "";
}

size_t hf_http_req_content_length(const hf_http_req_t *req)
{
    return req->content_length;
}

void hf_http_req_attach(hf_http_req_t *req, void *data, void (*release)(void *data))
{
    req->attached = data;
    req->release = release;
}

void *hf_http_req_attached(const hf_http_req_t *req)
{
    return req->attached;
}

static bool http_on_lws_thread(const hf_http_server_t *srv)
{
    return srv->lws && pthread_equal(srv->lws_thread, pthread_self());
}

void hf_http_respond(hf_http_req_t *req, int status, const char *content_type, char *body,
                     size_t len, const char *const *extra_headers)
{
    hf_http_server_t *srv = req->srv;
    req->status = status;
    req->resp_ctype = hf_strdup(content_type ? content_type : "application/json");
    req->resp_body = body;
    req->resp_len = len;
    for (int i = 0; extra_headers && extra_headers[i] && i < HTTP_MAX_EXTRA * 2; i++)
        req->extra[i] = hf_strdup(extra_headers[i]);
    if (srv->m_requests[0]) {
        int cls = status / 100 - 1;
        hf_counter_inc(srv->m_requests[cls >= 0 && cls < 5 ? cls : 5]);
    }

    if (http_on_lws_thread(srv)) {
        pthread_mutex_lock(&srv->lock);
        req->state = REQ_RESPONDED;
        bool closed = req->closed;
        pthread_mutex_unlock(&srv->lock);
        if (closed)
            http_req_free(req);
        else
            lws_callback_on_writable(req->wsi);
        return;
    }
    pthread_mutex_lock(&srv->lock);
    req->state = REQ_RESPONDED;
    req->next_done = srv->done;
    srv->done = req;
    pthread_mutex_unlock(&srv->lock);
    lws_cancel_service(srv->lws);
}

void hf_http_respond_error(hf_http_req_t *req, int status, const char *code, const char *message,
                           int retry_after_s)
{
    hf_buf_t body = HF_BUF_INIT;
    hf_http_error_body(&body, code, message);
    char retry[16];
    snprintf(retry, sizeof retry, "%d", retry_after_s);
    const char *extra[] = {"Retry-After", retry, NULL};
    size_t len;
    char *data = hf_buf_release(&body, &len);
    hf_http_respond(req, status, "application/json", data, len, retry_after_s > 0 ? extra : NULL);
}

/* Moves responses produced on other threads to their connections. */
static void http_drain_done(hf_http_server_t *srv)
{
    pthread_mutex_lock(&srv->lock);
    hf_http_req_t *list = srv->done;
    srv->done = NULL;
    pthread_mutex_unlock(&srv->lock);
    while (list) {
        hf_http_req_t *req = list;
        list = req->next_done;
        if (req->closed)
            http_req_free(req);
        else
            lws_callback_on_writable(req->wsi);
    }
}

static const char *http_status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "";
    }
}

/* The CORS headers of req's response (preflight: the methods its path serves). */
static void http_cors_headers(hf_buf_t *out, const hf_http_req_t *req)
{
    const hf_http_server_t *srv = req->srv;
    char methods[128] = "";
    if (req->preflight)
        hf_http_route_methods(srv->cfg.routes, srv->cfg.nroutes, req->path, methods,
                              sizeof methods);
    hf_http_cors_headers(out, srv->cfg.cors, req->origin, req->preflight, methods);
}

static void http_linger_over(lws_sorted_usec_list_t *sul)
{
    http_pss_t *pss = lws_container_of(sul, http_pss_t, linger_deadline);
    lws_set_timeout(pss->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* The answer is out and the connection must close: at once, or once the
 * rest of the body is read (see http_pss_t). Returns -1 to close now. */
static int http_linger(struct lws *wsi, http_pss_t *pss, bool linger)
{
    if (!linger || pss->body_left == 0)
        return -1;
    pss->lingering = true;
    pss->wsi = wsi;
    lws_sul_schedule(lws_get_context(wsi), 0, &pss->linger_deadline, http_linger_over,
                     HTTP_LINGER_US);
    return 0;
}

/* Writes status line, headers and body in one lws_write. Returns -1 when
 * the connection must close (now, or after lingering: 0). */
static int http_write_response(struct lws *wsi, http_pss_t *pss, hf_http_req_t *req)
{
    hf_buf_t out = HF_BUF_INIT;
    hf_buf_reserve(&out, LWS_PRE + 512 + req->resp_len);
    out.len = LWS_PRE;
    hf_buf_printf(&out, "HTTP/1.1 %d %s\r\n", req->status, http_status_text(req->status));
    if (req->status != 204) /* a 204 has neither (RFC 9110 8.6) */
        hf_buf_printf(&out, "Content-Type: %s\r\nContent-Length: %zu\r\n", req->resp_ctype,
                      req->resp_len);
    for (int i = 0; i + 1 < HTTP_MAX_EXTRA * 2 && req->extra[i]; i += 2)
        hf_buf_printf(&out, "%s: %s\r\n", req->extra[i], req->extra[i + 1]);
    http_cors_headers(&out, req);
    if (req->close_after)
        hf_buf_append_str(&out, "Connection: close\r\n");
    hf_buf_append_str(&out, "\r\n");
    hf_buf_append(&out, req->resp_body, req->resp_len);
    size_t len = out.len - LWS_PRE;
    /* LWS_WRITE_HTTP_FINAL: lws buffers any part the socket does not take
     * now and finishes it before the next writable callback. */
    int n = lws_write(wsi, (unsigned char *)out.data + LWS_PRE, len, LWS_WRITE_HTTP_FINAL);
    hf_buf_free(&out);
    bool close_after = req->close_after, linger = req->linger;
    http_req_free(req);
    if (n < 0 || close_after)
        return http_linger(wsi, pss, linger);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static char *http_copy_header(struct lws *wsi, enum lws_token_indexes tok)
{
    int len = lws_hdr_total_length(wsi, tok);
    if (len <= 0)
        return NULL;
    if (len > HTTP_HEADER_MAX) /* cannot be: lws keeps no more (see HF_HTTP_HEADER_MAX) */
        return NULL;
    char *s = hf_malloc((size_t)len + 1);
    if (lws_hdr_copy(wsi, s, len + 1, tok) < 0) {
        hf_free(s);
        return NULL;
    }
    return s;
}

static char *http_copy_custom_header(struct lws *wsi, const char *name)
{
    int nlen = (int)strlen(name);
    int len = lws_hdr_custom_length(wsi, name, nlen);
    if (len < 0)
        return NULL;
    if (len > HTTP_HEADER_MAX)
        len = HTTP_HEADER_MAX;
    char *s = hf_malloc((size_t)len + 1);
    if (lws_hdr_custom_copy(wsi, s, len + 1, name, nlen) < 0) {
        hf_free(s);
        return NULL;
    }
    return s;
}

static void http_parse_query(struct lws *wsi, hf_http_req_t *req)
{
    char frag[HF_HTTP_QUERY_FRAG_MAX];
    for (int i = 0; req->nquery < HTTP_MAX_QUERY_ARGS; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0)
            break;
        /* lws already URL-decoded the fragment. */
        hf_http_query_split(frag, &req->query_names[req->nquery], &req->query_values[req->nquery]);
        req->nquery++;
    }
}

static const struct {
    enum lws_token_indexes tok;
    const char *name;
} http_methods[] = {
    {WSI_TOKEN_GET_URI, "GET"},     {WSI_TOKEN_POST_URI, "POST"},
    {WSI_TOKEN_PUT_URI, "PUT"},     {WSI_TOKEN_DELETE_URI, "DELETE"},
    {WSI_TOKEN_PATCH_URI, "PATCH"}, {WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
    {WSI_TOKEN_HEAD_URI, "HEAD"},
};

static hf_http_req_t *http_req_new(hf_http_server_t *srv, struct lws *wsi, const char *path,
                                   size_t path_len)
{
    hf_http_req_t *req = hf_calloc(1, sizeof *req);
    atomic_fetch_add(&srv->inflight, 1);
    req->srv = srv;
    req->wsi = wsi;
    req->path = hf_strndup(path, path_len);
    snprintf(req->method, sizeof req->method, "?");
    for (size_t i = 0; i < sizeof http_methods / sizeof http_methods[0]; i++) {
        if (lws_hdr_total_length(wsi, http_methods[i].tok) > 0) {
            snprintf(req->method, sizeof req->method, "%s", http_methods[i].name);
            break;
        }
    }
    http_parse_query(wsi, req);
    req->content_type = http_copy_header(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE);
    req->authorization = http_copy_header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    req->idempotency_key = http_copy_custom_header(wsi, "idempotency-key:");
    if (srv->cfg.cors)
        req->origin = http_copy_header(wsi, WSI_TOKEN_ORIGIN);
    char *cl = http_copy_header(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    req->content_length = hf_http_content_length(cl);
    hf_free(cl);
    return req;
}

/* Finds the route; *path_known tells 405 from 404 when none matches. */
static const hf_http_route_t *http_route(const hf_http_server_t *srv, const hf_http_req_t *req,
                                         bool *path_known)
{
    *path_known = false;
    const hf_http_route_t *route =
        hf_http_route_find(http_ops_routes, sizeof http_ops_routes / sizeof http_ops_routes[0],
                           req->method, req->path, path_known);
    if (!route)
        route = hf_http_route_find(srv->cfg.routes, srv->cfg.nroutes, req->method, req->path,
                                   path_known);
    return route;
}

static void http_serve_ops(hf_http_server_t *srv, hf_http_req_t *req)
{
    const char *path = req->path;
    if (strcmp(path, "/metrics") == 0) {
        hf_buf_t out = HF_BUF_INIT;
        if (srv->cfg.metrics)
            hf_metrics_render(srv->cfg.metrics, &out);
        size_t len;
        char *data = hf_buf_release(&out, &len);
        hf_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", data, len, NULL);
        return;
    }
    if (strcmp(path, "/readyz") == 0) {
        char why[256] = "";
        bool ready = !atomic_load(&srv->draining);
        if (!ready)
            snprintf(why, sizeof why, "draining");
        else if (srv->cfg.ready)
            ready = srv->cfg.ready(srv->cfg.ctx, why, sizeof why);
        if (!ready) {
            hf_http_respond_error(req, 503, "not_ready", why, 0);
            return;
        }
    }
    hf_http_respond(req, 200, "application/json", hf_strdup("{\"status\":\"ok\"}\n"), 16, NULL);
}

/* The body deadline passed with the body incomplete: 408, then close. */
static void http_body_late(lws_sorted_usec_list_t *sul)
{
    hf_http_req_t *req = lws_container_of(sul, hf_http_req_t, body_deadline);
    if (req->state != REQ_READING || !req->wsi)
        return;
    req->close_after = true;
    req->linger = false; /* it is slow to arrive: no reason to wait for more */
    hf_http_respond_error(req, 408, "body_timeout", "the body did not arrive in time", 0);
}

/* An OPTIONS request from a page (Origin) asking whether it may send a
 * method (Access-Control-Request-Method): a CORS preflight. */
static bool http_is_preflight(const hf_http_server_t *srv, struct lws *wsi,
                              const hf_http_req_t *req)
{
    if (!srv->cfg.cors || !req->origin || strcmp(req->method, "OPTIONS") != 0)
        return false;
    static const char acrm[] = "access-control-request-method:";
    return lws_hdr_custom_length(wsi, acrm, (int)strlen(acrm)) > 0;
}

/* 204 with the CORS headers for an allowed origin; 403 for any other, with
 * no CORS header, so the browser refuses the request that would follow. */
static void http_answer_preflight(hf_http_server_t *srv, hf_http_req_t *req)
{
    if (!hf_http_cors_allows(srv->cfg.cors, req->origin)) {
        hf_http_respond_error(req, 403, "origin_not_allowed",
                              "this origin may not call the API from a browser (cors-origins)", 0);
        return;
    }
    req->preflight = true;
    hf_http_respond(req, 204, NULL, NULL, 0, NULL);
}

/* A new request's headers are in: route it, or answer at once. */
static int http_on_request(hf_http_server_t *srv, struct lws *wsi, http_pss_t *pss,
                           const char *path, size_t path_len)
{
    hf_http_req_t *req = http_req_new(srv, wsi, path, path_len);
    pss->req = req;
    bool path_known;
    req->route = http_route(srv, req, &path_known);
    bool has_body = req->content_length > 0 || (req->route && req->route->takes_body);
    /* Answering before the body is read: the connection cannot be reused;
     * a body no larger than the limit is read and dropped first. */
    req->close_after = has_body;
    req->linger = has_body && req->content_length <= srv->cfg.max_body;
    pss->body_left = req->content_length;
    pss->lingering = false;

    if (!req->route && path_known && http_is_preflight(srv, wsi, req)) {
        http_answer_preflight(srv, req);
        return 0;
    }
    if (!req->route) {
        hf_http_respond_error(req, path_known ? 405 : 404,
                              path_known ? "method_not_allowed" : "not_found",
                              path_known ? "method not allowed on this path" : "no such route", 0);
        return 0;
    }
    if (!req->route->handler) {
        http_serve_ops(srv, req);
        return 0;
    }
    if (atomic_load(&srv->draining)) {
        hf_http_respond_error(req, 503, "draining", "server is shutting down; retry elsewhere", 1);
        return 0;
    }
    if (!req->route->takes_body) {
        req->close_after = false;
        req->state = REQ_HANDLING;
        /* the answer may come from a worker thread later: lws must not time the wait out */
        lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
        req->route->handler(req, srv->cfg.ctx);
        return 0;
    }
    int body_status =
        hf_http_body_status(lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0,
                            req->content_length, srv->cfg.max_body);
    if (body_status == 411) {
        hf_http_respond_error(req, 411, "length_required", "Content-Length header is required", 0);
        return 0;
    }
    if (body_status == 413) {
        char msg[96];
        snprintf(msg, sizeof msg, "body is larger than the limit of %zu bytes", srv->cfg.max_body);
        hf_http_respond_error(req, 413, "body_too_large", msg, 0);
        return 0;
    }
    /* Credentials and budgets before a byte of the body is read or room
     * made for it; a refusal closes the connection (close_after is set). */
    if (req->route->admit && !req->route->admit(req, srv->cfg.ctx))
        return 0;
    req->close_after = false;
    hf_buf_reserve(&req->body, req->content_length);
    /* lws restarts its own timeout (timeout_secs) on every piece of body:
     * a client dripping a byte at a time would hold the request forever.
     * The body timeout is a deadline for the whole body, on a timer. */
    lws_sul_schedule(lws_get_context(wsi), 0, &req->body_deadline, http_body_late,
                     (lws_usec_t)srv->cfg.body_timeout_s * LWS_US_PER_SEC);
    lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, srv->cfg.body_timeout_s);
    return 0;
}

static int http_on_body(hf_http_req_t *req, const void *in, size_t len)
{
    if (!req || req->state != REQ_READING)
        return 0; /* already answered (e.g. 413): discard */
    if (req->body.len + len > req->content_length) {
        req->close_after = true;
        req->linger = false;
        hf_http_respond_error(req, 400, "bad_body", "body is longer than Content-Length", 0);
        return 0;
    }
    hf_buf_append(&req->body, in, len);
    return 0;
}

static void http_on_body_complete(hf_http_server_t *srv, struct lws *wsi, hf_http_req_t *req)
{
    if (!req || req->state != REQ_READING)
        return;
    lws_sul_cancel(&req->body_deadline);
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    req->state = REQ_HANDLING;
    req->route->handler(req, srv->cfg.ctx);
}

/* The connection is gone: free what nobody else holds. */
static void http_on_closed(hf_http_server_t *srv, http_pss_t *pss)
{
    hf_http_req_t *req = pss ? pss->req : NULL;
    if (!req)
        return;
    pss->req = NULL;
    pthread_mutex_lock(&srv->lock);
    /* A handler still holds it, or it waits in the done list: whoever
     * moves it next sees closed and frees it. */
    bool owned_elsewhere = req->state == REQ_HANDLING;
    for (hf_http_req_t *d = srv->done; d && !owned_elsewhere; d = d->next_done)
        owned_elsewhere = d == req;
    req->closed = true;
    req->wsi = NULL;
    pthread_mutex_unlock(&srv->lock);
    if (!owned_elsewhere)
        http_req_free(req);
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    const struct lws_protocols *proto = lws_get_protocol(wsi);
    hf_http_server_t *srv = proto ? proto->user : NULL;
    http_pss_t *pss = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return http_on_request(srv, wsi, pss, in, len);
    case LWS_CALLBACK_HTTP_BODY:
        pss->body_left -= len < pss->body_left ? len : pss->body_left;
        if (pss->lingering) /* answered: dropped; all of it in, close */
            return pss->body_left == 0 ? -1 : 0;
        return http_on_body(pss->req, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (pss->lingering)
            return -1;
        http_on_body_complete(srv, wsi, pss->req);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!pss || !pss->req || pss->req->state != REQ_RESPONDED)
            return 0;
        {
            hf_http_req_t *req = pss->req;
            pss->req = NULL;
            return http_write_response(wsi, pss, req);
        }
    case LWS_CALLBACK_CLOSED_HTTP:
        if (pss)
            lws_sul_cancel(&pss->linger_deadline); /* harmless when never scheduled */
        http_on_closed(srv, pss);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (srv)
            http_drain_done(srv);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

struct lws_protocols hf_http_protocol(hf_http_server_t *srv)
{
    struct lws_protocols p = {
        .name = "http",
        .callback = http_callback,
        .per_session_data_size = sizeof(http_pss_t),
        .rx_buffer_size = 0,
        .user = srv,
    };
    return p;
}
