#!/usr/bin/env python3
"""Publishes a numbered sequence through ingest: worker W sends events
seq 1..COUNT round-robin over channels PREFIX:W:0..CHANNELS-1, in order,
BATCH events per POST /v1/events (keep-alive), each POST with its own
Idempotency-Key and retried with it on a 503 or a broken connection, so
every event is committed once, in its channel's publish order. Sleeps
PAUSE seconds every PAUSE_EVERY events so a run can span a fault.
Bounded: gives up (exit 1) after DEADLINE seconds."""
import argparse, http.client, json, os, sys, time, urllib.parse

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--worker", type=int, default=0)
ap.add_argument("--prefix", default="rl")
ap.add_argument("--count", type=int, default=1000)
ap.add_argument("--channels", type=int, default=50)
ap.add_argument("--batch", default="1",
                help="events per POST; a list (1,1,10) is indexed by worker, wrapping")
ap.add_argument("--pause", type=float, default=0.0)
ap.add_argument("--pause-every", type=int, default=0)
ap.add_argument("--deadline", type=float, default=120.0)
ap.add_argument("--pad", type=int, default=0, help="add a string of this many bytes to each payload")
args = ap.parse_args()
batches = [int(b) for b in args.batch.split(",")]
args.batch = batches[args.worker % len(batches)]

u = urllib.parse.urlparse(args.url)
conn = None
deadline = time.monotonic() + args.deadline

HEADERS = {"Content-Type": "application/json"}
if os.environ.get("HOLDFAST_PUBLISH_TOKEN"):
    HEADERS["Authorization"] = "Bearer " + os.environ["HOLDFAST_PUBLISH_TOKEN"]


def post(body, key):
    global conn
    while time.monotonic() < deadline:
        try:
            if conn is None:
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
            conn.request("POST", "/v1/events", body=body, headers=HEADERS | {"Idempotency-Key": key})
            r = conn.getresponse()
            data = r.read()
            if r.status in (200, 201, 202):
                return
            if r.status != 503:
                sys.exit(f"POST {key}: HTTP {r.status} {data[:200]!r}")
        except (OSError, http.client.HTTPException):
            conn = None
        time.sleep(0.05)
    sys.exit(f"POST {key}: gave up after {args.deadline} s")

seq = 1
while seq <= args.count:
    events = []
    for s in range(seq, min(seq + args.batch, args.count + 1)):
        events.append({"channel": f"{args.prefix}:{args.worker}:{s % args.channels}", "data": {"seq": s, "pad": "x" * args.pad} if args.pad else {"seq": s}})
    body = json.dumps(events if args.batch > 1 else events[0]).encode()
    post(body, f"{args.prefix}-{args.worker}-{seq}")
    seq += len(events)
    if args.pause_every and (seq - 1) % args.pause_every == 0:
        time.sleep(args.pause)
