#!/usr/bin/env bash
# The relay's read of new events: a logical replication slot, not a table
# (invariant 2, docs/design.md).
#   1. An upgrade from the outbox schema: events left in the old outbox are
#      relayed once 004 is migrated (the first slot reconciles them).
#   2. A lost slot (dropped while the relay is down, as a PostgreSQL
#      failover loses it): the relay creates a new one and relays what the
#      old one never delivered, exactly once, while publishers run through
#      the seam.
#   3. A slot read by another session (a dead leader's half-open
#      connection; here pg_recvlogical): the new leader ends that session.
#   4. Reading costs the same with 100,000 relayed events behind it: the
#      relay, under a role of its own with only the rights it needs, never
#      reads holdfast.events, and the blocks its statements touch per
#      event stay flat.
#   5. Publishing transactions do not serialize: one stuck in its commit
#      (waiting for a synchronous standby that never comes) does not hold
#      up another. With a NOTIFY trigger, which takes PostgreSQL's
#      database-wide notification lock at commit, the same check fails.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pg_start "" fsync=off shared_preload_libraries=pg_stat_statements
hf_redis_start
hf_kafka_start 8 holdfast.events

# --- 1. upgrade from the outbox schema ----------------------------------------
for f in 001_core.sql 002_relay.sql 003_outbox_relay.sql; do
    hf_psql -f "$HF_ROOT/schemas/sql/$f" >/dev/null
done
hf_psql -c "CREATE TABLE holdfast.schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
    checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())" >/dev/null
for f in 001_core.sql 002_relay.sql 003_outbox_relay.sql; do
    hf_psql -v name="$f" -v md5="$(md5sum "$HF_ROOT/schemas/sql/$f" | cut -d' ' -f1)" \
        <<<"INSERT INTO holdfast.schema_migrations (version, name, checksum)
            VALUES (${f:0:3}, :'name', :'md5')" >/dev/null
done
hf_publish_numbered up 10 300
hf_check_eq "the old schema queued 300 outbox rows" 300 "$(hf_psql -c "SELECT count(*) FROM holdfast.outbox")"
hf_migrate
hf_check_eq "004 migrated over them" t "$(hf_psql -c "SELECT to_regclass('holdfast.outbox') IS NULL")"
hf_relay_start r1
hf_check "the relay's first slot relays the old outbox's events" \
    hf_wait_until 30 "every event relayed" hf_all_relayed
hf_check_eq "... as reconciled events" 300 "$(hf_metric "$PORT_r1" holdfast_relay_reconciled_total)"
hf_publish_numbered up 10 100
hf_check "then streams new ones" hf_wait_until 30 "every event relayed" hf_all_relayed
hf_check "upgrade: exactly once, in order" hf_relay_verify --expect 400

# --- 2. a lost slot ------------------------------------------------------------
hf_stop r1
hf_publish_numbered lost 10 200 # the old slot would have sent these
hf_psql -c "SELECT pg_drop_replication_slot('holdfast_relay')" >/dev/null
hf_publish_numbered lost 10 200
hf_ingest_start
hf_publishers_start 2 300 5 --prefix seam
hf_relay_start r2
hf_publishers_wait 2
hf_check "a new slot: everything the old one never sent is relayed" \
    hf_wait_until 30 "every event relayed" hf_all_relayed
hf_check "the relay says it reconciled" grep -q 'reconciling: events since' "$HF_RUN/r2.log"
hf_check "... and found the 400 events" test "$(hf_metric "$PORT_r2" holdfast_relay_reconciled_total)" -ge 400
hf_check_eq "reconcile finished" f "$(hf_psql -c "SELECT reconcile_pending FROM holdfast.relay_slot")"
hf_check "lost slot: exactly once, in order, even across the seam" \
    hf_relay_verify --expect $((HF_NEXT_SEQ - 1 + 600))

# --- 3. a slot another session reads ------------------------------------------
hf_stop r2
hf_spawn recvlogical "$HF_PG_BIN/pg_recvlogical" -d "$HF_PG_URL" -S holdfast_relay --start \
    -o proto_version=1 -o publication_names=holdfast_events -f /dev/null
slot_busy() { [[ $(hf_psql -c "SELECT active FROM pg_replication_slots WHERE slot_name = 'holdfast_relay'") == t ]]; }
hf_check "pg_recvlogical holds the slot" hf_wait_until 20 "pg_recvlogical to read the slot" slot_busy
hf_relay_start r3
hf_publish_numbered held 5 50
hf_check "the leader takes the slot over and relays" hf_wait_until 30 "every event relayed" hf_all_relayed
hf_check "it says whose session it ended" grep -q 'is read by session' "$HF_RUN/r3.log"
hf_stop r3

