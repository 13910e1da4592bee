#!/usr/bin/env bash
# restart-postgres: stop PostgreSQL (fast shutdown) under load for --pause
# seconds, then start it again. Ingest answers 503 meanwhile; the driver
# retries each event with its Idempotency-Key; everything acknowledged must
# be stored once and delivered once.
source "$(dirname "$0")/lib.sh"
chaos_inject() { chaos_target_stop postgres; }
chaos_repair() { chaos_target_restore postgres; }
chaos_main "$@"
