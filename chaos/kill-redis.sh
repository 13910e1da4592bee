#!/usr/bin/env bash
# kill-redis: SIGKILL Redis under load; bring it back after --pause seconds
# (--no-repair: it stays dead for the rest of the run). Gateways must go on
# from Kafka offsets and hand back to Redis without a gap or a duplicate.
source "$(dirname "$0")/lib.sh"
chaos_inject() { chaos_target_kill redis; }
chaos_repair() { chaos_target_restore redis; }
chaos_main "$@"
