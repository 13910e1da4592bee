#!/usr/bin/env bash
# stack.sh - the local Holdfast stack: PostgreSQL and Redis from Debian's
# packages with their data under .run/, the dev Kafka broker, and the
# Holdfast services built in build/.
#
#   tools/stack.sh up      start every part that is not running; return when all are ready
#   tools/stack.sh down    stop the parts this stack started (by the PIDs in .run/*.pid)
#   tools/stack.sh run     up, print endpoints and a demo, stay in the foreground; Ctrl-C stops all
#   tools/stack.sh status  which parts run, with their PIDs
#
# Settings (environment): HOLDFAST_GATEWAYS (default 2), HOLDFAST_PARTITIONS
# (default 8), HOLDFAST_TOPIC (default holdfast.events), HOLDFAST_RUN_DIR
# (default .run), HOLDFAST_ALLOWED_ORIGINS (web pages that may open
# WebSockets; default http://127.0.0.1:8000,http://localhost:8000; the demo
# page's origin is always added). Ports are chosen free on first start and
# kept in .run/ports.env, so a part brought back later keeps its address.
# The demo page (clients/js/demo, on Node) is served at DEMO_ORIGIN, the
# one origin ingest answers CORS for.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HF_ROOT=$ROOT
HF_BIN=${HF_BIN:-$ROOT/build/bin}
source "$ROOT/tests/support/lib.sh"

