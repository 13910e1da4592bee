#!/usr/bin/python3
"""Clients that resume from far back, again and again, on Python's
`websockets` (not the project's code): client i takes channel i of
--expect (a JSON file: [{"channel", "since", "epoch", "offsets"}], the
channel's events after `since` as PostgreSQL has them), connects to
gateway URL i mod len(urls), subscribes with since {since, epoch}, reads
until it has every offset, checks them (recovered:true, exactly those
offsets, in order, each prev_offset naming the one before), closes, and
starts over on the next gateway, until --stop appears. Writes --out
(JSON) and one summary line; exit 1 on any problem or when no round
completed. Bounded by --deadline seconds; a round by --round-timeout."""
import argparse, asyncio, json, os, sys, time

import websockets

ap = argparse.ArgumentParser()
ap.add_argument("--urls", required=True, help="comma-separated ws:// URLs")
ap.add_argument("--expect", required=True)
ap.add_argument("--clients", type=int, default=2)
ap.add_argument("--stop", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--deadline", type=float, default=600)
ap.add_argument("--round-timeout", type=float, default=120)
args = ap.parse_args()

urls = args.urls.split(",")
expect = json.load(open(args.expect))
deadline = time.monotonic() + args.deadline
headers = {}
if os.environ.get("HOLDFAST_SUBSCRIBE_TOKEN"):
    headers["Authorization"] = "Bearer " + os.environ["HOLDFAST_SUBSCRIBE_TOKEN"]


async def one_round(url, want):
    """None when the round was right, else what was wrong."""
    got = []
    async with websockets.connect(url, subprotocols=["holdfast.v1.json"], ping_interval=None,
                                  max_size=2**24, open_timeout=10, extra_headers=headers) as ws:
        await ws.send(json.dumps({"type": "subscribe", "channel": want["channel"],
                                  "since": {"offset": want["since"], "epoch": want["epoch"]}}))
        end = time.monotonic() + args.round_timeout
        while len(got) < len(want["offsets"]):
            left = end - time.monotonic()
            if left <= 0:
                return f"{len(got)} of {len(want['offsets'])} events within {args.round_timeout} s"
            m = json.loads(await asyncio.wait_for(ws.recv(), left))
            if m["type"] == "subscribed" and not m["recovered"]:
                return f"not recovered: {m}"
            if m["type"] == "error":
                return f"error: {m}"
            if m["type"] == "event":
                got.append((m["offset"], m["prev_offset"]))
    offsets = [o for o, _ in got]
    if offsets != want["offsets"]:
        return f"offsets differ: got {len(offsets)}, first difference at " \
               f"{next((k for k, (a, b) in enumerate(zip(offsets, want['offsets'])) if a != b), len(offsets))}"
    if any(got[k][1] not in (None, got[k - 1][0]) for k in range(1, len(got))):
        return "prev_offset chain broken"
    return None


async def client(i, stats):
    want = expect[i % len(expect)]
    url_index = i % len(urls)
    while time.monotonic() < deadline and not os.path.exists(args.stop):
        try:
            problem = await one_round(urls[url_index], want)
        except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as e:
            problem = f"connection: {e!r}"
        if problem:
            stats["problems"].append(f"client {i} {want['channel']} via {urls[url_index]}: {problem}")
            await asyncio.sleep(0.5)
        else:
            stats["rounds"] += 1
            stats["events"] += len(want["offsets"])
        url_index = (url_index + 1) % len(urls)


async def main():
    stats = {"clients": args.clients, "rounds": 0, "events": 0, "problems": []}
    await asyncio.gather(*(client(i, stats) for i in range(args.clients)))
    json.dump(stats, open(args.out, "w"))
    print(f"deep resume: {stats['clients']} clients, {stats['rounds']} rounds, "
          f"{stats['events']} events from far back, {len(stats['problems'])} problems"
          + (f" (first: {stats['problems'][0]})" if stats["problems"] else ""))
    return 1 if stats["problems"] or stats["rounds"] == 0 else 0

sys.exit(asyncio.run(main()))
