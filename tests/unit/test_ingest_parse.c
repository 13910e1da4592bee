/* POST /v1/events bodies: fields, exact payload spans, and refusals. */
#include <string.h>

#include <jansson.h>

#include "check.h"
#include "holdfast/alloc.h"
#include "ingest.h"

static hf_err_t parse(const char *body, ingest_job_t **job_out, char *err)
{
    ingest_job_t *job = hf_calloc(1, sizeof *job);
    hf_err_t rc = ingest_parse_body(body, strlen(body), 1000, job, err, 256);
    *job_out = job;
    return rc;
}

/* The payload of event i as the writer will slice it from the body. */
static void payload_of(const ingest_job_t *job, int i, char *out, size_t outsz)
{
    long offs[64], lens[64];
    int n = 0;
    const char *p = job->offsets.data + 1;
    const char *q = job->lengths.data + 1;
    while (n < 64 && *p && *p != '}') {
        offs[n] = strtol(p, (char **)&p, 10);
        lens[n] = strtol(q, (char **)&q, 10);
        n++;
        if (*p == ',')
            p++;
        if (*q == ',')
            q++;
    }
    snprintf(out, outsz, "%.*s", (int)lens[i], job->body + offs[i]);
}

/* Found by fuzz_ingest_body: refusals quote the client's bytes, and the
 * message goes into a JSON answer, which must be UTF-8. For an escape of a
 * non-ASCII character jansson's error text ends with the character's first
 * byte only ("invalid \\uXXXX escape near '"\\u0e\xc7'"), and an unknown
 * field's name is cut at 64 bytes, maybe inside a character. */
static void test_refusals_are_utf8(void)
{
    char long_key[128] = "{\"channel\":\"a\",\"data\":1,\"x";
    for (int i = 0; i < 40; i++)
        strcat(long_key, "\xc3\xa9"); /* the cut after x and 31 of them halves the 32nd */
    strcat(long_key, "\":2}");
    const char *const bad[] = {
        "{\"cha\":\"\\u0e\xc7\xa3\x8a\x9b\xc7\xcc\x9b\xa3\\\\\"}", /* the fuzzer's input */
        "{\"channel\":\"a\",\"data\":\"\\\xc3\xa9\"}",
        long_key,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ingest_job_t *job;
        char err[256];
        CHECK(parse(bad[i], &job, err) == HF_ERR_INVALID);
        json_t *text = json_string(err); /* NULL unless UTF-8 */
        CHECK(text != NULL);
        json_decref(text);
        ingest_job_free(job);
    }
}

/* Found by fuzz_ingest_body: jansson drops a NUL byte that follows a number
 * or a literal, so it accepted this batch, and the scanner, which does not
 * skip it, stored the wrong bytes as each event's data. */
static void test_nul_byte_refused(void)
{
    static const char body[] = "[{\"channel\":\"n\",\"data\":-1.5e+30\0},"
                               "{\"channel\":\"n\",\"data\":0}]";
    static const char single[] = "{\"channel\":\"a\",\"data\":true\0}";
    ingest_job_t *job = hf_calloc(1, sizeof *job);
    char err[256] = "";
    CHECK_INT_EQ(ingest_parse_body(body, sizeof body - 1, 1000, job, err, sizeof err),
                 HF_ERR_INVALID);
    CHECK_STR_EQ(err, "malformed JSON: a NUL byte at offset 31");
    ingest_job_free(job);
    job = hf_calloc(1, sizeof *job);
    CHECK_INT_EQ(ingest_parse_body(single, sizeof single - 1, 1000, job, err, sizeof err),
                 HF_ERR_INVALID);
    ingest_job_free(job);
}

int main(void)
{
    ingest_job_t *job;
    char err[256], payload[256];

    const char *one = "{ \"type\":\"t.x\" , \"data\" :  {\"a\": [1, \"}\\\"]\"], \"b\":null} ,"
                      "\"channel\":\"orders:1\"}";
    CHECK(parse(one, &job, err) == HF_OK);
    CHECK(!job->is_batch);
    CHECK_INT_EQ(job->nevents, 1);
    CHECK_STR_EQ(job->channels.data, "{\"orders:1\"}");
    CHECK_STR_EQ(job->types.data, "{\"t.x\"}");
    payload_of(job, 0, payload, sizeof payload);
    CHECK_STR_EQ(payload, "{\"a\": [1, \"}\\\"]\"], \"b\":null}");
    ingest_job_free(job);

    const char *batch = "[{\"channel\":\"a\",\"data\":1},\n {\"channel\":\"b\",\"data\":\"s,}\"},"
                        "{\"data\":[[],{}],\"channel\":\"c\",\"type\":null},{\"channel\":\"d\","
                        "\"d\\u0061ta\":true}]";
    CHECK(parse(batch, &job, err) == HF_OK);
    CHECK(job->is_batch);
    CHECK_INT_EQ(job->nevents, 4);
    CHECK_STR_EQ(job->channels.data, "{\"a\",\"b\",\"c\",\"d\"}");
    CHECK_STR_EQ(job->types.data, "{NULL,NULL,NULL,NULL}");
    payload_of(job, 0, payload, sizeof payload);
    CHECK_STR_EQ(payload, "1");
    payload_of(job, 1, payload, sizeof payload);
    CHECK_STR_EQ(payload, "\"s,}\"");
    payload_of(job, 2, payload, sizeof payload);
    CHECK_STR_EQ(payload, "[[],{}]");
    payload_of(job, 3, payload, sizeof payload); /* escaped key "data" */
    CHECK_STR_EQ(payload, "true");
    ingest_job_free(job);

    static const char *const refused[] = {
        "",
        "{",
        "null",
        "[]",
        "[1]",
        "{\"data\":1}",
        "{\"channel\":\"a\"}",
        "{\"channel\":\"a b\",\"data\":1}",
        "{\"channel\":\"a\",\"data\":1,\"extra\":2}",
        "{\"channel\":\"a\",\"data\":1,\"data\":1}",
        "{\"channel\":\"a\",\"data\":1,\"type\":7}",
        "{\"channel\":\"a\",\"data\":\"\\u0000\"}",
        "{\"channel\":\"a\",\"data\":1} trailing",
        "{\"channel\":\"\xff\",\"data\":1}",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        err[0] = '\0';
        CHECK(parse(refused[i], &job, err) == HF_ERR_INVALID);
        CHECK(err[0] != '\0');
        ingest_job_free(job);
    }

    hf_buf_t many = HF_BUF_INIT;
    hf_buf_append_str(&many, "[");
    for (int i = 0; i < 1001; i++)
        hf_buf_printf(&many, "%s{\"channel\":\"a\",\"data\":%d}", i ? "," : "", i);
    hf_buf_append_str(&many, "]");
    CHECK(parse(many.data, &job, err) == HF_ERR_TOO_LARGE);
    ingest_job_free(job);
    hf_buf_free(&many);
    test_refusals_are_utf8();
    test_nul_byte_refused();
    CHECK_MAIN_END();
}
