#!/usr/bin/env bash
# A bulk import: 100,000 events committed in one transaction into a
# 2-partition topic, twice: before the relay ever ran (its first start
# reconciles them from holdfast.events) and while it streams (the slot sends
# the whole transaction after its commit). Either way the relay moves them
# through its bounded buffer and pipeline while keeping its lease (no lease
# lost, led once), records every offset, and its commits stay batched.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pipeline_start 2
hf_publish_numbered bulk 100 100000
hf_relay_start r1 --batch-max 2000 --stream-buffer 4MiB
hf_check "the first start relays 100,000 events" hf_wait_until 240 "every event relayed" hf_all_relayed
hf_check_eq "... reconciled from the table" 100000 "$(hf_metric "$PORT_r1" holdfast_relay_reconciled_total)"
hf_publish_numbered bulk 100 100000
hf_check "the stream relays 100,000 more" hf_wait_until 240 "every event relayed" hf_all_relayed
hf_check_eq "no lease lost while relaying" 0 "$(hf_metric "$PORT_r1" holdfast_relay_leases_lost_total)"
hf_check_eq "it led once" 1 "$(grep -c '"leading' "$HF_RUN/r1.log")"
hf_check_eq "every event has its offset" 0 "$(hf_psql -c "SELECT count(*) FROM holdfast.event_log WHERE kafka_offset IS NULL")"
commits=$(hf_metric "$PORT_r1" holdfast_relay_commit_events_count)
hf_log "200,000 events recorded in $commits commits"
hf_check "commits are batched (fewer than one per 100 events)" test "$commits" -lt 2000
# Each partition's log holds exactly its events, each at its own offset.
for p in 0 1; do
    high=$(timeout 20 kcat -Q -b "$HF_KAFKA_BROKERS" -t "holdfast.events:$p:-1" | awk '{print $NF}')
    hf_check_eq "partition $p: offsets 0..end-1 recorded once each" "$high|$high|0|$((high - 1))" \
        "$(hf_psql -c "SELECT count(*), count(DISTINCT kafka_offset), min(kafka_offset), max(kafka_offset)
            FROM holdfast.event_log WHERE partition = $p")"
done
hf_checks_done
