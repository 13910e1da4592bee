#!/usr/bin/env bash
# --allowed-origins: a WebSocket handshake from a web page whose Origin is
# not listed gets 403 with a JSON error before anything else happens (no
# token looked at, no connection counted), with a metric; a listed Origin
# and a handshake without Origin (not a browser) proceed; "*" lets any page
# in; an entry no browser could send is refused at start-up. Clients are
# Python's websockets (they send Origin as browsers do).
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_redis_start
hf_kafka_start 2 holdfast.events
hf_gateway_start listed --allowed-origins "https://app.example.com, http://localhost:8000"
hf_gateway_start any # the default, "*"

cat >"$HF_RUN/origin.py" <<'PY'
import asyncio, json, sys
import websockets
from websockets.exceptions import InvalidStatusCode

async def status(url, origin):
    """101 when the handshake succeeds (then a subscribe is answered), else the status."""
    try:
        async with websockets.connect(url, origin=origin, open_timeout=10) as ws:
            await ws.send(json.dumps({"type": "subscribe", "channel": "origin-test"}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            return f"101 {reply['type']}"
    except InvalidStatusCode as e:
        return str(e.status_code)

async def main():
    url = sys.argv[1]
    for origin in sys.argv[2:]:
        print(await status(url, None if origin == "-" else origin))

asyncio.run(main())
PY
origins() { /usr/bin/python3 "$HF_RUN/origin.py" "$@" | tr '\n' ' ' | sed 's/ $//'; }
hf_check_eq "listed origins, and no Origin, open; others get 403" \
    "101 subscribed 101 subscribed 101 subscribed 403 403 403" \
    "$(origins "$WS_listed" https://app.example.com http://localhost:8000 - \
        https://evil.example http://app.example.com https://app.example.com:8443)"
hf_check_eq "each 403 counted" 3 "$(hf_metric "$PORT_listed" holdfast_gateway_origin_refused_total)"
hf_check_eq "refused handshakes never became connections" 3 \
    "$(hf_metric "$PORT_listed" holdfast_gateway_connections_total)"
body=$(curl -s --max-time 10 -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
    -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' -H 'Origin: https://evil.example' \
    -w ' %{http_code}' "http://127.0.0.1:$PORT_listed/v1/ws")
hf_check_eq "the 403 carries a JSON error" \
    '{"error":{"code":"origin_not_allowed","message":"this web page'"'"'s origin may not open WebSockets here"}} 403' \
    "$(echo "$body" | tr -d '\n')"
hf_check_eq "* lets any page in" "101 subscribed 101 subscribed" \
    "$(origins "$WS_any" https://evil.example -)"
hf_check "the gateway logs no lws warning per refusal" bash -c "! grep -q 'denied' '$HF_RUN/listed.log'"

for bad in "https://app.example.com/" "https://App.example.com" "app.example.com"; do
    rc=0
    "$HF_BIN/holdfast-gateway" --port 0 --auth=false --redis-url "$HF_REDIS_URL" \
        --kafka-brokers "$HF_KAFKA_BROKERS" --allowed-origins "$bad" >"$HF_RUN/bad.out" 2>&1 || rc=$?
    hf_check_eq "--allowed-origins '$bad' refused at start-up" 2 "$rc"
    hf_check "... saying why" grep -q "is not an Origin as browsers send it" "$HF_RUN/bad.out"
done
hf_checks_done
