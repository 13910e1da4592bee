/* auth.c - JWT and API-key verification; see auth.h for the rules. */
#include "holdfast/auth.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "holdfast/alloc.h"
#include "holdfast/log.h"

#define AUTH_KEY_MAX     (64 * 1024)
#define AUTH_SECRET_MIN  32
#define AUTH_API_KEY_MIN 16
#define AUTH_PATTERN_MAX 256

/* Keys are kept as SHA-256 digests: every comparison then takes the same
 * time whatever the key's length or content, and memory holds no key. */
typedef struct auth_api_key {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    hf_auth_identity_t id; /* template copied into each verified identity */
} auth_api_key_t;

/* A secret or a PEM public key. */
typedef struct auth_key {
    unsigned char *data;
    size_t len;
} auth_key_t;

struct hf_auth {
    bool enabled;
    jwt_alg_t alg;
    auth_key_t keys[2]; /* the current key, then the previous one (rotation) */
    size_t nkeys;
    long long leeway_s;
    bool require_exp;
    int64_t max_lifetime_s; /* 0: no limit */
    char *audience;         /* NULL: not checked */
    char *issuer;           /* NULL: not checked */
    auth_api_key_t *api_keys;
    size_t napi_keys;
};

static void auth_patterns_free(char **patterns, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hf_free(patterns[i]);
    hf_free(patterns);
}

void hf_auth_identity_free(hf_auth_identity_t *id)
{
    if (!id)
        return;
    auth_patterns_free(id->publish, id->npublish);
    auth_patterns_free(id->subscribe, id->nsubscribe);
    hf_free(id);
}

/* A pattern is what a channel name may hold, plus '*'. */
static bool auth_pattern_is_valid(const char *p)
{
    size_t len = strlen(p);
    if (len == 0 || len > AUTH_PATTERN_MAX)
        return false;
    for (const char *c = p; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr("_.:@=-*", *c))
            return false;
    return true;
}

static char **auth_patterns_copy(char *const *src, size_t n)
{
    char **out = hf_calloc(n ? n : 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = hf_strdup(src[i]);
    return out;
}

static hf_auth_identity_t *auth_identity_copy(const hf_auth_identity_t *src)
{
    hf_auth_identity_t *id = hf_calloc(1, sizeof(*id));
    memcpy(id->subject, src->subject, sizeof(id->subject));
    id->expires_s = src->expires_s;
    id->publish = auth_patterns_copy(src->publish, src->npublish);
    id->npublish = src->npublish;
    id->subscribe = auth_patterns_copy(src->subscribe, src->nsubscribe);
    id->nsubscribe = src->nsubscribe;
    return id;
}

static hf_err_t auth_read_file(const char *path, unsigned char **out, size_t *out_len, char *errbuf,
                               size_t errbuf_size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errbuf, errbuf_size, "cannot open %s: %s", path, strerror(errno));
        return HF_ERR_IO;
    }
    unsigned char *buf = hf_malloc(AUTH_KEY_MAX + 1);
    size_t n = fread(buf, 1, AUTH_KEY_MAX + 1, f);
    bool failed = ferror(f);
    fclose(f);
    if (failed || n > AUTH_KEY_MAX) {
        snprintf(errbuf, errbuf_size, "%s: %s", path, failed ? "read error" : "larger than 64 KiB");
        hf_free(buf);
        return HF_ERR_INVALID;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return HF_OK;
}

static void auth_api_keys_free(hf_auth_t *auth)
{
    for (size_t i = 0; i < auth->napi_keys; i++) {
        auth_patterns_free(auth->api_keys[i].id.publish, auth->api_keys[i].id.npublish);
        auth_patterns_free(auth->api_keys[i].id.subscribe, auth->api_keys[i].id.nsubscribe);
    }
    hf_free(auth->api_keys);
}

static void auth_digest(const char *text, unsigned char out[SHA256_DIGEST_LENGTH])
{
    SHA256((const unsigned char *)text, strlen(text), out);
}

