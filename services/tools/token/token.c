/* token.c - holdfast-token: mint a token the services accept.
 *
 * Signs {"sub", "iat", "exp", "aud", "iss", "publish", "subscribe"} (auth.h) with an
 * HS256 secret file or an RS256/ES256 private key file and prints the
 * token. For operators issuing service tokens and for the local stack's
 * demo tokens; applications normally mint their users' tokens with their
 * own JWT library and the same claims.
 *
 * Exit: 0 token printed; 2 bad usage or key. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <jwt.h>

#include "holdfast/config.h"

typedef struct token_config {
    char *key_file;
    char *alg;
    char *sub;
    char *publish;
    char *subscribe;
    long long ttl_s;
    char *aud;
    char *iss;
} token_config_t;

static const hf_conf_spec_t token_specs[] = {
    {"key-file", HF_CONF_STRING, offsetof(token_config_t, key_file), NULL, 0, 0,
     "HS256: the shared secret file; RS256/ES256: the PEM private key"},
    {"alg", HF_CONF_STRING, offsetof(token_config_t, alg), "HS256", 0, 0, "HS256, RS256 or ES256"},
    {"sub", HF_CONF_STRING, offsetof(token_config_t, sub), NULL, 0, 0,
     "the subject (a user or service name)"},
    {"publish", HF_CONF_STRING, offsetof(token_config_t, publish), "", 0, 0,
     "comma-separated channel patterns it may publish to (e.g. orders:*)"},
    {"subscribe", HF_CONF_STRING, offsetof(token_config_t, subscribe), "", 0, 0,
     "comma-separated channel patterns it may subscribe to"},
    {"ttl", HF_CONF_INT, offsetof(token_config_t, ttl_s), "3600", 0, 100LL * 365 * 86400,
     "seconds until it expires (0: never; the services refuse such tokens unless "
     "--auth-require-exp=false; at most their --auth-max-token-lifetime, 24h by default)"},
    {"aud", HF_CONF_STRING, offsetof(token_config_t, aud), NULL, 0, 0,
     "the 'aud' claim (for services run with --auth-audience)"},
    {"iss", HF_CONF_STRING, offsetof(token_config_t, iss), NULL, 0, 0,
     "the 'iss' claim (for services run with --auth-issuer)"},
};
#define TOKEN_NSPECS (sizeof token_specs / sizeof token_specs[0])

static const char token_usage[] = "holdfast-token: prints a signed token for holdfast-ingest and "
                                  "holdfast-gateway (claims: sub, exp, publish, subscribe).";

static json_t *token_patterns(const char *list)
{
    json_t *arr = json_array();
    char *copy = strdup(list), *save = NULL;
    for (char *p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save))
        if (*p)
            json_array_append_new(arr, json_string(p));
    free(copy);
    return arr;
}

static char *token_claims(const token_config_t *cfg)
{
    long long now = (long long)time(NULL);
    json_t *claims = json_pack("{s:s, s:I}", "sub", cfg->sub, "iat", now);
    if (cfg->ttl_s > 0)
        json_object_set_new(claims, "exp", json_integer(now + cfg->ttl_s));
    if (cfg->aud && cfg->aud[0])
        json_object_set_new(claims, "aud", json_string(cfg->aud));
    if (cfg->iss && cfg->iss[0])
        json_object_set_new(claims, "iss", json_string(cfg->iss));
    json_object_set_new(claims, "publish", token_patterns(cfg->publish));
    json_object_set_new(claims, "subscribe", token_patterns(cfg->subscribe));
    char *text = json_dumps(claims, JSON_COMPACT);
    json_decref(claims);
    return text;
}

static int token_print(const token_config_t *cfg, const unsigned char *key, size_t key_len)
{
    jwt_alg_t alg = jwt_str_alg(cfg->alg);
    if (alg != JWT_ALG_HS256 && alg != JWT_ALG_RS256 && alg != JWT_ALG_ES256) {
        fprintf(stderr, "holdfast-token: --alg must be HS256, RS256 or ES256\n");
        return 2;
    }
    char *claims = token_claims(cfg), *token = NULL;
    jwt_t *jwt = NULL;
    if (jwt_new(&jwt) == 0 && jwt_add_grants_json(jwt, claims) == 0 &&
        jwt_set_alg(jwt, alg, key, (int)key_len) == 0)
        token = jwt_encode_str(jwt);
    jwt_free(jwt);
    free(claims);
    if (!token) {
        fprintf(stderr, "holdfast-token: cannot sign with %s (wrong key for %s?)\n", cfg->key_file,
                cfg->alg);
        return 2;
    }
    printf("%s\n", token);
    free(token);
    return 0;
}

int main(int argc, char **argv)
{
    token_config_t cfg = {0};
    int rc = hf_config_load_tool("holdfast-token", token_specs, TOKEN_NSPECS, &cfg, argc, argv,
                                 token_usage);
    if (rc >= 0)
        return rc;
    rc = 0;
    if (!cfg.key_file || !cfg.sub || !cfg.sub[0]) {
        fprintf(stderr, "holdfast-token: --key-file and --sub are required (see --help)\n");
        rc = 2;
    }
    FILE *f = rc == 0 ? fopen(cfg.key_file, "rb") : NULL;
    if (rc == 0 && !f) {
        fprintf(stderr, "holdfast-token: cannot open %s\n", cfg.key_file);
        rc = 2;
    }
    if (f) {
        unsigned char key[65536];
        size_t n = fread(key, 1, sizeof key - 1, f);
        fclose(f);
        /* the services strip a secret file's trailing newline too */
        while (strcmp(cfg.alg, "HS256") == 0 && n > 0 && (key[n - 1] == '\n' || key[n - 1] == '\r'))
            n--;
        key[n] = '\0';
        rc = token_print(&cfg, key, n);
    }
    hf_config_free(token_specs, TOKEN_NSPECS, &cfg);
    return rc;
}
