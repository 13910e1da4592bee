#!/usr/bin/python3
"""Protocol checks against one running gateway with Python's `websockets`
(schemas/websocket.md): errors for bad messages, close codes for bad
frames, both subprotocols, and resume with `since`.

The test prepares channel RESUME_CHANNEL with events at known offsets and
passes them in: --offsets (every offset of the channel, ascending),
--epoch (the current epoch), --log-start (the partition's first offset
still in Kafka), --max-subscriptions (the gateway's setting).
Prints one line per check; exits 1 if any failed."""
import argparse, asyncio, json, sys

import msgpack
import websockets

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--channel", required=True)
ap.add_argument("--offsets", required=True)
ap.add_argument("--epoch", required=True)
ap.add_argument("--log-start", type=int, required=True)
ap.add_argument("--max-subscriptions", type=int, required=True)
ap.add_argument("--max-frame", type=int, required=True)
args = ap.parse_args()
offsets = [int(x) for x in args.offsets.split(",")]
failures = 0


def check(what, ok, detail=""):
    global failures
    print(f"{'ok  ' if ok else 'FAIL'} {what}" + (f": {detail}" if not ok else ""))
    failures += 0 if ok else 1


async def recv_json(ws, timeout=5):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_type(ws, want, timeout=5):
    """The next message of type want (skipping events)."""
    while True:
        m = await recv_json(ws, timeout)
        if m.get("type") == want or m.get("type") == "error":
            return m


async def close_code(ws, send, timeout=5):
    try:
        await ws.send(send)
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.ConnectionClosed as e:
        return e.rcvd.code if e.rcvd else 1006
    except asyncio.TimeoutError:
        return None


async def errors():
    async with websockets.connect(args.url) as ws:  # no subprotocol: JSON
        await ws.send('{"type":"ping"}')
        check("no subprotocol speaks JSON (ping -> pong)", (await recv_json(ws))["type"] == "pong")
        cases = [
            ("malformed JSON", "{nope", "bad_message"),
            ("not an object", "[1,2]", "bad_message"),
            ("missing type", '{"channel":"a"}', "bad_message"),
            ("unknown type", '{"type":"publish","channel":"a"}', "unknown_type"),
            ("missing channel", '{"type":"subscribe"}', "bad_message"),
            ("traversal in a channel name", '{"type":"subscribe","channel":"../etc"}', "invalid_channel"),
            ("wildcard in a channel name", '{"type":"subscribe","channel":"orders:*"}', "invalid_channel"),
            ("empty channel name", '{"type":"subscribe","channel":""}', "invalid_channel"),
            ("since not an object", '{"type":"subscribe","channel":"a","since":5}', "bad_since"),
            ("since offset below -1", '{"type":"subscribe","channel":"a","since":{"offset":-7,"epoch":"e"}}', "bad_since"),
            ("since epoch not a string", '{"type":"subscribe","channel":"a","since":{"offset":1,"epoch":5}}', "bad_since"),
            ("unsubscribe without subscription", '{"type":"unsubscribe","channel":"nothere"}', "not_subscribed"),
        ]
        for what, frame, code in cases:
            await ws.send(frame)
            m = await recv_json(ws)
            check(f"{what} -> error {code}", m.get("type") == "error" and m.get("code") == code, m)
        await ws.send('{"type":"subscribe","channel":"p:1"}')
        check("subscribe answers subscribed", (await recv_type(ws, "subscribed"))["type"] == "subscribed")
        await ws.send('{"type":"subscribe","channel":"p:1"}')
        m = await recv_type(ws, "error")
        check("subscribing twice -> already_subscribed", m.get("code") == "already_subscribed", m)
        await ws.send('{"type":"unsubscribe","channel":"p:1"}')
        m = await recv_type(ws, "unsubscribed")
        check("unsubscribe answers unsubscribed", m.get("type") == "unsubscribed", m)
        for i in range(args.max_subscriptions):
            await ws.send(json.dumps({"type": "subscribe", "channel": f"lim:{i}"}))
            await recv_type(ws, "subscribed")
        await ws.send('{"type":"subscribe","channel":"lim:over"}')
        m = await recv_type(ws, "error")
        check("one subscription over the limit -> too_many_subscriptions",
              m.get("code") == "too_many_subscriptions", m)
        await ws.send('{"type":"ping"}')
        check("the connection still serves after all that", (await recv_type(ws, "pong"))["type"] == "pong")

    async with websockets.connect(args.url, subprotocols=["holdfast.v1.json"], max_size=None) as ws:
        code = await close_code(ws, json.dumps({"type": "ping", "pad": "x" * (args.max_frame + 10)}))
        check("a message over max-frame -> close 1009", code == 1009, code)
    async with websockets.connect(args.url, subprotocols=["holdfast.v1.json"]) as ws:
        code = await close_code(ws, b"\x81\x00")
        check("a binary frame under JSON -> close 1003", code == 1003, code)
    async with websockets.connect(args.url, subprotocols=["holdfast.v1.json"]) as ws:
        # Invalid UTF-8 in a text frame: sent raw, past the library's own checks.
        code = None
        try:
            await ws.write_frame(True, websockets.frames.Opcode.TEXT, b'{"type":"\xff\xfe"}')
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        except websockets.ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd else 1006
        except asyncio.TimeoutError:
            pass
        check("invalid UTF-8 in a text frame -> close 1007", code == 1007, code)
    try:
        async with websockets.connect(args.url.replace("/v1/ws", "/v2/ws")) as ws:
            check("a WebSocket on another path is refused", False, "accepted")
    except websockets.InvalidHandshake as e:
        check("a WebSocket on another path is refused", True)


