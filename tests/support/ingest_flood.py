#!/usr/bin/python3
"""Clients that try to starve holdfast-ingest, for 038_ingest_starvation.

flood: UPLOADS unauthenticated POSTs, each announcing and sending a body
of SIZE bytes, CONCURRENCY at a time, while one authenticated publisher
keeps posting small events; samples the ingest's VmRSS meanwhile.

budget: with the ingest's --max-inflight-bytes set to hold INFLIGHT
bodies, opens INFLIGHT + EXTRA authenticated uploads that send their
headers and half their body: EXTRA must be refused (503 + Retry-After)
before sending the rest, the others then complete with 201. Next, with
PostgreSQL stopped (SIGSTOP of --pg-pid) so the one writer hangs, sends
QUEUED + 1 whole bodies one after another: the last must be refused 503
(queued bytes), the others answered 201 once PostgreSQL runs again.

Writes one JSON object with what it saw to --out. Everything is bounded:
each socket operation has a timeout and each phase a deadline."""
import argparse, asyncio, json, os, signal, socket, time, urllib.parse, urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("mode", choices=["flood", "budget"])
ap.add_argument("--url", required=True)
ap.add_argument("--token", required=True)
ap.add_argument("--pid", type=int, help="the ingest's PID (flood: RSS samples)")
ap.add_argument("--pg-pid", type=int, help="PostgreSQL's PID (budget: stopped, then continued)")
ap.add_argument("--uploads", type=int, default=2000)
ap.add_argument("--concurrency", type=int, default=200)
ap.add_argument("--size", type=int, default=1 << 20)
ap.add_argument("--inflight", type=int, default=4)
ap.add_argument("--extra", type=int, default=2)
ap.add_argument("--queued", type=int, default=2)
ap.add_argument("--out", required=True)
args = ap.parse_args()
u = urllib.parse.urlparse(args.url)
HOST, PORT = u.hostname, u.port
TIMEOUT = 30


def body_of(size, channel="flood"):
    """A valid event of exactly size bytes."""
    head, tail = '{"channel":"%s","data":"' % channel, '"}'
    return (head + "x" * (size - len(head) - len(tail)) + tail).encode()


def headers(length, token=None):
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST /v1/events HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
            f"{auth}Content-Length: {length}\r\n\r\n").encode()


async def read_response(reader):
    """(status, headers dict, body) of one response; raises on EOF."""
    line = await asyncio.wait_for(reader.readline(), TIMEOUT)
    if not line:
        raise EOFError("closed before a status line")
    status = int(line.split()[1])
    hdrs = {}
    while True:
        line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        if line in (b"\r\n", b"\n", b""):
            break
        k, _, v = line.decode().partition(":")
        hdrs[k.strip().lower()] = v.strip()
    body = await asyncio.wait_for(reader.readexactly(int(hdrs.get("content-length", 0))), TIMEOUT)
    return status, hdrs, body


def metric(name):
    with urllib.request.urlopen(f"{args.url}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


def rss_kb(field):
    with open(f"/proc/{args.pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


# ---- flood ------------------------------------------------------------------

JUNK = memoryview(b"x" * args.size)  # one body shared by every upload

async def unauthenticated_upload(sem, seen):
    """Headers and the whole body, as most clients send them, while the
    answer is read as soon as it comes."""
    loop = asyncio.get_running_loop()
    async with sem:
        sock = socket.socket()
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (HOST, PORT)), TIMEOUT)
        except OSError as e:
            seen[f"connect:{type(e).__name__}"] = seen.get(f"connect:{type(e).__name__}", 0) + 1
            sock.close()
            return

        async def send():
            await loop.sock_sendall(sock, headers(args.size))
            await loop.sock_sendall(sock, JUNK)

        sender = asyncio.ensure_future(send())
        answer = b""
        try:
            while b"\r\n" not in answer and len(answer) < 4096:
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), TIMEOUT)
                if not chunk:
                    break
                answer += chunk
            key = answer.split(b" ")[1].decode() if answer.startswith(b"HTTP/1.1 ") else "no answer"
        except Exception as e:  # a reset before the answer could be read
            key = type(e).__name__
        sender.cancel()
        try:
            await sender
        except BaseException:
            pass
        sock.close()
        seen[key] = seen.get(key, 0) + 1


async def publisher(stop, result):
    """Small authenticated events on one keep-alive connection, until stop."""
    reader, writer = await asyncio.open_connection(HOST, PORT)
    n = 0
    while not stop.is_set():
        body = body_of(64, "flood-ok")
        writer.write(headers(len(body), args.token) + body)
        await writer.drain()
        status, _, _ = await read_response(reader)
        result[str(status)] = result.get(str(status), 0) + 1
        n += 1
    writer.close()


