#!/usr/bin/env bash
# The relay's contract under a failover (invariants 2-6, docs/design.md):
# 10,000 events on 200 channels, published through ingest by four concurrent
# clients while one relay leads and a second stands by; the leader is
# SIGKILLed mid-run. Afterwards every event is in Kafka exactly once, in its
# partition, at the offset recorded in PostgreSQL, in publish order per
# channel; every Redis message carries its Kafka offset and the offset of
# its channel's previous event (the chain a gateway checks); and the standby
# took over once the dead leader's lease expired.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

WORKERS=4 PER_WORKER=2500 CHANNELS_PER_WORKER=50
TOTAL=$((WORKERS * PER_WORKER))

hf_pipeline_start
hf_ingest_start
hf_tap_start "$HF_RUN/redis.jsonl"
hf_relay_start ra
hf_check "ra leads" hf_wait_until 30 "ra to lead" hf_relay_leads ra
hf_relay_start rb
hf_check "rb stands by" hf_wait_until 10 "rb to see ra" grep -q 'standing by: ra leads' "$HF_RUN/rb.log"

# Worker w owns channels rl:w:0..49 and publishes seq 1..2500 round-robin
# over them through ingest, in order (workers 0-1 one event per request,
# 2-3 batches of 10), pausing briefly every 100 events so the run spans
# the failover.
hf_publishers_start "$WORKERS" "$PER_WORKER" "$CHANNELS_PER_WORKER" --batch 1,1,10,10 --pause 0.1 --pause-every 100

relayed() { [[ $(hf_psql -c "SELECT count(*) FROM holdfast.event_offsets") -ge $1 ]]; }
hf_check "events flow before the kill" hf_wait_until 60 "2,000 events relayed" relayed 2000
kill -KILL "$(hf_pid ra)"
t_kill=$SECONDS
hf_wait_exit ra
hf_log "SIGKILLed the leader ra with $(hf_unrelayed) events not yet recorded"

hf_check "rb leads once ra's lease expires" hf_wait_until 30 "rb to lead" hf_relay_leads rb
took=$((SECONDS - t_kill))
hf_log "rb led ${took} s after ra was killed (lease TTL 2 s, renew 0.3 s)"
hf_check "... within three lease TTLs" test "$took" -le 6
hf_publishers_wait "$WORKERS"
hf_check "everything is relayed" hf_wait_until 60 "every event relayed" hf_all_relayed
hf_check "rb took over from ra" grep -q "taken over from ra" "$HF_RUN/rb.log"
hf_check "Redis got the tail of the run" hf_wait_until 20 "tap to see the last events" \
    bash -c "tail -n 1 '$HF_RUN/redis.jsonl' | grep -q channel"
sleep 0.5
hf_stop tap
hf_check "Kafka, PostgreSQL and Redis agree (exactly once, order, offsets, chain)" \
    hf_relay_verify --expect "$TOTAL" --tap "$HF_RUN/redis.jsonl" --tap-min $((TOTAL / 2))
hf_check_eq "no order violation counted by the relay" 0 \
    "$(hf_metric "$PORT_rb" holdfast_relay_order_violations_total)"

hf_checks_done
