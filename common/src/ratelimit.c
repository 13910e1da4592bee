/* ratelimit.c - token buckets; see ratelimit.h. */
#include "holdfast/ratelimit.h"

#include <math.h>

#include "holdfast/alloc.h"
#include "holdfast/strmap.h"

#define RATELIMIT_SWEEP_AT 4096 /* keys before refilled buckets are dropped */

struct hf_ratelimit {
    double rate, burst;
    hf_strmap_t *buckets; /* key -> hf_bucket_t (owned) */
    int64_t swept_us;
};

static void bucket_refill(hf_bucket_t *b, double rate, double burst, int64_t now_us)
{
    if (b->last_us == 0)
        b->tokens = burst;
    else if (now_us > b->last_us)
        b->tokens = fmin(burst, b->tokens + rate * (double)(now_us - b->last_us) / 1e6);
    b->last_us = now_us;
}

bool hf_bucket_take(hf_bucket_t *b, double rate, double burst, double cost, int64_t now_us,
                    int *retry_after_s)
{
    if (rate <= 0)
        return true;
    if (cost > burst)
        cost = burst;
    bucket_refill(b, rate, burst, now_us);
    if (b->tokens >= cost) {
        b->tokens -= cost;
        return true;
    }
    if (retry_after_s)
        *retry_after_s = (int)ceil((cost - b->tokens) / rate);
    if (retry_after_s && *retry_after_s < 1)
        *retry_after_s = 1;
    return false;
}

hf_ratelimit_t *hf_ratelimit_new(double rate, double burst)
{
    hf_ratelimit_t *rl = hf_calloc(1, sizeof(*rl));
    rl->rate = rate;
    rl->burst = burst;
    rl->buckets = hf_strmap_new();
    return rl;
}

static void ratelimit_free_bucket(const char *key, void *value, void *arg)
{
    (void)key;
    (void)arg;
    hf_free(value);
}

void hf_ratelimit_free(hf_ratelimit_t *rl)
{
    if (!rl)
        return;
    hf_strmap_each(rl->buckets, ratelimit_free_bucket, NULL);
    hf_strmap_free(rl->buckets);
    hf_free(rl);
}

typedef struct sweep {
    hf_ratelimit_t *rl;
    int64_t now_us;
    const char **full; /* keys of refilled buckets */
    size_t nfull;
} sweep_t;

static void ratelimit_find_full(const char *key, void *value, void *arg)
{
    sweep_t *s = arg;
    hf_bucket_t *b = value;
    bucket_refill(b, s->rl->rate, s->rl->burst, s->now_us);
    if (b->tokens >= s->rl->burst)
        s->full[s->nfull++] = key;
}

/* A refilled bucket is the same as no bucket: forget those. */
static void ratelimit_sweep(hf_ratelimit_t *rl, int64_t now_us)
{
    sweep_t s = {rl, now_us, hf_calloc(hf_strmap_len(rl->buckets), sizeof(char *)), 0};
    hf_strmap_each(rl->buckets, ratelimit_find_full, &s);
    for (size_t i = 0; i < s.nfull; i++)
        hf_free(hf_strmap_remove(rl->buckets, s.full[i]));
    hf_free(s.full);
    rl->swept_us = now_us;
}

bool hf_ratelimit_take(hf_ratelimit_t *rl, const char *key, double cost, int64_t now_us,
                       int *retry_after_s)
{
    if (rl->rate <= 0)
        return true;
    hf_bucket_t *b = hf_strmap_get(rl->buckets, key);
    if (!b) {
        if (hf_strmap_len(rl->buckets) >= RATELIMIT_SWEEP_AT && now_us - rl->swept_us > 1000000)
            ratelimit_sweep(rl, now_us);
        b = hf_calloc(1, sizeof(*b));
        hf_strmap_put(rl->buckets, key, b);
    }
    return hf_bucket_take(b, rl->rate, rl->burst, cost, now_us, retry_after_s);
}
