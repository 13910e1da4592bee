/* fuzz_pgoutput.c - pgoutput messages through the relay's decoder.
 *
 * The input is a sequence of messages, each a 2-byte big-endian length and
 * that many bytes, fed to one decoder in order (Relation, Begin, Insert,
 * Commit, ... as a walsender sends them). Besides memory errors and
 * leaks, checks what the relay relies on: a decoded event has a valid
 * channel, a canonical id, a partition in range, and its payload and
 * strings lie inside its own allocation; its position is in the open
 * transaction, in order. Every message is libFuzzer-sized exactly (copied
 * to a buffer of its length), so a read past it is caught. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_support.h"
#include "holdfast/alloc.h"
#include "holdfast/channel.h"
#include "relay.h"

static void check_event(const relay_event_t *ev, uint64_t txn_lsn, int32_t *ord)
{
    const char *end = (const char *)ev + ev->size;
    FUZZ_CHECK(hf_channel_validate(ev->channel, strlen(ev->channel), NULL) == HF_OK);
    FUZZ_CHECK(strlen(ev->id) == RELAY_ID_LEN);
    FUZZ_CHECK(ev->partition >= 0 && ev->partition < RELAY_MAX_PARTITIONS);
    FUZZ_CHECK(ev->channel >= ev->data && ev->channel < end);
    FUZZ_CHECK(ev->content_type >= ev->data && ev->content_type < end);
    FUZZ_CHECK((const char *)ev->payload + ev->payload_len <= end);
    FUZZ_CHECK(ev->pos.lsn == txn_lsn && ev->pos.ord == (*ord)++);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    relay_decoder_t *d = relay_decoder_new();
    uint64_t txn_lsn = 0;
    int32_t ord = 0;
    while (size >= 2) {
        size_t len = (size_t)data[0] << 8 | data[1];
        data += 2;
        size -= 2;
        if (len > size)
            len = size;
        uint8_t *msg = hf_malloc(len ? len : 1);
        memcpy(msg, data, len);
        relay_msg_t out;
        char err[256];
        if (relay_decode(d, msg, len, &out, err, sizeof err) == HF_OK) {
            if (out.kind == RELAY_MSG_BEGIN) {
                txn_lsn = out.lsn;
                ord = 0;
            } else if (out.kind == RELAY_MSG_EVENT) {
                check_event(out.event, txn_lsn, &ord);
                hf_free(out.event);
            }
        } else {
            FUZZ_CHECK(err[0] != '\0');
        }
        hf_free(msg);
        data += len;
        size -= len;
    }
    relay_decoder_free(d);
    return 0;
}
