/* strmap.h - a hash map from string keys to pointers.
 *
 * Owns copies of its keys, never the values. Chained buckets, doubling
 * when the load passes 1. Not thread-safe: each user keeps its own. */
#ifndef HOLDFAST_GW_STRMAP_H
#define HOLDFAST_GW_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct gw_strmap gw_strmap_t;

gw_strmap_t *gw_strmap_new(void);
/* Frees the map and its keys (values are the caller's). */
void gw_strmap_free(gw_strmap_t *map);
void *gw_strmap_get(const gw_strmap_t *map, const char *key);
/* Sets key to value (replacing any earlier value). */
void gw_strmap_put(gw_strmap_t *map, const char *key, void *value);
/* Removes key; returns its value, or NULL when absent. */
void *gw_strmap_remove(gw_strmap_t *map, const char *key);
size_t gw_strmap_len(const gw_strmap_t *map);
/* Calls fn for every entry; fn must not change the map. */
void gw_strmap_each(const gw_strmap_t *map, void (*fn)(const char *key, void *value, void *arg),
                    void *arg);

#endif
