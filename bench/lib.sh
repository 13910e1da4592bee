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

# bench_pg_cpu_ticks: CPU ticks of the whole PostgreSQL server, the
# postmaster and every process it forked (backends, the walsender,
# walwriter, checkpointer, autovacuum), as they stand now.
bench_pg_cpu_ticks() {
    local pm
    pm=$(hf_pid postgres)
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v pm="$pm" '$1 == pm || $4 == pm {s += $14 + $15} END {print s + 0}'
}

# bench_usage_snapshot FILE PARTS...: CPU ticks of each running part
# ("postgres" meaning the whole server) and PostgreSQL's WAL position.
bench_usage_snapshot() {
    local file=$1 part
    shift
    : >"$file"
    for part in "$@"; do
        hf_alive "$part" || continue
        if [[ $part == postgres ]]; then
            echo "postgres $(bench_pg_cpu_ticks)" >>"$file"
        else
            echo "$part $(bench_cpu_ticks "$part")" >>"$file"
        fi
    done
    echo "wal_lsn $(hf_psql -c "SELECT pg_current_wal_lsn() - '0/0'")" >>"$file"
}

# bench_usage_report BEFORE AFTER EVENTS OUT: per part, CPU milliseconds
# per 1,000 events, and WAL bytes per event, as JSON in OUT.
bench_usage_report() {
    python3 - "$1" "$2" "$3" "$(getconf CLK_TCK)" "$4" <<'PY'
import json, sys
before, after, events, hz, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def read(p): return {k: float(v) for k, v in (l.split() for l in open(p) if l.strip())}
a, b = read(before), read(after)
cpu = {k: round((b[k] - a[k]) / hz * 1000 * 1000 / max(events, 1), 1) for k in b if k in a and k != "wal_lsn"}
res = {"events": events, "cpu_ms_per_1000_events": cpu,
       "wal_bytes_per_event": round((b["wal_lsn"] - a["wal_lsn"]) / max(events, 1))}
json.dump(res, open(out, "w"))
PY
}
