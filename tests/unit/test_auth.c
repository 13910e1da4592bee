/* Token and API-key verification (RS256/ES256 and tokens of another JWT
 * library are covered by the integration test 035_auth). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <jwt.h>

#include "check.h"
#include "holdfast/auth.h"

#define SECRET "0123456789abcdef0123456789abcdef-test"
#define NOW    1800000000

/* An HS256 token with the given claims (a JSON object), signed with key. */
static char *token_hs256(const char *claims_json, const char *key)
{
    jwt_t *jwt = NULL;
    if (jwt_new(&jwt) != 0 || jwt_add_grants_json(jwt, claims_json) != 0 ||
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)key, (int)strlen(key)) != 0)
        abort();
    char *out = jwt_encode_str(jwt);
    jwt_free(jwt);
    return out;
}

static hf_err_t verify(hf_auth_t *auth, const char *token, hf_auth_identity_t **id, char *why)
{
    return hf_auth_verify(auth, token, NOW, id, why, 200);
}

static void check_denied(hf_auth_t *auth, const char *token, const char *want_why)
{
    hf_auth_identity_t *id = NULL;
    char why[200] = "";
    CHECK_INT_EQ(verify(auth, token, &id, why), HF_ERR_AUTH);
    CHECK(id == NULL);
    if (!strstr(why, want_why))
        fprintf(stderr, "why: %s (wanted %s)\n", why, want_why);
    CHECK(strstr(why, want_why) != NULL);
}

static void test_hs256(hf_auth_t *auth)
{
    char *tok = token_hs256("{\"sub\":\"alice\",\"exp\":1800000100,\"publish\":[\"orders:*\"],"
                            "\"subscribe\":[\"orders:*\",\"news\"]}",
                            SECRET);
    hf_auth_identity_t *id = NULL;
    char why[200] = "";
    CHECK_INT_EQ(verify(auth, tok, &id, why), HF_OK);
    if (id) {
        CHECK_STR_EQ(id->subject, "alice");
        CHECK_INT_EQ(id->expires_s, 1800000100);
        CHECK(hf_auth_may_publish(id, "orders:1"));
        CHECK(!hf_auth_may_publish(id, "news"));
        CHECK(hf_auth_may_subscribe(id, "news"));
        CHECK(!hf_auth_may_subscribe(id, "news:1"));
        CHECK(!hf_auth_may_subscribe(id, "order:1"));
    }
    hf_auth_identity_free(id);
    free(tok);
}

