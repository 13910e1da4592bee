/* strmap.c - string-keyed hash map; see strmap.h. */
#include "holdfast/strmap.h"

#include <string.h>

#include "holdfast/alloc.h"
#include "holdfast/partition.h"

typedef struct strmap_entry {
    char *key;
    void *value;
    struct strmap_entry *next;
} strmap_entry_t;

struct hf_strmap {
    strmap_entry_t **buckets;
    size_t nbuckets; /* a power of two */
    size_t len;
};

hf_strmap_t *hf_strmap_new(void)
{
    hf_strmap_t *map = hf_calloc(1, sizeof *map);
    map->nbuckets = 64;
    map->buckets = hf_calloc(map->nbuckets, sizeof *map->buckets);
    return map;
}

void hf_strmap_free(hf_strmap_t *map)
{
    if (!map)
        return;
    for (size_t i = 0; i < map->nbuckets; i++) {
        strmap_entry_t *e = map->buckets[i];
        while (e) {
            strmap_entry_t *next = e->next;
            hf_free(e->key);
            hf_free(e);
            e = next;
        }
    }
    hf_free(map->buckets);
    hf_free(map);
}

static size_t strmap_slot(size_t nbuckets, const char *key)
{
    return hf_fnv1a32(key, strlen(key)) & (nbuckets - 1);
}

static strmap_entry_t **strmap_find(const hf_strmap_t *map, const char *key)
{
    strmap_entry_t **at = &map->buckets[strmap_slot(map->nbuckets, key)];
    while (*at && strcmp((*at)->key, key) != 0)
        at = &(*at)->next;
    return at;
}

void *hf_strmap_get(const hf_strmap_t *map, const char *key)
{
    strmap_entry_t *e = *strmap_find(map, key);
    return e ? e->value : NULL;
}

static void strmap_grow(hf_strmap_t *map)
{
    size_t n = map->nbuckets * 2;
    strmap_entry_t **b = hf_calloc(n, sizeof *b);
    for (size_t i = 0; i < map->nbuckets; i++) {
        strmap_entry_t *e = map->buckets[i];
        while (e) {
            strmap_entry_t *next = e->next;
            size_t slot = strmap_slot(n, e->key);
            e->next = b[slot];
            b[slot] = e;
            e = next;
        }
    }
    hf_free(map->buckets);
    map->buckets = b;
    map->nbuckets = n;
}

void hf_strmap_put(hf_strmap_t *map, const char *key, void *value)
{
    strmap_entry_t **at = strmap_find(map, key);
    if (*at) {
        (*at)->value = value;
        return;
    }
    strmap_entry_t *e = hf_calloc(1, sizeof *e);
    e->key = hf_strdup(key);
    e->value = value;
    *at = e;
    if (++map->len > map->nbuckets)
        strmap_grow(map);
}

void *hf_strmap_remove(hf_strmap_t *map, const char *key)
{
    strmap_entry_t **at = strmap_find(map, key);
    strmap_entry_t *e = *at;
    if (!e)
        return NULL;
    *at = e->next;
    void *value = e->value;
    hf_free(e->key);
    hf_free(e);
    map->len--;
    return value;
}

size_t hf_strmap_len(const hf_strmap_t *map)
{
    return map->len;
}

void hf_strmap_each(const hf_strmap_t *map, void (*fn)(const char *key, void *value, void *arg),
                    void *arg)
{
    for (size_t i = 0; i < map->nbuckets; i++)
        for (strmap_entry_t *e = map->buckets[i]; e; e = e->next)
            fn(e->key, e->value, arg);
}
