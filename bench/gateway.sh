#!/usr/bin/env bash
# gateway.sh - the gateway's numbers: connections and memory, fan-out,
# end-to-end latency, and a Redis kill under load.
#
#   bench/gateway.sh [BUILD_DIR] [CLIENTS] [RATE] [SECONDS]
#   e.g. bench/gateway.sh build 10000 1000 10
#
# PostgreSQL (fsync on), Redis, the dev Kafka broker (8 partitions), one
# relay, two gateways, all on this machine; clients are holdfast-loadgen
# (one process, one libwebsockets thread). Events are published with
# pgbench calling holdfast.publish(), one transaction each; latency is a
# client's receive time minus the event's commit time in PostgreSQL
# (ts_us), same clock.
#   1. capacity: CLIENTS idle connections on one gateway, each subscribed
#      to one of 1,000 channels: connect rate, gateway RSS per connection.
#   2. fan-out: CLIENTS subscribers of one channel on one gateway,
#      BENCH_FANOUT_RATE events/s published (default 20): deliveries/s the
#      gateway sustains, latency, the gateway's CPU use; then the same
#      clients against holdfast-fanout-raw (bench/fanout_raw.c: one epoll
#      thread writing pre-encoded frames of the same shape), the baseline
#      the gateway is reported against (gateway / raw).
#   3. end-to-end: CLIENTS clients over two gateways and 1,000 channels,
#      RATE events/s for SECONDS: latency percentiles.
#   4. Redis kill: the same load (a tenth of the clients), Redis SIGKILLed
#      3 s in and restarted 5 s later: latency per quarter second (the
#      recovery plot), the longest pause between deliveries, the worst p99
#      during the outage, deliveries from Kafka, events lost or doubled.
# Writes bench/results/gateway.json (gateway-workersN.json with N workers). File descriptors: CLIENTS must stay
# below `ulimit -n` minus a few hundred. BENCH_PARTS="3 4" runs only those
# parts; BENCH_GATEWAY_WORKERS=N gives each gateway N workers (default 1;
# the gateway's CPU use during fan-out is reported beside it). The publish rate reached is pgbench's own count (it falls behind
# when the machine is saturated) and is reported beside the one asked for.
set -euo pipefail
BUILD=${1:-build}
CLIENTS=${2:-10000}
RATE=${3:-1000}
SECONDS_RUN=${4:-10}
PARTS=${BENCH_PARTS:-1 2 3 4}
export HF_GATEWAY_WORKERS=${BENCH_GATEWAY_WORKERS:-1}
FANOUT_RATE=${BENCH_FANOUT_RATE:-20}
part() { [[ " $PARTS " == *" $1 "* ]]; }
source "$(dirname "$0")/lib.sh"

hf_bench_pipeline_start
hf_gateway_start ga --redis-ping-interval 500ms --redis-ping-timeout 2s
hf_gateway_start gb --redis-ping-interval 500ms --redis-ping-timeout 2s

rss_kb() { bench_rss_kb "$@"; }
cpu_ticks() { bench_cpu_ticks "$@"; }

# publish RATE SECONDS CHANNELS NAME: pgbench at RATE events/s over CHANNELS
# channels bench:0..CHANNELS-1 (in the background; PUBLISH_PID).
publish() {
    cat >"$HF_RUN/publish.sql" <<SQL
\set c random(0, $(($3 - 1)))
SELECT holdfast.publish('bench:' || :c, '{"n":1,"text":"hello holdfast"}'::jsonb);
SQL
    pgbench -n -h 127.0.0.1 -p "$HF_PG_PORT" -U holdfast -c 4 -j 2 -R "$1" -T "$2" \
        -f "$HF_RUN/publish.sql" holdfast >"$HF_RUN/pgbench.$4.out" 2>&1 &
    PUBLISH_PID=$!
}

