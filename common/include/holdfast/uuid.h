/* uuid.h - event ids: version 7 UUIDs (RFC 9562), as text.
 *
 * 48 bits of Unix milliseconds, then 74 random bits: ids sort by creation
 * time, so the events table's primary key grows at its right edge, and a
 * time window of events is a range of ids. holdfast.uuid_v7() in SQL makes
 * the same layout. Thread-safe (getrandom). */
#ifndef HOLDFAST_UUID_H
#define HOLDFAST_UUID_H

#include <stdint.h>

#define HF_UUID_TEXT_LEN 36

/* Writes a new id of the current time into out (37 bytes, NUL-terminated). */
void hf_uuid_v7(char out[HF_UUID_TEXT_LEN + 1]);
/* The same for a given time and 10 random bytes (tests). */
void hf_uuid_v7_at(uint64_t unix_ms, const uint8_t random[10], char out[HF_UUID_TEXT_LEN + 1]);
/* Any UUID's 16 bytes as text, lower-case hex with dashes, into out (37
 * bytes, NUL-terminated). */
void hf_uuid_format(const uint8_t b[16], char out[HF_UUID_TEXT_LEN + 1]);

#endif
