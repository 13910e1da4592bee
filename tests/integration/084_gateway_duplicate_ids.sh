#!/usr/bin/env bash
# A batch the relay left twice in Kafka reaches every client once. The
# relay runs with --crash-at late-copy:2: its second batch is produced
# again once delivered, unrecorded and unpublished, so Kafka holds copies
# of those events (same ids, new offsets) that Redis never carried. Live
# clients get everything from Redis; clients that then resume from the
# log's start read every channel from Kafka, copies included, and must
# still get each event id exactly once, in order, chained. Without the
# gateway's window of delivered ids the resumes get the copies as new
# events.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

CHANNELS=4
hf_pipeline_start
hf_relay_start ra --crash-at late-copy:2
hf_gateway_start ga
channels=$(for ((c = 0; c < CHANNELS; c++)); do printf 'dup:%d,' "$c"; done)
channels=${channels%,}
hf_ws_clients_start --urls "$WS_ga" --clients 4 --channels "$channels" --per-client 4 --deadline 60

# Five transactions, one after another, so the relay makes several batches.
for ((t = 0; t < 5; t++)); do
    hf_publish_numbered dup "$CHANNELS" 40
    hf_wait_until 10 "transaction $t relayed" hf_all_relayed || true
done
hf_check "every event is relayed" hf_wait_until 30 "every event relayed" hf_all_relayed
hf_check "the relay made its late copy" grep -q 'test hook late-copy:2' "$HF_RUN/ra.log"

# Kafka really holds copies: some hf-id twice, at different offsets.
timeout 30 kcat -C -b "$HF_KAFKA_BROKERS" -t holdfast.events -o beginning -e -q \
    -f '%p\t%o\t%k\t%h\n' >"$HF_RUN/kafka.tsv"
copies=$(sed -n 's/.*hf-id=\([0-9a-f-]*\).*/\1/p' "$HF_RUN/kafka.tsv" | sort | uniq -d | wc -l)
records=$(wc -l <"$HF_RUN/kafka.tsv")
hf_log "Kafka: $records records, $copies ids twice"
hf_check "Kafka holds the same event ids twice" test "$copies" -gt 0
hf_check_eq "... and PostgreSQL each once" 200 "$(hf_psql -c "SELECT count(*) FROM holdfast.event_log WHERE channel LIKE 'dup:%'")"
hf_check_eq "... one record per copy beside them" $((200 + copies)) "$records"

# The live clients: from Redis, which never carried the copies.
hf_ws_clients_finish
hf_check "the live clients got every event once, in order, chained" hf_ws_verify --min-events 800

# Clients resuming from the log's start ({-1, null}): every channel from
# Kafka, copies and all.
hf_psql -F $'\t' -c "SELECT channel, id, kafka_offset FROM holdfast.event_log
    WHERE channel LIKE 'dup:%' ORDER BY channel, kafka_offset" >"$HF_RUN/expected.tsv"
cat >"$HF_RUN/resume.py" <<'EOF'
import asyncio, collections, json, sys
import websockets

url, expected_file, channels = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
want = collections.defaultdict(list)
for line in open(expected_file):
    ch, eid, off = line.rstrip("\n").split("\t")
    want[ch].append(eid)
problems = []


async def resume(ch, msgpack_client):
    proto = "holdfast.v1.msgpack" if msgpack_client else "holdfast.v1.json"
    got, prevs, offsets, subscribed = [], [], [], []
    async with websockets.connect(url, subprotocols=[proto], open_timeout=5) as ws:
        msg = {"type": "subscribe", "channel": ch, "since": {"offset": -1, "epoch": None}}
        if msgpack_client:
            import msgpack
            await ws.send(msgpack.packb(msg))
        else:
            await ws.send(json.dumps(msg))
        while True:  # until the channel is quiet for 2 s (bounded: 30 s in all)
            try:
                frame = await asyncio.wait_for(ws.recv(), 2.0)
            except asyncio.TimeoutError:
                break
            if msgpack_client:
                import msgpack
                m = msgpack.unpackb(frame, raw=False)
            else:
                m = json.loads(frame)
            if m["type"] == "subscribed":
                subscribed.append(m["recovered"])
            elif m["type"] == "event":
                got.append(m["id"])
                prevs.append(m["prev_offset"])
                offsets.append(m["offset"])
    if subscribed != [True]:
        problems.append(f"{ch}: subscribed {subscribed}, want one recovered:true")
    dups = [i for i, n in collections.Counter(got).items() if n > 1]
    if got != want[ch]:
        problems.append(f"{ch}: {len(got)} events, {len(want[ch])} expected, "
                        f"{len(dups)} ids twice, in order: {got == want[ch]}")
    for k in range(1, len(offsets)):
        if prevs[k] != offsets[k - 1]:
            problems.append(f"{ch}: event {offsets[k]} prev_offset {prevs[k]}, previous {offsets[k - 1]}")
            break
    return len(got), len(dups)


async def main():
    res = await asyncio.wait_for(asyncio.gather(
        *[resume(ch, i % 2 == 1) for i, ch in enumerate(channels)]), 30)
    print(f"resume: {sum(r[0] for r in res)} events, {sum(r[1] for r in res)} ids twice")
    for p in problems:
        print("  " + p)
    sys.exit(1 if problems else 0)

asyncio.run(main())
EOF
hf_check "resumes from the log's start got each event id once, in order, chained" \
    /usr/bin/python3 "$HF_RUN/resume.py" "$WS_ga" "$HF_RUN/expected.tsv" "$channels"
hf_check "the gateway dropped the copies by id" \
    test "$(hf_metric "$PORT_ga" holdfast_gateway_duplicate_ids_total)" -ge "$copies"
hf_checks_done