loadgen() { bench_loadgen "$@" || hf_die "$1: the load generator did not get ready"; }
finish() { bench_loadgen_wait "$@"; }

# --- 1. capacity -----------------------------------------------------------
rss0=$(rss_kb ga) rss1=0
if part 1; then
loadgen capacity --urls "$WS_ga" --clients "$CLIENTS" --channels 1000 --duration 3 --connect-rate 5000
sleep 1
rss1=$(rss_kb ga)
finish capacity
hf_log "capacity: $(cat "$HF_RUN/capacity.json")"
hf_log "gateway RSS ${rss0} kB idle -> ${rss1} kB with $CLIENTS connections"
fi

# --- 2. fan-out --------------------------------------------------------------
if part 2; then
loadgen fanout --urls "$WS_ga" --clients "$CLIENTS" --channels 1 --duration "$SECONDS_RUN" \
    --connect-rate 5000
cpu0=$(cpu_ticks ga) t0=$(date +%s.%N)
publish "$FANOUT_RATE" "$SECONDS_RUN" 1 fanout
wait "$PUBLISH_PID"
fanout_cpu=$(bench_cores "$cpu0" "$(cpu_ticks ga)" "$t0" "$(date +%s.%N)")
finish fanout
hf_log "fan-out: $(cat "$HF_RUN/fanout.json")"
raw_port=$(hf_free_port)
hf_spawn fanout_raw "$HF_BIN/holdfast-fanout-raw" --port "$raw_port" --rate "$FANOUT_RATE" \
    --clients "$CLIENTS" --duration "$SECONDS_RUN"
hf_wait_until 10 "the raw baseline to listen" bash -c "exec 3<>/dev/tcp/127.0.0.1/$raw_port" 2>/dev/null
loadgen fanout_raw --urls "ws://127.0.0.1:$raw_port/v1/ws" --clients "$CLIENTS" --channels 1 \
    --duration "$SECONDS_RUN" --connect-rate 5000
finish fanout_raw
hf_wait_exit fanout_raw
hf_log "fan-out, raw epoll baseline: $(cat "$HF_RUN/fanout_raw.json")"
fi

# --- 3. end-to-end -------------------------------------------------------------
if part 3; then
loadgen e2e --urls "$WS_ga,$WS_gb" --clients "$CLIENTS" --channels 1000 \
    --duration "$SECONDS_RUN" --connect-rate 5000
publish "$RATE" "$SECONDS_RUN" 1000 e2e
wait "$PUBLISH_PID"
finish e2e
hf_log "end-to-end: $(cat "$HF_RUN/e2e.json")"
fi

# --- 4. Redis kill -------------------------------------------------------------
kafka_deliveries=0 fanout_cpu=${fanout_cpu:-0}
if part 4; then
KILL_CLIENTS=$((CLIENTS / 10))
loadgen rediskill --urls "$WS_ga,$WS_gb" --clients "$KILL_CLIENTS" --channels 1000 --duration 14 \
    --connect-rate 5000 --timeline-ms 250 --prefix bench
t_count=$(date +%s.%N)
publish "$RATE" 13 1000 rediskill
sleep 3
t_kill=$(date +%s.%N)
kill -KILL "$(hf_pid redis)"
hf_wait_exit redis
sleep 5
hf_redis_start "$HF_REDIS_PORT"
t_back=$(date +%s.%N)
echo "$t_count $t_kill $t_back" >"$HF_RUN/rediskill.times"
wait "$PUBLISH_PID"
finish rediskill
hf_log "Redis kill: $(cat "$HF_RUN/rediskill.json")"
grep '^timeline' "$HF_RUN/rediskill.err" >&2 || true
for g in ga gb; do
    port=PORT_$g
    curl -fsS "http://127.0.0.1:${!port}/metrics" | grep -E '^holdfast_gateway_(gaps|redis_fallbacks|deliveries|duplicates|kafka_scanning)' >"$HF_RUN/$g.metrics" || true
