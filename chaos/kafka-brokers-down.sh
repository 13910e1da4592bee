#!/usr/bin/env bash
# kafka-brokers-down: the dev broker's brokers set down (all, or one with
# --broker ID) for --pause seconds, then up (with --k8s: a broker pod
# deleted). The relay holds events (the slot keeps them) and moves them
# once Kafka is back; the gateways' Kafka reads resume.
source "$(dirname "$0")/lib.sh"
CHAOS_BROKER=
CHAOS_HELP="  --broker ID        only this broker (default: all of them)"
chaos_option() {
    CHAOS_OPTION_TAKES_VALUE=1
    [[ $1 == --broker ]] && CHAOS_BROKER=$2
}
chaos_inject() { chaos_target_kafka down $CHAOS_BROKER; }
chaos_repair() { chaos_target_kafka up $CHAOS_BROKER; }
chaos_main "$@"
