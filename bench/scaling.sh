#!/usr/bin/env bash
# scaling.sh - the same load on 1, 2, 4 and 8 gateway processes: latency
# should stay flat while Redis's CPU and output grow with the gateway count
# (each gateway subscribes to every channel its clients hold, so every
# event leaves Redis once per gateway).
#
#   bench/scaling.sh [BUILD_DIR] [CLIENTS] [RATE] [SECONDS]
#   e.g. bench/scaling.sh build 2000 250 10
#
# The full pipeline (PostgreSQL fsync on, the dev broker, one relay,
# ingest); CLIENTS holdfast-loadgen clients spread round-robin over the
# gateways and 125 channels (odd, so that every gateway holds every
# channel for any power-of-two gateway count); holdfast-publisher POSTs
# RATE events/s. Redis CPU comes from /proc, its output bytes from INFO.
# BENCH_GATEWAY_COUNTS overrides "1 2 4 8". Writes bench/results/scaling.json.
set -euo pipefail
BUILD=${1:-build}
CLIENTS=${2:-2000}
RATE=${3:-250}
SECONDS_RUN=${4:-10}
COUNTS=${BENCH_GATEWAY_COUNTS:-1 2 4 8}
CHANNELS=125
source "$(dirname "$0")/lib.sh"

redis_output_bytes() {
    redis-cli -h 127.0.0.1 -p "$HF_REDIS_PORT" info stats | tr -d '\r' |
        sed -n 's/^total_net_output_bytes://p'
}

hf_bench_pipeline_start
hf_ingest_start "" --writers 4 --publish-rate 0
rows=()
for n in $COUNTS; do
    urls=()
    for i in $(seq 1 "$n"); do
        hf_gateway_start "g$i"
        port=WS_g$i
        urls+=("${!port}")
    done
    name=scale-$n
    bench_loadgen "$name" --urls "$(IFS=,; echo "${urls[*]}")" --clients "$CLIENTS" \
        --channels "$CHANNELS" --duration "$SECONDS_RUN" --connect-rate 5000 ||
        hf_die "$name: the load generator did not get ready"
    cpu0=$(bench_cpu_ticks redis) out0=$(redis_output_bytes) t0=$(date +%s.%N)
    gcpu0=0
    for i in $(seq 1 "$n"); do gcpu0=$((gcpu0 + $(bench_cpu_ticks "g$i"))); done
    bench_publisher "$name" "$HF_INGEST_URL/v1/events" "$RATE" "$SECONDS_RUN" "$CHANNELS"
    bench_publisher_wait "$name"
    t1=$(date +%s.%N)
    gcpu1=0
    for i in $(seq 1 "$n"); do gcpu1=$((gcpu1 + $(bench_cpu_ticks "g$i"))); done
    redis_cores=$(bench_cores "$cpu0" "$(bench_cpu_ticks redis)" "$t0" "$t1")
    gateway_cores=$(bench_cores "$gcpu0" "$gcpu1" "$t0" "$t1")
    out_bps=$(awk -v a="$out0" -v b="$(redis_output_bytes)" -v t0="$t0" -v t1="$t1" \
        'BEGIN {printf "%.0f", (b - a) / (t1 - t0)}')
    bench_loadgen_wait "$name"
    rows+=("$n $redis_cores $out_bps $gateway_cores")
    for i in $(seq 1 "$n"); do hf_stop "g$i"; done
done

printf '%s\n' "${rows[@]}" >"$HF_RUN/rows"
python3 - "$HF_RUN" "$CLIENTS" "$RATE" "$CHANNELS" "$RESULTS/scaling.json" <<'PY'
import json, sys
run, clients, rate, channels, out = sys.argv[1:]
res = {"clients": int(clients), "events_per_second_asked": int(rate), "channels": int(channels), "runs": []}
print(f"{'gateways':>8} {'published':>9} {'deliv/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
      f"{'redis cores':>11} {'redis out MB/s':>14} {'gateway cores':>13}")
for line in open(f"{run}/rows"):
    n, rcores, out_bps, gcores = line.split()
    lg = json.load(open(f"{run}/scale-{n}.json"))
    pub = json.load(open(f"{run}/scale-{n}.pub.json"))
    row = {"gateways": int(n), "events_per_second_published": round(pub["achieved_rate"]),
           "deliveries_per_second": lg["deliveries_per_second"], "latency_ms": lg["latency_ms"],
           "duplicates": lg["duplicates"], "chain_breaks": lg["chain_breaks"],
           "redis_cpu_cores": float(rcores), "redis_output_bytes_per_second": int(out_bps),
           "gateways_cpu_cores": float(gcores)}
    res["runs"].append(row)
    l = row["latency_ms"]
    print(f"{n:>8} {row['events_per_second_published']:>9} {row['deliveries_per_second']:>8.0f} {l['p50']:>7.2f} "
          f"{l['p99']:>7.2f} {l['max']:>7.2f} {row['redis_cpu_cores']:>11.3f} {int(out_bps) / 1e6:>14.2f} "
          f"{row['gateways_cpu_cores']:>13.3f}")
json.dump(res, open(out, "w"), indent=2)
PY
echo "reproduce: BENCH_GATEWAY_COUNTS=\"$COUNTS\" bench/scaling.sh $BUILD $CLIENTS $RATE $SECONDS_RUN"
