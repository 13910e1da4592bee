#!/usr/bin/env bash
# Ingest cannot be starved. 2,000 unauthenticated uploads of 1 MiB, 200 at a
# time, are each answered 401 from their headers (no body buffer; the
# connection closes, so the unread body is never taken for a request)
# while an authenticated publisher keeps getting 201s; the ingest's
# resident memory stays bounded (VmHWM from /proc). Then the byte budgets:
# with room for 4 bodies arriving, a 5th and 6th get 503 + Retry-After
# before their body is read and the 4 complete with 201; with PostgreSQL
# stopped and room for 2 bodies queued, a 3rd gets 503 and the 2 are
# committed once it runs again. Each refusal shows in its metric.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pg_start "" fsync=off
hf_migrate
secret=$HF_RUN/auth.secret
head -c 48 /dev/urandom | base64 -w0 >"$secret"
token=$("$HF_BIN/holdfast-token" --key-file "$secret" --sub flood-test --publish '*')
export HF_AUTH=true

# --- 2,000 unauthenticated 1 MiB uploads ---
hf_ingest_start "" --auth-key-file "$secret"
/usr/bin/python3 "$HF_SUPPORT/ingest_flood.py" flood --url "$HF_INGEST_URL" --token "$token" \
    --pid "$(hf_pid ingest)" --uploads 2000 --concurrency 200 --size 1048576 \
    --out "$HF_RUN/flood.json" >"$HF_RUN/flood.out" 2>&1 || hf_check "the flood client ran" false
r() { /usr/bin/python3 -c "import json,sys; r=json.load(open('$HF_RUN/flood.json')); print($1)"; }
hf_log "flood: $(cat "$HF_RUN/flood.json")"
hf_check_eq "every unauthenticated upload answered 401" "{'401': 2000}" "$(r 'r["unauthenticated"]')"
hf_check_eq "a body after a 401 is never read as a request (401, then closed)" "[401]" "$(r 'r["smuggled"]')"
hf_check_eq "each refused by the ingest's auth" 2001 "$(hf_metric "$HF_INGEST_PORT" holdfast_ingest_auth_failed_total)"
hf_check "the authenticated publisher got 201s meanwhile, nothing else" \
    test "$(r 'list(r["published"]) == ["201"] and r["published_during"].get("201", 0) >= 3')" == True
growth_mib=$(r '(r["hwm_kb"] - r["rss_before_kb"]) // 1024')
hf_log "ingest RSS: $(r 'r["rss_before_kb"] // 1024') MiB before, peak $(r 'r["hwm_kb"] // 1024') MiB (VmHWM): +$growth_mib MiB for 2,000 x 1 MiB uploads"
# Reading the bodies would have held up to 200 MiB (200 uploads at a time).
hf_check "resident memory grew less than 48 MiB (+$growth_mib MiB)" test "$growth_mib" -lt 48
hf_check_eq "no body bytes counted after the flood" 0 "$(hf_metric "$HF_INGEST_PORT" holdfast_ingest_inflight_bytes)"
hf_stop ingest

# --- byte budgets: room for 4 bodies arriving, 2 queued; one writer ---
hf_ingest_start "" --auth-key-file "$secret" --writers 1 --max-body 1000000 \
    --max-inflight-bytes 4000000 --max-queued-bytes 2000000 --queue-timeout 60s
/usr/bin/python3 "$HF_SUPPORT/ingest_flood.py" budget --url "$HF_INGEST_URL" --token "$token" \
    --pg-pid "$(hf_pid postgres)" --size 1000000 --inflight 4 --extra 2 --queued 2 \
    --out "$HF_RUN/budget.json" >"$HF_RUN/budget.out" 2>&1 || hf_check "the budget client ran" false
b() { /usr/bin/python3 -c "import json,sys; r=json.load(open('$HF_RUN/budget.json')); print($1)"; }
hf_log "budget: $(cat "$HF_RUN/budget.json")"
hf_check_eq "4 bodies arriving are counted" True "$(b 'r["inflight_gauge_full"]')"
hf_check_eq "a 5th and 6th: 503 overloaded + Retry-After, before their body" \
    "[[503, '1', 'overloaded'], [503, '1', 'overloaded']]" "$(b 'r["extra"]')"
hf_check_eq "counted as in-flight byte rejections" 2.0 "$(b 'r["inflight_rejections"]')"
hf_check_eq "the 4 admitted complete: 201" "[201, 201, 201, 201]" "$(b 'r["admitted"]')"
hf_check_eq "nothing in flight after" 0.0 "$(b 'r["inflight_gauge_after"]')"
hf_check_eq "2 bodies queued behind a stopped PostgreSQL are counted" True "$(b 'r["queued_gauge_full"]')"
hf_check_eq "a 3rd: 503 overloaded + Retry-After" "[503, '1', 'overloaded']" "$(b 'r["over_queued"]')"
hf_check_eq "counted as a queued byte rejection" 1.0 "$(b 'r["queued_rejections"]')"
hf_check_eq "the 2 queued commit once PostgreSQL runs: 201" "[201, 201]" "$(b 'r["queued_answers"]')"
hf_check_eq "nothing queued after" True "$(b 'r["queued_gauge_after"]')"
hf_check_eq "every 201 stored" 6 "$(hf_psql -c "SELECT count(*) FROM holdfast.events WHERE channel = 'budget'")"
hf_checks_done
