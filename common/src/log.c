/* log.c - JSON structured logs to stderr, one write(2) per record. */
#include "holdfast/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "holdfast/buf.h"

static char log_service[32] = "holdfast";
static atomic_int log_level = HF_LOG_INFO;
static const char *const log_level_names[] = {"debug", "info", "warn", "error"};

void hf_log_init(const char *service, hf_log_level_t level)
{
    snprintf(log_service, sizeof log_service, "%s", service);
    atomic_store(&log_level, level);
}

int hf_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, log_level_names[i]) == 0)
            return i;
    return -1;
}

int hf_log_enabled(hf_log_level_t level)
{
    return (int)level >= atomic_load(&log_level);
}

static void log_emit(hf_log_level_t level, const char *fields, const char *fmt, va_list ap)
{
    hf_buf_t msg = HF_BUF_INIT;
    hf_buf_vprintf(&msg, fmt, ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%06ldZ", (long)tv.tv_usec);

    hf_buf_t line = HF_BUF_INIT;
    hf_buf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"service\":\"%s\",\"msg\":\"", ts,
                  log_level_names[level], log_service);
    hf_buf_append_json_escaped(&line, msg.data ? msg.data : "", msg.len);
    hf_buf_append(&line, "\"", 1);
    if (fields && fields[0]) {
        hf_buf_append(&line, ",", 1);
        hf_buf_append_str(&line, fields);
    }
    hf_buf_append(&line, "}\n", 2);
    if (write(STDERR_FILENO, line.data, line.len) < 0) {
        /* stderr gone: nowhere left to report it */
    }
    hf_buf_free(&line);
    hf_buf_free(&msg);
}

void hf_log(hf_log_level_t level, const char *fmt, ...)
{
    if (!hf_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    log_emit(level, NULL, fmt, ap);
    va_end(ap);
}

void hf_logf_kv(hf_log_level_t level, const char *fields_json, const char *fmt, ...)
{
    if (!hf_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    log_emit(level, fields_json, fmt, ap);
    va_end(ap);
}
