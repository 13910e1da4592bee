#!/usr/bin/env bash
# The JavaScript client (clients/js, @holdfast/client) on Node's test
# runner: its unit tests against a scripted gateway, its declarations
# type-checked, then clients/js/test/stack/faults.test.js against the real
# services started here (auth on, tokens of 4 s renewed in-band): a gateway
# SIGKILLed and another drained mid-stream, Redis SIGKILLed and restarted,
# connections reset and stalled through holdfast-faultproxy, a stale epoch,
# history(). Then what the SDK delivered to each client is checked against
# PostgreSQL with ws_verify.py: nothing missing, nothing twice, in order,
# chained. Resume times per fault are printed (and kept in sdk_measure.json).
# Measuring: SDK_PER_GROUP=20 SDK_DRAIN_SPREAD=5s ctest -R 078 -V
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

SDK=$HF_ROOT/clients/js
[[ -d $SDK/node_modules/ws ]] ||
    hf_die "clients/js/node_modules is missing: run 'make deps-test' (HOLDFAST_TEST=1 tools/install-deps.sh)"

hf_log "unit tests and declarations"
(cd "$SDK" && timeout 120 node --test test/*.test.js && timeout 120 node_modules/.bin/tsc -p test/types) \
    >"$HF_RUN/sdk_unit.log" 2>&1 || {
    tail -n 60 "$HF_RUN/sdk_unit.log" >&2
    hf_check "the SDK's unit tests and types" false
}

secret=$HF_RUN/auth.secret
(umask 077 && head -c 48 /dev/urandom | base64 -w0 >"$secret")
export HOLDFAST_AUTH_KEY_FILE=$secret
HF_AUTH=true
hf_pipeline_start
hf_ingest_start
hf_relay_start ra
gw_flags=(--auth-leeway 0)
hf_gateway_start ga "${gw_flags[@]}" --gateway-id ga
# SDK_DRAIN_SPREAD: the default (5s) when measuring; 1s keeps the test short.
hf_gateway_start gb "${gw_flags[@]}" --gateway-id gb --drain-reconnect-spread "${SDK_DRAIN_SPREAD:-1s}" \
    --drain-timeout 10s
hf_gateway_start gc "${gw_flags[@]}" --gateway-id gc
hf_gateway_start gd "${gw_flags[@]}" --gateway-id gd --ws-ping-interval 1s --ws-idle-timeout 4s
hf_spawn faultproxy "$HF_BIN/holdfast-faultproxy" --listen 127.0.0.1:0 \
    --target "127.0.0.1:$PORT_gd" --control-port 0 --ready-file "$HF_RUN/faultproxy.ready"
hf_wait_until 10 "the fault proxy" test -s "$HF_RUN/faultproxy.ready" ||
    hf_die "holdfast-faultproxy did not start (see $HF_RUN/faultproxy.log)"
FP_LISTEN=$(sed -n 's/^listen=//p' "$HF_RUN/faultproxy.ready")
FP_CONTROL=$(sed -n 's/^control=//p' "$HF_RUN/faultproxy.ready")

export HF_RUN HF_SUPPORT HF_REDIS_PORT
export SDK_INGEST_URL=$HF_INGEST_URL SDK_GW_A=$WS_ga SDK_GW_B=$WS_gb SDK_GW_C=$WS_gc \
    SDK_GW_C_PORT=$PORT_gc SDK_PROXY_URL="ws://$FP_LISTEN/v1/ws" SDK_PROXY_CONTROL=${FP_CONTROL##*:} \
    SDK_MEASURE=$HF_RUN/sdk_measure.json
hf_log "fault tests (Node $(node --version))"
rc=0
(cd "$SDK" && timeout 170 node --test --test-reporter=spec test/stack/faults.test.js) \
    >"$HF_RUN/sdk_stack.log" 2>&1 || rc=$?
grep -E '^\s*(✔|✖|ℹ (tests|pass|fail))' "$HF_RUN/sdk_stack.log" >&2 || true
if ((rc != 0)); then
    tail -n 80 "$HF_RUN/sdk_stack.log" >&2
fi
hf_check_eq "the fault tests pass" 0 "$rc"
if [[ -s $HF_RUN/sdk_measure.json ]]; then
    /usr/bin/python3 - "$HF_RUN/sdk_measure.json" >&2 <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
span = lambda s: f"{s['min']}/{s['median']}/{s['max']}"
print(f"{'fault':40} {'clients':>7}  {'resumed, ms after: the fault':>28}  {'the close':>10}  {'minus hint':>10}")
for name, f in m["faults"].items():
    print(f"{name:40} {f['clients']:>7}  {span(f['from_fault_ms']):>28}  {span(f['from_close_ms']):>10}"
          f"  {span(f['from_close_minus_hint_ms']):>10}")
print(f"(min/median/max) published {m['published']}, delivered {m['delivered']}, duplicates the SDK "
      f"dropped {m['duplicates_dropped_by_sdk']}, chain breaks {m['chain_breaks']}, token renewals "
      f"{m['token_renewals']}")
PY
fi

if [[ -s $HF_RUN/ws.json ]]; then
    # The clients caught up with every acknowledged event before they
    # wrote ws.json; what may still lag is the relay writing offsets back
    # to PostgreSQL, so the verdict is awaited (a real loss or duplicate
    # never clears), then printed.
    hf_wait_until 60 "PostgreSQL to agree with the clients" \
        hf_ws_verify --min-events 2000 --expect-closes 1006,1012 || true
    hf_check "every SDK client got exactly its channels' events, in order, chained, across every fault" \
        hf_ws_verify --min-events 2000 --expect-closes 1006,1012
else
    hf_check "the fault tests wrote their clients' streams" false
fi
hf_checks_done
