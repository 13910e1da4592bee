#!/usr/bin/env bash
# The relay's pipeline under stress (invariants 4-6, docs/design.md): batch
# N+1 produced while N is recorded, the next commit only after the previous
# one, the chain map refilled from PostgreSQL only when PostgreSQL knows
# every offset the relay stamped, Redis in offset order.
#   - A chain map far smaller than the channels in use (--chain-max 100,
#     600 channels): it is emptied and refilled all the time while batches
#     and commits overlap. Any refill from a PostgreSQL that misses an
#     acknowledged offset would stamp a wrong prev_offset.
#   - The relay's SQL session killed (pg_terminate_backend) mid-run, with a
#     commit under way: the partitions it touched are read again from Kafka
#     and nothing is lost or doubled.
#   - Its replication session killed: the stream restarts from the slot and
#     the events sent again are skipped.
#   - A commit that went through while the relay believes it failed (its
#     answer lost; a test hook): the resync starts from the position
#     PostgreSQL has, and records nothing twice.
# In the end every event is in Kafka exactly once and in order, and every
# Redis message carries its Kafka offset and its channel's previous one.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pipeline_start
hf_ingest_start
hf_tap_start "$HF_RUN/redis.jsonl"
hf_relay_start r1 --chain-max 100 --commit-interval 5ms --crash-at commit-answer-lost:20
hf_wait_until 30 "r1 to lead" hf_relay_leads r1 || hf_die "r1 does not lead"

terminate() { # terminate APPLICATION_NAME: ends the relay's session of that name
    hf_psql -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
        WHERE application_name = '$1'"
}
hf_publishers_start 4 1500 150 --batch 1,5,10,20 --pause 0.05 --pause-every 100
for round in 1 2 3; do
    sleep 1
    hf_log "round $round: killed $(terminate holdfast-relay) SQL and $(terminate holdfast-relay-stream) replication sessions"
done
hf_publishers_wait 4
hf_check "everything is relayed" hf_wait_until 60 "every event relayed" hf_all_relayed
hf_check "the relay read partitions again after losing its SQL session" \
    test "$(hf_metric "$PORT_r1" holdfast_relay_resyncs_total)" -gt 8
hf_check "the stream restarted" test "$(hf_metric "$PORT_r1" holdfast_relay_stream_restarts_total)" -gt 1
hf_check_eq "no order violation counted" 0 "$(hf_metric "$PORT_r1" holdfast_relay_order_violations_total)"
hf_check "the lost commit answer was staged" grep -q 'test hook commit-answer-lost' "$HF_RUN/r1.log"
hf_check_eq "no offset was ever recorded a second time (refused by the unique index)" 0 \
    "$(grep -c 'duplicate key' "$HF_RUN/r1.log")"
sleep 0.5
hf_stop tap
hf_check "exactly once, in order, every Redis prev_offset right" \
    hf_relay_verify --expect 6000 --tap "$HF_RUN/redis.jsonl" --tap-min 6000
hf_checks_done
