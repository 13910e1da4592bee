#!/usr/bin/env bash
# Gateways come and go (invariants 7 and 11): three gateways, clients on
# all of them, a stream of events running. Gateway ga is SIGKILLed: its
# clients reconnect to another gateway with `since` and miss nothing.
# Then gb gets SIGTERM: it closes every client with 1012, exits 0 within
# its drain timeout, and its clients resume on gc, missing nothing. gb
# and gc run two workers each: the drain must cover every worker.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

WORKERS=3 PER_WORKER=1000 CHANNELS_PER_WORKER=10
hf_pipeline_start
hf_ingest_start
hf_relay_start ra
hf_gateway_start ga
hf_gateway_start gb --drain-timeout 5s --workers 2
hf_gateway_start gc --workers 2

channels=$(hf_worker_channels gw "$WORKERS" "$CHANNELS_PER_WORKER")
hf_ws_clients_start --urls "$WS_ga,$WS_gb,$WS_gc" --clients 45 --channels "$channels" \
    --per-client 2 --msgpack-every 3 --deadline 200

hf_publishers_start "$WORKERS" "$PER_WORKER" "$CHANNELS_PER_WORKER" --prefix gw --pause 0.25 --pause-every 25
sleep 2
hf_check_eq "ga holds a third of the clients" 15 "$(hf_metric "$PORT_ga" holdfast_gateway_connections)"
hf_log "SIGKILL gateway ga"
kill -KILL "$(hf_pid ga)"
hf_wait_exit ga
hf_check "ga's clients reconnect elsewhere" hf_wait_until 15 "45 clients on gb+gc" \
    bash -c "(( \$(curl -fsS http://127.0.0.1:$PORT_gb/metrics | sed -n 's/^holdfast_gateway_connections //p') +
               \$(curl -fsS http://127.0.0.1:$PORT_gc/metrics | sed -n 's/^holdfast_gateway_connections //p') == 45 ))"
sleep 2
hf_log "SIGTERM gateway gb (drain)"
t0=$SECONDS
kill -TERM "$(hf_pid gb)"
hf_wait_exit gb
hf_check_eq "gb exits 0 after draining" 0 "$HF_EXIT_STATUS"
hf_check "... within its drain timeout" test $((SECONDS - t0)) -le 6
hf_check_eq "both of gb's workers drained" 2 "$(grep -c "draining: closing" "$HF_RUN/gb.log")"
hf_check "every client ends up on gc" hf_wait_until 15 "45 clients on gc" \
    bash -c "[[ \$(curl -fsS http://127.0.0.1:$PORT_gc/metrics | sed -n 's/^holdfast_gateway_connections //p') == 45 ]]"

hf_publishers_wait "$WORKERS"
hf_check "every event is relayed" hf_wait_until 60 "every event relayed" hf_all_relayed
hf_ws_clients_finish
hf_check "every client got exactly its channels' events across two moves (closes 1006 and 1012)" \
    hf_ws_verify --min-events 5000 --expect-closes 1006,1012
hf_checks_done
