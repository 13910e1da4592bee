# chaos/lib.sh - what every chaos scenario shares: options, the target
# (the local stack, or a Kubernetes deployment with --k8s), the load driver
# run around the fault, and the verdict. Sourced by chaos/<scenario>.sh,
# which defines:
#   chaos_setup      (optional) start what the scenario needs besides the stack
#   chaos_inject     break something
#   chaos_repair     undo it (not called with --no-repair)
#   chaos_teardown   (optional) stop what chaos_setup started
#   chaos_verdict    (optional) the scenario's own checks once the driver is
#                    done: one summary line on stdout, non-zero on failure
# and then calls chaos_main "$@".
#
# Timeline of a run: clients subscribe; publishing starts; after
# --fault-after seconds chaos_inject runs and the driver gets SIGUSR1; after
# --pause seconds chaos_repair runs and the driver gets SIGUSR2; publishing
# goes on to --duration; the driver drains and checks everything against
# PostgreSQL. Every wait is bounded; everything started is stopped by PID.
set -euo pipefail
CHAOS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HF_ROOT=$(cd "$CHAOS_DIR/.." && pwd)
source "$HF_ROOT/tests/support/lib.sh"

CHAOS_NAME=$(basename "$0" .sh)
CHAOS_RUN_DIR=${HOLDFAST_RUN_DIR:-$HF_ROOT/.run}
HF_BIN=${HF_BIN:-$HF_ROOT/build/bin}
CHAOS_CLIENTS=200
CHAOS_CHANNELS=20
CHAOS_RATE=200
CHAOS_DURATION=30
CHAOS_FAULT_AFTER=
CHAOS_PAUSE=8
CHAOS_REPAIR=1
CHAOS_K8S=0
CHAOS_NAMESPACE=holdfast
CHAOS_OUT=
CHAOS_DRY_RUN=0
CHAOS_CROSS_CHECK=0

chaos_usage() {
    cat <<EOF
usage: chaos/$CHAOS_NAME.sh [options]
  against the local stack (make up; --run-dir, default .run) or, with --k8s,
  a deployment of deploy/k8s/ reached through kubectl port-forward.
  --clients N        WebSocket clients (default $CHAOS_CLIENTS)
  --channels M       channels (default $CHAOS_CHANNELS)
  --rate R           events per second through ingest (default $CHAOS_RATE)
  --duration S       seconds of publishing (default $CHAOS_DURATION)
  --fault-after S    seconds of publishing before the fault (default a quarter of --duration)
  --pause S          seconds the fault lasts before the repair (default $CHAOS_PAUSE)
  --no-repair        never repair within the run (e.g. Redis stays dead)
  --short            a quick run: 40 clients, 8 channels, 100/s, 5 s, fault after 1 s,
                     2 s pause, 1 s idle to end (later options still apply)
  --out DIR          results here: NAME.json (the driver's), NAME.txt (summary)
                     (default RUN_DIR/chaos)
  --name NAME        the run's name in results (default the scenario's)
  --run-dir DIR      the local stack's folder (default \$HOLDFAST_RUN_DIR or .run)
  --k8s              target the current kubectl context instead
  --namespace NS     with --k8s (default $CHAOS_NAMESPACE)
  --cross-check N    also N clients on Python's websockets (not ours), checked by
                     tests/support/ws_verify.py against PostgreSQL
  --dry-run          with --k8s: print the kubectl commands instead of running them
${CHAOS_HELP:-}
EOF
}

