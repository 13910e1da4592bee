#!/usr/bin/env bash
# e2e.sh - POST -> WebSocket latency and one-channel fan-out, for Holdfast
# or for its peer, Socket.IO with @socket.io/redis-adapter: the same load
# generator, payloads, client counts and machine for both.
#
#   bench/e2e.sh [BUILD_DIR] [SECONDS] [holdfast|socketio]
#   e.g. bench/e2e.sh build 10 socketio
#
# Holdfast: PostgreSQL (fsync on), Redis, the dev Kafka broker (8
# partitions), one relay, ingest and two gateways. Socket.IO: Redis and two
# Node.js processes (bench/node/socketio_server.js, installed from npm into
# bench/node by bench/node/install.sh); it stores nothing.
# Events are POSTed by holdfast-publisher (open loop, single events); each
# payload carries its scheduled send time "t", so latency is POST -> client
# receive on the same clock, publisher-side queueing included.
#   end-to-end: BENCH_E2E_CLIENTS (1000 10000) clients over the two
#     gateways (processes) and 1,000 channels, at BENCH_E2E_RATES
#     (100 1000 5000) events/s, SECONDS each.
#   fan-out: BENCH_FANOUT_SUBSCRIBERS (1000 10000) subscribers of one
#     channel on one gateway (process), offered BENCH_FANOUT_OFFERED
#     (200000) deliveries/s; published through the other Node process for
#     Socket.IO, so both cross Redis. Deliveries/s is what was sustained.
#   cross-check (holdfast, BENCH_CROSSCHECK=1): 1,000 holdfast-loadgen
#     clients and 1,000 clients of Node's ws package (bench/node/ws_latency.js)
#     on the same channels at 1,000 events/s: two witnesses of one run (the
#     ws clients subscribe first and count a little longer, so both see
#     every event published).
# Writes bench/results/e2e-SYSTEM.json.
set -euo pipefail
BUILD=${1:-build}
SECONDS_RUN=${2:-10}
SYSTEM=${3:-holdfast}
E2E_CLIENTS=${BENCH_E2E_CLIENTS:-1000 10000}
E2E_RATES=${BENCH_E2E_RATES:-100 1000 5000}
FANOUT_SUBSCRIBERS=${BENCH_FANOUT_SUBSCRIBERS:-1000 10000}
FANOUT_OFFERED=${BENCH_FANOUT_OFFERED:-200000}
CROSSCHECK=${BENCH_CROSSCHECK:-1}
source "$(dirname "$0")/lib.sh"
mkdir -p "$RESULTS/cdf"

start_holdfast() {
    hf_bench_pipeline_start
    hf_ingest_start "" --writers 4 --publish-rate 0
    hf_gateway_start ga
    hf_gateway_start gb
    PROTO=holdfast E2E_URLS="$WS_ga,$WS_gb" FANOUT_URL=$WS_ga
    USAGE_PARTS="ingest postgres relay kafka redis ga gb"
    E2E_POST=$HF_INGEST_URL/v1/events FANOUT_POST=$E2E_POST
}

start_socketio() {
    bash "$BENCH_DIR/node/install.sh"
    hf_redis_start
    start_socketio_processes
    PROTO=socketio E2E_URLS="ws://127.0.0.1:$PORT_sa/,ws://127.0.0.1:$PORT_sb/"
    FANOUT_URL="ws://127.0.0.1:$PORT_sa/"
    E2E_POST=http://127.0.0.1:$PORT_sa/v1/events FANOUT_POST=http://127.0.0.1:$PORT_sb/v1/events
}

# Two Node.js processes on fixed ports (PORT_sa, PORT_sb, kept across
# restarts).
start_socketio_processes() {
    local s port
    for s in sa sb; do
        port=PORT_$s
        port=${!port:-$(hf_free_port)}
        hf_spawn "$s" node "$BENCH_DIR/node/socketio_server.js" --port "$port" \
            --redis-port "$HF_REDIS_PORT"
        hf_wait_until 30 "$s /healthz" hf_http_ok "http://127.0.0.1:$port/healthz" ||
            hf_die "$s did not start (see $HF_RUN/$s.log)"
        printf -v "PORT_$s" '%s' "$port"
    done
}

# Before each fan-out point: after an overloaded run (millions of emits
# queued) a Socket.IO process was slow to answer new WebSocket handshakes,
# so each fan-out point gets fresh Node processes (their state is not
# durable anyway). Holdfast's gateways are not restarted.
fresh_peer() {
    [[ $SYSTEM == socketio ]] || return 0
    hf_stop sa KILL
    hf_stop sb KILL
    start_socketio_processes
}

# point NAME URLS CLIENTS CHANNELS POST_URL RATE: one measured run; the two
# reports land in NAME.json and NAME.pub.json.
point() {
    local name=$1 urls=$2 clients=$3 channels=$4 post=$5 rate=$6
    bench_loadgen "$name" --protocol "$PROTO" --urls "$urls" --clients "$clients" \
        --channels "$channels" --duration "$SECONDS_RUN" --connect-rate 5000 \
        --cdf "$RESULTS/cdf/$SYSTEM-$name.dat" || {
        hf_log "$name: skipped, its clients could not all subscribe"
        return 0
    }
    [[ $SYSTEM == holdfast ]] && bench_usage_snapshot "$HF_RUN/$name.usage0" $USAGE_PARTS
    bench_publisher "$name" "$post" "$rate" "$SECONDS_RUN" "$channels"
    bench_publisher_wait "$name"
    if [[ $SYSTEM == holdfast ]]; then
        sleep 0.2 # the last events' way through the relay and its commit
        bench_usage_snapshot "$HF_RUN/$name.usage1" $USAGE_PARTS
        bench_usage_report "$HF_RUN/$name.usage0" "$HF_RUN/$name.usage1" \
            "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ok"])' "$HF_RUN/$name.pub.json")" \
            "$HF_RUN/$name.usage.json"
    fi
    bench_loadgen_wait "$name"
    POINTS+=("$name")
}

