// ws_latency.js - a second witness of the gateway's latency: Node's `ws`
// client doing what holdfast-loadgen (bench/loadgen.c) does in its holdfast
// mode, so that the numbers of the benchmark's own C client can be checked
// against an independent implementation in the same run.
//
//   node bench/node/ws_latency.js --urls ws://H:P/v1/ws[,...] [--clients N]
//        [--channels M] [--prefix P] [--connect-rate R] [--duration S]
//        [--events E] [--ready-file F] [--token T]
//
// Opens --clients connections (subprotocol holdfast.v1.json, paced at
// --connect-rate per second), client i on urls[i mod n], subscribed to
// PREFIX:(i mod --channels). Once every client is subscribed it writes
// --ready-file, then counts for --duration seconds (or until --events
// deliveries arrived) and prints one JSON object with the same keys as
// holdfast-loadgen's report (in its default --protocol holdfast). Latency
// is the receive time minus the payload's "t" (microseconds since the
// epoch), or minus the event's commit time ts_us when there is none; same
// machine's clock. Duplicates (offset not above the client's last) and
// chain breaks (prev_offset given and not the client's previous offset)
// are counted as loadgen counts them. Exit 1 if not every client
// subscribed, or any was closed, got a duplicate or saw its chain break.
// Gives up --duration + 120 s after starting and reports (at once when
// every connection is already gone).
//
// Percentiles come from the same 10 us histogram loadgen uses (a bucket's
// upper edge is reported), so a difference between the two clients is a
// difference in what they measured, not in how they summarised it.
"use strict";
const fs = require("node:fs");
const { performance } = require("node:perf_hooks");
const WebSocket = require("ws");

const HIST_BUCKET_US = 10;
const HIST_BUCKETS = 1000000; // 10 s in 10 us steps; later goes to the last
const GIVE_UP_AFTER_S = 120;

function usage(problem) {
  if (problem) console.error(`ws_latency: ${problem}`);
  console.error(
    "usage: node ws_latency.js --urls ws://H:P/v1/ws[,...] [--clients N] " +
      "[--channels M] [--prefix P] [--connect-rate R] [--duration S] " +
      "[--events E] [--ready-file F] [--token T]",
  );
  process.exit(2);
}

