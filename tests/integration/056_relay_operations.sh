#!/usr/bin/env bash
# The relay as operators see it: --help and a refused unsafe lease setting,
# /readyz and /metrics, one replica leading and one standing by, SIGTERM
# (batches finished, the lease released at once so the standby leads
# without waiting for the TTL, exit 0), a leader frozen past its lease that
# wakes as a standby, a topic with too few partitions refused, and a Kafka
# log that restarts empty (dev broker restarted) found as a reset: a new
# epoch, positions starting again from the new log.
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


# A long TTL here, so that taking over at once after a SIGTERM is told
# apart from waiting for the lease to expire.
hf_relay_start ra --lease-ttl 6s
hf_check "ra ready" hf_wait_until 20 "ra /readyz" hf_http_ok "http://127.0.0.1:$PORT_ra/readyz"
hf_check "ra leads" hf_wait_until 20 "ra to lead" hf_relay_leads ra
hf_publish_numbered ops 50 200
hf_relay_start rb --lease-ttl 6s
hf_check "rb stands by" hf_wait_until 10 "rb to see ra" grep -q 'standing by: ra leads' "$HF_RUN/rb.log"
hf_check "a standby is ready too (it can take over)" hf_http_ok "http://127.0.0.1:$PORT_rb/readyz"
hf_publish_numbered ops 50 2000
hf_check "the leader relays everything" hf_wait_until 30 "every event relayed" hf_all_relayed
metrics=$(curl -fsS "http://127.0.0.1:$PORT_ra/metrics")
for m in holdfast_relay_leader holdfast_relay_events_produced_total holdfast_relay_slot_lag_bytes \
    holdfast_relay_stream_lag_seconds holdfast_relay_produce_seconds_bucket holdfast_relay_redis_published_total \
    holdfast_relay_redis_skipped_total holdfast_relay_lease_takeovers_total holdfast_relay_dead_letters_total \
    holdfast_relay_commit_events_bucket holdfast_relay_stream_restarts_total; do
    hf_check "metric $m exported" grep -q "^$m" <<<"$metrics"
done
hf_check_eq "leader gauge: 1 on the leader" 1 "$(sed -n 's/^holdfast_relay_leader //p' <<<"$metrics")"
hf_check_eq "leader gauge: 0 on the standby" 0 "$(hf_metric "$PORT_rb" holdfast_relay_leader)"
hf_check_eq "the standby produced nothing" 0 "$(hf_metric "$PORT_rb" holdfast_relay_events_produced_total)"
# The leader's heartbeat: every partition's last offset on hfctl:heads.
heads=$(timeout 2 redis-cli -p "$HF_REDIS_PORT" --raw subscribe hfctl:heads | sed -n 6p || true)
hf_check_eq "the heartbeat names the epoch" "$(hf_psql -c "SELECT epoch FROM holdfast.meta")" "${heads%% *}"
p0=$(hf_psql -c "SELECT holdfast.partition_for('ops:0')")
hf_check_eq "... and each partition's last offset" \
    "$(hf_psql -c "SELECT max(kafka_offset) FROM holdfast.event_log WHERE partition = $p0")" \
    "$(tr ' ' '\n' <<<"$heads" | sed -n "s/^$p0://p")"

# SIGTERM: exit 0, the lease freed at once, rb leads well before the TTL would have let it.
hf_publish_numbered ops 50 500
ra_pid=$(hf_pid ra)
t0=$(date +%s%N)
kill -TERM "$ra_pid"
hf_wait_exit ra
hf_check_eq "SIGTERM: relay exits 0" 0 "$HF_EXIT_STATUS"
hf_check "lease released on SIGTERM" grep -q 'lease released' "$HF_RUN/ra.log"
hf_check "rb leads" hf_wait_until 20 "rb to lead" hf_relay_leads rb
took_ms=$((($(date +%s%N) - t0) / 1000000))
hf_log "rb led ${took_ms} ms after ra's SIGTERM (TTL 6000 ms)"
hf_check "... without waiting for the lease TTL" test "$took_ms" -lt 6000
hf_check "everything relayed after the handover" hf_wait_until 30 "every event relayed" hf_all_relayed
hf_check_eq "no record twice in Kafka after the handover" 0 \
    "$(timeout 30 kcat -C -b "$HF_KAFKA_BROKERS" -t holdfast.events -o beginning -e -q -f '%h\n' | sed 's/,.*//' | sort | uniq -d | wc -l)"
hf_check_eq "every event has its offset" 0 "$(hf_psql -c "SELECT count(*) FROM holdfast.event_log WHERE kafka_offset IS NULL")"

