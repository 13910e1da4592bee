/* alloc.h - allocation wrappers that abort on out-of-memory.
 *
 * No call site pretends to recover from malloc failure (as in Redis'
 * zmalloc): these never return NULL for a non-zero size. */
#ifndef HOLDFAST_ALLOC_H
#define HOLDFAST_ALLOC_H

#include <stddef.h>

void *hf_malloc(size_t size);
void *hf_calloc(size_t count, size_t size);
void *hf_realloc(void *ptr, size_t size);
char *hf_strdup(const char *s);
char *hf_strndup(const char *s, size_t n);
void *hf_memdup(const void *p, size_t n);
void hf_free(void *ptr);
/* Wipes a NUL-terminated secret (a password read from a file) before
 * freeing it, so it does not linger in freed memory. NULL is fine. */
void hf_free_secret(char *s);

#endif
