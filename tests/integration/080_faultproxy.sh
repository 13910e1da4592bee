#!/usr/bin/env bash
# holdfast-faultproxy between a client and a real Redis: every fault the
# control port offers does what chaos scenarios rely on. Pass-through is
# transparent; "delay MS" holds each direction at least MS; "stall" keeps
# the sockets open but silent and "resume" then delivers everything, in
# order; "reset" gives clients a connection reset; "refuse" resets new
# clients until "accept"; a 5 MB value survives a delayed round trip byte
# for byte; a stalled sender is held back by TCP, not by proxy memory; bad
# commands get "error ..." and change nothing; SIGTERM exits 0.
# The client side is Python (raw RESP on sockets), so timings and resets are
# seen directly rather than through redis-cli's retries.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

# Bad flags are refused before anything starts.
"$HF_BIN/holdfast-faultproxy" --help >"$HF_RUN/help.out"
hf_check "--help prints usage" grep -q '^usage: holdfast-faultproxy' "$HF_RUN/help.out"
rc=0
"$HF_BIN/holdfast-faultproxy" --listen 127.0.0.1:0 --target 10.1.2.3:6379 2>"$HF_RUN/badargs.err" || rc=$?
hf_check_eq "a target outside 127.0.0.0/8 exits 2" 2 "$rc"
hf_check "... saying why" grep -q 'loopback only' "$HF_RUN/badargs.err"
rc=0
"$HF_BIN/holdfast-faultproxy" --listen 127.0.0.1:0 2>/dev/null || rc=$?
hf_check_eq "a missing --target exits 2" 2 "$rc"
rc=0
"$HF_BIN/holdfast-faultproxy" --listen 127.0.0.1:0 --target 127.0.0.1:6379 --control-port x 2>/dev/null || rc=$?
hf_check_eq "a bad --control-port exits 2" 2 "$rc"

hf_redis_start
hf_spawn faultproxy "$HF_BIN/holdfast-faultproxy" --listen 127.0.0.1:0 \
    --target "127.0.0.1:$HF_REDIS_PORT" --control-port 0 --ready-file "$HF_RUN/faultproxy.ready"
hf_wait_until 10 "the fault proxy" test -s "$HF_RUN/faultproxy.ready" ||
    hf_die "holdfast-faultproxy did not start (see $HF_RUN/faultproxy.log)"
