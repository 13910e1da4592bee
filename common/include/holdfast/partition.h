/* partition.h - the fixed channel -> partition mapping (invariant 3,
 * docs/design.md).
 *
 * partition = fnv1a32(channel bytes) mod partition_count. The SQL function
 * holdfast.partition_for() in schemas/sql computes the same value; the
 * shared vectors in tests/vectors/partition.tsv prove they agree. */
#ifndef HOLDFAST_PARTITION_H
#define HOLDFAST_PARTITION_H

#include <stddef.h>
#include <stdint.h>

uint32_t hf_fnv1a32(const void *data, size_t len);
/* partition_count must be > 0. */
int hf_partition_for(const char *channel, size_t len, int partition_count);

#endif