async def msgpack_mode():
    async with websockets.connect(args.url, subprotocols=["holdfast.v1.msgpack"]) as ws:
        check("msgpack subprotocol is chosen", ws.subprotocol == "holdfast.v1.msgpack", ws.subprotocol)
        await ws.send(msgpack.packb({"type": "ping"}))
        m = msgpack.unpackb(await asyncio.wait_for(ws.recv(), 5))
        check("msgpack ping -> pong", m.get("type") == "pong", m)
        await ws.send(b"\x92\x01")  # an array, not a map
        m = msgpack.unpackb(await asyncio.wait_for(ws.recv(), 5))
        check("msgpack non-map -> error bad_message", m.get("code") == "bad_message", m)
        await ws.send(b"\xc1")  # never used byte
        m = msgpack.unpackb(await asyncio.wait_for(ws.recv(), 5))
        check("invalid msgpack -> error bad_message", m.get("code") == "bad_message", m)
        code = await close_code(ws, '{"type":"ping"}')
        check("a text frame under msgpack -> close 1003", code == 1003, code)


async def resume(since, want_recovered, want_offsets, what):
    async with websockets.connect(args.url, subprotocols=["holdfast.v1.json"]) as ws:
        msg = {"type": "subscribe", "channel": args.channel}
        if since is not None:
            msg["since"] = since
        await ws.send(json.dumps(msg))
        sub = await recv_type(ws, "subscribed")
        got = []
        try:
            while len(got) < len(want_offsets) + 1:
                m = await recv_json(ws, 1.5)
                if m.get("type") == "event":
                    got.append(m)
        except asyncio.TimeoutError:
            pass
        ok = (sub.get("recovered") == want_recovered and
              [e["offset"] for e in got] == want_offsets)
        check(what, ok, f"subscribed {sub}, got offsets {[e['offset'] for e in got][:8]}..., "
                        f"wanted {want_offsets[:8]}... ({len(want_offsets)})")
        return sub, got


async def resumes():
    last = offsets[-1]
    sub, _ = await resume(None, False, [], "subscribe without since: live from the log end, no history")
    check("... at the partition's last offset", sub.get("offset") >= last and sub.get("epoch") == args.epoch, sub)
    mid = offsets[len(offsets) // 2]
    want = [o for o in offsets if o > mid]
    _, got = await resume({"offset": mid, "epoch": args.epoch}, True, want,
                          "since a known offset: every later event of the channel, from Kafka")
    chained = all(got[k]["prev_offset"] == got[k - 1]["offset"] for k in range(1, len(got)))
    check("... chained by prev_offset", chained and len(got) == len(want))
    await resume({"offset": last, "epoch": args.epoch}, True, [], "since the last offset: nothing to replay")
    await resume({"offset": mid, "epoch": "stale-epoch"}, False, [], "since with a stale epoch: recovered false, live")
    if args.log_start > 0:
        await resume({"offset": args.log_start - 2, "epoch": args.epoch}, False, [],
                     "since an offset older than the log keeps: recovered false, live")
    else:
        check("the log start moved (test setup)", False, "log start 0")
    await resume({"offset": last + 1000, "epoch": args.epoch}, False, [],
                 "since an offset beyond the log end: recovered false, live")


async def main():
    await errors()
    await msgpack_mode()
    await resumes()

asyncio.run(main())
print(f"ws_protocol_check: {failures} failed")
sys.exit(1 if failures else 0)
