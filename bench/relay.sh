#!/usr/bin/env bash
# relay.sh - the relay against ingest, on one machine and in one run:
#
#   bench/relay.sh [BUILD_DIR] [BEHIND] [RATE] [SECONDS]
#   e.g. bench/relay.sh build 200000 1000 10
#
# PostgreSQL with its durable defaults (fsync on) and pg_stat_statements,
# Redis, the dev Kafka broker (8 partitions), ingest, one relay.
#   1. Ingest's batched throughput: wrk POSTs batches of 100 events from 32
#      connections for SECONDS, the relay relaying meanwhile (events/s
#      committed, 2xx only).
#   2. The relay's throughput: with the relay stopped, BEHIND events are
#      committed over 1,000 channels in transactions of 100 (as ingest's
#      batches commit); the clock runs from the relay's first recorded
#      event (its start-up is not throughput) until every event has its
#      offset recorded in PostgreSQL, and until holdfast-tap has received
#      every one from Redis. Its ratio to (1) says whether one relay keeps
#      up with ingest. Then the same with BEHIND events in one transaction
#      (logical decoding holds a transaction until its commit: the worst
#      case for the stream).
#   3. Commit -> Redis latency with those BEHIND events relayed before:
#      pgbench calls holdfast.publish() at RATE events/s for SECONDS, one
#      transaction each; latency = arrival at holdfast-tap - the event's
#      insert time in PostgreSQL (clock_timestamp() in the committing
#      statement), same clock. pg_stat_statements gives what the relay's
#      statements cost per call meanwhile (its read of new events is no
#      statement: the slot streams them).
# Writes bench/results/relay.json.
set -euo pipefail
BUILD=${1:-build}
BEHIND=${2:-200000}
RATE=${3:-1000}
SECONDS_RUN=${4:-10}
source "$(dirname "$0")/lib.sh"
command -v wrk >/dev/null || hf_die "wrk is needed (apt-get install wrk)"

hf_pg_start "" shared_preload_libraries=pg_stat_statements max_connections=300
hf_migrate
hf_psql -c "CREATE EXTENSION pg_stat_statements" >/dev/null
hf_redis_start
hf_kafka_start 8 holdfast.events
RELAY_PORT=$(hf_free_port)
relay_start() {
    hf_relay_launch relay "$RELAY_PORT" --redis-url "$HF_REDIS_URL" --relay-id bench
}
# The relay's own count of events recorded since it started (a cheap poll:
# counting rows in PostgreSQL would load the machine being measured).
relay_recorded_at_least() {
    local n
    n=$(hf_metric "$RELAY_PORT" holdfast_relay_commit_events_sum 2>/dev/null) || return 1
    awk -v n="$n" -v want="$1" 'BEGIN { exit !(n + 0 >= want) }'
}
relay_start
hf_wait_until 30 "the relay to lead" hf_relay_leads bench || hf_die "relay did not start"
hf_ingest_start "" --writers 4 --publish-rate 0

