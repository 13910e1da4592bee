#!/usr/bin/env bash
# An event Kafka refuses for good (here: larger than the relay's
# message.max.bytes) is retried --dead-letter-after times, then moved to
# holdfast.dead_letters with the reason, counted, and logged; it does not
# block its partition, the channel's later events are delivered, and the
# channel's prev_offset chain goes straight from the event before it to the
# event after it (the dead letter never had an offset, so no gateway waits
# for it). Nothing is dead-lettered for being in a batch with it.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pipeline_start
hf_tap_start "$HF_RUN/redis.jsonl"
hf_relay_start r1 --message-max-bytes 2000 --dead-letter-after 3 --backoff-max 500ms

# dl:a gets seq 1..30 with seq 15 oversized; dl:b 30 small events alongside.
hf_psql -c "SELECT count(*) FROM holdfast._append(
    array(SELECT CASE WHEN g % 2 = 0 THEN 'dl:a' ELSE 'dl:b' END FROM generate_series(0, 59) g),
    array_fill(NULL::text, ARRAY[60]),
    array(SELECT convert_to(CASE WHEN g = 28
        THEN '{\"seq\":' || (g / 2 + 1) || ',\"pad\":\"' || repeat('x', 5000) || '\"}'
        ELSE '{\"seq\":' || (g / 2 + 1) || '}' END, 'UTF8') FROM generate_series(0, 59) g),
    NULL, NULL)" >/dev/null
big=$(hf_psql -c "SELECT id FROM holdfast.events WHERE length(payload) > 5000")

hf_check "every event is relayed or dead-lettered" hf_wait_until 60 "every event relayed" hf_all_relayed
hf_check_eq "one dead letter" 1 "$(hf_psql -c "SELECT count(*) FROM holdfast.dead_letters")"
hf_check_eq "it is the oversized event" "$big" "$(hf_psql -c "SELECT event_id FROM holdfast.dead_letters")"
hf_check_eq "after 3 attempts" 3 "$(hf_psql -c "SELECT attempts FROM holdfast.dead_letters")"
hf_check "the reason is Kafka's" grep -qi 'too large' <<<"$(hf_psql -c "SELECT reason FROM holdfast.dead_letters")"
hf_check "channel and partition recorded" test -n "$(hf_psql -c "SELECT 1 FROM holdfast.dead_letters
    WHERE channel = 'dl:a' AND partition = holdfast.partition_for('dl:a')")"
hf_check "the relay logs it" grep -q "event $big dead-lettered" "$HF_RUN/r1.log"
hf_check_eq "dead_letters_total is 1" 1 \
    "$(curl -fsS "http://127.0.0.1:$PORT_r1/metrics" | sed -n 's/^holdfast_relay_dead_letters_total //p')"
hf_check_eq "the dead letter has no offset" "" "$(hf_psql -c "SELECT kafka_offset FROM holdfast.event_log WHERE id = '$big'")"
hf_check "the tap saw the other 59" hf_wait_until 20 "59 messages" bash -c "[[ \$(wc -l <'$HF_RUN/redis.jsonl') == 59 ]]"
hf_stop tap
hf_check "everything else exactly once, in order, chain skipping the dead letter" \
    hf_relay_verify --expect 60 --tap "$HF_RUN/redis.jsonl" --tap-complete
after=$(python3 -c '
import json, sys
ms = [m for m in map(json.loads, open(sys.argv[1])) if m["channel"] == "dl:a"]
i = next(i for i, m in enumerate(ms) if m["data"]["seq"] == 16)
print(ms[i]["prev_offset"] == ms[i - 1]["offset"] and ms[i - 1]["data"]["seq"] == 14)' "$HF_RUN/redis.jsonl")
hf_check_eq "dl:a seq 16 chains to seq 14" True "$after"
hf_checks_done
