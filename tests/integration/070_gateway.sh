#!/usr/bin/env bash
# The gateway's delivery contract (invariants 6-7) through the whole
# stack: ingest -> PostgreSQL -> relay -> Kafka + Redis -> two gateways.
# 60 clients (Python websockets, every fourth speaking msgpack) spread
# over both gateways (ga with two workers, gb with one), 3 of 40 channels
# each, while 4 publishers send
# 4,000 numbered events through ingest. Every client must receive exactly
# the events of its channels published after it subscribed, in publish
# order, none missing, none twice, each prev_offset the offset before it.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

WORKERS=4 PER_WORKER=1000 CHANNELS_PER_WORKER=10
hf_pipeline_start
hf_ingest_start
hf_relay_start ra
hf_gateway_start ga --workers 2
hf_gateway_start gb

channels=$(hf_worker_channels gw "$WORKERS" "$CHANNELS_PER_WORKER")
hf_ws_clients_start --urls "$WS_ga,$WS_gb" --clients 60 --channels "$channels" \
    --per-client 3 --msgpack-every 4 --deadline 150

# ga's 30 clients are spread over its workers: round robin, so 15 each
# (give or take one retried handshake on a slow machine).
hf_check_eq "ga runs two workers" 2 "$(hf_metric "$PORT_ga" holdfast_gateway_workers)"
w0=$(hf_metric "$PORT_ga" 'holdfast_gateway_worker_connections{worker="0"}')
w1=$(hf_metric "$PORT_ga" 'holdfast_gateway_worker_connections{worker="1"}')
hf_check "ga's workers hold 15 clients each ($w0 and $w1)" test $((w0 - w1)) -ge -2 -a $((w0 - w1)) -le 2
hf_check "... and all of ga's clients" test $((w0 + w1)) -eq "$(hf_metric "$PORT_ga" holdfast_gateway_connections)"

hf_publishers_start "$WORKERS" "$PER_WORKER" "$CHANNELS_PER_WORKER" --prefix gw --batch 1,1,10,10
hf_publishers_wait "$WORKERS"
hf_check "every event is relayed" hf_wait_until 60 "every event relayed" hf_all_relayed
hf_ws_clients_finish
hf_check "every client got exactly its channels' events, in order, chained" \
    hf_ws_verify --min-events 12000
hf_check "deliveries came from Redis" test "$(hf_metric "$PORT_ga" 'holdfast_gateway_deliveries_total{source="redis"}')" -gt 0
hf_checks_done
