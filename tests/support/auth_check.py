#!/usr/bin/python3
"""Auth and limits from the outside (test 035): tokens signed by PyJWT, a
JWT library the project did not write, against ingest and the gateway.
Prints one line per check; exits 1 if any failed."""
import argparse, asyncio, base64, hashlib, hmac, http.client, json, subprocess, sys, time
import urllib.parse

import jwt
import websockets

ap = argparse.ArgumentParser()
ap.add_argument("--ingest", required=True)          # HS256, API keys, 1 event/s, burst 20
ap.add_argument("--ingest-rs", required=True)       # RS256
ap.add_argument("--ingest-es", required=True)       # ES256
ap.add_argument("--ingest-open", required=True)     # auth off
ap.add_argument("--gateway", required=True)         # HS256, 3 per subject, 5 msg/s, leeway 0
ap.add_argument("--gateway-ip", required=True)      # HS256, 2 per address
ap.add_argument("--secret", required=True)
ap.add_argument("--rs-key", required=True)
ap.add_argument("--rs-pub", required=True)
ap.add_argument("--es-key", required=True)
ap.add_argument("--api-key", required=True)
ap.add_argument("--pg", required=True)
args = ap.parse_args()

SECRET = open(args.secret).read().strip()
failures = 0


def check(name, ok, detail=""):
    global failures
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f"  ({detail})"), flush=True)
    if not ok:
        failures += 1


def token(sub="alice", publish=(), subscribe=(), ttl=600, key=None, alg="HS256", **extra):
    claims = {"sub": sub, "exp": int(time.time()) + ttl, "publish": list(publish),
              "subscribe": list(subscribe)} | extra
    if sub is None:
        del claims["sub"]
    return jwt.encode(claims, key if key is not None else SECRET, algorithm=alg)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header, claims, key_bytes):
    """A token whose HS256 signature uses key_bytes, whatever they are
    (PyJWT refuses to HMAC with a PEM key; an attacker does not)."""
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    sig = hmac.new(key_bytes, head.encode(), hashlib.sha256).digest()
    return head + "." + b64(sig)


def request(base, method, path, body=None, tok=None, scheme="Bearer", headers=None):
    u = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    headers = {"Content-Type": "application/json"} | (headers or {})
    if tok is not None:
        headers["Authorization"] = f"{scheme} {tok}"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = None
    return r.status, parsed, r.getheader("WWW-Authenticate"), r.getheader("Retry-After")


def publish(base, channel, tok=None, **kw):
    return request(base, "POST", "/v1/events", {"channel": channel, "data": {"n": 1}}, tok, **kw)


def pg_count(channel):
    out = subprocess.run(["psql", args.pg, "-XqtAc",
                          f"SELECT count(*) FROM holdfast.events WHERE channel = '{channel}'"],
                         check=True, capture_output=True, text=True).stdout
    return int(out.strip())


def error_code(parsed):
    return (parsed or {}).get("error", {}).get("code")


def ingest_tokens():
    ing = args.ingest
    status, body, challenge, _ = publish(ing, "orders:1")
    check("ingest: no token -> 401 JSON unauthorized",
          status == 401 and error_code(body) == "unauthorized", (status, body))
    check("ingest: 401 carries WWW-Authenticate: Bearer", challenge == "Bearer", challenge)
    good = token(publish=["orders:*"])
    status, body, _, _ = publish(ing, "orders:1", good, scheme="Basic")
    check("ingest: Basic scheme -> 401", status == 401, status)
    cases = {
        "another secret": token(publish=["*"], key="x" * 40),
        "alg none": jwt.encode({"sub": "root", "publish": ["*"]}, None, algorithm="none"),
        "expired": token(publish=["*"], ttl=-3600),
        "not yet valid": token(publish=["*"], nbf=int(time.time()) + 3600),
        "no sub": token(sub=None, publish=["*"]),
        "garbage": "a.b.c",
        # libjwt verifies HS384 with our secret: only the algorithm check refuses it
        "HS384 with the right secret": token(publish=["*"], alg="HS384"),
        "truncated": good[:-5],
    }
    for name, tok in cases.items():
        status, body, _, _ = publish(ing, "orders:1", tok)
        check(f"ingest: {name} token -> 401", status == 401 and error_code(body) == "unauthorized",
              (status, body))
    status, body, _, _ = publish(ing, "orders:1", cases["expired"])
    check("ingest: the 401 says why (token expired)", "expired" in body["error"]["message"], body)
    # exp is required and the lifetime bounded (--auth-max-token-lifetime, 24h by default)
    no_exp = jwt.encode({"sub": "alice", "publish": ["*"]}, SECRET, algorithm="HS256")
    for name, tok, why in [("without exp", no_exp, "'exp'"),
                           ("valid for two days", token(publish=["*"], ttl=2 * 86400), "lifetime"),
                           ("minted two days ago", token(publish=["*"], iat=int(time.time()) - 2 * 86400),
                            "lifetime")]:
        status, body, _, _ = publish(ing, "orders:1", tok)
        check(f"ingest: a token {name} -> 401 saying why",
              status == 401 and why in ((body or {}).get("error") or {}).get("message", ""), (status, body))
    status, body, _, _ = publish(ing, "orders:1", good)
    check("ingest: a valid token publishes to its pattern -> 201", status == 201, (status, body))
    long_tok = token(publish=["orders:*"], note="n" * 6000)
    status, body, _, _ = publish(ing, "orders:1", long_tok)
    check(f"ingest: a {len(long_tok)}-byte token is read whole -> 201", status == 201, (status, body))
    status, body, _, _ = publish(ing, "orders:1", token(publish=["*"], note="n" * 8200))
    check("ingest: a token over 8 KiB -> 401 saying so",
          status == 401 and "longer" in body["error"]["message"], (status, body))
    status, body, _, _ = publish(ing, "news", good)
    check("ingest: another channel -> 403 forbidden",
          status == 403 and error_code(body) == "forbidden", (status, body))
    batch = [{"channel": "orders:batch", "data": 1}, {"channel": "news", "data": 2}]
    status, body, _, _ = request(ing, "POST", "/v1/events", batch, good)
    check("ingest: a batch with one forbidden channel -> 403", status == 403, (status, body))
    check("ingest: ... and none of the batch is stored", pg_count("orders:batch") == 0)
    sub_only = token(subscribe=["*"])
    status, _, _, _ = publish(ing, "orders:1", sub_only)
    check("ingest: a subscribe-only token cannot publish -> 403", status == 403, status)