// Same flags and defaults as holdfast-loadgen, plus --token.
const opts = {
  urls: [],
  clients: 100,
  channels: 1,
  prefix: "bench",
  connectRate: 2000,
  duration: 10,
  events: 0,
  readyFile: null,
  token: null,
};
const flags = {
  "--urls": (v) => (opts.urls = v.split(",").filter((u) => u)),
  "--clients": (v) => (opts.clients = parseInt(v, 10)),
  "--channels": (v) => (opts.channels = parseInt(v, 10)),
  "--prefix": (v) => (opts.prefix = v),
  "--connect-rate": (v) => (opts.connectRate = parseInt(v, 10)),
  "--duration": (v) => (opts.duration = parseFloat(v)),
  "--events": (v) => (opts.events = parseInt(v, 10)),
  "--ready-file": (v) => (opts.readyFile = v),
  "--token": (v) => (opts.token = v),
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const set = flags[argv[i]];
  if (!set) usage(`unknown option ${argv[i]}`);
  if (i + 1 >= argv.length) usage(`${argv[i]} needs a value`);
  set(argv[i + 1]);
}
for (const u of opts.urls) if (!/^ws:\/\/[^/:]+:\d+\//.test(u)) usage(`bad URL ${u}`);
if (!opts.urls.length || !(opts.clients > 0) || !(opts.channels > 0) || !(opts.connectRate > 0))
  usage();
if (!(opts.duration > 0)) usage("--duration must be positive");

// Receive time in microseconds since the epoch. Date.now() has only
// millisecond resolution, which would swamp sub-millisecond latencies;
// timeOrigin is the realtime clock, read with microsecond precision when
// the process started, and performance.now() the monotonic clock since.
// NTP slews both clocks alike, so only a step of the wall clock during the
// run would set this apart from the CLOCK_REALTIME loadgen reads.
function nowRealtimeUs() {
  return (performance.timeOrigin + performance.now()) * 1000;
}

const st = {
  connected: 0,
  subscribed: 0,
  closes: 0,
  connectErrors: 0,
  tStart: performance.now(), // monotonic ms
  tAllSubscribed: 0,
  tCountStart: 0,
  events: 0,
  duplicates: 0,
  chainBreaks: 0,
  hist: new Uint32Array(HIST_BUCKETS),
  latMaxUs: 0,
  done: false,
  nextConnect: 0,
  firstError: null, // the first failed connect, close or error message, for stderr
  unparsed: 0,
  dead: 0, // clients whose connection is gone (failed or closed)
};
const clients = [];

function onEvent(c, m, recvUs) {
  const offset = typeof m.offset === "number" ? m.offset : -1;
  if (offset <= c.lastOffset) {
    st.duplicates++;
    return;
  }
  // null prev_offset (the first event after subscribed, when the gateway
  // does not know it) is not a break, as in loadgen.
  const prev = typeof m.prev_offset === "number" ? m.prev_offset : null;
  if (c.lastOffset >= 0 && prev !== null && prev !== c.lastOffset) st.chainBreaks++;
  c.lastOffset = offset;
  if (!st.tCountStart) return; // still connecting: not counted
  st.events++;
  let t = m.data && typeof m.data === "object" && typeof m.data.t === "number" ? m.data.t : -1;
  if (!(t > 0)) t = typeof m.ts_us === "number" ? m.ts_us : -1;
  if (!(t > 0)) return;
  const lat = Math.max(0, recvUs - t);
  if (lat > st.latMaxUs) st.latMaxUs = lat;
  const b = Math.floor(lat / HIST_BUCKET_US);
  st.hist[b < HIST_BUCKETS ? b : HIST_BUCKETS - 1]++;
}

function onSubscribed(c) {
  if (c.subscribed) return; // a second one means a failed gap fill; loadgen ignores it too
  c.subscribed = true;
  if (++st.subscribed < opts.clients) return;
  st.tAllSubscribed = st.tCountStart = performance.now();
  if (opts.readyFile) fs.writeFileSync(opts.readyFile, "ready\n");
}

function onMessage(c, data) {
  // Taken before parsing: the time the message was in hand, as loadgen's is.
  const recvUs = nowRealtimeUs();
  let m;
  try {
    m = JSON.parse(data.toString("utf8"));
  } catch {
    st.unparsed++;
    return;
  }
  if (!m || typeof m !== "object") {
    st.unparsed++;
    return;
  }
  if (m.type === "event") onEvent(c, m, recvUs);
  else if (m.type === "subscribed") onSubscribed(c);
  else if (m.type === "error" && !st.firstError) st.firstError = JSON.stringify(m);
}

function connect(i) {
  // lastOffset -2: nothing yet (an event without an offset reads as -1).
  const c = { index: i, ws: null, open: false, failed: false, subscribed: false, lastOffset: -2 };
  clients.push(c);
  const headers = opts.token ? { Authorization: `Bearer ${opts.token}` } : {};
  // No permessage-deflate: loadgen does not offer it, and compression would
  // add work on both sides that the C client never pays.
  const ws = new WebSocket(opts.urls[i % opts.urls.length], "holdfast.v1.json", {
    headers,
    perMessageDeflate: false,
  });
  c.ws = ws;
  ws.on("open", () => {
    c.open = true;
    st.connected++;
    ws.send(JSON.stringify({ type: "subscribe", channel: `${opts.prefix}:${i % opts.channels}` }));
  });
  ws.on("message", (data) => onMessage(c, data));
  ws.on("error", (err) => {
    // Before the upgrade completed: a failed connect. After it, the close
    // that follows is what counts.
    if (!c.open && !c.failed) {
      c.failed = true;
      st.connectErrors++;
      if (!st.firstError) st.firstError = String(err && err.message);
    }
  });
  ws.on("close", (code, reason) => {
    if (!st.done) st.dead++;
    if (c.open && !st.done) {
      st.closes++;
      if (!st.firstError) st.firstError = `closed ${code} ${reason}`;
    }
  });
}

function percentile(q) {
  let total = 0;
  for (let i = 0; i < HIST_BUCKETS; i++) total += st.hist[i];
  if (!total) return 0;
  const rank = Math.floor(q * total);
  let seen = 0;
  for (let i = 0; i < HIST_BUCKETS; i++) {
    seen += st.hist[i];
    if (seen > rank) return ((i + 1) * HIST_BUCKET_US) / 1000;
  }
  return st.latMaxUs / 1000;
}

const fixed = (x, digits) => Number(x.toFixed(digits));

function report() {
  const end = performance.now();
  const countedS = st.tCountStart ? (end - st.tCountStart) / 1000 : 0;
  const connectS = st.tAllSubscribed ? (st.tAllSubscribed - st.tStart) / 1000 : -1;
  return {
    clients: opts.clients,
    connected: st.connected,
    subscribed: st.subscribed,
    connect_errors: st.connectErrors,
    closes: st.closes,
    connect_seconds: fixed(connectS, 3),
    connect_rate: connectS > 0 ? Math.round(opts.clients / connectS) : 0,
    counted_seconds: fixed(countedS, 3),
    deliveries: st.events,
    deliveries_per_second: countedS > 0 ? Math.round(st.events / countedS) : 0,
    duplicates: st.duplicates,
    chain_breaks: st.chainBreaks,
    // Always true here (Holdfast events carry offsets); loadgen reports
    // false under --protocol socketio, whose events carry none.
    ordering_checked: true,
    latency_ms: {
      p50: fixed(percentile(0.5), 2),
      p90: fixed(percentile(0.9), 2),
      p99: fixed(percentile(0.99), 2),
      p999: fixed(percentile(0.999), 2),
      max: fixed(st.latMaxUs / 1000, 2),
    },
  };
}

function finish() {
  if (st.done) return;
  st.done = true;
  clearInterval(ticker);
  const out = report();
  if (st.firstError) console.error(`ws_latency: first problem seen: ${st.firstError}`);
  if (st.unparsed) console.error(`ws_latency: ${st.unparsed} messages were not JSON objects`);
  const clean =
    st.subscribed === opts.clients &&
    st.closes === 0 &&
    st.duplicates === 0 &&
    st.chainBreaks === 0;
  for (const c of clients) c.ws.terminate();
  process.stdout.write(JSON.stringify(out) + "\n", () => process.exit(clean ? 0 : 1));
}

// Every 10 ms, like loadgen's tick: the next batch of connects, and the end.
function tick() {
  const perTick = Math.max(1, Math.floor(opts.connectRate / 100));
  for (let k = 0; k < perTick && st.nextConnect < opts.clients; k++) connect(st.nextConnect++);
  const now = performance.now();
  if (st.tCountStart) {
    if (now - st.tCountStart > opts.duration * 1000) return finish();
    if (opts.events > 0 && st.events >= opts.events) return finish();
  }
  // Never subscribed fully: give up, the report says so. Without waiting
  // when every connection is already gone, since nothing can change then.
  if (now - st.tStart > (opts.duration + GIVE_UP_AFTER_S) * 1000) finish();
  else if (st.dead >= opts.clients) finish();
}

const ticker = setInterval(tick, 10);
process.on("SIGINT", finish);
process.on("SIGTERM", finish);
tick();
