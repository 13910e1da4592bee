#!/usr/bin/env bash
# kill-postgres: SIGKILL PostgreSQL under load (a crash, not a shutdown),
# started again after --pause: crash recovery replays its WAL. Ingest
# answers 503 meanwhile and the driver retries with its Idempotency-Key.
# The relay records offsets with asynchronous commits, so the last of
# them die with the server: its next start reads those partitions' Kafka
# tails and records them again, producing nothing twice. Everything
# acknowledged must be stored once and delivered once. With --k8s: the
# CloudNativePG primary pod force-deleted (a standby is promoted; the
# relay's slot does not survive that and is reconciled).
source "$(dirname "$0")/lib.sh"

# The postmaster's backends notice its death and exit; a new server
# cannot start while they hold its shared memory.
chaos_pg_backends_gone() { ! pgrep -P "$1" >/dev/null 2>&1; }

chaos_inject() {
    if ((CHAOS_K8S)); then
        chaos_target_kill postgres
        return
    fi
    local pid
    pid=$(chaos_stack_pid postgres)
    chaos_target_kill postgres
    hf_wait_until 30 "PostgreSQL's processes gone" chaos_pg_backends_gone "$pid" ||
        hf_log "$CHAOS_NAME: PostgreSQL's backends outlived it"
}
chaos_repair() { chaos_target_restore postgres; }
chaos_main "$@"
