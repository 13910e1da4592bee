/* fuzz_support.h - what the fuzz targets share: the properties they assert
 * beyond "no crash, no leak", and the credentials their seeds carry.
 *
 * A broken property aborts, which libFuzzer records like any crash (the
 * input lands in the artifact directory). Header-only: each target is one
 * .c file. */
#ifndef HOLDFAST_FUZZ_SUPPORT_H
#define HOLDFAST_FUZZ_SUPPORT_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "holdfast/auth.h"

/* The HS256 secret and the API key the seed tokens are made with
 * (fuzz/make_seeds.py holds the same two). */
#define FUZZ_AUTH_SECRET  "holdfast-fuzz-secret-0123456789abcdef"
#define FUZZ_AUTH_API_KEY "hfk_fuzz_0123456789abcdef0123456789"
/* A fixed clock for token checks, so that a run is reproducible. */
#define FUZZ_AUTH_NOW 1800000000

/* An HS256 verifier with FUZZ_AUTH_SECRET and, when key_patterns is not
 * NULL, the API key FUZZ_AUTH_API_KEY (subject svc-keys) granting those
 * patterns, through a temporary keys file. Aborts on any failure. */
static inline hf_auth_t *fuzz_auth_new(const char *key_patterns)
{
    char path[] = "/tmp/holdfast-fuzz-keys.XXXXXX", err[512];
    hf_auth_config_t cfg = {
        .enabled = true, .alg = "HS256", .secret = FUZZ_AUTH_SECRET, .leeway_s = 30};
    if (key_patterns) {
        int fd = mkstemp(path);
        FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!f)
            abort();
        fprintf(f, "# subject key patterns...\nsvc-keys %s %s\n", FUZZ_AUTH_API_KEY, key_patterns);
        fclose(f);
        cfg.api_keys_file = path;
    }
    hf_auth_t *auth = hf_auth_new(&cfg, err, sizeof err);
    if (key_patterns)
        unlink(path);
    if (!auth) {
        fprintf(stderr, "fuzz_auth_new: %s\n", err);
        abort();
    }
    return auth;
}

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Is text[0..len) one JSON value? jansson refuses invalid UTF-8, so this
 * also proves the text is fit for a JSON answer or a WebSocket text frame. */
static inline bool fuzz_is_json(const char *text, size_t len)
{
    json_t *root = json_loadb(text, len, JSON_DECODE_ANY, NULL);
    bool ok = root != NULL;
    json_decref(root);
    return ok;
}

#endif
