#!/usr/bin/python3
"""Hostile clients against ingest and a gateway (test 036), while
well-behaved clients run beside them. Raw sockets, so that nothing a
client library would refuse to send is out of reach: slowloris headers and
bodies, connection floods, malformed HTTP, oversized, fragmented, unmasked
and invalid-UTF-8 WebSocket frames, subscribe and ping floods. Every attack
is bounded in count and time. Prints one line per check; exits 1 if any
failed."""
import argparse, asyncio, base64, json, os, struct, sys, time, urllib.parse

ap = argparse.ArgumentParser()
ap.add_argument("--ingest", required=True)
ap.add_argument("--gateway", required=True)
ap.add_argument("--token", required=True, help="a token that may subscribe")
ap.add_argument("--slow", type=int, default=100, help="slowloris connections per target")
ap.add_argument("--flood", type=int, default=600, help="connect/close cycles per target")
ap.add_argument("--close-within", type=float, default=60,
                help="seconds a server may take to cut a stalled request")
args = ap.parse_args()
ING = urllib.parse.urlparse(args.ingest)
GW = urllib.parse.urlparse(args.gateway)
failures = 0
T0 = time.monotonic()


def check(name, ok, detail=""):
    global failures
    print(("ok   " if ok else "FAIL ") + f"[{time.monotonic() - T0:4.1f}s] " + name
          + ("" if ok else f"  ({detail})"), flush=True)
    if not ok:
        failures += 1


async def closed_by_server(reader, within):
    """Seconds until the server closed (EOF or reset), or None if it did
    not within `within`. Whatever it sent before is discarded."""
    start = time.monotonic()
    try:
        while time.monotonic() - start < within:
            data = await asyncio.wait_for(reader.read(65536), within)
            if not data:
                return time.monotonic() - start
    except (ConnectionError, asyncio.TimeoutError):
        if time.monotonic() - start < within:
            return time.monotonic() - start
    return None


# ---- HTTP ------------------------------------------------------------------

async def slowloris(host, port, first, within):
    """Sends the start of a request, then one header byte a second."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(first.encode())
    await writer.drain()

    async def drip():
        try:
            for _ in range(int(within)):
                await asyncio.sleep(1)
                writer.write(b"X")
                await writer.drain()
        except (ConnectionError, RuntimeError):
            pass

    dripper = asyncio.create_task(drip())
    took = await closed_by_server(reader, within)
    dripper.cancel()
    writer.close()
    return took


async def raw_http(host, port, data, within=30):
    """Sends data, returns (status or None, body text) once the server
    answers or closes."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(data)
    try:
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), within)
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError):
        writer.close()
        return None, ""
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    try:
        body = await asyncio.wait_for(reader.readexactly(length), within) if length else b""
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError):
        body = b""
    writer.close()
    return status, body.decode(errors="replace")


async def flood(host, port, n):
    """n connections opened and closed at once, 100 at a time; returns how
    many connected."""
    ok = 0
    for i in range(0, n, 100):
        async def one():
            try:
                _, w = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
                w.close()
                return 1
            except (OSError, asyncio.TimeoutError):
                return 0
        ok += sum(await asyncio.gather(*(one() for _ in range(min(100, n - i)))))
    return ok


BAD_UTF8 = b'{"channel":"a","data":"\xff\xfe"}'


async def drip(h, p, head):
    """A POST announcing 1000 bytes of body, sent a byte a second; returns
    (seconds until the server closed, what it answered)."""
    reader, writer = await asyncio.open_connection(h, p)
    writer.write((head + "Content-Length: 1000\r\n\r\n").encode())
    await writer.drain()

    async def drip_body():
        try:
            for _ in range(30):
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(1)
        except (ConnectionError, RuntimeError):
            pass

    dripper = asyncio.create_task(drip_body())
    answer = b""
    start = time.monotonic()
    try:
        while time.monotonic() - start < 30:
            data = await asyncio.wait_for(reader.read(65536), 30)
            if not data:
                break
            answer += data
    except (ConnectionError, asyncio.TimeoutError):
        pass
    took = time.monotonic() - start
    dripper.cancel()
    writer.close()
    return took, answer