def ingest_api_keys_and_limits():
    ing = args.ingest
    status, body, _, _ = publish(ing, "invoices:1", args.api_key)
    check("ingest: API key publishes to its pattern -> 201", status == 201, (status, body))
    status, _, _, _ = publish(ing, "orders:1", args.api_key)
    check("ingest: API key outside its pattern -> 403", status == 403, status)
    status, _, _, _ = publish(ing, "invoices:1", args.api_key[:-1] + "X")
    check("ingest: unknown API key -> 401", status == 401, status)
    ratey = token(sub="ratey", publish=["*"])
    batch = [{"channel": "rate", "data": i} for i in range(20)]
    status, _, _, _ = request(ing, "POST", "/v1/events", batch, ratey)
    check("ingest: a burst of 20 events within the limit -> 201", status == 201, status)
    # 20 more need 20 s of refill at 1/s: refused however slow the machine
    status, body, _, retry = request(ing, "POST", "/v1/events", batch, ratey)
    check("ingest: over the subject's publish rate -> 429 rate_limited",
          status == 429 and error_code(body) == "rate_limited", (status, body))
    check("ingest: 429 carries Retry-After (about 20 s)",
          retry is not None and 1 <= int(retry) <= 20, retry)
    status, _, _, _ = publish(ing, "rate", token(sub="calm", publish=["*"]))
    check("ingest: another subject is not limited -> 201", status == 201, status)


def ingest_idempotency_scoped():
    """Idempotency-Keys belong to the subject that sent them."""
    ing = args.ingest
    a, b = token(sub="idem-a", publish=["*"]), token(sub="idem-b", publish=["*"])
    body_a, body_b = {"channel": "idem:a", "data": {"by": "a"}}, {"channel": "idem:b", "data": 2}

    def post(body, tok, key):
        return request(ing, "POST", "/v1/events", body, tok, headers={"Idempotency-Key": key})

    s1, r1, _, _ = post(body_a, a, "order-42")
    s2, r2, _, _ = post(body_a, a, "order-42")
    check("idempotency: a's retry replays a's event -> 200",
          s1 == 201 and s2 == 200 and r1 == r2, (s1, r1, s2, r2))
    s3, r3, _, _ = post(body_a, b, "order-42")
    check("idempotency: b's same key and body makes b's own event (no replay of a's) -> 201",
          s3 == 201 and (r3 or {}).get("id") != (r1 or {}).get("id"), (s3, r3, r1))
    s4, r4, _, _ = post(body_a, a, "order-43")
    s5, r5, _, _ = post(body_b, b, "order-43")
    check("idempotency: b cannot claim a's key (another body) -> 201, not 409",
          s4 == 201 and s5 == 201, (s4, r4, s5, r5))
    s6, r6, _, _ = post(body_b, a, "order-43")
    check("idempotency: a's own key with another body is still a conflict -> 409",
          s6 == 409 and error_code(r6) == "idempotency_key_conflict", (s6, r6))


