#!/usr/bin/env bash
# kill-gateway: SIGKILL one gateway under load. Its clients see the
# connection cut (1006), reconnect to another gateway and resubscribe with
# `since`; nothing may be missed or repeated. The gateway is started again
# after --pause seconds.
source "$(dirname "$0")/lib.sh"
chaos_inject() { chaos_target_kill gateway-1; }
chaos_repair() { chaos_target_restore gateway-1; }
chaos_main "$@"