async def http_attacks():
    h, p = ING.hostname, ING.port
    post = "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    slow = await asyncio.gather(
        *(slowloris(h, p, post, args.close_within) for _ in range(args.slow)),
        *(slowloris(GW.hostname, GW.port, "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n",
                    args.close_within) for _ in range(args.slow)))
    cut = [t for t in slow if t is not None]
    check(f"slowloris: all {len(slow)} dripping requests cut by the servers "
          f"(slowest after {max(cut, default=0):.0f} s)", len(cut) == len(slow),
          f"{len(slow) - len(cut)} still open after {args.close_within} s")
    # A body dripping one byte a second: each byte would restart an idle
    # timeout; the body timeout (3 s in test 036) is a deadline for all of
    # it, so the request ends long before the 30 s of drip. The client has
    # credentials (without them it is refused from its headers, below).
    took, answer = await drip(h, p, post + f"Authorization: Bearer {args.token}\r\n")
    check(f"a body dripping a byte a second is cut by the body deadline ({took:.0f} s, "
          f"{answer[:12].decode(errors='replace')!r})", took < 20 and b" 408 " in answer[:16],
          (took, answer[:200]))
    # Without credentials: 401 from the headers, and the connection, which
    # lingers to drop the body, is cut once the linger deadline (2 s) passes.
    took, answer = await drip(h, p, post)
    check(f"an unauthenticated dripping body: 401 at once, cut after {took:.1f} s",
          took < 10 and b" 401 " in answer[:16], (took, answer[:200]))

    opened = await flood(h, p, args.flood) + await flood(GW.hostname, GW.port, args.flood)
    check(f"connection flood: {opened} connections opened and dropped", opened > 0)

    # (libwebsockets answers what it cannot parse as HTTP itself, with its
    # own HTML 403: the one case without a JSON body.)
    status, body = await raw_http(h, p, b"HELLO THERE\r\n\r\n")
    check("malformed HTTP: garbage request line -> 4xx or closed",
          status is None or 400 <= status < 500, (status, body[:120]))
    cases = [
        ("16 KiB header", (post + "X-Big: " + "a" * 16384 + "\r\n\r\n").encode()),
        ("negative Content-Length", (post + "Content-Length: -5\r\n\r\n").encode()),
        ("huge Content-Length", (post + "Content-Length: 99999999999999\r\n\r\n").encode()),
        ("bad chunked body", (post + "Transfer-Encoding: chunked\r\n\r\nZZZ\r\n").encode()),
        ("body of NUL bytes", (post + "Content-Length: 64\r\n\r\n").encode() + b"\0" * 64),
        ("invalid UTF-8 in JSON", (post + "Content-Length: %d\r\n\r\n" % len(BAD_UTF8)).encode()
         + BAD_UTF8),
    ]
    for name, data in cases:
        status, body = await raw_http(h, p, data)
        ok = status is None or (400 <= status < 500)
        if status is not None and status != 404 and ok and body:
            try:
                ok = "error" in json.loads(body)
            except ValueError:
                ok = False
        check(f"malformed HTTP: {name} -> 4xx (JSON) or closed, never 5xx or a hang",
              ok, (status, body[:120]))


# ---- WebSocket ---------------------------------------------------------------

