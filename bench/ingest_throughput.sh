#!/usr/bin/env bash
# ingest_throughput.sh - events/s committed through POST /v1/events, beside
# the same machine's raw PostgreSQL rate for the same rows (pgbench), and
# holdfast.publish() from SQL beside the same inserts.
#
#   bench/ingest_throughput.sh [BUILD_DIR] [SECONDS_PER_RUN] [CLIENT_COUNTS]
#   e.g. bench/ingest_throughput.sh build 10 "1 32"
#
# PostgreSQL runs with its durable defaults (fsync on, synchronous_commit
# on) and wal_level logical, as Holdfast needs. Ingest: single events and
# batches of 100, driven by wrk with keep-alive; only 2xx answers count,
# and the per-subject publish limit is off (--publish-rate 0: this
# measures capacity, not policy). Raw: pgbench inserting the same
# holdfast.events rows (id, channel, partition, payload; nothing else, no
# trigger, no notification), one transaction per event (or per 100
# events), same client counts. Then holdfast.publish() from 16 pgbench
# clients beside the INSERT it runs, sent as a plain statement from 16:
# publishing transactions must not serialize on anything the plain ones do
# not (a NOTIFY at commit did: 0.43 x).
# Prints a table and writes bench/results/ingest_throughput.json.
set -euo pipefail
BUILD=${1:-build}
DURATION=${2:-10}
CLIENTS=${3:-1 32}
HF_BIN=$(cd "$BUILD" && pwd)/bin
source "$(dirname "$0")/../tests/support/lib.sh"
hf_init "$(mktemp -d /tmp/holdfast-bench.XXXXXX)"
trap 'hf_stop_all; rm -rf "$HF_RUN"' EXIT
command -v wrk >/dev/null || hf_die "wrk is needed (apt-get install wrk)"
command -v pgbench >/dev/null || PATH=$HF_PG_BIN:$PATH

hf_pg_start "" max_connections=300
hf_migrate
hf_ingest_start "" --writers 4 --publish-rate 0

single='{"channel":"bench:1","data":{"n":1,"text":"hello holdfast"}}'
batch=$(python3 -c 'import json; print(json.dumps([{"channel":"bench:%d" % (i % 10),"data":{"n":i,"text":"hello holdfast"}} for i in range(100)]))')

wrk_rate() { # BODY CLIENTS -> requests/s (2xx only)
    local body=$1 c=$2
    cat >"$HF_RUN/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[$body]==]
LUA
    local threads=$((c < 2 ? 1 : 2))
    wrk -t "$threads" -c "$c" -d "${DURATION}s" -s "$HF_RUN/post.lua" "$HF_INGEST_URL/v1/events" >"$HF_RUN/wrk.out"
    if grep -q 'Non-2xx' "$HF_RUN/wrk.out"; then
        hf_log "wrk saw non-2xx answers (not counted):"
        cat "$HF_RUN/wrk.out" >&2
    fi
    # Only 2xx answers count: "N requests in Ts" minus the non-2xx ones.
    awk '/ requests in / {n = $1; t = $4 + 0} /^  Non-2xx/ {bad = $NF}
         END {printf "%.1f\n", (n - bad) / t}' "$HF_RUN/wrk.out"
}

pgbench_rate() { # ROWS_PER_TX CLIENTS -> transactions/s
    local rows=$1 c=$2
    cat >"$HF_RUN/raw.sql" <<SQL
INSERT INTO holdfast.events (id, channel, partition, payload)
SELECT gen_random_uuid(), 'bench:' || (g % 10), 0, '\x7b226e223a312c2274657874223a2268656c6c6f20686f6c6466617374227d'::bytea
FROM generate_series(1, $rows) g;
SQL
    pgbench -n -h 127.0.0.1 -p "$HF_PG_PORT" -U holdfast -c "$c" -j "$((c < 2 ? 1 : 2))" \
        -T "$DURATION" -f "$HF_RUN/raw.sql" holdfast 2>/dev/null |
        awk '/^tps/ {print $3}'
}

printf '%-8s %-8s %14s %14s %8s\n' clients shape "ingest ev/s" "raw pg ev/s" ratio
results=()
for c in $CLIENTS; do
    for shape in single batch100; do
        if [[ $shape == single ]]; then
            req=$(wrk_rate "$single" "$c"); ev=$req
            raw=$(pgbench_rate 1 "$c")
        else
            req=$(wrk_rate "$batch" "$c"); ev=$(python3 -c "print($req*100)")
            raw=$(python3 -c "print($(pgbench_rate 100 "$c")*100)")
        fi
        ratio=$(python3 -c "print('%.2f' % ($ev / $raw))")
        printf '%-8s %-8s %14.0f %14.0f %8s\n' "$c" "$shape" "$ev" "$raw" "$ratio"
        results+=("{\"clients\":$c,\"shape\":\"$shape\",\"ingest_events_per_s\":$ev,\"raw_pg_events_per_s\":$raw,\"ratio\":$ratio}")
    done
done
# holdfast.publish() against the same rows inserted plainly, 16 clients each
cat >"$HF_RUN/publish.sql" <<'SQL'
\set c random(1, 10)
SELECT holdfast.publish('bench:' || :c, '{"n":1,"text":"hello holdfast"}'::jsonb);
SQL
# the INSERT publish() runs, as a statement of its own: the same id, the
# same partition, the same bytes
cat >"$HF_RUN/same_insert.sql" <<'SQL'
\set c random(1, 10)
INSERT INTO holdfast.events (id, channel, partition, payload)
VALUES (holdfast.uuid_v7(), 'bench:' || :c, holdfast.partition_for('bench:' || :c, 8),
        convert_to('{"n":1,"text":"hello holdfast"}'::jsonb::text, 'UTF8'));
SQL
tps() { pgbench -n -h 127.0.0.1 -p "$HF_PG_PORT" -U holdfast -c 16 -j 2 -T "$DURATION" -f "$1" holdfast 2>/dev/null |
    awk '/^tps/ {print $3}'; }
pub=$(tps "$HF_RUN/publish.sql")
plain=$(tps "$HF_RUN/same_insert.sql")
pub_ratio=$(python3 -c "print('%.2f' % ($pub / $plain))")
printf 'holdfast.publish(), 16 clients: %.0f tx/s; its INSERT as a plain statement: %.0f tx/s (%s)\n' "$pub" "$plain" "$pub_ratio"
out=$HF_ROOT/bench/results/ingest_throughput.json
(IFS=,; echo "{\"bench\":\"ingest_throughput\",\"seconds_per_run\":$DURATION,\"cpus\":$(nproc),\"results\":[${results[*]}],\"publish_16\":{\"publish_tps\":$pub,\"plain_insert_tps\":$plain,\"ratio\":$pub_ratio}}") >"$out"
echo "wrote $out"
echo "reproduce: bench/ingest_throughput.sh $BUILD $DURATION \"$CLIENTS\""
