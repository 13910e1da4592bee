/* uuid.c - version 7 UUIDs; see uuid.h. */
#include "holdfast/uuid.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "holdfast/clock.h"

void hf_uuid_v7_at(uint64_t unix_ms, const uint8_t random[10], char out[HF_UUID_TEXT_LEN + 1])
{
    uint8_t b[16];
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(unix_ms >> (40 - 8 * i));
    memcpy(b + 6, random, 10);
    b[6] = (uint8_t)(0x70 | (b[6] & 0x0f)); /* version 7 */
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f)); /* variant 10 */
    hf_uuid_format(b, out);
}

void hf_uuid_format(const uint8_t b[16], char out[HF_UUID_TEXT_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    int k = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[k++] = '-';
        out[k++] = hex[b[i] >> 4];
        out[k++] = hex[b[i] & 15];
    }
    out[k] = '\0';
}

void hf_uuid_v7(char out[HF_UUID_TEXT_LEN + 1])
{
    uint8_t random[10];
    if (getrandom(random, sizeof random, 0) != (ssize_t)sizeof random)
        abort(); /* the kernel's generator failing is not something to run on */
    hf_uuid_v7_at((uint64_t)(hf_wall_us() / 1000), random, out);
}
