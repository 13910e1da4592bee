/* fuzz_auth_token.c - credentials through common/src/auth.c.
 *
 * Each input is used three ways:
 *   - as a token (up to its first NUL, as a header value would end there),
 *     verified by two hf_auth_t made once: HS256 with a fixed secret, and
 *     the same with an API-keys file;
 *   - split at its first newline into a header value for hf_auth_bearer()
 *     and a pattern and a channel for hf_auth_glob_match(), which is
 *     compared with a plain reference matcher;
 *   - as the claims of a token this file signs with the secret, so that
 *     the claims reader sees what an issuer could put there (a mutated
 *     token never gets past the signature).
 * Besides memory errors, leaks and undefined behaviour, checks that an
 * accepted credential yields a bounded identity and a refused one a reason
 * fit for a JSON answer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jwt.h>

#include "fuzz_support.h"
#include "holdfast/alloc.h"
#include "holdfast/auth.h"
#include "holdfast/buf.h"
#include "holdfast/http_parse.h"

#define FUZZ_GLOB_MAX 256 /* longer patterns and channels are cut for the reference */

static hf_auth_t *fuzz_auth_jwt;  /* HS256 only */
static hf_auth_t *fuzz_auth_keys; /* HS256 and one API key */

static void auth_check_identity(const hf_auth_identity_t *id)
{
    size_t n = strnlen(id->subject, sizeof id->subject);
    FUZZ_CHECK(n > 0 && n <= HF_AUTH_SUBJECT_MAX);
    FUZZ_CHECK(id->npublish <= HF_AUTH_PATTERNS_MAX && id->nsubscribe <= HF_AUTH_PATTERNS_MAX);
    for (size_t i = 0; i < id->npublish; i++)
        FUZZ_CHECK(id->publish[i] && !strchr(id->publish[i], '/'));
    for (size_t i = 0; i < id->nsubscribe; i++)
        FUZZ_CHECK(id->subscribe[i] && !strchr(id->subscribe[i], '/'));
    hf_auth_may_publish(id, "orders:42");
    hf_auth_may_subscribe(id, "demo");
}

static void auth_verify(const hf_auth_t *auth, const char *token)
{
    hf_auth_identity_t *id = NULL;
    char why[200] = "";
    hf_err_t rc = hf_auth_verify(auth, token, FUZZ_AUTH_NOW, &id, why, sizeof why);
    if (rc == HF_OK) {
        FUZZ_CHECK(id);
        auth_check_identity(id);
        hf_auth_identity_free(id);
        return;
    }
    FUZZ_CHECK(rc == HF_ERR_AUTH && !id && why[0]);
    /* ingest answers 401 with why inside the JSON error body */
    hf_buf_t answer = HF_BUF_INIT;
    hf_http_error_body(&answer, "unauthorized", why);
    FUZZ_CHECK(fuzz_is_json(answer.data, answer.len));
    hf_buf_free(&answer);
}

/* '*' matches any run (also none), the rest itself: by dynamic programming
 * over prefixes, as different from auth.c's backtracking as can be. */
static bool auth_glob_reference(const char *pattern, const char *text)
{
    size_t np = strlen(pattern), nt = strlen(text);
    static bool m[FUZZ_GLOB_MAX + 1][FUZZ_GLOB_MAX + 1]; /* m[i][j]: pattern[..i) ~ text[..j) */
    m[0][0] = true;
    for (size_t j = 1; j <= nt; j++)
        m[0][j] = false;
    for (size_t i = 1; i <= np; i++) {
        m[i][0] = m[i - 1][0] && pattern[i - 1] == '*';
        for (size_t j = 1; j <= nt; j++)
            m[i][j] = pattern[i - 1] == '*' ? m[i - 1][j] || m[i][j - 1]
                                            : m[i - 1][j - 1] && pattern[i - 1] == text[j - 1];
    }
    return m[np][nt];
}

static void auth_split(const char *s, size_t len)
{
    const char *nl = memchr(s, '\n', len);
    size_t alen = nl ? (size_t)(nl - s) : len;
    char *a = hf_strndup(s, alen);
    char *b = nl ? hf_strndup(nl + 1, len - alen - 1) : hf_strdup("");

    const char *token = hf_auth_bearer(a);
    FUZZ_CHECK(!token || (token > a && token < a + strlen(a) && *token != ' '));

    a[strnlen(a, FUZZ_GLOB_MAX)] = '\0';
    b[strnlen(b, FUZZ_GLOB_MAX)] = '\0';
    FUZZ_CHECK(hf_auth_glob_match(a, b) == auth_glob_reference(a, b));
    hf_free(a);
    hf_free(b);
}

/* The input as claims, signed with the secret. libjwt takes only a JSON
 * object, as any issuer would. */
static void auth_signed_claims(const char *claims)
{
    jwt_t *jwt = NULL;
    if (jwt_new(&jwt) != 0)
        abort();
    char *token = NULL;
    if (jwt_add_grants_json(jwt, claims) == 0 &&
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)FUZZ_AUTH_SECRET,
                    (int)strlen(FUZZ_AUTH_SECRET)) == 0)
        token = jwt_encode_str(jwt);
    jwt_free(jwt);
    if (!token)
        return;
    auth_verify(fuzz_auth_jwt, token);
    free(token); /* libjwt allocates with malloc */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_auth_jwt = fuzz_auth_new(NULL);
    fuzz_auth_keys = fuzz_auth_new("orders:* demo");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = hf_strndup((const char *)data, size); /* ends at the first NUL */
    auth_verify(fuzz_auth_jwt, text);
    auth_verify(fuzz_auth_keys, text);
    auth_split((const char *)data, size);
    auth_signed_claims(text);
    hf_free(text);
    return 0;
}
