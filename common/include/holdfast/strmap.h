/* strmap.h - a hash map from string keys to pointers.
 *
 * Owns copies of its keys, never the values. Chained buckets, doubling
 * when the load passes 1. Not thread-safe: each user keeps its own. */
#ifndef HOLDFAST_STRMAP_H
#define HOLDFAST_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct hf_strmap hf_strmap_t;

hf_strmap_t *hf_strmap_new(void);
/* Frees the map and its keys (values are the caller's). */
void hf_strmap_free(hf_strmap_t *map);
void *hf_strmap_get(const hf_strmap_t *map, const char *key);
/* Sets key to value (replacing any earlier value). */
void hf_strmap_put(hf_strmap_t *map, const char *key, void *value);
/* Removes key; returns its value, or NULL when absent. */
void *hf_strmap_remove(hf_strmap_t *map, const char *key);
size_t hf_strmap_len(const hf_strmap_t *map);
/* Calls fn for every entry; fn must not change the map. */
void hf_strmap_each(const hf_strmap_t *map, void (*fn)(const char *key, void *value, void *arg),
                    void *arg);

#endif
