#!/usr/bin/env bash
# The relay as operators see it: --help and a refused unsafe lease setting,
# /readyz and /metrics, two replicas splitting the partitions fairly, SIGTERM
# (batch finished, leases released at once so the other replica takes them
# without waiting for the TTL, exit 0), a topic with too few partitions
# refused, and a Kafka log that restarts empty (dev broker restarted) found
# as a reset: a new epoch, positions starting again from the new log.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

RELAY="$HF_BIN/holdfast-relay"
hf_check "--help lists the lease settings" bash -c "'$RELAY' --help | grep -q -- --lease-ttl"
rc=0
"$RELAY" --lease-ttl 2s --produce-timeout 3s >"$HF_RUN/bad.out" 2>&1 || rc=$?
hf_check_eq "lease-ttl below produce-timeout refused" 2 "$rc"
hf_check "the refusal says why" grep -q 'must exceed produce-timeout' "$HF_RUN/bad.out"

hf_pipeline_start
hf_tap_start "$HF_RUN/redis.jsonl"


hf_relay_start ra
hf_check "ra ready" hf_wait_until 20 "ra /readyz" hf_http_ok "http://127.0.0.1:$PORT_ra/readyz"
hf_check "ra alone owns all 8 partitions" hf_wait_until 20 "ra owning 8" hf_relay_owns ra 8
hf_publish_numbered ops 50 200 # ra learns every channel's chain
hf_relay_start rb
hf_check "two replicas split 4 / 4" hf_wait_until 20 "a fair split" hf_leases_split 4,4
hf_publish_numbered ops 50 2000
hf_check "both replicas drain the outbox" hf_wait_until 30 "the outbox to drain" hf_outbox_empty
metrics=$(curl -fsS "http://127.0.0.1:$PORT_ra/metrics")
for m in holdfast_relay_partitions_owned holdfast_relay_events_produced_total holdfast_relay_outbox_rows \
    holdfast_relay_outbox_oldest_seconds holdfast_relay_produce_seconds_bucket holdfast_relay_redis_published_total \
    holdfast_relay_redis_skipped_total holdfast_relay_lease_takeovers_total holdfast_relay_dead_letters_total; do
    hf_check "metric $m exported" grep -q "^$m" <<<"$metrics"
done
hf_check_eq "partitions_owned gauge says 4" 4 "$(sed -n 's/^holdfast_relay_partitions_owned //p' <<<"$metrics")"

# SIGTERM: exit 0, leases freed at once, rb takes all 8 well before the TTL would have let it.
hf_publish_numbered ops 50 500
ra_pid=$(hf_pid ra)
t0=$(date +%s%N)
kill -TERM "$ra_pid"
hf_wait_exit ra
hf_check_eq "SIGTERM: relay exits 0" 0 "$HF_EXIT_STATUS"
hf_check "leases released on SIGTERM" grep -q 'leases released' "$HF_RUN/ra.log"
hf_check "rb takes all 8 partitions" hf_wait_until 20 "rb owning 8" hf_relay_owns rb 8
took_ms=$((($(date +%s%N) - t0) / 1000000))
hf_log "rb owned all partitions ${took_ms} ms after ra's SIGTERM (TTL 4000 ms)"
hf_check "... without waiting for the lease TTL" test "$took_ms" -lt 4000
hf_check "everything drained after the handover" hf_wait_until 30 "the outbox to drain" hf_outbox_empty
hf_check_eq "no record twice in Kafka after the handover" 0 \
    "$(timeout 30 kcat -C -b "$HF_KAFKA_BROKERS" -t holdfast.events -o beginning -e -q -f '%h\n' | sed 's/,.*//' | sort | uniq -d | wc -l)"
hf_check_eq "every event has its offset" 0 "$(hf_psql -c "SELECT count(*) FROM holdfast.events WHERE kafka_offset IS NULL")"

# A partition given away and taken back: chains grew elsewhere meanwhile.
# rb knows every channel; re takes half, extends those chains, leaves; rb
# must not stamp prev_offset from what it knew before.
hf_relay_start re
hf_check "rb and re split 4 / 4" hf_wait_until 20 "a fair split" hf_leases_split 4,4
hf_publish_numbered ops 50 500
hf_check "rb and re drain the outbox" hf_wait_until 30 "the outbox to drain" hf_outbox_empty
hf_stop re
hf_check "rb takes all 8 back" hf_wait_until 20 "rb owning 8" hf_relay_owns rb 8
hf_publish_numbered ops 50 500
hf_check "rb drains the outbox" hf_wait_until 30 "the outbox to drain" hf_outbox_empty
hf_stop rb
sleep 0.3
hf_stop tap
hf_check "Kafka exactly once and ordered; every Redis prev_offset is the channel's previous offset" \
    hf_relay_verify --expect $((HF_NEXT_SEQ - 1)) --tap "$HF_RUN/redis.jsonl" --tap-complete

# Wake-up by NOTIFY: with the slow poll at 60 s and lease rounds every 10 s,
# an event committed while the relay idles still leaves at once.
hf_relay_start rn --poll-interval 60s --lease-renew 10s --lease-ttl 30s
hf_check "rn owns all 8 partitions" hf_wait_until 30 "rn owning 8" hf_relay_owns rn 8
sleep 1 # past the fetch that follows acquiring
t0=$(date +%s%N)
hf_publish_numbered ops 5 1
hf_check "NOTIFY wakes an idle relay (poll 60 s, next lease round in ~9 s)" \
    hf_wait_until 5 "the event to leave the outbox" hf_outbox_empty
hf_log "one event relayed $((($(date +%s%N) - t0) / 1000000)) ms after its commit (measured by polling psql)"
hf_stop rn

# A topic with fewer partitions than holdfast.meta: refused, not ready.
epoch_before=$(hf_psql -c "SELECT epoch FROM holdfast.meta")
hf_stop kafka
rm -f "$HF_RUN/kafka.log"
hf_kafka_start 4 holdfast.events
hf_relay_start rc
sleep 2
hf_check "relay with a 4-partition topic is not ready" bash -c "! curl -fsS -o /dev/null 'http://127.0.0.1:$PORT_rc/readyz'"
hf_check "... and says why" grep -q 'has 4 partitions but holdfast.meta says 8' "$HF_RUN/rc.log"
hf_stop rc

# The broker restarted empty: the log is reset; a new epoch, chains restart.
hf_stop kafka
rm -f "$HF_RUN/kafka.log"
hf_kafka_start 8 holdfast.events
hf_relay_start rd
hf_publish_numbered ops 2 20
hf_check "events after the reset are relayed" hf_wait_until 30 "the outbox to drain" hf_outbox_empty
epoch_after=$(hf_psql -c "SELECT epoch FROM holdfast.meta")
hf_check "a reset log starts a new epoch" test "$epoch_before" != "$epoch_after"
hf_check "the relay says why" grep -q 'reset' "$HF_RUN/rd.log"
hf_check_eq "new events carry the new epoch" 20 \
    "$(hf_psql -c "SELECT count(*) FROM holdfast.events WHERE epoch = '$epoch_after'")"
hf_check_eq "offsets of the new log start again at 0" 0 \
    "$(hf_psql -c "SELECT min(kafka_offset) FROM holdfast.events WHERE epoch = '$epoch_after'")"

hf_checks_done
