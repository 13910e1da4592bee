#!/usr/bin/env bash
# Hostile clients (invariant 9, docs/design.md) while well-behaved ones run:
# slowloris headers and bodies, connection floods, malformed HTTP,
# oversized, fragmented, unmasked and invalid-UTF-8 WebSocket frames,
# subscribe and ping floods, bad channel names (tests/support/hostile.py).
# Throughout, 20 clients on two gateways must get every event of their
# channels, in order, exactly once, from 2 publishers through ingest; every
# process keeps running; every refusal is a 4xx or a close code with its
# reason.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pipeline_start
secret=$HF_RUN/auth.secret
head -c 48 /dev/urandom | base64 -w0 >"$secret"
export HOLDFAST_AUTH_KEY_FILE=$secret
HOLDFAST_PUBLISH_TOKEN=$("$HF_BIN/holdfast-token" --key-file "$secret" --sub good-publisher --publish '*')
HOLDFAST_SUBSCRIBE_TOKEN=$("$HF_BIN/holdfast-token" --key-file "$secret" --sub good-reader --subscribe '*')
export HOLDFAST_PUBLISH_TOKEN HOLDFAST_SUBSCRIBE_TOKEN
hostile_token=$("$HF_BIN/holdfast-token" --key-file "$secret" --sub hostile --subscribe '*')

HF_AUTH=true
hf_ingest_start "" --body-timeout 3s
hf_relay_start ra
hf_gateway_start ga
hf_gateway_start gb

WORKERS=2 PER_WORKER=600 CHANNELS_PER_WORKER=5
channels=$(hf_worker_channels good "$WORKERS" "$CHANNELS_PER_WORKER")
hf_ws_clients_start --urls "$WS_ga,$WS_gb" --clients 20 --channels "$channels" --per-client 3 \
    --deadline 200
hf_publishers_start "$WORKERS" "$PER_WORKER" "$CHANNELS_PER_WORKER" --prefix good --batch 1,5 \
    --pause 0.05 --pause-every 1

hf_check "hostile.py: every attack refused cleanly" \
    /usr/bin/python3 "$HF_SUPPORT/hostile.py" --ingest "$HF_INGEST_URL" --gateway "$WS_ga" \
    --token "$hostile_token"

hf_publishers_wait "$WORKERS"
hf_check "every event is relayed" hf_wait_until 60 "every event relayed" hf_all_relayed
hf_ws_clients_finish
hf_check "the well-behaved clients got every event, in order, once" \
    hf_ws_verify --min-events 2000
for part in ingest ra ga gb; do
    hf_check "$part is still running" hf_alive "$part"
done
hf_check "ingest still ready" hf_http_ok "$HF_INGEST_URL/readyz"
hf_check "ga still ready" hf_http_ok "http://127.0.0.1:$PORT_ga/readyz"
hf_check "ga counted the message-rate closes" \
    test "$(hf_metric "$PORT_ga" 'holdfast_gateway_limited_total{limit="message_rate"}')" -ge 2
hf_checks_done