# --- 4. the read costs the same with many events behind it --------------------
# The relay's own role: the rights docs/relay.md lists, nothing more.
hf_psql -c "CREATE ROLE hf_relay LOGIN REPLICATION" \
    -c "GRANT USAGE ON SCHEMA holdfast TO hf_relay" \
    -c "GRANT SELECT ON holdfast.events, holdfast.meta, holdfast.epochs, holdfast.dead_letters TO hf_relay" \
    -c "GRANT SELECT, INSERT ON holdfast.event_offsets TO hf_relay" \
    -c "GRANT SELECT, INSERT, UPDATE ON holdfast.relay_leader, holdfast.relay_partitions,
        holdfast.relay_slot, holdfast.dead_letters TO hf_relay" \
    -c "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA holdfast TO hf_relay" \
    -c "GRANT UPDATE ON holdfast.meta TO hf_relay" -c "GRANT INSERT ON holdfast.epochs TO hf_relay" \
    -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
relay_url=${HF_PG_URL/holdfast@/hf_relay@}
HF_PG_URL_SAVED=$HF_PG_URL
HF_PG_URL=$relay_url hf_relay_start r4
HF_PG_URL=$HF_PG_URL_SAVED
relay_stats() { # total blocks and statements reading holdfast.events, by the relay's role
    hf_psql -c "SELECT coalesce(sum(shared_blks_hit + shared_blks_read), 0) || ' ' ||
        count(*) FILTER (WHERE query ~* 'holdfast\\.events\\M')
        FROM pg_stat_statements WHERE userid = 'hf_relay'::regrole"
}
measure() { # measure LABEL: relays 2,000 events; sets BLOCKS and READS
    hf_wait_until 60 "every event relayed" hf_all_relayed
    hf_psql -c "SELECT pg_stat_statements_reset()" >/dev/null
    hf_publish_numbered cost 200 2000
    hf_wait_until 60 "every event relayed" hf_all_relayed
    read -r BLOCKS READS <<<"$(relay_stats)"
    hf_log "$1: the relay's statements touched $BLOCKS blocks for 2,000 events"
}
hf_check "the relay runs under its own role" hf_wait_until 30 "r4 to lead" hf_relay_leads r4
measure "few events behind"
blocks_before=$BLOCKS
hf_check_eq "the relay's statements never read holdfast.events" 0 "$READS"
hf_publish_numbered behind 500 100000
hf_check "100,000 more relayed" hf_wait_until 120 "100,000 events relayed" hf_all_relayed
measure "100,000 more behind"
hf_check "with 100,000 events behind, blocks per event stay flat (at most twice)" \
    test "$BLOCKS" -le $((2 * blocks_before + 200))
hf_check_eq "... and still never read holdfast.events" 0 "$READS"
hf_stop r4

# --- 5. publishing transactions do not serialize -------------------------------
hf_psql -c "ALTER SYSTEM SET synchronous_standby_names = 'holdfast_never_connects'" \
    -c "ALTER SYSTEM SET synchronous_commit = local" -c "SELECT pg_reload_conf()" >/dev/null
stuck_waiting() {
    [[ $(hf_psql -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'") == 1 ]]
}
stuck_commit() { # a publish whose commit waits for the standby, in the background
    hf_spawn stuck psql "$HF_PG_URL" -X -q -c "SET synchronous_commit = on" \
        -c "SELECT holdfast.publish('ser:stuck', '{}')"
    hf_wait_until 20 "the stuck commit" stuck_waiting
}
unstick() {
    hf_psql -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'" >/dev/null
    hf_wait_exit stuck
}
other_publish() { # a second publish, giving up after 3 s waiting for a lock
    timeout 20 psql "$HF_PG_URL" -X -q -v ON_ERROR_STOP=1 -c "SET lock_timeout = '3s'" \
        -c "SELECT holdfast.publish('ser:other', '{}')" >/dev/null 2>&1
}
stuck_commit
hf_check "a publish commits while another publisher's commit is stuck" other_publish
unstick
hf_psql -c "CREATE FUNCTION holdfast.test_notify() RETURNS trigger LANGUAGE plpgsql AS
    \$\$ BEGIN PERFORM pg_notify('test', ''); RETURN NULL; END \$\$" \
    -c "CREATE TRIGGER test_notify AFTER INSERT ON holdfast.events FOR EACH STATEMENT
        EXECUTE FUNCTION holdfast.test_notify()" >/dev/null
stuck_commit
held=no
other_publish || held=yes
hf_check_eq "with a NOTIFY trigger the same publish is held up (the check catches it)" yes "$held"
unstick
hf_psql -c "DROP TRIGGER test_notify ON holdfast.events" -c "DROP FUNCTION holdfast.test_notify()" \
    -c "ALTER SYSTEM RESET synchronous_standby_names" -c "ALTER SYSTEM RESET synchronous_commit" \
    -c "SELECT pg_reload_conf()" >/dev/null

hf_checks_done
