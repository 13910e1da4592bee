#!/usr/bin/env bash
# kill-relay: SIGKILL the leading relay while it moves events (at any rate
# it is always mid-batch). Alone (default) it is started again after
# --pause seconds and takes up the slot where PostgreSQL says it stopped.
# With --replica, a second relay stands by from the start and takes over
# when the dead one's lease expires (the relay's --lease-ttl). Nobody may
# see an event twice or miss one.
source "$(dirname "$0")/lib.sh"
CHAOS_REPLICA=0
CHAOS_HELP="  --replica          run a standby relay; the killed leader fails over to it"
chaos_option() {
    CHAOS_OPTION_TAKES_VALUE=0
    [[ $1 == --replica ]] && CHAOS_REPLICA=1
}

chaos_replica_leads() { hf_relay_leads chaos-relay-2; }

chaos_setup() {
    if ((CHAOS_K8S)); then
        chaos_k8s_relay_replicas $((CHAOS_REPLICA ? 2 : 1))
        return 0
    fi
    ((CHAOS_REPLICA)) || return 0
    local port
    port=$(hf_free_port)
    hf_relay_launch relay-2 "$port" --topic "$HF_TOPIC" --redis-url "$HF_REDIS_URL" \
        --relay-id chaos-relay-2
    hf_wait_until 30 "second relay /livez" hf_http_ok "http://127.0.0.1:$port/livez" ||
        hf_die "the second relay did not start (see $HF_RUN/relay-2.log)"
    hf_wait_until 30 "second relay stands by" grep -q 'standing by' "$HF_RUN/relay-2.log" ||
        hf_log "$CHAOS_NAME: the second relay does not stand by yet; going on"
}

# The deploy/k8s Deployment runs two: back to that.
chaos_teardown() { ((!CHAOS_K8S)) || chaos_k8s_relay_replicas 2; }
chaos_inject() { chaos_target_kill relay; }

# With a replica, the repair first waits (bounded: a lease TTL and then
# some) for it to lead: the takeover is what is tested.
chaos_repair() {
    if ((CHAOS_REPLICA && !CHAOS_K8S)); then
        if hf_wait_until 60 "the second relay to lead" chaos_replica_leads; then
            hf_log "$CHAOS_NAME: the second relay took over"
        else
            hf_log "$CHAOS_NAME: the second relay did NOT take over"
        fi
    fi
    chaos_target_restore relay
}
chaos_main "$@"