RUN_DIR=${HOLDFAST_RUN_DIR:-$ROOT/.run}
GATEWAYS=${HOLDFAST_GATEWAYS:-2}
PARTITIONS=${HOLDFAST_PARTITIONS:-8}
TOPIC=${HOLDFAST_TOPIC:-holdfast.events}
# Web pages allowed to open WebSockets on the local gateways: their origins
# (scheme://host:port, exact, comma-separated; a handshake without Origin,
# from a program rather than a browser, is always allowed). Add the
# address a page of yours is served from.
ALLOWED_ORIGINS=${HOLDFAST_ALLOWED_ORIGINS:-http://127.0.0.1:8000,http://localhost:8000}
hf_init "$RUN_DIR"

# Each part's port, chosen once.
stack_ports() {
    if [[ -f $HF_RUN/ports.env ]]; then
        source "$HF_RUN/ports.env"
        if [[ -z ${RELAY_PORT:-} ]]; then # written by an older version
            RELAY_PORT=$(hf_free_port)
            echo "RELAY_PORT=$RELAY_PORT" >>"$HF_RUN/ports.env"
        fi
        stack_gateway_ports
        return
    fi
    PG_PORT=$(hf_free_port)
    REDIS_PORT=$(hf_free_port)
    INGEST_PORT=$(hf_free_port)
    RELAY_PORT=$(hf_free_port)
    {
        echo "PG_PORT=$PG_PORT"
        echo "REDIS_PORT=$REDIS_PORT"
        echo "INGEST_PORT=$INGEST_PORT"
        echo "RELAY_PORT=$RELAY_PORT"
    } >"$HF_RUN/ports.env"
    stack_gateway_ports
}

# The demo page's port, and so its origin: browsers send it with every
# request, and the services allow exactly this one.
stack_demo_origin() {
    if [[ -z ${DEMO_PORT:-} ]]; then
        DEMO_PORT=$(hf_free_port)
        echo "DEMO_PORT=$DEMO_PORT" >>"$HF_RUN/ports.env"
    fi
    DEMO_ORIGIN=http://127.0.0.1:$DEMO_PORT
}

# GATEWAY_PORT_<i> for each gateway, added to ports.env when missing.
stack_gateway_ports() {
    local i var
    for ((i = 1; i <= GATEWAYS; i++)); do
        var=GATEWAY_PORT_$i
        if [[ -z ${!var:-} ]]; then
            printf -v "$var" '%s' "$(hf_free_port)"
            echo "$var=${!var}" >>"$HF_RUN/ports.env"
        fi
    done
}

stack_has() { [[ -x $HF_BIN/$1 ]]; }

stack_up_postgres() {
    HF_PG_URL="postgresql://holdfast@127.0.0.1:$PG_PORT/holdfast"
    if hf_alive postgres; then return; fi
    hf_log "starting PostgreSQL on 127.0.0.1:$PG_PORT (data in $HF_RUN/postgres)"
    hf_pg_start "$PG_PORT"
    hf_migrate --partitions "$PARTITIONS"
}

# Redis requires a password, random, made on first start and kept in
# .run/redis.password (mode 600). The services read it from that file (a
# password on the command line shows in ps); stack.env carries the whole
# URL for redis-cli -u, holdfast-tap and the chaos scenarios.
stack_up_redis() {
    if ! hf_alive redis; then
        hf_log "starting Redis on 127.0.0.1:$REDIS_PORT (password in $HF_RUN/redis.password)"
        hf_redis_start "$REDIS_PORT"
    fi
    [[ -s $HF_RUN/redis.password ]] ||
        hf_die "Redis runs without a password (started by an older stack): make down, then make up"
    HF_REDIS_PASSWORD=$(cat "$HF_RUN/redis.password")
    export REDISCLI_AUTH=$HF_REDIS_PASSWORD
    HF_REDIS_URL="redis://default:$HF_REDIS_PASSWORD@127.0.0.1:$REDIS_PORT"
    STACK_REDIS=(--redis-url "redis://default@127.0.0.1:$REDIS_PORT"
        --redis-password-file "$HF_RUN/redis.password")
}

stack_up_kafka() {
    if hf_alive kafka; then
        HF_KAFKA_BROKERS=$(cat "$HF_RUN/kafka.bootstrap")
        HF_TOPIC=$TOPIC
        return
    fi
    hf_log "starting the dev Kafka broker (in memory; topic $TOPIC, $PARTITIONS partitions)"
    : >"$HF_RUN/kafka.log"
    hf_kafka_start "$PARTITIONS" "$TOPIC"
    # A new dev broker has new ports and an empty log: the relay and the
    # gateways restart against it (the relay, finding the log reset,
    # starts a new epoch).
    local part
    for part in relay $(stack_gateway_parts); do
        if hf_alive "$part"; then
            hf_log "restarting $part for the new broker"
            hf_stop "$part"
        fi
    done
}

stack_gateway_parts() {
    local i
    for ((i = 1; i <= GATEWAYS; i++)); do echo "gateway-$i"; done
}

stack_up_gateways() {
    local i port urls=()
    for ((i = 1; i <= GATEWAYS; i++)); do
        port=GATEWAY_PORT_$i
        urls+=("ws://127.0.0.1:${!port}/v1/ws")
        hf_alive "gateway-$i" && continue
        hf_log "starting holdfast-gateway $i on ws://127.0.0.1:${!port}/v1/ws"
        hf_spawn "gateway-$i" "$HF_BIN/holdfast-gateway" --port "${!port}" \
            "${STACK_REDIS[@]}" --kafka-brokers "$HF_KAFKA_BROKERS" --topic "$TOPIC" \
            --max-conns-per-subject 100000 --allowed-origins "$ALLOWED_ORIGINS,$DEMO_ORIGIN"
        hf_wait_until 30 "gateway-$i /readyz" hf_http_ok "http://127.0.0.1:${!port}/readyz" ||
            hf_die "gateway-$i did not start (see $HF_RUN/gateway-$i.log)"
    done
    HF_GATEWAY_URLS="${urls[*]}"
}

stack_up_ingest() {
    HF_INGEST_URL="http://127.0.0.1:$INGEST_PORT"
    if hf_alive ingest; then return; fi
    hf_log "starting holdfast-ingest on $HF_INGEST_URL"
    hf_ingest_start "$INGEST_PORT" --kafka-brokers "$HF_KAFKA_BROKERS" --topic "$TOPIC" \
        --cors-origins "$DEMO_ORIGIN"
}

# The demo page and its small server (tokens, publishing); on Node.
stack_up_demo() {
    HF_DEMO_URL="$DEMO_ORIGIN/"
    if hf_alive demo; then return; fi
    if ! command -v node >/dev/null; then
        hf_log "node is missing: no demo page (tools/install-deps.sh installs it)"
        HF_DEMO_URL=
        return
    fi
    hf_log "starting the demo page on $HF_DEMO_URL"
    rm -f "$HF_RUN/demo.ready"
    hf_spawn demo node "$ROOT/clients/js/demo/server.mjs" --port "$DEMO_PORT" \
        --gateways "$HF_GATEWAY_URLS" --ingest "$HF_INGEST_URL" \
        --key-file "$HOLDFAST_AUTH_KEY_FILE" --ready-file "$HF_RUN/demo.ready"
    hf_wait_until 30 "the demo page" test -s "$HF_RUN/demo.ready" ||
        hf_die "the demo page did not start (see $HF_RUN/demo.log)"
}

stack_up_relay() {
    HF_RELAY_URL="http://127.0.0.1:$RELAY_PORT"
    if hf_alive relay; then return; fi
    hf_log "starting holdfast-relay (ops on $HF_RELAY_URL)"
    hf_relay_launch relay "$RELAY_PORT" --topic "$TOPIC" "${STACK_REDIS[@]}" \
        --relay-id "local-relay-1"
    hf_wait_until 30 "relay /readyz" hf_http_ok "$HF_RELAY_URL/readyz" ||
        hf_die "relay did not start (see $HF_RUN/relay.log)"
}

# Auth is on, as in production: a secret made on first start (kept in
# .run/auth.secret, mode 600) and two demo tokens valid 24 hours (the
# services' default --auth-max-token-lifetime), minted again on every
# start (make up). Every demo and chaos client shares the subscribe
# token, so the gateways allow many connections per subject here.
stack_auth() {
    local secret=$HF_RUN/auth.secret
    if [[ ! -s $secret ]]; then
        (umask 077 && head -c 48 /dev/urandom | base64 -w0 >"$secret")
    fi
    export HF_AUTH=true HOLDFAST_AUTH_KEY_FILE=$secret
    HF_PUBLISH_TOKEN=$("$HF_BIN/holdfast-token" --key-file "$secret" --sub demo-publisher \
        --publish '*' --ttl 86400)
    HF_SUBSCRIBE_TOKEN=$("$HF_BIN/holdfast-token" --key-file "$secret" --sub demo-subscriber \
        --subscribe '*' --ttl 86400)
}

stack_write_env() {
    # Mode 600: it holds the Redis password and the demo tokens.
    rm -f "$HF_RUN/stack.env"
    (umask 077 && : >"$HF_RUN/stack.env")
    cat >"$HF_RUN/stack.env" <<EOF
# Written by tools/stack.sh; source it: . .run/stack.env
HOLDFAST_INGEST_URL=$HF_INGEST_URL
HOLDFAST_RELAY_URL=$HF_RELAY_URL
HOLDFAST_GATEWAY_URLS="${HF_GATEWAY_URLS:-}"
HOLDFAST_PG_URL=$HF_PG_URL
HOLDFAST_REDIS_URL=$HF_REDIS_URL
HOLDFAST_KAFKA_BROKERS=$HF_KAFKA_BROKERS
HOLDFAST_KAFKA_CONTROL=$HF_KAFKA_CONTROL
HOLDFAST_TOPIC=$TOPIC
HOLDFAST_AUTH_KEY_FILE=$HOLDFAST_AUTH_KEY_FILE
HOLDFAST_PUBLISH_TOKEN=$HF_PUBLISH_TOKEN
HOLDFAST_SUBSCRIBE_TOKEN=$HF_SUBSCRIBE_TOKEN
HOLDFAST_DEMO_URL=${HF_DEMO_URL:-}
EOF
}

stack_up() {
    stack_ports
    stack_demo_origin
    stack_up_postgres
    stack_up_redis
    stack_up_kafka
    HF_KAFKA_CONTROL=$(sed -n 's/^control=//p' "$HF_RUN/kafka.log" | tail -n 1)
    stack_auth
    stack_up_ingest
    stack_up_relay
    stack_up_gateways
    stack_up_demo
    stack_write_env
    hf_log "stack is up; endpoints in $HF_RUN/stack.env"
}

# Parts in stopping order: services first, then what they depend on.
stack_parts() {
    echo demo
    stack_gateway_parts | tac
    echo relay ingest kafka redis postgres | tr ' ' '\n'
}

stack_down() {
    local part
    for part in $(stack_parts); do
        if hf_alive "$part"; then
            hf_log "stopping $part (pid $(hf_pid "$part"))"
            hf_stop "$part"
        fi
        rm -f "$HF_RUN/$part.pid"
    done
    rm -f "$HF_RUN/stack.env"
}

stack_status() {
    local part
    for part in $(stack_parts | tac); do
        if hf_alive "$part"; then
            printf '%-10s running (pid %s)\n' "$part" "$(hf_pid "$part")"
        else
            printf '%-10s stopped\n' "$part"
        fi
    done
}

stack_demo() {
    source "$HF_RUN/stack.env"
    cat <<EOF

  Holdfast is running (data under $HF_RUN; the dev Kafka broker keeps its log in memory only)

    ingest     $HOLDFAST_INGEST_URL   (POST /v1/events, /livez, /readyz, /metrics)
    relay      $HOLDFAST_RELAY_URL   (/livez, /readyz, /metrics)
    postgres   $HOLDFAST_PG_URL
    redis      redis://default@127.0.0.1:$REDIS_PORT   (password in $HF_RUN/redis.password; the whole URL in stack.env)
    kafka      $HOLDFAST_KAFKA_BROKERS   topic $HOLDFAST_TOPIC
    gateways   $HOLDFAST_GATEWAY_URLS   (WebSocket; /livez, /readyz, /metrics on the same ports)
    demo       ${HOLDFAST_DEMO_URL:-(no Node.js: not started)}   (open it in a browser: @holdfast/client live, short-lived tokens)
    tokens     (HS256, secret in $HOLDFAST_AUTH_KEY_FILE; mint more with build/bin/holdfast-token)
      publish to any channel:    HOLDFAST_PUBLISH_TOKEN=$HOLDFAST_PUBLISH_TOKEN
      subscribe to any channel:  HOLDFAST_SUBSCRIBE_TOKEN=$HOLDFAST_SUBSCRIBE_TOKEN

  Publish an event:
    curl -X POST $HOLDFAST_INGEST_URL/v1/events -H 'Content-Type: application/json' \\
         -H "Authorization: Bearer \$HOLDFAST_PUBLISH_TOKEN" \\
         -d '{"channel":"demo","data":{"hello":"world"}}'
  See it in PostgreSQL with the Kafka offset the relay recorded:
    psql $HOLDFAST_PG_URL -c 'SELECT id, channel, partition, kafka_offset, convert_from(payload, '"'"'UTF8'"'"') AS data FROM holdfast.event_log ORDER BY created_at DESC LIMIT 5'
  In Kafka:
    kcat -C -b $HOLDFAST_KAFKA_BROKERS -t $HOLDFAST_TOPIC -o beginning -e -f '%p %o %k %h\\n'
  Live on Redis (msgpack envelopes; build/bin/holdfast-tap prints them as JSON):
    redis-cli -u $HOLDFAST_REDIS_URL psubscribe 'hf:*'
  Subscribe over WebSocket (any client; protocol in schemas/websocket.md):
    /usr/bin/python3 -m websockets "${HOLDFAST_GATEWAY_URLS%% *}?token=\$HOLDFAST_SUBSCRIBE_TOKEN"
    > {"type":"subscribe","channel":"demo"}

EOF
    hf_log "demo: a WebSocket client on each gateway subscribes to \"demo\"; one event is published"
    HOLDFAST_PUBLISH_TOKEN=$HOLDFAST_PUBLISH_TOKEN HOLDFAST_SUBSCRIBE_TOKEN=$HOLDFAST_SUBSCRIBE_TOKEN \
        /usr/bin/python3 "$ROOT/tools/ws_demo.py" --channel demo --urls "${HOLDFAST_GATEWAY_URLS// /,}" \
        --publish "$HOLDFAST_INGEST_URL/v1/events" || hf_log "the WebSocket demo failed"
    sleep 0.5 # the relay records offsets a few tens of milliseconds after publishing
    psql "$HOLDFAST_PG_URL" -X -c "SELECT id, channel, partition, epoch, kafka_offset, convert_from(payload, 'UTF8') AS data FROM holdfast.event_log ORDER BY created_at DESC LIMIT 3"
    echo "  Ctrl-C stops everything."
}

stack_run() {
    trap 'echo; stack_down; exit 0' INT TERM
    stack_up
    stack_demo
    # Stay in the foreground while the parts run; report any that dies.
    while true; do
        local part
        for part in postgres redis kafka ingest relay $(stack_gateway_parts) demo; do
            if ! hf_alive "$part" && [[ -f $HF_RUN/$part.pid ]]; then
                hf_log "$part exited; see $HF_RUN/$part.log ('make up' in another shell brings it back)"
                rm -f "$HF_RUN/$part.pid"
            fi
        done
        sleep 1 &
        wait $! || true
    done
}

case ${1:-} in
up) stack_up ;;
down) stack_down ;;
run) stack_run ;;
status) stack_status ;;
*)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
