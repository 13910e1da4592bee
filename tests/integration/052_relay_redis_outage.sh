#!/usr/bin/env bash
# Redis is only the fast path (invariant 6, docs/design.md): killed or
# frozen, it never holds up Kafka. While Redis is dead, and while it is
# SIGSTOPped (its sockets stay open, so only the relay's timeouts notice),
# events keep flowing into Kafka and being recorded, skipped publishes are
# counted, and once Redis is back publishing resumes by itself, with every
# message on the chain: the first event of a channel after the outage points
# (prev_offset) at an offset Redis never carried, which is the gap a gateway
# fills from Kafka.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pipeline_start
hf_relay_start r1
hf_wait_until 30 "r1 to lead" hf_relay_leads r1 ||
    hf_die "r1 did not take the partitions"

# Publishes one event and says whether FILE grew: the relay retries Redis at
# most once a second and only when it has something to publish.
redis_flows() {
    local before
    before=$(wc -l <"$1")
    hf_publish_numbered ro 10 1
    sleep 0.3
    (($(wc -l <"$1") > before))
}
lines() { wc -l <"$1"; }

hf_tap_start "$HF_RUN/before.jsonl"
hf_publish_numbered ro 10 200
hf_check "with Redis up, every event reaches it" hf_wait_until 30 "200 messages" \
    bash -c "[[ \$(wc -l <'$HF_RUN/before.jsonl') == 200 ]]"
hf_check_eq "redis_connected is 1" 1 "$(hf_metric "$PORT_r1" holdfast_relay_redis_connected)"
hf_stop tap

# Killed: Kafka keeps moving.
hf_stop redis KILL
hf_publish_numbered ro 10 500
hf_check "Redis dead: events still reach Kafka and are recorded" hf_wait_until 30 "every event relayed" hf_all_relayed
hf_check "Redis dead: skipped publishes are counted" test "$(hf_metric "$PORT_r1" holdfast_relay_redis_skipped_total)" -gt 0
hf_check_eq "redis_connected is 0" 0 "$(hf_metric "$PORT_r1" holdfast_relay_redis_connected)"
hf_check "the relay says Redis is unavailable" grep -q 'publishes skipped until it is back' "$HF_RUN/r1.log"

# Back on the same port: publishing resumes without a restart.
hf_redis_start "$HF_REDIS_PORT"
hf_tap_start "$HF_RUN/after.jsonl"
hf_check "Redis back: publishing resumes by itself" hf_wait_until 30 "messages after the restart" \
    redis_flows "$HF_RUN/after.jsonl"
published_before=$(hf_metric "$PORT_r1" holdfast_relay_redis_published_total)
expect=$(($(lines "$HF_RUN/after.jsonl") + 300))
hf_publish_numbered ro 10 300
hf_check "... and every later event reaches Redis" hf_wait_until 30 "300 more messages" \
    bash -c "[[ \$(wc -l <'$HF_RUN/after.jsonl') == $expect ]]"
hf_check "the relay says Redis is back" grep -q 'is back: publishing resumes' "$HF_RUN/r1.log"
hf_check "published counter moved on" test "$(hf_metric "$PORT_r1" holdfast_relay_redis_published_total)" -gt "$published_before"

# Frozen: connections stay open, replies never come; the timeout keeps Kafka moving.
kill -STOP "$(hf_pid redis)"
skipped_before=$(hf_metric "$PORT_r1" holdfast_relay_redis_skipped_total)
hf_publish_numbered ro 10 500
hf_check "Redis frozen: events still reach Kafka and are recorded" hf_wait_until 60 "every event relayed" hf_all_relayed
hf_check "Redis frozen: skipped publishes are counted" test "$(hf_metric "$PORT_r1" holdfast_relay_redis_skipped_total)" -gt "$skipped_before"
kill -CONT "$(hf_pid redis)"
hf_check "Redis thawed: publishing resumes" hf_wait_until 30 "messages after the thaw" \
    redis_flows "$HF_RUN/after.jsonl"
sleep 0.5
hf_stop tap

cat "$HF_RUN/before.jsonl" "$HF_RUN/after.jsonl" >"$HF_RUN/redis.jsonl"
hf_check "Kafka complete and ordered; every Redis message on the chain" \
    hf_relay_verify --expect $((HF_NEXT_SEQ - 1)) --tap "$HF_RUN/redis.jsonl" --tap-min 500
gaps=$(python3 - "$HF_RUN/redis.jsonl" <<'PY'
import json, sys
last, gaps = {}, 0
for m in map(json.loads, open(sys.argv[1])):
    ch = m["channel"]
    if ch in last and m["prev_offset"] != last[ch]:
        gaps += 1
    last[ch] = m["offset"]
print(gaps)
PY
)
hf_log "Redis carried $(wc -l <"$HF_RUN/redis.jsonl") of $((HF_NEXT_SEQ - 1)) events; $gaps channel gaps visible by prev_offset"
hf_check "the outage shows as gaps a gateway can see" test "$gaps" -gt 0
hf_checks_done
