#!/usr/bin/env bash
# replay.sh - how fast holdfast-replay reads the log and prints events.
#
#   bench/replay.sh [BUILD_DIR] [EVENTS]      e.g. bench/replay.sh build 120000
#
# EVENTS events on 100 channels ({"seq":N} payloads) are committed and relayed into the dev
# broker (8 partitions). Then holdfast-replay reads every partition back to
# /dev/null, once printing every record (--partition P) and once printing
# one channel of it (--channel C: the whole partition is read, 1 record in
# ~12 printed). Reports records/s read, over all partitions, process start
# and Kafka connection included. The dev broker keeps about 5 MB per
# partition (older records are dropped), so keep EVENTS below ~150,000.
# Writes bench/results/replay.json.
set -euo pipefail
BUILD=${1:-build}
EVENTS=${2:-120000}
HF_BIN=$(cd "$BUILD" && pwd)/bin
source "$(dirname "$0")/../tests/support/lib.sh"
hf_init "$(mktemp -d /tmp/holdfast-bench.XXXXXX)"
trap 'hf_stop_all; rm -rf "$HF_RUN"' EXIT

hf_pipeline_start
hf_relay_start bench --batch-max 2000
hf_log "publishing and relaying $EVENTS events"
hf_publish_numbered bench 100 "$EVENTS"
hf_psql -c "ANALYZE holdfast.events" >/dev/null
hf_wait_until 600 "every event relayed" hf_all_relayed || hf_die "the relay did not catch up"
hf_stop bench

mapfile -t CHANNEL_OF < <(hf_psql -c "SELECT DISTINCT ON (partition) channel FROM holdfast.events ORDER BY partition")
replay_all() { # replay_all MODE: reads every partition; prints "seconds lines"
    local t0 t1 lines=0 p n
    t0=$(date +%s.%N)
    for p in 0 1 2 3 4 5 6 7; do
        if [[ $1 == partition ]]; then
            n=$("$HF_BIN/holdfast-replay" --kafka-brokers "$HF_KAFKA_BROKERS" --quiet --partition "$p" | wc -l)
        else
            n=$("$HF_BIN/holdfast-replay" --kafka-brokers "$HF_KAFKA_BROKERS" --quiet --channel "${CHANNEL_OF[$p]}" | wc -l)
        fi
        lines=$((lines + n))
    done
    t1=$(date +%s.%N)
    echo "$(python3 -c "print($t1 - $t0)") $lines"
}
records=$(timeout 60 kcat -C -b "$HF_KAFKA_BROKERS" -t holdfast.events -o beginning -e -q -f 'x\n' | wc -l)
read -r t_part n_part < <(replay_all partition)
read -r t_chan n_chan < <(replay_all channel)
mkdir -p "$(dirname "$0")/results"
python3 - "$records" "$t_part" "$n_part" "$t_chan" "$n_chan" "$(dirname "$0")/results/replay.json" <<'PY'
import json, sys
records, tp, np_, tc, nc, out = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
res = {"records_in_kafka": records,
       "partition_mode": {"seconds": round(tp, 3), "events_printed": np_, "records_per_s": round(records / tp)},
       "channel_mode": {"seconds": round(tc, 3), "events_printed": nc, "records_per_s": round(records / tc)}}
json.dump(res, open(out, "w"), indent=2)
print("replay --partition (8 runs): %d records read, %d printed in %.2f s: %d records/s"
      % (records, np_, tp, res["partition_mode"]["records_per_s"]))
print("replay --channel   (8 runs): %d records read, %d printed in %.2f s: %d records/s"
      % (records, nc, tc, res["channel_mode"]["records_per_s"]))
PY
echo "reproduce: bench/replay.sh $BUILD $EVENTS"