static void test_hs256_refused(hf_auth_t *auth)
{
    char *tok = token_hs256("{\"sub\":\"alice\"}", "another-secret-another-secret-another");
    check_denied(auth, tok, "signature");
    free(tok);
    tok = token_hs256("{\"sub\":\"alice\",\"exp\":1799999000}", SECRET);
    check_denied(auth, tok, "expired");
    free(tok);
    /* within the 30 s leeway */
    tok = token_hs256("{\"sub\":\"alice\",\"exp\":1799999980}", SECRET);
    hf_auth_identity_t *id = NULL;
    char why[200];
    CHECK_INT_EQ(verify(auth, tok, &id, why), HF_OK);
    hf_auth_identity_free(id);
    free(tok);
    /* exp 0 is a time long past, not "no expiry" */
    tok = token_hs256("{\"sub\":\"alice\",\"exp\":0}", SECRET);
    check_denied(auth, tok, "expired");
    free(tok);
    tok = token_hs256("{\"sub\":\"alice\",\"nbf\":1800000500}", SECRET);
    check_denied(auth, tok, "not yet valid");
    free(tok);
    tok = token_hs256("{\"publish\":[\"*\"]}", SECRET);
    check_denied(auth, tok, "'sub'");
    free(tok);
    tok = token_hs256("{\"sub\":\"a\",\"publish\":\"orders:*\"}", SECRET);
    check_denied(auth, tok, "'publish'");
    free(tok);
    tok = token_hs256("{\"sub\":\"a\",\"subscribe\":[\"../x\"]}", SECRET);
    check_denied(auth, tok, "'subscribe'");
    free(tok);
    tok = token_hs256("{\"sub\":\"a\",\"exp\":\"tomorrow\"}", SECRET);
    check_denied(auth, tok, "'exp'");
    free(tok);
    /* out of int64's range: refused, not cast (undefined behaviour) */
    tok = token_hs256("{\"sub\":\"a\",\"nbf\":1e300}", SECRET);
    check_denied(auth, tok, "'nbf'");
    free(tok);
    /* the largest exp: valid, not an overflow into "expired" */
    tok = token_hs256("{\"sub\":\"a\",\"exp\":9223372036854775807}", SECRET);
    CHECK_INT_EQ(verify(auth, tok, &id, why), HF_OK);
    hf_auth_identity_free(id);
    free(tok);
    /* alg "none": header {"alg":"none","typ":"JWT"}, claims {"sub":"root","publish":["*"]} */
    check_denied(auth,
                 "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
                 "eyJzdWIiOiJyb290IiwicHVibGlzaCI6WyIqIl19.",
                 "");
    check_denied(auth, NULL, "missing");
    check_denied(auth, "", "missing");
    check_denied(auth, "a.b.c", "malformed");
    check_denied(auth, "....", "malformed");
    check_denied(auth, "not-a-key-at-all-1234", "unknown API key");
    char *huge = malloc(HF_AUTH_TOKEN_MAX + 2);
    memset(huge, 'a', HF_AUTH_TOKEN_MAX + 1);
    huge[HF_AUTH_TOKEN_MAX + 1] = '\0';
    check_denied(auth, huge, "longer");
    free(huge);
}

static void test_api_keys(hf_auth_t *auth)
{
    hf_auth_identity_t *id = NULL;
    char why[200] = "";
    CHECK_INT_EQ(verify(auth, "key-for-billing-0123456789", &id, why), HF_OK);
    if (id) {
        CHECK_STR_EQ(id->subject, "billing");
        CHECK(hf_auth_may_publish(id, "invoices:7"));
        CHECK(hf_auth_may_publish(id, "audit"));
        CHECK(!hf_auth_may_publish(id, "orders:1"));
        CHECK(!hf_auth_may_subscribe(id, "invoices:7")); /* keys publish only */
    }
    hf_auth_identity_free(id);
    check_denied(auth, "key-for-billing-012345678", "unknown API key");
}

static void test_config_errors(void)
{
    char err[300] = "";
    hf_auth_config_t cfg = {.enabled = true, .alg = "HS256", .secret = "short"};
    CHECK(hf_auth_new(&cfg, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "32 bytes") != NULL);
    cfg.secret = NULL;
    CHECK(hf_auth_new(&cfg, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "no key") != NULL);
    cfg.alg = "HS512";
    cfg.secret = SECRET;
    CHECK(hf_auth_new(&cfg, err, sizeof(err)) == NULL);
    cfg.alg = "RS256";
    cfg.key_file = "/nonexistent/key.pem";
    CHECK(hf_auth_new(&cfg, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "/nonexistent/key.pem") != NULL);
}

/* Rotation: the new secret and the one being retired both verify; without
 * the previous one, old tokens are refused. */
