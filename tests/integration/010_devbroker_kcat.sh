#!/usr/bin/env bash
# devbroker_kcat.sh - holdfast-devbroker against a real Kafka client (kcat).
#
# Starts the dev broker on ephemeral ports, produces 100 keyed messages with an
# idempotent producer, reads them back partition by partition and checks the exact set
# and per-partition order, checks metadata, drives the control port (all brokers down:
# produce fails; up: produce works) and checks SIGTERM gives a clean exit 0.
#
# usage: tests/integration/devbroker_kcat.sh [BUILD_DIR]   (default: build)
# HOLDFAST_DEVBROKER_BIN overrides BUILD_DIR/bin/holdfast-devbroker.
set -euo pipefail

BUILD_DIR=${1:-build}
BIN=${HOLDFAST_DEVBROKER_BIN:-$BUILD_DIR/bin/holdfast-devbroker}
TOPIC=holdfast.devbroker-test
PARTITIONS=6 # not the default 8, so we see the setting taken effect
BROKERS=3
NMSG=100

WORK=$(mktemp -d)
PID=""

cleanup() {
    if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 1 30); do
            kill -0 "$PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    if [[ -f $WORK/stderr ]]; then
        echo "--- devbroker stderr (last 20 lines) ---" >&2
        tail -n 20 "$WORK/stderr" >&2
    fi
    exit 1
}

[[ -x $BIN ]] || fail "no executable at $BIN (build first, or set HOLDFAST_DEVBROKER_BIN)"
command -v kcat >/dev/null || fail "kcat not installed"

# ---- flag handling ----------------------------------------------------------------------
"$BIN" --help | grep -q -- '--control-port' || fail "--help does not list --control-port"
"$BIN" --help | grep -q 'HOLDFAST_DEVBROKER_BROKERS' || fail "--help does not list env vars"
rc=0
"$BIN" --brokers 0 2>/dev/null || rc=$?
[[ $rc -eq 2 ]] || fail "--brokers 0 exited $rc, want 2"
rc=0
HOLDFAST_PARTITIONS=lots "$BIN" 2>/dev/null || rc=$?
[[ $rc -eq 2 ]] || fail "HOLDFAST_PARTITIONS=lots exited $rc, want 2"

# ---- start ------------------------------------------------------------------------------
# Partitions come from the env, brokers from a flag that overrides a wrong env value.
HOLDFAST_PARTITIONS=$PARTITIONS HOLDFAST_DEVBROKER_BROKERS=1 \
    "$BIN" --brokers "$BROKERS" --topic "$TOPIC" --bootstrap-file "$WORK/bootstrap" \
    --control-port 0 >"$WORK/stdout" 2>"$WORK/stderr" &
PID=$!

for _ in $(seq 1 100); do
    [[ -s $WORK/bootstrap ]] && break
    kill -0 "$PID" 2>/dev/null || fail "devbroker exited during startup"
    sleep 0.1
done
[[ -s $WORK/bootstrap ]] || fail "no bootstrap file after 10 s"
BS=$(head -n 1 "$WORK/bootstrap")
grep -qx "bootstrap=$BS" "$WORK/stdout" || fail "stdout bootstrap line does not match the file"
CPORT=$(sed -n 's/^control=127\.0\.0\.1:\([0-9]*\)$/\1/p' "$WORK/stdout")
[[ -n $CPORT ]] || fail "no control=127.0.0.1:PORT line on stdout"
echo "devbroker pid $PID bootstrap $BS control $CPORT"

# ---- control port helper ----------------------------------------------------------------
# ctl CMD: sends one line, prints the one-line reply.
ctl() {
    local reply=""
    exec 3<>"/dev/tcp/127.0.0.1/$CPORT" || fail "cannot connect to control port"
    printf '%s\n' "$1" >&3
    read -r -t 5 reply <&3 || true
    exec 3<&- 3>&-
    printf '%s\n' "$reply"
}
expect_ctl() { # expect_ctl CMD REPLY-PREFIX
    local got
    got=$(ctl "$1")
    [[ $got == "$2"* ]] || fail "control '$1' replied '$got', want '$2...'"
}

# ---- metadata ---------------------------------------------------------------------------
timeout 15 kcat -L -b "$BS" >"$WORK/meta" 2>"$WORK/meta.err" || fail "kcat -L failed"
grep -q "^ $BROKERS brokers:" "$WORK/meta" || fail "metadata does not show $BROKERS brokers"
grep -q "topic \"$TOPIC\" with $PARTITIONS partitions:" "$WORK/meta" ||
    fail "metadata does not show $TOPIC with $PARTITIONS partitions"
grep -q '^ 1 topics:' "$WORK/meta" || fail "more than the configured topic exists"

# ---- produce 100 keyed messages ---------------------------------------------------------
# 17 keys over 100 messages: several messages per key, so per-key order is checked too.
for i in $(seq 1 $NMSG); do
    printf 'key-%02d:msg-%03d\n' $((i % 17)) "$i"