static bool auth_api_key_is_valid(const char *key)
{
    if (strlen(key) < AUTH_API_KEY_MIN || strlen(key) > 256)
        return false;
    for (const char *c = key; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-')
            return false;
    return true;
}

/* One line "SUBJECT KEY PATTERN..." (already split into words). */
static hf_err_t auth_api_key_add(hf_auth_t *auth, char **words, size_t nwords, const char *where,
                                 char *errbuf, size_t errbuf_size)
{
    if (nwords < 3) {
        snprintf(errbuf, errbuf_size, "%s: expected SUBJECT KEY PATTERN...", where);
        return HF_ERR_INVALID;
    }
    if (strlen(words[0]) > HF_AUTH_SUBJECT_MAX || !auth_api_key_is_valid(words[1])) {
        snprintf(errbuf, errbuf_size,
                 "%s: subject longer than %d bytes, or key not 16..256 of [A-Za-z0-9_-]", where,
                 HF_AUTH_SUBJECT_MAX);
        return HF_ERR_INVALID;
    }
    for (size_t i = 2; i < nwords; i++)
        if (!auth_pattern_is_valid(words[i])) {
            snprintf(errbuf, errbuf_size, "%s: bad channel pattern '%s'", where, words[i]);
            return HF_ERR_INVALID;
        }
    auth->api_keys = hf_realloc(auth->api_keys, (auth->napi_keys + 1) * sizeof(*auth->api_keys));
    auth_api_key_t *k = &auth->api_keys[auth->napi_keys++];
    memset(k, 0, sizeof(*k));
    auth_digest(words[1], k->digest);
    snprintf(k->id.subject, sizeof(k->id.subject), "%s", words[0]);
    k->id.publish = auth_patterns_copy(words + 2, nwords - 2);
    k->id.npublish = nwords - 2;
    k->id.subscribe = auth_patterns_copy(NULL, 0);
    return HF_OK;
}

static hf_err_t auth_api_keys_load(hf_auth_t *auth, const char *path, char *errbuf,
                                   size_t errbuf_size)
{
    unsigned char *text;
    size_t len;
    hf_err_t err = auth_read_file(path, &text, &len, errbuf, errbuf_size);
    if (err != HF_OK)
        return err;
    char *save_line = NULL;
    int lineno = 0;
    for (char *line = strtok_r((char *)text, "\n", &save_line); line && err == HF_OK;
         line = strtok_r(NULL, "\n", &save_line)) {
        lineno++;
        char *words[2 + HF_AUTH_PATTERNS_MAX + 1], *save_word = NULL;
        size_t nwords = 0;
        for (char *w = strtok_r(line, " \t\r", &save_word);
             w && nwords < sizeof(words) / sizeof(*words); w = strtok_r(NULL, " \t\r", &save_word))
            words[nwords++] = w;
        if (nwords == 0 || words[0][0] == '#')
            continue;
        char where[300];
        snprintf(where, sizeof(where), "%s line %d", path, lineno);
        if (nwords > 2 + HF_AUTH_PATTERNS_MAX) {
            snprintf(errbuf, errbuf_size, "%s: more than %d patterns", where, HF_AUTH_PATTERNS_MAX);
            err = HF_ERR_INVALID;
        } else {
            err = auth_api_key_add(auth, words, nwords, where, errbuf, errbuf_size);
        }
    }
    hf_free(text);
    return err;
}

/* One key from its text (secret) or file; *what names it in errors. */
static hf_err_t auth_key_read(const hf_auth_t *auth, const char *secret, const char *file,
                              const char *what, auth_key_t *key, char *errbuf, size_t errbuf_size)
{
    if (auth->alg == JWT_ALG_HS256 && secret && secret[0]) {
        key->data = (unsigned char *)hf_strdup(secret);
        key->len = strlen(secret);
    } else {
        hf_err_t err = auth_read_file(file, &key->data, &key->len, errbuf, errbuf_size);
        if (err != HF_OK)
            return err;
        /* A secret file written by `echo` ends in a newline that is not part of it. */
        while (auth->alg == JWT_ALG_HS256 && key->len > 0 &&
               (key->data[key->len - 1] == '\n' || key->data[key->len - 1] == '\r'))
            key->data[--key->len] = '\0';
    }
    if (auth->alg == JWT_ALG_HS256 && key->len < AUTH_SECRET_MIN) {
        snprintf(errbuf, errbuf_size, "the HS256 %s must be at least %d bytes", what,
                 AUTH_SECRET_MIN);
        return HF_ERR_INVALID;
    }
    if (auth->alg != JWT_ALG_HS256 &&
        !strstr((const char *)key->data, "-----BEGIN PUBLIC KEY-----")) {
        snprintf(errbuf, errbuf_size, "%s %s: not a PEM public key (-----BEGIN PUBLIC KEY-----)",
                 what, file);
        return HF_ERR_INVALID;
    }
    return HF_OK;
}

static bool auth_given(const char *s)
{
    return s && s[0];
}

/* The current key (required) and the previous one (optional: during a
 * rotation tokens signed with either verify). */
static hf_err_t auth_keys_load(hf_auth_t *auth, const hf_auth_config_t *cfg, char *errbuf,
                               size_t errbuf_size)
{
    bool hs = auth->alg == JWT_ALG_HS256;
    if (!(hs && auth_given(cfg->secret)) && !auth_given(cfg->key_file)) {
        snprintf(errbuf, errbuf_size, "auth is on and no key is set: give %s",
                 hs ? "--auth-secret or --auth-key-file" : "--auth-key-file (a PEM public key)");
        return HF_ERR_INVALID;
    }
    hf_err_t err = auth_key_read(auth, cfg->secret, cfg->key_file, "secret", &auth->keys[0], errbuf,
                                 errbuf_size);
    if (err != HF_OK)
        return err;
    auth->nkeys = 1;
    if (!(hs && auth_given(cfg->previous_secret)) && !auth_given(cfg->previous_key_file))
        return HF_OK;
    err = auth_key_read(auth, cfg->previous_secret, cfg->previous_key_file, "previous secret",
                        &auth->keys[1], errbuf, errbuf_size);
    if (err == HF_OK)
        auth->nkeys = 2;
    return err;
}

hf_auth_t *hf_auth_new(const hf_auth_config_t *cfg, char *errbuf, size_t errbuf_size)
{
    hf_auth_t *auth = hf_calloc(1, sizeof(*auth));
    auth->enabled = cfg->enabled;
    auth->leeway_s = cfg->leeway_s;
    auth->require_exp = cfg->require_exp;
    auth->max_lifetime_s = cfg->max_lifetime_ms / 1000;
    auth->audience = auth_given(cfg->audience) ? hf_strdup(cfg->audience) : NULL;
    auth->issuer = auth_given(cfg->issuer) ? hf_strdup(cfg->issuer) : NULL;
    if (!auth->enabled) {
        hf_warn(
            "auth is off: anyone who reaches this port may publish and subscribe to any channel");
        return auth;
    }
    const char *alg = cfg->alg ? cfg->alg : "HS256";
    if (strcmp(alg, "HS256") == 0)
        auth->alg = JWT_ALG_HS256;
    else if (strcmp(alg, "RS256") == 0)
        auth->alg = JWT_ALG_RS256;
    else if (strcmp(alg, "ES256") == 0)
        auth->alg = JWT_ALG_ES256;
    else {
        snprintf(errbuf, errbuf_size, "unknown auth algorithm '%s' (HS256, RS256, ES256)", alg);
        hf_auth_free(auth);
        return NULL;
    }
    if (auth_keys_load(auth, cfg, errbuf, errbuf_size) != HF_OK ||
        (cfg->api_keys_file && cfg->api_keys_file[0] &&
         auth_api_keys_load(auth, cfg->api_keys_file, errbuf, errbuf_size) != HF_OK)) {
        hf_auth_free(auth);
        return NULL;
    }
    return auth;
}

void hf_auth_free(hf_auth_t *auth)
{
    if (!auth)
        return;
    for (size_t i = 0; i < 2; i++) {
        if (auth->keys[i].data)
            OPENSSL_cleanse(auth->keys[i].data, auth->keys[i].len);
        hf_free(auth->keys[i].data);
    }
    auth_api_keys_free(auth);
    hf_free(auth->audience);
    hf_free(auth->issuer);
    hf_free(auth);
}

bool hf_auth_enabled(const hf_auth_t *auth)
{
    return auth->enabled;
}

static hf_err_t auth_deny(char *why, size_t why_size, const char *reason)
{
    snprintf(why, why_size, "%s", reason);
    return HF_ERR_AUTH;
}

/* Compares digests in constant time against every key, so the time taken
 * tells nothing about which key came close. */
static const auth_api_key_t *auth_api_key_find(const hf_auth_t *auth, const char *token)
{
    const auth_api_key_t *found = NULL;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    auth_digest(token, digest);
    for (size_t i = 0; i < auth->napi_keys; i++)
        if (CRYPTO_memcmp(auth->api_keys[i].digest, digest, sizeof digest) == 0)
            found = &auth->api_keys[i];
    return found;
}

static hf_err_t auth_claim_patterns(json_t *claims, const char *name, char ***out, size_t *nout,
                                    char *why, size_t why_size)
{
    json_t *arr = json_object_get(claims, name);
    *out = NULL;
    *nout = 0;
    if (!arr)
        return HF_OK;
    if (!json_is_array(arr) || json_array_size(arr) > HF_AUTH_PATTERNS_MAX) {
        snprintf(why, why_size, "claim '%s' must be an array of at most %d patterns", name,
                 HF_AUTH_PATTERNS_MAX);
        return HF_ERR_AUTH;
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v) || !auth_pattern_is_valid(json_string_value(v))) {
            snprintf(why, why_size, "claim '%s' holds an invalid channel pattern", name);
            return HF_ERR_AUTH;
        }
    }
    *out = hf_calloc(json_array_size(arr) ? json_array_size(arr) : 1, sizeof(**out));
    json_array_foreach(arr, i, v)(*out)[i] = hf_strdup(json_string_value(v));
    *nout = json_array_size(arr);
    return HF_OK;
}

