/* The configuration table: defaults, environment, flags, bounds, help. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "holdfast/config.h"

typedef struct test_cfg {
    char *url;
    long long port;
    bool verbose;
    long long timeout_ms;
    long long max_body;
    char *props;
} test_cfg_t;

static const hf_conf_spec_t specs[] = {
    {"test-url", HF_CONF_STRING, offsetof(test_cfg_t, url), "http://default", 0, 0, "url"},
    {"test-port", HF_CONF_INT, offsetof(test_cfg_t, port), "8080", 1, 65535, "port"},
    {"test-verbose", HF_CONF_BOOL, offsetof(test_cfg_t, verbose), "false", 0, 0, "verbose"},
    {"test-timeout", HF_CONF_MS, offsetof(test_cfg_t, timeout_ms), "2s", 0, 0, "timeout"},
    {"test-max-body", HF_CONF_BYTES, offsetof(test_cfg_t, max_body), "1MiB", 0, 0, "body"},
    {"test-prop", HF_CONF_LIST, offsetof(test_cfg_t, props), NULL, 0, 0, "repeatable"},
};
#define NSPECS (sizeof specs / sizeof specs[0])

static hf_err_t load(test_cfg_t *cfg, int argc, char **argv, char *err)
{
    bool help;
    hf_config_free(specs, NSPECS, cfg);
    memset(cfg, 0, sizeof *cfg);
    return hf_config_load(specs, NSPECS, cfg, argc, argv, "usage", &help, err, 256);
}

int main(void)
{
    test_cfg_t cfg = {0};
    char err[256];
    char *none[] = {"prog"};
    unsetenv("HOLDFAST_TEST_PORT");

    CHECK(load(&cfg, 1, none, err) == HF_OK);
    CHECK_STR_EQ(cfg.url, "http://default");
    CHECK_INT_EQ(cfg.port, 8080);
    CHECK(!cfg.verbose);
    CHECK_INT_EQ(cfg.timeout_ms, 2000);
    CHECK_INT_EQ(cfg.max_body, 1 << 20);

    setenv("HOLDFAST_TEST_PORT", "9000", 1);
    setenv("HOLDFAST_TEST_URL", "http://env", 1);
    CHECK(load(&cfg, 1, none, err) == HF_OK);
    CHECK_INT_EQ(cfg.port, 9000);
    CHECK_STR_EQ(cfg.url, "http://env");

    char *flags[] = {"prog",           "--test-port=9100", "--test-url", "http://flag",
                     "--test-verbose", "--test-timeout",   "250ms",      "--test-max-body=64KiB"};
    CHECK(load(&cfg, 8, flags, err) == HF_OK);
    CHECK_INT_EQ(cfg.port, 9100); /* flag beats environment */
    CHECK_STR_EQ(cfg.url, "http://flag");
    CHECK(cfg.verbose);
    CHECK_INT_EQ(cfg.timeout_ms, 250);
    CHECK_INT_EQ(cfg.max_body, 64 * 1024);

    char *out_of_range[] = {"prog", "--test-port=70000"};
    CHECK(load(&cfg, 2, out_of_range, err) == HF_ERR_INVALID);
    CHECK(strstr(err, "test-port") != NULL);
    char *not_number[] = {"prog", "--test-port=80x"};
    CHECK(load(&cfg, 2, not_number, err) == HF_ERR_INVALID);
    char *unknown[] = {"prog", "--nope=1"};
    CHECK(load(&cfg, 2, unknown, err) == HF_ERR_INVALID);
    CHECK(strstr(err, "--nope") != NULL);
    char *missing[] = {"prog", "--test-url"};
    CHECK(load(&cfg, 2, missing, err) == HF_ERR_INVALID);
    char *positional[] = {"prog", "stray"};
    CHECK(load(&cfg, 2, positional, err) == HF_ERR_INVALID);
    char *bad_bool[] = {"prog", "--test-verbose=maybe"};
    CHECK(load(&cfg, 2, bad_bool, err) == HF_ERR_INVALID);
    setenv("HOLDFAST_TEST_TIMEOUT", "soon", 1);
    CHECK(load(&cfg, 1, none, err) == HF_ERR_INVALID);
    CHECK(strstr(err, "HOLDFAST_TEST_TIMEOUT") != NULL);
    unsetenv("HOLDFAST_TEST_TIMEOUT");

    /* A list: each occurrence is one more line, the environment's first. */
    CHECK(load(&cfg, 1, none, err) == HF_OK);
    CHECK(cfg.props == NULL);
    char *props[] = {"prog", "--test-prop=a=1", "--test-prop", "b=2", "--test-prop=a=3"};
    CHECK(load(&cfg, 5, props, err) == HF_OK);
    CHECK_STR_EQ(cfg.props, "a=1\nb=2\na=3");
    setenv("HOLDFAST_TEST_PROP", "e=1\ne=2", 1);
    CHECK(load(&cfg, 2, props, err) == HF_OK);
    CHECK_STR_EQ(cfg.props, "e=1\ne=2\na=1");
    unsetenv("HOLDFAST_TEST_PROP");

    long long v;
    CHECK(hf_config_parse_ms("1m", &v) == HF_OK && v == 60000);
    CHECK(hf_config_parse_ms("-1s", &v) != HF_OK);
    CHECK(hf_config_parse_bytes("2GiB", &v) == HF_OK && v == 2LL << 30);
    CHECK(hf_config_parse_bytes("99999999999999999999", &v) != HF_OK);

    hf_config_free(specs, NSPECS, &cfg);
    CHECK_MAIN_END();
}
