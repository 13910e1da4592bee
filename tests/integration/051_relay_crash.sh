#!/usr/bin/env bash
# A relay killed at each point of its pipeline (invariant 4,
# docs/design.md): once Kafka acknowledged a batch but before Redis or
# PostgreSQL got it ("produced"), in the middle of publishing it to Redis
# ("publishing"), after publishing it but before recording its offsets
# ("published": Redis is ahead of PostgreSQL), when a batch completes while
# a commit is under way ("overlap"), and right after a commit ("committed").
# Each time the next relay (the same id restarting, or a standby after the
# TTL) reads each partition's Kafka tail from its recorded position first,
# records what it finds there without producing it again, and skips those
# events when the slot sends them again. In the end: every event in Kafka
# exactly once, in order, offsets recorded; on Redis the prev_offset chain
# intact, and an event repeated only with the same offsets (gateways drop it
# by offset).
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pipeline_start
hf_tap_start "$HF_RUN/redis.jsonl"

gone() { ! hf_alive "$1"; }
recorded() { hf_psql -c "SELECT count(*) FROM holdfast.event_offsets"; }
in_kafka() { timeout 30 kcat -C -b "$HF_KAFKA_BROKERS" -t holdfast.events -o beginning -e -q -f 'x\n' | wc -l; }

crash_and_recover() { # crash_and_recover POINT CRASHER SUCCESSOR [EXTRA FLAGS]
    local point=$1 crasher=$2 successor=$3 recovered port
    shift 3
    hf_publish_numbered cr 20 800
    hf_relay_spawn "$crasher" --batch-max 50 --crash-at "$point:3" "$@"
    hf_wait_until 60 "$crasher to crash at $point" gone "$crasher" || hf_die "$crasher did not crash"
    hf_wait_exit "$crasher"
    hf_check_eq "$point: the relay died by SIGKILL" 137 "$HF_EXIT_STATUS"
    hf_check "$point: it died where asked" grep -q "crash-at $point:3" "$HF_RUN/$crasher.log"
    CRASH_RECORDED=$(recorded)
    CRASH_IN_KAFKA=$(in_kafka)
    hf_psql -c "SELECT event_id FROM holdfast.event_offsets" | sort >"$HF_RUN/recorded.$point"
    sleep 0.3 # the tap writes what Redis delivered before the crash
    cp "$HF_RUN/redis.jsonl" "$HF_RUN/redis.$point"
    hf_log "$point: crashed with $CRASH_IN_KAFKA records in Kafka, $CRASH_RECORDED recorded, $(hf_unrelayed) events unrelayed"
    hf_check "$point: events were left unrelayed" test "$(hf_unrelayed)" -gt 0
    hf_relay_start "$successor" --batch-max 50
    hf_check "$point: $successor relays the rest" hf_wait_until 60 "every event relayed" hf_all_relayed
    port=PORT_$successor
    recovered=$(hf_metric "${!port}" holdfast_relay_tail_recovered_total)
    hf_log "$point: $successor found $recovered events already in Kafka"
    hf_check_eq "$point: what Kafka held unrecorded was recorded from the tail, not produced again" \
        $((CRASH_IN_KAFKA - CRASH_RECORDED)) "$recovered"
    hf_check "$point: Kafka and PostgreSQL agree, nothing twice" hf_relay_verify --expect $((HF_NEXT_SEQ - 1))
}

# "produced": acknowledged, neither published nor recorded.
crash_and_recover produced r1 r1
hf_check "produced: the crashed batch was in Kafka, unrecorded" test "$CRASH_IN_KAFKA" -gt "$CRASH_RECORDED"
hf_stop r1

# "published": on Redis before PostgreSQL recorded it; a standby takes over after the TTL.
crash_and_recover published r2 r3
hf_check "published: r3 took over from r2" grep -q "taken over from r2" "$HF_RUN/r3.log"
ahead=$(python3 - "$HF_RUN/redis.published" "$HF_RUN/recorded.published" <<'PY'
import json, sys
recorded = set(l.strip() for l in open(sys.argv[2]))
print(sum(1 for m in map(json.loads, open(sys.argv[1])) if m["id"] not in recorded))
PY
)
hf_log "published: $ahead Redis messages were ahead of PostgreSQL at the crash"
hf_check "published: Redis had events PostgreSQL had not recorded yet" test "$ahead" -gt 0
hf_stop r3

# "overlap": a batch completed while the previous commit was under way.
crash_and_recover overlap r4 r4 --commit-interval 1ms
hf_stop r4

# "committed": right after a commit.
crash_and_recover committed r5 r5 --commit-interval 1ms
hf_stop r5

# "publishing": killed after part of a batch went to Redis.
crash_and_recover publishing r6 r6
hf_stop r6

sleep 0.5
hf_stop tap
hf_check "Redis: every message at its Kafka offset, chain intact, repeats only with the same offsets" \
    hf_relay_verify --expect $((HF_NEXT_SEQ - 1)) --tap "$HF_RUN/redis.jsonl" --tap-min 3000
hf_checks_done
