#!/usr/bin/python3
"""quiet_probe.py - one subscriber of one quiet channel: how long its only
event takes to arrive, for chaos scenarios that must show a gap is noticed
without waiting for a channel's next event.

    chaos/quiet_probe.py --url WS_URL --channel C --out FILE [--token T] [--timeout S]

Subscribes (writes "subscribed" to FILE once it is), then waits for one
event and writes "event RECV_UNIX_MS OFFSET" (or "timeout"). Python's
websockets package: a client the project did not write. Bounded by
--timeout (default 60 s)."""
import argparse
import asyncio
import json
import time

import websockets

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--channel", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--token", default="")
ap.add_argument("--timeout", type=float, default=60)
args = ap.parse_args()


def note(line):
    with open(args.out, "a") as f:
        f.write(line + "\n")


async def main():
    url = args.url + (("?token=" + args.token) if args.token else "")
    async with websockets.connect(url, subprotocols=["holdfast.v1.json"]) as ws:
        await ws.send(json.dumps({"type": "subscribe", "channel": args.channel}))
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            try:
                msg = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
            except asyncio.TimeoutError:
                break
            if msg.get("type") == "subscribed":
                note("subscribed")
            elif msg.get("type") == "event" and msg.get("channel") == args.channel:
                note("event %d %d" % (time.time() * 1000, msg["offset"]))
                return
    note("timeout")


asyncio.run(main())
