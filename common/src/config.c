/* config.c - defaults, then HOLDFAST_* environment, then --flags. */
#include "holdfast/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "holdfast/alloc.h"
#include "holdfast/log.h"

/* The variable spec reads: the one an HF_CONF_ENV_NAME row of the table names
 * for it, else HOLDFAST_ and its name in upper case, '-' as '_'. */
static void config_env_name(const hf_conf_spec_t *specs, size_t nspecs, const hf_conf_spec_t *spec,
                            char *out, size_t outsz)
{
    for (size_t i = 0; i < nspecs; i++) {
        if (specs[i].type == HF_CONF_ENV_NAME && strcmp(specs[i].name, spec->name) == 0) {
            snprintf(out, outsz, "%s", specs[i].def);
            return;
        }
    }
    size_t n = (size_t)snprintf(out, outsz, "HOLDFAST_");
    for (const char *p = spec->name; *p && n + 1 < outsz; p++)
        out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[n] = '\0';
}

static hf_err_t config_parse_ll(const char *text, long long *out, const char **rest)
{
    errno = 0;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text)
        return HF_ERR_INVALID;
    *out = v;
    *rest = end;
    return HF_OK;
}

hf_err_t hf_config_parse_int(const char *text, long long min, long long max, long long *out)
{
    /* Digits only: strtoll alone would take " +5" or "5abc". */
    const char *digits = text && *text == '-' ? text + 1 : text;
    long long v;
    const char *rest;
    if (!digits || !isdigit((unsigned char)*digits) || config_parse_ll(text, &v, &rest) != HF_OK ||
        *rest != '\0' || v < min || v > max)
        return HF_ERR_INVALID;
    *out = v;
    return HF_OK;
}

static hf_err_t config_scale(const char *text, long long *out, const char *const *units,
                             const long long *factors, size_t nunits)
{
    long long v;
    const char *rest;
    if (config_parse_ll(text, &v, &rest) != HF_OK || v < 0)
        return HF_ERR_INVALID;
    if (*rest == '\0') {
        *out = v;
        return HF_OK;
    }
    for (size_t i = 0; i < nunits; i++) {
        if (strcasecmp(rest, units[i]) == 0) {
            if (v > LLONG_MAX / factors[i])
                return HF_ERR_INVALID;
            *out = v * factors[i];
            return HF_OK;
        }
    }
    return HF_ERR_INVALID;
}

hf_err_t hf_config_parse_ms(const char *text, long long *out)
{
    static const char *const units[] = {"ms", "s", "m", "h"};
    static const long long factors[] = {1, 1000, 60000, 3600000};
    return config_scale(text, out, units, factors, 4);
}

hf_err_t hf_config_parse_bytes(const char *text, long long *out)
{
    static const char *const units[] = {"b", "k", "kib", "m", "mib", "g", "gib"};
    static const long long factors[] = {1, 1024, 1024, 1 << 20, 1 << 20, 1 << 30, 1 << 30};
    return config_scale(text, out, units, factors, 7);
}

static hf_err_t config_parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return HF_OK;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return HF_OK;
        }
    }
    return HF_ERR_INVALID;
}

/* A finite decimal number; strtod alone would take "inf" or "5abc". */
static hf_err_t config_parse_double(const char *text, double *out)
{
    errno = 0;
    char *end = NULL;
    double v = strtod(text, &end);
    if (errno || end == text || *end != '\0' || !isfinite(v))
        return HF_ERR_INVALID;
    *out = v;
    return HF_OK;
}

