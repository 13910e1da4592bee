/* chains.h - per-channel "last offset seen" while reading a partition.
 *
 * holdfast-replay derives each event's prev_offset from the log itself:
 * the offset of the previous record with the same key (channel) in the
 * same epoch. This table remembers, per channel, that offset and epoch.
 * Bounded: past max_channels it forgets everything (later first
 * occurrences are then reported as unknown), so memory stays bounded on
 * partitions with millions of channels.
 *
 * Ownership: the table copies channel names and epochs. */
#ifndef HOLDFAST_REPLAY_CHAINS_H
#define HOLDFAST_REPLAY_CHAINS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct replay_chains replay_chains_t;

replay_chains_t *replay_chains_new(size_t max_channels);
void replay_chains_free(replay_chains_t *c);

/* Records that channel had a record at offset in epoch (epoch may be "").
 * Returns true and sets *prev to the channel's previous offset in the same
 * epoch (-1 when the epoch changed since), or false when the channel was
 * not seen yet. */
bool replay_chains_step(replay_chains_t *c, const char *channel, size_t channel_len,
                        const char *epoch, size_t epoch_len, int64_t offset, int64_t *prev);

/* True once the table had to forget (more than max_channels channels). */
bool replay_chains_forgot(const replay_chains_t *c);

#endif
