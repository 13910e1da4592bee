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
    double ratio;
    long long aliased;
} test_cfg_t;

static const hf_conf_spec_t specs[] = {
    {"test-url", HF_CONF_STRING, offsetof(test_cfg_t, url), "http://default", 0, 0, "url"},
    {"test-port", HF_CONF_INT, offsetof(test_cfg_t, port), "8080", 1, 65535, "port"},
    {"test-verbose", HF_CONF_BOOL, offsetof(test_cfg_t, verbose), "false", 0, 0, "verbose"},
    {"test-timeout", HF_CONF_MS, offsetof(test_cfg_t, timeout_ms), "2s", 0, 0, "timeout"},
    {"test-max-body", HF_CONF_BYTES, offsetof(test_cfg_t, max_body), "1MiB", 0, 0, "body"},
    {"test-prop", HF_CONF_LIST, offsetof(test_cfg_t, props), NULL, 0, 0, "repeatable"},
    {"test-ratio", HF_CONF_DOUBLE, offsetof(test_cfg_t, ratio), "2.5", 0, 100, "ratio"},
    {"test-aliased", HF_CONF_INT, offsetof(test_cfg_t, aliased), "1", 0, 10, "aliased"},
    {"test-aliased", HF_CONF_ENV_NAME, 0, "HOLDFAST_TESTING_OTHER_NAME", 0, 0, NULL},
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

    /* A number: decimal fractions and exponents, finite, within the bounds. */
    CHECK(load(&cfg, 1, none, err) == HF_OK);
    CHECK(cfg.ratio == 2.5);
    char *ratio[] = {"prog", "--test-ratio=0.125"};
    CHECK(load(&cfg, 2, ratio, err) == HF_OK);
    CHECK(cfg.ratio == 0.125);
    char *ratio_exp[] = {"prog", "--test-ratio", "1e1"};
    CHECK(load(&cfg, 3, ratio_exp, err) == HF_OK);
    CHECK(cfg.ratio == 10);
    char *ratio_high[] = {"prog", "--test-ratio=100.5"};
    CHECK(load(&cfg, 2, ratio_high, err) == HF_ERR_INVALID);
    CHECK(strstr(err, "outside") != NULL);
    char *ratio_inf[] = {"prog", "--test-ratio=inf"};
    CHECK(load(&cfg, 2, ratio_inf, err) == HF_ERR_INVALID);
    char *ratio_junk[] = {"prog", "--test-ratio=2.5x"};
    CHECK(load(&cfg, 2, ratio_junk, err) == HF_ERR_INVALID);
    char *ratio_empty[] = {"prog", "--test-ratio="};
    CHECK(load(&cfg, 2, ratio_empty, err) == HF_ERR_INVALID);

    /* A variable of its own: the derived one is not read, the flag is unchanged. */
    setenv("HOLDFAST_TEST_ALIASED", "7", 1);
    CHECK(load(&cfg, 1, none, err) == HF_OK);
    CHECK_INT_EQ(cfg.aliased, 1);
    setenv("HOLDFAST_TESTING_OTHER_NAME", "8", 1);
    CHECK(load(&cfg, 1, none, err) == HF_OK);
    CHECK_INT_EQ(cfg.aliased, 8);
    char *aliased[] = {"prog", "--test-aliased=9"};
    CHECK(load(&cfg, 2, aliased, err) == HF_OK);
    CHECK_INT_EQ(cfg.aliased, 9);
    setenv("HOLDFAST_TESTING_OTHER_NAME", "11", 1);
    CHECK(load(&cfg, 1, none, err) == HF_ERR_INVALID);
    CHECK(strstr(err, "HOLDFAST_TESTING_OTHER_NAME") != NULL);
    unsetenv("HOLDFAST_TESTING_OTHER_NAME");
    unsetenv("HOLDFAST_TEST_ALIASED");

    /* --help lists each setting once, with the variable it reads. */
    char *text = NULL;
    size_t text_len = 0;
    FILE *help_out = open_memstream(&text, &text_len);
    hf_config_print_help(specs, NSPECS, "usage", help_out);
    fclose(help_out);
    CHECK(strstr(text, "--test-ratio=<number>\n      env HOLDFAST_TEST_RATIO, default: 2.5") !=
          NULL);
    CHECK(strstr(text, "--test-aliased=<int>\n      env HOLDFAST_TESTING_OTHER_NAME") != NULL);
    CHECK(strstr(text, "HOLDFAST_TEST_ALIASED") == NULL);
    CHECK(strstr(strstr(text, "--test-aliased") + 1, "--test-aliased") == NULL);
    free(text);

    /* A tool's start: run, help or exit status 2, the settings freed unless it runs. */
    hf_config_free(specs, NSPECS, &cfg);
    memset(&cfg, 0, sizeof cfg);
    CHECK_INT_EQ(hf_config_load_tool("prog", specs, NSPECS, &cfg, 1, none, "usage"), -1);
    CHECK_STR_EQ(cfg.url, "http://env");
    hf_config_free(specs, NSPECS, &cfg);
    CHECK_INT_EQ(hf_config_load_tool("prog", specs, NSPECS, &cfg, 2, out_of_range, "usage"), 2);
    CHECK(cfg.url == NULL);
    char *help_flag[] = {"prog", "--help"};
    CHECK_INT_EQ(hf_config_load_tool("prog", specs, NSPECS, &cfg, 2, help_flag, "usage"), 0);
    CHECK(cfg.url == NULL);

    long long v;
    CHECK(hf_config_parse_ms("1m", &v) == HF_OK && v == 60000);
    CHECK(hf_config_parse_ms("-1s", &v) != HF_OK);
    CHECK(hf_config_parse_bytes("2GiB", &v) == HF_OK && v == 2LL << 30);
    CHECK(hf_config_parse_bytes("99999999999999999999", &v) != HF_OK);

    hf_config_free(specs, NSPECS, &cfg);
    CHECK_MAIN_END();
}
