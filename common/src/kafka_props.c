/* kafka_props.c - librdkafka properties from a file and from flags; see kafka_props.h. */
#include "holdfast/kafka_props.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "holdfast/alloc.h"
#include "holdfast/file.h"
#include "holdfast/log.h"

#define PROPS_FILE_MAX  (1024 * 1024) /* a properties file */
#define PROPS_VALUE_MAX (1024 * 1024) /* a value read with @FILE (an inline PEM chain fits) */

typedef struct props_entry {
    char *name;
    char *value; /* wiped when freed: it may be a secret */
} props_entry_t;

struct hf_kafka_props {
    props_entry_t *entries;
    size_t n, cap;
};

/* What Holdfast sets itself. The brokers have their own flag (one place to
 * look); the producer's exactly-once and the lease argument rest on
 * idempotence, acks=all and the message timeout (docs/relay.md); the
 * readers assign partitions with explicit offsets and rely on their own
 * offset-reset and end-of-partition handling. */
static const char *const props_reserved[][2] = {
    {"bootstrap.servers", "set the brokers with --kafka-brokers"},
    {"metadata.broker.list", "set the brokers with --kafka-brokers"},
    {"enable.idempotence", "the relay's exactly-once delivery rests on it"},
    {"acks", "the relay's exactly-once delivery rests on it"},
    {"request.required.acks", "the relay's exactly-once delivery rests on it"},
    {"enable.gapless.guarantee", "the relay's exactly-once delivery rests on it"},
    {"transactional.id", "the relay does not use Kafka transactions"},
    {"message.timeout.ms", "it is --produce-timeout (the relay's lease rests on it)"},
    {"delivery.timeout.ms", "it is --produce-timeout (the relay's lease rests on it)"},
    {"group.id", "the readers assign partitions by offset, without a consumer group"},
    {"enable.auto.commit", "the readers commit no offsets"},
    {"enable.auto.offset.store", "the readers commit no offsets"},
    {"auto.offset.reset", "the readers detect offsets the log no longer holds through it"},
    {"enable.partition.eof", "the relay's tail reader relies on it"},
};

bool hf_kafka_props_is_secret(const char *name)
{
    return strstr(name, "password") || strstr(name, "secret") || strcmp(name, "ssl.key.pem") == 0 ||
           strcmp(name, "ssl_key") == 0 || strcmp(name, "sasl.oauthbearer.config") == 0;
}

void hf_kafka_props_free(hf_kafka_props_t *props)
{
    if (!props)
        return;
    for (size_t i = 0; i < props->n; i++) {
        hf_free(props->entries[i].name);
        hf_free_secret(props->entries[i].value);
    }
    hf_free(props->entries);
    hf_free(props);
}

size_t hf_kafka_props_count(const hf_kafka_props_t *props)
{
    return props->n;
}

const char *hf_kafka_props_name(const hf_kafka_props_t *props, size_t i)
{
    return props->entries[i].name;
}

const char *hf_kafka_props_value(const hf_kafka_props_t *props, size_t i)
{
    return props->entries[i].value;
}

static bool props_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* One "key=value" (where names where it came from, for errors). The line
 * itself is never quoted back: it may hold a password. */
static hf_err_t props_add(hf_kafka_props_t *props, const char *line, size_t len, const char *where,
                          char *errbuf, size_t errbuf_size)
{
    while (len > 0 && props_blank(*line)) {
        line++;
        len--;
    }
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        len--;
    if (len == 0 || line[0] == '#')
        return HF_OK;
    const char *eq = memchr(line, '=', len);
    size_t name_len = eq ? (size_t)(eq - line) : 0;
    while (name_len > 0 && props_blank(line[name_len - 1]))
        name_len--;
    if (!eq || name_len == 0) {
        snprintf(errbuf, errbuf_size, "%s: expected key=value", where);
        return HF_ERR_INVALID;
    }
    char *name = hf_strndup(line, name_len);
    for (size_t i = 0; i < sizeof props_reserved / sizeof props_reserved[0]; i++) {
        if (strcmp(name, props_reserved[i][0]) == 0) {
            snprintf(errbuf, errbuf_size, "%s: kafka property %s is set by Holdfast itself (%s)",
                     where, name, props_reserved[i][1]);
            hf_free(name);
            return HF_ERR_INVALID;
        }
    }
    const char *v = eq + 1;
    size_t vlen = len - (size_t)(v - line);
    while (vlen > 0 && props_blank(*v)) {
        v++;
        vlen--;
    }
    char *value;
    if (vlen >= 2 && v[0] == '@' && v[1] == '@') {
        value = hf_strndup(v + 1, vlen - 1); /* "@@x" is the literal "@x" */
    } else if (vlen >= 1 && v[0] == '@') {
        char *path = hf_strndup(v + 1, vlen - 1), why[512];
        hf_err_t err = hf_file_read_secret(path, PROPS_VALUE_MAX, &value, why, sizeof why);
        hf_free(path);
        if (err != HF_OK) {
            snprintf(errbuf, errbuf_size, "%s: kafka property %s: %s", where, name, why);
            hf_free(name);
            return HF_ERR_INVALID;
        }
    } else {
        value = hf_strndup(v, vlen);
    }
    if (props->n == props->cap) {
        props->cap = props->cap ? props->cap * 2 : 16;
        props->entries = hf_realloc(props->entries, props->cap * sizeof *props->entries);
    }
    props->entries[props->n++] = (props_entry_t){name, value};
    return HF_OK;
}

