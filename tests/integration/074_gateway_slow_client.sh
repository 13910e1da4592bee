#!/usr/bin/env bash
# Slow clients hurt only themselves (invariant 8, docs/design.md): six
# clients that stop reading (tiny receive buffers, no reads for 3 s) share channels with 20
# fast clients while 3,000 events of ~1 KB are published, on two gateways:
#   ga bounds each connection's send queue (300 messages / 256 KiB here):
#      its three slow clients overflow it and are closed with 4001
#      ("resume from your last position");
#   gb bounds each connection generously (4 MiB) but all of them together
#      to 512 KiB (--send-queue-total-bytes): the connections holding the
#      most are closed with 4001 as the total reaches it, and the total
#      never exceeds it (holdfast_gateway_send_queue_peak_bytes).
# Every fast client still receives every event, in order, once.
# A client resuming far behind is paced instead (catch-up from Kafka waits
# for its queue to drain).
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pipeline_start
hf_ingest_start
hf_relay_start ra
hf_gateway_start ga --send-queue-messages 300 --send-queue-bytes 256KiB \
    --socket-sndbuf 64KiB
hf_gateway_start gb --send-queue-messages 100000 --send-queue-bytes 4MiB \
    --send-queue-total-bytes 512KiB --socket-sndbuf 64KiB

channels=$(for ((c = 0; c < 5; c++)); do printf 'gw:0:%d,' "$c"; done)
# client i on gateway i mod 2: the slow ones are 0..5, three on each
hf_ws_clients_start --urls "$WS_ga,$WS_gb" --clients 26 --slow 6 --slow-pause 3 \
    --channels "${channels%,}" --per-client 5 --deadline 120
python3 "$HF_SUPPORT/publish_ingest.py" --url "$HF_INGEST_URL" --worker 0 --prefix gw --count 3000 \
    --channels 5 --batch 10 --pad 1000 --pause 0.05 --pause-every 50
hf_check "every event is relayed" hf_wait_until 60 "every event relayed" hf_all_relayed
hf_ws_clients_finish
hf_check "slow clients closed with 4001; every fast client got every event" \
    hf_ws_verify --slow-close 4001 --min-events $((20 * 3000))
hf_check_eq "ga: three slow closes counted" 3 "$(hf_metric "$PORT_ga" holdfast_gateway_slow_closes_total)"
hf_check_eq "gb: no connection reached its own bound" 0 \
    "$(hf_metric "$PORT_gb" holdfast_gateway_slow_closes_total)"
hf_check_eq "gb: the three slow ones closed for the process' bound" 3 \
    "$(hf_metric "$PORT_gb" holdfast_gateway_budget_closes_total)"
peak=$(hf_metric "$PORT_gb" holdfast_gateway_send_queue_peak_bytes)
hf_log "gb: send queues peaked at $peak bytes"
hf_check "gb: all send queues together stayed within 512 KiB, and came near it" \
    test "$peak" -le $((512 << 10)) -a "$peak" -gt $((256 << 10))
# A resume far behind (600 events, twice the queue) by a client that
# reads nothing for its first 2 s is paced by its reading, not cut off: catch-up from Kafka pauses while the
# connection's queue is over half full.
first=$(hf_psql -c "SELECT min(kafka_offset) FROM holdfast.event_log WHERE channel = 'gw:0:0'")
later=$(hf_psql -c "SELECT string_agg(kafka_offset::text, ',' ORDER BY kafka_offset)
    FROM holdfast.event_log WHERE channel = 'gw:0:0' AND kafka_offset > $first")
hf_check "a long resume is paced, not closed" /usr/bin/python3 "$HF_SUPPORT/ws_resume_check.py" \
    --url "$WS_ga" --channel gw:0:0 --since "$first" \
    --epoch "$(hf_psql -c "SELECT epoch FROM holdfast.meta")" --expect "$later" --read-delay 2
hf_check_eq "nothing left queued" 0 "$(hf_metric "$PORT_ga" holdfast_gateway_send_queue_bytes)"
hf_check_eq "nothing left queued on gb" 0 "$(hf_metric "$PORT_gb" holdfast_gateway_send_queue_bytes)"
hf_checks_done
