/* fuzz_http_request.c - raw HTTP requests through ingest's request handling,
 * without a socket.
 *
 * The input is what a client writes on one keep-alive connection: up to
 * FUZZ_MAX_REQUESTS requests, each a request line, headers, a blank line
 * and a body. This file plays libwebsockets' part (splitting the request
 * line, URL-decoding path and query arguments, cutting headers at
 * HF_HTTP_HEADER_MAX, delimiting bodies by Content-Length), then drives
 * what http.c does with each request through http_parse.h (query
 * splitting, Content-Length, route matching over the operational routes
 * and ingest's own table, body admission, the CORS headers for the
 * request's Origin, which must never break the header block) and calls
 * ingest's route
 * handlers: POST /v1/events (bearer token, Content-Type, Idempotency-Key,
 * the body parser, channel permissions, the per-subject rate limit) and
 * GET /v1/channels/{channel}/events (path, token, since, limit, epoch).
 *
 * routes.c and history.c are included, not linked, because the checks live
 * in their static functions and handlers; http.c's request accessors and
 * responders are replaced by the ones below, which check that every
 * request is answered exactly once and every JSON answer is valid JSON.
 * The writers and the history worker are stand-ins that check what they
 * were handed and free it. Tokens are checked against the HS256 secret and
 * the API key of fuzz_support.h, which the seed requests use. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "fuzz_support.h"
#include "holdfast/alloc.h"
#include "holdfast/buf.h"
#include "holdfast/http_parse.h"
#include "holdfast/metrics.h"

#include "history.c"
#include "routes.c"

#define FUZZ_MAX_BODY     (1024 * 1024) /* ingest's default --max-body */
#define FUZZ_MAX_BATCH    1000          /* ingest's default --max-batch */
#define FUZZ_MAX_REQUESTS 4             /* on one connection, per input */
/* A small bucket, so that the second publish of an input is over the rate. */
#define FUZZ_PUBLISH_RATE  1
#define FUZZ_PUBLISH_BURST 3

/* What http.c's request holds, as far as the handlers can see it. */
struct hf_http_req {
    char method[8];
    char *path;
    char *query_names[HF_HTTP_QUERY_ARGS_MAX];
    char *query_values[HF_HTTP_QUERY_ARGS_MAX];
    int nquery;
    char *content_type;    /* NULL when absent */
    char *authorization;   /* NULL when absent */
    char *idempotency_key; /* NULL when absent */
    char *origin;          /* NULL when absent */
    char *body;            /* exact-size copy, so reads past the end are caught */
    size_t body_len;
    size_t content_length;
    void *attached; /* the route's, released with the request */
    void (*release)(void *attached);
    int answers; /* hf_http_respond calls; must end at exactly one */
    int status;
};

static ingest_t fuzz_ingest;
static ingest_history_t fuzz_history;
static ingest_job_t *fuzz_submitted; /* the job the writers stand-in took */

/* ---- http.c's side, for the handlers ------------------------------------ */

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

const char *hf_http_req_body(const hf_http_req_t *req, size_t *len)
{
    *len = req->body_len;
    return req->body ? req->body : "";
}

void hf_http_respond(hf_http_req_t *req, int status, const char *content_type, char *body,
                     size_t len, const char *const *extra_headers)
{
    req->answers++;
    req->status = status;
    FUZZ_CHECK(status >= 200 && status <= 599);
    if (len > 0 && strcmp(content_type, "application/json") == 0)
        FUZZ_CHECK(fuzz_is_json(body, len));
    hf_free(body);
}

void hf_http_respond_error(hf_http_req_t *req, int status, const char *code, const char *message,
                           int retry_after_s)
{
    FUZZ_CHECK(status >= 400);
    hf_buf_t body = HF_BUF_INIT;
    hf_http_error_body(&body, code, message);
    size_t len;
    char *data = hf_buf_release(&body, &len);
    hf_http_respond(req, status, "application/json", data, len, NULL);
}

/* ---- stand-ins for the writers and the history worker ------------------- */

/* Odd-length bodies find the database down, so the handler's 503 path runs too. */
hf_err_t ingest_writers_submit(ingest_t *ing, ingest_job_t *job)
{
    if (job->body_len % 2)
        return HF_ERR_UNAVAILABLE;
    fuzz_submitted = job;
    return HF_OK;
}

/* Fixed, so that the rate limit refills nothing within an input. */
int64_t hf_now_us(void)
{
    return FUZZ_AUTH_NOW * 1000000LL;
}

