#!/usr/bin/python3
"""Protocol 1.1 against running gateways, with Python's `websockets` and
tokens signed by PyJWT (schemas/websocket.md):

  - negotiation: a client offering holdfast.v1.1.json first gets it, and
    a `welcome` before anything else (its fields match the gateway's
    settings and the token); a 1.0 client gets neither; msgpack too;
  - request ids echoed on subscribed, unsubscribed, pong, authenticated
    and errors (strings and integers, refusals of malformed messages too);
  - `auth` on an open connection: a fresh token moves the expiry (the
    connection outlives its first token), a narrower one ends the
    subscriptions it no longer covers (`unsubscribed`, reason forbidden),
    an expired, forged or other subject's token is refused with its code
    and the connection keeps serving; a connection that renews nothing
    is closed 4401 `token_expired`;
  - the application-level ping: a quiet 1.1 client gets `{"type":"ping"}`
    (never a WebSocket PING), stays when it answers `pong` and is dropped
    when it does not;
  - a short code at the start of every close reason, with retry_after_ms
    where it applies;
  - drain: every client of a SIGTERMed gateway gets 1012 `drain` with its
    own retry_after_ms within --drain-reconnect-spread.

--url: a gateway with auth on (--ws-ping-interval 1s, --ws-idle-timeout
3s, --client-msg-rate 50, --max-frame 4KiB, --gateway-id gw-proto).
--drain-url/--drain-pid: another, with --auth-leeway 0 and the default
ping interval, where a 3 s token expires, and which is SIGTERMed at the
end. Prints one line per check; exits 1 if any failed."""
import argparse, asyncio, json, os, re, signal, sys, time

import jwt
import msgpack
import websockets

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--secret-file", required=True)
ap.add_argument("--gateway-id", required=True)
ap.add_argument("--ping-interval-ms", type=int, required=True)
ap.add_argument("--drain-url", required=True)
ap.add_argument("--drain-pid", type=int, required=True)
ap.add_argument("--drain-spread-ms", type=int, required=True)
args = ap.parse_args()
SECRET = open(args.secret_file).read().strip()
V11, V10 = "holdfast.v1.1.json", "holdfast.v1.json"
failures = 0


def check(what, ok, detail=""):
    global failures
    print(f"{'ok  ' if ok else 'FAIL'} {what}" + (f": {detail}" if not ok else ""), flush=True)
    failures += 0 if ok else 1


def token(sub="alice", subscribe=("*",), ttl=600, key=None):
    now = int(time.time())
    return jwt.encode({"sub": sub, "subscribe": list(subscribe), "exp": now + ttl, "iat": now},
                      key or SECRET, algorithm="HS256")


async def connect(url=None, tok=None, protocols=(V11, V10)):
    url = url or args.url
    if tok is not None:
        url += "?token=" + tok
    return await websockets.connect(url, subprotocols=list(protocols), ping_interval=None,
                                    open_timeout=10, max_size=None)


async def recv(ws, timeout=10):
    frame = await asyncio.wait_for(ws.recv(), timeout)
    return msgpack.unpackb(frame, raw=False) if isinstance(frame, bytes) else json.loads(frame)


async def ask(ws, msg):
    await ws.send(json.dumps(msg))
    return await recv(ws)


async def close_of(ws, timeout=15, answer_pings=True):
    """Reads until the server closes; returns (code, reason); None when still open.
    Answers the server's pings unless told not to."""
    try:
        while True:
            frame = await asyncio.wait_for(ws.recv(), timeout)
            if answer_pings and isinstance(frame, str) and json.loads(frame).get("type") == "ping":
                await ws.send('{"type":"pong"}')
    except websockets.ConnectionClosed:
        return ws.close_code, ws.close_reason
    except asyncio.TimeoutError:
        await ws.close()
        return None, "still open"


async def negotiation():
    tok = token(ttl=600)
    ws = await connect(tok=tok)
    check("a client offering 1.1 first gets holdfast.v1.1.json", ws.subprotocol == V11, ws.subprotocol)
    w = await recv(ws)
    exp = jwt.decode(tok, options={"verify_signature": False})["exp"]
    check("the first message is welcome, version 1.1", w.get("type") == "welcome" and
          w.get("version") == "1.1", w)
    check("welcome names the gateway, the subject and the token's exp",
          w.get("gateway") == args.gateway_id and w.get("sub") == "alice" and w.get("exp") == exp, w)
    check("welcome advertises the ping interval, idle timeout and limits",
          w.get("ping_interval_ms") == args.ping_interval_ms and
          w.get("idle_timeout_ms", 0) > w.get("ping_interval_ms", 0) and
          w.get("max_subscriptions") == 100 and w.get("max_frame") == 4096 and
          w.get("msg_rate") == 50 and w.get("msg_burst") == 200, w)
    check("welcome carries the server's time", abs(w.get("server_time_us", 0) / 1e6 - time.time()) < 60, w)
    await ws.close()
    ws = await connect(tok=tok, protocols=(V10,))
    m = await ask(ws, {"type": "ping"})
    check("a 1.0 client gets no welcome (its first message answers its ping)",
          ws.subprotocol == V10 and m == {"type": "pong"}, (ws.subprotocol, m))
    await ws.close()
    ws = await connect(tok=tok, protocols=("holdfast.v1.1.msgpack",))
    frame = await asyncio.wait_for(ws.recv(), 10)
    w = msgpack.unpackb(frame, raw=False) if isinstance(frame, bytes) else {}
    check("msgpack 1.1: welcome in a binary frame", w.get("type") == "welcome" and
          w.get("sub") == "alice", w)
    await ws.send(msgpack.packb({"type": "subscribe", "channel": "mp:1", "id": 77}))
    m = await recv(ws)
    check("msgpack 1.1: subscribed echoes an integer id", m.get("type") == "subscribed" and
          m.get("id") == 77, m)
    await ws.close()