# --- 1. ingest, batches of 100, 32 connections ---
batch=$(python3 -c 'import json; print(json.dumps([{"channel":"bench:%d" % (i % 10),"data":{"n":i,"text":"hello holdfast"}} for i in range(100)]))')
cat >"$HF_RUN/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[$batch]==]
LUA
hf_log "ingest: batches of 100 from 32 connections for $SECONDS_RUN s"
wrk -t 2 -c 32 -d "${SECONDS_RUN}s" -s "$HF_RUN/post.lua" "$HF_INGEST_URL/v1/events" >"$HF_RUN/wrk.out"
ingest_rate=$(awk '/ requests in / {n = $1; t = $4 + 0} /^  Non-2xx/ {bad = $NF}
    END {printf "%.0f\n", (n - bad) * 100 / t}' "$HF_RUN/wrk.out")
hf_wait_until 300 "ingest's events relayed" hf_all_relayed || hf_die "the relay fell behind"

# --- 2. the relay, BEHIND events waiting ---
# backlog TXN_SIZE: BEHIND events over 1,000 channels, committed in
# transactions of TXN_SIZE while the relay is stopped.
backlog() {
    python3 - "$BEHIND" "$1" "$HF_NEXT_SEQ" >"$HF_RUN/backlog.sql" <<'PY'
import sys
n, size, seq = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
q = ("SELECT count(*) FROM holdfast._append(array(SELECT 'bench:' || (g %% 1000) FROM generate_series(%d, %d) g),"
     " array_fill(NULL::text, ARRAY[%d]), array(SELECT convert_to('{\"seq\":' || g || '}', 'UTF8')"
     " FROM generate_series(%d, %d) g), NULL, NULL);")
for s in range(seq, seq + n, size):
    e = min(s + size, seq + n) - 1
    print(q % (s, e, e - s + 1, s, e))
PY
    HF_NEXT_SEQ=$((HF_NEXT_SEQ + BEHIND))
    hf_stop relay
    hf_psql -q -f "$HF_RUN/backlog.sql" >/dev/null
}
# drain: starts the relay; DRAIN_RECORDED and DRAIN_REDIS are the seconds
# until every event was recorded and on Redis, timed from its first
# recorded event (its start-up is not throughput).
drain() {
    "$HF_BIN/holdfast-tap" --redis-url "$HF_REDIS_URL" --count "$BEHIND" --timeout 120s \
        --out /dev/null 2>"$HF_RUN/tap.err" &
    local tap=$! t0 t1 t2
    hf_wait_until 10 "holdfast-tap" grep -q '^ready' "$HF_RUN/tap.err" || hf_die "holdfast-tap did not start"
    relay_start
    hf_wait_until 60 "the relay's first record" relay_recorded_at_least 1 || hf_die "the relay did not start"
    t0=$(date +%s.%N)
    hf_wait_until 600 "$BEHIND events recorded" relay_recorded_at_least "$BEHIND" ||
        hf_die "the relay did not catch up"
    t1=$(date +%s.%N)
    wait "$tap" || hf_die "holdfast-tap did not receive all $BEHIND events"
    t2=$(date +%s.%N)
    DRAIN_RECORDED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    DRAIN_REDIS=$(awk -v a="$t0" -v b="$t2" 'BEGIN { printf "%.3f", b - a }')
}
hf_log "the relay against $BEHIND events committed 100 per transaction, as ingest's batches"
backlog 100
drain
batched_recorded=$DRAIN_RECORDED batched_redis=$DRAIN_REDIS
hf_log "the relay against $BEHIND events committed in one transaction"
backlog "$BEHIND"
drain
one_recorded=$DRAIN_RECORDED

# --- 3. commit -> Redis at RATE events/s, BEHIND events behind ---
hf_psql -c "SELECT pg_stat_statements_reset()" >/dev/null
total=$((RATE * SECONDS_RUN))
"$HF_BIN/holdfast-tap" --redis-url "$HF_REDIS_URL" --count "$total" --timeout 30s \
    --out "$HF_RUN/latency.jsonl" 2>"$HF_RUN/tap.err" &
TAP_PID=$!
hf_wait_until 10 "holdfast-tap" grep -q '^ready' "$HF_RUN/tap.err" || hf_die "holdfast-tap did not start"
cat >"$HF_RUN/publish.sql" <<'SQL'
\set c random(1, 1000)
SELECT holdfast.publish('lat:' || :c, '{"n":1,"text":"hello holdfast"}'::jsonb);
SQL
hf_log "publishing $RATE events/s for $SECONDS_RUN s (pgbench, holdfast.publish())"
pgbench -n -h 127.0.0.1 -p "$HF_PG_PORT" -U holdfast -c 4 -j 2 -R "$RATE" -t $((total / 4)) \
    -f "$HF_RUN/publish.sql" holdfast >"$HF_RUN/pgbench.out" 2>&1 ||
    hf_die "pgbench failed: $(tail -3 "$HF_RUN/pgbench.out")"
wait "$TAP_PID" || hf_die "holdfast-tap did not receive all $total events"
hf_psql -F $'\t' -c "SELECT CASE WHEN query ~ '^COPY' THEN 'copy_event_offsets'
        WHEN query ~ 'relay_commit' THEN 'relay_commit'
        WHEN query ~ 'event_offsets o' THEN 'chain_fill'
        WHEN query ~ 'relay_lease_tick' THEN 'lease_tick' END, sum(calls),
        round((sum(total_exec_time) / sum(calls))::numeric, 4)
    FROM pg_stat_statements WHERE query ~ '^COPY holdfast.event_offsets|relay_commit|FROM holdfast.event_offsets o|relay_lease_tick'
    GROUP BY 1" >"$HF_RUN/statements.tsv"

python3 - "$HF_RUN/latency.jsonl" "$BEHIND" "$batched_recorded" "$batched_redis" "$one_recorded" "$RATE" "$ingest_rate" \
    "$HF_RUN/statements.tsv" "$RESULTS/relay.json" <<'PY'
import json, sys
path, behind, rec, redis, one_rec, rate, ingest_rate, stmts, out = sys.argv[1:]
lat = sorted((j["recv_us"] - j["ts_us"]) / 1000.0 for j in map(json.loads, open(path)) if "recv_us" in j)
def pct(p): return lat[min(len(lat) - 1, int(p / 100.0 * len(lat)))]
behind, rec, redis, one_rec, ingest_rate = int(behind), float(rec), float(redis), float(one_rec), float(ingest_rate)
statements = {}
for line in open(stmts):
    name, calls, ms = line.rstrip("\n").split("\t")
    if name:
        statements[name] = {"calls": int(calls), "mean_ms": float(ms)}
relay_rate = behind / rec
res = {
    "ingest_batched_events_per_s": round(ingest_rate),
    "relay_events": behind,
    "relay_recorded_events_per_s": round(relay_rate),
    "relay_to_redis_events_per_s": round(behind / redis),
    "relay_over_ingest": round(relay_rate / ingest_rate, 3),
    "relay_one_transaction_events_per_s": round(behind / one_rec),
    "latency_rate_events_per_s": int(rate),
    "latency_samples": len(lat),
    "events_behind": behind,
    "commit_to_redis_ms": {"p50": round(pct(50), 2), "p90": round(pct(90), 2),
                           "p99": round(pct(99), 2), "max": round(lat[-1], 2)},
    "relay_statements": statements,
}
json.dump(res, open(out, "w"), indent=2)
print("ingest, batches of 100, 32 connections: %d events/s committed" % ingest_rate)
print("relay: %d events (100 per transaction) recorded in %.2f s (%d ev/s), all on Redis after %.2f s; %.2f x ingest"
      % (behind, rec, relay_rate, redis, relay_rate / ingest_rate))
print("relay: %d events in one transaction recorded in %.2f s (%d ev/s: decoding holds a large transaction until its commit)"
      % (behind, one_rec, behind / one_rec))
print("commit-to-Redis at %d ev/s with %d events behind (%d samples): p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms"
      % (int(rate), behind, len(lat), pct(50), pct(90), pct(99), lat[-1]))
for name, s in sorted(statements.items()):
    print("  relay statement %-20s %6d calls, %.3f ms each" % (name, s["calls"], s["mean_ms"]))
PY
echo "reproduce: bench/relay.sh $BUILD $BEHIND $RATE $SECONDS_RUN"