done
kafka_deliveries=$(($(hf_metric "$PORT_ga" 'holdfast_gateway_deliveries_total{source="kafka"}') +
    $(hf_metric "$PORT_gb" 'holdfast_gateway_deliveries_total{source="kafka"}')))
fi

out=$RESULTS/gateway.json
((HF_GATEWAY_WORKERS == 1)) || out=$RESULTS/gateway-workers$HF_GATEWAY_WORKERS.json
python3 - "$HF_RUN" "$CLIENTS" "$RATE" "$rss0" "$rss1" "$kafka_deliveries" "$out" \
    "$HF_GATEWAY_WORKERS" "$fanout_cpu" "$FANOUT_RATE" <<'PY'
import json, os, re, sys
run, clients, rate, rss0, rss1, kafka, out, workers, fanout_cpu, fanout_rate = sys.argv[1:]
def load(n):
    p = f"{run}/{n}.json"
    return json.load(open(p)) if os.path.exists(p) and os.path.getsize(p) else None
def tps(n):
    p = f"{run}/pgbench.{n}.out"
    m = re.search(r"tps = ([0-9.]+)", open(p).read()) if os.path.exists(p) else None
    return round(float(m.group(1))) if m else None
res = {"gateway_workers": int(workers)}
print(f"gateways with {workers} worker(s) each")
cap = load("capacity")
if cap:
    res["capacity"] = {"connections": cap["subscribed"], "connect_per_second": cap["connect_rate"],
                       "gateway_rss_kb_idle": int(rss0), "gateway_rss_kb_connected": int(rss1),
                       "rss_bytes_per_connection": round((int(rss1) - int(rss0)) * 1024 / max(1, cap["subscribed"]))}
    c = res["capacity"]
    print(f"capacity: {c['connections']} connections on one gateway at {c['connect_per_second']:.0f}/s; "
          f"RSS {int(rss0)//1024} -> {int(rss1)//1024} MiB = {c['rss_bytes_per_connection']} bytes per idle connection")
fan = load("fanout")
if fan:
    f = res["fanout"] = {"subscribers": fan["subscribed"], "events_per_second_asked": int(fanout_rate),
                         "events_per_second_published": tps("fanout"),
                         "deliveries_per_second": fan["deliveries_per_second"], "latency_ms": fan["latency_ms"],
                         "duplicates": fan["duplicates"], "chain_breaks": fan["chain_breaks"],
                         "gateway_cpu_cores": float(fanout_cpu)}
    print(f"fan-out: {f['subscribers']} subscribers of one channel, {f['events_per_second_published']} ev/s published: "
          f"{f['deliveries_per_second']:.0f} deliveries/s, latency p50 {f['latency_ms']['p50']} ms "
          f"p99 {f['latency_ms']['p99']} ms max {f['latency_ms']['max']} ms; gateway CPU {fanout_cpu} cores")
    raw = load("fanout_raw")
    if raw:
        f["raw_baseline"] = {"subscribers": raw["subscribed"], "deliveries_per_second": raw["deliveries_per_second"],
                             "latency_ms": raw["latency_ms"]}
        f["gateway_over_raw"] = round(f["deliveries_per_second"] / max(1, raw["deliveries_per_second"]), 3)
        print(f"fan-out, raw epoll baseline (same clients, same rate): {raw['deliveries_per_second']:.0f} deliveries/s, "
              f"latency p50 {raw['latency_ms']['p50']} ms p99 {raw['latency_ms']['p99']} ms; "
              f"gateway / raw = {f['gateway_over_raw']}")
