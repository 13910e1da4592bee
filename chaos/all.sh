#!/usr/bin/env bash
# all.sh - every chaos scenario in turn against one stack, then a table.
#
#   chaos/all.sh [--own-stack] [--k8s ...] [scenario options...]
#
# --own-stack starts a fresh local stack in .run/chaos-stack (tools/stack.sh)
# and stops it at the end (what `make chaos` does). Other options go to
# every scenario (see chaos/kill-redis.sh --help). Exit 1 if any failed.
set -euo pipefail
CHAOS_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$CHAOS_DIR/.." && pwd)
OWN_STACK=0 K8S=0 ARGS=() OUT=
RUN_DIR=${HOLDFAST_RUN_DIR:-$ROOT/.run}
while (($#)); do
    case $1 in
    --own-stack) OWN_STACK=1 ;;
    --k8s) K8S=1; ARGS+=("$1") ;;
    --run-dir) RUN_DIR=$2; shift ;;
    --out) OUT=$2; shift ;;
    *) ARGS+=("$1") ;;
    esac
    shift
done
if ((OWN_STACK)); then
    RUN_DIR=$ROOT/.run/chaos-stack
    trap 'HOLDFAST_RUN_DIR=$RUN_DIR bash "$ROOT/tools/stack.sh" down' EXIT
    HOLDFAST_RUN_DIR=$RUN_DIR bash "$ROOT/tools/stack.sh" up
fi
OUT=${OUT:-$RUN_DIR/chaos}
mkdir -p "$OUT"

# name, then the scenario script and its own options
RUNS=(
    "kill-redis kill-redis.sh --cross-check 20"
    "kill-redis-no-restart kill-redis.sh --no-repair"
    "freeze-redis freeze-redis.sh"
    "redis-buffer-cut redis-buffer-cut.sh"
    "kill-gateway kill-gateway.sh --cross-check 20"
    "kill-relay kill-relay.sh"
    "kill-relay-replica kill-relay.sh --replica"
    "restart-postgres restart-postgres.sh"
    "kill-postgres kill-postgres.sh"
    "kafka-brokers-down kafka-brokers-down.sh"
    "deep-resume deep-resume.sh"
    "deep-resume-redis-down deep-resume.sh --redis-down"
)
((K8S)) || RUNS+=("slow-network slow-network.sh" "relay-cut-postgres relay-cut-postgres.sh")

names=() failed=0
for run in "${RUNS[@]}"; do
    read -r name script opts <<<"$run"
    echo
    echo "=== $name"
    # shellcheck disable=SC2086 # opts are words
    if ! bash "$CHAOS_DIR/$script" --name "$name" --run-dir "$RUN_DIR" --out "$OUT" $opts \
        "${ARGS[@]}"; then
        failed=$((failed + 1))
    fi
    names+=("$name")
done
echo
python3 "$CHAOS_DIR/table.py" "$OUT" "${names[@]}" | tee "$OUT/summary.txt"
echo "results: $OUT (NAME.json, NAME.txt, summary.txt)"
((failed == 0))
