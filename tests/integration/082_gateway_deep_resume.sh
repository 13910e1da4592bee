#!/usr/bin/env bash
# A client resuming from far back (3,000 events of one channel behind,
# --kafka-deep-after 500 here) while live subscribers of three other
# channels of the same partition keep receiving:
#   1. with Redis up: the live subscribers get their events from Redis,
#      and the deep resume is read by the worker's deep reader alone (the
#      live reader reads nothing);
#   2. with Redis down, the live subscribers tailing the partition through
#      the live reader: the deep resume never rewinds it, so it reads only
#      what was published meanwhile, never the 3,000 records behind.
# Each time the resuming client gets exactly its 3,000 events, in order,
# chained, and every live client every event of its channel, in order,
# once. Counts, not timings: the records each reader read
# (holdfast_gateway_kafka_records_total{reader}).
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

BACKLOG=3000 DEEP_AFTER=500
hf_pipeline_start
hf_relay_start ra
hf_gateway_start ga --kafka-deep-after "$DEEP_AFTER"

hf_publish_numbered deep 1 "$BACKLOG"
hf_check "the backlog is relayed" hf_wait_until 60 "every event relayed" hf_all_relayed
part=$(hf_psql -c "SELECT holdfast.partition_for('deep:0')")
live=$(hf_psql -c "SELECT string_agg(c, ',') FROM (SELECT 'live:' || g AS c FROM generate_series(0, 999) g
    WHERE holdfast.partition_for('live:' || g) = $part ORDER BY g LIMIT 3) x")
hf_log "partition $part: deep:0 and $live"
epoch=$(hf_psql -c "SELECT epoch FROM holdfast.meta")
since=$(hf_psql -c "SELECT min(kafka_offset) - 1 FROM holdfast.event_log WHERE channel = 'deep:0'")
expect=$(hf_psql -c "SELECT string_agg(kafka_offset::text, ',' ORDER BY kafka_offset)
    FROM holdfast.event_log WHERE channel = 'deep:0'")

hf_ws_clients_start --urls "$WS_ga" --clients 6 --channels "$live" --deadline 120
records() { hf_metric "$PORT_ga" "holdfast_gateway_kafka_records_total{reader=\"$1\"}"; }
# live_publish N: N numbered events over the live channels, in batches of 10.
live_publish() {
    local i
    for ((i = 0; i < $1 / 10; i++)); do
        hf_psql -c "SELECT count(*) FROM holdfast._append(
            array(SELECT (string_to_array('$live', ','))[1 + g % 3]
                  FROM generate_series($HF_NEXT_SEQ, $HF_NEXT_SEQ + 9) g),
            array_fill(NULL::text, ARRAY[10]),
            array(SELECT convert_to('{\"seq\":' || g || '}', 'UTF8')
                  FROM generate_series($HF_NEXT_SEQ, $HF_NEXT_SEQ + 9) g),
            NULL, NULL)" >/dev/null
        HF_NEXT_SEQ=$((HF_NEXT_SEQ + 10))
        sleep 0.05
    done
}
# deep_resume NAME: the far-back resume, checked, while live events flow.
deep_resume() {
    /usr/bin/python3 "$HF_SUPPORT/ws_resume_check.py" --url "$WS_ga" --channel deep:0 \
        --since "$since" --epoch "$epoch" --expect "$expect" >"$HF_RUN/$1.out" 2>&1 &
    local pid=$!
    live_publish 150
    local rc=0
    wait "$pid" || rc=$?
    cat "$HF_RUN/$1.out" >&2
    hf_check_eq "$1: the resuming client got its $BACKLOG events, in order, chained" 0 "$rc"
}

hf_log "1. a deep resume with Redis up"
deep_resume redis-up
hf_check_eq "the live reader read nothing" 0 "$(records live)"
hf_check "the deep reader read the backlog" test "$(records deep)" -ge "$BACKLOG"

hf_log "2. a deep resume while the live subscribers tail Kafka (Redis down)"
kill -KILL "$(hf_pid redis)"
hf_wait_exit redis
hf_check "the gateway falls back" hf_wait_until 20 "a fallback" \
    bash -c "[[ \$(curl -fsS http://127.0.0.1:$PORT_ga/metrics | sed -n 's/^holdfast_gateway_redis_fallbacks_total //p') == 1 ]]"
live_before=$(records live) deep_before=$(records deep)
deep_resume redis-down
live_read=$(($(records live) - live_before))
hf_log "records read meanwhile: live $live_read, deep $(($(records deep) - deep_before))"
hf_check "the live reader was never rewound into the backlog (read $live_read)" \
    test "$live_read" -lt $((DEEP_AFTER + 150))
hf_check "the deep reader read the backlog again" \
    test "$(($(records deep) - deep_before))" -ge "$BACKLOG"

hf_check "every event is relayed" hf_wait_until 60 "every event relayed" hf_all_relayed
hf_ws_clients_finish
hf_check "every live client got exactly its channel's events, in order, once" \
    hf_ws_verify --min-events $((6 * 300 / 3))
hf_checks_done