e2e = load("e2e")
if e2e:
    e = res["end_to_end"] = {"clients": e2e["subscribed"], "events_per_second_asked": int(rate),
                             "events_per_second_published": tps("e2e"),
                             "deliveries_per_second": e2e["deliveries_per_second"], "latency_ms": e2e["latency_ms"],
                             "duplicates": e2e["duplicates"], "chain_breaks": e2e["chain_breaks"], "closes": e2e["closes"]}
    print(f"end-to-end: {e['clients']} clients, 2 gateways, 1000 channels, {rate} ev/s asked, "
          f"{e['events_per_second_published']} published: {e['deliveries_per_second']:.0f} deliveries/s, "
          f"commit->client p50 {e['latency_ms']['p50']} ms p90 {e['latency_ms']['p90']} ms p99 {e['latency_ms']['p99']} ms "
          f"p99.9 {e['latency_ms']['p999']} ms max {e['latency_ms']['max']} ms; duplicates {e['duplicates']}, "
          f"chain breaks {e['chain_breaks']}")
rk = load("rediskill")
if rk:
    timeline = [l.split() for l in open(f"{run}/rediskill.err") if l.startswith("timeline")]
    r = res["redis_kill"] = {"clients": rk["subscribed"], "events_per_second_published": tps("rediskill"),
                             "deliveries": rk["deliveries"], "latency_ms": rk["latency_ms"],
                             "duplicates": rk["duplicates"], "chain_breaks": rk["chain_breaks"],
                             "deliveries_from_kafka": int(kafka), "timeline": [" ".join(t[1:]) for t in timeline]}
    # Quarter-second intervals; the outage runs from the kill until Redis
    # is back plus the 2 s the gateways keep reading Kafka after it.
    t_count, t_kill, t_back = map(float, open(f"{run}/rediskill.times").read().split())
    ivs = []
    for t in timeline:
        kv = dict(f.replace("<=", "=").split("=") for f in t[1:])
        ivs.append({"t": float(kv["t"]), "deliveries_per_second": int(kv["deliveries"]) * 4,
                    "p50_ms": float(kv["p50_ms"]), "p99_ms": float(kv["p99_ms"]), "max_ms": float(kv["max_ms"])})
    r["intervals"] = ivs
    kill_s, back_s = t_kill - t_count, t_back - t_count
    during = [i for i in ivs if i["t"] > kill_s and i["t"] - 0.25 <= back_s + 2 and i["p99_ms"] >= 0]
    r["outage"] = {"kill_s": round(kill_s, 2), "back_s": round(back_s, 2), "max_gap_ms": rk["max_gap_ms"],
                   "max_gap_end_s": rk["max_gap_end_s"],
                   "p99_ms_worst_interval": max((i["p99_ms"] for i in during), default=-1),
                   "kafka_deliveries_per_second": round(int(kafka) / max(0.1, back_s - kill_s))}
    print(f"Redis kill (3 s in, back 5 s later): {r['clients']} clients, {r['events_per_second_published']} ev/s, "
          f"{r['deliveries']} deliveries, {r['deliveries_from_kafka']} of them from Kafka, p50 {r['latency_ms']['p50']} ms "
          f"p99 {r['latency_ms']['p99']} ms max {r['latency_ms']['max']} ms; duplicates {r['duplicates']}, "
          f"chain breaks {r['chain_breaks']}")
    o = r["outage"]
    print(f"Redis kill: longest pause between deliveries {o['max_gap_ms']} ms (ending {o['max_gap_end_s']} s into the "
          f"count; the kill was at {o['kill_s']} s, Redis back at {o['back_s']} s); worst quarter-second p99 "
          f"during the outage {o['p99_ms_worst_interval']} ms; {o['kafka_deliveries_per_second']} deliveries/s "
          f"from Kafka over the outage")
json.dump(res, open(out, "w"), indent=2)
PY
echo "reproduce: BENCH_PARTS=\"$PARTS\" BENCH_GATEWAY_WORKERS=$HF_GATEWAY_WORKERS BENCH_FANOUT_RATE=$FANOUT_RATE bench/gateway.sh $BUILD $CLIENTS $RATE $SECONDS_RUN"
