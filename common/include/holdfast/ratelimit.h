/* ratelimit.h - token buckets, alone or keyed by a string.
 *
 * A bucket holds up to burst tokens and refills at rate per second; taking
 * more than it holds is refused with the seconds until it would succeed
 * (an HTTP Retry-After). hf_ratelimit_t keys buckets by a string (a
 * token's subject, a client address) and forgets buckets that have
 * refilled, so its size follows the active keys, not all keys ever seen.
 * Not thread-safe: each user (one per event-loop thread) keeps its own. */
#ifndef HOLDFAST_RATELIMIT_H
#define HOLDFAST_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct hf_bucket {
    double tokens;
    int64_t last_us; /* 0: never used, i.e. full */
} hf_bucket_t;

/* rate <= 0 means unlimited. A cost above burst is taken as burst, so a
 * large batch waits for a full bucket instead of never passing. */
bool hf_bucket_take(hf_bucket_t *b, double rate, double burst, double cost, int64_t now_us,
                    int *retry_after_s);

typedef struct hf_ratelimit hf_ratelimit_t;

hf_ratelimit_t *hf_ratelimit_new(double rate, double burst);
void hf_ratelimit_free(hf_ratelimit_t *rl);
bool hf_ratelimit_take(hf_ratelimit_t *rl, const char *key, double cost, int64_t now_us,
                       int *retry_after_s);

#endif