def ingest_history():
    ing = args.ingest
    path = "/v1/channels/orders:1/events"
    status, _, _, _ = request(ing, "GET", path)
    check("history: no token -> 401", status == 401, status)
    status, body, _, _ = request(ing, "GET", path, tok=token(subscribe=["orders:*"]))
    check("history: a token that may subscribe reads it -> 200", status == 200, (status, body))
    status, _, _, _ = request(ing, "GET", path, tok=token(publish=["*"], subscribe=["news"]))
    check("history: a token without the channel -> 403", status == 403, status)


def ingest_public_keys():
    rs_priv, rs_pub = open(args.rs_key).read(), open(args.rs_pub).read()
    es_priv = open(args.es_key).read()
    status, body, _, _ = publish(args.ingest_rs, "orders:1",
                                 token(publish=["*"], key=rs_priv, alg="RS256"))
    check("RS256: a token from PyJWT -> 201", status == 201, (status, body))
    claims = {"sub": "mallory", "publish": ["*"], "exp": int(time.time()) + 600}
    forged = hand_signed({"alg": "HS256", "typ": "JWT"}, claims, rs_pub.encode())
    status, _, _, _ = publish(args.ingest_rs, "orders:1", forged)
    check("RS256: HS256 'signed' with the public key (alg confusion) -> 401", status == 401, status)
    status, _, _, _ = publish(args.ingest_rs, "orders:1", token(publish=["*"]))
    check("RS256: an HS256 token -> 401", status == 401, status)
    es_pub = open(args.es_key.replace(".pem", ".pub")).read()
    forged = hand_signed({"alg": "HS256", "typ": "JWT"}, claims, es_pub.encode())
    status, _, _, _ = publish(args.ingest_es, "orders:1", forged)
    check("ES256: HS256 'signed' with the public key (alg confusion) -> 401", status == 401, status)
    status, body, _, _ = publish(args.ingest_es, "orders:1",
                                 token(publish=["*"], key=es_priv, alg="ES256"))
    check("ES256: a token from PyJWT -> 201", status == 201, (status, body))
    status, _, _, _ = publish(args.ingest_es, "orders:1",
                              token(publish=["*"], key=rs_priv, alg="RS256"))
    check("ES256: an RS256 token -> 401", status == 401, status)
    status, _, _, _ = publish(args.ingest_open, "orders:1")
    check("auth off: no token publishes -> 201", status == 201, status)


async def ws_open(url, tok=None, header=True):
    headers = {}
    if tok and header:
        headers["Authorization"] = "Bearer " + tok
    elif tok:
        url += "?token=" + tok
    return await websockets.connect(url, subprotocols=["holdfast.v1.json"], extra_headers=headers,
                                    ping_interval=None, open_timeout=10)