FP_LISTEN=$(sed -n 's/^listen=//p' "$HF_RUN/faultproxy.ready")
FP_CONTROL=$(sed -n 's/^control=//p' "$HF_RUN/faultproxy.ready")
hf_check "stdout announces the listen address" grep -qx "listen=$FP_LISTEN" "$HF_RUN/faultproxy.log"
hf_check "stdout announces the control address" grep -qx "control=$FP_CONTROL" "$HF_RUN/faultproxy.log"
export FP_PORT=${FP_LISTEN##*:} FP_CONTROL_PORT=${FP_CONTROL##*:}
hf_log "proxy 127.0.0.1:$FP_PORT -> redis 127.0.0.1:$HF_REDIS_PORT, control port $FP_CONTROL_PORT"

# fp_control COMMAND: prints the proxy's one-line reply.
fp_control() {
    local reply=
    exec 7<>"/dev/tcp/127.0.0.1/$FP_CONTROL_PORT" || return 1
    printf '%s\n' "$*" >&7
    IFS= read -r -t 5 reply <&7 || true
    exec 7>&-
    printf '%s\n' "$reply"
}
fp_ok() { [[ $(fp_control "$@") == ok* ]]; }
fp_redis() { redis-cli -h 127.0.0.1 -p "$FP_PORT" "$@"; }

# One Python check per fault, run as `fp_py NAME`; each prints what it saw
# and exits non-zero when the fault did not behave.
cat >"$HF_RUN/fp_checks.py" <<'PY'
import os, select, socket, sys, time

PROXY = int(os.environ["FP_PORT"])
CONTROL = int(os.environ["FP_CONTROL_PORT"])


def control(*commands):
    """Sends the commands on one control connection; returns the reply lines."""
    with socket.create_connection(("127.0.0.1", CONTROL), timeout=5) as s:
        s.sendall("".join(c + "\n" for c in commands).encode())
        f = s.makefile("rb")
        return [f.readline().decode().rstrip("\n") for _ in commands]


def expect_ok(command):
    reply = control(command)[0]
    if not reply.startswith("ok"):
        sys.exit(f"control '{command}': {reply!r}")
    return reply


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Redis:
    """The test's Redis has a password (lib.sh): AUTH goes first, its answer
    is read before the first reply, so a connection made while the proxy
    stalls still waits for nothing."""

    def __init__(self, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", PROXY), timeout=timeout)
        self.f = self.sock.makefile("rb")
        self.sock.sendall(resp("AUTH", os.environ["REDISCLI_AUTH"]))
        self.auth_pending = True

    def send(self, *args):
        self.sock.sendall(resp(*args))

    def reply(self):
        if self.auth_pending:
            self.auth_pending = False
            line = self.f.readline()
            if line != b"+OK\r\n":
                raise EOFError(f"AUTH: {line!r}") if not line else RuntimeError(f"AUTH: {line!r}")
        line = self.f.readline()
        if not line:
            raise EOFError("connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        return rest if kind in (b"+", b":") else RuntimeError(rest.decode())

    def call(self, *args):
        self.send(*args)
        return self.reply()


def readable_within(socks, seconds):
    r, _, _ = select.select(socks, [], [], seconds)
    return r


def check_passthrough():
    r = Redis()
    assert r.call("PING") == b"PONG"
    assert r.call("SET", "fp:k", "v1") == b"OK"
    assert r.call("GET", "fp:k") == b"v1"
    print("pass-through: PING, SET, GET answered")


def check_delay():
    r = Redis()
    assert r.call("PING") == b"PONG"
    expect_ok("delay 200")
    t0 = time.monotonic()
    got = r.call("PING")
    rtt = time.monotonic() - t0
    expect_ok("delay 0")
    print(f"delay 200: PING round trip {rtt * 1000:.0f} ms")
    assert got == b"PONG", got
    assert rtt >= 0.395, f"round trip only {rtt:.3f} s"


def check_stall():
    before = Redis()  # a connection from before the stall ...
    assert before.call("PING") == b"PONG"
    expect_ok("stall")
    after = Redis()  # ... and one made during it
    for i in range(100):
        before.send("ECHO", f"msg-{i}")
    after.send("PING")
    early = readable_within([before.sock, after.sock], 1.0)
    status = control("status")[0]
    expect_ok("resume")
    # Nothing (no data, no EOF) arrived for a second; everything after resume.
    assert not early, "data or EOF arrived while stalled"
    assert "mode=stall" in status and "connections=2" in status, status
    got = [before.reply() for _ in range(100)]
    assert got == [f"msg-{i}".encode() for i in range(100)], "replies lost or reordered"
    assert after.reply() == b"PONG"
    assert before.call("PING") == b"PONG"
    print("stall: silent for 1 s with both connections open; resume delivered 101 replies in order")


def check_reset():
    r = Redis()
    assert r.call("PING") == b"PONG"
    reply = expect_ok("reset")
    assert int(reply.split("connections=")[1]) >= 1, reply
    try:
        r.sock.settimeout(5)
        data = r.sock.recv(1)
        sys.exit(f"expected a reset, read {data!r}")
    except ConnectionResetError:
        pass
    assert Redis().call("PING") == b"PONG"
    print(f"reset: '{reply}', the client got ECONNRESET, new connections work")


def refused_quickly():
    """True when a new connection is reset or closed without an answer."""
    t0 = time.monotonic()
    try:
        r = Redis(timeout=3)
        r.send("PING")
        r.reply()
        return False, 0
    except (ConnectionResetError, BrokenPipeError, ConnectionRefusedError, EOFError):
        return True, time.monotonic() - t0
    except socket.timeout:
        return False, 0


def check_refuse():
    expect_ok("refuse")
    results = [refused_quickly() for _ in range(3)]
    status = control("status")[0]
    expect_ok("accept")
    assert all(ok for ok, _ in results), "a client got through while refusing"
    assert "refused=" in status and "refused=0 " not in status, status
    assert Redis().call("PING") == b"PONG"
    print(f"refuse: 3 clients reset after {max(t for _, t in results) * 1000:.0f} ms at most; accept restored")


def check_large():
    value = os.urandom(5 * 1024 * 1024)
    expect_ok("delay 50")
    r = Redis(timeout=30)
    assert r.call("SET", "fp:big", value) == b"OK"
    got = r.call("GET", "fp:big")
    expect_ok("delay 0")
    assert got == value, f"GET returned {len(got or b'')} bytes, not the 5 MiB written"
    print("large: 5 MiB SET + GET byte-exact through delay 50")


def check_backpressure():
    """While stalled, a client pushing 48 MiB is held back by TCP: the proxy queues at most
    4 MiB, so the send stays unfinished; after resume it all arrives."""
    size, bound = 48 * 1024 * 1024, 4 * 1024 * 1024
    value = b"x" * size
    payload = resp("SET", "fp:bp", value)
    expect_ok("stall")
    r = Redis(timeout=30)
    r.sock.setblocking(False)
    sent, idle_since = 0, time.monotonic()
    while time.monotonic() - idle_since < 0.5 and sent < len(payload):
        try:
            sent += r.sock.send(payload[sent:sent + 1024 * 1024])
            idle_since = time.monotonic()
        except BlockingIOError:
            time.sleep(0.02)
    status = control("status")[0]
    expect_ok("resume")
    queued = int(status.split("queued_to_target_max=")[1].split()[0])
    print(f"backpressure: {sent >> 20} of {len(payload) >> 20} MiB accepted while stalled, "
          f"proxy queue {queued} bytes")
    assert sent < len(payload), "the whole payload went in while stalled"
    assert 0 < queued <= bound, status
    r.sock.setblocking(True)
    r.sock.sendall(payload[sent:])
    assert r.reply() == b"OK"
    assert r.call("STRLEN", "fp:bp") == str(size).encode()


def check_control_errors():
    bad = ["bogus", "delay", "delay -1", "delay 60001", "delay abc", "delay 10 20",
           "stall now", "status please", "", "   "]
    replies = control(*bad, "status")
    for cmd, reply in zip(bad, replies):
        assert reply.startswith("error "), f"{cmd!r} -> {reply!r}"
    assert replies[-1].startswith("ok mode=normal delay_ms=0"), replies[-1]
    # An over-long line: an error, then the connection is closed.
    with socket.create_connection(("127.0.0.1", CONTROL), timeout=5) as s:
        s.sendall(b"delay " + b"9" * 400 + b"\n")
        f = s.makefile("rb")
        reply = f.readline().decode()
        assert reply.startswith("error "), reply
        assert f.readline() == b"", "connection left open after an over-long line"
    assert Redis().call("PING") == b"PONG"
    print(f"control errors: {len(bad) + 1} bad commands answered 'error ...', e.g. {replies[0]!r}")


def check_normal():
    replies = control("delay 100", "stall", "refuse", "status", "normal", "status")
    assert all(r.startswith("ok") for r in replies), replies
    assert "mode=delay+stall+refuse delay_ms=100" in replies[3], replies[3]
    assert "mode=normal delay_ms=0" in replies[5], replies[5]
    assert Redis().call("PING") == b"PONG"
    print(f"normal: '{replies[3].split(' connections')[0]}' back to '{replies[5].split(' connections')[0]}'")


globals()["check_" + sys.argv[1]]()
PY
fp_py() { timeout 30 python3 "$HF_RUN/fp_checks.py" "$1"; }

hf_check "control ping" fp_ok ping
hf_check "redis-cli PING through the proxy" test "$(fp_redis ping)" == PONG
hf_check "pass-through" fp_py passthrough
hf_check "delay 200: PING round trip >= 400 ms" fp_py delay
hf_check "stall, then resume without loss" fp_py stall
hf_check "reset: clients see a connection reset" fp_py reset
hf_check "refuse, then accept" fp_py refuse
hf_check "5 MiB round trip through delay 50" fp_py large
hf_check "stall: TCP backpressure, queue within its bound" fp_py backpressure
hf_check "bad control commands get errors" fp_py control_errors
hf_check "normal clears every fault" fp_py normal
hf_check "the proxy survived all of it" hf_alive faultproxy
status=$(fp_control status)
hf_log "status: $status"
counted_both_ways() { [[ $status =~ bytes_to_target=[1-9] && $status =~ bytes_to_client=[1-9] ]]; }
hf_check "status counts bytes both ways" counted_both_ways

# SIGTERM with a stalled connection holding queued data: exits 0 at once,
# freeing it all (the ASan build checks for leaks), and removes the ready file.
fp_ok stall
exec 8<>"/dev/tcp/127.0.0.1/$FP_PORT"
printf 'PING\r\n' >&8
sleep 0.2
pid=$(hf_pid faultproxy)
kill -TERM "$pid"
hf_check "SIGTERM: the proxy exits promptly" hf_wait_until 5 "the proxy to exit" hf_pid_gone "$pid"
if hf_pid_gone "$pid"; then # else hf_checks_done kills it
    hf_wait_exit faultproxy
    hf_check_eq "SIGTERM: exit status 0" 0 "$HF_EXIT_STATUS"
fi
exec 8>&-
hf_check "the ready file is removed on exit" test ! -e "$HF_RUN/faultproxy.ready"
hf_checks_done
