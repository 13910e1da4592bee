#!/usr/bin/env bash
# run.sh - runs the libFuzzer targets one after another, then a table.
#
#   fuzz/run.sh [--long] [--seconds N] [BUILD_DIR] [TARGET...]
#   e.g. fuzz/run.sh build-fuzz                      (what make test runs)
#        fuzz/run.sh --long --seconds 600 build-fuzz  (what make fuzz runs)
#
# Short (default, 10 s per target): each target starts from its committed
# seed corpus fuzz/corpus/TARGET/ and writes what it finds into a scratch
# directory that is thrown away, so the committed corpus never changes.
# --long (600 s per target): the corpus grows in BUILD_DIR/corpus/TARGET/,
# seeded from fuzz/corpus/TARGET/ and kept across runs.
# Either way a crash, leak, timeout or out-of-memory stops that target and
# its input is written to BUILD_DIR/crashes/TARGET/ (reproduce with
# BUILD_DIR/bin/TARGET FILE); the script goes on with the next target and
# exits 1 at the end. One target at a time, so that each has a core to itself.
# The table gives per target the executions per second and libFuzzer's
# final coverage: cov (edges reached), ft (features: edges by hit counts
# and the like), corpus (units at the end) and new (units found this run).
set -euo pipefail
FUZZ_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$FUZZ_DIR/.." && pwd)
LONG=0 SECONDS_EACH='' BUILD='' TARGETS=()
ALL_TARGETS=(fuzz_ingest_body fuzz_envelope fuzz_ws_client_message fuzz_http_request
    fuzz_auth_token fuzz_pgoutput)
while (($#)); do
    case $1 in
    --long) LONG=1 ;;
    --seconds) SECONDS_EACH=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) if [[ -z $BUILD ]]; then BUILD=$1; else TARGETS+=("$1"); fi ;;
    esac
    shift
done
BUILD=${BUILD:-build-fuzz}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
((${#TARGETS[@]})) || TARGETS=("${ALL_TARGETS[@]}")
SECONDS_EACH=${SECONDS_EACH:-$( ((LONG)) && echo 600 || echo 10)}

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/holdfast-fuzz.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

ROWS=() FAILED=()
for t in "${TARGETS[@]}"; do
    bin=$BUILD/bin/$t seeds=$FUZZ_DIR/corpus/$t
    crashes=$BUILD/crashes/$t log=$SCRATCH/$t.log
    if [[ ! -x $bin || ! -d $seeds ]]; then
        echo "run.sh: $t: no $bin or no $seeds (make build-fuzz)" >&2
        FAILED+=("$t")
        ROWS+=("$t - - - - - - - - missing")
        continue
    fi
    if ((LONG)); then
        corpus=$BUILD/corpus/$t
    else
        corpus=$SCRATCH/$t.corpus
    fi
    mkdir -p "$corpus" "$crashes"
    echo "== $t: ${SECONDS_EACH}s, corpus $corpus + $seeds" >&2
    start=$(date +%s.%N)
    # libFuzzer writes new units into the first directory only.
    # -malloc_limit_mb: no parser needs 256 MiB for a message, so an
    # allocation that large is a bug (a hostile length or count trusted).
    set +e
    "$bin" -max_total_time="$SECONDS_EACH" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=2048 -malloc_limit_mb=256 -artifact_prefix="$crashes/" \
        "$corpus" "$seeds" >"$log" 2>&1
    rc=$?
    set -e
    elapsed=$(echo "$(date +%s.%N) - $start" | bc)
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
    field() { sed -n "s/.* $1: \([^ ]*\).*/\1/p" <<<"$done_line"; }
    stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
    corp=$(field corp)
    result=ok
    if ((rc != 0)); then
        result="FAILED (exit $rc)"
        FAILED+=("$t")
        echo "---- $t failed; the end of its log ($log):" >&2
        grep -v '^#[0-9]' "$log" | tail -40 >&2
        ls -1t "$crashes" | head -3 | sed "s|^|  input: $crashes/|" >&2
    fi
    # "-" for what a run that stopped early did not print
    row=("$t" "$(printf '%.0f' "$elapsed")" "$(stat number_of_executed_units)"
        "$(stat average_exec_per_sec)" "$(field cov)" "$(field ft)" "${corp%%/*}"
        "$(stat new_units_added)" "$(stat peak_rss_mb)")
    ROWS+=("$(for v in "${row[@]}"; do printf '%s ' "${v:--}"; done)$result")
done

{
    printf '%-24s %7s %10s %8s %6s %7s %7s %5s %7s  %s\n' target seconds runs exec/s cov ft \
        corpus new rss_mb result
    for row in "${ROWS[@]}"; do
        read -r name secs runs eps cov ft corp new rss result <<<"$row"
        printf '%-24s %7s %10s %8s %6s %7s %7s %5s %7s  %s\n' "$name" "$secs" "$runs" "$eps" \
            "$cov" "$ft" "$corp" "$new" "$rss" "$result"
    done
}
if ((${#FAILED[@]})); then
    echo "fuzz: failed: ${FAILED[*]} (inputs under $BUILD/crashes/; docs/fuzzing.md)" >&2
    exit 1
fi
