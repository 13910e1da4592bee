#!/usr/bin/env bash
# Ingest against a real PostgreSQL: publish one and a batch, exact payload
# bytes, idempotent retries and conflicts, every bad-input class, group
# commit under concurrency with one poisoned request, the SQL publish()
# path inside committed and rolled-back transactions, and SIGTERM.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pg_start "" fsync=off
hf_migrate
hf_stream_watch
hf_ingest_start "" --writers 4

# post BODY [CURL ARGS...]: prints "CODE BODY" on one line.
post() {
    local body=$1
    shift
    curl -sS --max-time 30 -o "$HF_RUN/resp" -w '%{http_code}' -X POST \
        -H 'Content-Type: application/json' --data-binary "$body" "$@" "$HF_INGEST_URL/v1/events"
    printf ' %s\n' "$(tr -d '\n' <"$HF_RUN/resp")"
}
code_of() { echo "${1%% *}"; }
body_of() { echo "${1#* }"; }
json_field() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval("d"+sys.argv[2]))' "$1" "$2"; }

# --- one event: 201 after commit, exact bytes, in the relay's stream, partition ---
payload='{"b": 2,  "a":[1, 2.50, "\u00e9"] , "n":null}'
r=$(post "{\"channel\":\"orders:42\",\"type\":\"order.created\",\"data\":$payload}")
hf_check_eq "single publish status" 201 "$(code_of "$r")"
id=$(json_field "$(body_of "$r")" "['id']")
hf_check_eq "channel echoed" "orders:42" "$(json_field "$(body_of "$r")" "['channel']")"
hf_check_eq "payload stored byte for byte" "$payload" \
    "$(hf_psql -c "SELECT convert_from(payload, 'UTF8') FROM holdfast.events WHERE id = '$id'")"
hf_check_eq "type stored" "order.created" "$(hf_psql -c "SELECT type FROM holdfast.events WHERE id = '$id'")"
hf_check_eq "the event is in the stream the relay reads, once" 1 "$(hf_stream_ids | grep -c "$id")"
hf_check_eq "partition is holdfast.partition_for()" \
    "$(hf_psql -c "SELECT holdfast.partition_for('orders:42')")" "$(json_field "$(body_of "$r")" "['partition']")"

