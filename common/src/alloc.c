/* alloc.c - allocation wrappers that abort on out-of-memory. */
#include "holdfast/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void alloc_oom(size_t size)
{
    /* Plain write(2): the logger itself may need memory. */
    char msg[96];
    int n = snprintf(msg, sizeof msg,
                     "{\"level\":\"error\",\"msg\":\"out of memory (%zu bytes)\"}\n", size);
    if (n > 0 && write(STDERR_FILENO, msg, (size_t)n) < 0) {
        /* nothing left to do */
    }
    abort();
}

void *hf_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        alloc_oom(size);
    return p;
}

void *hf_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        alloc_oom(count * size);
    return p;
}

void *hf_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (!p)
        alloc_oom(size);
    return p;
}

char *hf_strdup(const char *s)
{
    return hf_strndup(s, strlen(s));
}

char *hf_strndup(const char *s, size_t n)
{
    char *p = hf_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void *hf_memdup(const void *p, size_t n)
{
    void *q = hf_malloc(n);
    if (n)
        memcpy(q, p, n);
    return q;
}

void hf_free(void *ptr)
{
    free(ptr);
}

void hf_free_secret(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s)); /* memset could be dropped as a dead store */
    free(s);
}