done >"$WORK/produced"
timeout 30 kcat -P -b "$BS" -t "$TOPIC" -K : -X enable.idempotence=true -X acks=all \
    -X message.timeout.ms=10000 <"$WORK/produced" 2>"$WORK/produce.err" ||
    fail "kcat -P failed: $(tail -n 3 "$WORK/produce.err")"

# consume_all FILE: every partition from the beginning, lines "PARTITION OFFSET KEY:VALUE".
consume_all() {
    : >"$1"
    for ((p = 0; p < PARTITIONS; p++)); do
        timeout 20 kcat -C -b "$BS" -t "$TOPIC" -p "$p" -o beginning -e -q \
            -f '%p %o %k:%s\n' >>"$1" 2>>"$WORK/consume.err" ||
            fail "kcat -C on partition $p failed: $(tail -n 3 "$WORK/consume.err")"
    done
}

consume_all "$WORK/consumed"
n=$(wc -l <"$WORK/consumed")
[[ $n -eq $NMSG ]] || fail "consumed $n messages, want $NMSG"

# Exact set.
diff <(sort "$WORK/produced") <(cut -d' ' -f3 "$WORK/consumed" | sort) >"$WORK/set.diff" ||
    fail "consumed set differs from produced set: $(head -n 5 "$WORK/set.diff")"

# Per partition: offsets 0..n-1 in order, every key in exactly one partition, and the
# messages in the order they were produced (produced list filtered to that partition).
awk '
    NR == FNR { part = $1; off = $2; split($3, kv, ":")
                if (off != next_off[part]++) { print "partition " part ": offset " off " out of order"; bad = 1 }
                if ((kv[1] in kp) && kp[kv[1]] != part) { print "key " kv[1] " in two partitions"; bad = 1 }
                kp[kv[1]] = part; got[part] = got[part] " " $3; used[part] = 1; next }
    { split($0, kv, ":"); want[kp[kv[1]]] = want[kp[kv[1]]] " " $0 }
    END { for (p in got) if (got[p] != want[p]) { print "partition " p " order differs"; bad = 1 }
          np = 0; for (p in used) np++
          if (np < 2) { print "all messages in one partition: keys not partitioned"; bad = 1 }
          exit bad }
' "$WORK/consumed" "$WORK/produced" >"$WORK/order.err" || fail "$(cat "$WORK/order.err")"
echo "ok: $NMSG messages, exact set and per-partition order"

# ---- control port -----------------------------------------------------------------------
expect_ctl ping ok
expect_ctl bogus 'error:'
expect_ctl "down $((BROKERS + 1))" 'error:'
expect_ctl 'rtt 1' 'error:'
expect_ctl 'rtt 1 20' ok
expect_ctl 'rtt 1 0' ok
expect_ctl 'down 2' ok
expect_ctl 'up 2' ok
# An over-long line is refused and the connection closed.
exec 3<>"/dev/tcp/127.0.0.1/$CPORT"
printf '%0300d\n' 0 >&3 || true
reply=""
read -r -t 5 reply <&3 2>/dev/null || true
[[ $reply == 'error:'* ]] || fail "over-long line replied '$reply', want error"
rest=""
if read -r -t 5 rest <&3 2>/dev/null; then fail "connection still open after over-long line ('$rest')"; fi
exec 3<&- 3>&-

expect_ctl down ok
rc=0
echo 'down-key:while-down' | timeout 15 kcat -P -b "$BS" -t "$TOPIC" -K : \
    -X enable.idempotence=true -X acks=all -X message.timeout.ms=2000 \
    >/dev/null 2>"$WORK/down.err" || rc=$?
[[ $rc -ne 0 ]] || fail "produce succeeded with all brokers down"
echo "ok: produce with brokers down failed (exit $rc)"

expect_ctl up ok
echo 'up-key:after-up' | timeout 30 kcat -P -b "$BS" -t "$TOPIC" -K : \
    -X enable.idempotence=true -X acks=all -X message.timeout.ms=10000 \
    2>"$WORK/up.err" || fail "produce after up failed: $(tail -n 3 "$WORK/up.err")"
consume_all "$WORK/consumed2"
grep -q ' up-key:after-up$' "$WORK/consumed2" || fail "message produced after up not found"
if grep -q 'while-down' "$WORK/consumed2"; then fail "message from the outage was stored"; fi
n=$(wc -l <"$WORK/consumed2")
[[ $n -eq $((NMSG + 1)) ]] || fail "after up: $n messages stored, want $((NMSG + 1))"
echo "ok: brokers down/up via control port"

# ---- SIGTERM ----------------------------------------------------------------------------
kill -TERM "$PID"
for _ in $(seq 1 50); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$PID" 2>/dev/null && fail "still running 5 s after SIGTERM"
rc=0
wait "$PID" || rc=$?
PID=""
[[ $rc -eq 0 ]] || fail "exit status $rc after SIGTERM, want 0"
[[ ! -e $WORK/bootstrap ]] || fail "bootstrap file left behind after exit"
echo "PASS: devbroker_kcat"