static hf_err_t config_set(const hf_conf_spec_t *spec, void *target, const char *text,
                           const char *source, char *errbuf, size_t errbuf_size)
{
    char *field = (char *)target + spec->offset;
    hf_err_t err = HF_OK;
    long long v = 0;
    double d = 0;
    const char *rest = "";

    switch (spec->type) {
    case HF_CONF_STRING:
        hf_free(*(char **)field);
        *(char **)field = text ? hf_strdup(text) : NULL;
        return HF_OK;
    case HF_CONF_LIST:
        if (text && *(char **)field) {
            char *joined = hf_malloc(strlen(*(char **)field) + 1 + strlen(text) + 1);
            sprintf(joined, "%s\n%s", *(char **)field, text);
            hf_free(*(char **)field);
            *(char **)field = joined;
        } else if (text) {
            *(char **)field = hf_strdup(text);
        }
        return HF_OK;
    case HF_CONF_BOOL:
        err = config_parse_bool(text, (bool *)field);
        break;
    case HF_CONF_INT:
        err = config_parse_ll(text, &v, &rest);
        if (err == HF_OK && *rest)
            err = HF_ERR_INVALID;
        break;
    case HF_CONF_MS:
        err = hf_config_parse_ms(text, &v);
        break;
    case HF_CONF_BYTES:
        err = hf_config_parse_bytes(text, &v);
        break;
    case HF_CONF_DOUBLE:
        err = config_parse_double(text, &d);
        break;
    case HF_CONF_ENV_NAME:
        return HF_OK;
    }
    if (err != HF_OK) {
        snprintf(errbuf, errbuf_size, "%s: %s=%s is not a valid value", source, spec->name, text);
        return err;
    }
    if (spec->type == HF_CONF_BOOL)
        return HF_OK;
    bool is_double = spec->type == HF_CONF_DOUBLE;
    if ((spec->min || spec->max) && (is_double ? d < (double)spec->min || d > (double)spec->max
                                               : v < spec->min || v > spec->max)) {
        snprintf(errbuf, errbuf_size, "%s: %s=%s is outside [%lld, %lld]", source, spec->name, text,
                 spec->min, spec->max);
        return HF_ERR_INVALID;
    }
    if (is_double)
        *(double *)field = d;
    else
        *(long long *)field = v;
    return HF_OK;
}

static const hf_conf_spec_t *config_find(const hf_conf_spec_t *specs, size_t nspecs,
                                         const char *name, size_t len)
{
    for (size_t i = 0; i < nspecs; i++)
        if (specs[i].type != HF_CONF_ENV_NAME && strlen(specs[i].name) == len &&
            strncmp(specs[i].name, name, len) == 0)
            return &specs[i];
    return NULL;
}

static hf_err_t config_load_env(const hf_conf_spec_t *specs, size_t nspecs, void *target,
                                char *errbuf, size_t errbuf_size)
{
    for (size_t i = 0; i < nspecs; i++) {
        if (specs[i].type == HF_CONF_ENV_NAME)
            continue;
        char env[128];
        config_env_name(specs, nspecs, &specs[i], env, sizeof env);
        const char *val = getenv(env);
        if (!val)
            continue;
        char source[160];
        snprintf(source, sizeof source, "environment %s", env);
        hf_err_t err = config_set(&specs[i], target, val, source, errbuf, errbuf_size);
        if (err != HF_OK)
            return err;
    }
    return HF_OK;
}

static hf_err_t config_load_argv(const hf_conf_spec_t *specs, size_t nspecs, void *target, int argc,
                                 char **argv, bool *help, char *errbuf, size_t errsz)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            *help = true;
            return HF_OK;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(errbuf, errsz, "unexpected argument '%s' (see --help)", arg);
            return HF_ERR_INVALID;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const hf_conf_spec_t *spec = config_find(specs, nspecs, name, len);
        if (!spec) {
            snprintf(errbuf, errsz, "unknown option '%s' (see --help)", arg);
            return HF_ERR_INVALID;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val && spec->type == HF_CONF_BOOL)
            val = "true";
        else if (!val && i + 1 < argc)
            val = argv[++i];
        if (!val) {
            snprintf(errbuf, errsz, "option --%s needs a value", spec->name);
            return HF_ERR_INVALID;
        }
        hf_err_t err = config_set(spec, target, val, "flag", errbuf, errsz);
        if (err != HF_OK)
            return err;
    }
    return HF_OK;
}