static void http_writer_takes(hf_http_req_t *req)
{
    ingest_job_t *job = fuzz_submitted;
    fuzz_submitted = NULL;
    FUZZ_CHECK(job->req == req && job->nevents >= 1);
    FUZZ_CHECK(job->body == req->body || (req->body_len == 0 && job->body_len == 0));
    if (!req->idempotency_key) {
        FUZZ_CHECK(job->idempotency_key == NULL);
    } else { /* scoped to the subject: "<subject length>:<subject>:<key>" */
        char *end = NULL;
        unsigned long n = strtoul(job->idempotency_key, &end, 10);
        FUZZ_CHECK(end && *end == ':' && strlen(end + 1) > n && end[1 + n] == ':');
        FUZZ_CHECK(strcmp(end + 2 + n, req->idempotency_key) == 0);
    }
    ingest_job_free(job);
    hf_http_respond(req, 201, "application/json", NULL, 0, NULL);
}

static void http_history_takes(hf_http_req_t *req)
{
    history_job_t *job = fuzz_history.head;
    fuzz_history.head = fuzz_history.tail = NULL;
    fuzz_history.queued = 0;
    FUZZ_CHECK(job->req == req && !job->next);
    FUZZ_CHECK(hf_channel_validate(job->channel, strlen(job->channel), NULL) == HF_OK);
    FUZZ_CHECK(job->since >= -1 && job->limit >= 1 && job->limit <= HISTORY_LIMIT_MAX);
    FUZZ_CHECK(strlen(job->epoch) < sizeof job->epoch);
    hf_free(job);
    hf_http_respond(req, 200, "application/json", NULL, 0, NULL);
}

/* ---- libwebsockets' side: the raw request --------------------------------- */

static int http_hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* URL-decodes s[0..len) into a C string of at most max - 1 bytes (a %00
 * ends it, as it would end the C string lws hands over). */
static char *http_decode(const char *s, size_t len, bool plus_is_space, size_t max)
{
    char *out = hf_malloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < max; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = http_hex(s[i + 1])) >= 0 &&
            (lo = http_hex(s[i + 2])) >= 0) {
            out[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[n++] = plus_is_space && s[i] == '+' ? ' ' : s[i];
        }
    }
    out[n] = '\0';
    return out;
}

/* One line of s[*pos..len) without its "\r\n"; false at the end. */
static bool http_line(const char *s, size_t len, size_t *pos, const char **line, size_t *line_len)
{
    if (*pos >= len)
        return false;
    const char *start = s + *pos;
    const char *nl = memchr(start, '\n', len - *pos);
    size_t n = nl ? (size_t)(nl - start) : len - *pos;
    *pos += n + (nl ? 1 : 0);
    if (n && start[n - 1] == '\r')
        n--;
    *line = start;
    *line_len = n;
    return true;
}

static void http_request_line(hf_http_req_t *req, const char *line, size_t len)
{
    static const char *const methods[] = {"GET",   "POST",    "PUT", "DELETE",
                                          "PATCH", "OPTIONS", "HEAD"};
    const char *sp = memchr(line, ' ', len);
    size_t mlen = sp ? (size_t)(sp - line) : len;
    snprintf(req->method, sizeof req->method, "?");
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (mlen == strlen(methods[i]) && memcmp(line, methods[i], mlen) == 0)
            snprintf(req->method, sizeof req->method, "%s", methods[i]);
    const char *target = sp ? sp + 1 : line + len;
    size_t tlen = (size_t)(line + len - target);
    const char *sp2 = memchr(target, ' ', tlen);
    if (sp2)
        tlen = (size_t)(sp2 - target);
    const char *q = memchr(target, '?', tlen);
    size_t plen = q ? (size_t)(q - target) : tlen;
    req->path = http_decode(target, plen, false, SIZE_MAX);
    if (!q)
        return;
    const char *args = q + 1, *end = target + tlen;
    while (args <= end && req->nquery < HF_HTTP_QUERY_ARGS_MAX) {
        const char *amp = memchr(args, '&', (size_t)(end - args));
        size_t alen = amp ? (size_t)(amp - args) : (size_t)(end - args);
        char *frag = http_decode(args, alen, true, HF_HTTP_QUERY_FRAG_MAX);
        hf_http_query_split(frag, &req->query_names[req->nquery], &req->query_values[req->nquery]);
        req->nquery++;
        hf_free(frag);
        if (!amp)
            break;
        args = amp + 1;
    }
}

