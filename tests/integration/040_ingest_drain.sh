#!/usr/bin/env bash
# SIGTERM while commits are in flight: ingest reports not ready, answers new
# requests 503 "draining", finishes every request it had already received
# (each answered 201 is committed, none is left unanswered), and exits 0.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pg_start "" fsync=off
hf_migrate
hf_ingest_start "" --writers 2

# Hold the events table locked so the requests below stay in flight,
# committing only once the lock goes.
psql "$HF_PG_URL" -X -q -c "BEGIN; LOCK TABLE holdfast.events IN EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT;" &
locker=$!
sleep 0.5
seq 1 40 | xargs -P 40 -I{} curl -sS -o /dev/null -w '%{http_code}\n' --max-time 30 -X POST \
    -H 'Content-Type: application/json' --data-binary '{"channel":"drain:{}","data":{}}' \
    "$HF_INGEST_URL/v1/events" >"$HF_RUN/codes" 2>"$HF_RUN/curl.err" &
clients=$!
# All 40 received (the scrape itself is the 41st request in flight).
hf_wait_until 20 "all requests to be received" bash -c \
    "curl -fsS $HF_INGEST_URL/metrics | grep -q '^holdfast_http_inflight_requests 41$'"
kill -TERM "$(hf_pid ingest)"
sleep 0.3
hf_check "not ready while draining" bash -c "! curl -fsS -o /dev/null $HF_INGEST_URL/readyz"
code=$(curl -sS -o "$HF_RUN/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data-binary '{"channel":"late","data":1}' "$HF_INGEST_URL/v1/events")
hf_check_eq "a new request while draining" 503 "$code"
hf_check "it says draining" grep -q '"code":"draining"' "$HF_RUN/resp"
wait "$locker"
wait "$clients" || true
hf_wait_exit ingest
hf_check_eq "ingest exits 0 after draining" 0 "$HF_EXIT_STATUS"
hf_check_eq "every in-flight request answered 201" 40 "$(grep -c '^201$' "$HF_RUN/codes")"
hf_check_eq "every one committed" 40 "$(hf_psql -c "SELECT count(*) FROM holdfast.events WHERE channel LIKE 'drain:%'")"
hf_check_eq "the late request stored nothing" 0 "$(hf_psql -c "SELECT count(*) FROM holdfast.events WHERE channel = 'late'")"

hf_checks_done
