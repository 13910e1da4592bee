/* chain.c - channel -> offset of its last event in Kafka (this epoch).
 *
 * prev_offset of an event is its channel's entry before it. The map only
 * remembers about max_entries channels: when a batch would not fit it is
 * emptied and refilled from PostgreSQL on the next misses (one query per
 * batch), which keeps memory bounded without an LRU on the hot path. The
 * relay refills only while PostgreSQL holds every offset it stamped
 * (flow.c). */
#include <stdlib.h>
#include <string.h>

#include "holdfast/alloc.h"
#include "holdfast/envelope.h"
#include "relay.h"

typedef struct chain_entry {
    char *channel; /* owned */
    int64_t offset;
    struct chain_entry *next;
} chain_entry_t;

struct relay_chain {
    chain_entry_t **slots;
    size_t nslots; /* power of two */
    size_t count, max_entries;
};

static uint32_t chain_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

relay_chain_t *relay_chain_new(size_t max_entries)
{
    relay_chain_t *c = hf_calloc(1, sizeof *c);
    c->max_entries = max_entries ? max_entries : 1;
    c->nslots = 64;
    while (c->nslots < c->max_entries)
        c->nslots <<= 1;
    c->slots = hf_calloc(c->nslots, sizeof *c->slots);
    return c;
}

void relay_chain_clear(relay_chain_t *c)
{
    for (size_t i = 0; i < c->nslots; i++) {
        chain_entry_t *e = c->slots[i];
        while (e) {
            chain_entry_t *next = e->next;
            hf_free(e->channel);
            hf_free(e);
            e = next;
        }
        c->slots[i] = NULL;
    }
    c->count = 0;
}

void relay_chain_free(relay_chain_t *c)
{
    if (!c)
        return;
    relay_chain_clear(c);
    hf_free(c->slots);
    hf_free(c);
}

static chain_entry_t *chain_find(relay_chain_t *c, const char *channel)
{
    chain_entry_t *e = c->slots[chain_hash(channel) & (c->nslots - 1)];
    while (e && strcmp(e->channel, channel) != 0)
        e = e->next;
    return e;
}

bool relay_chain_get(relay_chain_t *c, const char *channel, int64_t *offset)
{
    chain_entry_t *e = chain_find(c, channel);
    if (!e)
        return false;
    *offset = e->offset;
    return true;
}

void relay_chain_set(relay_chain_t *c, const char *channel, int64_t offset)
{
    chain_entry_t *e = chain_find(c, channel);
    if (e) {
        e->offset = offset;
        return;
    }
    size_t slot = chain_hash(channel) & (c->nslots - 1);
    e = hf_malloc(sizeof *e);
    e->channel = hf_strdup(channel);
    e->offset = offset;
    e->next = c->slots[slot];
    c->slots[slot] = e;
    c->count++;
}

size_t relay_chain_count(const relay_chain_t *c)
{
    return c->count;
}

bool relay_chain_fits(const relay_chain_t *c, size_t n)
{
    return c->count + n <= c->max_entries;
}

void relay_chain_stamp(relay_chain_t *c, relay_event_t *const *evs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        relay_event_t *ev = evs[i];
        int64_t prev = HF_OFFSET_NONE;
        if (!relay_chain_get(c, ev->channel, &prev))
            prev = HF_OFFSET_NONE; /* cannot happen after chain_fill; -1 is the safe side */
        ev->prev_offset = prev;
        relay_chain_set(c, ev->channel, ev->offset);
    }
}