static void http_header(hf_http_req_t *req, const char *line, size_t len, char **content_length)
{
    const char *colon = memchr(line, ':', len);
    if (!colon)
        return;
    size_t nlen = (size_t)(colon - line);
    const char *v = colon + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    size_t vlen = (size_t)(end - v);
    if (vlen > HF_HTTP_HEADER_MAX)
        vlen = HF_HTTP_HEADER_MAX;
    char **slot = NULL;
    if (nlen == 12 && strncasecmp(line, "content-type", 12) == 0)
        slot = &req->content_type;
    else if (nlen == 13 && strncasecmp(line, "authorization", 13) == 0)
        slot = &req->authorization;
    else if (nlen == 15 && strncasecmp(line, "idempotency-key", 15) == 0)
        slot = &req->idempotency_key;
    else if (nlen == 14 && strncasecmp(line, "content-length", 14) == 0)
        slot = content_length;
    else if (nlen == 6 && strncasecmp(line, "origin", 6) == 0)
        slot = &req->origin;
    /* http.c: an empty known header is absent, an empty Idempotency-Key is "". */
    if (!slot || (vlen == 0 && slot != &req->idempotency_key))
        return;
    hf_free(*slot);
    *slot = hf_strndup(v, vlen);
}

static void http_req_free(hf_http_req_t *req)
{
    hf_free(req->path);
    for (int i = 0; i < req->nquery; i++) {
        hf_free(req->query_names[i]);
        hf_free(req->query_values[i]);
    }
    hf_free(req->content_type);
    hf_free(req->authorization);
    hf_free(req->idempotency_key);
    hf_free(req->origin);
    hf_free(req->body);
    if (req->release)
        req->release(req->attached);
}

static hf_http_cors_t fuzz_cors_list, fuzz_cors_any;

/* The CORS headers http.c would write for this Origin: whole "Name: value"
 * lines, the origin echoed only when allowed and then byte for byte. */
static void http_check_cors(const hf_http_req_t *req, const hf_http_cors_t *cors, bool preflight)
{
    hf_buf_t out = HF_BUF_INIT;
    hf_http_cors_headers(&out, cors, req->origin, preflight, "POST, OPTIONS");
    bool allowed = hf_http_cors_allows(cors, req->origin);
    const char *p = out.data, *end = out.data + out.len;
    int lines = 0;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        FUZZ_CHECK(eol && eol + 1 < end && eol[1] == '\n');
        FUZZ_CHECK(!memchr(p, '\n', (size_t)(eol - p)) && !memchr(p, '\0', (size_t)(eol - p)));
        FUZZ_CHECK(memchr(p, ':', (size_t)(eol - p)));
        p = eol + 2;
        lines++;
    }
    FUZZ_CHECK(lines == (allowed ? (preflight ? 5 : 3) : 1));
    if (allowed)
        FUZZ_CHECK(strstr(out.data, req->origin) != NULL);
    hf_buf_free(&out);
}

/* ---- http.c's request handling, then ingest's routes --------------------- */

static const hf_http_route_t fuzz_ops_routes[] = {
    {"GET", "/livez", false, NULL, NULL},
    {"GET", "/healthz", false, NULL, NULL},
    {"GET", "/readyz", false, NULL, NULL},
    {"GET", "/metrics", false, NULL, NULL},
};

/* What lws and http.c do with one request whose headers are in; rest is
 * what follows them on the connection. Returns whether an answer is due
 * (not for a body that never completes), and in
 * *used the bytes of rest lws takes as this request's body, or SIZE_MAX
 * when the connection closes after it (an answer before its body). */
