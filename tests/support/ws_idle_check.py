#!/usr/bin/python3
"""Heartbeat checks against a gateway started with --ws-ping-interval 1s
--ws-idle-timeout 3s: a client that completes the handshake and then
never answers the gateway's WebSocket pings is dropped after the idle
timeout (having been pinged); a client that answers them (Python
websockets does) stays connected through several idle timeouts."""
import asyncio, base64, json, os, socket, sys, time

import websockets

host, port = sys.argv[1], int(sys.argv[2])
failures = 0


def check(what, ok, detail=""):
    global failures
    print(f"{'ok  ' if ok else 'FAIL'} {what}" + ("" if ok else f": {detail}"))
    failures += 0 if ok else 1


def silent_client():
    s = socket.create_connection((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /v1/ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    status = s.recv(4096).split(b"\r\n")[0]
    t0, pings = time.monotonic(), 0
    s.settimeout(20)
    try:
        while True:
            data = s.recv(4096)
            if not data:
                break
            pings += data[0] & 0x0F == 0x9
    except (socket.timeout, ConnectionResetError):
        pass
    took = time.monotonic() - t0
    check("handshake accepted", b"101" in status, status)
    check("a client that never answers pings is pinged, then dropped after the idle timeout",
          pings >= 1 and 2.0 <= took <= 8.0, f"{pings} pings, dropped after {took:.1f} s")


async def answering_client():
    async with websockets.connect(f"ws://{host}:{port}/v1/ws", ping_interval=None) as ws:
        await asyncio.sleep(7)
        await ws.send('{"type":"ping"}')
        m = json.loads(await asyncio.wait_for(ws.recv(), 5))
        check("a client that answers pings stays connected past the idle timeout",
              m.get("type") == "pong", m)

silent_client()
asyncio.run(answering_client())
sys.exit(1 if failures else 0)
