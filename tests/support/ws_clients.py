#!/usr/bin/python3
"""WebSocket clients for the gateway tests, on Python's `websockets`
(Debian's python3-websockets): a client the project did not write.

Client i connects to gateway URL i mod len(urls), subscribes to its
channels and records every event it gets. Whenever its connection ends
(close 1012 on a drain, 4001 when it was too slow, a killed gateway) it
reconnects to the next gateway and resubscribes each channel with
`since` = the offset of the last event it got (or the offset it was
subscribed at), as a real client would. Every message is recorded; the
verdict is ws_verify.py's.

Writes READY once every client's first subscriptions are confirmed;
after STOP appears, ends once no event arrived for IDLE seconds, and
writes OUT (JSON). Bounded by DEADLINE seconds in all cases.

--slow N makes the first N clients stop reading after subscribing (small
socket buffers, no recv) for --slow-pause seconds, then read to the end
and record how the gateway closed them."""
import argparse, asyncio, json, os, socket, sys, time, urllib.parse

import websockets

ap = argparse.ArgumentParser()
ap.add_argument("--urls", required=True, help="comma-separated ws:// URLs")
ap.add_argument("--clients", type=int, default=10)
ap.add_argument("--channels", required=True, help="comma-separated channel names")
ap.add_argument("--per-client", type=int, default=1)
ap.add_argument("--msgpack-every", type=int, default=0, help="every Nth client speaks msgpack")
ap.add_argument("--slow", type=int, default=0)
ap.add_argument("--slow-pause", type=float, default=3.0)
ap.add_argument("--out", required=True)
ap.add_argument("--ready", required=True)
ap.add_argument("--stop", required=True)
ap.add_argument("--idle", type=float, default=1.5)
ap.add_argument("--deadline", type=float, default=120)
args = ap.parse_args()

urls = args.urls.split(",")
channels = args.channels.split(",")
start = time.monotonic()
deadline = start + args.deadline
if args.msgpack_every:
    import msgpack


def now():
    return time.monotonic() - start


class Client:
    def __init__(self, i):
        self.i = i
        self.url_index = i % len(urls)
        self.msgpack = bool(args.msgpack_every) and i % args.msgpack_every == 0
        self.slow = i < args.slow
        self.channels = [channels[(i * args.per_client + j) % len(channels)]
                         for j in range(args.per_client)]
        self.channels = list(dict.fromkeys(self.channels))
        self.subs = {}  # channel -> {"subscribed": [...], "events": [[offset, prev, seq]]}
        self.position = {}  # channel -> (offset, epoch) to resume from
        self.closes = []
        self.errors = []
        self.confirmed = set()
        self.last_event = time.monotonic()
        self.done = False

    def encode(self, msg):
        return msgpack.packb(msg) if self.msgpack else json.dumps(msg)

    def decode(self, frame):
        if self.msgpack:
            if not isinstance(frame, bytes):
                raise ValueError("text frame under msgpack")
            m = msgpack.unpackb(frame, raw=False)
            if m.get("type") == "event":
                ct = m.get("content_type") or "application/json"
                m["data"] = json.loads(m["data"]) if ct == "application/json" else m["data"]
            return m
        if not isinstance(frame, str):
            raise ValueError("binary frame under JSON")
        return json.loads(frame)

    def on_message(self, m):
        t = m.get("type")
        ch = m.get("channel")
        if t == "subscribed":
            rec = self.subs.setdefault(ch, {"subscribed": [], "events": []})
            rec["subscribed"].append([m["offset"], m["epoch"], m["recovered"], round(now(), 3)])
            self.position[ch] = (m["offset"], m["epoch"])
            self.confirmed.add(ch)
        elif t == "event":
            rec = self.subs.setdefault(ch, {"subscribed": [], "events": []})
            data = m.get("data")
            seq = data.get("seq") if isinstance(data, dict) else None
            rec["events"].append([m["offset"], m["prev_offset"], seq])
            self.position[ch] = (m["offset"], m["epoch"])
            self.last_event = time.monotonic()
        elif t == "error":
            self.errors.append(m)

    async def session(self):
        url = urls[self.url_index]
        u = urllib.parse.urlparse(url)
        sock = None
        kw = {}
        if self.slow:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((u.hostname, u.port))
            kw = {"sock": sock, "max_queue": 1, "read_limit": 4096}
        proto = ["holdfast.v1.msgpack" if self.msgpack else "holdfast.v1.json"]
        if os.environ.get("HOLDFAST_SUBSCRIBE_TOKEN"):
            kw["extra_headers"] = {
                "Authorization": "Bearer " + os.environ["HOLDFAST_SUBSCRIBE_TOKEN"]}
        async with websockets.connect(url, subprotocols=proto, ping_interval=None,
                                      max_size=2**24, open_timeout=5, **kw) as ws:
            for ch in self.channels:
                msg = {"type": "subscribe", "channel": ch}
                if ch in self.position:
                    off, epoch = self.position[ch]
                    msg["since"] = {"offset": off, "epoch": epoch}
                await ws.send(self.encode(msg))
            if self.slow:
                await asyncio.sleep(0.5)
                self.confirmed.update(self.channels)  # it reads nothing yet
                await asyncio.sleep(args.slow_pause)
            while time.monotonic() < deadline:
                if os.path.exists(args.stop) and time.monotonic() - self.last_event > args.idle:
                    self.done = True
                    await ws.close()
                    return
                try:
                    frame = await asyncio.wait_for(ws.recv(), 0.25)
                except asyncio.TimeoutError:
                    continue
                self.on_message(self.decode(frame))

    async def run(self):
        while not self.done and time.monotonic() < deadline:
            try:
                await self.session()
            except websockets.ConnectionClosed as e:
                rcvd = e.rcvd
                self.closes.append([rcvd.code if rcvd else 1006, rcvd.reason if rcvd else "",
                                    urls[self.url_index], round(now(), 3)])
            except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake) as e:
                self.closes.append([0, f"connect: {e}", urls[self.url_index], round(now(), 3)])
                await asyncio.sleep(0.2)
            if self.slow and self.closes:
                return  # a slow client reports how it was closed; it does not come back
            self.url_index = (self.url_index + 1) % len(urls)
            await asyncio.sleep(0.05)

    def result(self):
        return {"client": self.i, "msgpack": self.msgpack, "slow": self.slow,
                "channels": self.channels, "subs": self.subs, "closes": self.closes,
                "errors": self.errors, "finished": self.done}


async def main():
    clients = [Client(i) for i in range(args.clients)]
    tasks = [asyncio.create_task(c.run()) for c in clients]

    async def announce_ready():
        while time.monotonic() < deadline:
            if all(set(c.channels) <= c.confirmed for c in clients):
                with open(args.ready, "w") as f:
                    f.write("ready\n")
                return
            await asyncio.sleep(0.05)

    await asyncio.gather(announce_ready(), *tasks)
    with open(args.out, "w") as f:
        json.dump([c.result() for c in clients], f)

asyncio.run(main())
