#!/usr/bin/env bash
# Redis with ACL users (a real redis-server, default user off): the relay
# (user "relay", password from a file, may only PUBLISH), the gateway (user
# "gateway", password in the URL, may only SUBSCRIBE) and holdfast-tap
# (user "tap", PSUBSCRIBE only) authenticate and SELECT database 2 on
# connect, and events reach a WebSocket client through Redis. Cut off,
# the relay and the gateway authenticate again on reconnect. Wrong or
# missing credentials stop each of them at start-up with Redis' answer;
# credentials Redis stops accepting while the gateway runs make its
# /readyz fail with the reason, until they are accepted again.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pg_start "" fsync=off
hf_migrate
hf_kafka_start 8 holdfast.events
pw() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
ADMIN_PW=$(pw) RELAY_PW=$(pw) GW_PW=$(pw) TAP_PW=$(pw)
(umask 077 && printf '%s\n' "$RELAY_PW" >"$HF_RUN/relay.password")
cat >"$HF_RUN/users.acl" <<EOF
user default off
user admin on >$ADMIN_PW ~* &* +@all
user relay on >$RELAY_PW resetchannels &hf:* &hfctl:* -@all +publish +ping +select
user gateway on >$GW_PW resetchannels &hf:* &hfctl:* -@all +subscribe +unsubscribe +ping +select
user tap on >$TAP_PW resetchannels &hf:* -@all +psubscribe +punsubscribe +ping +select
EOF
REDIS_PORT=$(hf_free_port)
mkdir -p "$HF_RUN/redis"
hf_spawn redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$HF_RUN/redis" \
    --aclfile "$HF_RUN/users.acl" --save "" --appendonly no --daemonize no --protected-mode yes
admin() { REDISCLI_AUTH=$ADMIN_PW redis-cli --user admin -h 127.0.0.1 -p "$REDIS_PORT" "$@" 2>/dev/null; }
hf_wait_until 30 "Redis with ACLs" bash -c "[[ \$(REDISCLI_AUTH=$ADMIN_PW redis-cli --user admin -p $REDIS_PORT ping 2>/dev/null) == PONG ]]" ||
    hf_die "Redis did not start (see $HF_RUN/redis.log)"
R=127.0.0.1:$REDIS_PORT

# The pipeline with each its own user, on database 2.
HF_REDIS_URL="redis://gateway:$GW_PW@$R/2"
hf_gateway_start ga
hf_relay_start ra --redis-url "redis://relay@$R/2" --redis-password-file "$HF_RUN/relay.password"
hf_wait_until 30 "the relay to lead" hf_relay_leads ra || hf_die "relay did not start"
HF_REDIS_URL="redis://tap:$TAP_PW@$R/2"
hf_tap_start "$HF_RUN/tap.jsonl"
hf_ws_clients_start --urls "$WS_ga" --clients 2 --channels acl:0,acl:1
hf_publish_numbered acl 2 20
hf_wait_until 30 "tap saw the 20 events" bash -c "[[ \$(wc -l <'$HF_RUN/tap.jsonl') -ge 20 ]]" ||
    hf_check "tap got the events" false
for user in relay gateway tap; do
    hf_check "$user is connected as itself, on database 2" \
        bash -c "REDISCLI_AUTH=$ADMIN_PW redis-cli --user admin -p $REDIS_PORT CLIENT LIST 2>/dev/null | grep -q 'db=2 .*user=$user '"
done
# Cut the relay and the gateway off: each reconnects, authenticating again.
hf_check "the relay's and the gateway's connections cut" \
    bash -c "[[ \$(REDISCLI_AUTH=$ADMIN_PW redis-cli --user admin -p $REDIS_PORT CLIENT KILL USER relay 2>/dev/null) -ge 1 && \$(REDISCLI_AUTH=$ADMIN_PW redis-cli --user admin -p $REDIS_PORT CLIENT KILL USER gateway 2>/dev/null) -ge 1 ]]"
