#!/usr/bin/env bash
# The local stack (make up / make down / make run): every part starts and
# is ready, stack.env names working endpoints, a publish lands in
# PostgreSQL, the relay moves it to Kafka (offset recorded, record
# readable with kcat), a killed part comes back with its data
# on the next `up` while running parts are left alone, `down` stops
# everything by PID, and `run` stops cleanly on Ctrl-C (SIGINT). Both
# gateways deliver a published event to a WebSocket client (the demo). The
# demo page is served, its tokens open a gateway connection, its publish
# goes through, and ingest answers CORS for its origin only.
set -euo pipefail
BUILD=${1:-build}
export HF_BIN=$(cd "$BUILD" && pwd)/bin
source "$(dirname "$0")/../support/lib.sh"
hf_init "$(mktemp -d /tmp/holdfast-test.XXXXXX)"
export HOLDFAST_RUN_DIR=$HF_RUN/stack
STACK="bash $HF_ROOT/tools/stack.sh"
cleanup() {
    $STACK down >/dev/null 2>&1 || true
    hf_stop_all
    rm -rf "$HF_RUN" "/var/tmp/holdfast-pg-$(printf '%s' "$HOLDFAST_RUN_DIR/postgres" | md5sum | cut -c1-12)"
}
trap cleanup EXIT

# A failed start says why here: the cleanup removes the logs.
$STACK up >"$HF_RUN/up.log" 2>&1 || {
    tail -n 40 "$HF_RUN/up.log" >&2
    exit 1
}
hf_check "stack.env written" test -s "$HOLDFAST_RUN_DIR/stack.env"
set -a
source "$HOLDFAST_RUN_DIR/stack.env"
set +a
for var in HOLDFAST_INGEST_URL HOLDFAST_RELAY_URL HOLDFAST_GATEWAY_URLS HOLDFAST_PG_URL HOLDFAST_REDIS_URL HOLDFAST_KAFKA_BROKERS HOLDFAST_TOPIC HOLDFAST_PUBLISH_TOKEN HOLDFAST_SUBSCRIBE_TOKEN HOLDFAST_AUTH_KEY_FILE; do
    hf_check "stack.env sets $var" test -n "${!var}"
done
for part in postgres redis kafka ingest relay gateway-1 gateway-2 demo; do
    hf_check "pid file for $part" test -s "$HOLDFAST_RUN_DIR/$part.pid"
done
hf_check "ingest ready" hf_http_ok "$HOLDFAST_INGEST_URL/readyz"
hf_check "redis answers" bash -c "redis-cli -u $HOLDFAST_REDIS_URL ping | grep -q PONG"
hf_check "kafka answers kcat" bash -c "timeout 10 kcat -b $HOLDFAST_KAFKA_BROKERS -L -t $HOLDFAST_TOPIC >/dev/null"
# The stack runs with auth on (invariant 10, docs/design.md): no token, no
# publish. (035 checks that on is the default.)
hf_check_eq "a publish without a token is refused 401" 401 "$(curl -sS -o /dev/null -w '%{http_code}' \
    -X POST "$HOLDFAST_INGEST_URL/v1/events" -H 'Content-Type: application/json' \
    -d '{"channel":"stack","data":{"n":0}}')"
hf_check "the secret file is private (mode 600)" test "$(stat -c %a "$HOLDFAST_AUTH_KEY_FILE")" = 600
id=$(curl -fsS -X POST "$HOLDFAST_INGEST_URL/v1/events" -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $HOLDFAST_PUBLISH_TOKEN" \
    -d '{"channel":"stack","data":{"n":1}}' | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
hf_check_eq "event visible with psql" 1 \
    "$(psql "$HOLDFAST_PG_URL" -XqtAc "SELECT count(*) FROM holdfast.events WHERE id = '$id'")"
relayed() { [[ $(psql "$HOLDFAST_PG_URL" -XqtAc "SELECT kafka_offset IS NOT NULL FROM holdfast.event_log WHERE id = '$id'") == t ]]; }
hf_check "relay moved it: its offset recorded" hf_wait_until 30 "the relay" relayed
hf_check "the record is in Kafka with its id header" bash -c \
    "timeout 20 kcat -C -b $HOLDFAST_KAFKA_BROKERS -t $HOLDFAST_TOPIC -o beginning -e -q -f '%h\n' | grep -q 'hf-id=$id'"
hf_check "relay ready" hf_http_ok "$HOLDFAST_RELAY_URL/readyz"
hf_check "the demo page is served" bash -c "curl -fsS '$HOLDFAST_DEMO_URL' | grep -q '<title>Holdfast live demo'"
hf_check "... with the SDK's modules" hf_http_ok "${HOLDFAST_DEMO_URL}sdk/index.js"
hf_check "... and the gateways in its config" bash -c \
    "curl -fsS '${HOLDFAST_DEMO_URL}config' | grep -q '${HOLDFAST_GATEWAY_URLS%% *}'"
demo_token=$(curl -fsS "${HOLDFAST_DEMO_URL}token" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
hf_check "its token opens a gateway connection and subscribes to the demo channel" /usr/bin/python3 -c "
import asyncio, json, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1] + '?token=' + sys.argv[2], subprotocols=['holdfast.v1.1.json']) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))['type'] == 'welcome'
        await ws.send(json.dumps({'type': 'subscribe', 'channel': 'demo'}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))['type'] == 'subscribed'
