/* routes.c - the HTTP API of holdfast-ingest (schemas/openapi.yaml). */
#include <string.h>
#include <strings.h>

#include <stdio.h>
#include <time.h>

#include "holdfast/alloc.h"
#include "holdfast/channel.h"
#include "holdfast/http_parse.h"
#include "history.h"
#include "ingest.h"

#define INGEST_IDEMPOTENCY_KEY_MAX 255

static bool routes_is_json(const char *content_type)
{
    if (!content_type)
        return false;
    size_t n = strcspn(content_type, ";");
    while (n > 0 && content_type[n - 1] == ' ')
        n--;
    return n == strlen("application/json") && strncasecmp(content_type, "application/json", n) == 0;
}

/* Printable ASCII only: the key is stored and compared as text. */
static bool routes_key_is_valid(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > INGEST_IDEMPOTENCY_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (key[i] < 0x21 || key[i] > 0x7e)
            return false;
    return true;
}

/* Idempotency-Keys are scoped to the subject that sent them: one
 * publisher can neither claim another's key (a 409 for a day) nor replay
 * it (and read the ids of another's events). The key stored is
 * "<subject length>:<subject>:<key>": unambiguous whatever the subject
 * holds, and the SQL side (holdfast.ingest) sees just a longer key. */
static char *routes_scoped_key(const char *subject, const char *key)
{
    hf_buf_t scoped = HF_BUF_INIT;
    hf_buf_printf(&scoped, "%zu:%s:%s", strlen(subject), subject, key);
    return hf_buf_release(&scoped, NULL);
}

static void routes_reject(ingest_t *ing, hf_http_req_t *req, int status, const char *code,
                          const char *message)
{
    hf_counter_inc(ing->m.requests_rejected);
    hf_http_respond_error(req, status, code, message, 0);
}

static void routes_publish(ingest_t *ing, hf_http_req_t *req, const hf_auth_identity_t *who);

/* What a publish request holds from its admission (headers in) until it
 * is freed: the verified identity and the body bytes it is counted for,
 * first as arriving (inflight), then as handed to the writers (queued).
 * Lives on the lws thread; released by http.c when the request goes,
 * answered or abandoned, so no path can leak a count. */
typedef struct routes_publish_state {
    ingest_t *ing;
    hf_auth_identity_t *who;
    size_t inflight; /* counted in ing->inflight_bytes */
    size_t queued;   /* counted in ing->queued_bytes */
} routes_publish_state_t;

static void routes_state_release(void *arg)
{
    routes_publish_state_t *st = arg;
    atomic_fetch_sub(&st->ing->inflight_bytes, st->inflight);
    atomic_fetch_sub(&st->ing->queued_bytes, st->queued);
    hf_auth_identity_free(st->who);
    hf_free(st);
}

/* 503 + Retry-After over a byte budget; the request's body is never read
 * (admission) or is dropped (at submission). */
static void routes_over_budget(ingest_t *ing, hf_http_req_t *req, bool inflight)
{
    hf_counter_inc(inflight ? ing->m.over_inflight_bytes : ing->m.over_queued_bytes);
    hf_counter_inc(ing->m.requests_unavailable);
    hf_http_respond_error(req, 503, "overloaded",
                          inflight ? "too many request bytes arriving at once; retry"
                                   : "too many request bytes waiting for the database; retry",
                          1);
}

/* Headers in, body not read: credentials first (a 401 costs no body
 * buffer), then the byte budgets. Both refusals close the connection. */
static bool routes_admit_publish(hf_http_req_t *req, void *ctx)
{
    ingest_t *ing = ctx;
    hf_auth_identity_t *who = ingest_authenticate(ing, req);
    if (!who)
        return false;
    size_t len = hf_http_req_content_length(req);
    bool over_inflight =
        atomic_load(&ing->inflight_bytes) + len > (size_t)ing->cfg.max_inflight_bytes;
    /* A body the queue could not take now would only be dropped once read. */
    bool over_queued = atomic_load(&ing->queued_bytes) + len > (size_t)ing->cfg.max_queued_bytes;
    if (over_inflight || over_queued) {
        hf_auth_identity_free(who);
        routes_over_budget(ing, req, over_inflight);
        return false;
    }
    routes_publish_state_t *st = hf_calloc(1, sizeof *st);
    st->ing = ing;
    st->who = who;
    st->inflight = len;
    atomic_fetch_add(&ing->inflight_bytes, len);
    hf_http_req_attach(req, st, routes_state_release);
    return true;
}

hf_auth_identity_t *ingest_authenticate(ingest_t *ing, hf_http_req_t *req)
{
    hf_auth_identity_t *who = NULL;
    char why[200];
    const char *token = hf_auth_bearer(hf_http_req_header(req, "authorization"));
    if (hf_auth_verify(ing->auth, token, (int64_t)time(NULL), &who, why, sizeof why) == HF_OK)
        return who;
    hf_counter_inc(ing->m.auth_failed);
    hf_buf_t body = HF_BUF_INIT;
    hf_http_error_body(&body, "unauthorized", why);
    static const char *const challenge[] = {"WWW-Authenticate", "Bearer", NULL};
    size_t len;
    char *data = hf_buf_release(&body, &len);
    hf_http_respond(req, 401, "application/json", data, len, challenge);
    return NULL;
}