/* Each line of text; errors name "SOURCE UNIT N" (a file's line, a flag's
 * entry). */
static hf_err_t props_add_lines(hf_kafka_props_t *props, const char *text, const char *source,
                                const char *unit, char *errbuf, size_t errbuf_size)
{
    int lineno = 0;
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, "\n");
        char where[600];
        snprintf(where, sizeof where, "%s %s%d", source, unit, ++lineno);
        hf_err_t err = props_add(props, p, len, where, errbuf, errbuf_size);
        if (err != HF_OK)
            return err;
        p += len + (p[len] == '\n');
    }
    return HF_OK;
}

hf_kafka_props_t *hf_kafka_props_load(const hf_kafka_props_config_t *cfg, char *errbuf,
                                      size_t errbuf_size)
{
    hf_kafka_props_t *props = hf_calloc(1, sizeof *props);
    hf_err_t err = HF_OK;
    if (cfg && cfg->file && cfg->file[0]) {
        char *text = NULL, why[512];
        err = hf_file_read_secret(cfg->file, PROPS_FILE_MAX, &text, why, sizeof why);
        if (err != HF_OK)
            snprintf(errbuf, errbuf_size, "kafka-properties-file %s", why);
        else
            err = props_add_lines(props, text, cfg->file, "line ", errbuf, errbuf_size);
        hf_free_secret(text);
    }
    if (err == HF_OK && cfg && cfg->list && cfg->list[0])
        err = props_add_lines(props, cfg->list, "--kafka-property", "#", errbuf, errbuf_size);
    if (err != HF_OK) {
        hf_kafka_props_free(props);
        return NULL;
    }
    return props;
}

void hf_kafka_props_describe(const hf_kafka_props_t *props, hf_buf_t *out)
{
    for (size_t i = 0; i < props->n; i++)
        hf_buf_printf(out, "%s%s=%s", i ? " " : "", props->entries[i].name,
                      hf_kafka_props_is_secret(props->entries[i].name) ? "[redacted]"
                                                                       : props->entries[i].value);
}

/* Replaces every occurrence of secret in text (librdkafka quotes values in
 * its messages) with [redacted]. */
static void props_redact(char *text, size_t size, const char *secret)
{
    size_t slen = strlen(secret);
    if (slen == 0)
        return;
    hf_buf_t out = HF_BUF_INIT;
    for (const char *p = text, *hit; *p; p = hit + slen) {
        hit = strstr(p, secret);
        if (!hit) {
            hf_buf_append_str(&out, p);
            break;
        }
        hf_buf_append(&out, p, (size_t)(hit - p));
        hf_buf_append_str(&out, "[redacted]");
    }
    snprintf(text, size, "%s", out.data ? out.data : "");
    hf_buf_free(&out);
}

hf_err_t hf_kafka_props_apply(const hf_kafka_props_config_t *cfg, rd_kafka_conf_t *conf,
                              char *errbuf, size_t errbuf_size)
{
    static atomic_bool logged;
    hf_kafka_props_t *props = hf_kafka_props_load(cfg, errbuf, errbuf_size);
    if (!props)
        return HF_ERR_INVALID;
    hf_err_t err = HF_OK;
    for (size_t i = 0; i < props->n && err == HF_OK; i++) {
        const props_entry_t *e = &props->entries[i];
        char why[512];
        if (rd_kafka_conf_set(conf, e->name, e->value, why, sizeof why) == RD_KAFKA_CONF_OK)
            continue;
        if (hf_kafka_props_is_secret(e->name))
            props_redact(why, sizeof why, e->value);
        snprintf(errbuf, errbuf_size, "kafka property %s: %s", e->name, why);
        err = HF_ERR_INVALID;
    }
    if (err == HF_OK && props->n > 0 && !atomic_exchange(&logged, true)) {
        hf_buf_t text = HF_BUF_INIT;
        hf_kafka_props_describe(props, &text);
        hf_info("kafka client properties: %s", text.data);
        hf_buf_free(&text);
    }
    hf_kafka_props_free(props);
    return err;
}