/* exp and nbf: numbers when present (RFC 7519 NumericDate); *present
 * tells an absent claim from one that says 0. */
static hf_err_t auth_claim_time(json_t *claims, const char *name, int64_t *out, bool *present)
{
    json_t *v = json_object_get(claims, name);
    *out = 0;
    *present = v != NULL;
    if (!v)
        return HF_OK;
    if (json_is_integer(v))
        *out = json_integer_value(v);
    else if (json_is_real(v) && fabs(json_real_value(v)) < 9e18) /* the cast is defined */
        *out = (int64_t)json_real_value(v);
    else
        return HF_ERR_AUTH;
    return HF_OK;
}

static bool auth_claim_equals(json_t *v, const char *want)
{
    return json_is_string(v) && json_string_length(v) == strlen(want) &&
           memcmp(json_string_value(v), want, json_string_length(v)) == 0;
}

/* RFC 7519 4.1.3: "aud" is one string or an array of them. */
static bool auth_audience_holds(json_t *aud, const char *want)
{
    if (!json_is_array(aud))
        return auth_claim_equals(aud, want);
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v)
    {
        if (auth_claim_equals(v, want))
            return true;
    }
    return false;
}

static hf_err_t auth_claims_read(const hf_auth_t *auth, json_t *claims, int64_t now_s,
                                 hf_auth_identity_t *id, char *why, size_t why_size)
{
    json_t *sub = json_object_get(claims, "sub");
    if (!json_is_string(sub) || json_string_length(sub) == 0 ||
        json_string_length(sub) > HF_AUTH_SUBJECT_MAX)
        return auth_deny(why, why_size, "token has no 'sub' claim of 1..128 bytes");
    snprintf(id->subject, sizeof(id->subject), "%s", json_string_value(sub));
    int64_t exp, nbf, iat;
    bool has_exp, has_nbf, has_iat;
    if (auth_claim_time(claims, "exp", &exp, &has_exp) != HF_OK ||
        auth_claim_time(claims, "nbf", &nbf, &has_nbf) != HF_OK ||
        auth_claim_time(claims, "iat", &iat, &has_iat) != HF_OK)
        return auth_deny(why, why_size, "claims 'exp', 'nbf' and 'iat' must be numbers");
    if (!has_exp && auth->require_exp)
        return auth_deny(why, why_size, "token has no 'exp' claim (it would never expire)");
    /* written so that no sum can overflow, whatever exp holds */
    if (has_exp && now_s - auth->leeway_s > exp)
        return auth_deny(why, why_size, "token expired");
    if (has_nbf && now_s + auth->leeway_s < nbf)
        return auth_deny(why, why_size, "token not yet valid");
    /* exp passed the check above, so exp > 0 and these differences cannot
     * overflow; exp - now catches an iat set in the future. */
    if (has_exp && auth->max_lifetime_s > 0 &&
        ((has_iat && iat < exp - auth->max_lifetime_s) ||
         exp - auth->max_lifetime_s - auth->leeway_s > now_s)) {
        snprintf(why, why_size, "token lifetime exceeds the %lld s this server allows",
                 (long long)auth->max_lifetime_s);
        return HF_ERR_AUTH;
    }
    if (auth->issuer && !auth_claim_equals(json_object_get(claims, "iss"), auth->issuer))
        return auth_deny(why, why_size, "token's 'iss' is not an issuer this server accepts");
    if (auth->audience && !auth_audience_holds(json_object_get(claims, "aud"), auth->audience))
        return auth_deny(why, why_size, "token's 'aud' does not name this service");
    id->expires_s = has_exp ? exp : 0; /* a present exp passed the check: it is > 0 */
    hf_err_t err =
        auth_claim_patterns(claims, "publish", &id->publish, &id->npublish, why, why_size);
    if (err == HF_OK)
        err = auth_claim_patterns(claims, "subscribe", &id->subscribe, &id->nsubscribe, why,
                                  why_size);
    return err;
}

