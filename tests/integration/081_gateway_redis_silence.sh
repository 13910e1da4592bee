#!/usr/bin/env bash
# A gateway whose link to Redis goes silent or is cut, on quiet channels:
# each has exactly one event, published during the fault, and never a
# later one to reveal a gap. The gateway reaches Redis through
# holdfast-faultproxy; the relay publishes straight to Redis, so it never
# skips anything and announces nothing (no hfctl:skipped to help).
#   1. The link stalls (sockets open, nothing moves). Past
#      --redis-suspect-after the gateway reads Kafka as well, keeping the
#      connection: the quiet channel's event arrives from Kafka, and no
#      fallback (reconnect, resubscription) is counted.
#   2. The link is reset and refused: the gateway reconnects; the event
#      published meanwhile arrives from Kafka.
# Each time, once Redis answers again, the relay's next heartbeat
# (hfctl:heads) ends the Kafka reading: the hand-back grace is set to
# 120 s here, so only the heartbeat can end it within the test. Then, in
# the steady state, events come from Redis alone (no Kafka reads), and
# every client has exactly its channels' events, in order, once.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pipeline_start
hf_ingest_start
hf_relay_start ra
hf_spawn proxy "$HF_BIN/holdfast-faultproxy" --listen 127.0.0.1:0 \
    --target "127.0.0.1:$HF_REDIS_PORT" --ready-file "$HF_RUN/proxy.ready"
hf_wait_until 10 "the fault proxy" test -s "$HF_RUN/proxy.ready" ||
    hf_die "holdfast-faultproxy did not start (see $HF_RUN/proxy.log)"
PROXY=$(sed -n 's/^listen=//p' "$HF_RUN/proxy.ready")
CONTROL=$(sed -n 's/^control=127.0.0.1://p' "$HF_RUN/proxy.ready")
proxy() {
    local reply=
    exec 7<>"/dev/tcp/127.0.0.1/$CONTROL" || return 1
    printf '%s\n' "$*" >&7
    IFS= read -r -t 5 reply <&7 || true
    exec 7>&-
    [[ $reply == ok* ]]
}
# The default suspicion (500 ms + jitter); a ping timeout far above any
# stall here, so phase 1 can only be a suspicion.
hf_gateway_start ga --redis-url "redis://default:$HF_REDIS_PASSWORD@$PROXY" --redis-ping-interval 150ms \
    --redis-suspect-after 500ms --redis-ping-timeout 60s --redis-handback-grace 120s

metric() { hf_metric "$PORT_ga" "$1"; }
kafka() { metric 'holdfast_gateway_deliveries_total{source="kafka"}'; }
publish() {
    curl -fsS -X POST "$HF_INGEST_URL/v1/events" -H 'Content-Type: application/json' \
        -d "{\"channel\":\"$1\",\"data\":{\"seq\":$2}}" >/dev/null
}
handed_back() { # handed_back N: N hand-backs by heartbeat, and no partition read from Kafka
    [[ $(metric 'holdfast_gateway_handbacks_total{via="heads"}') -ge $1 &&
        $(metric holdfast_gateway_kafka_scanning_partitions) == 0 ]]
}
export -f metric kafka handed_back hf_metric
export PORT_ga

hf_ws_clients_start --urls "$WS_ga" --clients 4 --channels quiet:1,quiet:2,busy:1 --per-client 3 \
    --deadline 120
publish busy:1 1 # the relay now holds a Redis connection and sends its heartbeat
hf_check "the relay's heartbeat flows" hf_wait_until 20 "a heartbeat" \
    bash -c "timeout 2 redis-cli -p $HF_REDIS_PORT --raw subscribe hfctl:heads | sed -n 6p | grep -q ."

hf_log "1. the link to Redis stalls"
proxy stall
hf_check "silence makes the gateway suspect Redis" hf_wait_until 20 "a suspicion" \
    bash -c '[[ $(metric holdfast_gateway_redis_suspicions_total) == 1 ]]'
k0=$(kafka)
publish quiet:1 1
hf_check "the quiet channel's event reaches its 4 clients from Kafka" \
    hf_wait_until 20 "4 deliveries from Kafka" bash -c "[[ \$(kafka) -ge $((k0 + 4)) ]]"
proxy resume
hf_check "once Redis answers, the relay's heartbeat hands back" \
    hf_wait_until 20 "a hand-back by heartbeat" handed_back 1
hf_check_eq "the connection was kept (no fallback)" 0 "$(metric holdfast_gateway_redis_fallbacks_total)"

hf_log "2. the link is cut"
proxy refuse
proxy reset
hf_check "the gateway falls back" hf_wait_until 20 "a fallback" \
    bash -c '[[ $(metric holdfast_gateway_redis_fallbacks_total) == 1 ]]'
k0=$(kafka)
publish quiet:2 1
hf_check "the other quiet channel's event reaches its 4 clients from Kafka" \
    hf_wait_until 20 "4 deliveries from Kafka" bash -c "[[ \$(kafka) -ge $((k0 + 4)) ]]"
proxy accept
heads_before=$(metric 'holdfast_gateway_handbacks_total{via="heads"}')
hf_check "reconnected and resubscribed, the relay's heartbeat hands back" \
    hf_wait_until 20 "a hand-back by heartbeat" handed_back $((heads_before + 1))
hf_check_eq "no hand-back waited for the grace" 0 \
    "$(metric 'holdfast_gateway_handbacks_total{via="grace"}')"

hf_log "3. steady state: Redis alone"
k0=$(kafka)
for ((i = 2; i <= 21; i++)); do publish busy:1 "$i"; done
hf_check "every event is relayed" hf_wait_until 30 "every event relayed" hf_all_relayed
hf_ws_clients_finish
hf_check_eq "no Kafka reads in the steady state" "$k0" "$(kafka)"
hf_check "every client got exactly its channels' events, in order, once" \
    hf_ws_verify --min-events $((4 * 23))
hf_checks_done
