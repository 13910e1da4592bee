#!/usr/bin/env bash
# holdfast-replay against the real log: a known numbered sequence on five
# channels, relayed into the dev broker; each channel replayed from its
# first, a middle and its last offset, past the end and out of range, by
# time, with --to-offset and --limit, with --follow while new events
# arrive, re-delivered to Redis marked as replays; a whole partition
# compared record for record with kcat; every documented error exit.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"
REPLAY="$HF_BIN/holdfast-replay"

hf_pipeline_start
hf_relay_start r1
hf_publish_numbered rp 5 600
hf_check "the relay moves 600 events" hf_wait_until 60 "every event relayed" hf_all_relayed

replay() { "$REPLAY" --kafka-brokers "$HF_KAFKA_BROKERS" --quiet "$@"; }
# expected CHANNEL FROM [TO]: "offset seq id" of the channel's events from PostgreSQL.
expected() {
    hf_psql -F ' ' -c "SELECT kafka_offset, convert_from(payload, 'UTF8')::jsonb->>'seq', id FROM holdfast.event_log
        WHERE channel = '$1' AND kafka_offset >= $2 AND kafka_offset <= ${3:-9223372036854775807} ORDER BY kafka_offset"
}
got() { python3 -c '
import json, sys
for l in sys.stdin:
    m = json.loads(l)
    print(m["offset"], m["data"]["seq"], m["id"])'; }
# chain_ok FIRST_PREV: every prev_offset is the previous line's offset; the first is FIRST_PREV.
chain_ok() { python3 -c '
import json, sys
prev = None if sys.argv[1] == "null" else int(sys.argv[1])
for l in sys.stdin:
    m = json.loads(l)
    if m["prev_offset"] != prev or m["type"] != "event" or m["partition"] != int(sys.argv[2]):
        sys.exit("offset %d: prev_offset %s, expected %s" % (m["offset"], m["prev_offset"], prev))
    prev = m["offset"]' "$@"; }

for c in 0 1 2 3 4; do
    ch=rp:$c
    part=$(hf_psql -c "SELECT holdfast.partition_for('$ch')")
    mapfile -t offs < <(hf_psql -c "SELECT kafka_offset FROM holdfast.event_log WHERE channel = '$ch' ORDER BY kafka_offset")
    first=${offs[0]} mid=${offs[60]} last=${offs[-1]} prev_mid=${offs[59]}
    replay --channel "$ch" >"$HF_RUN/all.$c" 2>"$HF_RUN/err.$c"
    hf_check_eq "$ch: whole history equals PostgreSQL" "$(expected "$ch" 0)" "$(got <"$HF_RUN/all.$c")"
    hf_check "$ch: prev_offset chain from -1" chain_ok -1 "$part" <"$HF_RUN/all.$c"
    hf_check_eq "$ch: every record carries the epoch it was produced in" \
        "$(hf_psql -c "SELECT epoch FROM holdfast.meta")" \
        "$(python3 -c 'import json, sys; print(*sorted({json.loads(l)["epoch"] for l in sys.stdin}))' <"$HF_RUN/all.$c")"
    hf_check_eq "$ch: from its first offset" "$(expected "$ch" "$first")" \
        "$(replay --channel "$ch" --from-offset "$first" | got)"
    replay --channel "$ch" --from-offset "$mid" --pg-url "$HF_PG_URL" >"$HF_RUN/mid.$c"
    hf_check_eq "$ch: from a middle offset" "$(expected "$ch" "$mid")" "$(got <"$HF_RUN/mid.$c")"
    hf_check "$ch: ... first prev_offset found in PostgreSQL" chain_ok "$prev_mid" "$part" <"$HF_RUN/mid.$c"
    hf_check "$ch: ... and null without it" bash -c "'$REPLAY' --kafka-brokers '$HF_KAFKA_BROKERS' --quiet \
        --channel '$ch' --from-offset '$mid' --limit 1 | grep -q '\"prev_offset\":null'"
    hf_check_eq "$ch: from its last offset: one event" "$(expected "$ch" "$last")" \
        "$(replay --channel "$ch" --from-offset "$last" | got)"
    hf_check_eq "$ch: --to-offset is inclusive" "$(expected "$ch" "$first" "$mid")" \
        "$(replay --channel "$ch" --to-offset "$mid" | got)"
    hf_check_eq "$ch: --limit 7" "$(expected "$ch" "$mid" | head -n 7)" \
        "$(replay --channel "$ch" --from-offset "$mid" --limit 7 | got)"
done

# Two channels of one partition, read in one pass.
read -r pa pb < <(hf_psql -F ' ' -c "SELECT min(c), max(c) FROM (SELECT 'pair:' || g AS c,
    holdfast.partition_for('pair:' || g) AS p FROM generate_series(1, 40) g) x GROUP BY p
    HAVING count(*) >= 2 ORDER BY p LIMIT 1")
hf_psql -c "SELECT holdfast.publish(CASE WHEN g % 2 = 0 THEN '$pa' ELSE '$pb' END, ('{\"seq\":' || g || '}')::jsonb)
    FROM generate_series(1, 60) g" >/dev/null
hf_check "the pair is relayed" hf_wait_until 30 "every event relayed" hf_all_relayed
hf_check_eq "--channel $pa,$pb: both channels, one pass, in offset order" \
    "$(hf_psql -F ' ' -c "SELECT kafka_offset, convert_from(payload, 'UTF8')::jsonb->>'seq', id FROM holdfast.event_log
        WHERE channel IN ('$pa', '$pb') ORDER BY kafka_offset")" \
    "$(replay --channel "$pa,$pb" | got)"
hf_check "... each with its own prev_offset chain" bash -c "'$REPLAY' --kafka-brokers '$HF_KAFKA_BROKERS' --quiet \
    --channel '$pa,$pb' | python3 -c '
import json, sys
last = {}
for l in sys.stdin:
    m = json.loads(l)
    assert m[\"prev_offset\"] == last.get(m[\"channel\"], -1), m
    last[m[\"channel\"]] = m[\"offset\"]'"

# Past the end and out of range (partition of rp:0).
ch=rp:0
part=$(hf_psql -c "SELECT holdfast.partition_for('$ch')")
end=$(($(hf_psql -c "SELECT max(kafka_offset) FROM holdfast.event_log WHERE partition = $part") + 1))
rc=0
out=$(replay --channel "$ch" --from-offset "$end") || rc=$?
hf_check_eq "from the end offset: nothing, exit 0" "0:" "$rc:$out"
rc=0
replay --channel "$ch" --from-offset $((end + 5)) >/dev/null 2>"$HF_RUN/err" || rc=$?
hf_check_eq "past the end: exit 4" 4 "$rc"
hf_check "... naming the valid range" grep -q "Kafka holds offsets 0..$((end - 1))" "$HF_RUN/err"

# By time: the first event created at or after the 100th event's time.
t=$(hf_psql -c "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
    FROM holdfast.event_log WHERE channel = '$ch' ORDER BY kafka_offset OFFSET 99 LIMIT 1")
from=$(hf_psql -c "SELECT min(kafka_offset) FROM holdfast.event_log WHERE channel = '$ch' AND created_at >= '$t'")
hf_check_eq "--from-time $t" "$(expected "$ch" "$from")" \
    "$(replay --channel "$ch" --from-time "$t" --pg-url "$HF_PG_URL" | got)"
hf_check_eq "--from-time after everything: nothing" "" \
    "$(replay --channel "$ch" --from-time 2999-01-01T00:00:00Z --pg-url "$HF_PG_URL" | got)"

# A whole partition, record for record against kcat.
replay --partition "$part" | python3 -c '
import json, sys
for l in sys.stdin:
    m = json.loads(l)
    print(m["offset"], m["channel"], m["id"])' >"$HF_RUN/replay.part"
timeout 30 kcat -C -b "$HF_KAFKA_BROKERS" -t holdfast.events -p "$part" -o beginning -e -q \
    -f '%o %k %h\n' | sed 's/ hf-id=\([^,]*\).*/ \1/' >"$HF_RUN/kcat.part"
hf_check "kcat and --partition $part agree ($(wc -l <"$HF_RUN/kcat.part") records)" \
    diff "$HF_RUN/kcat.part" "$HF_RUN/replay.part"

# --follow sees new events, and SIGTERM ends it with exit 0.
"$REPLAY" --kafka-brokers "$HF_KAFKA_BROKERS" --quiet --channel rp:1 --follow \
    --from-offset "$(hf_psql -c "SELECT max(kafka_offset) + 1 FROM holdfast.event_log WHERE partition = holdfast.partition_for('rp:1')")" \
    >"$HF_RUN/follow" 2>&1 &
follow_pid=$!
sleep 1
hf_psql -c "SELECT holdfast.publish('rp:1', ('{\"seq\":' || g || '}')::jsonb) FROM generate_series(9001, 9010) g" >/dev/null
hf_check "--follow prints the 10 new events" hf_wait_until 30 "10 followed events" \
    bash -c "[[ \$(grep -c '\"channel\":\"rp:1\"' '$HF_RUN/follow') == 10 ]]"
kill -TERM "$follow_pid"
rc=0
wait "$follow_pid" || rc=$?
hf_check_eq "--follow ends with exit 0 on SIGTERM" 0 "$rc"
hf_check_eq "... in order" "$(seq 9001 9010)" "$(python3 -c '
import json, sys
for l in open(sys.argv[1]): print(json.loads(l)["data"]["seq"])' "$HF_RUN/follow")"

# --republish-to: the range goes to Redis again, marked as a replay.
hf_tap_start "$HF_RUN/redis.jsonl" --pattern 'hf:rp:2'
replay --channel rp:2 --limit 50 --republish-to "$HF_REDIS_URL" --pg-url "$HF_PG_URL" >"$HF_RUN/rep"
hf_check "republished: the tap gets 50 messages" hf_wait_until 10 "50 republished messages" \
    bash -c "[[ \$(wc -l <'$HF_RUN/redis.jsonl') == 50 ]]"
hf_stop tap
hf_check_eq "every republished message is marked replay" 50 "$(grep -c '"replay":true' "$HF_RUN/redis.jsonl")"
hf_check_eq "... at the offsets the log has" "$(python3 -c '
import json, sys
for l in open(sys.argv[1]): print(json.loads(l)["offset"])' "$HF_RUN/rep")" "$(python3 -c '
import json, sys
for l in open(sys.argv[1]): print(json.loads(l)["offset"])' "$HF_RUN/redis.jsonl")"

# Errors, each with its exit code.
expect_exit() { # expect_exit CODE GREP ARGS...
    local code=$1 pattern=$2 rc=0
    shift 2
    "$REPLAY" --quiet "$@" >/dev/null 2>"$HF_RUN/err" || rc=$?
    hf_check_eq "exit $code for $*" "$code" "$rc"
    hf_check "... says '$pattern'" grep -q "$pattern" "$HF_RUN/err"
}
expect_exit 5 "unknown channel rp:none" --kafka-brokers "$HF_KAFKA_BROKERS" --channel rp:none --pg-url "$HF_PG_URL"
expect_exit 2 "channel" --kafka-brokers "$HF_KAFKA_BROKERS" --channel 'bad/name'
expect_exit 2 "exactly one of --channel or --partition" --kafka-brokers "$HF_KAFKA_BROKERS"
p0=$(hf_psql -c "SELECT holdfast.partition_for('rp:0')")
other=$(hf_psql -c "SELECT 'x:' || g FROM generate_series(1, 40) g WHERE holdfast.partition_for('x:' || g) <> $p0 LIMIT 1")
expect_exit 2 "live in different partitions" --kafka-brokers "$HF_KAFKA_BROKERS" --channel "rp:0,$other"
expect_exit 2 "needs --pg-url" --kafka-brokers "$HF_KAFKA_BROKERS" --channel rp:0 --from-time 2020-01-01T00:00:00Z
expect_exit 2 "postgres" --kafka-brokers "$HF_KAFKA_BROKERS" --channel rp:0 --from-time yesterday-ish --pg-url "$HF_PG_URL"
expect_exit 4 "partition 99 out of range: valid 0..7" --kafka-brokers "$HF_KAFKA_BROKERS" --partition 99
# (A missing topic cannot be shown here: the dev broker creates any topic a
# metadata request names. Against Kafka it is exit 3, "does not exist".)
expect_exit 3 "kafka unreachable" --kafka-brokers "127.0.0.1:$(hf_free_port)" --partition 0
hf_checks_done
