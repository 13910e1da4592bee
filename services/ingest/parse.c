/* parse.c - POST /v1/events bodies into ingest jobs.
 *
 * jansson validates the body and gives the fields; a small scanner then
 * finds the exact byte span of each event's "data" value, because the
 * payload is stored as the bytes that were sent, never re-serialised.
 * The scanner only ever runs on text jansson has already accepted as
 * JSON, so it does not validate, it just skips. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "holdfast/alloc.h"
#include "holdfast/partition.h"
#include "holdfast/channel.h"
#include "holdfast/utf8.h"
#include "ingest.h"

typedef struct span {
    size_t start, len;
} span_t;

static size_t scan_ws(const char *s, size_t i, size_t len)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* i is at the opening quote; returns the index after the closing one. */
static size_t scan_string(const char *s, size_t i, size_t len)
{
    for (i++; i < len && s[i] != '"'; i++)
        if (s[i] == '\\')
            i++;
    return i + 1;
}

/* Returns the index just past the value starting at i. */
static size_t scan_value(const char *s, size_t i, size_t len)
{
    if (s[i] == '"')
        return scan_string(s, i, len);
    if (s[i] != '{' && s[i] != '[') {
        while (i < len && !strchr(",}] \t\r\n", s[i]))
            i++;
        return i;
    }
    size_t depth = 0;
    for (; i < len; i++) {
        if (s[i] == '"') {
            i = scan_string(s, i, len) - 1;
        } else if (s[i] == '{' || s[i] == '[') {
            depth++;
        } else if (s[i] == '}' || s[i] == ']') {
            if (--depth == 0)
                return i + 1;
        }
    }
    return len;
}

/* Is the raw key token s[start, end) (with quotes) the key "data"? */
static bool scan_key_is_data(const char *s, size_t start, size_t end)
{
    if (end - start == 6 && memcmp(s + start, "\"data\"", 6) == 0)
        return true;
    if (!memchr(s + start, '\\', end - start))
        return false;
    /* An escaped key such as "d\u0061ta": let jansson decode it. */
    json_t *key = json_loadb(s + start, end - start, JSON_DECODE_ANY, NULL);
    bool is_data = key && json_is_string(key) && strcmp(json_string_value(key), "data") == 0;
    json_decref(key);
    return is_data;
}

/* i is at '{'; finds the span of the member "data". Returns the index
 * after the object. */
static size_t scan_object_data(const char *s, size_t i, size_t len, span_t *data)
{
    i = scan_ws(s, i + 1, len);
    while (i < len && s[i] != '}') {
        size_t key_start = i;
        i = scan_string(s, i, len);
        bool is_data = scan_key_is_data(s, key_start, i);
        i = scan_ws(s, i, len) + 1; /* ':' */
        i = scan_ws(s, i, len);
        size_t value_end = scan_value(s, i, len);
        if (is_data) {
            data->start = i;
            data->len = value_end - i;
        }
        i = scan_ws(s, value_end, len);
        if (i < len && s[i] == ',')
            i = scan_ws(s, i + 1, len);
    }
    return i + 1;
}

/* Appends a quoted text[] element; the validated names contain no quote or backslash. */
static void parse_append_text_elem(hf_buf_t *lit, const char *s, bool first)
{
    hf_buf_append_str(lit, first ? "{" : ",");
    if (s) {
        hf_buf_append_str(lit, "\"");
        hf_buf_append_str(lit, s);
        hf_buf_append_str(lit, "\"");
    } else {
        hf_buf_append_str(lit, "NULL");
    }
}

static hf_err_t parse_event(json_t *obj, int index, bool is_batch, char *errbuf, size_t errsz,
                            const char **channel_out, const char **type_out)
{
    char where[32] = "";
    if (is_batch)
        snprintf(where, sizeof where, "event %d: ", index);
    if (!json_is_object(obj)) {
        snprintf(errbuf, errsz, "%san event must be a JSON object", where);
        return HF_ERR_INVALID;
    }
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        if (strcmp(key, "channel") && strcmp(key, "data") && strcmp(key, "type")) {
            snprintf(errbuf, errsz, "%sunknown field \"%.64s\" (allowed: channel, data, type)",
                     where, key);
            return HF_ERR_INVALID;
        }
    }
    json_t *channel = json_object_get(obj, "channel");
    const char *why = NULL;
    if (!json_is_string(channel)) {
        snprintf(errbuf, errsz, "%s\"channel\" is required and must be a string", where);
        return HF_ERR_INVALID;
    }
    if (hf_channel_validate(json_string_value(channel), json_string_length(channel), &why) !=
        HF_OK) {
        snprintf(errbuf, errsz, "%s%s", where, why);
        return HF_ERR_INVALID;
    }
    if (!json_object_get(obj, "data")) {
        snprintf(errbuf, errsz, "%s\"data\" is required (any JSON value)", where);
        return HF_ERR_INVALID;
    }
    json_t *type = json_object_get(obj, "type");
    if (type && !json_is_null(type)) {
        if (!json_is_string(type) ||
            hf_event_type_validate(json_string_value(type), json_string_length(type), &why) !=
                HF_OK) {
            snprintf(errbuf, errsz, "%s%s", where,
                     json_is_string(type) ? why : "\"type\" must be a string");
            return HF_ERR_INVALID;
        }
    }
    *channel_out = json_string_value(channel);
    *type_out = type && json_is_string(type) ? json_string_value(type) : NULL;
    return HF_OK;
}

