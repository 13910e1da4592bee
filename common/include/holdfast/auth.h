/* auth.h - who may publish to and subscribe to which channels.
 *
 * Owns the verification of credentials (JWT bearer tokens signed with
 * HS256, RS256 or ES256 through libjwt, and static publish API keys) and
 * the identity a verified credential yields: a subject, the channel
 * patterns it may publish to and those it may subscribe to. Patterns are
 * globs where '*' matches any run of characters and every other character
 * matches itself (channel names cannot contain '*', see channel.h).
 *
 * Token claims: "sub" (required, the subject named in logs and limits),
 * "exp" (required unless require_exp is off) and "nbf" (seconds; honoured
 * with a leeway), "iat" (with exp, bounds the token's lifetime: exp - iat,
 * and exp - now, may not exceed max_lifetime_ms), "aud" and "iss"
 * (checked when an audience or issuer is configured), "publish" and
 * "subscribe" (arrays of patterns; absent means none).
 * The token's "alg" must be the configured one: a token naming another
 * algorithm (including "none", or HS256 signed with an RSA public key) is
 * refused before its claims are read.
 *
 * Threading: an hf_auth_t is immutable once made; any thread may verify.
 * Ownership: hf_auth_verify() hands the caller an identity to free with
 * hf_auth_identity_free(). */
#ifndef HOLDFAST_AUTH_H
#define HOLDFAST_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "holdfast/err.h"

#define HF_AUTH_SUBJECT_MAX  128
#define HF_AUTH_PATTERNS_MAX 64
#define HF_AUTH_TOKEN_MAX    8192

typedef struct hf_auth hf_auth_t;

typedef struct hf_auth_config {
    bool enabled;              /* false: everyone may do everything (logs a warning) */
    char *alg;                 /* "HS256", "RS256" or "ES256" */
    char *secret;              /* HS256 shared secret, at least 32 bytes; or NULL */
    char *key_file;            /* HS256: file holding the secret; RS256/ES256: PEM public key */
    char *api_keys_file;       /* lines "SUBJECT KEY PATTERN..." granting publish; or NULL */
    char *previous_secret;     /* during a rotation, the key being retired: tokens */
    char *previous_key_file;   /* signed with it still verify (same algorithm) */
    long long leeway_s;        /* clock skew allowed on exp and nbf */
    bool require_exp;          /* refuse tokens without exp (they would never expire) */
    long long max_lifetime_ms; /* exp - iat and exp - now at most this; 0: no limit */
    char *audience;            /* when set, "aud" must name it; NULL: not checked */
    char *issuer;              /* when set, "iss" must equal it; NULL: not checked */
} hf_auth_config_t;

/* The settings every daemon that verifies credentials has, for its
 * hf_conf_spec_t table (config.h); member is its hf_auth_config_t field. */
/* clang-format off */
#define HF_AUTH_SETTINGS(type, member)                                                            \
    {"auth", HF_CONF_BOOL, offsetof(type, member.enabled), "true", 0, 0,                          \
     "verify tokens (false lets anyone publish and subscribe; logged as a warning)"},             \
    {"auth-alg", HF_CONF_STRING, offsetof(type, member.alg), "HS256", 0, 0,                       \
     "token signature algorithm: HS256, RS256 or ES256"},                                         \
    {"auth-secret", HF_CONF_STRING, offsetof(type, member.secret), NULL, 0, 0,                    \
     "HS256 shared secret (at least 32 bytes); prefer --auth-key-file"},                          \
    {"auth-key-file", HF_CONF_STRING, offsetof(type, member.key_file), NULL, 0, 0,                \
     "file with the HS256 secret, or the RS256/ES256 PEM public key"},                            \
    {"auth-previous-secret", HF_CONF_STRING, offsetof(type, member.previous_secret), NULL, 0, 0,  \
     "rotation: the HS256 secret being retired (tokens signed with it still verify)"},            \
    {"auth-previous-key-file", HF_CONF_STRING, offsetof(type, member.previous_key_file), NULL,    \
     0, 0, "rotation: the file of the secret or public key being retired"},                       \
    {"auth-api-keys-file", HF_CONF_STRING, offsetof(type, member.api_keys_file), NULL, 0, 0,      \
     "publish API keys, lines of SUBJECT KEY PATTERN..."},                                        \
    {"auth-leeway", HF_CONF_INT, offsetof(type, member.leeway_s), "30", 0, 3600,                  \
     "seconds of clock skew allowed on exp and nbf"},                                             \
    {"auth-require-exp", HF_CONF_BOOL, offsetof(type, member.require_exp), "true", 0, 0,          \
     "refuse tokens without an 'exp' claim (false: such tokens never expire)"},                   \
    {"auth-max-token-lifetime", HF_CONF_MS, offsetof(type, member.max_lifetime_ms), "24h", 0,     \
     366LL * 24 * 3600000,                                                                        \
     "refuse tokens valid longer than this: exp - iat, or exp - now (0: no limit)"},              \
    {"auth-audience", HF_CONF_STRING, offsetof(type, member.audience), NULL, 0, 0,                \
     "when set, a token's 'aud' (a string or an array) must hold this value"},                    \
    {"auth-issuer", HF_CONF_STRING, offsetof(type, member.issuer), NULL, 0, 0,                    \
     "when set, a token's 'iss' must equal this value"}
/* clang-format on */

typedef struct hf_auth_identity {
    char subject[HF_AUTH_SUBJECT_MAX + 1];
    int64_t expires_s; /* exp claim (unix seconds); 0 when the credential does not expire */
    char **publish;    /* patterns; owned by the identity */
    size_t npublish;
    char **subscribe; /* patterns; owned by the identity */
    size_t nsubscribe;
} hf_auth_identity_t;

/* Reads the key and API key files. On error returns NULL with the reason in
 * errbuf (a missing key, a short secret, an unknown algorithm, a bad line). */
hf_auth_t *hf_auth_new(const hf_auth_config_t *cfg, char *errbuf, size_t errbuf_size);
void hf_auth_free(hf_auth_t *auth);
bool hf_auth_enabled(const hf_auth_t *auth);

/* Verifies token (a JWT or an API key; NULL when the client sent none) at
 * time now_s. HF_OK: *out is the identity (with auth disabled: subject
 * "anonymous", every channel allowed). HF_ERR_AUTH: why says what was
 * wrong in words fit for the client ("token expired", ...). */
hf_err_t hf_auth_verify(const hf_auth_t *auth, const char *token, int64_t now_s,
                        hf_auth_identity_t **out, char *why, size_t why_size);
void hf_auth_identity_free(hf_auth_identity_t *id);

/* The token of an "Authorization: Bearer TOKEN" header value, or NULL when
 * header is NULL or uses another scheme. Points into header. */
const char *hf_auth_bearer(const char *header);

bool hf_auth_may_publish(const hf_auth_identity_t *id, const char *channel);
bool hf_auth_may_subscribe(const hf_auth_identity_t *id, const char *channel);

/* '*' matches any run of characters (also none); the rest is literal. */
bool hf_auth_glob_match(const char *pattern, const char *text);

#endif
