// fake.js - a scripted stand-in for a gateway's WebSocket, for the unit
// tests: the test plays the server (open, messages, closes) and reads what
// the client sent. No timing is asserted: tests wait for conditions with
// a bounded poll.

import { encode as mpEncode, decode as mpDecode } from '../src/msgpack.js';

export class FakeSocket {
  static all = [];
  readyState = 0;
  protocol = '';
  sent = [];
  binaryType = 'blob';

  constructor(url, protocols, options) {
    this.url = url;
    this.protocols = protocols;
    this.options = options;
    FakeSocket.all.push(this);
  }

  static reset() {
    FakeSocket.all = [];
  }

  static last() {
    return FakeSocket.all[FakeSocket.all.length - 1];
  }

  get binary() {
    return this.protocol.endsWith('msgpack');
  }

  send(data) {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    this.sent.push(typeof data === 'string' ? JSON.parse(data) : mpDecode(data));
  }

  close(code, reason) {
    if (this.readyState >= 2) return;
    this.readyState = 3;
    this.closedByClient = { code, reason };
    queueMicrotask(() => this.onclose?.({ code: code ?? 1005, reason: reason ?? '' }));
  }

  // ---- the server's side ----
  open(protocol = 'holdfast.v1.1.json') {
    this.protocol = protocol;
    this.readyState = 1;
    this.onopen?.({});
  }

  welcome(extra = {}) {
    this.recv({
      type: 'welcome', version: '1.1', gateway: 'gw-test', sub: 'alice', exp: null,
      server_time_us: Date.now() * 1000, ping_interval_ms: 30000, idle_timeout_ms: 75000,
      max_subscriptions: 100, max_frame: 16384, msg_rate: 50, msg_burst: 200, ...extra,
    });
  }

  recv(msg) {
    this.onmessage?.({ data: this.binary ? mpEncode(msg).slice().buffer : JSON.stringify(msg) });
  }

  serverClose(code, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  sentOf(type) {
    return this.sent.filter((m) => m.type === type);
  }
}

/** Polls cond every few ms until it is true; fails after timeoutMs (a bound, not a measurement). */
export async function waitFor(cond, what = 'condition', timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export function event(channel, offset, prev, extra = {}) {
  return {
    type: 'event', channel, id: `id-${offset}`, partition: 0, offset, prev_offset: prev,
    epoch: 'e1', ts_us: 1700000000000000 + offset, data: { n: offset }, ...extra,
  };
}

/** A JWT-shaped token (unsigned) with the given exp, so the client can read it. */
export function fakeToken(exp, sub = 'alice') {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'HS256' })}.${b64({ sub, exp })}.sig`;
}