chaos_options() {
    while (($#)); do
        case $1 in
        --clients) CHAOS_CLIENTS=$2; shift ;;
        --channels) CHAOS_CHANNELS=$2; shift ;;
        --rate) CHAOS_RATE=$2; shift ;;
        --duration) CHAOS_DURATION=$2; shift ;;
        --fault-after) CHAOS_FAULT_AFTER=$2; shift ;;
        --pause) CHAOS_PAUSE=$2; shift ;;
        --no-repair) CHAOS_REPAIR=0 ;;
        --short)
            CHAOS_CLIENTS=40 CHAOS_CHANNELS=8 CHAOS_RATE=100 CHAOS_DURATION=5
            CHAOS_FAULT_AFTER=1 CHAOS_PAUSE=2
            CHAOS_DRIVER_ARGS+=(--idle 1s)
            ;;
        --out) CHAOS_OUT=$2; shift ;;
        --cross-check) CHAOS_CROSS_CHECK=$2; shift ;;
        --name) CHAOS_NAME=$2; shift ;;
        --run-dir) CHAOS_RUN_DIR=$2; shift ;;
        --k8s) CHAOS_K8S=1 ;;
        --namespace) CHAOS_NAMESPACE=$2; shift ;;
        --dry-run) CHAOS_DRY_RUN=1 ;;
        -h | --help) chaos_usage; exit 0 ;;
        *)
            if declare -F chaos_option >/dev/null && chaos_option "$1" "${2:-}"; then
                [[ $CHAOS_OPTION_TAKES_VALUE == 1 ]] && shift
            else
                chaos_usage >&2
                exit 2
            fi
            ;;
        esac
        shift
    done
    ((CHAOS_K8S || !CHAOS_DRY_RUN)) || hf_die "--dry-run goes with --k8s"
    [[ -n $CHAOS_FAULT_AFTER ]] || CHAOS_FAULT_AFTER=$(awk "BEGIN{print $CHAOS_DURATION/4}")
    [[ -n $CHAOS_OUT ]] || CHAOS_OUT=$CHAOS_RUN_DIR/chaos
    mkdir -p "$CHAOS_OUT"
    CHAOS_OUT=$(cd "$CHAOS_OUT" && pwd)
}

