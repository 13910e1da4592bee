#!/usr/bin/env bash
# PostgreSQL stopped in the middle of a stream of publishes: ingest answers
# 503 with Retry-After (never 2xx) while it is down, recovers by itself when
# it returns, and every event ever answered 2xx is stored exactly once
# (clients retry with the same Idempotency-Key).
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pg_start "" fsync=off
pg_port=$HF_PG_PORT
hf_migrate
hf_stream_watch
hf_ingest_start "" --writers 2 --reconnect-max 500ms

python3 "$(dirname "$0")/../support/publish_retry.py" --url "$HF_INGEST_URL" \
    --out "$HF_RUN/accepted" --stop-file "$HF_RUN/stop" >"$HF_RUN/client.out" 2>&1 &
client=$!

sleep 1.5
hf_log "stopping PostgreSQL mid-stream"
hf_stop postgres INT
hf_wait_until 20 "ingest to report not ready" bash -c "! curl -fsS -o /dev/null --max-time 2 $HF_INGEST_URL/readyz"
code=$(curl -sS -o "$HF_RUN/resp" -D "$HF_RUN/headers" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data-binary '{"channel":"down","data":1}' "$HF_INGEST_URL/v1/events")
hf_check_eq "publish while PostgreSQL is down" 503 "$code"
hf_check "503 carries Retry-After" grep -qi '^Retry-After: ' "$HF_RUN/headers"
hf_check "503 has a JSON error" grep -q '"code":"unavailable"' "$HF_RUN/resp"
sleep 2
hf_log "starting PostgreSQL again"
hf_pg_start "$pg_port"
hf_wait_until 30 "ingest to be ready again" hf_http_ok "$HF_INGEST_URL/readyz"
hf_check "ingest ready again without a restart" hf_http_ok "$HF_INGEST_URL/readyz"
sleep 1.5
touch "$HF_RUN/stop"
rc=0
wait "$client" || rc=$?
cat "$HF_RUN/client.out" >&2
hf_check_eq "client finished" 0 "$rc"
hf_check "the client saw 503s during the outage" grep -q 'saw_503=[1-9]' "$HF_RUN/client.out"
hf_check "every 503 carried Retry-After" grep -q 'missing_retry_after=0' "$HF_RUN/client.out"
hf_check_eq "the down-time request was not stored" 0 "$(hf_psql -c "SELECT count(*) FROM holdfast.events WHERE channel = 'down'")"

accepted=$(wc -l <"$HF_RUN/accepted")
hf_log "$accepted events accepted across the outage"
hf_check "a stream of events was accepted" test "$accepted" -gt 20
# Every accepted event: exactly one row for its key, with the answered id.
awk '{print $1 "," $2}' "$HF_RUN/accepted" >"$HF_RUN/accepted.csv"
hf_psql -c "CREATE TEMP TABLE t(key text, id uuid)" \
    -c "\\copy t FROM '$HF_RUN/accepted.csv' WITH (FORMAT csv)" \
    -c "SELECT count(*) FROM t" >/dev/null
bad=$(hf_psql -c "CREATE TEMP TABLE t(key text, id uuid)" \
    -c "\\copy t FROM '$HF_RUN/accepted.csv' WITH (FORMAT csv)" \
    -c "UPDATE t SET key = '9:anonymous:' || key" \
    -c "SELECT count(*) FROM t WHERE (SELECT count(*) FROM holdfast.events e WHERE e.idempotency_key = t.key) <> 1
           OR NOT EXISTS (SELECT 1 FROM holdfast.events e WHERE e.id = t.id AND e.idempotency_key = t.key)")
hf_check_eq "accepted events missing or doubled" 0 "$bad"
hf_check_eq "no event stored that was not accepted" "$accepted" \
    "$(hf_psql -c "SELECT count(*) FROM holdfast.events WHERE channel = 'outage'")"
hf_check_eq "each stored event is in the stream the relay reads, once" "$accepted" \
    "$(hf_stream_ids | sort | uniq -u | grep -c -F -f <(hf_psql -c "SELECT id FROM holdfast.events WHERE channel = 'outage'"))"

hf_checks_done
