#!/usr/bin/python3
"""The local stack's live demo: one WebSocket client per gateway subscribes
to a channel, one event is published through ingest, and each client
prints what it received (the same event, with its Kafka position)."""
import argparse, asyncio, json, os, time, urllib.request

import websockets

ap = argparse.ArgumentParser()
ap.add_argument("--channel", default="demo")
ap.add_argument("--urls", required=True)
ap.add_argument("--publish", required=True)
args = ap.parse_args()


def bearer(var):
    """Authorization header from a token in the environment (.run/stack.env)."""
    token = os.environ.get(var)
    return {"Authorization": "Bearer " + token} if token else {}


async def client(url, ready, published):
    async with websockets.connect(url, subprotocols=["holdfast.v1.json"],
                                  extra_headers=bearer("HOLDFAST_SUBSCRIBE_TOKEN")) as ws:
        await ws.send(json.dumps({"type": "subscribe", "channel": args.channel}))
        sub = json.loads(await asyncio.wait_for(ws.recv(), 10))
        print(f"  {url}  <- {json.dumps(sub)}")
        ready.set()
        await published.wait()
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if m["type"] == "event":
                age_ms = (time.time() * 1e6 - m["ts_us"]) / 1000
                print(f"  {url}  <- {json.dumps(m)}  ({age_ms:.1f} ms after its commit)")
                return


async def main():
    urls = args.urls.split(",")
    readies = [asyncio.Event() for _ in urls]
    published = asyncio.Event()
    tasks = [asyncio.create_task(client(u, r, published)) for u, r in zip(urls, readies)]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 10)
    body = json.dumps({"channel": args.channel,
                       "data": {"hello": "world", "at": time.strftime("%H:%M:%S")}})
    req = urllib.request.Request(args.publish, data=body.encode(), method="POST",
                                 headers={"Content-Type": "application/json"}
                                 | bearer("HOLDFAST_PUBLISH_TOKEN"))
    answer = urllib.request.urlopen(req, timeout=10).read().decode()
    print(f"  POST {args.publish} {body}\n  -> {answer}")
    published.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 15)

asyncio.run(main())