# The local stack: its endpoints, and this run's own folder for what the
# scenario starts (second relay, proxy, ...), stopped by PID at the end.
chaos_local_attach() {
    local env=$CHAOS_RUN_DIR/stack.env
    [[ -f $env ]] || hf_die "no local stack in $CHAOS_RUN_DIR: start it with 'make up' (or tools/stack.sh up)"
    set -a
    source "$env"
    set +a
    HF_PG_URL=$HOLDFAST_PG_URL HF_REDIS_URL=$HOLDFAST_REDIS_URL
    HF_KAFKA_BROKERS=$HOLDFAST_KAFKA_BROKERS HF_KAFKA_CONTROL=$HOLDFAST_KAFKA_CONTROL
    HF_TOPIC=$HOLDFAST_TOPIC
    CHAOS_STACK_RUN=$(cd "$CHAOS_RUN_DIR" && pwd)
    hf_init "$CHAOS_OUT/$CHAOS_NAME.parts"
    CHAOS_GATEWAY_URLS=$HOLDFAST_GATEWAY_URLS
    local url port
    for url in $HOLDFAST_GATEWAY_URLS; do
        port=${url#ws://*:}
        CHAOS_METRICS_PORTS+=("${port%%/*}")
    done
}

# chaos_fallbacks_read [METRIC]: a gateway counter (default how often they
# fell back from Redis to Kafka, holdfast_gateway_redis_fallbacks_total),
# one "PORT VALUE" line per gateway.
chaos_fallbacks_read() {
    local port metric=${1:-holdfast_gateway_redis_fallbacks_total}
    for port in "${CHAOS_METRICS_PORTS[@]}"; do
        echo "$port $(hf_metric "$port" "$metric" 2>/dev/null || echo 0)"
    done
}

# chaos_fallbacks_since BEFORE [METRIC]: the increase since BEFORE (a
# restarted gateway counts from 0 again).
chaos_fallbacks_since() {
    local before=$1 port now was total=0
    while read -r port now; do
        was=$(awk -v p="$port" '$1 == p {print $2}' <<<"$before")
        now=${now:-0} was=${was:-0}
        ((now >= was)) && total=$((total + now - was)) || total=$((total + now))
    done < <(chaos_fallbacks_read "${2:-}")
    echo "$total"
}

# chaos_stack_pid PART: the PID of a part of the local stack.
chaos_stack_pid() { cat "$CHAOS_STACK_RUN/$1.pid"; }

# chaos_stack_signal PART SIG
chaos_stack_signal() {
    local pid
    pid=$(chaos_stack_pid "$1")
    hf_log "$CHAOS_NAME: SIG$2 $1 (pid $pid)"
    kill "-$2" "$pid"
}

# chaos_stack_restore: starts whatever part of the local stack is not
# running, on its old address (tools/stack.sh up).
chaos_stack_restore() {
    hf_log "$CHAOS_NAME: bringing the stack back (tools/stack.sh up)"
    HOLDFAST_RUN_DIR=$CHAOS_STACK_RUN HF_BIN=$HF_BIN bash "$HF_ROOT/tools/stack.sh" up \
        >>"$CHAOS_OUT/$CHAOS_NAME.stack.log" 2>&1 ||
        hf_die "tools/stack.sh up failed (see $CHAOS_OUT/$CHAOS_NAME.stack.log)"
}

# The faults, on the local stack (chaos/k8s.sh redefines them for --k8s).
chaos_target_kill() { chaos_stack_signal "$1" KILL; }
chaos_target_freeze() { chaos_stack_signal "$1" STOP; }
chaos_target_thaw() { chaos_stack_signal "$1" CONT; }
chaos_target_restore() { chaos_stack_restore; }
# chaos_target_stop PART: a clean stop (PostgreSQL: fast shutdown), waited for.
chaos_target_stop() {
    local sig=TERM pid
    [[ $1 == postgres ]] && sig=INT
    pid=$(chaos_stack_pid "$1")
    chaos_stack_signal "$1" "$sig"
    hf_wait_until 30 "$1 stopped" hf_pid_gone "$pid" || chaos_stack_signal "$1" KILL
}
chaos_target_kafka() { # chaos_target_kafka down|up [BROKER]
    hf_log "$CHAOS_NAME: Kafka broker(s) ${2:-all} $1"
    hf_kafka_control "$@" || hf_die "the dev broker's control port refused '$*'"
}
chaos_target_redis_cli() { chaos_redis_cli "$@"; }

# chaos_redis_cli ARGS...: redis-cli against the stack's Redis.
chaos_redis_cli() {
    local url=${HOLDFAST_REDIS_URL#redis://} password=
    local hostport=${url##*@}
    [[ $url == *@* ]] && password=${url%@*} && password=${password#*:}
    REDISCLI_AUTH=$password redis-cli -h "${hostport%:*}" -p "${hostport##*:}" "$@"
}

# The driver in the background; returns once every client is subscribed.
chaos_driver_start() {
    rm -f "$CHAOS_OUT/$CHAOS_NAME.ready"
    : >"$HF_RUN/driver.log"
    hf_spawn driver "$HF_BIN/holdfast-chaos-driver" --scenario "$CHAOS_NAME" \
        --gateway-urls "$CHAOS_GATEWAY_URLS" --ingest-url "$HOLDFAST_INGEST_URL" \
        --pg-url "$HOLDFAST_PG_URL" --prefix "$CHAOS_PREFIX" --clients "$CHAOS_CLIENTS" \
        --channels "$CHAOS_CHANNELS" --rate "$CHAOS_RATE" --duration "${CHAOS_DURATION}s" \
        --out "$CHAOS_OUT/$CHAOS_NAME.json" --ready-file "$CHAOS_OUT/$CHAOS_NAME.ready" \
        "${CHAOS_DRIVER_ARGS[@]}"
    hf_wait_until 90 "$CHAOS_NAME: clients subscribed" \
        bash -c "test -e '$CHAOS_OUT/$CHAOS_NAME.ready' || ! kill -0 $(hf_pid driver) 2>/dev/null" &&
        test -e "$CHAOS_OUT/$CHAOS_NAME.ready" ||
        hf_die "$CHAOS_NAME: the driver did not get its clients subscribed (see $HF_RUN/driver.log)"
}

# The cross-check: clients the project did not write, on the same channels.
chaos_cross_check_start() {
    ((CHAOS_CROSS_CHECK > 0)) || return 0
    local channels=() i
    for ((i = 0; i < CHAOS_CHANNELS; i++)); do channels+=("$CHAOS_PREFIX:$i"); done
    hf_log "$CHAOS_NAME: $CHAOS_CROSS_CHECK Python websockets clients as a cross-check"
    local IFS=,
    hf_ws_clients_start --urls "$(tr ' ' , <<<"$CHAOS_GATEWAY_URLS")" \
        --clients "$CHAOS_CROSS_CHECK" --channels "${channels[*]}" \
        --deadline "$(awk "BEGIN{print $CHAOS_DURATION + 300}")"
}

# Sets CHAOS_CROSS_RC (0 when not asked for).
chaos_cross_check_finish() {
    CHAOS_CROSS_RC=0
    ((CHAOS_CROSS_CHECK > 0)) || return 0
    hf_ws_clients_finish
    hf_ws_verify >"$CHAOS_OUT/$CHAOS_NAME.cross-check.txt" 2>&1 || CHAOS_CROSS_RC=1
    echo "  cross-check ($CHAOS_CROSS_CHECK Python websockets clients):" \
        "$(head -n 1 "$CHAOS_OUT/$CHAOS_NAME.cross-check.txt")"
}

chaos_driver_mark() {
    kill "-$1" "$(hf_pid driver)" 2>/dev/null || hf_log "$CHAOS_NAME: the driver ended early"
}

# Waits for the driver's verdict; sets CHAOS_RC.
chaos_driver_finish() {
    # Publishing, retries (--retry, 60 s) and the drain (60 s) are bounded
    # in the driver; this bounds the rest.
    local deadline=$((SECONDS + ${CHAOS_DURATION%.*} + 240))
    while hf_alive driver && ((SECONDS < deadline)); do sleep 0.2; done
    if hf_alive driver; then
        hf_log "$CHAOS_NAME: the driver did not finish in time; stopping it (it still reports)"
        hf_stop driver TERM 30
        CHAOS_RC=1
    else
        hf_wait_exit driver
        CHAOS_RC=$HF_EXIT_STATUS
    fi
    {
        sed -n '/^chaos /,$p' "$HF_RUN/driver.log"
        if ((${#CHAOS_METRICS_PORTS[@]})); then
            CHAOS_FALLBACKS=$(chaos_fallbacks_since "$CHAOS_FALLBACKS_BEFORE")
            echo "  gateways fell back from Redis to Kafka $CHAOS_FALLBACKS times" \
                "(holdfast_gateway_redis_fallbacks_total)"
            echo "  gateways suspected a silent Redis" \
                "$(chaos_fallbacks_since "$CHAOS_SUSPICIONS_BEFORE" holdfast_gateway_redis_suspicions_total)" \
                "times (holdfast_gateway_redis_suspicions_total)"
        fi
    } | tee "$CHAOS_OUT/$CHAOS_NAME.txt"
}

chaos_cleanup() {
    local rc=$?
    # A fault never repaired (--no-repair, or an error): undone first.
    if ((CHAOS_INJECTED && !CHAOS_REPAIRED)); then chaos_repair || true; fi
    if declare -F chaos_teardown >/dev/null; then chaos_teardown || true; fi
    hf_stop_all
    ((CHAOS_K8S)) || chaos_stack_restore || true
    ((!CHAOS_DRY_RUN)) || rm -rf "$HF_RUN"
    return $rc
}

# --k8s --dry-run: the scenario's Kubernetes operations, printed, no load.
chaos_dry_run() {
    CHAOS_PREFIX=chaos-dry-run
    if declare -F chaos_setup >/dev/null; then chaos_setup; fi
    chaos_inject
    ((CHAOS_REPAIR)) && chaos_repair
    CHAOS_REPAIRED=1
    return 0
}

# chaos_proxy_start TARGET: holdfast-faultproxy in front of TARGET
# (host:port) for the scenarios that need a link of their own to break;
# sets CHAOS_PROXY_LISTEN (where to connect instead) and
# CHAOS_PROXY_CONTROL (its control port). Stopped by PID like the rest.
chaos_proxy_start() {
    hf_spawn proxy "$HF_BIN/holdfast-faultproxy" --listen 127.0.0.1:0 --target "$1" \
        --ready-file "$HF_RUN/proxy.ready"
    hf_wait_until 10 "fault proxy ready" test -s "$HF_RUN/proxy.ready" ||
        hf_die "the fault proxy did not start (see $HF_RUN/proxy.log)"
    CHAOS_PROXY_LISTEN=$(sed -n 's/^listen=//p' "$HF_RUN/proxy.ready")
    CHAOS_PROXY_CONTROL=$(sed -n 's/^control=127.0.0.1://p' "$HF_RUN/proxy.ready")
}

# chaos_proxy COMMAND: one command to the proxy's control port (faultproxy
# --help lists them); true when it answered ok.
chaos_proxy() {
    local reply
    exec 8<>"/dev/tcp/127.0.0.1/$CHAOS_PROXY_CONTROL" || return 1
    printf '%s\n' "$*" >&8
    IFS= read -r -t 5 reply <&8 || true
    exec 8>&-
    hf_log "$CHAOS_NAME: proxy $*: $reply"
    [[ $reply == ok* ]]
}

CHAOS_DRIVER_ARGS=()
CHAOS_METRICS_PORTS=()
CHAOS_INJECTED=0
CHAOS_REPAIRED=0
CHAOS_FALLBACKS_BEFORE=
CHAOS_SUSPICIONS_BEFORE=
HF_STARTED=()

chaos_main() {
    chaos_options "$@"
    if ((CHAOS_K8S)); then
        source "$CHAOS_DIR/k8s.sh"
        chaos_k8s_attach
    else
        chaos_local_attach
    fi
    # No result of an earlier run may pass for this one's.
    rm -f "$CHAOS_OUT/$CHAOS_NAME".{json,txt,cross-check.txt}
    trap chaos_cleanup EXIT
    if ((CHAOS_DRY_RUN)); then
        chaos_dry_run
        return 0
    fi
    if declare -F chaos_setup >/dev/null; then chaos_setup; fi
    CHAOS_FALLBACKS_BEFORE=$(chaos_fallbacks_read)
    CHAOS_SUSPICIONS_BEFORE=$(chaos_fallbacks_read holdfast_gateway_redis_suspicions_total)
    CHAOS_PREFIX="chaos-$CHAOS_NAME-$(date +%s)-$$"
    chaos_cross_check_start
    chaos_driver_start
    hf_log "$CHAOS_NAME: publishing $CHAOS_RATE/s for ${CHAOS_DURATION}s; fault after ${CHAOS_FAULT_AFTER}s"
    sleep "$CHAOS_FAULT_AFTER"
    # Marked as the fault begins: events published while it takes hold
    # (PostgreSQL shutting down, ...) count as during it.
    chaos_driver_mark USR1
    local injected_at=$EPOCHREALTIME
    CHAOS_INJECTED=1
    chaos_inject
    if ((CHAOS_REPAIR)); then
        # The pause counts from the start of the fault (injecting may take
        # a while: a fast shutdown, a fault in steps).
        sleep "$(awk "BEGIN{r = $CHAOS_PAUSE - ($EPOCHREALTIME - $injected_at); print (r > 0 ? r : 0)}")"
        chaos_repair
        CHAOS_REPAIRED=1
        chaos_driver_mark USR2
    fi
    chaos_driver_finish
    chaos_cross_check_finish >"$HF_RUN/cross-check.line"
    tee -a "$CHAOS_OUT/$CHAOS_NAME.txt" <"$HF_RUN/cross-check.line"
    ((CHAOS_RC != 0)) || CHAOS_RC=$CHAOS_CROSS_RC
    # A scenario's own checks (chaos_verdict, optional), beside the driver's.
    if declare -F chaos_verdict >/dev/null; then
        local verdict_rc=0
        chaos_verdict >"$HF_RUN/verdict.line" || verdict_rc=1
        tee -a "$CHAOS_OUT/$CHAOS_NAME.txt" <"$HF_RUN/verdict.line"
        ((CHAOS_RC != 0)) || CHAOS_RC=$verdict_rc
    fi
    return "$CHAOS_RC"
}
