/* test_http_parse.c - the pure parts of HTTP handling: CORS (which
 * origins the allow-list takes and lets in, the headers each response
 * gets) and the methods a path serves. */
#include <string.h>

#include "check.h"
#include "holdfast/http_parse.h"

static void noop(hf_http_req_t *req, void *ctx)
{
    (void)req;
    (void)ctx;
}

static const hf_http_route_t routes[] = {
    {"POST", "/v1/events", true, noop, NULL},
    {"GET", "/v1/channels/*", false, noop, NULL},
    {"GET", "/v1/events", false, noop, NULL},
    {"POST", "/v1/events", true, noop, NULL},
};

static void test_route_methods(void)
{
    char m[64];
    hf_http_route_methods(routes, 4, "/v1/events", m, sizeof m);
    CHECK_STR_EQ(m, "POST, GET, OPTIONS");
    hf_http_route_methods(routes, 4, "/v1/channels/a/events", m, sizeof m);
    CHECK_STR_EQ(m, "GET, OPTIONS");
    hf_http_route_methods(routes, 4, "/nope", m, sizeof m);
    CHECK_STR_EQ(m, "OPTIONS");
    char tiny[8];
    hf_http_route_methods(routes, 4, "/v1/events", tiny, sizeof tiny);
    CHECK(strlen(tiny) < sizeof tiny);
}

static const char *parse_error(const char *list)
{
    static char err[256];
    hf_http_cors_t cors;
    err[0] = '\0';
    if (hf_http_cors_parse(list, &cors, err, sizeof err) == HF_OK) {
        hf_http_cors_free(&cors);
        return "ok";
    }
    return err;
}

static void test_cors_parse(void)
{
    hf_http_cors_t cors;
    char err[256];
    CHECK_INT_EQ(hf_http_cors_parse(" https://app.example.com , http://127.0.0.1:8080,", &cors, err,
                                    sizeof err),
                 HF_OK);
    CHECK_INT_EQ(cors.norigins, 2);
    CHECK(!cors.any);
    CHECK_STR_EQ(cors.origins[0], "https://app.example.com");
    CHECK_STR_EQ(cors.origins[1], "http://127.0.0.1:8080");
    hf_http_cors_free(&cors);
    CHECK_INT_EQ(hf_http_cors_parse("", &cors, err, sizeof err), HF_OK);
    CHECK(!hf_http_cors_enabled(&cors));
    CHECK_INT_EQ(hf_http_cors_parse(NULL, &cors, err, sizeof err), HF_OK);
    CHECK(!hf_http_cors_enabled(&cors));
    CHECK(!hf_http_cors_enabled(NULL));
    CHECK_INT_EQ(hf_http_cors_parse("*", &cors, err, sizeof err), HF_OK);
    CHECK(cors.any && hf_http_cors_enabled(&cors));
    hf_http_cors_free(&cors);
    CHECK_STR_EQ(parse_error("http://[::1]:8080"), "ok");
    /* Never an exact origin, so never a match: refused at start rather
     * than silently letting nobody in. */
    const char *bad[] = {"https://app.example.com/",
                         "https://app.example.com/path",
                         "https://App.example.com",
                         "null",
                         "app.example.com",
                         "ftp://app.example.com",
                         "https://",
                         "https://a.com:",
                         "https://a.com:123456",
                         "https://user@a.com",
                         "https://a.com?x",
                         "https://a.com.",
                         "https://*.example.com",
                         "http://[::1",
                         "*,https://a.com",
                         "https://a.com,*"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *e = parse_error(bad[i]);
        CHECK(strncmp(e, "cors-origins: ", 14) == 0);
    }
}