# Leadership lost and taken back: chains grew elsewhere meanwhile. rb knows
# every channel; frozen past its lease, re takes over and extends those
# chains; rb wakes, finds the lease gone and forgets; when re leaves, rb
# leads again and must not stamp prev_offset from what it knew before.
hf_relay_start re
hf_check "re stands by" hf_wait_until 10 "re to see rb" grep -q 'standing by: rb leads' "$HF_RUN/re.log"
kill -STOP "$(hf_pid rb)"
hf_check "re takes over from the frozen rb" hf_wait_until 20 "re to lead" hf_relay_leads re
hf_publish_numbered ops 50 500
hf_check "re relays everything" hf_wait_until 30 "every event relayed" hf_all_relayed
kill -CONT "$(hf_pid rb)"
hf_check "rb finds its lease gone" hf_wait_until 10 "rb to stand by" grep -q 'lease lost' "$HF_RUN/rb.log"
hf_stop re
hf_check "rb leads again" hf_wait_until 20 "rb to lead" hf_relay_leads rb
hf_publish_numbered ops 50 500
hf_check "rb relays everything" hf_wait_until 30 "every event relayed" hf_all_relayed
hf_stop rb
sleep 0.3
hf_stop tap
hf_check "Kafka exactly once and ordered; every Redis prev_offset is the channel's previous offset" \
    hf_relay_verify --expect $((HF_NEXT_SEQ - 1)) --tap "$HF_RUN/redis.jsonl" --tap-complete

# The stream wakes an idle relay: with lease rounds every 10 s, an event
# committed while the relay sleeps still leaves at once.
hf_relay_start rn --lease-renew 10s --lease-ttl 30s
hf_check "rn leads" hf_wait_until 30 "rn to lead" hf_relay_leads rn
sleep 1 # past the start's resyncs
t0=$(date +%s%N)
hf_publish_numbered ops 5 1
hf_check "the stream wakes an idle relay (next lease round in ~9 s)" \
    hf_wait_until 5 "the event to be relayed" hf_all_relayed
hf_log "one event relayed $((($(date +%s%N) - t0) / 1000000)) ms after its commit (measured by polling psql)"
hf_stop rn

# A topic with fewer partitions than holdfast.meta: refused, not ready.
epoch_before=$(hf_psql -c "SELECT epoch FROM holdfast.meta")
hf_stop kafka
rm -f "$HF_RUN/kafka.log"
hf_kafka_start 4 holdfast.events
# Its brokers answer 1 s late, so the relay's check of the topic takes
# that long: it must not be ready meanwhile (PostgreSQL connected is not
# enough), nor between its reconnects after the refusal.
for b in 1 2 3; do hf_kafka_control rtt "$b" 1000; done
hf_relay_start rc
refused() { grep -q 'has 4 partitions but holdfast.meta says 8' "$HF_RUN/rc.log"; }
ready_seen=0
for ((i = 0; i < 300; i++)); do # 30 s at most
    hf_http_ok "http://127.0.0.1:$PORT_rc/readyz" && ready_seen=1
    refused && break
    sleep 0.1
done
hf_check "the relay with a 4-partition topic says why it does not relay" refused
for ((i = 0; i < 10; i++)); do
    hf_http_ok "http://127.0.0.1:$PORT_rc/readyz" && ready_seen=1
    sleep 0.2
done
hf_check_eq "... and was never ready" 0 "$ready_seen"
for b in 1 2 3; do hf_kafka_control rtt "$b" 0; done
hf_stop rc

# The broker restarted empty: the log is reset; a new epoch, chains restart.
hf_stop kafka
rm -f "$HF_RUN/kafka.log"
hf_kafka_start 8 holdfast.events
hf_relay_start rd
hf_publish_numbered ops 2 20
hf_check "events after the reset are relayed" hf_wait_until 30 "every event relayed" hf_all_relayed
epoch_after=$(hf_psql -c "SELECT epoch FROM holdfast.meta")
hf_check "a reset log starts a new epoch" test "$epoch_before" != "$epoch_after"
hf_check "the relay says why" grep -q 'reset' "$HF_RUN/rd.log"
hf_check_eq "new events carry the new epoch" 20 \
    "$(hf_psql -c "SELECT count(*) FROM holdfast.event_log WHERE epoch = '$epoch_after'")"
hf_check_eq "offsets of the new log start again at 0" 0 \
    "$(hf_psql -c "SELECT min(kafka_offset) FROM holdfast.event_log WHERE epoch = '$epoch_after'")"

hf_checks_done
