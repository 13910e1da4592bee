#!/usr/bin/env bash
# redis-buffer-cut: Redis' output-buffer limit for Pub/Sub clients set
# tiny (CONFIG SET client-output-buffer-limit "pubsub 1kb 1kb 0") for
# --pause seconds, with a 64 KiB ballast event on one of the run's channels
# every 0.3 s: every gateway subscription that receives one is cut by Redis,
# as an overrun does in production. Gateways must go on from Kafka and
# resubscribe; the ballast events are owed to their clients like any other.
# The limit is put back as it was.
source "$(dirname "$0")/lib.sh"
CHAOS_SAVED_LIMIT=

chaos_setup() {
    CHAOS_SAVED_LIMIT=$(chaos_target_redis_cli CONFIG GET client-output-buffer-limit | sed -n 2p)
    [[ -n $CHAOS_SAVED_LIMIT ]] || ((CHAOS_DRY_RUN)) ||
        hf_die "cannot read Redis' client-output-buffer-limit"
}

# A bounded ballast publisher: one event every 0.3 s until the pause ends.
chaos_ballast() {
    local body n end
    body="{\"channel\":\"$CHAOS_PREFIX:0\",\"data\":{\"ballast\":\"$(head -c 65536 /dev/zero | tr '\0' x)\"}}"
    end=$((SECONDS + ${CHAOS_PAUSE%.*} + 1))
    for ((n = 0; n < 200 && SECONDS < end; n++)); do
        curl -fsS -o /dev/null --max-time 5 -H 'Content-Type: application/json' \
            -H "Authorization: Bearer ${HOLDFAST_PUBLISH_TOKEN:-}" \
            --data-binary "$body" "$HOLDFAST_INGEST_URL/v1/events" || true
        sleep 0.3
    done
}

chaos_inject() {
    hf_log "$CHAOS_NAME: client-output-buffer-limit pubsub 1kb (was: $CHAOS_SAVED_LIMIT)"
    chaos_target_redis_cli CONFIG SET client-output-buffer-limit "pubsub 1kb 1kb 0" >/dev/null
    ((CHAOS_DRY_RUN)) && return 0
    hf_spawn ballast bash -c "$(declare -f chaos_ballast); CHAOS_PREFIX=$CHAOS_PREFIX \
        CHAOS_PAUSE=$CHAOS_PAUSE HOLDFAST_INGEST_URL=$HOLDFAST_INGEST_URL chaos_ballast"
}

chaos_repair() {
    hf_log "$CHAOS_NAME: client-output-buffer-limit back to: $CHAOS_SAVED_LIMIT"
    chaos_target_redis_cli CONFIG SET client-output-buffer-limit "$CHAOS_SAVED_LIMIT" >/dev/null
    hf_stop ballast
}

chaos_teardown() {
    [[ -z $CHAOS_SAVED_LIMIT ]] ||
        chaos_target_redis_cli CONFIG SET client-output-buffer-limit "$CHAOS_SAVED_LIMIT" >/dev/null
}
chaos_main "$@"