# --- a batch: all in order, all or nothing ---
r=$(post '[{"channel":"b1","data":1},{"channel":"b2","data":"two"},{"channel":"b1","data":{"three":3}}]')
hf_check_eq "batch status" 201 "$(code_of "$r")"
hf_check_eq "batch answers three events" 3 "$(json_field "$(body_of "$r")" ".__len__()")"
ids=$(python3 -c 'import json,sys; print(" ".join(e["id"] for e in json.loads(sys.argv[1])))' "$(body_of "$r")")
hf_check_eq "batch events in the stream in request order" "$ids" \
    "$(hf_stream_ids | grep -E "^(${ids// /|})$" | paste -sd' ')"
r=$(post '[{"channel":"b9","data":1},{"channel":"bad/name","data":2}]')
hf_check_eq "batch with one invalid event is refused whole" 400 "$(code_of "$r")"
hf_check_eq "nothing of the refused batch stored" 0 "$(hf_psql -c "SELECT count(*) FROM holdfast.events WHERE channel = 'b9'")"

# --- Idempotency-Key ---
r1=$(post '{"channel":"idem","data":{"x":1}}' -H 'Idempotency-Key: key-1')
r2=$(post '{"channel":"idem","data":{"x":1}}' -H 'Idempotency-Key: key-1')
hf_check_eq "first use of a key creates" 201 "$(code_of "$r1")"
hf_check_eq "retry with the same key and body replays" 200 "$(code_of "$r2")"
hf_check_eq "the replay returns the original event" "$(body_of "$r1")" "$(body_of "$r2")"
# stored scoped to the subject (auth is off here: "anonymous")
hf_check_eq "no second event for the key" 1 "$(hf_psql -c "SELECT count(*) FROM holdfast.events WHERE idempotency_key = '9:anonymous:key-1'")"
r=$(post '{"channel":"idem","data":{"x":2}}' -H 'Idempotency-Key: key-1')
hf_check_eq "same key, different body" 409 "$(code_of "$r")"
hf_check_eq "conflict error code" idempotency_key_conflict "$(json_field "$(body_of "$r")" "['error']['code']")"
r1=$(post '[{"channel":"idem","data":1},{"channel":"idem2","data":2}]' -H 'Idempotency-Key: key-batch')
r2=$(post '[{"channel":"idem","data":1},{"channel":"idem2","data":2}]' -H 'Idempotency-Key: key-batch')
hf_check_eq "batch replay returns the original events in order" "$(body_of "$r1")" "$(body_of "$r2")"

# --- bad input: 4xx with a JSON error body, never a crash ---
expect_error() { # DESCRIPTION STATUS CODE RESPONSE
    hf_check_eq "$1: status" "$2" "$(code_of "$4")"
    hf_check_eq "$1: error code" "$3" "$(json_field "$(body_of "$4")" "['error']['code']" 2>/dev/null || echo unparsable)"
}
expect_error "malformed JSON" 400 invalid_request "$(post '{"channel":"x","data":')"
expect_error "not an object" 400 invalid_request "$(post '"just a string"')"
expect_error "missing channel" 400 invalid_request "$(post '{"data":1}')"
expect_error "channel not a string" 400 invalid_request "$(post '{"channel":5,"data":1}')"
expect_error "channel with a slash" 400 invalid_request "$(post '{"channel":"../etc","data":1}')"
expect_error "channel with a wildcard" 400 invalid_request "$(post '{"channel":"orders:*","data":1}')"
expect_error "channel too long" 400 invalid_request "$(post "{\"channel\":\"$(printf 'a%.0s' {1..201})\",\"data\":1}")"
expect_error "missing data" 400 invalid_request "$(post '{"channel":"x"}')"
expect_error "unknown field" 400 invalid_request "$(post '{"channel":"x","data":1,"chanel":"y"}')"
expect_error "duplicate key" 400 invalid_request "$(post '{"channel":"x","data":1,"data":2}')"
expect_error "bad type" 400 invalid_request "$(post '{"channel":"x","data":1,"type":"a b"}')"
expect_error "empty batch" 400 invalid_request "$(post '[]')"
expect_error "invalid UTF-8" 400 invalid_request "$(post "$(printf '{"channel":"x","data":"\xff\xfe"}')")"
expect_error "bad idempotency key" 400 invalid_idempotency_key "$(post '{"channel":"x","data":1}' -H "Idempotency-Key: $(printf 'k%.0s' {1..300})")"
expect_error "wrong content type" 415 unsupported_media_type "$(post '{"channel":"x","data":1}' -H 'Content-Type: text/plain')"
big=$HF_RUN/big.json
python3 -c 'import sys; sys.stdout.write("{\"channel\":\"x\",\"data\":\"" + "a"*(1100*1024) + "\"}")' >"$big"
expect_error "body over 1 MiB" 413 body_too_large "$(post "@$big")"
python3 -c 'import json; print(json.dumps([{"channel":"x","data":i} for i in range(1001)]))' >"$big"
expect_error "batch over max-batch" 413 batch_too_large "$(post "@$big")"
r=$(curl -sS -o "$HF_RUN/resp" -w '%{http_code}' "$HF_INGEST_URL/v1/nothing")
expect_error "unknown route" 404 not_found "$r $(cat "$HF_RUN/resp")"
r=$(curl -sS -o "$HF_RUN/resp" -w '%{http_code}' "$HF_INGEST_URL/v1/events")
expect_error "wrong method" 405 method_not_allowed "$r $(cat "$HF_RUN/resp")"
hf_check "ingest still alive after bad input" hf_http_ok "$HF_INGEST_URL/livez"
hf_check_eq "no event from any bad request" 0 "$(hf_psql -c "SELECT count(*) FROM holdfast.events WHERE channel = 'x'")"

# --- group commit: concurrent requests share transactions; a poisoned
# request (refused by a constraint only PostgreSQL knows) fails alone ---
hf_psql -c "ALTER TABLE holdfast.events ADD CONSTRAINT test_poison CHECK (payload <> convert_to('\"poison\"', 'UTF8'))"
groups_before=$(curl -fsS "$HF_INGEST_URL/metrics" | awk '/^holdfast_ingest_group_requests_count/ {print $2}')
seq 1 200 | xargs -P 32 -I{} curl -sS -o /dev/null -w '%{http_code}\n' -X POST \
    -H 'Content-Type: application/json' --data-binary '{"channel":"group:{}","data":{}}' \
    "$HF_INGEST_URL/v1/events" >"$HF_RUN/codes" &
poison=$(post '{"channel":"group:p","data":"poison"}')
wait $!
hf_check_eq "the poisoned request is refused" 400 "$(code_of "$poison")"
hf_check_eq "its 200 concurrent neighbours all committed" "200" "$(grep -c '^201$' "$HF_RUN/codes")"
hf_check_eq "each neighbour stored once" 200 "$(hf_psql -c "SELECT count(DISTINCT channel) FROM holdfast.events WHERE channel LIKE 'group:%'")"
groups_after=$(curl -fsS "$HF_INGEST_URL/metrics" | awk '/^holdfast_ingest_group_requests_count/ {print $2}')
hf_log "200 concurrent requests took $((groups_after - groups_before)) transactions"
hf_check "requests were grouped into fewer transactions" test $((groups_after - groups_before)) -lt 200
hf_psql -c "ALTER TABLE holdfast.events DROP CONSTRAINT test_poison"

# --- the SQL path: publish() inside the application's own transaction ---
stream_before=$(hf_stream_ids | wc -l)
hf_psql -c "BEGIN; SELECT holdfast.publish('sql:rollback', '{\"a\":1}'); ROLLBACK;" >/dev/null
hf_check_eq "rolled-back publish leaves no event" 0 "$(hf_psql -c "SELECT count(*) FROM holdfast.events WHERE channel = 'sql:rollback'")"
hf_check_eq "rolled-back publish leaves nothing in the stream" "$stream_before" "$(hf_stream_ids | wc -l)"
sid=$(hf_psql -c "BEGIN; SELECT holdfast.publish('sql:commit', '{\"a\": 1}', 'sql.test'); COMMIT;" | grep -E '^[0-9a-f-]{36}$')
hf_check_eq "committed publish leaves one event" 1 "$(hf_psql -c "SELECT count(*) FROM holdfast.events WHERE channel = 'sql:commit'")"
hf_check_eq "committed publish is in the stream, once" 1 "$(hf_stream_ids | grep -c "$sid")"
hf_check_eq "SQL and HTTP give a channel the same partition" \
    "$(hf_psql -c "SELECT partition FROM holdfast.events WHERE id = '$sid'")" \
    "$(json_field "$(body_of "$(post '{"channel":"sql:commit","data":0}')")" "['partition']")"
rid=$(hf_psql -c "SELECT holdfast.publish_raw('sql:raw', convert_to('{\"keep\" :  1}', 'UTF8'))")
raw=$(hf_psql -c "SELECT convert_from(payload, 'UTF8') FROM holdfast.events WHERE id = '$rid'")
hf_check_eq "publish_raw keeps the bytes" '{"keep" :  1}' "$raw"
if hf_psql -c "SELECT holdfast.publish('bad channel', '{}')" 2>/dev/null; then
    hf_check "publish() refuses an invalid channel" false
fi

# --- metrics and probes ---
curl -fsS "$HF_INGEST_URL/metrics" >"$HF_RUN/metrics"
hf_check "metrics name the events counter" grep -q '^holdfast_ingest_events_total [1-9]' "$HF_RUN/metrics"
hf_check "healthz alias" hf_http_ok "$HF_INGEST_URL/healthz"
hf_check "ready with PostgreSQL up" hf_http_ok "$HF_INGEST_URL/readyz"

# --- SIGTERM: exit 0 ---
kill -TERM "$(hf_pid ingest)"
hf_wait_exit ingest
hf_check_eq "ingest exits 0 on SIGTERM" 0 "$HF_EXIT_STATUS"
hf_check "ingest logged its stop" grep -q '"msg":"stopped"' "$HF_RUN/ingest.log"

hf_checks_done
