#!/usr/bin/env bash
# freeze-redis: SIGSTOP Redis for --pause seconds, then SIGCONT. A frozen
# server keeps its sockets open and answers nothing: the gateways must
# notice by their heartbeat, go on from Kafka, and come back when it thaws.
source "$(dirname "$0")/lib.sh"
chaos_inject() { chaos_target_freeze redis; }
chaos_repair() { chaos_target_thaw redis; }
chaos_main "$@"
