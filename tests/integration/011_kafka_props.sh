#!/usr/bin/env bash
# Kafka client properties (--kafka-properties-file, --kafka-property) reach
# every Kafka client against the dev broker: the relay's producer and tail
# reader, the gateway's readers, ingest's history reader and
# holdfast-replay each log librdkafka's debug output when the properties
# ask for it; a password given as key=@FILE never appears in any log; a
# property librdkafka refuses, or one Holdfast sets itself, stops each
# binary at start-up with librdkafka's (or Holdfast's) message. TLS and
# SASL: the dev broker (librdkafka 2.0.2's mock cluster) speaks neither, so
# what is shown is that the client does: security.protocol=ssl makes the
# client start a TLS handshake (the plaintext broker fails it),
# sasl_plaintext makes it ask for SCRAM (the broker cannot), and an
# unreadable CA file stops start-up.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_kafka_start 2 holdfast.events
hf_redis_start
secret=kpw-$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$secret" >"$HF_RUN/kafka.password"
cat >"$HF_RUN/client.properties" <<EOF
# what an operator's file looks like
debug = broker,conf
log_level=7

sasl.username=holdfast
sasl.password=@$HF_RUN/kafka.password
EOF
PROPS=(--kafka-properties-file "$HF_RUN/client.properties" --kafka-property client.id=hf-props-test)
NOPG=postgresql://holdfast@127.0.0.1:1/holdfast # nothing listens: not needed here

# Each client: librdkafka's BROKER debug lines show the properties applied.
debug_seen() { grep -q '"msg":"kafka BROKER' "$HF_RUN/$1.log"; }
hf_gateway_start gw "${PROPS[@]}"
hf_check "gateway: its Kafka readers took the properties" debug_seen gw
hf_spawn relay "$HF_BIN/holdfast-relay" --port 0 --pg-url "$NOPG" --kafka-brokers "$HF_KAFKA_BROKERS" \
    --redis-url "$HF_REDIS_URL" --relay-id props "${PROPS[@]}"
hf_check "relay: its producer took the properties" hf_wait_until 20 "relay debug lines" debug_seen relay
hf_spawn ingest "$HF_BIN/holdfast-ingest" --port "$(hf_free_port)" --pg-url "$NOPG" --auth=false \
    --kafka-brokers "$HF_KAFKA_BROKERS" "${PROPS[@]}"
hf_check "ingest: its history reader took the properties" hf_wait_until 20 "ingest debug lines" debug_seen ingest
"$HF_BIN/holdfast-replay" --kafka-brokers "$HF_KAFKA_BROKERS" --partition 0 "${PROPS[@]}" \
    >/dev/null 2>"$HF_RUN/replay.log" || true
hf_check "replay: its reader took the properties" debug_seen replay
hf_stop relay
hf_stop ingest
hf_stop gw
for part in gw relay ingest replay; do
    hf_check "$part: the properties are logged, the password redacted" \
        grep -q 'kafka client properties: .*sasl.password=\[redacted\]' "$HF_RUN/$part.log"
done
hf_check_eq "the password is in no log" "" "$(grep -l -F "$secret" "$HF_RUN"/*.log || true)"

# Refused at start-up, with the reason, by every binary.
refused() { # refused NAME EXPECTED-TEXT CMD...: CMD exits non-zero, saying EXPECTED-TEXT
    local name=$1 want=$2 rc=0
    shift 2
    timeout 30 "$@" >"$HF_RUN/refused.$name.out" 2>&1 || rc=$?
    hf_check "$name exits at start-up (status $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
    hf_check "$name says: $want" grep -q -F "$want" "$HF_RUN/refused.$name.out"
}
BAD=(--kafka-property no.such.property=1)
LIBRDKAFKA='No such configuration property: \"no.such.property\"'
refused gateway "$LIBRDKAFKA" "$HF_BIN/holdfast-gateway" --port 0 --redis-url "$HF_REDIS_URL" \
    --kafka-brokers "$HF_KAFKA_BROKERS" --auth=false "${BAD[@]}"
refused relay "$LIBRDKAFKA" "$HF_BIN/holdfast-relay" --port 0 --pg-url "$NOPG" \
    --kafka-brokers "$HF_KAFKA_BROKERS" --redis-url "" "${BAD[@]}"
refused ingest "$LIBRDKAFKA" "$HF_BIN/holdfast-ingest" --port 0 --pg-url "$NOPG" --auth=false \
    --kafka-brokers "$HF_KAFKA_BROKERS" "${BAD[@]}"
refused replay 'No such configuration property: "no.such.property"' "$HF_BIN/holdfast-replay" \
    --kafka-brokers "$HF_KAFKA_BROKERS" --partition 0 "${BAD[@]}"
refused relay-own-property "enable.idempotence is set by Holdfast itself" "$HF_BIN/holdfast-relay" \
    --port 0 --pg-url "$NOPG" --kafka-brokers "$HF_KAFKA_BROKERS" --redis-url "" \
    --kafka-property enable.idempotence=false
refused replay-missing-ca "ssl.ca.location failed" "$HF_BIN/holdfast-replay" \
    --kafka-brokers "$HF_KAFKA_BROKERS" --partition 0 --kafka-property security.protocol=ssl \
    --kafka-property ssl.ca.location="$HF_RUN/no-such-ca.pem"

# TLS and SASL are attempted (both runs wait out replay's 5 s Kafka timeout, side by side).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=holdfast-test-ca -keyout "$HF_RUN/ca.key" -out "$HF_RUN/ca.pem" 2>/dev/null
"$HF_BIN/holdfast-replay" --kafka-brokers "$HF_KAFKA_BROKERS" --partition 0 \
    --kafka-property security.protocol=ssl --kafka-property ssl.ca.location="$HF_RUN/ca.pem" \
    >/dev/null 2>"$HF_RUN/replay-ssl.log" &
ssl_pid=$!
"$HF_BIN/holdfast-replay" --kafka-brokers "$HF_KAFKA_BROKERS" --partition 0 \
    --kafka-property security.protocol=sasl_plaintext --kafka-property sasl.mechanism=SCRAM-SHA-512 \
    --kafka-property sasl.username=holdfast --kafka-property "sasl.password=@$HF_RUN/kafka.password" \
    >/dev/null 2>"$HF_RUN/replay-sasl.log" &
sasl_pid=$!
rc=0; wait "$ssl_pid" || rc=$?
hf_check_eq "replay over TLS to a plaintext broker: Kafka unreachable (exit 3)" 3 "$rc"
hf_check "the client started a TLS handshake" grep -q 'SSL handshake failed' "$HF_RUN/replay-ssl.log"
rc=0; wait "$sasl_pid" || rc=$?
hf_check_eq "replay with SASL to a broker without it: Kafka unreachable (exit 3)" 3 "$rc"
hf_check "the client asked for SCRAM-SHA-512" grep -q 'required by mechanism SCRAM-SHA-512' "$HF_RUN/replay-sasl.log"
hf_check_eq "the password is in no log" "" "$(grep -l -F "$secret" "$HF_RUN"/*.log || true)"
hf_checks_done
