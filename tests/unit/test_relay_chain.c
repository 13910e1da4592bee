/* test_relay_chain.c - prev_offset stamping: per channel, in the order
 * given (a partition's offset order), across batches, and bounded memory. */
#include <stdlib.h>

#include "check.h"
#include "holdfast/envelope.h"
#include "relay.h"

static relay_event_t ev(int partition, const char *channel, int64_t offset)
{
    relay_event_t e = {0};
    e.partition = partition;
    e.channel = channel;
    e.offset = offset;
    e.delivered = true;
    e.prev_offset = 12345; /* must be overwritten */
    return e;
}

static void test_stamp_channels(void)
{
    relay_chain_t *c = relay_chain_new(100);
    relay_chain_set(c, "a", HF_OFFSET_NONE); /* known: no event yet */
    relay_chain_set(c, "b", 7);              /* known: last at 7 */
    relay_chain_set(c, "c", 4);
    relay_event_t events[] = {ev(0, "a", 1), ev(0, "b", 9), ev(0, "a", 3), ev(0, "b", 10),
                              ev(0, "c", 11)};
    relay_event_t *evs[] = {&events[0], &events[1], &events[2], &events[3], &events[4]};
    relay_chain_stamp(c, evs, 5);
    CHECK_INT_EQ(events[0].prev_offset, HF_OFFSET_NONE);
    CHECK_INT_EQ(events[1].prev_offset, 7);
    CHECK_INT_EQ(events[2].prev_offset, 1);
    CHECK_INT_EQ(events[3].prev_offset, 9);
    CHECK_INT_EQ(events[4].prev_offset, 4);
    int64_t off;
    CHECK(relay_chain_get(c, "a", &off) && off == 3);
    CHECK(relay_chain_get(c, "b", &off) && off == 10);

    /* the next batch continues the chain */
    relay_event_t next = ev(0, "b", 12);
    relay_event_t *nevs[] = {&next};
    relay_chain_stamp(c, nevs, 1);
    CHECK_INT_EQ(next.prev_offset, 10);
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
    CHECK_INT_EQ(relay_chain_count(c), 100);
    CHECK(!relay_chain_fits(c, 1)); /* would exceed: the relay empties it and refills */
    relay_chain_clear(c);
    CHECK(!relay_chain_get(c, "ch99", &off));
    relay_chain_set(c, "x", 1);
    CHECK(relay_chain_fits(c, 50));
    CHECK(relay_chain_get(c, "x", &off) && off == 1);
    relay_chain_free(c);
}

int main(void)
{
    test_stamp_channels();
    test_bounded();
    CHECK_MAIN_END();
}
