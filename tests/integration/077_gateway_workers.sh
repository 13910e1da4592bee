#!/usr/bin/env bash
# One gateway process, several workers (the cores of one process): the
# accepted connections are spread over the workers, every worker delivers
# exactly once and in order, --workers 0 takes one per CPU the process may
# use, and running out of file descriptors refuses connections at accept
# instead of spinning or stopping the server.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

WORKERS=2 PER_WORKER=600 CHANNELS_PER_WORKER=6
hf_pipeline_start
hf_ingest_start
hf_relay_start ra

# A descriptor limit of 220: three workers hold about 140 at rest (each
# its Redis connection, three Kafka readers with a connection per broker,
# its loop's descriptors), which leaves room for the clients, not for 300
# more connections.
port=$(hf_free_port)
hf_spawn ga prlimit --nofile=220:220 "$HF_BIN/holdfast-gateway" --port "$port" \
    --redis-url "$HF_REDIS_URL" --kafka-brokers "$HF_KAFKA_BROKERS" --workers 3 \
    --redis-ping-interval 200ms --redis-ping-timeout 1s "$(hf_auth_flag)"
PORT_ga=$port
hf_wait_until 30 "ga /readyz" hf_http_ok "http://127.0.0.1:$port/readyz" || hf_die "ga did not start"
hf_check_eq "ga runs three workers" 3 "$(hf_metric "$PORT_ga" holdfast_gateway_workers)"

channels=$(hf_worker_channels wk "$WORKERS" "$CHANNELS_PER_WORKER")
hf_ws_clients_start --urls "ws://127.0.0.1:$port/v1/ws" --clients 12 --channels "$channels" \
    --per-client 3 --msgpack-every 3 --deadline 120
# Round robin: 12 connects in a row give 4 each; a handshake the client
# timed out and retried on a slow machine may shift one.
counts=$(for w in 0 1 2; do hf_metric "$PORT_ga" "holdfast_gateway_worker_connections{worker=\"$w\"}"; done)
hf_check_eq "the workers hold all 12 clients" 12 "$(($(echo "$counts" | paste -sd+)))"
hf_check "... spread evenly (4/4/4, give or take one retried handshake): $(echo $counts)" \
    test "$(echo "$counts" | sort -n | sed -n '$p')" -le $(($(echo "$counts" | sort -n | head -1) + 2))
hf_check_eq "every worker's Redis subscriber is connected" 1 \
    "$(hf_metric "$PORT_ga" holdfast_gateway_redis_connected)"

# 300 idle TCP connections against 220 descriptors: the surplus is closed
# at accept and counted; the process keeps serving.
/usr/bin/python3 - "$port" <<'PY'
import socket, sys, time
held = []
for _ in range(300):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    held.append(s)
time.sleep(1)
for s in held:
    s.close()
PY
refused() { [[ $(hf_metric "$PORT_ga" holdfast_gateway_accept_refused_total) -gt 0 ]]; }
hf_check "connections beyond the descriptor limit are refused and counted" \
    hf_wait_until 10 "the refusals to be counted" refused
hf_check "ga still runs" hf_alive ga

hf_publishers_start "$WORKERS" "$PER_WORKER" "$CHANNELS_PER_WORKER" --prefix wk
hf_publishers_wait "$WORKERS"
hf_check "every event is relayed" hf_wait_until 60 "every event relayed" hf_all_relayed
hf_ws_clients_finish
hf_check "every client got exactly its channels' events, in order, chained" \
    hf_ws_verify --min-events 1000

# --workers 0: one per CPU of the affinity mask, capped by a cgroup quota
# and at 8 (the test reads the quota at the cgroup root only).
expected=$(nproc)
((expected > 8)) && expected=8
if [[ -r /sys/fs/cgroup/cpu.max ]] && read -r quota period </sys/fs/cgroup/cpu.max &&
    [[ $quota != max ]]; then
    limit=$(((quota + period - 1) / period))
    ((limit < expected)) && expected=$limit
fi
if [[ -r /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]] && read -r quota </sys/fs/cgroup/cpu/cpu.cfs_quota_us &&
    ((quota > 0)); then
    limit=$(((quota + $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us) - 1) / $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)))
    ((limit < expected)) && expected=$limit
fi
hf_gateway_start gauto --workers 0
hf_check_eq "--workers 0 runs one worker per usable CPU" "$expected" \
    "$(hf_metric "$PORT_gauto" holdfast_gateway_workers)"
hf_checks_done