static void test_cors_allows(void)
{
    hf_http_cors_t cors;
    char err[256];
    CHECK_INT_EQ(
        hf_http_cors_parse("https://app.example.com,http://127.0.0.1:8080", &cors, err, sizeof err),
        HF_OK);
    CHECK(hf_http_cors_allows(&cors, "https://app.example.com"));
    CHECK(hf_http_cors_allows(&cors, "http://127.0.0.1:8080"));
    CHECK(!hf_http_cors_allows(&cors, "http://127.0.0.1:8081"));
    CHECK(!hf_http_cors_allows(&cors, "http://app.example.com"));
    CHECK(!hf_http_cors_allows(&cors, "https://app.example.com.evil.test"));
    CHECK(!hf_http_cors_allows(&cors, "https://evil.test"));
    CHECK(!hf_http_cors_allows(&cors, "null"));
    CHECK(!hf_http_cors_allows(&cors, ""));
    CHECK(!hf_http_cors_allows(&cors, NULL));
    hf_http_cors_free(&cors);
    CHECK_INT_EQ(hf_http_cors_parse("*", &cors, err, sizeof err), HF_OK);
    CHECK(hf_http_cors_allows(&cors, "https://anything.test"));
    CHECK(!hf_http_cors_allows(&cors, "null")); /* sandboxed frames and files: never */
    CHECK(!hf_http_cors_allows(&cors, "https://a.test\r\nSet-Cookie: x=1"));
    hf_http_cors_free(&cors);
    CHECK_INT_EQ(hf_http_cors_parse("", &cors, err, sizeof err), HF_OK);
    CHECK(!hf_http_cors_allows(&cors, "https://app.example.com"));
}

static const char *headers(const hf_http_cors_t *cors, const char *origin, bool preflight)
{
    static hf_buf_t out = HF_BUF_INIT;
    hf_buf_reset(&out);
    hf_http_cors_headers(&out, cors, origin, preflight, "POST, OPTIONS");
    hf_buf_append(&out, "", 1);
    return out.data;
}

static void test_cors_headers(void)
{
    hf_http_cors_t cors, any, off;
    char err[256];
    CHECK_INT_EQ(hf_http_cors_parse("https://app.example.com", &cors, err, sizeof err), HF_OK);
    CHECK_INT_EQ(hf_http_cors_parse("*", &any, err, sizeof err), HF_OK);
    CHECK_INT_EQ(hf_http_cors_parse("", &off, err, sizeof err), HF_OK);
    CHECK_STR_EQ(headers(&cors, "https://app.example.com", false),
                 "Vary: Origin\r\n"
                 "Access-Control-Allow-Origin: https://app.example.com\r\n"
                 "Access-Control-Expose-Headers: Retry-After\r\n");
    CHECK_STR_EQ(headers(&cors, "https://app.example.com", true),
                 "Vary: Origin\r\n"
                 "Access-Control-Allow-Origin: https://app.example.com\r\n"
                 "Access-Control-Allow-Methods: POST, OPTIONS\r\n"
                 "Access-Control-Allow-Headers: Authorization, Content-Type, Idempotency-Key\r\n"
                 "Access-Control-Max-Age: 600\r\n");
    /* Another origin: nothing that lets its page read the answer. */
    CHECK_STR_EQ(headers(&cors, "https://evil.test", false), "Vary: Origin\r\n");
    CHECK_STR_EQ(headers(&cors, "https://evil.test", true), "Vary: Origin\r\n");
    CHECK_STR_EQ(headers(&cors, NULL, false), "Vary: Origin\r\n");
    /* "*" echoes the origin itself, and nothing ever allows credentials. */
    const char *h = headers(&any, "https://x.test", false);
    CHECK(strstr(h, "Access-Control-Allow-Origin: https://x.test\r\n") != NULL);
    CHECK(strstr(h, "Access-Control-Allow-Origin: *") == NULL);
    CHECK(strstr(h, "Credentials") == NULL);
    CHECK(strstr(headers(&cors, "https://app.example.com", true), "Credentials") == NULL);
    /* CORS off: no header at all. */
    CHECK_STR_EQ(headers(&off, "https://app.example.com", false), "");
    CHECK_STR_EQ(headers(NULL, "https://app.example.com", true), "");
    hf_http_cors_free(&cors);
    hf_http_cors_free(&any);
}

int main(void)
{
    test_route_methods();
    test_cors_parse();
    test_cors_allows();
    test_cors_headers();
    CHECK_MAIN_END();
}
