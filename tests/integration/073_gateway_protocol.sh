#!/usr/bin/env bash
# The client protocol (schemas/websocket.md) with a client the project
# did not write (Python websockets): clear errors for malformed and
# unknown messages and bad channel names (the connection keeps serving),
# close codes for oversized, wrongly typed and invalid-UTF-8 frames, the
# subscription limit, both subprotocols; and resume by position: `since`
# a known offset replays exactly the later events from Kafka, chained;
# a stale epoch, an offset older than the log keeps, or one beyond its end
# answer recovered:false and the live stream. The heartbeat drops a client
# that never answers pings and keeps one that does. Protocol 1.1, on
# gateways with auth on: welcome, request ids, a fresh token on an open
# connection (and one that narrows the subscriptions), the application
# ping, a short code in every close reason, the drain's reconnect spread.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pipeline_start 1
hf_ingest_start
hf_relay_start ra
hf_gateway_start ga --max-subscriptions 5 --max-frame 4KiB

# ~7 MB on the one partition, so the dev broker's log start moves (it
# keeps about 5 MB per partition): channels r:0 and r:1, 2 KB payloads.
hf_psql -c "SELECT count(*) FROM holdfast._append(
    array(SELECT 'r:' || (g % 2) FROM generate_series(1, 3600) g),
    array_fill(NULL::text, ARRAY[3600]),
    array(SELECT convert_to('{\"seq\":' || g || ',\"pad\":\"' || repeat('x', 2000) || '\"}', 'UTF8')
          FROM generate_series(1, 3600) g), NULL, NULL)" >/dev/null
hf_check "every event is relayed" hf_wait_until 60 "every event relayed" hf_all_relayed
log_start=$(timeout 20 kcat -C -b "$HF_KAFKA_BROKERS" -t holdfast.events -p 0 -o beginning -c 1 -e -q -f '%o')
hf_log "the partition's log starts at offset $log_start"
hf_check "the log start moved past the first events" test "$log_start" -gt 0
offsets=$(hf_psql -c "SELECT string_agg(kafka_offset::text, ',' ORDER BY kafka_offset)
    FROM holdfast.event_log WHERE channel = 'r:1' AND kafka_offset >= $log_start")
epoch=$(hf_psql -c "SELECT epoch FROM holdfast.meta")
hf_check "protocol and resume checks" /usr/bin/python3 "$HF_SUPPORT/ws_protocol_check.py" \
    --url "$WS_ga" --channel r:1 --offsets "$offsets" --epoch "$epoch" --log-start "$log_start" \
    --max-subscriptions 5 --max-frame 4096
hf_gateway_start gi --ws-ping-interval 1s --ws-idle-timeout 3s
hf_check "heartbeat: silent clients dropped, answering ones kept" \
    /usr/bin/python3 "$HF_SUPPORT/ws_idle_check.py" 127.0.0.1 "$PORT_gi"
secret=$HF_RUN/auth.secret
(umask 077 && head -c 48 /dev/urandom | base64 -w0 >"$secret")
HF_AUTH=true hf_gateway_start gp --auth-key-file "$secret" --ws-ping-interval 1s \
    --ws-idle-timeout 3s --max-frame 4KiB --gateway-id gw-proto
HF_AUTH=true hf_gateway_start gd --auth-key-file "$secret" --auth-leeway 0 \
    --drain-reconnect-spread 4s
hf_check "protocol 1.1 checks" /usr/bin/python3 "$HF_SUPPORT/ws_protocol11_check.py" \
    --url "$WS_gp" --secret-file "$secret" --gateway-id gw-proto --ping-interval-ms 1000 \
    --drain-url "$WS_gd" --drain-pid "$(hf_pid gd)" --drain-spread-ms 4000
hf_check "fresh tokens are counted" test "$(hf_metric "$PORT_gp" holdfast_gateway_token_refreshes_total)" -ge 2
hf_check "refused messages are counted" test "$(hf_metric "$PORT_ga" holdfast_gateway_protocol_errors_total)" -ge 16
hf_check "the gateway is still alive and ready" hf_http_ok "http://127.0.0.1:$PORT_ga/readyz"
hf_check_eq "every connection was closed" 0 "$(hf_metric "$PORT_ga" holdfast_gateway_connections)"
hf_checks_done
