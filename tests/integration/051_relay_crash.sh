#!/usr/bin/env bash
# A relay killed at each point between produce and delete (invariant 3):
# right after Kafka acknowledged a batch but before the outbox rows were
# deleted ("produced"), right after the delete committed but before Redis
# got anything ("committed"), and in the middle of publishing to Redis
# ("publishing"). Each time the next relay (the same id restarting, or
# another replica after the TTL) reads the partition tails first, deletes
# the rows already in Kafka without producing them again, and goes on. In
# the end: every event in Kafka exactly once, in order, offsets written
# back; on Redis no event twice and the prev_offset chain intact (events
# lost from Redis at a crash are a visible gap, filled by gateways).
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pipeline_start
hf_tap_start "$HF_RUN/redis.jsonl"

gone() { ! hf_alive "$1"; }
outbox_rows() { hf_psql -c "SELECT count(*) FROM holdfast.outbox"; }

crash_and_recover() { # crash_and_recover POINT CRASHER SUCCESSOR
    local point=$1 crasher=$2 successor=$3 n
    hf_publish_numbered cr 20 800
    hf_relay_spawn "$crasher" --batch-max 50 --crash-at "$point:3"
    hf_wait_until 60 "$crasher to crash at $point" gone "$crasher" || hf_die "$crasher did not crash"
    hf_wait_exit "$crasher"
    hf_check_eq "$point: the relay died by SIGKILL" 137 "$HF_EXIT_STATUS"
    hf_check "$point: it died where asked" grep -q "crash-at $point:3" "$HF_RUN/$crasher.log"
    n=$(outbox_rows)
    CRASH_COMMITTED=$((HF_NEXT_SEQ - 1 - n))
    CRASH_IN_KAFKA=$(timeout 30 kcat -C -b "$HF_KAFKA_BROKERS" -t holdfast.events -o beginning -e -q -f 'x\n' | wc -l)
    hf_log "$point: crashed with $n rows in the outbox, $CRASH_IN_KAFKA records in Kafka, $CRASH_COMMITTED committed"
    hf_check "$point: rows were left in the outbox" test "$n" -gt 0
    hf_relay_start "$successor" --batch-max 50
    hf_check "$point: $successor drains the outbox" hf_wait_until 60 "the outbox to drain" hf_outbox_empty
    hf_check "$point: Kafka and PostgreSQL agree, nothing twice" hf_relay_verify --expect $((HF_NEXT_SEQ - 1))
}

# "produced": batch 3 is in Kafka but its rows are still in the outbox.
crash_and_recover produced r1 r1
recovered=$(hf_metric "$PORT_r1" holdfast_relay_tail_recovered_total)
hf_log "produced: the restarted relay found $recovered events already in Kafka"
hf_check "produced: the crashed batch was in Kafka, uncommitted" test "$CRASH_IN_KAFKA" -gt "$CRASH_COMMITTED"
hf_check_eq "produced: exactly that batch recovered from the tail, not produced again" \
    $((CRASH_IN_KAFKA - CRASH_COMMITTED)) "$recovered"
hf_stop r1

# "committed": rows deleted, nothing published; another replica takes over after the TTL.
crash_and_recover committed r2 r3
hf_check "committed: r3 took the partitions over from r2" grep -q "taken over from r2" "$HF_RUN/r3.log"
hf_check_eq "committed: Kafka held exactly the committed events" "$CRASH_COMMITTED" "$CRASH_IN_KAFKA"
hf_check_eq "committed: nothing recovered (the commit had happened)" 0 \
    "$(hf_metric "$PORT_r3" holdfast_relay_tail_recovered_total)"
hf_stop r3

# "publishing": killed after part of a batch went to Redis.
crash_and_recover publishing r4 r4
hf_stop r4

sleep 0.5
hf_stop tap
hf_check "Redis: every message at its Kafka offset, chain intact, nothing twice" \
    hf_relay_verify --expect $((HF_NEXT_SEQ - 1)) --tap "$HF_RUN/redis.jsonl" --tap-min 2000
hf_checks_done
