#!/usr/bin/env bash
# A bulk import: 100,000 events committed in one transaction into a
# 2-partition topic, straight after the insert (table statistics not yet
# refreshed by autovacuum). The relay drains it while keeping its leases:
# every batch's commit must stay well inside the lease TTL. (With an outbox
# index on event_id alone, PostgreSQL's plan read every row of the partition
# for each deleted row: seconds per batch, leases lost, partitions churned.)
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pipeline_start 2
hf_publish_numbered bulk 100 100000
# The commit's delete, planned the way the relay's function runs it, right
# after the import: one index probe per row, never the partition's index.
plan=$(hf_psql -c "EXPLAIN WITH ids AS (SELECT array_agg(event_id) i, array_agg(partition) p
    FROM (SELECT event_id, partition FROM holdfast.outbox ORDER BY seq LIMIT 1000) x)
    DELETE FROM holdfast.outbox o USING ids, unnest(ids.i, ids.p) AS u(id, p)
    WHERE o.event_id = u.id AND o.partition = u.p")
hf_check "the commit's delete probes outbox_event_id only" bash -c \
    "grep -q outbox_event_id <<<'$plan' && ! grep -q outbox_partition_seq <<<'$plan'"
hf_relay_start r1 --batch-max 2000
hf_check "the relay drains 100,000 events" hf_wait_until 240 "the outbox to drain" hf_outbox_empty
hf_check_eq "no lease lost while draining" 0 "$(hf_metric "$PORT_r1" holdfast_relay_leases_lost_total)"
hf_check_eq "partitions acquired once each" 2 "$(grep -c 'acquired' "$HF_RUN/r1.log")"
hf_check_eq "every event has its offset" 0 "$(hf_psql -c "SELECT count(*) FROM holdfast.events WHERE kafka_offset IS NULL")"
hf_checks_done
