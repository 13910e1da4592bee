#!/usr/bin/env bash
# The relay as operators see it: --help and a refused unsafe lease setting,
# /readyz and /metrics, two replicas splitting the partitions fairly, SIGTERM
# (batch finished, leases released at once so the other replica takes them
# without waiting for the TTL, exit 0), a topic with too few partitions
# refused, and a Kafka log that restarts empty (dev broker restarted) found
# as a reset: a new epoch, positions starting again from the new log.
set -euo pipefail
BUILD=${1:-build}
HF_BIN=$(cd "$BUILD" && pwd)/bin
source "$(dirname "$0")/../support/lib.sh"
hf_init "$(mktemp -d /tmp/holdfast-test.XXXXXX)"
trap 'hf_stop_all; rm -rf "$HF_RUN"' EXIT

RELAY="$HF_BIN/holdfast-relay"
hf_check "--help lists the lease settings" bash -c "'$RELAY' --help | grep -q -- --lease-ttl"
rc=0
"$RELAY" --lease-ttl 2s --produce-timeout 3s >"$HF_RUN/bad.out" 2>&1 || rc=$?
hf_check_eq "lease-ttl below produce-timeout refused" 2 "$rc"
hf_check "the refusal says why" grep -q 'must exceed produce-timeout' "$HF_RUN/bad.out"

hf_pg_start "" fsync=off
hf_migrate
hf_redis_start
hf_kafka_start 8 holdfast.events

relay_start() { # relay_start NAME [ARGS...]: sets PORT_<NAME>
    local name=$1 port
    shift
    port=$(hf_free_port)
    hf_spawn "$name" "$RELAY" --port "$port" --pg-url "$HF_PG_URL" --kafka-brokers "$HF_KAFKA_BROKERS" \
        --redis-url "$HF_REDIS_URL" --relay-id "$name" --lease-ttl 3s --lease-renew 200ms \
        --produce-timeout 1s "$@"
    printf -v "PORT_$name" '%s' "$port"
    hf_wait_until 30 "$name /livez" hf_http_ok "http://127.0.0.1:$port/livez" || hf_die "$name did not start"
}
owned_by() { hf_psql -c "SELECT count(*) FROM holdfast.relay_leases WHERE owner = '$1' AND expires_at > now()"; }
test_owned() { [[ $(owned_by "$1") == "$2" ]]; }
publish() { # publish N CHANNELS
    hf_psql -c "SELECT count(*) FROM holdfast._append(
        array(SELECT 'ops:' || (g % $2) FROM generate_series(1, $1) g), array_fill(NULL::text, ARRAY[$1]),
        array(SELECT convert_to('{\"n\":' || g || '}', 'UTF8') FROM generate_series(1, $1) g), NULL, NULL)" >/dev/null
}
drained() { [[ $(hf_psql -c "SELECT count(*) FROM holdfast.outbox") == 0 ]]; }

relay_start ra
hf_check "ra ready" hf_wait_until 20 "ra /readyz" hf_http_ok "http://127.0.0.1:$PORT_ra/readyz"
hf_check "ra alone owns all 8 partitions" hf_wait_until 20 "ra owning 8" test_owned ra 8
relay_start rb
hf_check "two replicas split 4 / 4" hf_wait_until 20 "a fair split" bash -c \
    "[[ \$(psql '$HF_PG_URL' -XqtAc \"SELECT string_agg(c::text, ',' ORDER BY c) FROM (SELECT count(*) c FROM holdfast.relay_leases GROUP BY owner) x\") == 4,4 ]]"
publish 2000 50
hf_check "both replicas drain the outbox" hf_wait_until 30 "the outbox to drain" drained
metrics=$(curl -fsS "http://127.0.0.1:$PORT_ra/metrics")
for m in holdfast_relay_partitions_owned holdfast_relay_events_produced_total holdfast_relay_outbox_rows \
    holdfast_relay_outbox_oldest_seconds holdfast_relay_produce_seconds_bucket holdfast_relay_redis_published_total \
    holdfast_relay_redis_skipped_total holdfast_relay_lease_takeovers_total holdfast_relay_dead_letters_total; do
    hf_check "metric $m exported" grep -q "^$m" <<<"$metrics"
done
hf_check_eq "partitions_owned gauge says 4" 4 "$(sed -n 's/^holdfast_relay_partitions_owned //p' <<<"$metrics")"

# SIGTERM: exit 0, leases freed at once, rb takes all 8 well before the TTL would have let it.
publish 500 50
ra_pid=$(hf_pid ra)
t0=$(date +%s%N)
kill -TERM "$ra_pid"
hf_wait_exit ra
hf_check_eq "SIGTERM: relay exits 0" 0 "$HF_EXIT_STATUS"
hf_check "leases released on SIGTERM" grep -q 'leases released' "$HF_RUN/ra.log"
hf_check "rb takes all 8 partitions" hf_wait_until 20 "rb owning 8" test_owned rb 8
took_ms=$((($(date +%s%N) - t0) / 1000000))
hf_log "rb owned all partitions ${took_ms} ms after ra's SIGTERM (TTL 3000 ms)"
hf_check "... without waiting for the lease TTL" test "$took_ms" -lt 3000
hf_check "everything drained after the handover" hf_wait_until 30 "the outbox to drain" drained
hf_check_eq "no record twice in Kafka after the handover" 0 \
    "$(timeout 30 kcat -C -b "$HF_KAFKA_BROKERS" -t holdfast.events -o beginning -e -q -f '%h\n' | sed 's/,.*//' | sort | uniq -d | wc -l)"
hf_check_eq "every event has its offset" 0 "$(hf_psql -c "SELECT count(*) FROM holdfast.events WHERE kafka_offset IS NULL")"
hf_stop rb

# A topic with fewer partitions than holdfast.meta: refused, not ready.
epoch_before=$(hf_psql -c "SELECT epoch FROM holdfast.meta")
hf_stop kafka
rm -f "$HF_RUN/kafka.log"
hf_kafka_start 4 holdfast.events
relay_start rc
sleep 2
hf_check "relay with a 4-partition topic is not ready" bash -c "! curl -fsS -o /dev/null 'http://127.0.0.1:$PORT_rc/readyz'"
hf_check "... and says why" grep -q 'has 4 partitions but holdfast.meta says 8' "$HF_RUN/rc.log"
hf_stop rc

# The broker restarted empty: the log is reset; a new epoch, chains restart.
hf_stop kafka
rm -f "$HF_RUN/kafka.log"
hf_kafka_start 8 holdfast.events
relay_start rd
publish 20 2
hf_check "events after the reset are relayed" hf_wait_until 30 "the outbox to drain" drained
epoch_after=$(hf_psql -c "SELECT epoch FROM holdfast.meta")
hf_check "a reset log starts a new epoch" test "$epoch_before" != "$epoch_after"
hf_check "the relay says why" grep -q 'reset' "$HF_RUN/rd.log"
hf_check_eq "new events carry the new epoch" 20 \
    "$(hf_psql -c "SELECT count(*) FROM holdfast.events WHERE epoch = '$epoch_after'")"
hf_check_eq "offsets of the new log start again at 0" 0 \
    "$(hf_psql -c "SELECT min(kafka_offset) FROM holdfast.events WHERE epoch = '$epoch_after'")"

hf_checks_done