async def request_ids():
    ws = await connect(tok=token())
    await recv(ws)  # welcome
    m = await ask(ws, {"type": "subscribe", "channel": "ids:1", "id": "s-1"})
    check("subscribed echoes the subscribe's id", m.get("type") == "subscribed" and m.get("id") == "s-1", m)
    m = await ask(ws, {"type": "subscribe", "channel": "ids:1", "id": 12})
    check("an error echoes the id (already_subscribed)",
          m.get("code") == "already_subscribed" and m.get("id") == 12, m)
    m = await ask(ws, {"type": "unsubscribe", "channel": "ids:1", "id": "u-1"})
    check("unsubscribed echoes the id", m.get("type") == "unsubscribed" and m.get("id") == "u-1", m)
    m = await ask(ws, {"type": "ping", "id": "p"})
    check("pong echoes the id", m == {"type": "pong", "id": "p"}, m)
    m = await ask(ws, {"type": "subscribe", "channel": "a/b", "id": "bad"})
    check("a refused channel name echoes the id", m.get("code") == "invalid_channel" and
          m.get("id") == "bad", m)
    m = await ask(ws, {"type": "ping", "id": "x" * 65})
    check("an id over 64 bytes is bad_message", m.get("code") == "bad_message" and "id" not in m, m)
    m = await ask(ws, {"type": "subscribe", "channel": "ids:2"})
    check("no id, no id in the answer", m.get("type") == "subscribed" and "id" not in m, m)
    await ws.close()


async def token_refresh():
    ws = await connect(tok=token(subscribe=["a:*", "b:*"], ttl=600))
    await recv(ws)
    for ch in ("a:1", "b:1"):
        m = await ask(ws, {"type": "subscribe", "channel": ch})
        check(f"subscribed to {ch}", m.get("type") == "subscribed", m)
    fresh = token(subscribe=["a:*", "b:*"], ttl=1200)
    exp = jwt.decode(fresh, options={"verify_signature": False})["exp"]
    m = await ask(ws, {"type": "auth", "token": fresh, "id": "t1"})
    check("auth with a fresh token -> authenticated with its exp and the id",
          m == {"type": "authenticated", "sub": "alice", "exp": exp, "id": "t1"}, m)
    m = await ask(ws, {"type": "auth", "token": token(ttl=-60), "id": "t2"})
    check("an expired token -> error token_expired", m.get("type") == "error" and
          m.get("code") == "token_expired" and m.get("id") == "t2", m)
    m = await ask(ws, {"type": "auth", "token": token(key="k" * 40)})
    check("a token signed with another key -> error token_invalid",
          m.get("code") == "token_invalid", m)
    m = await ask(ws, {"type": "auth", "token": "not-a-jwt"})
    check("garbage -> error token_invalid", m.get("code") == "token_invalid", m)
    m = await ask(ws, {"type": "auth", "token": token(sub="mallory")})
    check("another subject's token -> error subject_mismatch", m.get("code") == "subject_mismatch", m)
    m = await ask(ws, {"type": "ping"})
    check("refused tokens leave the connection serving", m.get("type") == "pong", m)
    narrow = token(subscribe=["a:*"], ttl=1200)
    await ws.send(json.dumps({"type": "auth", "token": narrow, "id": 5}))
    first, second = await recv(ws), await recv(ws)
    check("a narrower token ends the subscription it no longer covers",
          first == {"type": "unsubscribed", "channel": "b:1", "reason": "forbidden"}, first)
    check("... then answers authenticated", second.get("type") == "authenticated" and
          second.get("id") == 5, second)
    m = await ask(ws, {"type": "subscribe", "channel": "b:2"})
    check("... and the new token's patterns apply to new subscribes", m.get("code") == "forbidden", m)
    m = await ask(ws, {"type": "subscribe", "channel": "a:2"})
    check("... while covered channels still subscribe", m.get("type") == "subscribed", m)
    await ws.close()

    # A token of 3 s renewed in-band outlives its first expiry; one not
    # renewed is closed when it expires (that gateway runs --auth-leeway 0).
    short = token(ttl=3)
    first_exp = jwt.decode(short, options={"verify_signature": False})["exp"]
    renewed = await connect(args.drain_url, tok=short)
    idle = await connect(args.drain_url, tok=short)
    await recv(renewed)
    await recv(idle)
    m = await ask(renewed, {"type": "auth", "token": token(ttl=60)})
    check("renewal answered", m.get("type") == "authenticated", m)
    code, reason = await close_of(idle, timeout=10)
    check("a connection that did not renew: 4401 token_expired",
          code == 4401 and reason.startswith("token_expired: "), (code, reason))
    check("... once its token expired", time.time() >= first_exp, time.time() - first_exp)
    # The renewed one is still served after the first token's end (the
    # close above came after it).
    m = await ask(renewed, {"type": "ping", "id": "after"})
    check("the renewed connection outlives its first token",
          m == {"type": "pong", "id": "after"} and time.time() > first_exp, m)
    await renewed.close()


