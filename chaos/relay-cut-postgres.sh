#!/usr/bin/env bash
# relay-cut-postgres: the relay cut from PostgreSQL right after a commit,
# under load (holdfast-faultproxy between the relay and PostgreSQL resets
# the relay's connections and refuses new ones for --cut-for ms). The relay
# records offsets every 50 ms; a quiet channel's only event is published
# just before the cut, so its record is in flight and its commit's answer
# is lost. The relay publishes an event to Redis as soon as Kafka has it,
# so the cut costs recording, not delivery: the quiet channel's subscriber
# gets the event without waiting for a next one (the scenario reports how
# long it took), and the relay, back, reads its position from PostgreSQL
# and its partitions' Kafka tails, records what is missing and produces
# nothing twice. Local stack only: the scenario runs a relay of its own
# behind the proxy in place of the stack's.
source "$(dirname "$0")/lib.sh"
CHAOS_CUT_FOR_MS=1000
CHAOS_HELP="  --cut-for MS       how long new connections are refused after the cut (default $CHAOS_CUT_FOR_MS)"
chaos_option() {
    CHAOS_OPTION_TAKES_VALUE=1
    [[ $1 == --cut-for ]] && CHAOS_CUT_FOR_MS=$2
}

chaos_setup() {
    ((CHAOS_K8S)) && hf_die "relay-cut-postgres needs a proxy between the relay and PostgreSQL: local stack only"
    local pg=${HOLDFAST_PG_URL#postgresql://*@} port
    pg=${pg%%/*}
    chaos_proxy_start "$pg"
    local proxied_url=${HOLDFAST_PG_URL/@$pg/@$CHAOS_PROXY_LISTEN}
    chaos_target_stop relay # the stack's relay; brought back at the end
    port=$(hf_free_port)
    # HF_PG_URL for this one call only: the relay goes through the proxy.
    HF_PG_URL=$proxied_url hf_relay_launch relay-proxied "$port" --topic "$HF_TOPIC" \
        --redis-url "$HF_REDIS_URL" --relay-id chaos-relay-proxied
    hf_wait_until 30 "the proxied relay to lead" hf_relay_leads chaos-relay-proxied ||
        hf_die "the proxied relay did not lead (see $HF_RUN/relay-proxied.log)"
    CHAOS_QUIET=chaos-quiet-$$
    : >"$HF_RUN/quiet.out"
    hf_spawn quiet /usr/bin/python3 "$CHAOS_DIR/quiet_probe.py" --url "${CHAOS_GATEWAY_URLS%% *}" \
        --channel "$CHAOS_QUIET" --token "${HOLDFAST_SUBSCRIBE_TOKEN:-}" --out "$HF_RUN/quiet.out" \
        --timeout $((${CHAOS_DURATION%.*} + 120))
    hf_wait_until 30 "the quiet channel's subscriber" grep -q subscribed "$HF_RUN/quiet.out" ||
        hf_die "the quiet channel's subscriber did not subscribe (see $HF_RUN/quiet.log)"
}

chaos_inject() {
    CHAOS_QUIET_SENT=$(date +%s%3N)
    curl -sS -o /dev/null -X POST "$HOLDFAST_INGEST_URL/v1/events" -H 'Content-Type: application/json' \
        -H "Authorization: Bearer ${HOLDFAST_PUBLISH_TOKEN:-}" --max-time 10 \
        -d "{\"channel\":\"$CHAOS_QUIET\",\"data\":{\"quiet\":true}}"
    sleep 0.02 # inside the relay's 50 ms commit interval: its record is not written yet
    chaos_proxy refuse
    chaos_proxy reset
    hf_log "$CHAOS_NAME: the relay's PostgreSQL connections reset; new ones refused for $CHAOS_CUT_FOR_MS ms"
    sleep "$(awk "BEGIN{print $CHAOS_CUT_FOR_MS / 1000}")"
    chaos_proxy normal
}

chaos_repair() {
    chaos_proxy normal
    hf_wait_until 60 "the quiet channel's event" grep -q '^event\|^timeout' "$HF_RUN/quiet.out"
    local got
    got=$(awk '/^event/ {print $2}' "$HF_RUN/quiet.out")
    if [[ -n $got ]]; then
        hf_log "$CHAOS_NAME: the quiet channel's only event reached its subscriber $((got - CHAOS_QUIET_SENT)) ms after its publish"
    else
        hf_log "$CHAOS_NAME: the quiet channel's only event NEVER reached its subscriber"
    fi
}

chaos_teardown() { hf_stop relay-proxied; }
chaos_main "$@"
