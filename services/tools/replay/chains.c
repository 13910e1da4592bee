/* chains.c - per-channel last offset while reading a partition; see chains.h. */
#include "chains.h"

#include <string.h>

#include "holdfast/alloc.h"
#include "holdfast/partition.h"

typedef struct chain_entry {
    struct chain_entry *next;
    int64_t offset;
    char *epoch;
    size_t channel_len;
    char channel[]; /* not NUL-terminated */
} chain_entry_t;

struct replay_chains {
    chain_entry_t **buckets;
    size_t nbuckets, count, max;
    bool forgot; /* the table was cleared once: a miss no longer means "first" */
};

replay_chains_t *replay_chains_new(size_t max_channels)
{
    replay_chains_t *c = hf_calloc(1, sizeof *c);
    c->nbuckets = 4096;
    c->buckets = hf_calloc(c->nbuckets, sizeof *c->buckets);
    c->max = max_channels;
    return c;
}

static void chains_clear(replay_chains_t *c)
{
    for (size_t i = 0; i < c->nbuckets; i++) {
        chain_entry_t *e = c->buckets[i];
        while (e) {
            chain_entry_t *next = e->next;
            hf_free(e->epoch);
            hf_free(e);
            e = next;
        }
        c->buckets[i] = NULL;
    }
    c->count = 0;
}

void replay_chains_free(replay_chains_t *c)
{
    if (!c)
        return;
    chains_clear(c);
    hf_free(c->buckets);
    hf_free(c);
}

static char *chains_epoch_dup(const char *epoch, size_t len)
{
    char *s = hf_malloc(len + 1);
    memcpy(s, epoch, len);
    s[len] = '\0';
    return s;
}

bool replay_chains_step(replay_chains_t *c, const char *channel, size_t channel_len,
                        const char *epoch, size_t epoch_len, int64_t offset, int64_t *prev)
{
    size_t b = hf_fnv1a32(channel, channel_len) % c->nbuckets;
    for (chain_entry_t *e = c->buckets[b]; e; e = e->next) {
        if (e->channel_len != channel_len || memcmp(e->channel, channel, channel_len) != 0)
            continue;
        bool same_epoch = strlen(e->epoch) == epoch_len && memcmp(e->epoch, epoch, epoch_len) == 0;
        *prev = same_epoch ? e->offset : -1; /* a new epoch starts every chain again */
        e->offset = offset;
        if (!same_epoch) {
            hf_free(e->epoch);
            e->epoch = chains_epoch_dup(epoch, epoch_len);
        }
        return true;
    }
    if (c->count >= c->max) {
        chains_clear(c);
        c->forgot = true;
    }
    chain_entry_t *e = hf_malloc(sizeof *e + channel_len);
    memcpy(e->channel, channel, channel_len);
    e->channel_len = channel_len;
    e->offset = offset;
    e->epoch = chains_epoch_dup(epoch, epoch_len);
    e->next = c->buckets[b];
    c->buckets[b] = e;
    c->count++;
    return false;
}

bool replay_chains_forgot(const replay_chains_t *c)
{
    return c->forgot;
}