POINTS=()
"start_$SYSTEM"
for c in $E2E_CLIENTS; do
    for r in $E2E_RATES; do
        point "e2e-$c-$r" "$E2E_URLS" "$c" 1000 "$E2E_POST" "$r"
    done
done
for s in $FANOUT_SUBSCRIBERS; do
    fresh_peer
    point "fanout-$s" "$FANOUT_URL" "$s" 1 "$FANOUT_POST" $((FANOUT_OFFERED / s))
done
if [[ $SYSTEM == holdfast && $CROSSCHECK == 1 ]]; then
    bash "$BENCH_DIR/node/install.sh"
    rm -f "$HF_RUN/ws.ready"
    node "$BENCH_DIR/node/ws_latency.js" --urls "$E2E_URLS" --clients 1000 --channels 1000 \
        --duration $((SECONDS_RUN + 5)) --ready-file "$HF_RUN/ws.ready" \
        >"$HF_RUN/crosscheck-ws.json" 2>"$HF_RUN/crosscheck-ws.err" &
    WS_PID=$!
    hf_wait_until 300 "ws clients subscribed" test -e "$HF_RUN/ws.ready" ||
        hf_die "ws clients did not subscribe: $(cat "$HF_RUN/crosscheck-ws.err")"
    point crosscheck-loadgen "$E2E_URLS" 1000 1000 "$E2E_POST" 1000
    wait "$WS_PID" || hf_log "ws client reported a problem: $(cat "$HF_RUN/crosscheck-ws.json")"
fi

python3 - "$HF_RUN" "$SYSTEM" "$RESULTS/e2e-$SYSTEM.json" "${POINTS[@]}" <<'PY'
import json, os, sys
run, system, out, *points = sys.argv[1:]
def load(p):
    return json.load(open(p)) if os.path.exists(p) and os.path.getsize(p) else None
res = {"system": system, "end_to_end": [], "fanout": []}
print(f"{system}: {'run':<22} {'clients':>7} {'ev/s asked':>10} {'published':>9} {'deliv/s':>9} "
      f"{'p50 ms':>8} {'p90':>8} {'p99':>8} {'p99.9':>8} {'max':>8} {'dup':>4} {'breaks':>6}")
for name in points:
    lg, pub = load(f"{run}/{name}.json"), load(f"{run}/{name}.pub.json")
    if not lg or not pub:
        print(f"{system}: {name}: no report")
        continue
    row = {"name": name, "clients": lg["subscribed"], "events_per_second_asked": pub["asked_rate"],
           "events_per_second_published": round(pub["achieved_rate"]), "publish_errors": pub["errors"] + pub["non_2xx"],
           "deliveries": lg["deliveries"], "deliveries_per_second": lg["deliveries_per_second"],
           "latency_ms": lg["latency_ms"], "duplicates": lg["duplicates"], "chain_breaks": lg["chain_breaks"],
           "closes": lg["closes"], "ordering_checked": lg.get("ordering_checked", True)}
    usage = load(f"{run}/{name}.usage.json")
    if usage:
        row["cpu_ms_per_1000_events"] = usage["cpu_ms_per_1000_events"]
        row["wal_bytes_per_event"] = usage["wal_bytes_per_event"]
    if name.startswith("fanout"):
        res["fanout"].append(row)
    elif name.startswith("crosscheck"):
        res["crosscheck"] = {"loadgen": row, "ws": load(f"{run}/crosscheck-ws.json")}
    else:
        res["end_to_end"].append(row)
    l = row["latency_ms"]
    print(f"{system}: {name:<22} {row['clients']:>7} {row['events_per_second_asked']:>10} "
          f"{row['events_per_second_published']:>9} {row['deliveries_per_second']:>9.0f} {l['p50']:>8.2f} "
          f"{l['p90']:>8.2f} {l['p99']:>8.2f} {l['p999']:>8.2f} {l['max']:>8.2f} {row['duplicates']:>4} "
          f"{row['chain_breaks']:>6}")
cc = res.get("crosscheck")
if cc and cc["ws"]:
    a, b = cc["loadgen"]["latency_ms"], cc["ws"]["latency_ms"]
    print(f"{system}: cross-check at 1000 ev/s, 1000 + 1000 clients: holdfast-loadgen p50 {a['p50']} ms "
          f"p99 {a['p99']} ms; Node ws p50 {b['p50']} ms p99 {b['p99']} ms "
          f"({cc['loadgen']['deliveries']} and {cc['ws']['deliveries']} deliveries)")
json.dump(res, open(out, "w"), indent=2)
PY
echo "reproduce: BENCH_E2E_CLIENTS=\"$E2E_CLIENTS\" BENCH_E2E_RATES=\"$E2E_RATES\" BENCH_FANOUT_SUBSCRIBERS=\"$FANOUT_SUBSCRIBERS\" bench/e2e.sh $BUILD $SECONDS_RUN $SYSTEM"
