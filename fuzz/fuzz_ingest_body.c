/* fuzz_ingest_body.c - POST /v1/events bodies through ingest_parse_body().
 *
 * Besides memory errors and leaks, checks what the writers rely on: an
 * accepted body has one channel, type, offset and length per event, and
 * each event's [offset, offset + length) lies inside the body and is JSON
 * equal to that event's "data" (the bytes stored are the value sent). A
 * refused body comes with a message that can go into a JSON answer. The
 * body is libFuzzer's exact-size buffer, so a read past len is caught. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz_support.h"
#include "holdfast/alloc.h"
#include "holdfast/buf.h"
#include "holdfast/http_parse.h"
#include "ingest.h"

#define FUZZ_MAX_BATCH 50 /* small, so that the too-large branch is reachable */

/* Reads the integer[] literal "{1,2,3}"; returns how many, or -1 if malformed. */
static long body_ints(const char *lit, size_t *out, long max)
{
    FUZZ_CHECK(lit && lit[0] == '{');
    long n = 0;
    const char *p = lit + 1;
    while (*p && *p != '}') {
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || n == max)
            return -1;
        out[n++] = (size_t)v;
        p = *end == ',' ? end + 1 : end;
    }
    return *p == '}' && p[1] == '\0' ? n : -1;
}

/* Elements of a text[] literal: one more than its top-level commas (names
 * hold no quote, comma or brace, see channel.h). */
static long body_text_elems(const char *lit)
{
    long n = 1;
    for (const char *p = lit; *p; p++)
        n += *p == ',';
    return n;
}

static void body_check_accepted(const uint8_t *data, size_t size, const ingest_job_t *job)
{
    FUZZ_CHECK(job->nevents >= 1 && job->nevents <= FUZZ_MAX_BATCH);
    FUZZ_CHECK(job->body == (const char *)data && job->body_len == size);
    size_t offsets[FUZZ_MAX_BATCH], lengths[FUZZ_MAX_BATCH];
    FUZZ_CHECK(body_ints(job->offsets.data, offsets, FUZZ_MAX_BATCH) == job->nevents);
    FUZZ_CHECK(body_ints(job->lengths.data, lengths, FUZZ_MAX_BATCH) == job->nevents);
    FUZZ_CHECK(body_text_elems(job->channels.data) == job->nevents);
    FUZZ_CHECK(body_text_elems(job->types.data) == job->nevents);

    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(root);
    FUZZ_CHECK(job->is_batch == json_is_array(root));
    for (int k = 0; k < job->nevents; k++) {
        FUZZ_CHECK(offsets[k] <= size && lengths[k] <= size - offsets[k]);
        json_t *event = job->is_batch ? json_array_get(root, (size_t)k) : root;
        json_t *stored = json_loadb((const char *)data + offsets[k], lengths[k],
                                    JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
        FUZZ_CHECK(stored && json_equal(stored, json_object_get(event, "data")));
        json_decref(stored);
    }
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ingest_job_t *job = hf_calloc(1, sizeof *job);
    char err[256];
    err[0] = '\0';
    hf_err_t rc = ingest_parse_body((const char *)data, size, FUZZ_MAX_BATCH, job, err, sizeof err);
    if (rc == HF_OK) {
        body_check_accepted(data, size, job);
    } else {
        FUZZ_CHECK(rc == HF_ERR_INVALID || rc == HF_ERR_TOO_LARGE);
        /* routes.c answers with this message inside the JSON error body. */
        hf_buf_t answer = HF_BUF_INIT;
        hf_http_error_body(&answer, "invalid_request", err);
        FUZZ_CHECK(err[0] != '\0');
        FUZZ_CHECK(fuzz_is_json(answer.data, answer.len));
        hf_buf_free(&answer);
    }
    ingest_job_free(job);
    return 0;
}
