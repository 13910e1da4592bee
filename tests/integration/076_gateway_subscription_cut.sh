#!/usr/bin/env bash
# Redis closes the gateways' subscriber connections under a running stream
# (CLIENT KILL TYPE pubsub: what Redis does when a subscriber overruns its
# pub/sub output-buffer limit). Each gateway sees the server close its
# connection, reads what it missed from Kafka, resubscribes and hands
# back; its clients get every event, in order, once. Done twice, 2 s
# apart. (The output-buffer limit itself needs more data than the
# kernel's socket buffers hold; the chaos suite drives that one.)
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pipeline_start
hf_ingest_start
hf_relay_start ra
hf_gateway_start ga
hf_gateway_start gb
channels=$(for ((c = 0; c < 10; c++)); do printf 'gw:0:%d,' "$c"; done)
hf_ws_clients_start --urls "$WS_ga,$WS_gb" --clients 20 --channels "${channels%,}" --per-client 2 \
    --deadline 120
python3 "$HF_SUPPORT/publish_ingest.py" --url "$HF_INGEST_URL" --worker 0 --prefix gw --count 3000 \
    --channels 10 --batch 5 --pause 0.1 --pause-every 50 >"$HF_RUN/publish.out" 2>&1 &
publisher=$!
for round in 1 2; do
    sleep 2
    hf_check "Redis closes the subscriber connections (round $round)" \
        bash -c "[[ \$(redis-cli -u $HF_REDIS_URL CLIENT KILL TYPE pubsub) -ge 2 ]]"
done
rc=0
wait "$publisher" || rc=$?
hf_check_eq "the publisher had all its events accepted" 0 "$rc"
hf_check "every event is relayed" hf_wait_until 60 "every event relayed" hf_all_relayed
hf_check_eq "ga fell back twice" 2 "$(hf_metric "$PORT_ga" holdfast_gateway_redis_fallbacks_total)"
hf_check_eq "gb fell back twice" 2 "$(hf_metric "$PORT_gb" holdfast_gateway_redis_fallbacks_total)"
hf_check "both are back on Redis" hf_wait_until 15 "redis_connected 1" \
    bash -c "[[ \$(curl -fsS http://127.0.0.1:$PORT_ga/metrics | sed -n 's/^holdfast_gateway_redis_connected //p') == 1 &&
               \$(curl -fsS http://127.0.0.1:$PORT_gb/metrics | sed -n 's/^holdfast_gateway_redis_connected //p') == 1 ]]"
hf_ws_clients_finish
hf_check "every client got exactly its channels' events" hf_ws_verify --min-events 12000
hf_checks_done