asyncio.run(main())" "${HOLDFAST_GATEWAY_URLS%% *}" "$demo_token"
hf_check_eq "its publish goes through ingest" 201 "$(curl -sS -o /dev/null -w '%{http_code}' -X POST \
    "${HOLDFAST_DEMO_URL}publish" -d '{"text":"from the stack test"}')"
demo_origin=${HOLDFAST_DEMO_URL%/}
hf_check "ingest answers CORS for the demo's origin" bash -c "curl -sS -o /dev/null -D - -X OPTIONS \
    -H 'Origin: $demo_origin' -H 'Access-Control-Request-Method: GET' \
    '$HOLDFAST_INGEST_URL/v1/channels/demo/events' | grep -qi '^access-control-allow-origin: $demo_origin'"
hf_check_eq "... and for no other" 403 "$(curl -sS -o /dev/null -w '%{http_code}' -X OPTIONS \
    -H 'Origin: http://127.0.0.1:1' -H 'Access-Control-Request-Method: GET' \
    "$HOLDFAST_INGEST_URL/v1/channels/demo/events")"
hf_check "a WebSocket client on each of the two gateways receives a published event" \
    /usr/bin/python3 "$HF_ROOT/tools/ws_demo.py" --channel stack-ws --urls "${HOLDFAST_GATEWAY_URLS// /,}" \
    --publish "$HOLDFAST_INGEST_URL/v1/events"

# Kill two parts; `up` brings back exactly those, with their data.
redis_pid=$(cat "$HOLDFAST_RUN_DIR/redis.pid")
kill -KILL "$(cat "$HOLDFAST_RUN_DIR/ingest.pid")"
kill -INT "$(cat "$HOLDFAST_RUN_DIR/postgres.pid")"
sleep 1
$STACK up >"$HF_RUN/up2.log" 2>&1
hf_check "up restarted PostgreSQL" grep -q 'starting PostgreSQL' "$HF_RUN/up2.log"
hf_check "up restarted ingest" grep -q 'starting holdfast-ingest' "$HF_RUN/up2.log"
hf_check "up left running Redis alone" test "$redis_pid" = "$(cat "$HOLDFAST_RUN_DIR/redis.pid")"
hf_check_eq "PostgreSQL came back with its data" 1 \
    "$(psql "$HOLDFAST_PG_URL" -XqtAc "SELECT count(*) FROM holdfast.events WHERE id = '$id'")"
hf_check "ingest on the same address" hf_http_ok "$HOLDFAST_INGEST_URL/readyz"

pids=$(cat "$HOLDFAST_RUN_DIR"/*.pid)
$STACK down >"$HF_RUN/down.log" 2>&1
for pid in $pids; do
    hf_check "pid $pid stopped by down" hf_pid_gone "$pid"
done
hf_check "stack.env removed" test ! -e "$HOLDFAST_RUN_DIR/stack.env"

# make run: foreground, prints the endpoints, stops everything on Ctrl-C.
# Job control on, and SIGINT back to its default: a background job of a
# script starts with SIGINT ignored (and so may this script, under a test
# runner), unlike a command in a terminal, where Ctrl-C reaches it.
set -m
env --default-signal=INT,QUIT $STACK run >"$HF_RUN/run.log" 2>&1 &
runner=$!
set +m
hf_wait_until 120 "make run to print its endpoints" grep -q 'Ctrl-C stops everything' "$HF_RUN/run.log"
hf_check "run printed the ingest endpoint" grep -q "ingest     http://127.0.0.1:" "$HF_RUN/run.log"
hf_check "run printed the demo page's URL" grep -q "demo       http://127.0.0.1:[0-9]*/ " "$HF_RUN/run.log"
hf_check "run's demo publish answered" grep -q '"channel":"demo"' "$HF_RUN/run.log"
pids=$(cat "$HOLDFAST_RUN_DIR"/*.pid)
kill -INT -- "-$runner" # the whole process group, as a terminal does
rc=0
wait "$runner" || rc=$?
hf_check_eq "run exits 0 on Ctrl-C" 0 "$rc"
for pid in $pids; do
    hf_check "pid $pid stopped by Ctrl-C" hf_pid_gone "$pid"
done

hf_checks_done
