#!/usr/bin/env bash
# slow-network: a gateway whose link to Redis turns bad under load. This
# kernel has no tc netem, so the scenario puts holdfast-faultproxy (a TCP
# proxy with latency, stall and reset) between Redis and a gateway of its
# own, and half the clients on that gateway. The fault, in order:
# --delay-ms of latency each way for half the pause, then a stall (sockets
# open, nothing moves: the gateway's heartbeat must notice) for the other;
# the repair resets the proxied connections and restores the link.
# Only the Redis link is proxied: Kafka's protocol hands out broker
# addresses, so a proxy on the bootstrap address alone would be bypassed.
source "$(dirname "$0")/lib.sh"
CHAOS_DELAY_MS=300
CHAOS_HELP="  --delay-ms MS      latency added each way during the first half (default $CHAOS_DELAY_MS)"
chaos_option() {
    CHAOS_OPTION_TAKES_VALUE=1
    [[ $1 == --delay-ms ]] && CHAOS_DELAY_MS=$2
}

chaos_setup() {
    ((CHAOS_K8S)) && hf_die "slow-network needs a proxy between a gateway and Redis: local stack only"
    # The proxy forwards bytes; the proxied gateway authenticates through it.
    local url=${HOLDFAST_REDIS_URL#redis://} creds= port
    local redis=${url##*@}
    [[ $url == *@* ]] && creds=${url%@*}@
    chaos_proxy_start "$redis"
    port=$(hf_free_port)
    hf_spawn gateway-proxied "$HF_BIN/holdfast-gateway" --port "$port" \
        --redis-url "redis://$creds$CHAOS_PROXY_LISTEN" --kafka-brokers "$HOLDFAST_KAFKA_BROKERS" \
        --topic "$HOLDFAST_TOPIC" --max-conns-per-subject 100000 \
        ${HOLDFAST_AUTH_KEY_FILE:+--auth-key-file "$HOLDFAST_AUTH_KEY_FILE"}
    hf_wait_until 30 "proxied gateway /readyz" hf_http_ok "http://127.0.0.1:$port/readyz" ||
        hf_die "the proxied gateway did not start (see $HF_RUN/gateway-proxied.log)"
    # Its clients first: client i goes to URL i mod 2.
    CHAOS_GATEWAY_URLS="ws://127.0.0.1:$port/v1/ws ${CHAOS_GATEWAY_URLS%% *}"
    CHAOS_METRICS_PORTS+=("$port")
}

chaos_inject() {
    chaos_proxy delay "$CHAOS_DELAY_MS"
    sleep "$(awk "BEGIN{print $CHAOS_PAUSE/2}")"
    chaos_proxy stall
}

chaos_repair() {
    chaos_proxy reset
    chaos_proxy normal
}
chaos_main "$@"
