#!/usr/bin/env bash
# An event the relay could not publish to Redis reaches subscribers of a
# quiet channel without waiting for the channel's next event: Redis stays
# up for the gateway, but the relay's own connection is killed (CLIENT
# KILL TYPE normal) just before one event is published on a channel that
# gets nothing else. The relay announces the skipped offset on
# hfctl:skipped once it reconnects; the gateway reads it from Kafka.
# Without the announcement the event would only arrive with the channel's
# next event (never, here).
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pipeline_start
hf_ingest_start
hf_relay_start ra
hf_gateway_start ga
hf_ws_clients_start --urls "$WS_ga" --clients 2 --channels quiet:1 --deadline 60
# One event first, so the relay has a Redis connection to lose.
curl -fsS -X POST "$HF_INGEST_URL/v1/events" -H 'Content-Type: application/json' \
    -d '{"channel":"warm:1","data":{"seq":1}}' >/dev/null
hf_check "the relay publishes to Redis" hf_wait_until 10 "a Redis publish" \
    bash -c "[[ \$(curl -fsS http://127.0.0.1:$PORT_ra/metrics | sed -n 's/^holdfast_relay_redis_published_total //p') -ge 1 ]]"
hf_check "the relay's Redis connection is killed (the gateway's stays)" \
    bash -c "[[ \$(redis-cli -u $HF_REDIS_URL CLIENT KILL TYPE normal) -ge 1 ]]"
curl -fsS -X POST "$HF_INGEST_URL/v1/events" -H 'Content-Type: application/json' \
    -d '{"channel":"quiet:1","data":{"seq":1}}' >/dev/null
hf_check "the relay counts the skipped publish" hf_wait_until 10 "a skipped publish" \
    bash -c "[[ \$(curl -fsS http://127.0.0.1:$PORT_ra/metrics | sed -n 's/^holdfast_relay_redis_skipped_total //p') -ge 1 ]]"
hf_check "both clients get the event from Kafka after the relay's announcement" \
    hf_wait_until 15 "two deliveries from Kafka" \
    bash -c "[[ \$(curl -fsS http://127.0.0.1:$PORT_ga/metrics | sed -n 's/^holdfast_gateway_deliveries_total{source=\"kafka\"} //p') -ge 2 ]]"
hf_check_eq "the gateway never lost Redis" 0 "$(hf_metric "$PORT_ga" holdfast_gateway_redis_fallbacks_total)"
hf_ws_clients_finish
hf_check "both clients have exactly the channel's event" hf_ws_verify --min-events 2
hf_checks_done
