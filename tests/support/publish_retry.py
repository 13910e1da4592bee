#!/usr/bin/env python3
"""Publishes events one after another, each with its own Idempotency-Key,
retrying every non-2xx answer with the same key until it is accepted, the
way a careful client rides out an outage. Stops starting new events when
the file given by --stop-file exists (or after --max events), then writes
one line per accepted event: "key id status-history" to --out.
Bounded: every event gives up after --deadline seconds."""
import argparse, json, os, sys, time, urllib.request, urllib.error

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--channel", default="outage")
ap.add_argument("--out", required=True)
ap.add_argument("--stop-file", required=True)
ap.add_argument("--max", type=int, default=5000)
ap.add_argument("--deadline", type=float, default=60.0)
args = ap.parse_args()

def post(key, body):
    req = urllib.request.Request(args.url + "/v1/events", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Idempotency-Key": key})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read()), r.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), e.headers
    except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
        return 0, {"error": str(e)}, {}

lines, saw_503, missing_retry_after = [], 0, 0
for i in range(args.max):
    if os.path.exists(args.stop_file):
        break
    key = "outage-%d-%d" % (os.getpid(), i)
    body = json.dumps({"channel": args.channel, "data": {"seq": i}}).encode()
    history, start = [], time.time()
    while True:
        status, doc, headers = post(key, body)
        history.append(str(status))
        if status in (200, 201):
            lines.append("%s %s %s" % (key, doc["id"], ",".join(history)))
            break
        if status == 503:
            saw_503 += 1
            if not headers.get("Retry-After"):
                missing_retry_after += 1
        elif status != 0:
            print("unexpected status %d: %s" % (status, doc), file=sys.stderr)
            sys.exit(1)
        if time.time() - start > args.deadline:
            print("event %s never accepted: %s" % (key, history), file=sys.stderr)
            sys.exit(1)
        time.sleep(0.05)
with open(args.out, "w") as f:
    f.write("\n".join(lines) + "\n")
print("accepted=%d saw_503=%d missing_retry_after=%d" % (len(lines), saw_503, missing_retry_after))
