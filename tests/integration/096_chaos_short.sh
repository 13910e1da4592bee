#!/usr/bin/env bash
# The chaos suite, short: every scenario in chaos/ against a local stack
# (tools/stack.sh, in this test's folder), each run checked against
# PostgreSQL by holdfast-chaos-driver: nothing missing, doubled or out of
# order. Each scenario must also show that its fault took effect (gateways
# fell back to Kafka, clients were cut and resumed, ingest answered 503...),
# or a passing run would prove nothing. Two mutants show the verdict can
# fail: an event PostgreSQL has but nobody was sent, and an acknowledged
# event removed from PostgreSQL.
# Under ASan+UBSan (the second build of `make test`) a subset runs: the
# services under each kind of fault are covered there by 051-076 already,
# and the CI budget is finite; the release build runs every scenario.
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "$1"
STACK_DIR=$HF_RUN/stack
OUT=$HF_RUN/chaos
mkdir -p "$OUT"
# Quicker failure detection than the defaults, as an operator may set them
# (the gateways' Redis heartbeat keeps its defaults: freeze-redis measures
# them). Deep reads from 1,000 records behind the head, so that the short
# deep-resume backlog (1,500 events on each resumed channel) is deep.
export HOLDFAST_LEASE_TTL=4s HOLDFAST_LEASE_RENEW=200ms HOLDFAST_PRODUCE_TIMEOUT=1s
export HOLDFAST_REDIS_RETRY=200ms HOLDFAST_KAFKA_DEEP_AFTER=1000
export HF_BIN
# The stack's parts are stopped by tools/stack.sh down (their PIDs are in
# STACK_DIR), set before it starts: a half-started stack is stopped too.
trap 'HOLDFAST_RUN_DIR=$STACK_DIR bash "$HF_ROOT/tools/stack.sh" down >/dev/null 2>&1;
      hf_stop_all; [[ -n ${KEEP:-} ]] && echo "kept $HF_RUN" >&2 || rm -rf "$HF_RUN"' EXIT
HOLDFAST_RUN_DIR=$STACK_DIR bash "$HF_ROOT/tools/stack.sh" up >"$HF_RUN/stack-up.log" 2>&1 ||
    hf_die "the stack did not start (see $HF_RUN/stack-up.log)"
source "$STACK_DIR/stack.env"
HF_PG_URL=$HOLDFAST_PG_URL
# the mutants' driver runs here, not through a scenario: it needs the tokens
export HOLDFAST_PUBLISH_TOKEN HOLDFAST_SUBSCRIBE_TOKEN

SUBSET=0
grep -q '^HOLDFAST_SANITIZE:BOOL=ON' "$1/CMakeCache.txt" 2>/dev/null && SUBSET=1

# scenario NAME SCRIPT [OPTIONS...]: a short run; its verdict is a check.
# With SUBSET, only the names in SUBSET_NAMES run (and their checks).
SUBSET_NAMES=" kill-redis kill-gateway restart-postgres slow-network "
scenario() {
    local name=$1 script=$2
    shift 2
    if ((SUBSET)) && [[ $SUBSET_NAMES != *" $name "* ]]; then
        hf_log "$name: not in the sanitizer build's subset"
        return 1
    fi
    local rc=0
    bash "$HF_ROOT/chaos/$script" --short --run-dir "$STACK_DIR" --out "$OUT" --name "$name" \
        "$@" >"$OUT/$name.log" 2>&1 || rc=$?
    ((rc == 0)) || cat "$OUT/$name.log" >&2
    hf_check_eq "$name: no loss, duplicate or reordering (its exit status)" 0 "$rc"
    sed -n '/^chaos /,$p' "$OUT/$name.txt" >&2 2>/dev/null || true
}
field() { # field NAME PYTHON-EXPR-ON-r
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$OUT/$1.json"
}
fallbacks() { sed -n 's/.*fell back from Redis to Kafka \([0-9]*\) times.*/\1/p' "$OUT/$1.txt"; }
suspicions() { sed -n 's/.*suspected a silent Redis \([0-9]*\) times.*/\1/p' "$OUT/$1.txt"; }

if scenario kill-redis kill-redis.sh; then
    hf_check "kill-redis: the gateways fell back to Kafka" test "$(fallbacks kill-redis)" -gt 0
fi

if scenario kill-redis-no-restart kill-redis.sh --no-repair; then
    hf_check "kill-redis --no-repair: fell back" test "$(fallbacks kill-redis-no-restart)" -gt 0
    hf_check_eq "kill-redis --no-repair: no repair mark" "-1.0" "$(field kill-redis-no-restart 'r["fault"]["repaired_at_s"]')"
fi

if scenario freeze-redis freeze-redis.sh --pause 3; then
    hf_check "freeze-redis: the heartbeat suspected the silent Redis" \
        test "$(suspicions freeze-redis)" -gt 0
fi

if scenario redis-buffer-cut redis-buffer-cut.sh; then
    hf_check "redis-buffer-cut: subscriptions were cut" test "$(fallbacks redis-buffer-cut)" -gt 0
    hf_check "redis-buffer-cut: ballast events delivered too" \
        test "$(field redis-buffer-cut 'r["deliveries"]["per_client_max"] - r["deliveries"]["per_client_min"]')" -gt 0
fi

