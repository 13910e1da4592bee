/* log.h - JSON structured logs to stderr.
 *
 * One line per record: {"ts":"...","level":"info","service":"ingest","msg":"...", fields...}.
 * Thread-safe: each record is formatted into a local buffer and written
 * with a single write(2). Fields are passed as a pre-formatted JSON fragment
 * built with hf_log_kv(), so no record allocates more than one buffer. */
#ifndef HOLDFAST_LOG_H
#define HOLDFAST_LOG_H

typedef enum hf_log_level {
    HF_LOG_DEBUG = 0,
    HF_LOG_INFO = 1,
    HF_LOG_WARN = 2,
    HF_LOG_ERROR = 3,
} hf_log_level_t;

/* service is copied. Call once at start, before threads. */
void hf_log_init(const char *service, hf_log_level_t level);
/* Parses "debug|info|warn|error"; returns -1 if unknown. */
int hf_log_level_parse(const char *name);
int hf_log_enabled(hf_log_level_t level);

/* msg is a printf format. Extra structured fields can be given as
 * hf_logf_kv(level, "\"partition\":3,\"rows\":10", "moved %s", x). */
void hf_log(hf_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hf_logf_kv(hf_log_level_t level, const char *fields_json, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define hf_debug(...) hf_log(HF_LOG_DEBUG, __VA_ARGS__)
#define hf_info(...)  hf_log(HF_LOG_INFO, __VA_ARGS__)
#define hf_warn(...)  hf_log(HF_LOG_WARN, __VA_ARGS__)
#define hf_error(...) hf_log(HF_LOG_ERROR, __VA_ARGS__)

#endif
