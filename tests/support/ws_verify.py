#!/usr/bin/python3
"""Checks what WebSocket clients (ws_clients.py) received against
PostgreSQL, the source of truth.

--pg: tab-separated channel, kafka_offset, seq (every event).
For every client that is not slow, and every channel it subscribed:
  - received exactly the events of that channel with an offset above the
    offset it was first subscribed at: none missing, none twice;
  - in offset order, which is publish order (seq increasing);
  - every prev_offset given equals the offset of the event before it (the
    chain a client checks itself), the first one at most the subscribed
    offset;
  - every resubscription (after a close) answered recovered:true.
Slow clients (--slow-close CODE): closed by the gateway with CODE.
--expect-closes CODES: each of these close codes was seen by some client.
Prints a summary; exits 1 on any violation."""
import argparse, collections, json, sys

ap = argparse.ArgumentParser()
ap.add_argument("--pg", required=True)
ap.add_argument("--results", required=True)
ap.add_argument("--slow-close", type=int, default=0)
ap.add_argument("--expect-closes", default="", help="comma-separated close codes each seen by some client")
ap.add_argument("--min-events", type=int, default=1, help="fail if fewer events were received")
args = ap.parse_args()

by_channel = collections.defaultdict(list)
for line in open(args.pg):
    parts = line.rstrip("\n").split("\t")
    if len(parts) < 3 or parts[1] == "":
        continue
    by_channel[parts[0]].append((int(parts[1]), int(parts[2]) if parts[2] else None))
for ch in by_channel:
    by_channel[ch].sort()

results = json.load(open(args.results))
problems = []
stats = collections.Counter()
close_codes = collections.Counter()


def problem(client, ch, what):
    if len(problems) < 30:
        problems.append(f"client {client} channel {ch}: {what}")
    stats["violations"] += 1


for r in results:
    cid = r["client"]
    for c in r["closes"]:
        close_codes[c[0]] += 1
    if r["slow"]:
        stats["slow clients"] += 1
        if args.slow_close and args.slow_close not in [c[0] for c in r["closes"]]:
            problem(cid, "-", f"slow client not closed with {args.slow_close}: {r['closes']}")
        continue
    stats["clients"] += 1
    if r["errors"]:
        problem(cid, "-", f"errors: {r['errors'][:3]}")
    if not r["finished"]:
        problem(cid, "-", "did not finish before its deadline")
    for ch in r["channels"]:
        sub = r["subs"].get(ch)
        if not sub or not sub["subscribed"]:
            problem(cid, ch, "never subscribed")
            continue
        start = sub["subscribed"][0][0]
        for s in sub["subscribed"][1:]:
            if not s[2]:
                problem(cid, ch, f"resubscription not recovered: {s}")
        got = sub["events"]
        offsets = [e[0] for e in got]
        stats["events received"] += len(got)
        expected = [o for o, _ in by_channel.get(ch, []) if o > start]
        if offsets != expected:
            have, want = collections.Counter(offsets), collections.Counter(expected)
            missing = sorted((want - have).elements())
            dups = sorted(o for o, n in have.items() if n > 1)
            extra = sorted((have - want).elements())
            stats["missing"] += len(missing)
            stats["duplicates"] += len(dups)
            if not missing and not dups and not extra:
                stats["order violations"] += 1
            problem(cid, ch, f"missing {missing[:10]} ({len(missing)}), duplicates {dups[:10]}, "
                             f"unexpected {extra[:10]}, order ok={offsets == sorted(offsets)}")
        seqs = [e[2] for e in got if e[2] is not None]
        if seqs != sorted(seqs):
            stats["order violations"] += 1
            problem(cid, ch, "payload seq not increasing")
        for k, (off, prev, _) in enumerate(got):
            if prev is None:
                continue
            if (k == 0 and prev > start) or (k > 0 and prev != got[k - 1][0]):
                stats["chain violations"] += 1
                problem(cid, ch, f"event {off}: prev_offset {prev}, previous "
                                 f"{got[k - 1][0] if k else 'subscribed at ' + str(start)}")
                break
        stats["subscriptions"] += 1

for key in ("missing", "duplicates", "order violations", "chain violations"):
    stats.setdefault(key, 0)
print("ws_verify: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.items())) +
      f"; closes by code {dict(close_codes)}")
for code in filter(None, args.expect_closes.split(",")):
    if close_codes[int(code)] == 0:
        problems.append(f"no client saw close code {code}")
if stats["events received"] < args.min_events:
    problems.append(f"only {stats['events received']} events received (< {args.min_events})")
for p in problems:
    print("  " + p)
sys.exit(1 if problems else 0)
