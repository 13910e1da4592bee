/* kafka_props.h - the librdkafka properties an operator gives Kafka clients.
 *
 * Owns: reading them (--kafka-properties-file: key=value lines, '#'
 * comments, blank lines; --kafka-property key=value, repeatable, after the
 * file's), values read from a file ("key=@/path": the file's content with
 * its trailing newlines removed; "@@" starts a value that begins with a
 * literal '@'), which properties are secret (their values never appear in
 * a log line or an error message), which properties are Holdfast's own
 * (refused: the brokers come from --kafka-brokers, and the delivery and
 * reading guarantees rest on the others), and applying them to an
 * rd_kafka_conf_t, where librdkafka itself judges names and values.
 *
 * Every Kafka client applies them after its own settings, so they reach
 * the relay's producer and tail reader and every hf_logread (gateways,
 * ingest's history, holdfast-replay). This is how security.protocol,
 * sasl.* and ssl.* (and any tuning) are set. Properties are read again
 * each time a client is made (a re-created producer sees a rotated
 * password file).
 *
 * Threading: no state; any thread.
 * Ownership: an hf_kafka_props_t is the caller's, freed (values wiped) by
 * hf_kafka_props_free(). */
#ifndef HOLDFAST_KAFKA_PROPS_H
#define HOLDFAST_KAFKA_PROPS_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>

#include "holdfast/buf.h"
#include "holdfast/err.h"

typedef struct hf_kafka_props_config {
    char *file; /* --kafka-properties-file, or NULL */
    char *list; /* --kafka-property entries, one per line, or NULL */
} hf_kafka_props_config_t;

/* The settings of every daemon with a Kafka client, for its hf_conf_spec_t
 * table (config.h); member is its hf_kafka_props_config_t field. */
/* clang-format off */
#define HF_KAFKA_PROPS_SETTINGS(type, member)                                                     \
    {"kafka-properties-file", HF_CONF_STRING, offsetof(type, member.file), NULL, 0, 0,            \
     "librdkafka properties for every Kafka client, key=value lines (# comments; key=@FILE "      \
     "reads the value from FILE): security.protocol, sasl.*, ssl.*, tuning"},                     \
    {"kafka-property", HF_CONF_LIST, offsetof(type, member.list), NULL, 0, 0,                     \
     "one librdkafka property key=value (key=@FILE reads FILE), after the file's; the later of "  \
     "two wins"}
/* clang-format on */

typedef struct hf_kafka_props hf_kafka_props_t;

/* Reads the file and the list. NULL with the reason in errbuf on a line
 * that is not key=value, an unreadable file, or a property Holdfast sets
 * itself. Without file and list: an empty set. */
hf_kafka_props_t *hf_kafka_props_load(const hf_kafka_props_config_t *cfg, char *errbuf,
                                      size_t errbuf_size);
void hf_kafka_props_free(hf_kafka_props_t *props);
size_t hf_kafka_props_count(const hf_kafka_props_t *props);
/* The i-th property in the order given (the file's first). */
const char *hf_kafka_props_name(const hf_kafka_props_t *props, size_t i);
const char *hf_kafka_props_value(const hf_kafka_props_t *props, size_t i);

/* "name=value name=value ..." with the values of secret properties shown
 * as [redacted], for logs. */
void hf_kafka_props_describe(const hf_kafka_props_t *props, hf_buf_t *out);

/* True for a property whose value must never be shown: a name holding
 * "password" or "secret", and the key and credential blobs librdkafka
 * takes inline (ssl.key.pem, sasl.oauthbearer.config). */
bool hf_kafka_props_is_secret(const char *name);

/* Loads cfg and sets every property on conf, in order. HF_ERR_INVALID
 * with the reason in errbuf (librdkafka's own message for a name or value
 * it refuses, with a secret value redacted). The first call in a process
 * logs the properties (secrets redacted) once. */
hf_err_t hf_kafka_props_apply(const hf_kafka_props_config_t *cfg, rd_kafka_conf_t *conf,
                              char *errbuf, size_t errbuf_size);

#endif
