#!/usr/bin/env bash
# GET /v1/channels/{channel}/events: a channel's history paged by offset,
# from Kafka while it holds the offsets and from PostgreSQL beyond that.
# The dev broker keeps ~5 MB per partition, so 45,000 filler events push
# the log start past the first events of channel h:old: its first pages
# come from PostgreSQL, the rest from Kafka, and the pages join without gap
# or duplicate. Also: a channel wholly in Kafka, Kafka down (everything
# from PostgreSQL), a since from another epoch, and bad requests.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pipeline_start 2
hf_relay_start r1 --batch-max 2000
hf_ingest_start "" --kafka-brokers "$HF_KAFKA_BROKERS"

hf_psql -c "SELECT holdfast.publish('h:old', ('{\"seq\":' || g || '}')::jsonb) FROM generate_series(1, 100) g" >/dev/null
hf_publish_numbered filler 50 45000
hf_psql -c "SELECT holdfast.publish('h:old', ('{\"seq\":' || g || '}')::jsonb) FROM generate_series(101, 200) g" >/dev/null
hf_psql -c "SELECT holdfast.publish('h:new', ('{\"seq\":' || g || '}')::jsonb) FROM generate_series(1, 80) g" >/dev/null
hf_check "the relay moves everything" hf_wait_until 180 "every event relayed" hf_all_relayed
p_old=$(hf_psql -c "SELECT holdfast.partition_for('h:old')")
low=$(timeout 20 kcat -Q -b "$HF_KAFKA_BROKERS" -t "holdfast.events:$p_old:-2" 2>/dev/null | awk '{print $NF}' || true)
first_old=$(hf_psql -c "SELECT min(kafka_offset) FROM holdfast.event_log WHERE channel = 'h:old'")
hf_log "partition $p_old starts at offset ${low:-?} in Kafka; h:old starts at $first_old"

# page CHANNEL [EXTRA QUERY]: pages through with limit 40; prints "offset seq prev" lines and,
# on fd 3, the source of each page.
page() {
    python3 - "$HF_INGEST_URL" "$1" "${2:-}" 3>"$HF_RUN/sources" <<'PY'
import json, os, sys, urllib.request
url, ch, extra = sys.argv[1:]
since, pages, epoch = -1, 0, extra
src = os.fdopen(3, "w")
while pages < 100:
    with urllib.request.urlopen(f"{url}/v1/channels/{ch}/events?since={since}&limit=40{epoch}", timeout=30) as r:
        body = json.loads(r.read())
    epoch = "&epoch=" + body["epoch"]  # later pages: the epoch the server answered in
    pages += 1
    src.write(f"{body['source']} {body['complete']} {len(body['events'])}\n")
    for e in body["events"]:
        print(e["offset"], e["data"]["seq"], e["prev_offset"])
    if body["events"]:
        assert body["next_since"] == body["events"][-1]["offset"], body["next_since"]
    since = body["next_since"]
    if not body["more"]:
        break
PY
}
expected() { # offset seq prev, from PostgreSQL
    hf_psql -F ' ' -c "SELECT kafka_offset, convert_from(payload, 'UTF8')::jsonb->>'seq',
        coalesce(lag(kafka_offset) OVER (ORDER BY kafka_offset), -1)
        FROM holdfast.event_log WHERE channel = '$1' ORDER BY kafka_offset"
}

hf_check_eq "h:old paged from the start equals PostgreSQL" "$(expected h:old)" "$(page h:old)"
hf_check "... its first page came from PostgreSQL" grep -q '^postgres' "$HF_RUN/sources"
hf_check "... its last pages from Kafka" bash -c "tail -n 2 '$HF_RUN/sources' | grep -q kafka"
hf_log "h:old pages: $(tr '\n' ';' <"$HF_RUN/sources")"
hf_check_eq "h:new (all in Kafka) equals PostgreSQL" "$(expected h:new)" "$(page h:new)"
hf_check "... every page from Kafka" bash -c "! grep -v '^kafka' '$HF_RUN/sources'"

# A since from another epoch: the current epoch from its start, complete:false.
hf_check_eq "a stale epoch starts the current epoch over" "$(expected h:new)" "$(page h:new '&epoch=stale')"
hf_check "... and says complete:false" grep -q ' False ' "$HF_RUN/sources"

# Kafka down: everything from PostgreSQL, same answer.
hf_check "all brokers down" hf_kafka_control down
hf_check_eq "Kafka down: h:new from PostgreSQL equals PostgreSQL" "$(expected h:new)" "$(page h:new)"
hf_check "... every page from PostgreSQL" bash -c "! grep -v '^postgres' '$HF_RUN/sources'"
hf_check "all brokers up" hf_kafka_control up

# Bad requests: JSON errors.
status() { curl -s -o "$HF_RUN/body" -w '%{http_code}' "$HF_INGEST_URL$1"; }
hf_check_eq "invalid channel: 400" 400 "$(status '/v1/channels/bad*name/events')"
hf_check "... with a JSON error" grep -q '"code":"invalid_channel"' "$HF_RUN/body"
hf_check_eq "limit=0: 400" 400 "$(status '/v1/channels/h:new/events?limit=0')"
hf_check_eq "limit=1001: 400" 400 "$(status '/v1/channels/h:new/events?limit=1001')"
hf_check_eq "since=abc: 400" 400 "$(status '/v1/channels/h:new/events?since=abc')"
hf_check_eq "other path: 404" 404 "$(status '/v1/channels/h:new/other')"
hf_check_eq "unknown channel: 200 with no events" 200 "$(status '/v1/channels/h:none/events')"
hf_check "... events empty, more false" grep -q '"events":\[\],"next_since":-1,"more":false' "$HF_RUN/body"
hf_check "ingest still serves after all that" hf_http_ok "$HF_INGEST_URL/readyz"
hf_checks_done
