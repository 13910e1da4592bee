#!/usr/bin/env bash
# Kafka unavailable (invariants 2, 4 and 5, docs/design.md): with every
# broker of the dev cluster down, the relay records nothing and dead-letters
# nothing (an outage is not a bad event); ingest keeps accepting and the
# stream-lag gauge shows the wait. With one broker down, only the partitions
# it leads stall. When the brokers come back everything flows by itself:
# every event in Kafka exactly once, in publish order per channel, offsets
# recorded, the Redis chain intact.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pipeline_start
hf_ingest_start
hf_tap_start "$HF_RUN/redis.jsonl"
hf_relay_start r1


hf_publish_numbered kd 16 200
hf_check "Kafka up: every event is relayed" hf_wait_until 30 "every event relayed" hf_all_relayed

hf_check "all brokers down" hf_kafka_control down
for round in 1 2 3 4 5; do
    hf_publish_numbered kd 16 199
    status=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$HF_INGEST_URL/v1/events" \
        -H 'Content-Type: application/json' -d "{\"channel\":\"kd:16\",\"data\":{\"seq\":$HF_NEXT_SEQ}}")
    HF_NEXT_SEQ=$((HF_NEXT_SEQ + 1))
    hf_check_eq "Kafka down: ingest accepts (round $round)" 201 "$status"
    sleep 0.5
done
sleep 2 # several produce timeouts (1 s each)
hf_check_eq "Kafka down: nothing is recorded" 1000 "$(hf_unrelayed)"
hf_check "Kafka down: produce errors are counted" test "$(hf_metric "$PORT_r1" holdfast_relay_produce_errors_total)" -gt 0
hf_check "Kafka down: the stream-lag gauge grows" \
    awk -v v="$(hf_metric "$PORT_r1" holdfast_relay_stream_lag_seconds)" 'BEGIN { exit !(v >= 2) }'
hf_check_eq "Kafka down: nothing dead-lettered" 0 "$(hf_psql -c "SELECT count(*) FROM holdfast.dead_letters")"
hf_check "Kafka down: the relay is alive" hf_http_ok "http://127.0.0.1:$PORT_r1/livez"

hf_check "all brokers up" hf_kafka_control up
hf_check "Kafka back: everything is relayed by itself" hf_wait_until 60 "every event relayed" hf_all_relayed

# One broker down (the leader of kd:0's partition): the partitions it leads
# wait, the others keep flowing (each partition backs off alone).
p0=$(hf_psql -c "SELECT holdfast.partition_for('kd:0')")
kcat -L -b "$HF_KAFKA_BROKERS" -t holdfast.events >"$HF_RUN/metadata" 2>&1 || true
leader=$(sed -n "s/^ *partition $p0, leader \([0-9]*\),.*/\1/p" "$HF_RUN/metadata")
led=$(sed -n "s/^ *partition \([0-9]*\), leader $leader,.*/\1/p" "$HF_RUN/metadata" | paste -sd,)
hf_log "broker $leader leads partitions [$led]"
hf_check "broker $leader down" hf_kafka_control down "$leader"
hf_publish_numbered kd 16 400
waiting_partitions() {
    hf_psql -c "SELECT coalesce(string_agg(DISTINCT partition::text, ',' ORDER BY partition::text), '')
        FROM holdfast.events e
        WHERE NOT EXISTS (SELECT 1 FROM holdfast.event_offsets o WHERE o.event_id = e.id) ${1:-}"
}
expected=$(waiting_partitions "AND partition = ANY ('{$led}'::int[])")
only_leader_waits() { [[ $(waiting_partitions) == "$expected" ]]; }
hf_check "one broker down: exactly the partitions it leads wait, the others drain" \
    hf_wait_until 30 "only partitions [$expected] waiting" only_leader_waits
hf_log "broker $leader down: $(hf_unrelayed) of 400 events wait, in partitions [$(waiting_partitions)]"
hf_check "... kd:0's partition among them" grep -qw "$p0" <<<"$expected"
hf_check "broker $leader up" hf_kafka_control up "$leader"
hf_check "broker $leader back: everything is relayed" hf_wait_until 60 "every event relayed" hf_all_relayed

sleep 0.5
hf_stop tap
hf_check "exactly once, in order, offsets recorded, Redis chain intact" \
    hf_relay_verify --expect $((HF_NEXT_SEQ - 1)) --tap "$HF_RUN/redis.jsonl" --tap-min 200
hf_check_eq "nothing dead-lettered in the end" 0 "$(hf_psql -c "SELECT count(*) FROM holdfast.dead_letters")"
hf_checks_done