def frame(opcode, payload, fin=True, mask=True):
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def ws_connect():
    reader, writer = await asyncio.open_connection(GW.hostname, GW.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /v1/ws HTTP/1.1\r\nHost: {GW.hostname}:{GW.port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: holdfast.v1.json\r\n"
                  f"Authorization: Bearer {args.token}\r\n\r\n").encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    if b" 101 " not in head.split(b"\r\n")[0]:
        raise RuntimeError(f"handshake refused: {head[:80]!r}")
    return reader, writer


async def ws_read_close(reader, within=30):
    """Reads server frames until a close frame; returns (code, reason),
    or (None, why) on EOF or timeout."""
    deadline = time.monotonic() + within
    try:
        while True:
            h = await asyncio.wait_for(reader.readexactly(2), max(0.1, deadline - time.monotonic()))
            n = h[1] & 0x7F
            if n == 126:
                n = struct.unpack("!H", await reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await reader.readexactly(8))[0]
            payload = await reader.readexactly(n)
            if h[0] & 0x0F == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                return code, payload[2:].decode(errors="replace")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None, "connection cut without a close frame"
    except asyncio.TimeoutError:
        return None, "no close within the time"


async def ws_attack(name, frames, want_codes, want_reason=""):
    reader, writer = await ws_connect()
    try:
        for f in frames:
            writer.write(f)
            await writer.drain()
    except ConnectionError:
        pass
    code, reason = await ws_read_close(reader)
    writer.close()
    check(f"websocket: {name} -> close {'/'.join(map(str, want_codes))}",
          code in want_codes and want_reason in reason, (code, reason))


async def ws_attacks():
    sub = lambda ch: json.dumps({"type": "subscribe", "channel": ch}).encode()
    await ws_attack("a 1 MiB message", [frame(1, b"x" * (1 << 20))], [1009])
    await ws_attack("a message fragmented past the frame limit",
                    [frame(1, b"[" * 1024, fin=False)] + [frame(0, b"[" * 1024, fin=False)] * 40,
                    [1009])
    await ws_attack("invalid UTF-8 in a text frame", [frame(1, b'{"type":"ping","x":"\xc3\x28"}')],
                    [1007])
    await ws_attack("a binary frame under JSON", [frame(2, b"\x81\xa4type\xa4ping")], [1003])
    # RFC 6455 says a server must close on an unmasked client frame;
    # libwebsockets 4.1 takes it (and offers no hook to refuse it): what
    # must hold is that nothing breaks.
    reader, writer = await ws_connect()
    writer.write(frame(1, b'{"type":"ping"}', mask=False) + frame(1, b'{"type":"ping"}'))
    await writer.drain()
    try:
        h = await asyncio.wait_for(reader.readexactly(2), 10)
        answer = json.loads(await reader.readexactly(h[1] & 0x7F))
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError, ValueError) as e:
        answer = {"error": repr(e)}
    check("websocket: an unmasked client frame breaks nothing (a pong, or a close)",
          answer.get("type") == "pong" or "IncompleteRead" in answer.get("error", ""), answer)
    writer.close()
    await ws_attack("a reserved opcode", [frame(3, b"")], [1002])
    await ws_attack("a subscribe flood (1,000 at once)",
                    [b"".join(frame(1, sub(f"flood:{i}")) for i in range(1000))], [1008],
                    "too many messages")
    await ws_attack("a ping flood (5,000 at once)",
                    [b"".join(frame(1, b'{"type":"ping"}') for _ in range(5000))], [1008])
    reader, writer = await ws_connect()
    for ch in ["../etc/passwd", "orders:*", "a" * 300, "", "x\ny"]:
        writer.write(frame(1, sub(ch)))
    writer.write(frame(1, b'{"type":"ping"}'))
    await writer.drain()
    answers = []
    while len(answers) < 6:
        h = await asyncio.wait_for(reader.readexactly(2), 10)
        payload = await reader.readexactly(h[1] & 0x7F if h[1] & 0x7F < 126 else
                                           struct.unpack("!H", await reader.readexactly(2))[0])
        answers.append(json.loads(payload))
    check("websocket: traversal, wildcard, long, empty and control-character channel names "
          "-> errors, then the connection still answers",
          [a["type"] for a in answers] == ["error"] * 5 + ["pong"], answers)
    writer.close()


async def main():
    await asyncio.gather(http_attacks(), ws_attacks())

asyncio.run(main())
print(f"{failures} failed")
sys.exit(1 if failures else 0)