async def app_ping():
    ws = await connect(tok=token())
    await recv(ws)
    m = await recv(ws, timeout=10)
    check("a quiet 1.1 client gets an application ping", m == {"type": "ping"}, m)
    await ws.send(json.dumps({"type": "pong"}))
    # Answering keeps it: well past the idle timeout (3 s) it still serves.
    pings = 0
    end = time.monotonic() + 5
    while time.monotonic() < end:
        try:
            m = await recv(ws, timeout=max(0.1, end - time.monotonic()))
        except asyncio.TimeoutError:
            break
        if m.get("type") == "ping":
            pings += 1
            await ws.send(json.dumps({"type": "pong"}))
    m = await ask(ws, {"type": "ping", "id": 1})
    check("answering pong keeps it past the idle timeout", m.get("id") == 1 and pings >= 2, (m, pings))
    await ws.close()
    # Not answering: dropped (websockets would answer a WebSocket PING on
    # its own, so this also shows the server's ping is a message).
    ws = await connect(tok=token())
    await recv(ws)
    code, _ = await close_of(ws, timeout=15, answer_pings=False)
    check("a 1.1 client that never answers is dropped after the idle timeout",
          code is not None and code != 1000, code)


async def close_reasons():
    reason_re = re.compile(r"^[a-z0-9_:]+( retry_after_ms=\d+)?: .+")
    cases = []
    ws = await connect(tok=None)
    cases.append(("no token", 4401, "token_missing: ", await close_of(ws)))
    ws = await connect(tok=token(key="z" * 40))
    cases.append(("forged token", 4401, "token_invalid: ", await close_of(ws)))
    ws = await connect(tok=token(ttl=-60))
    cases.append(("expired token", 4401, "token_expired: ", await close_of(ws)))
    ws = await connect(tok=token())
    await recv(ws)
    await ws.send(b"\x81\xa4type\xa4ping")
    cases.append(("binary frame under JSON", 1003, "unsupported_frame: ", await close_of(ws)))
    ws = await connect(tok=token())
    await recv(ws)
    await ws.send("x" * 5000)
    cases.append(("a message over --max-frame", 1009, "message_too_big: ", await close_of(ws)))
    ws = await connect(tok=token())
    await recv(ws)
    for _ in range(400):
        await ws.send('{"type":"ping"}')
    cases.append(("over the message rate", 1008, "limit:message_rate retry_after_ms=1000: ",
                  await close_of(ws)))
    for what, want_code, prefix, (code, reason) in cases:
        check(f"{what}: close {want_code}, reason '{prefix}...'",
              code == want_code and reason.startswith(prefix) and reason_re.match(reason),
              (code, reason))


async def drain():
    clients = [await connect(args.drain_url, tok=token()) for _ in range(20)]
    for ws in clients:
        await recv(ws)
    os.kill(args.drain_pid, signal.SIGTERM)
    results = await asyncio.gather(*(close_of(ws) for ws in clients))
    delays = []
    for code, reason in results:
        m = re.match(r"^drain retry_after_ms=(\d+): ", reason or "")
        if code == 1012 and m:
            delays.append(int(m.group(1)))
    check("drain: every client gets 1012 'drain retry_after_ms=N: ...'", len(delays) == 20, results[:3])
    check("... each delay within --drain-reconnect-spread",
          all(0 <= d <= args.drain_spread_ms for d in delays), delays)
    check("... spread, not one value for all", len(set(delays)) >= 10, delays)


async def main():
    for part in (negotiation, request_ids, token_refresh, app_ping, close_reasons, drain):
        try:
            await part()
        except Exception as e:  # a crash in one part fails it, the others still run
            check(f"{part.__name__} ran to its end", False, repr(e))
    print(f"ws_protocol11_check: {failures} failed")


asyncio.run(main())
sys.exit(1 if failures else 0)