hf_err_t hf_config_load(const hf_conf_spec_t *specs, size_t nspecs, void *target, int argc,
                        char **argv, const char *usage, bool *help_shown, char *errbuf,
                        size_t errbuf_size)
{
    *help_shown = false;
    for (size_t i = 0; i < nspecs; i++) {
        if (specs[i].type == HF_CONF_ENV_NAME ||
            (!specs[i].def && (specs[i].type == HF_CONF_STRING || specs[i].type == HF_CONF_LIST)))
            continue;
        hf_err_t err = config_set(&specs[i], target, specs[i].def ? specs[i].def : "0", "default",
                                  errbuf, errbuf_size);
        if (err != HF_OK)
            return err;
    }
    hf_err_t err = config_load_env(specs, nspecs, target, errbuf, errbuf_size);
    if (err == HF_OK)
        err = config_load_argv(specs, nspecs, target, argc, argv, help_shown, errbuf, errbuf_size);
    if (err == HF_OK && *help_shown)
        hf_config_print_help(specs, nspecs, usage, stdout);
    return err;
}

void hf_config_print_help(const hf_conf_spec_t *specs, size_t nspecs, const char *usage, FILE *out)
{
    static const char *const type_names[] = {
        [HF_CONF_STRING] = "string", [HF_CONF_INT] = "int",     [HF_CONF_BOOL] = "bool",
        [HF_CONF_MS] = "duration",   [HF_CONF_BYTES] = "bytes", [HF_CONF_LIST] = "list",
        [HF_CONF_DOUBLE] = "number", [HF_CONF_ENV_NAME] = NULL,
    };
    fprintf(out, "%s\n\nSettings (flag, environment variable, default):\n", usage);
    for (size_t i = 0; i < nspecs; i++) {
        if (specs[i].type == HF_CONF_ENV_NAME)
            continue;
        char env[128];
        config_env_name(specs, nspecs, &specs[i], env, sizeof env);
        fprintf(out, "  --%s=<%s>\n      env %s, default: %s\n      %s%s\n", specs[i].name,
                type_names[specs[i].type], env, specs[i].def ? specs[i].def : "(unset)",
                specs[i].help,
                specs[i].type == HF_CONF_LIST
                    ? " (repeatable; the variable takes one per line; flags add to it)"
                    : "");
    }
    fprintf(out, "  --help\n      print this help and exit\n");
}

void hf_config_free(const hf_conf_spec_t *specs, size_t nspecs, void *target)
{
    for (size_t i = 0; i < nspecs; i++) {
        if (specs[i].type != HF_CONF_STRING && specs[i].type != HF_CONF_LIST)
            continue;
        char **field = (char **)((char *)target + specs[i].offset);
        hf_free(*field);
        *field = NULL;
    }
}

int hf_config_load_tool(const char *program, const hf_conf_spec_t *specs, size_t nspecs,
                        void *target, int argc, char **argv, const char *usage)
{
    char err[256];
    bool help;
    int rc = -1;
    if (hf_config_load(specs, nspecs, target, argc, argv, usage, &help, err, sizeof err) != HF_OK) {
        fprintf(stderr, "%s: %s\n", program, err);
        rc = 2;
    } else if (help) {
        rc = 0;
    }
    if (rc >= 0)
        hf_config_free(specs, nspecs, target);
    return rc;
}

int hf_config_load_daemon(const char *service, const hf_conf_spec_t *specs, size_t nspecs,
                          void *target, char *const *log_level, int argc, char **argv,
                          const char *usage)
{
    char program[64];
    snprintf(program, sizeof program, "holdfast-%s", service);
    int rc = hf_config_load_tool(program, specs, nspecs, target, argc, argv, usage);
    if (rc >= 0)
        return rc;
    int level = hf_log_level_parse(*log_level);
    if (level < 0) {
        fprintf(stderr, "holdfast-%s: log-level=%s is not one of debug, info, warn, error\n",
                service, *log_level);
        return 2;
    }
    hf_log_init(service, (hf_log_level_t)level);
    return -1;
}