/* Names each channel of the job's text[] literal {"a","b"} (validated
 * names hold no quote or backslash) the identity may not publish to. */
static bool routes_may_publish_all(const hf_auth_identity_t *who, const ingest_job_t *job,
                                   char *denied, size_t denied_size)
{
    const char *p = job->channels.data;
    char name[HF_CHANNEL_MAX + 1];
    while ((p = strchr(p, '"')) != NULL) {
        const char *end = strchr(p + 1, '"');
        snprintf(name, sizeof name, "%.*s", (int)(end - p - 1), p + 1);
        if (!hf_auth_may_publish(who, name)) {
            snprintf(denied, denied_size, "token of '%s' may not publish to channel '%s'",
                     who->subject, name);
            return false;
        }
        p = end + 1;
    }
    return true;
}

static void routes_post_events(hf_http_req_t *req, void *ctx)
{
    ingest_t *ing = ctx;
    routes_publish_state_t *st = hf_http_req_attached(req);
    /* The body is in: it no longer counts as arriving. */
    atomic_fetch_sub(&ing->inflight_bytes, st->inflight);
    st->inflight = 0;
    routes_publish(ing, req, st->who);
}

/* Everything after authentication (the request's state owns who). */
static void routes_publish(ingest_t *ing, hf_http_req_t *req, const hf_auth_identity_t *who)
{
    if (!routes_is_json(hf_http_req_header(req, "content-type"))) {
        routes_reject(ing, req, 415, "unsupported_media_type",
                      "Content-Type must be application/json");
        return;
    }
    const char *key = hf_http_req_header(req, "idempotency-key");
    if (key && !routes_key_is_valid(key)) {
        routes_reject(ing, req, 400, "invalid_idempotency_key",
                      "Idempotency-Key must be 1..255 printable ASCII characters");
        return;
    }
    size_t len;
    const char *body = hf_http_req_body(req, &len);
    ingest_job_t *job = hf_calloc(1, sizeof *job);
    char err[256];
    hf_err_t rc = ingest_parse_body(body, len, ing->cfg.max_batch, job, err, sizeof err);
    if (rc != HF_OK) {
        ingest_job_free(job);
        routes_reject(ing, req, rc == HF_ERR_TOO_LARGE ? 413 : 400,
                      rc == HF_ERR_TOO_LARGE ? "batch_too_large" : "invalid_request", err);
        return;
    }
    char denied[512];
    int retry_after_s = 1;
    if (!routes_may_publish_all(who, job, denied, sizeof denied)) {
        ingest_job_free(job);
        hf_counter_inc(ing->m.auth_forbidden);
        hf_http_respond_error(req, 403, "forbidden", denied, 0);
        return;
    }
    if (!hf_ratelimit_take(ing->publish_limit, who->subject, job->nevents, hf_now_us(),
                           &retry_after_s)) {
        ingest_job_free(job);
        hf_counter_inc(ing->m.rate_limited);
        snprintf(denied, sizeof denied, "'%s' is over %lld events/s; retry after %d s",
                 who->subject, ing->cfg.publish_rate, retry_after_s);
        hf_http_respond_error(req, 429, "rate_limited", denied, retry_after_s);
        return;
    }
    job->req = req;
    job->idempotency_key = key ? routes_scoped_key(who->subject, key) : NULL;
    routes_publish_state_t *st = hf_http_req_attached(req);
    if (atomic_load(&ing->queued_bytes) + len > (size_t)ing->cfg.max_queued_bytes) {
        ingest_job_free(job);
        routes_over_budget(ing, req, false);
        return;
    }
    /* Counted before the hand-over: the writer may answer at once (the
     * request is freed, releasing the count, on this thread later). */
    st->queued = len;
    atomic_fetch_add(&ing->queued_bytes, len);
    rc = ingest_writers_submit(ing, job);
    if (rc == HF_OK)
        return;
    atomic_fetch_sub(&ing->queued_bytes, len);
    st->queued = 0;
    ingest_job_free(job);
    hf_counter_inc(ing->m.requests_unavailable);
    if (rc == HF_ERR_UNAVAILABLE)
        hf_http_respond_error(req, 503, "unavailable", "database unavailable; retry", 1);
    else if (rc == HF_ERR_SHUTDOWN)
        hf_http_respond_error(req, 503, "draining", "server is shutting down; retry", 1);
    else
        hf_http_respond_error(req, 503, "overloaded", "too many requests queued; retry", 1);
}

const hf_http_route_t ingest_routes[] = {
    {"POST", "/v1/events", true, routes_post_events, routes_admit_publish},
    {"GET", "/v1/channels/*", false, ingest_history_route, NULL},
};
const size_t ingest_nroutes = sizeof ingest_routes / sizeof ingest_routes[0];