redis_connected() { [[ $(hf_metric "$PORT_ga" holdfast_gateway_redis_connected) == 1 ]]; }
hf_wait_until 30 "the gateway back on Redis" redis_connected || hf_check "gateway reconnected" false
hf_check "the gateway reconnected, as itself" bash -c "REDISCLI_AUTH=$ADMIN_PW redis-cli --user admin -p $REDIS_PORT CLIENT LIST 2>/dev/null | grep -q 'db=2 .*user=gateway '"
# The relay notices at its next PUBLISH (that batch is skipped on Redis and
# announced, gateways fill it from Kafka) and reconnects within a second.
hf_publish_numbered acl 2 20
relay_back() { admin CLIENT LIST | grep -q 'db=2 .*user=relay '; }
hf_check "the relay reconnected, as itself" hf_wait_until 30 "the relay back on Redis" relay_back
hf_publish_numbered acl 2 20
hf_wait_until 30 "tap saw the third batch" grep -q '"seq":60}' "$HF_RUN/tap.jsonl" ||
    hf_check "the relay published again after its reconnect" false
hf_wait_until 30 "the relay caught up" hf_all_relayed
hf_ws_clients_finish
hf_check "every client got every event, in order" hf_ws_verify
redis_deliveries=$(curl -fsS "http://127.0.0.1:$PORT_ga/metrics" |
    sed -n 's/^holdfast_gateway_deliveries_total{source="redis"} //p')
# the first batch at least (later ones may come from Kafka: a gap fill, the hand-back grace)
hf_check "the gateway delivered from Redis ($redis_deliveries)" test "${redis_deliveries:-0}" -ge 20
hf_check "no password in any log" bash -c "! grep -l -F -e '$RELAY_PW' -e '$GW_PW' -e '$TAP_PW' '$HF_RUN'/*.log"

# Credentials the gateway's Redis stops accepting: /readyz says so; then back.
readyz() { curl -s "http://127.0.0.1:$PORT_ga/readyz"; }
admin ACL SETUSER gateway resetpass ">$(pw)" >/dev/null
admin CLIENT KILL USER gateway >/dev/null
hf_check "refused credentials fail /readyz, with Redis' answer" \
    hf_wait_until 30 "/readyz to fail" bash -c "curl -s http://127.0.0.1:$PORT_ga/readyz | grep -q 'redis refused the credentials: .*WRONGPASS'"
hf_check "and the gateway logs it as an error" grep -q '"level":"error".*WRONGPASS' "$HF_RUN/ga.log"
admin ACL SETUSER gateway ">$GW_PW" >/dev/null
hf_check "accepted again: ready again" \
    hf_wait_until 30 "/readyz to pass" hf_http_ok "http://127.0.0.1:$PORT_ga/readyz"
hf_log "readyz now: $(readyz)"

# Refused at start-up, each with Redis' answer.
refused() { # refused NAME EXPECTED CMD...
    local name=$1 want=$2 rc=0
    shift 2
    timeout 30 "$@" >"$HF_RUN/refused.$name.log" 2>&1 || rc=$?
    hf_check "$name: refused at start-up (status $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
    hf_check "$name: says $want" grep -q "$want" "$HF_RUN/refused.$name.log"
}
refused gateway-wrong-password WRONGPASS "$HF_BIN/holdfast-gateway" --port 0 --auth=false \
    --redis-url "redis://gateway:wrong@$R/2" --kafka-brokers "$HF_KAFKA_BROKERS"
refused gateway-no-credentials NOAUTH "$HF_BIN/holdfast-gateway" --port 0 --auth=false \
    --redis-url "redis://$R" --kafka-brokers "$HF_KAFKA_BROKERS"
echo wrong >"$HF_RUN/wrong.password"
refused relay-wrong-password WRONGPASS "$HF_BIN/holdfast-relay" --port 0 --pg-url "$HF_PG_URL" \
    --kafka-brokers "$HF_KAFKA_BROKERS" --redis-url "redis://relay@$R" \
    --redis-password-file "$HF_RUN/wrong.password" --relay-id refused
refused tap-wrong-password WRONGPASS "$HF_BIN/holdfast-tap" --redis-url "redis://tap:wrong@$R"
refused tap-password-twice "give one" "$HF_BIN/holdfast-tap" --redis-url "redis://tap:x@$R" \
    --redis-password-file "$HF_RUN/wrong.password"
hf_check "no password in any log" bash -c "! grep -l -F -e '$RELAY_PW' -e '$GW_PW' -e '$TAP_PW' '$HF_RUN'/*.log"
hf_checks_done