static bool http_serve(hf_http_req_t *req, size_t content_length, bool has_content_length,
                       const char *rest, size_t rest_len, size_t *used)
{
    bool path_known = false;
    const hf_http_route_t *route =
        hf_http_route_find(fuzz_ops_routes, sizeof fuzz_ops_routes / sizeof fuzz_ops_routes[0],
                           req->method, req->path, &path_known);
    if (!route)
        route =
            hf_http_route_find(ingest_routes, ingest_nroutes, req->method, req->path, &path_known);
    bool has_body = content_length > 0 || (route && route->takes_body);
    *used = has_body ? SIZE_MAX : 0;
    if (!route) {
        hf_http_respond_error(req, path_known ? 405 : 404,
                              path_known ? "method_not_allowed" : "not_found",
                              path_known ? "method not allowed on this path" : "no such route", 0);
        return true;
    }
    if (!route->handler) {
        /* /livez and the like: http.c answers them itself */
        hf_http_respond(req, 200, "text/plain", NULL, 0, NULL);
        return true;
    }
    if (route->takes_body) {
        int status = hf_http_body_status(has_content_length, content_length, FUZZ_MAX_BODY);
        if (status) {
            hf_http_respond_error(req, status, status == 411 ? "length_required" : "body_too_large",
                                  "body refused", 0);
            return true;
        }
        req->content_length = content_length;
        /* Credentials and byte budgets, before the body: a refusal closes. */
        if (route->admit && !route->admit(req, &fuzz_ingest))
            return true;
        if (rest_len < content_length)
            return false; /* lws would wait for the rest until the body timeout */
        req->body_len = content_length;
        req->body = hf_malloc(content_length ? content_length : 1);
        memcpy(req->body, rest, content_length);
    }
    /* A body sent to a route that takes none is read and dropped. */
    *used = content_length <= rest_len ? content_length : SIZE_MAX;
    route->handler(req, &fuzz_ingest);
    if (fuzz_submitted)
        http_writer_takes(req);
    else if (fuzz_history.head)
        http_history_takes(req);
    return true;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_ingest.auth = fuzz_auth_new("orders:* a b");

    fuzz_ingest.metrics = hf_metrics_new();
    hf_metrics_t *metrics = fuzz_ingest.metrics;
    ingest_metrics_t *m = &fuzz_ingest.m;
    m->requests_rejected = hf_metrics_counter(metrics, "rejected", NULL, "");
    m->requests_unavailable = hf_metrics_counter(metrics, "unavailable", NULL, "");
    m->auth_failed = hf_metrics_counter(metrics, "auth_failed", NULL, "");
    m->auth_forbidden = hf_metrics_counter(metrics, "auth_forbidden", NULL, "");
    m->rate_limited = hf_metrics_counter(metrics, "rate_limited", NULL, "");
    fuzz_ingest.cfg.max_batch = FUZZ_MAX_BATCH;
    fuzz_ingest.cfg.max_body = FUZZ_MAX_BODY;
    /* Room for one largest body in flight and one queued: a second is refused. */
    fuzz_ingest.cfg.max_inflight_bytes = FUZZ_MAX_BODY;
    fuzz_ingest.cfg.max_queued_bytes = FUZZ_MAX_BODY;
    m->over_inflight_bytes = hf_metrics_counter(metrics, "over_inflight", NULL, "");
    m->over_queued_bytes = hf_metrics_counter(metrics, "over_queued", NULL, "");
    fuzz_ingest.cfg.publish_rate = FUZZ_PUBLISH_RATE;
    fuzz_ingest.cfg.publish_burst = FUZZ_PUBLISH_BURST;
    pthread_mutex_init(&fuzz_history.lock, NULL);
    pthread_cond_init(&fuzz_history.wake, NULL);
    fuzz_history.queue_max = 1;
    fuzz_ingest.history = &fuzz_history;
    char err[256];
    FUZZ_CHECK(hf_http_cors_parse("https://app.example.com,http://127.0.0.1:8080", &fuzz_cors_list,
                                  err, sizeof err) == HF_OK);
    FUZZ_CHECK(hf_http_cors_parse("*", &fuzz_cors_any, err, sizeof err) == HF_OK);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data, *line;
    size_t pos = 0, len;
    /* A new connection's limiter, so that an input replays the same way. */
    fuzz_ingest.publish_limit = hf_ratelimit_new(FUZZ_PUBLISH_RATE, FUZZ_PUBLISH_BURST);
    for (int n = 0; n < FUZZ_MAX_REQUESTS && http_line(s, size, &pos, &line, &len); n++) {
        hf_http_req_t req;
        memset(&req, 0, sizeof req);
        http_request_line(&req, line, len);
        char *content_length = NULL;
        while (http_line(s, size, &pos, &line, &len) && len > 0)
            http_header(&req, line, len, &content_length);

        size_t used;
        bool answered = http_serve(&req, hf_http_content_length(content_length),
                                   content_length != NULL, s + pos, size - pos, &used);
        FUZZ_CHECK(req.answers == (answered ? 1 : 0));
        bool preflight = strcmp(req.method, "OPTIONS") == 0;
        http_check_cors(&req, &fuzz_cors_list, preflight);
        http_check_cors(&req, &fuzz_cors_any, preflight);
        hf_free(content_length);
        http_req_free(&req);
        if (!answered || used == SIZE_MAX)
            break; /* the connection waits for a body, or closes */
        pos += used;
    }
    hf_ratelimit_free(fuzz_ingest.publish_limit);
    /* Every request gone: no body byte may still be counted. */
    FUZZ_CHECK(atomic_load(&fuzz_ingest.inflight_bytes) == 0);
    FUZZ_CHECK(atomic_load(&fuzz_ingest.queued_bytes) == 0);
    return 0;
}
