#!/usr/bin/env bash
# The gateway's delivery contract (invariants 6-7) through the whole
# stack: ingest -> PostgreSQL -> relay -> Kafka + Redis -> two gateways.
# 60 clients (Python websockets, every fourth speaking msgpack) spread
# over both gateways, 3 of 40 channels each, while 4 publishers send
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
hf_gateway_start ga
hf_gateway_start gb

channels=$(for ((w = 0; w < WORKERS; w++)); do for ((c = 0; c < CHANNELS_PER_WORKER; c++)); do
    printf 'gw:%d:%d,' "$w" "$c"; done; done)
hf_ws_clients_start --urls "$WS_ga,$WS_gb" --clients 60 --channels "${channels%,}" \
    --per-client 3 --msgpack-every 4 --deadline 150

for ((w = 0; w < WORKERS; w++)); do
    python3 "$HF_SUPPORT/publish_ingest.py" --url "$HF_INGEST_URL" --worker "$w" --prefix gw \
        --count "$PER_WORKER" --channels "$CHANNELS_PER_WORKER" --batch $((w < 2 ? 1 : 10)) \
        >"$HF_RUN/publish.$w.out" 2>&1 &
    echo $! >"$HF_RUN/publish.$w.pid"
done
for ((w = 0; w < WORKERS; w++)); do
    rc=0
    wait "$(cat "$HF_RUN/publish.$w.pid")" || rc=$?
    hf_check_eq "publisher $w had all its events accepted" 0 "$rc"
done
hf_check "the outbox drains" hf_wait_until 60 "the outbox to drain" hf_outbox_empty
hf_ws_clients_finish
hf_check "every client got exactly its channels' events, in order, chained" \
    hf_ws_verify --min-events 12000
hf_check "deliveries came from Redis" test "$(hf_metric "$PORT_ga" 'holdfast_gateway_deliveries_total{source="redis"}')" -gt 0
hf_checks_done