static void test_rotation(void)
{
    const char *fresh = "fedcba9876543210fedcba9876543210-new";
    char err[300] = "", why[200];
    hf_auth_config_t cfg = {
        .enabled = true, .alg = "HS256", .secret = (char *)fresh, .previous_secret = SECRET};
    hf_auth_t *both = hf_auth_new(&cfg, err, sizeof(err));
    cfg.previous_secret = NULL;
    hf_auth_t *only_new = hf_auth_new(&cfg, err, sizeof(err));
    CHECK(both && only_new);
    if (!both || !only_new)
        return;
    char *old_tok = token_hs256("{\"sub\":\"old\"}", SECRET);
    char *new_tok = token_hs256("{\"sub\":\"new\"}", fresh);
    hf_auth_identity_t *id = NULL;
    CHECK_INT_EQ(hf_auth_verify(both, old_tok, NOW, &id, why, sizeof why), HF_OK);
    hf_auth_identity_free(id);
    CHECK_INT_EQ(hf_auth_verify(both, new_tok, NOW, &id, why, sizeof why), HF_OK);
    hf_auth_identity_free(id);
    CHECK_INT_EQ(hf_auth_verify(only_new, old_tok, NOW, &id, why, sizeof why), HF_ERR_AUTH);
    CHECK_INT_EQ(hf_auth_verify(only_new, new_tok, NOW, &id, why, sizeof why), HF_OK);
    hf_auth_identity_free(id);
    free(old_tok);
    free(new_tok);
    hf_auth_free(both);
    hf_auth_free(only_new);
    cfg.previous_secret = "short";
    CHECK(hf_auth_new(&cfg, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "previous secret") != NULL);
}