if scenario kill-gateway kill-gateway.sh --cross-check 8; then
    hf_check "kill-gateway: clients were cut (1006)" test "$(field kill-gateway 'r["connections"]["closed_1006"]')" -gt 0
    hf_check "kill-gateway: and resubscribed" test "$(field kill-gateway 'r["connections"]["resubscribed"]')" -gt 0
    hf_check "kill-gateway: Python clients agree" grep -q "missing 0" "$OUT/kill-gateway.cross-check.txt"
fi

relay_pid=$(cat "$STACK_DIR/relay.pid")
if scenario kill-relay kill-relay.sh; then
    hf_check "kill-relay: the relay was killed and started again" test "$(cat "$STACK_DIR/relay.pid")" != "$relay_pid"
fi

if scenario kill-relay-replica kill-relay.sh --replica --pause 4; then
    hf_check "kill-relay --replica: the second relay stood by before the kill" \
        bash -c "! grep -q 'does not stand by yet' '$OUT/kill-relay-replica.log'"
    hf_check "kill-relay --replica: and took over after it" \
        grep -q "the second relay took over" "$OUT/kill-relay-replica.log"
fi

if scenario restart-postgres restart-postgres.sh; then
    hf_check "restart-postgres: ingest refused while it was down (retries)" \
        test "$(field restart-postgres 'r["published"]["retries"]')" -gt 0
fi

if scenario kill-postgres kill-postgres.sh; then
    hf_check "kill-postgres: ingest refused while it was down (retries)" \
        test "$(field kill-postgres 'r["published"]["retries"]')" -gt 0
    hf_check "kill-postgres: PostgreSQL was killed, not shut down" \
        grep -q "SIGKILL postgres" "$OUT/kill-postgres.log"
fi

if scenario kafka-brokers-down kafka-brokers-down.sh; then
    hf_check "kafka-brokers-down: the brokers went down and up" \
        grep -q "broker(s) all up" "$OUT/kafka-brokers-down.log"
fi

deep_read() { # records the gateways' deep readers read so far
    local url port total=0
    for url in $HOLDFAST_GATEWAY_URLS; do
        port=${url#ws://*:} port=${port%%/*}
        total=$((total + $(hf_metric "$port" 'holdfast_gateway_kafka_records_total{reader="deep"}')))
    done
    echo "$total"
}
deep_before=$(deep_read)
if scenario deep-resume deep-resume.sh; then
    hf_check "deep-resume: the resumers completed rounds, each checked" \
        grep -Eq "deep resume: [0-9]+ clients, [1-9][0-9]* rounds, .* 0 problems" "$OUT/deep-resume.txt"
    hf_check "deep-resume: the gateways' deep readers served them" test "$(deep_read)" -gt "$deep_before"
fi

if scenario slow-network slow-network.sh --pause 3; then
    hf_check "slow-network: the stalled link was noticed" test "$(fallbacks slow-network)" -gt 0
fi

if scenario relay-cut-postgres relay-cut-postgres.sh; then
    hf_check "relay-cut-postgres: the relay's connections were cut" \
        grep -q "connections reset" "$OUT/relay-cut-postgres.log"
    hf_check "relay-cut-postgres: the quiet channel got its event" \
        grep -q "only event reached its subscriber" "$OUT/relay-cut-postgres.log"
fi

# The table all.sh prints, from these results.
hf_check "the summary table" python3 "$HF_ROOT/chaos/table.py" "$OUT" kill-redis slow-network

# --- mutants: the verdict must fail when PostgreSQL disagrees ----------------
# mutant NAME SQL: a quiet run (no fault) during which SQL (with :prefix)
# runs once every client is subscribed; the driver must exit 1.
mutant() {
    local name=$1 sql=$2 prefix=chaos-mutant-$1-$$
    rm -f "$OUT/$name.ready"
    hf_spawn "driver-$name" "$HF_BIN/holdfast-chaos-driver" --scenario "$name" \
        --gateway-urls "$HOLDFAST_GATEWAY_URLS" --ingest-url "$HOLDFAST_INGEST_URL" \
        --pg-url "$HOLDFAST_PG_URL" --prefix "$prefix" --clients 8 --channels 4 --rate 100 \
        --duration 2s --idle 1s --drain 3s --out "$OUT/$name.json" --ready-file "$OUT/$name.ready"
    hf_wait_until 30 "$name subscribed" test -e "$OUT/$name.ready"
    sleep 1
    hf_psql -v prefix="$prefix" <<<"$sql" >/dev/null
    hf_wait_exit "driver-$name"
    hf_check_eq "mutant $name: the driver fails" 1 "$HF_EXIT_STATUS"
}
# An event in PostgreSQL with an offset nobody delivered: owed, missing.
mutant phantom "WITH ev AS (INSERT INTO holdfast.events (id, channel, partition, payload)
        VALUES (gen_random_uuid(), :'prefix' || ':0', holdfast.partition_for(:'prefix' || ':0'), '{}')
        RETURNING id, channel)
    INSERT INTO holdfast.event_offsets (kafka_offset, event_id, epoch_id, channel)
    SELECT 1000000000, ev.id, ep.id, ev.channel
    FROM ev, holdfast.meta m JOIN holdfast.epochs ep ON ep.epoch = m.epoch;"
hf_check "phantom: reported missing" test "$(field phantom 'r["missing"]')" -gt 0
# An acknowledged event gone from PostgreSQL.
mutant vanished "DELETE FROM holdfast.events WHERE idempotency_key LIKE '%:' || :'prefix' || '-3';"
hf_check "vanished: reported acknowledged but lost" test "$(field vanished 'r["acked_missing"]')" -eq 1

hf_checks_done