static hf_err_t auth_jwt_verify(const hf_auth_t *auth, const char *token, int64_t now_s,
                                hf_auth_identity_t **out, char *why, size_t why_size)
{
    jwt_t *jwt = NULL;
    for (size_t i = 0; i < auth->nkeys && !jwt; i++)
        if (jwt_decode(&jwt, token, auth->keys[i].data, (int)auth->keys[i].len) != 0)
            jwt = NULL;
    if (!jwt)
        return auth_deny(why, why_size, "token malformed or its signature does not verify");
    /* libjwt verifies with whatever algorithm the token names; only the
     * configured one is trusted (an HS256 token "signed" with our RSA
     * public key would otherwise pass). */
    if (jwt_get_alg(jwt) != auth->alg) {
        jwt_free(jwt);
        return auth_deny(why, why_size,
                         "token signed with an algorithm this server does not accept");
    }
    char *text = jwt_get_grants_json(jwt, NULL);
    jwt_free(jwt);
    json_t *claims = text ? json_loads(text, JSON_REJECT_DUPLICATES, NULL) : NULL;
    free(text); /* libjwt allocates with malloc */
    if (!json_is_object(claims)) {
        json_decref(claims);
        return auth_deny(why, why_size, "token claims are not a JSON object");
    }
    hf_auth_identity_t *id = hf_calloc(1, sizeof(*id));
    hf_err_t err = auth_claims_read(auth, claims, now_s, id, why, why_size);
    json_decref(claims);
    if (err != HF_OK) {
        hf_auth_identity_free(id);
        return err;
    }
    *out = id;
    return HF_OK;
}

