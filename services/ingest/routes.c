/* routes.c - the HTTP API of holdfast-ingest (schemas/openapi.yaml). */
#include <string.h>
#include <strings.h>

#include "holdfast/alloc.h"
#include "history.h"
#include "ingest.h"

#define INGEST_IDEMPOTENCY_KEY_MAX 255

static bool routes__is_json(const char *content_type)
{
    if (!content_type)
        return false;
    size_t n = strcspn(content_type, ";");
    while (n > 0 && content_type[n - 1] == ' ')
        n--;
    return n == strlen("application/json") && strncasecmp(content_type, "application/json", n) == 0;
}

/* Printable ASCII only: the key is stored and compared as text. */
static bool routes__key_is_valid(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > INGEST_IDEMPOTENCY_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (key[i] < 0x21 || key[i] > 0x7e)
            return false;
    return true;
}

static void routes__reject(ingest_t *ing, hf_http_req_t *req, int status, const char *code,
                           const char *message)
{
    hf_counter_inc(ing->m.requests_rejected);
    hf_http_respond_error(req, status, code, message, 0);
}

static void routes__post_events(hf_http_req_t *req, void *ctx)
{
    ingest_t *ing = ctx;
    if (!routes__is_json(hf_http_req_header(req, "content-type"))) {
        routes__reject(ing, req, 415, "unsupported_media_type",
                       "Content-Type must be application/json");
        return;
    }
    const char *key = hf_http_req_header(req, "idempotency-key");
    if (key && !routes__key_is_valid(key)) {
        routes__reject(ing, req, 400, "invalid_idempotency_key",
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
        routes__reject(ing, req, rc == HF_ERR_TOO_LARGE ? 413 : 400,
                       rc == HF_ERR_TOO_LARGE ? "batch_too_large" : "invalid_request", err);
        return;
    }
    job->req = req;
    job->idempotency_key = key;
    rc = ingest_writers_submit(ing, job);
    if (rc == HF_OK)
        return;
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
    {"POST", "/v1/events", true, routes__post_events},
    {"GET", "/v1/channels/*", false, ingest_history_route},
};
const size_t ingest_nroutes = sizeof ingest_routes / sizeof ingest_routes[0];
