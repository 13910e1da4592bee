#!/usr/bin/env bash
# Redis outages under a running stream (invariant 6, docs/design.md):
# clients on two gateways keep receiving every event, in order, once, while Redis is
#   1. SIGKILLed and restarted 3 s later on the same port,
#   2. SIGSTOPped for 3 s (its sockets stay open: only the gateways'
#      heartbeat notices, first suspecting it, then dropping it), then
#      continued,
#   3. SIGKILLed for longer than the rest of the run: the whole tail of the
#      stream flows from Kafka; then restarted, and the gateways hand back
#      to Redis (Kafka scans stop, new events come from Redis).
# ga runs two workers, each with its own Redis subscriber and Kafka reader.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

WORKERS=4 PER_WORKER=1200 CHANNELS_PER_WORKER=10
hf_pipeline_start
hf_ingest_start
hf_relay_start ra
hf_gateway_start ga --workers 2
hf_gateway_start gb

channels=$(hf_worker_channels gw "$WORKERS" "$CHANNELS_PER_WORKER")
hf_ws_clients_start --urls "$WS_ga,$WS_gb" --clients 40 --channels "$channels" \
    --per-client 2 --msgpack-every 5 --deadline 200

# ~15 s of publishing: a 0.25 s pause every 20 events per worker.
hf_publishers_start "$WORKERS" "$PER_WORKER" "$CHANNELS_PER_WORKER" --prefix gw --pause 0.25 --pause-every 20
metric() { hf_metric "$1" "$2"; }
redis_kafka_sum() { echo $(($(metric "$PORT_ga" "$1") + $(metric "$PORT_gb" "$1"))); }

sleep 2
hf_log "1. SIGKILL Redis, restart after 3 s"
kill -KILL "$(hf_pid redis)"
hf_wait_exit redis
sleep 3
hf_redis_start "$HF_REDIS_PORT"
hf_check "both gateways fell back" hf_wait_until 10 "fallbacks counted" \
    bash -c "[[ \$(curl -fsS http://127.0.0.1:$PORT_ga/metrics | sed -n 's/^holdfast_gateway_redis_fallbacks_total //p') -ge 1 &&
               \$(curl -fsS http://127.0.0.1:$PORT_gb/metrics | sed -n 's/^holdfast_gateway_redis_fallbacks_total //p') -ge 1 ]]"
hf_check "... and reconnected" hf_wait_until 10 "redis_connected 1" \
    bash -c "[[ \$(curl -fsS http://127.0.0.1:$PORT_ga/metrics | sed -n 's/^holdfast_gateway_redis_connected //p') == 1 ]]"

sleep 1
hf_log "2. SIGSTOP Redis for 3 s"
before=$(metric "$PORT_ga" holdfast_gateway_redis_fallbacks_total)
kill -STOP "$(hf_pid redis)"
sleep 3
hf_check "a frozen Redis is noticed by the heartbeat" \
    test "$(metric "$PORT_ga" holdfast_gateway_redis_fallbacks_total)" -gt "$before"
hf_check "... suspected (Kafka read as well) before the connection was dropped" \
    test "$(metric "$PORT_ga" holdfast_gateway_redis_suspicions_total)" -ge 1
kill -CONT "$(hf_pid redis)"

sleep 2
hf_log "3. SIGKILL Redis for the rest of the publishing"
kill -KILL "$(hf_pid redis)"
hf_wait_exit redis
kafka_before=$(redis_kafka_sum 'holdfast_gateway_deliveries_total{source="kafka"}')
hf_publishers_wait "$WORKERS"
hf_check "every event is relayed" hf_wait_until 60 "every event relayed" hf_all_relayed
kafka_after=$(redis_kafka_sum 'holdfast_gateway_deliveries_total{source="kafka"}')
hf_log "deliveries from Kafka while Redis was down: $((kafka_after - kafka_before))"
hf_check "with Redis down the stream flowed from Kafka" test "$((kafka_after - kafka_before))" -gt 500

hf_log "Redis back: the gateways hand back"
hf_redis_start "$HF_REDIS_PORT"
scans_done() { [[ $(metric "$PORT_ga" holdfast_gateway_kafka_scanning_partitions) == 0 &&
    $(metric "$PORT_gb" holdfast_gateway_kafka_scanning_partitions) == 0 ]]; }
hf_check "Kafka scans stop once Redis carries the channels again" hf_wait_until 20 "scans to stop" scans_done
redis_before=$(redis_kafka_sum 'holdfast_gateway_deliveries_total{source="redis"}')
HF_NEXT_SEQ=100000
for ((w = 0; w < WORKERS; w++)); do hf_publish_numbered "gw:$w" "$CHANNELS_PER_WORKER" 40; done
hf_check "every event is relayed" hf_wait_until 60 "every event relayed" hf_all_relayed
hf_ws_clients_finish
redis_after=$(redis_kafka_sum 'holdfast_gateway_deliveries_total{source="redis"}')
hf_check "after the hand-back events come from Redis" test "$((redis_after - redis_before))" -gt 0
hf_check "every client got exactly its channels' events, in order, chained" \
    hf_ws_verify --min-events 9000
hf_checks_done