static hf_auth_identity_t *auth_anonymous(void)
{
    static char *const everything[] = {"*"};
    hf_auth_identity_t tmpl = {.subject = "anonymous",
                               .publish = (char **)everything,
                               .npublish = 1,
                               .subscribe = (char **)everything,
                               .nsubscribe = 1};
    return auth_identity_copy(&tmpl);
}

hf_err_t hf_auth_verify(const hf_auth_t *auth, const char *token, int64_t now_s,
                        hf_auth_identity_t **out, char *why, size_t why_size)
{
    *out = NULL;
    if (!auth->enabled) {
        *out = auth_anonymous();
        return HF_OK;
    }
    if (!token || !token[0])
        return auth_deny(why, why_size, "missing token");
    if (strlen(token) > HF_AUTH_TOKEN_MAX)
        return auth_deny(why, why_size, "token longer than 8192 bytes");
    if (!strchr(token, '.')) {
        const auth_api_key_t *k = auth_api_key_find(auth, token);
        if (!k)
            return auth_deny(why, why_size, "unknown API key");
        *out = auth_identity_copy(&k->id);
        return HF_OK;
    }
    return auth_jwt_verify(auth, token, now_s, out, why, why_size);
}

const char *hf_auth_bearer(const char *header)
{
    if (!header || strncasecmp(header, "Bearer ", 7) != 0)
        return NULL;
    header += 7;
    while (*header == ' ')
        header++;
    return *header ? header : NULL;
}

bool hf_auth_glob_match(const char *pattern, const char *text)
{
    /* Iterative matcher with one backtrack point: linear in practice and
     * never recursive, whatever the pattern. */
    const char *star = NULL, *resume = NULL;
    while (*text) {
        if (*pattern == '*') {
            star = pattern++;
            resume = text;
        } else if (*pattern == *text) {
            pattern++;
            text++;
        } else if (star) {
            pattern = star + 1;
            text = ++resume;
        } else {
            return false;
        }
    }
    while (*pattern == '*')
        pattern++;
    return *pattern == '\0';
}

static bool auth_patterns_match(char *const *patterns, size_t n, const char *channel)
{
    for (size_t i = 0; i < n; i++)
        if (hf_auth_glob_match(patterns[i], channel))
            return true;
    return false;
}

bool hf_auth_may_publish(const hf_auth_identity_t *id, const char *channel)
{
    return auth_patterns_match(id->publish, id->npublish, channel);
}

bool hf_auth_may_subscribe(const hf_auth_identity_t *id, const char *channel)
{
    return auth_patterns_match(id->subscribe, id->nsubscribe, channel);
}
