#!/usr/bin/env bash
# relay.sh - the relay's throughput (events/s from the outbox to Kafka and
# Redis) and its commit-to-Redis latency at a steady publish rate.
#
#   bench/relay.sh [BUILD_DIR] [EVENTS] [RATE] [SECONDS]
#   e.g. bench/relay.sh build 50000 1000 10
#
# PostgreSQL with its durable defaults (fsync on), Redis, the dev Kafka
# broker (8 partitions), one relay. Latency first, on a fresh database:
# pgbench calls holdfast.publish() at RATE events/s for SECONDS, one
# transaction each; holdfast-tap, subscribed to every channel, records each
# event's arrival; latency = arrival - the event's insert time in
# PostgreSQL (clock_timestamp() inside the committing statement, so the
# commit itself is included), same machine, same clock. Then throughput:
# EVENTS committed in one transaction over 1,000 channels; the clock runs
# from that commit until the outbox is empty and holdfast-tap has received
# every event from Redis. Writes bench/results/relay.json.
set -euo pipefail
BUILD=${1:-build}
EVENTS=${2:-50000}
RATE=${3:-1000}
SECONDS_RUN=${4:-10}
HF_BIN=$(cd "$BUILD" && pwd)/bin
source "$(dirname "$0")/../tests/support/lib.sh"
hf_init "$(mktemp -d /tmp/holdfast-bench.XXXXXX)"
trap 'hf_stop_all; rm -rf "$HF_RUN"' EXIT
command -v pgbench >/dev/null || PATH=$HF_PG_BIN:$PATH

hf_bench_pipeline_start

tap_start() { # tap_start FILE COUNT
        "$HF_BIN/holdfast-tap" --redis-url "$HF_REDIS_URL" --count "$2" --timeout 30s --out "$1" \
        2>"$HF_RUN/tap.err" &
    TAP_PID=$!
    hf_wait_until 10 "holdfast-tap" grep -q '^ready' "$HF_RUN/tap.err" || hf_die "holdfast-tap did not start"
}

# --- latency at a steady rate ---
total=$((RATE * SECONDS_RUN))
tap_start "$HF_RUN/latency.jsonl" "$total"
cat >"$HF_RUN/publish.sql" <<'SQL'
\set c random(1, 1000)
SELECT holdfast.publish('bench:' || :c, '{"n":1,"text":"hello holdfast"}'::jsonb);
SQL
hf_log "publishing $RATE events/s for $SECONDS_RUN s (pgbench)"
pgbench -n -h 127.0.0.1 -p "$HF_PG_PORT" -U holdfast -c 4 -j 2 -R "$RATE" -t $((total / 4)) \
    -f "$HF_RUN/publish.sql" holdfast >"$HF_RUN/pgbench.out" 2>&1 || hf_die "pgbench failed: $(tail -3 "$HF_RUN/pgbench.out")"
wait "$TAP_PID" || hf_die "holdfast-tap did not receive all $total events"

# --- throughput ---
tap_start "$HF_RUN/throughput.jsonl" "$EVENTS"
hf_log "committing $EVENTS events in one transaction"
hf_publish_numbered bench 1000 "$EVENTS"
t0=$(date +%s.%N)
hf_wait_until 300 "the outbox to drain" hf_outbox_empty || hf_die "outbox did not drain"
t_kafka=$(date +%s.%N)
wait "$TAP_PID" || hf_die "holdfast-tap did not receive all $EVENTS events"
t_redis=$(date +%s.%N)
received=$(wc -l <"$HF_RUN/throughput.jsonl")

mkdir -p "$(dirname "$0")/results"
python3 - "$HF_RUN/latency.jsonl" "$EVENTS" "$t0" "$t_kafka" "$t_redis" "$received" "$RATE" \
    "$(dirname "$0")/results/relay.json" <<'PY'
import json, sys
path, events, t0, tk, tr, received, rate, out = sys.argv[1:]
lat = sorted((j["recv_us"] - j["ts_us"]) / 1000.0 for j in map(json.loads, open(path)) if "recv_us" in j)
def pct(p): return lat[min(len(lat) - 1, int(p / 100.0 * len(lat)))]
events, t0, tk, tr = int(events), float(t0), float(tk), float(tr)
res = {
    "throughput_events": events,
    "outbox_to_kafka_events_per_s": round(events / (tk - t0)),
    "outbox_to_redis_events_per_s": round(events / (tr - t0)),
    "redis_received": int(received),
    "latency_rate_events_per_s": int(rate),
    "latency_samples": len(lat),
    "commit_to_redis_ms": {"p50": round(pct(50), 2), "p90": round(pct(90), 2),
                           "p99": round(pct(99), 2), "max": round(lat[-1], 2)},
}
json.dump(res, open(out, "w"), indent=2)
print("relay throughput: %d events in %.2f s to Kafka (%d ev/s), %.2f s until all on Redis (%d ev/s)"
      % (events, tk - t0, res["outbox_to_kafka_events_per_s"], tr - t0, res["outbox_to_redis_events_per_s"]))
print("commit-to-Redis latency at %d ev/s (%d samples): p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms"
      % (int(rate), len(lat), pct(50), pct(90), pct(99), lat[-1]))
PY
echo "reproduce: bench/relay.sh $BUILD $EVENTS $RATE $SECONDS_RUN"
