#!/usr/bin/python3
"""One client resumes CHANNEL with since {OFFSET, EPOCH} and must receive
exactly the offsets in --expect (comma-separated), in order, chained by
prev_offset, without being closed. With --read-delay it reads nothing
for that long after subscribing (small receive buffer), so a gateway
that pushed the whole catch-up at once would overflow its send queue.
Exits 1 otherwise."""
import argparse, asyncio, json, socket, sys, urllib.parse

import websockets

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--channel", required=True)
ap.add_argument("--since", type=int, required=True)
ap.add_argument("--epoch", required=True)
ap.add_argument("--expect", required=True)
ap.add_argument("--read-delay", type=float, default=0)
args = ap.parse_args()
expect = [int(x) for x in args.expect.split(",")]


async def main():
    got = []
    u = urllib.parse.urlparse(args.url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((u.hostname, u.port))
    async with websockets.connect(args.url, subprotocols=["holdfast.v1.json"], sock=sock,
                                  max_queue=1, read_limit=4096) as ws:
        await ws.send(json.dumps({"type": "subscribe", "channel": args.channel,
                                  "since": {"offset": args.since, "epoch": args.epoch}}))
        await asyncio.sleep(args.read_delay)
        try:
            while len(got) < len(expect):
                m = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if m["type"] == "subscribed" and not m["recovered"]:
                    sys.exit(f"not recovered: {m}")
                if m["type"] == "event":
                    got.append(m)
        except websockets.ConnectionClosed as e:
            sys.exit(f"closed with {e.rcvd.code if e.rcvd else 1006} after {len(got)} events")
    offsets = [m["offset"] for m in got]
    chained = all(got[k]["prev_offset"] in (None, got[k - 1]["offset"]) for k in range(1, len(got)))
    if offsets != expect or not chained:
        sys.exit(f"got {len(offsets)} offsets (chained {chained}), expected {len(expect)}")
    print(f"ws_resume_check: {len(offsets)} events replayed in order, chained")

asyncio.run(main())