async def ws_close_of(ws, timeout=10):
    """Reads until the server closes; returns (code, reason)."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.ConnectionClosed:
        return ws.close_code, ws.close_reason
    except asyncio.TimeoutError:
        await ws.close()
        return None, "still open"


async def ws_ask(ws, msg):
    await ws.send(json.dumps(msg))
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def gateway_tokens():
    gw = args.gateway
    ws = await ws_open(gw)
    code, reason = await ws_close_of(ws)
    check("gateway: no token -> close 4401 'unauthorized: missing token'",
          code == 4401 and "missing token" in reason, (code, reason))
    for name, tok in {"another secret": token(subscribe=["*"], key="y" * 40),
                      "alg none": jwt.encode({"sub": "root", "subscribe": ["*"]}, None,
                                             algorithm="none"),
                      "expired": token(subscribe=["*"], ttl=-600),
                      "without exp": jwt.encode({"sub": "bob", "subscribe": ["*"]}, SECRET,
                                                algorithm="HS256"),
                      "valid for two days": token(subscribe=["*"], ttl=2 * 86400)}.items():
        ws = await ws_open(gw, tok, header=False)
        code, reason = await ws_close_of(ws)
        check(f"gateway: {name} token (?token=) -> close 4401", code == 4401, (code, reason))
    ws = await ws_open(gw, token(subscribe=["orders:*"]))
    m = await ws_ask(ws, {"type": "subscribe", "channel": "orders:7"})
    check("gateway: header token subscribes to its pattern", m.get("type") == "subscribed", m)
    m = await ws_ask(ws, {"type": "subscribe", "channel": "news"})
    check("gateway: another channel -> error forbidden",
          m.get("type") == "error" and m.get("code") == "forbidden", m)
    m = await ws_ask(ws, {"type": "subscribe", "channel": "orders:*"})
    check("gateway: a wildcard as a channel name -> error, not a subscription",
          m.get("type") == "error" and m.get("code") != "forbidden", m)
    m = await ws_ask(ws, {"type": "subscribe", "channel": "../orders:7"})
    check("gateway: a traversal channel name -> error", m.get("type") == "error", m)
    m = await ws_ask(ws, {"type": "ping"})
    check("gateway: the connection keeps serving after refusals", m.get("type") == "pong", m)
    status, _, _, _ = publish(args.ingest, "orders:7", token(publish=["orders:*"]))
    got = None
    deadline = time.monotonic() + 30
    while status == 201 and got is None and time.monotonic() < deadline:
        m = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if m.get("type") == "event":
            got = m
    check("gateway: an event published with a token reaches the subscriber",
          got is not None and got.get("channel") == "orders:7", (status, got))
    await ws.close()
    ws = await ws_open(gw, token(subscribe=["orders:*"]), header=False)
    m = await ws_ask(ws, {"type": "subscribe", "channel": "orders:8"})
    check("gateway: ?token= (browsers) subscribes", m.get("type") == "subscribed", m)
    await ws.close()
    ws = await ws_open(gw, token(subscribe=["orders:*"], note="n" * 6000))
    m = await ws_ask(ws, {"type": "subscribe", "channel": "orders:8"})
    check("gateway: a 6 KiB token in the header is read whole", m.get("type") == "subscribed", m)
    await ws.close()
    ws = await ws_open(gw, token(subscribe=["orders:*"], ttl=5))
    m = await ws_ask(ws, {"type": "subscribe", "channel": "orders:9"})
    code, reason = await ws_close_of(ws, timeout=20)
    check("gateway: a connection is closed 4401 when its token expires",
          m.get("type") == "subscribed" and code == 4401 and "expired" in reason, (m, code, reason))


async def gateway_limits():
    gw = args.gateway
    tok = token(sub="many", subscribe=["*"])
    held = [await ws_open(gw, tok) for _ in range(3)]
    for ws in held:
        m = await ws_ask(ws, {"type": "ping"})
    extra = await ws_open(gw, tok)
    code, reason = await ws_close_of(extra)
    check("gateway: a 4th connection of one subject -> close 1008",
          code == 1008 and "subject" in reason, (code, reason))
    await held.pop().close()
    admitted = False
    for _ in range(50):  # the gateway counts the close once it has seen it
        ws = await ws_open(gw, tok)
        try:
            admitted = (await ws_ask(ws, {"type": "ping"})).get("type") == "pong"
        except websockets.ConnectionClosed:
            await asyncio.sleep(0.1)
            continue
        held.append(ws)
        break
    check("gateway: after one closes, the subject connects again", admitted)
    other = await ws_open(gw, token(sub="other", subscribe=["*"]))
    m = await ws_ask(other, {"type": "ping"})
    check("gateway: another subject is not limited", m.get("type") == "pong", m)

    flood = await ws_open(gw, token(sub="flood", subscribe=["*"]))
    for _ in range(60):
        try:
            await flood.send(json.dumps({"type": "ping"}))
        except websockets.ConnectionClosed:
            break
    code, reason = await ws_close_of(flood)
    check("gateway: 60 messages at once over 5/s (burst 10) -> close 1008",
          code == 1008 and "too many messages" in reason, (code, reason))
    m = await ws_ask(other, {"type": "ping"})
    check("gateway: a well-behaved client keeps being served", m.get("type") == "pong", m)
    for ws in held + [other]:
        await ws.close()

    ip_tok = token(sub="ip", subscribe=["*"])
    two = [await ws_open(args.gateway_ip, token(sub=f"ip{i}", subscribe=["*"])) for i in range(2)]
    for ws in two:
        await ws_ask(ws, {"type": "ping"})
    third = await ws_open(args.gateway_ip, ip_tok)
    code, reason = await ws_close_of(third)
    check("gateway: a 3rd connection from one address (limit 2) -> close 1008",
          code == 1008 and "127.0.0.1" in reason, (code, reason))
    tokenless = await ws_open(args.gateway_ip)
    code, reason = await ws_close_of(tokenless)
    check("gateway: ... also without a token (the address is counted first) -> close 1008",
          code == 1008, (code, reason))
    await two.pop().close()
    admitted = False
    for _ in range(50):  # the gateway gives the place back once it has seen the close
        ws = await ws_open(args.gateway_ip, ip_tok)
        try:
            admitted = (await ws_ask(ws, {"type": "ping"})).get("type") == "pong"
        except websockets.ConnectionClosed:
            await asyncio.sleep(0.1)
            continue
        two.append(ws)
        break
    check("gateway: after one closes, the address connects again", admitted)
    for ws in two:
        await ws.close()


ingest_tokens()
ingest_api_keys_and_limits()
ingest_idempotency_scoped()
ingest_history()
ingest_public_keys()
asyncio.run(gateway_tokens())
asyncio.run(gateway_limits())
print(f"{failures} failed")
sys.exit(1 if failures else 0)
