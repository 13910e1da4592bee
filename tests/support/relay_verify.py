#!/usr/bin/env python3
"""Checks the relay's output against PostgreSQL, the source of truth.

Inputs (files):
  --pg     TSV from psql: id, channel, partition, kafka_offset, seq
           (seq: the event's position in its channel's publish order, or
           empty when the test did not number its events)
  --kafka  kcat -f '%p\\t%o\\t%k\\t%h\\n' over the whole topic
  --tap    holdfast-tap JSON lines (optional): what Redis carried
  --dead   ids that went to dead_letters (optional, one per line)

Checks (invariants 2-6 in docs/design.md, the relay's side):
  every event in Kafka exactly once (dead letters: never), in its own
  partition, at the offset written back to PostgreSQL; per channel, Kafka
  order equals publish order (seq); with --tap, every Redis message is an
  event at its Kafka offset, carries as prev_offset the Kafka offset of the
  channel's previous event, and arrives in offset order per channel;
  --tap-complete also requires every event on Redis exactly once, and
  --tap-min N at least N messages.
Prints a JSON summary; exit 1 on any violation."""
import argparse, collections, json, re, sys

ap = argparse.ArgumentParser()
ap.add_argument("--pg", required=True)
ap.add_argument("--kafka", required=True)
ap.add_argument("--tap")
ap.add_argument("--dead")
ap.add_argument("--expect", type=int)
ap.add_argument("--tap-complete", action="store_true")
ap.add_argument("--tap-min", type=int, default=0)
args = ap.parse_args()

problems = []
def bad(msg):
    if len(problems) < 20:
        print("VIOLATION: " + msg, file=sys.stderr)
    problems.append(msg)

pg = {}
for line in open(args.pg):
    f = line.rstrip("\n").split("|") if "|" in line else line.rstrip("\n").split("\t")
    if len(f) < 5:
        continue
    pg[f[0]] = {"channel": f[1], "partition": int(f[2]),
                "offset": int(f[3]) if f[3] else None, "seq": int(f[4]) if f[4] else None}
dead = set(l.strip() for l in open(args.dead)) if args.dead else set()
dead.discard("")
if args.expect is not None and len(pg) != args.expect:
    bad(f"PostgreSQL holds {len(pg)} events, expected {args.expect}")

id_re = re.compile(r"(?:^|,)hf-id=([^,]+)")
kafka, seen = {}, collections.Counter()
for line in open(args.kafka):
    f = line.rstrip("\n").split("\t")
    if len(f) < 4:
        continue
    m = id_re.search(f[3])
    if not m:
        bad(f"Kafka record {f[0]}/{f[1]} has no hf-id header")
        continue
    eid = m.group(1)
    seen[eid] += 1
    kafka[eid] = (int(f[0]), int(f[1]), f[2])
for eid, n in seen.items():
    if n > 1:
        bad(f"event {eid} is in Kafka {n} times")
    if eid not in pg:
        bad(f"Kafka record {eid} is not an event in PostgreSQL")
for eid, ev in pg.items():
    if eid in dead:
        if eid in kafka:
            bad(f"dead-lettered event {eid} is in Kafka")
        continue
    k = kafka.get(eid)
    if not k:
        bad(f"event {eid} ({ev['channel']}) is missing from Kafka")
        continue
    if k[0] != ev["partition"]:
        bad(f"event {eid} is in partition {k[0]}, PostgreSQL says {ev['partition']}")
    if k[1] != ev["offset"]:
        bad(f"event {eid} is at offset {k[1]}, PostgreSQL says {ev['offset']}")
    if k[2] != ev["channel"]:
        bad(f"event {eid} has key {k[2]!r}, channel is {ev['channel']!r}")

# Per channel: the Kafka sequence, in offset order; publish order must match it.
chains = collections.defaultdict(list)
for eid, (p, o, ch) in kafka.items():
    if eid in pg:
        chains[ch].append((o, eid))
prev_of = {}
reordered = 0
for ch, recs in chains.items():
    recs.sort()
    last_seq, last_off = None, -1
    for o, eid in recs:
        prev_of[eid] = last_off
        last_off = o
        s = pg[eid]["seq"]
        if s is not None:
            if last_seq is not None and s <= last_seq:
                reordered += 1
                bad(f"channel {ch}: seq {s} after seq {last_seq} in Kafka (offset {o})")
            last_seq = s

tap_n, tap_dups, tap_chain_ok = 0, 0, 0
if args.tap:
    got = collections.Counter()
    last = {}
    for line in open(args.tap):
        m = json.loads(line)
        if "error" in m:
            bad(f"Redis message not an envelope: {m['error']}")
            continue
        tap_n += 1
        eid, ch = m["id"], m["channel"]
        got[eid] += 1
        if got[eid] > 1:
            tap_dups += 1
        if eid not in kafka:
            bad(f"Redis carried {eid} which is not in Kafka")
            continue
        if m["offset"] != kafka[eid][1] or m["partition"] != kafka[eid][0]:
            bad(f"Redis says {eid} is at {m['partition']}/{m['offset']}, Kafka at {kafka[eid][0]}/{kafka[eid][1]}")
        if m["prev_offset"] != prev_of.get(eid):
            bad(f"{ch}: {eid} at {m['offset']} has prev_offset {m['prev_offset']}, the channel's previous Kafka offset is {prev_of.get(eid)}")
        else:
            tap_chain_ok += 1
        if ch in last and m["offset"] <= last[ch] and got[eid] == 1:
            bad(f"{ch}: Redis delivered offset {m['offset']} after {last[ch]}")
        last[ch] = max(last.get(ch, -1), m["offset"])
    if args.tap_complete:
        missing = [e for e in kafka if e in pg and got[e] == 0]
        if missing:
            bad(f"{len(missing)} events never reached Redis, e.g. {missing[0]}")
        if tap_dups:
            bad(f"{tap_dups} duplicate messages on Redis")
    if tap_n < args.tap_min:
        bad(f"only {tap_n} Redis messages, expected at least {args.tap_min}")

summary = {"events": len(pg), "kafka_records": sum(seen.values()), "dead_letters": len(dead),
           "channels": len(chains), "order_violations": reordered, "redis_messages": tap_n,
           "redis_duplicates": tap_dups, "redis_chain_ok": tap_chain_ok, "violations": len(problems)}
print(json.dumps(summary))
sys.exit(1 if problems else 0)