/* exp required, the lifetime bounded, aud and iss checked when set. */
static void test_claims_policy(void)
{
    char err[300] = "";
    hf_auth_config_t cfg = {.enabled = true,
                            .alg = "HS256",
                            .secret = SECRET,
                            .leeway_s = 30,
                            .require_exp = true,
                            .max_lifetime_ms = 3600 * 1000,
                            .audience = "holdfast",
                            .issuer = "https://issuer.example"};
    hf_auth_t *auth = hf_auth_new(&cfg, err, sizeof(err));
    CHECK(auth != NULL);
    if (!auth)
        return;
    static const struct {
        const char *claims; /* besides sub */
        const char *why;    /* NULL: accepted */
    } cases[] = {
        {"\"exp\":1800003600,\"iat\":1800000000", NULL},       /* exactly the maximum */
        {"\"exp\":1800003630", NULL},                          /* no iat: exp - now, with leeway */
        {"\"exp\":1800000600,\"iat\":1700000000", "lifetime"}, /* minted long ago */
        {"\"iat\":1800000000", "'exp'"},                       /* would never expire */
        {"\"exp\":1800003601,\"iat\":1800000000", "lifetime"},
        {"\"exp\":1800007200", "lifetime"},
        {"\"exp\":1800007200,\"iat\":1800007000", "lifetime"}, /* iat in the future */
        {"\"exp\":1800000600,\"iat\":\"yesterday\"", "'iat'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char claims[512];
        snprintf(claims, sizeof claims,
                 "{\"sub\":\"a\",\"aud\":\"holdfast\",\"iss\":\"https://issuer.example\",%s}",
                 cases[i].claims);
        char *tok = token_hs256(claims, SECRET);
        if (cases[i].why) {
            check_denied(auth, tok, cases[i].why);
        } else {
            hf_auth_identity_t *id = NULL;
            char why[200] = "";
            CHECK_INT_EQ(verify(auth, tok, &id, why), HF_OK);
            hf_auth_identity_free(id);
        }
        free(tok);
    }
    static const struct {
        const char *aud_iss; /* the aud and iss members */
        const char *why;
    } who[] = {
        {"\"aud\":[\"other\",\"holdfast\"],\"iss\":\"https://issuer.example\"", NULL},
        {"\"aud\":\"other\",\"iss\":\"https://issuer.example\"", "'aud'"},
        {"\"aud\":[\"holdfastx\",1],\"iss\":\"https://issuer.example\"", "'aud'"},
        {"\"iss\":\"https://issuer.example\"", "'aud'"},
        {"\"aud\":\"holdfast\",\"iss\":\"https://evil.example\"", "'iss'"},
        {"\"aud\":\"holdfast\"", "'iss'"},
    };
    for (size_t i = 0; i < sizeof who / sizeof who[0]; i++) {
        char claims[512];
        snprintf(claims, sizeof claims, "{\"sub\":\"a\",\"exp\":1800000600,%s}", who[i].aud_iss);
        char *tok = token_hs256(claims, SECRET);
        if (who[i].why) {
            check_denied(auth, tok, who[i].why);
        } else {
            hf_auth_identity_t *id = NULL;
            char why[200] = "";
            CHECK_INT_EQ(verify(auth, tok, &id, why), HF_OK);
            hf_auth_identity_free(id);
        }
        free(tok);
    }
    hf_auth_free(auth);
}

static void test_disabled(void)
{
    char err[200];
    hf_auth_config_t cfg = {.enabled = false};
    hf_auth_t *auth = hf_auth_new(&cfg, err, sizeof(err));
    hf_auth_identity_t *id = NULL;
    CHECK(auth && !hf_auth_enabled(auth));
    CHECK_INT_EQ(hf_auth_verify(auth, NULL, NOW, &id, err, sizeof(err)), HF_OK);
    CHECK(id && hf_auth_may_publish(id, "x") && hf_auth_may_subscribe(id, "y:z"));
    hf_auth_identity_free(id);
    hf_auth_free(auth);
}

static void test_glob_and_bearer(void)
{
    CHECK(hf_auth_glob_match("orders:*", "orders:1"));
    CHECK(hf_auth_glob_match("orders:*", "orders:"));
    CHECK(!hf_auth_glob_match("orders:*", "orders"));
    CHECK(hf_auth_glob_match("*", "anything"));
    CHECK(hf_auth_glob_match("a*b*c", "axxbyyc"));
    CHECK(!hf_auth_glob_match("a*b*c", "axxbyy"));
    CHECK(hf_auth_glob_match("*:eu", "shop:eu"));
    CHECK(!hf_auth_glob_match("*:eu", "shop:eu:x"));
    CHECK(hf_auth_glob_match("news", "news"));
    CHECK(!hf_auth_glob_match("news", "news2"));
    CHECK(!hf_auth_glob_match("", "x"));
    CHECK_STR_EQ(hf_auth_bearer("Bearer abc"), "abc");
    CHECK_STR_EQ(hf_auth_bearer("bearer  abc"), "abc");
    CHECK(hf_auth_bearer("Basic abc") == NULL);
    CHECK(hf_auth_bearer("Bearer ") == NULL);
    CHECK(hf_auth_bearer(NULL) == NULL);
}

int main(void)
{
    char path[] = "/tmp/holdfast-test-auth-XXXXXX";
    int fd = mkstemp(path);
    const char *keys =
        "# subject key patterns\n\nbilling key-for-billing-0123456789 invoices:* audit\n";
    CHECK(fd >= 0 && write(fd, keys, strlen(keys)) == (ssize_t)strlen(keys));
    close(fd);
    char err[300] = "";
    hf_auth_config_t cfg = {
        .enabled = true, .alg = "HS256", .secret = SECRET, .api_keys_file = path, .leeway_s = 30};
    hf_auth_t *auth = hf_auth_new(&cfg, err, sizeof(err));
    if (!auth) {
        fprintf(stderr, "hf_auth_new: %s\n", err);
        return 1;
    }
    test_hs256(auth);
    test_hs256_refused(auth);
    test_api_keys(auth);
    hf_auth_free(auth);

    const char *bad = "billing short invoices:*\n";
    fd = open(path, O_WRONLY | O_TRUNC);
    CHECK(fd >= 0 && write(fd, bad, strlen(bad)) == (ssize_t)strlen(bad));
    close(fd);
    CHECK(hf_auth_new(&cfg, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "line 1") != NULL);
    unlink(path);

    test_config_errors();
    test_rotation();
    test_claims_policy();
    test_disabled();
    test_glob_and_bearer();
    CHECK_MAIN_END();
}
