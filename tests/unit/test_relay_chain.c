/* test_relay_chain.c - prev_offset stamping: per channel, in offset order,
 * across batches, skipping undelivered events, and bounded memory. */
#include <stdlib.h>

#include "check.h"
#include "holdfast/envelope.h"
#include "relay.h"

static relay_event_t ev(int partition, const char *channel, int64_t offset, bool delivered)
{
    relay_event_t e = {0};
    e.partition = partition;
    e.channel = channel;
    e.offset = delivered ? offset : HF_OFFSET_NONE;
    e.delivered = delivered;
    e.prev_offset = 12345; /* must be overwritten for delivered events */
    return e;
}

static const relay_event_t *find(const relay_batch_t *b, int partition, int64_t offset)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->events[i].partition == partition && b->events[i].offset == offset &&
            b->events[i].delivered)
            return &b->events[i];
    return NULL;
}

static void test_stamp_order_and_channels(void)
{
    relay_chain_t *c = relay_chain_new(100);
    relay_chain_set(c, "a", HF_OFFSET_NONE); /* known: no event yet */
    relay_chain_set(c, "b", 7);              /* known: last at 7 */
    relay_event_t events[] = {
        ev(1, "b", 10, true), ev(0, "a", 3, true),  ev(1, "b", 9, true),
        ev(0, "a", 1, true),  ev(0, "a", 0, false), ev(1, "c", 11, true),
    };
    relay_batch_t b = {.events = events, .n = 6, .cap = 6};
    relay_chain_set(c, "c", 4);
    relay_chain_stamp(c, &b);
    CHECK_INT_EQ(find(&b, 0, 1)->prev_offset, HF_OFFSET_NONE);
    CHECK_INT_EQ(find(&b, 0, 3)->prev_offset, 1);
    CHECK_INT_EQ(find(&b, 1, 9)->prev_offset, 7);
    CHECK_INT_EQ(find(&b, 1, 10)->prev_offset, 9);
    CHECK_INT_EQ(find(&b, 1, 11)->prev_offset, 4);
    /* sorted by partition then offset, undelivered first in its partition */
    CHECK_INT_EQ(b.events[0].delivered, 0);
    for (size_t i = 1; i < b.n; i++)
        CHECK(b.events[i - 1].partition < b.events[i].partition ||
              b.events[i - 1].offset < b.events[i].offset);
    int64_t off;
    CHECK(relay_chain_get(c, "a", &off) && off == 3);
    CHECK(relay_chain_get(c, "b", &off) && off == 10);

    /* the next batch continues the chain */
    relay_event_t next[] = {ev(1, "b", 12, true)};
    relay_batch_t b2 = {.events = next, .n = 1, .cap = 1};
    relay_chain_stamp(c, &b2);
    CHECK_INT_EQ(next[0].prev_offset, 10);
    relay_chain_free(c);
}

static void test_bounded(void)
{
    relay_chain_t *c = relay_chain_new(100);
    char names[150][8];
    for (int i = 0; i < 100; i++) {
        snprintf(names[i], sizeof names[i], "ch%d", i);
        relay_chain_set(c, names[i], i);
    }
    int64_t off;
    CHECK(relay_chain_get(c, "ch99", &off) && off == 99);
    relay_chain_reserve(c, 1); /* would exceed: emptied, to be refilled from PostgreSQL */
    CHECK(!relay_chain_get(c, "ch99", &off));
    relay_chain_set(c, "x", 1);
    relay_chain_reserve(c, 50); /* fits: kept */
    CHECK(relay_chain_get(c, "x", &off) && off == 1);
    relay_chain_free(c);
}

int main(void)
{
    test_stamp_order_and_channels();
    test_bounded();
    CHECK_MAIN_END();
}
