#!/usr/bin/env bash
# The demo page (clients/js/demo) in Debian's Chromium, driven by
# playwright-core: it connects through @holdfast/client, reads history
# from ingest across origins (CORS), publishes and sees its event; the
# gateway it is on is SIGKILLed while ten more are published; it resumes on
# the other, recovered, missing nothing (checked against PostgreSQL with
# ws_verify.py). The page from an origin ingest does not allow cannot read
# history. Saves a screenshot ($SDK_SCREENSHOT, when set, gets a copy:
# docs/img/demo.png is made that way).
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

SDK=$HF_ROOT/clients/js
CHROMIUM=${HOLDFAST_CHROMIUM:-/usr/bin/chromium}
[[ -x $CHROMIUM ]] || hf_die "$CHROMIUM is missing: run 'make deps-test' (Debian's chromium package)"
[[ -d $SDK/node_modules/playwright-core ]] ||
    hf_die "clients/js/node_modules is missing: run 'make deps-test' (HOLDFAST_TEST=1 tools/install-deps.sh)"

secret=$HF_RUN/auth.secret
(umask 077 && head -c 48 /dev/urandom | base64 -w0 >"$secret")
export HOLDFAST_AUTH_KEY_FILE=$secret
HF_AUTH=true
DEMO_PORT=$(hf_free_port)
DEMO_ORIGIN=http://127.0.0.1:$DEMO_PORT
hf_pipeline_start
hf_ingest_start "" --cors-origins "$DEMO_ORIGIN"
hf_relay_start ra
hf_gateway_start ga --gateway-id ga
hf_gateway_start gb --gateway-id gb
# Subscribe tokens of 6 s, so that the page renews one in-band while it runs.
hf_spawn demo node "$SDK/demo/server.mjs" --port "$DEMO_PORT" --gateways "$WS_ga,$WS_gb" \
    --ingest "$HF_INGEST_URL" --key-file "$secret" --token-ttl 6 --ready-file "$HF_RUN/demo.ready"
hf_wait_until 20 "the demo server" test -s "$HF_RUN/demo.ready" ||
    hf_die "the demo server did not start (see $HF_RUN/demo.log)"

export HF_RUN SDK_DEMO_URL="$DEMO_ORIGIN/" SDK_CHROMIUM=$CHROMIUM
rc=0
(cd "$SDK" && timeout 120 node --test --test-reporter=spec test/browser/demo.test.js) \
    >"$HF_RUN/sdk_browser.log" 2>&1 || rc=$?
grep -E '^\s*(✔|✖|ℹ)' "$HF_RUN/sdk_browser.log" >&2 || true
((rc == 0)) || tail -n 60 "$HF_RUN/sdk_browser.log" >&2
hf_check_eq "the browser test passes" 0 "$rc"
if [[ -s $HF_RUN/ws.json ]]; then
    # The relay may still be writing offsets back to PostgreSQL: a real
    # loss or duplicate never clears, a lag does.
    hf_wait_until 60 "PostgreSQL to agree with the page" \
        hf_ws_verify --min-events 12 --expect-closes 1006 || true
    hf_check "the page got exactly the channel's events, in order, chained, across the kill" \
        hf_ws_verify --min-events 12 --expect-closes 1006
else
    hf_check "the browser test wrote what the page received" false
fi
hf_checks_done
