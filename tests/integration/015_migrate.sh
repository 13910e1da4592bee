#!/usr/bin/env bash
# holdfast-migrate: --check says 3 (pending) on an empty database and
# creates nothing; four runs at once on an empty database all succeed and
# apply each migration once; --check then says 0; re-runs change nothing; a changed migration is
# refused; the SQL partition function agrees with the shared vectors (and
# so with C).
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pg_start "" fsync=off

rc=0
"$HF_BIN/holdfast-migrate" --pg-url "$HF_PG_URL" --check >"$HF_RUN/check0.log" 2>&1 || rc=$?
hf_check_eq "--check on an empty database: 3 (pending)" 3 "$rc"
hf_check_eq "... and it created nothing" "" "$(hf_psql -c "SELECT to_regnamespace('holdfast')")"

pids=()
for i in 1 2 3 4; do
    "$HF_BIN/holdfast-migrate" --pg-url "$HF_PG_URL" --partitions 12 >"$HF_RUN/migrate.$i.log" 2>&1 &
    pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
hf_check_eq "concurrent migrations that failed" 0 "$failed"
nsql=$(ls "$HF_ROOT"/schemas/sql/[0-9][0-9][0-9]_*.sql | wc -l)
hf_check_eq "each migration recorded once" "$nsql" "$(hf_psql -c "SELECT count(*) FROM holdfast.schema_migrations")"
hf_check_eq "exactly one run applied them" 1 "$(grep -l '"applied migration 001_core.sql"' "$HF_RUN"/migrate.*.log | wc -l)"
rc=0
"$HF_BIN/holdfast-migrate" --pg-url "$HF_PG_URL" --check >"$HF_RUN/check1.log" 2>&1 || rc=$?
hf_check_eq "--check once migrated: 0" 0 "$rc"
hf_check_eq "partition count of a new schema" 12 "$(hf_psql -c "SELECT partition_count FROM holdfast.meta")"
epoch=$(hf_psql -c "SELECT epoch FROM holdfast.meta")
hf_check "an epoch was made" test -n "$epoch"

"$HF_BIN/holdfast-migrate" --pg-url "$HF_PG_URL" --partitions 16 >"$HF_RUN/rerun.log" 2>&1
hf_check "a re-run keeps the partition count and says so" grep -q 'schema has 12 partitions, not 16' "$HF_RUN/rerun.log"
hf_check_eq "a re-run keeps the epoch" "$epoch" "$(hf_psql -c "SELECT epoch FROM holdfast.meta")"
"$HF_BIN/holdfast-migrate" --pg-url "$HF_PG_URL" --status >"$HF_RUN/status.out" 2>&1
hf_check "--status lists the applied migration" grep -q '^applied  001_core.sql' "$HF_RUN/status.out"

hf_psql -c "UPDATE holdfast.schema_migrations SET checksum = 'edited' WHERE version = 1"
rc=0
"$HF_BIN/holdfast-migrate" --pg-url "$HF_PG_URL" >"$HF_RUN/edited.log" 2>&1 || rc=$?
hf_check_eq "a changed migration is refused" 1 "$rc"
hf_check "and the refusal says why" grep -q 'append-only' "$HF_RUN/edited.log"

# Changing the partition count starts a new epoch (invariant 3,
# docs/design.md).
hf_psql -c "SELECT holdfast.set_partition_count(16)" >/dev/null
hf_check "repartitioning bumps the epoch" test "$epoch" != "$(hf_psql -c "SELECT epoch FROM holdfast.meta")"

# The shared vectors: SQL computes what C and the vector file say.
grep -v '^#' "$HF_ROOT/tests/vectors/partition.tsv" | grep -v $'^[^\t]*[^ -~\t]' >"$HF_RUN/vectors.tsv"
mismatch=$(hf_psql -c "CREATE TEMP TABLE v(channel text, hash bigint, n int, p int)" \
    -c "\\copy v FROM '$HF_RUN/vectors.tsv'" \
    -c "SELECT count(*) FROM v WHERE holdfast.fnv1a32(convert_to(channel, 'UTF8')) <> hash
                                 OR holdfast.partition_for(channel, n) <> p")
hf_check_eq "SQL partition_for disagrees with the vectors" 0 "$mismatch"
hf_check_eq "vectors checked" "$(wc -l <"$HF_RUN/vectors.tsv")" \
    "$(hf_psql -c "CREATE TEMP TABLE v(channel text, hash bigint, n int, p int)" -c "\\copy v FROM '$HF_RUN/vectors.tsv'" -c "SELECT count(*) FROM v")"
hf_check_eq "SQL channel rule rejects what C rejects" "f f f t" \
    "$(hf_psql -c "SELECT holdfast.channel_is_valid('a/b'), holdfast.channel_is_valid('orders:*'), holdfast.channel_is_valid(repeat('a', 201)), holdfast.channel_is_valid(repeat('a', 200))" | tr '|' ' ')"

hf_checks_done
