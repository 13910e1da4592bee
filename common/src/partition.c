/* partition.c - channel -> partition (invariant 3, docs/design.md). Must
 * match holdfast.partition_for() in schemas/sql/001_core.sql. */
#include "holdfast/partition.h"

uint32_t hf_fnv1a32(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

int hf_partition_for(const char *channel, size_t len, int partition_count)
{
    return (int)(hf_fnv1a32(channel, len) % (uint32_t)partition_count);
}
