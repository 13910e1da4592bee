/* buf.h - a growable byte buffer.
 *
 * The buffer owns its data; hf_buf_release() hands the data to the caller.
 * Data is always NUL-terminated one byte past len so it can be used as a
 * C string when the content is text. Not thread-safe. */
#ifndef HOLDFAST_BUF_H
#define HOLDFAST_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct hf_buf {
    char *data; /* owned; NULL until the first append */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
} hf_buf_t;

#define HF_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void hf_buf_reserve(hf_buf_t *buf, size_t extra);
void hf_buf_append(hf_buf_t *buf, const void *data, size_t len);
void hf_buf_append_str(hf_buf_t *buf, const char *s);
void hf_buf_printf(hf_buf_t *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hf_buf_vprintf(hf_buf_t *buf, const char *fmt, va_list ap);
/* Appends s as the contents of a JSON string (without quotes), escaped. */
void hf_buf_append_json_escaped(hf_buf_t *buf, const char *s, size_t len);
void hf_buf_reset(hf_buf_t *buf);
/* Returns the data (caller frees with hf_free) and leaves buf empty. */
char *hf_buf_release(hf_buf_t *buf, size_t *len_out);
void hf_buf_free(hf_buf_t *buf);

#endif
