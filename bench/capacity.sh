#!/usr/bin/env bash
# capacity.sh - connections held: one gateway process up to its
# file-descriptor limit (memory per idle connection, connect rate), then
# BENCH_CAPACITY_TOTAL (50,000) connections across three gateway processes,
# the clients spread over three load generator processes.
#
#   bench/capacity.sh [BUILD_DIR] [ONE_GATEWAY_CLIENTS]
#   e.g. bench/capacity.sh build 19000
#
# ONE_GATEWAY_CLIENTS defaults to `ulimit -n` minus 500 (the gateway's own
# Redis, Kafka and listening sockets, the load generator's likewise). Each
# client subscribes to one of 1,000 channels. Memory per connection is the
# gateway's RSS delta / connections, read while all are connected.
# Writes bench/results/capacity.json.
set -euo pipefail
BUILD=${1:-build}
FD_LIMIT=$(ulimit -n)
ONE=${2:-$((FD_LIMIT - 500))}
TOTAL=${BENCH_CAPACITY_TOTAL:-50000}
PROCS=3
source "$(dirname "$0")/lib.sh"

# hold NAME URLS CLIENTS: a load generator that connects CLIENTS and then
# holds them until told to stop (started in the background; HOLD_PIDS).
hold() {
    rm -f "$HF_RUN/$1.ready"
    "$HF_BIN/holdfast-loadgen" --ready-file "$HF_RUN/$1.ready" --urls "$2" --clients "$3" \
        --channels 1000 --duration 600 --connect-rate 5000 >"$HF_RUN/$1.json" 2>"$HF_RUN/$1.err" &
    HOLD_PIDS+=($!)
}
# release: stop every holding load generator (they report on SIGTERM).
release() {
    kill -TERM "${HOLD_PIDS[@]}" 2>/dev/null || true
    wait "${HOLD_PIDS[@]}" || true
    HOLD_PIDS=()
}
all_ready() {
    local n
    for n in "$@"; do [[ -e $HF_RUN/$n.ready ]] || return 1; done
}

hf_redis_start
hf_kafka_start 8 holdfast.events
HOLD_PIDS=()

# --- one gateway up to the fd limit ----------------------------------------
hf_gateway_start one
rss0=$(bench_rss_kb one)
hold one "$WS_one" "$ONE"
hf_wait_until 300 "$ONE clients on one gateway" all_ready one ||
    hf_die "one gateway: clients did not subscribe: $(cat "$HF_RUN/one.err")"
sleep 1
rss1=$(bench_rss_kb one)
release
hf_stop one
echo "$rss0 $rss1" >"$HF_RUN/one.rss"

# --- TOTAL over three gateways ----------------------------------------------
urls=()
for i in $(seq 1 $PROCS); do
    hf_gateway_start "g$i"
    u=WS_g$i
    urls+=("${!u}")
done
rss_before=()
for i in $(seq 1 $PROCS); do rss_before+=("$(bench_rss_kb "g$i")"); done
t0=$(date +%s.%N)
for i in $(seq 1 $PROCS); do
    # Each generator spreads its clients over all three gateways; the
    # last takes the remainder of TOTAL / PROCS.
    n=$((TOTAL / PROCS))
    ((i < PROCS)) || n=$((TOTAL - (PROCS - 1) * (TOTAL / PROCS)))
    hold "many$i" "$(IFS=,; echo "${urls[*]}")" "$n"
done
hf_wait_until 600 "$TOTAL clients on $PROCS gateways" all_ready many1 many2 many3 ||
    hf_die "three gateways: clients did not subscribe: $(cat "$HF_RUN"/many*.err)"
t1=$(date +%s.%N)
sleep 1
rss_after=() conns=()
for i in $(seq 1 $PROCS); do
    p=PORT_g$i
    rss_after+=("$(bench_rss_kb "g$i")")
    conns+=("$(hf_metric "${!p}" holdfast_gateway_connections || echo -1)")
done
release
echo "${rss_before[*]}|${rss_after[*]}|${conns[*]}|$t0|$t1" >"$HF_RUN/many.rss"

python3 - "$HF_RUN" "$ONE" "$TOTAL" "$FD_LIMIT" "$RESULTS/capacity.json" <<'PY'
import json, sys
run, one, total, fd_limit, out = sys.argv[1:]
def load(n):
    return json.load(open(f"{run}/{n}.json"))
rss0, rss1 = map(int, open(f"{run}/one.rss").read().split())
o = load("one")
res = {"fd_limit": int(fd_limit), "one_gateway": {
    "clients": int(one), "connections": o["subscribed"], "connect_per_second": o["connect_rate"],
    "gateway_rss_kb_idle": rss0, "gateway_rss_kb_connected": rss1,
    "rss_bytes_per_connection": round((rss1 - rss0) * 1024 / max(1, o["subscribed"]))}}
g = res["one_gateway"]
print(f"one gateway: {g['connections']} of {one} connections (fd limit {fd_limit}) at {g['connect_per_second']:.0f}/s; "
      f"RSS {rss0 // 1024} -> {rss1 // 1024} MiB = {g['rss_bytes_per_connection']} bytes per idle connection")
before, after, conns, t0, t1 = open(f"{run}/many.rss").read().strip().split("|")
before, after, conns = [list(map(int, x.split())) for x in (before, after, conns)]
many = [load(f"many{i}") for i in (1, 2, 3)]
subscribed = sum(m["subscribed"] for m in many)
secs = float(t1) - float(t0)
res["three_gateways"] = {
    "clients": int(total), "connections": subscribed, "per_gateway_connections": conns,
    "seconds_to_connect": round(secs, 2), "connect_per_second": round(subscribed / secs),
    "gateway_rss_kb_idle": before, "gateway_rss_kb_connected": after,
    "rss_bytes_per_connection": round(sum(a - b for a, b in zip(after, before)) * 1024 / max(1, subscribed)),
    "connect_errors": sum(m["connect_errors"] for m in many), "closes": sum(m["closes"] for m in many)}
t = res["three_gateways"]
print(f"three gateways, three load generators: {subscribed} of {total} connections subscribed in {secs:.1f} s "
      f"({t['connect_per_second']}/s), per gateway {conns}, {t['rss_bytes_per_connection']} bytes per idle connection, "
      f"connect errors {t['connect_errors']}, closes {t['closes']}")
json.dump(res, open(out, "w"), indent=2)
PY
echo "reproduce: BENCH_CAPACITY_TOTAL=$TOTAL bench/capacity.sh $BUILD $ONE"
