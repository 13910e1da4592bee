# bench/lib.sh - what the benchmark scripts share: a run folder of their
# own, the load generator and the publisher started and awaited, and CPU
# and memory readings of a part by its PID. Sourced after BUILD is set.
HF_BIN=$(cd "$BUILD" && pwd)/bin
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$BENCH_DIR/../tests/support/lib.sh"
hf_init "$(mktemp -d /tmp/holdfast-bench.XXXXXX)"
trap 'bench_stop_clients; hf_stop_all; [[ -n ${KEEP:-} ]] && echo "kept $HF_RUN" >&2 || rm -rf "$HF_RUN"' EXIT

# bench_stop_clients: the load generators and publishers a script started
# in the background (LOADGEN_PID, PUBLISHER_PID, WS_PID, HOLD_PIDS), when it
# ends early: they would hold their connections for minutes.
bench_stop_clients() {
    local pid
    for pid in ${LOADGEN_PID:-} ${PUBLISHER_PID:-} ${WS_PID:-} ${HOLD_PIDS[@]:-}; do
        kill "$pid" 2>/dev/null || true
    done
}
command -v pgbench >/dev/null || PATH=$HF_PG_BIN:$PATH
RESULTS=$BENCH_DIR/results
mkdir -p "$RESULTS"

# bench_rss_kb PART / bench_cpu_ticks PART: resident memory in kB; user +
# system CPU time so far in clock ticks.
bench_rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$(hf_pid "$1")/status"; }
bench_cpu_ticks() { awk '{print $14 + $15}' "/proc/$(hf_pid "$1")/stat"; }
# bench_cores TICKS0 TICKS1 T0 T1: CPU cores used between two readings.
bench_cores() {
    awk -v c0="$1" -v c1="$2" -v t0="$3" -v t1="$4" -v hz="$(getconf CLK_TCK)" \
        'BEGIN {printf "%.3f", (c1 - c0) / hz / (t1 - t0)}'
}

# bench_loadgen NAME [FLAGS...]: holdfast-loadgen in the background;
# returns once every client is subscribed (LOADGEN_PID; its report in
# $HF_RUN/NAME.json, its stderr in NAME.err), or 1 when they were not
# within 300 s (the load generator is stopped then). bench_loadgen_wait
# NAME waits for it to end.
bench_loadgen() {
    local name=$1
    shift
    rm -f "$HF_RUN/$name.ready"
    "$HF_BIN/holdfast-loadgen" --ready-file "$HF_RUN/$name.ready" "$@" \
        >"$HF_RUN/$name.json" 2>"$HF_RUN/$name.err" &
    LOADGEN_PID=$!
    if ! hf_wait_until 300 "$name clients subscribed" bench_ready_or_gone "$name"; then
        kill "$LOADGEN_PID" 2>/dev/null || true
    fi
    [[ -e $HF_RUN/$name.ready ]] && return 0
    wait "$LOADGEN_PID" 2>/dev/null || true
    hf_log "$name: clients did not subscribe: $(cat "$HF_RUN/$name.json" "$HF_RUN/$name.err")"
    return 1
}
bench_ready_or_gone() { [[ -e $HF_RUN/$1.ready ]] || ! kill -0 "$LOADGEN_PID" 2>/dev/null; }
bench_loadgen_wait() {
    wait "$LOADGEN_PID" || hf_log "$1: loadgen reported a problem: $(cat "$HF_RUN/$1.json")"
}

# bench_publisher NAME URL RATE SECONDS CHANNELS: holdfast-publisher POSTing
# RATE single events/s (payload carries its scheduled send time) in the
# background (PUBLISHER_PID; report in $HF_RUN/NAME.pub.json).
bench_publisher() {
    local name=$1 url=$2 rate=$3 secs=$4 channels=$5 conns
    conns=$((rate / 100))
    ((conns >= 4)) || conns=4
    ((conns <= 64)) || conns=64
    "$HF_BIN/holdfast-publisher" --url "$url" --rate "$rate" --duration "$secs" \
        --channels "$channels" --connections "$conns" \
        >"$HF_RUN/$name.pub.json" 2>"$HF_RUN/$name.pub.err" &
    PUBLISHER_PID=$!
}
bench_publisher_wait() {
    wait "$PUBLISHER_PID" ||
        hf_log "$1: publisher reported a problem: $(cat "$HF_RUN/$1.pub.json" "$HF_RUN/$1.pub.err")"
}
