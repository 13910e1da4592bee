/* config.h - table-driven configuration.
 *
 * Each daemon describes its settings once, as an array of hf_conf_spec_t
 * pointing into its own config struct. The same table drives the defaults,
 * the HOLDFAST_* environment variables, the --flags that override them and
 * --help. A setting named "pg-url" is the flag --pg-url and the variable
 * HOLDFAST_PG_URL, unless an HF_CONF_ENV_NAME row names another variable.
 *
 * Ownership: string and list settings are heap copies owned by the target
 * struct; hf_config_free() releases them. */
#ifndef HOLDFAST_CONFIG_H
#define HOLDFAST_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "holdfast/err.h"

typedef enum hf_conf_type {
    HF_CONF_STRING,   /* char * */
    HF_CONF_INT,      /* long long, within [min, max] */
    HF_CONF_BOOL,     /* bool: true/false/1/0/yes/no/on/off; a bare --flag means true */
    HF_CONF_MS,       /* long long milliseconds: "250ms", "2s", "1m", or a plain number of ms */
    HF_CONF_BYTES,    /* long long bytes: "512", "64KiB", "1MiB", "1GiB" */
    HF_CONF_LIST,     /* char *: every occurrence is appended as one more line
                         ("a\nb"); the environment variable may hold several
                         lines, the flag may be repeated; readers take the lines
                         in order, so a later one wins where that matters */
    HF_CONF_DOUBLE,   /* double: a decimal number ("2.5", "1e6"), within [min, max] */
    HF_CONF_ENV_NAME, /* not a setting: def names the environment variable the
                         setting called name reads instead of HOLDFAST_<NAME>
                         (a program keeping the variables it had before) */
} hf_conf_type_t;

/* A numeric macro as a string literal, for help texts: "at most " HF_CONF_STR(X_MAX). */
#define HF_CONF_STR(x)  HF_CONF_STR_(x)
#define HF_CONF_STR_(x) #x

typedef struct hf_conf_spec {
    const char *name;    /* flag name without "--", lower-case with dashes */
    hf_conf_type_t type; /* how the text is parsed */
    size_t offset;       /* offsetof(the config struct, the field) */
    const char *def;     /* default, as text; NULL for an unset string */
    long long min, max;  /* bounds for numeric types (ignored when min == max == 0) */
    const char *help;    /* one line for --help */
} hf_conf_spec_t;

/* Loads defaults, then the environment, then argv (argv[0] skipped) into
 * target. On --help prints usage to stdout and sets *help_shown. On error
 * returns HF_ERR_INVALID and writes a message naming the setting into
 * errbuf. Positional arguments are rejected. */
hf_err_t hf_config_load(const hf_conf_spec_t *specs, size_t nspecs, void *target, int argc,
                        char **argv, const char *usage, bool *help_shown, char *errbuf,
                        size_t errbuf_size);

/* A tool's start: hf_config_load(), a bad setting explained on stderr as
 * "<program>: ...". Returns -1 when the tool should run; otherwise the exit
 * status (0 after --help, 2 after a bad setting), the settings of target
 * already freed. */
int hf_config_load_tool(const char *program, const hf_conf_spec_t *specs, size_t nspecs,
                        void *target, int argc, char **argv, const char *usage);

/* A daemon's start: hf_config_load_tool(), then the log level read from the
 * string setting *log_level (a field of target) and hf_log_init(service).
 * Returns -1 when the daemon should run; otherwise the exit status
 * (0 after --help, 2 after a bad setting, explained on stderr as
 * "holdfast-<service>: ..."); the settings are freed then. */
int hf_config_load_daemon(const char *service, const hf_conf_spec_t *specs, size_t nspecs,
                          void *target, char *const *log_level, int argc, char **argv,
                          const char *usage);

/* Writes the settings table (flag, env var, default, help) to out. */
void hf_config_print_help(const hf_conf_spec_t *specs, size_t nspecs, const char *usage, FILE *out);

/* Frees string settings owned by target. */
void hf_config_free(const hf_conf_spec_t *specs, size_t nspecs, void *target);

/* Parsers shared with other modules; return HF_ERR_INVALID on bad text. */
hf_err_t hf_config_parse_ms(const char *text, long long *out);
/* A whole decimal integer ("-" and digits only) within [min, max]. */
hf_err_t hf_config_parse_int(const char *text, long long min, long long max, long long *out);
hf_err_t hf_config_parse_bytes(const char *text, long long *out);

#endif
