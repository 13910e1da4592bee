/* buf.c - growable byte buffer. */
#include "holdfast/buf.h"

#include <stdio.h>
#include <string.h>

#include "holdfast/alloc.h"

void hf_buf_reserve(hf_buf_t *buf, size_t extra)
{
    size_t need = buf->len + extra + 1; /* +1 keeps room for the NUL */
    if (need <= buf->cap)
        return;
    size_t cap = buf->cap ? buf->cap : 64;
    while (cap < need)
        cap *= 2;
    buf->data = hf_realloc(buf->data, cap);
    buf->cap = cap;
}

void hf_buf_append(hf_buf_t *buf, const void *data, size_t len)
{
    hf_buf_reserve(buf, len);
    if (len)
        memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
}

void hf_buf_append_str(hf_buf_t *buf, const char *s)
{
    hf_buf_append(buf, s, strlen(s));
}

void hf_buf_vprintf(hf_buf_t *buf, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    hf_buf_reserve(buf, 128);
    int n = vsnprintf(buf->data + buf->len, buf->cap - buf->len, fmt, ap);
    if (n >= 0 && (size_t)n >= buf->cap - buf->len) {
        hf_buf_reserve(buf, (size_t)n);
        n = vsnprintf(buf->data + buf->len, buf->cap - buf->len, fmt, ap2);
    }
    va_end(ap2);
    if (n > 0)
        buf->len += (size_t)n;
}

void hf_buf_printf(hf_buf_t *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hf_buf_vprintf(buf, fmt, ap);
    va_end(ap);
}

void hf_buf_append_json_escaped(hf_buf_t *buf, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    hf_buf_reserve(buf, len + 2);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            hf_buf_append(buf, esc, 2);
        } else if (c == '\n') {
            hf_buf_append(buf, "\\n", 2);
        } else if (c == '\r') {
            hf_buf_append(buf, "\\r", 2);
        } else if (c == '\t') {
            hf_buf_append(buf, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            hf_buf_append(buf, esc, 6);
        } else {
            hf_buf_append(buf, &s[i], 1);
        }
    }
}

void hf_buf_reset(hf_buf_t *buf)
{
    buf->len = 0;
    if (buf->data)
        buf->data[0] = '\0';
}

char *hf_buf_release(hf_buf_t *buf, size_t *len_out)
{
    char *data = buf->data;
    if (len_out)
        *len_out = buf->len;
    if (!data)
        data = hf_calloc(1, 1);
    buf->data = NULL;
    buf->len = buf->cap = 0;
    return data;
}

void hf_buf_free(hf_buf_t *buf)
{
    hf_free(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
}