static hf_err_t parse_events(json_t *root, const char *body, size_t len, ingest_job_t *job,
                             char *errbuf, size_t errsz)
{
    size_t n = job->is_batch ? json_array_size(root) : 1;
    job->names = hf_calloc(n, sizeof *job->names);
    job->hashes = hf_calloc(n, sizeof *job->hashes);
    size_t i = scan_ws(body, 0, len);
    if (job->is_batch)
        i = scan_ws(body, i + 1, len); /* past '[' */
    for (size_t k = 0; k < n; k++) {
        json_t *obj = job->is_batch ? json_array_get(root, k) : root;
        const char *channel, *type;
        hf_err_t err = parse_event(obj, (int)k, job->is_batch, errbuf, errsz, &channel, &type);
        if (err != HF_OK)
            return err;
        span_t data = {0, 0};
        i = scan_object_data(body, i, len, &data);
        i = scan_ws(body, i, len);
        if (i < len && body[i] == ',')
            i = scan_ws(body, i + 1, len);
        parse_append_text_elem(&job->channels, channel, k == 0);
        job->names[k] = hf_strdup(channel);
        job->hashes[k] = hf_fnv1a32(channel, strlen(channel));
        job->nevents = (int)k + 1;
        parse_append_text_elem(&job->types, type, k == 0);
        hf_buf_printf(&job->offsets, "%s%zu", k ? "," : "{", data.start);
        hf_buf_printf(&job->lengths, "%s%zu", k ? "," : "{", data.len);
    }
    hf_buf_append_str(&job->channels, "}");
    hf_buf_append_str(&job->types, "}");
    hf_buf_append_str(&job->offsets, "}");
    hf_buf_append_str(&job->lengths, "}");
    job->nevents = (int)n;
    return HF_OK;
}

hf_err_t ingest_parse_body(const char *body, size_t len, long long max_batch, ingest_job_t *job,
                           char *errbuf, size_t errbuf_size)
{
    /* JSON text holds no NUL byte (in strings it must be escaped), but
     * jansson drops one that follows a number or a literal ({"data":1\0}),
     * and the scanner, seeing a byte jansson skipped, would then locate
     * the wrong "data" spans. */
    const char *nul = memchr(body, '\0', len);
    if (nul) {
        snprintf(errbuf, errbuf_size, "malformed JSON: a NUL byte at offset %zu",
                 (size_t)(nul - body));
        return HF_ERR_INVALID;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(errbuf, errbuf_size, "malformed JSON at line %d column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        if (errbuf_size)
            hf_utf8_scrub(errbuf);
        return HF_ERR_INVALID;
    }
    hf_err_t err = HF_OK;
    job->body = body;
    job->body_len = len;
    job->is_batch = json_is_array(root);
    if (job->is_batch && json_array_size(root) == 0) {
        snprintf(errbuf, errbuf_size, "a batch must hold at least one event");
        err = HF_ERR_INVALID;
    } else if (job->is_batch && (long long)json_array_size(root) > max_batch) {
        snprintf(errbuf, errbuf_size, "a batch holds at most %lld events (got %zu)", max_batch,
                 json_array_size(root));
        err = HF_ERR_TOO_LARGE;
    } else {
        err = parse_events(root, body, len, job, errbuf, errbuf_size);
    }
    json_decref(root);
    if (err != HF_OK && errbuf_size)
        hf_utf8_scrub(errbuf);
    return err;
}

void ingest_job_free(ingest_job_t *job)
{
    if (!job)
        return;
    hf_buf_free(&job->channels);
    hf_buf_free(&job->types);
    hf_buf_free(&job->offsets);
    hf_buf_free(&job->lengths);
    for (int i = 0; i < job->nevents && job->names; i++)
        hf_free(job->names[i]);
    hf_free(job->names);
    hf_free(job->hashes);
    hf_free(job->idempotency_key);
    hf_free(job);
}