async def sampler(stop, samples):
    while not stop.is_set():
        samples.append(rss_kb("VmRSS"))
        await asyncio.sleep(0.05)


def smuggled():
    """An unauthenticated POST whose body is itself a request: the answers
    read until the server closes (only the 401 may come)."""
    inner = f"GET /livez HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    with socket.create_connection((HOST, PORT), timeout=TIMEOUT) as sock:
        sock.sendall(headers(len(inner)) + inner)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return [int(line.split()[1]) for line in data.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]


async def flood():
    before = rss_kb("VmRSS")
    stop = asyncio.Event()
    seen, published, samples = {}, {}, []
    pub = asyncio.ensure_future(publisher(stop, published))
    smp = asyncio.ensure_future(sampler(stop, samples))
    sem = asyncio.Semaphore(args.concurrency)
    t0 = time.monotonic()
    await asyncio.gather(*(unauthenticated_upload(sem, seen) for _ in range(args.uploads)))
    seconds = time.monotonic() - t0
    during = dict(published)
    stop.set()
    await pub
    await smp
    return {"unauthenticated": seen, "published": published, "published_during": during,
            "smuggled": smuggled(),
            "seconds": round(seconds, 2),
            "rss_before_kb": before, "rss_max_kb": max(samples + [before]),
            "hwm_kb": rss_kb("VmHWM")}


# ---- budget -----------------------------------------------------------------

async def open_upload(body):
    """An authenticated upload that has sent its headers and half its body."""
    reader, writer = await asyncio.open_connection(HOST, PORT)
    writer.write(headers(len(body), args.token) + body[:len(body) // 2])
    await writer.drain()
    return reader, writer


async def answered_within(reader, seconds):
    try:
        return await asyncio.wait_for(read_response(reader), seconds)
    except asyncio.TimeoutError:
        return None


async def wait_metric(name, want, seconds=TIMEOUT):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if metric(name) == want:
            return True
        await asyncio.sleep(0.05)
    return False


async def budget():
    out = {}
    body = body_of(args.size, "budget")
    # In flight: the first INFLIGHT are admitted and wait for their bodies.
    admitted = [await open_upload(body) for _ in range(args.inflight)]
    out["inflight_gauge_full"] = await wait_metric("holdfast_ingest_inflight_bytes",
                                                   args.inflight * args.size)
    refused = []
    for _ in range(args.extra):
        reader, writer = await open_upload(body)
        refused.append(await answered_within(reader, TIMEOUT))
        writer.close()
    out["extra"] = [[r[0], r[1].get("retry-after"), json.loads(r[2]).get("error", {}).get("code")] if r else None
                    for r in refused]
    out["inflight_rejections"] = metric('holdfast_ingest_byte_limit_rejections_total{limit="inflight"}')
    done = []
    for reader, writer in admitted:
        writer.write(body[len(body) // 2:])
        await writer.drain()
        done.append((await read_response(reader))[0])
        writer.close()
    out["admitted"] = done
    out["inflight_gauge_after"] = metric("holdfast_ingest_inflight_bytes")

    # Queued: PostgreSQL stopped (the postmaster and its backends, the
    # writer's among them), so the writer hangs on the first body.
    frozen = [args.pg_pid] + [int(c) for c in open(
        f"/proc/{args.pg_pid}/task/{args.pg_pid}/children").read().split()]
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        waiting = []
        for _ in range(args.queued):
            reader, writer = await asyncio.open_connection(HOST, PORT)
            writer.write(headers(len(body), args.token) + body)
            await writer.drain()
            waiting.append((reader, writer))
        out["queued_gauge_full"] = await wait_metric("holdfast_ingest_queued_bytes",
                                                     args.queued * args.size)
        reader, writer = await asyncio.open_connection(HOST, PORT)
        writer.write(headers(len(body), args.token) + body)
        await writer.drain()
        r = await answered_within(reader, TIMEOUT)
        writer.close()
        out["over_queued"] = [r[0], r[1].get("retry-after"), json.loads(r[2]).get("error", {}).get("code")] if r else None
        out["queued_rejections"] = metric('holdfast_ingest_byte_limit_rejections_total{limit="queued"}')
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    out["queued_answers"] = [(await read_response(rd))[0] for rd, _ in waiting]
    for _, w in waiting:
        w.close()
    out["queued_gauge_after"] = await wait_metric("holdfast_ingest_queued_bytes", 0)
    return out


result = asyncio.run(flood() if args.mode == "flood" else budget())
with open(args.out, "w") as f:
    json.dump(result, f)
print(json.dumps(result))
