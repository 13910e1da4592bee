#!/usr/bin/python3
"""table.py OUT NAME...: one line per chaos run from OUT/NAME.json (the
driver's result), plus its gateway fallbacks and cross-check from NAME.txt."""
import json, os, re, sys

out, names = sys.argv[1], sys.argv[2:]
head = ("scenario", "verdict", "published", "owed", "delivered", "per client", "missing", "dup",
        "order", "p99 before", "p99 during", "p99 after", "max ms", "recovery s", "fallbacks",
        "cross-check")
rows = []
for name in names:
    path = os.path.join(out, name + ".json")
    if not os.path.exists(path):
        rows.append((name, "NO RESULT") + ("",) * (len(head) - 2))
        continue
    r = json.load(open(path))
    txt = open(os.path.join(out, name + ".txt")).read() if os.path.exists(
        os.path.join(out, name + ".txt")) else ""
    m = re.search(r"fell back from Redis to Kafka (\d+) times", txt)
    c = re.search(r"cross-check \((\d+) .*missing (\d+)", txt)
    lat, d, f = r["latency_ms"], r["deliveries"], r["fault"]
    p99 = lambda ph: f"{lat[ph]['p99']:.1f}" if lat[ph]["count"] else "-"
    rec = ("none" if not f["disrupted"] else
           f"{f['recovery_s']:.2f}" if f["recovered"] else "not by end")
    rows.append((name, r["verdict"], str(r["published"]["acknowledged"]), str(d["owed"]),
                 str(d["received"]), f"{d['per_client_min']}..{d['per_client_max']}",
                 str(r["missing"]), str(r["duplicates"]), str(r["order_violations"]),
                 p99("before"), p99("during"), p99("after"), f"{lat['all']['max']:.1f}", rec,
                 m.group(1) if m else "-",
                 f"{c.group(1)} clients, {c.group(2)} missing" if c else "-"))
width = [max(len(x[i]) for x in rows + [head]) for i in range(len(head))]
for row in [head] + rows:
    print("  ".join(v.ljust(width[i]) for i, v in enumerate(row)).rstrip())
