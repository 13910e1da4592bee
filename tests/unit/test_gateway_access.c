/* The gateway's Origin allow-list: what --allowed-origins accepts and
 * which handshakes it lets through (the 403 itself: integration test
 * 083_gateway_origin). */
#include <string.h>

#include "check.h"
#include "gateway.h"

/* worker.c's, which this test does not link; channels.c reads it. */
int64_t gw_now_us(void)
{
    return hf_now_us();
}

int main(void)
{
    gw_process_t p;
    memset(&p, 0, sizeof p);
    char err[300];

    CHECK(gw_access_origins_parse(&p, "https://app.example.com, http://localhost:8000,null", err,
                                  sizeof err) == HF_OK);
    CHECK_INT_EQ(p.norigins, 3);
    CHECK(gw_access_origin_allowed(&p, NULL)); /* no Origin: not a browser */
    CHECK(gw_access_origin_allowed(&p, "https://app.example.com"));
    CHECK(gw_access_origin_allowed(&p, "http://localhost:8000"));
    CHECK(gw_access_origin_allowed(&p, "null"));
    CHECK(!gw_access_origin_allowed(&p, "https://evil.example"));
    CHECK(!gw_access_origin_allowed(&p, "http://app.example.com"));       /* another scheme */
    CHECK(!gw_access_origin_allowed(&p, "https://app.example.com:8443")); /* another port */
    CHECK(!gw_access_origin_allowed(&p, "https://app.example.com.evil.example"));
    CHECK(!gw_access_origin_allowed(&p, "https://app.example.co"));
    CHECK(!gw_access_origin_allowed(&p, ""));

    CHECK(gw_access_origins_parse(&p, "*", err, sizeof err) == HF_OK);
    CHECK(p.any_origin && p.norigins == 0);
    CHECK(gw_access_origin_allowed(&p, "https://anything.example"));
    CHECK(gw_access_origins_parse(&p, "", err, sizeof err) == HF_OK);
    CHECK(!p.any_origin);
    CHECK(!gw_access_origin_allowed(&p, "https://app.example.com")); /* an empty list: none */
    CHECK(gw_access_origin_allowed(&p, NULL));

    /* What a browser never sends could never match: refused at start. */
    static const char *const bad[] = {"https://app.example.com/",
                                      "https://App.example.com",
                                      "app.example.com",
                                      "https://a.example/path",
                                      "://x",
                                      "https://",
                                      "https://a b.example"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(gw_access_origins_parse(&p, bad[i], err, sizeof err) == HF_ERR_INVALID);
        CHECK(strstr(err, "allowed-origins") != NULL);
    }
    CHECK(p.norigins == 0 && p.origins == NULL);
    CHECK_MAIN_END();
}
