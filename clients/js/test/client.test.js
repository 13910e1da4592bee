// client.test.js - HoldfastClient and Subscription against a scripted
// gateway (fake.js): the state machine, resume with since, the prev_offset
// chain, duplicates, gaps, close codes (retried or final), the drain's
// hint, token renewal in-band, the heartbeat, positions kept across
// "reloads", history recovery, msgpack.

import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';

import { HoldfastClient } from '../src/index.js';
import { msgpackCodec } from '../src/msgpack.js';
import { FakeSocket, waitFor, event, fakeToken } from './fake.js';

beforeEach(() => FakeSocket.reset());

function client(extra = {}) {
  const tokens = [];
  const c = new HoldfastClient({
    urls: ['ws://a/v1/ws', 'ws://b/v1/ws'],
    getToken: async ({ reason }) => {
      tokens.push(reason);
      return `tok-${tokens.length}`;
    },
    WebSocket: FakeSocket,
    backoffBaseMs: 20,
    backoffCapMs: 40,
    ...extra,
  });
  c.tokens = tokens;
  const states = [];
  c.on('state', (s) => states.push(s));
  c.states = states;
  const errors = [];
  c.on('error', (e) => errors.push(e));
  c.errors = errors;
  return c;
}

async function connected(c, protocol) {
  const ws = await waitFor(() => FakeSocket.last(), 'a socket');
  ws.open(protocol);
  if (!protocol || protocol.includes('v1.1')) ws.welcome();
  await waitFor(() => c.state === 'connected', 'connected');
  return ws;
}

function record(sub) {
  const got = { events: [], subscribed: [], gaps: [], errors: [], duplicates: 0 };
  sub.on('event', (e) => got.events.push(e));
  sub.on('subscribed', (s) => got.subscribed.push(s));
  sub.on('gap', (g) => got.gaps.push(g));
  sub.on('error', (e) => got.errors.push(e));
  sub.on('duplicate', () => got.duplicates++);
  return got;
}

test('offers 1.1 then 1.0, sends the token, subscribes with an id once welcomed', async () => {
  const c = client();
  const sub = c.subscribe('orders:1');
  const got = record(sub);
  const ws = await waitFor(() => FakeSocket.last());
  assert.deepEqual(ws.protocols, ['holdfast.v1.1.json', 'holdfast.v1.json']);
  assert.equal(ws.url, 'ws://a/v1/ws?token=tok-1');
  assert.equal(c.tokens[0], 'connect');
  ws.open();
  assert.equal(ws.sentOf('subscribe').length, 0, 'nothing before welcome');
  ws.welcome();
  await waitFor(() => c.state === 'connected');
  assert.equal(c.welcome.gateway, 'gw-test');
  const [s] = ws.sentOf('subscribe');
  assert.equal(s.channel, 'orders:1');
  assert.equal(s.since, undefined);
  ws.recv({ type: 'subscribed', channel: 'orders:1', partition: 3, offset: 41, epoch: 'e1', recovered: false, id: s.id });
  assert.equal(sub.state, 'subscribed');
  assert.deepEqual(sub.position, { offset: 41, epoch: 'e1' });
  assert.equal(got.subscribed[0].recovered, false);
  assert.equal(got.subscribed[0].wasRecovering, false);
  c.close();
});

test('the chain: duplicates dropped, each prev_offset checked, a break resubscribes from the last offset', async () => {
  const c = client();
  const sub = c.subscribe('ch');
  const got = record(sub);
  const ws = await connected(c);
  ws.recv({ type: 'subscribed', channel: 'ch', partition: 0, offset: 4, epoch: 'e1', recovered: false, id: ws.sentOf('subscribe')[0].id });
  ws.recv(event('ch', 5, -1));
  ws.recv(event('ch', 5, -1)); // again: a duplicate
  ws.recv(event('ch', 3, -1)); // older still
  ws.recv(event('ch', 7, 5));
  assert.deepEqual(got.events.map((e) => e.offset), [5, 7]);
  assert.equal(got.duplicates, 2);
  assert.ok(got.events.every((e) => e.verified), 'each link checked');
  assert.equal(got.events[1].prevOffset, 5);
  assert.deepEqual(got.events[1].data, { n: 7 });
  ws.recv(event('ch', 12, 9)); // 9 never came: a break
  assert.deepEqual(got.events.map((e) => e.offset), [5, 7]);
  assert.equal(sub.stats.chainBreaks, 1);
  const unsub = ws.sentOf('unsubscribe');
  const resub = ws.sentOf('subscribe');
  assert.equal(unsub.length, 1);
  assert.deepEqual(resub[1].since, { offset: 7, epoch: 'e1' });
  ws.recv(event('ch', 13, 12)); // in flight before the resubscribe: ignored
  ws.recv({ type: 'unsubscribed', channel: 'ch' });
  ws.recv({ type: 'subscribed', channel: 'ch', partition: 0, offset: 7, epoch: 'e1', recovered: true, id: resub[1].id });
  ws.recv(event('ch', 9, 7));
  ws.recv(event('ch', 12, 9));
  ws.recv(event('ch', 13, 12));
  assert.deepEqual(got.events.map((e) => e.offset), [5, 7, 9, 12, 13]);
  assert.equal(c.stats.events, 5);
  c.close();
});

test('one event twice in the log, at two offsets: delivered once, the chain goes on from either copy', async () => {
  const c = client();
  const sub = c.subscribe('ch');
  const got = record(sub);
  const ws = await connected(c);
  ws.recv({ type: 'subscribed', channel: 'ch', partition: 0, offset: 4, epoch: 'e1', recovered: false, id: ws.sentOf('subscribe')[0].id });
  // the second writer's copy first (offset 5), the late one after it (8)
  ws.recv(event('ch', 5, 4, { id: 'ev-a' }));
  ws.recv(event('ch', 8, 4, { id: 'ev-a' }));
  ws.recv(event('ch', 9, 5, { id: 'ev-b' }));
  // the late copy first (10), the second writer's after it (11)
  ws.recv(event('ch', 10, 9, { id: 'ev-c' }));
  ws.recv(event('ch', 11, 9, { id: 'ev-c' }));
  ws.recv(event('ch', 12, 11, { id: 'ev-d' }));
  assert.deepEqual(got.events.map((e) => e.id), ['ev-a', 'ev-b', 'ev-c', 'ev-d']);
  assert.equal(got.duplicates, 2);
  assert.equal(sub.stats.chainBreaks, 0);
  assert.equal(ws.sentOf('subscribe').length, 1, 'no resubscribe');
  assert.deepEqual(sub.position, { offset: 12, epoch: 'e1' });
  c.close();
});

test('a cut connection: backoff, the next URL, every subscription resumed with since', async () => {
  const c = client();
  const a = c.subscribe('a');
  const b = c.subscribe('b');
  const gotA = record(a);
  const ws = await connected(c);
  const [sa, sb] = ws.sentOf('subscribe');
  ws.recv({ type: 'subscribed', channel: 'a', partition: 0, offset: 10, epoch: 'e1', recovered: false, id: sa.id });
  ws.recv({ type: 'subscribed', channel: 'b', partition: 1, offset: 20, epoch: 'e1', recovered: false, id: sb.id });
  ws.recv(event('a', 11, 2));
  ws.serverClose(1006);
  const down = c.states.at(-1);
  assert.equal(down.to, 'disconnected');
  assert.equal(down.code, 1006);
  assert.ok(down.retryInMs >= 0 && down.retryInMs < 20, `full jitter within the base: ${down.retryInMs}`);
  await waitFor(() => FakeSocket.all.length === 2, 'a second socket');
  const ws2 = FakeSocket.last();
  assert.ok(ws2.url.startsWith('ws://b/v1/ws'), 'the next URL');
  assert.equal(c.tokens.length, 1, 'the token is reused while valid');
  ws2.open();
  ws2.welcome({ gateway: 'gw-b' });
  await waitFor(() => c.state === 'connected');
  const subs = ws2.sentOf('subscribe');
  assert.deepEqual(subs.map((s) => [s.channel, s.since]), [['a', { offset: 11, epoch: 'e1' }], ['b', { offset: 20, epoch: 'e1' }]]);
  ws2.recv({ type: 'subscribed', channel: 'a', partition: 0, offset: 11, epoch: 'e1', recovered: true, id: subs[0].id });
  const last = gotA.subscribed.at(-1);
  assert.deepEqual([last.recovered, last.wasRecovering, last.resumed, last.offset], [true, true, true, 11]);
  ws2.recv(event('a', 11, 2)); // replayed at the seam: dropped
  ws2.recv(event('a', 14, 11));
  assert.deepEqual(gotA.events.map((e) => e.offset), [11, 14]);
  assert.equal(b.state, 'subscribing');
  c.close();
});

test('close codes: a drain waits its hint; slow_consumer and 1006 back off; 1003 and 1009 are final', async () => {
  const c = client();
  let ws = await connected(c);
  ws.serverClose(1012, 'drain retry_after_ms=300: gateway restarting: resume elsewhere');
  assert.equal(c.states.at(-1).retryInMs, 300);
  assert.equal(c.states.at(-1).why, 'drain');
  await waitFor(() => FakeSocket.all.length === 2, 'the reconnect after the hint');
  ws = await connected(c);
  ws.serverClose(4001, 'slow_consumer: send queue overflow: resume from your last position');
  assert.equal(c.states.at(-1).why, 'slow_consumer');
  assert.ok(c.states.at(-1).retryInMs <= 40);
  await waitFor(() => FakeSocket.all.length === 3);
  ws = await connected(c);
  ws.serverClose(1008, 'limit:message_rate retry_after_ms=150: too many messages (limit 50/s)');
  assert.ok(c.states.at(-1).retryInMs >= 150, 'a limit waits at least its retry_after_ms');
  await waitFor(() => FakeSocket.all.length === 4);
  ws = await connected(c);
  ws.serverClose(1009, 'message_too_big: message too big');
  assert.equal(c.state, 'failed');
  assert.equal(c.states.at(-1).why, 'message_too_big');
  assert.ok(c.errors.at(-1).fatal);
  assert.equal(c.errors.at(-1).code, 'message_too_big');
  await new Promise((r) => setTimeout(r, 100)); // well past the 40 ms backoff cap
  assert.equal(FakeSocket.all.length, 4, 'no reconnect after a final close');
  c.connect(); // the application may try again
  await waitFor(() => FakeSocket.all.length === 5);
  c.close();
});

test('4401: an expired token is renewed at once; an invalid one twice in a row with fresh tokens is final', async () => {
  const c = client();
  let ws = await connected(c);
  ws.serverClose(4401, 'token_expired: unauthorized: token expired');
  await waitFor(() => FakeSocket.all.length === 2);
  assert.deepEqual(c.tokens, ['connect', 'expired']);
  assert.equal(c.states.at(-2).retryInMs, 0);
  ws = FakeSocket.last();
  assert.ok(ws.url.endsWith('token=tok-2'));
  ws.open();
  ws.serverClose(4401, 'token_invalid: unauthorized: token malformed or its signature does not verify');
  await waitFor(() => FakeSocket.all.length === 3);
  ws = FakeSocket.last();
  ws.open();
  ws.serverClose(4401, 'token_invalid: unauthorized: token malformed or its signature does not verify');
  assert.equal(c.state, 'failed');
  assert.equal(c.errors.at(-1).code, 'token_invalid');
  assert.deepEqual(c.tokens, ['connect', 'expired', 'invalid']);
});

test('the token is renewed in-band before it expires; refusals are retried', async () => {
  const exp = Math.floor(Date.now() / 1000) + 2; // about 1.x s from now
  const c = client({ refreshMinMs: 1000 });
  const renewed = [];
  c.on('token', (t) => renewed.push(t));
  const ws = await waitFor(() => FakeSocket.last());
  ws.open();
  ws.welcome({ exp });
  await waitFor(() => ws.sentOf('auth').length === 1, 'an auth message', 5000);
  const [auth] = ws.sentOf('auth');
  assert.equal(auth.token, 'tok-2');
  assert.equal(c.tokens[1], 'refresh');
  ws.recv({ type: 'error', code: 'token_expired', message: 'token expired', id: auth.id });
  await waitFor(() => ws.sentOf('auth').length === 2, 'a second try', 5000);
  const second = ws.sentOf('auth')[1];
  ws.recv({ type: 'authenticated', sub: 'alice', exp: exp + 3600, id: second.id });
  assert.equal(renewed.length, 1);
  assert.equal(c.stats.tokenRefreshes, 1);
  assert.equal(c.state, 'connected');
  assert.equal(FakeSocket.all.length, 1, 'no reconnect for a renewal');
  c.close();
});

test('a token valid for weeks is not renewed at once (timers cap at 24.8 days)', async () => {
  const c = client();
  const ws = await waitFor(() => FakeSocket.last());
  ws.open();
  ws.welcome({ exp: Math.floor(Date.now() / 1000) + 30 * 86400 });
  await waitFor(() => c.state === 'connected');
  ws.recv({ type: 'ping' }); // a round trip later, still nothing
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(ws.sentOf('auth').length, 0);
  c.close();
});

test('a reused token that has expired is not sent: a fresh one is fetched first', async () => {
  let n = 0;
  const c = new HoldfastClient({
    url: 'ws://a/v1/ws', WebSocket: FakeSocket, backoffBaseMs: 10, backoffCapMs: 10,
    getToken: async () => fakeToken(n++ === 0 ? Math.floor(Date.now() / 1000) - 5 : Math.floor(Date.now() / 1000) + 600),
  });
  const ws = await waitFor(() => FakeSocket.last());
  ws.open();
  ws.welcome();
  ws.serverClose(1006);
  await waitFor(() => FakeSocket.all.length === 2);
  assert.equal(n, 2, 'the expired token was replaced before reconnecting');
  c.close();
});

test('heartbeat: a silent 1.1 connection is dropped and reconnected; the gateway\'s ping is answered', async () => {
  const c = client({ deadMarginMs: 30 });
  const ws = await waitFor(() => FakeSocket.last());
  ws.open();
  ws.welcome({ ping_interval_ms: 40 });
  await waitFor(() => c.state === 'connected');
  ws.recv({ type: 'ping' });
  assert.equal(ws.sentOf('pong').length, 1);
  await waitFor(() => FakeSocket.all.length === 2, 'a reconnect after silence');
  assert.equal(c.states.find((s) => s.to === 'disconnected').why, 'heartbeat');
  assert.ok(ws.closedByClient, 'the dead socket was closed');
  c.close();
});

test('a 1.0 gateway: no welcome awaited, the client pings a quiet connection itself', async () => {
  const c = client({ pingIntervalMs: 30, pongTimeoutMs: 1000 });
  const sub = c.subscribe('x');
  const ws = await waitFor(() => FakeSocket.last());
  ws.open('holdfast.v1.json');
  await waitFor(() => c.state === 'connected');
  assert.equal(c.protocol, '1.0');
  assert.equal(ws.sentOf('subscribe').length, 1);
  await waitFor(() => ws.sentOf('ping').length >= 1, 'a client ping');
  assert.equal(sub.state, 'subscribing');
  c.close();
});

test('gaps: recovered:false after since reports what was lost; a new epoch says so', async () => {
  const c = client();
  const s1 = c.subscribe('g1', { since: { offset: 10, epoch: 'e1' } });
  const s2 = c.subscribe('g2', { since: { offset: 10, epoch: 'old' } });
  const g1 = record(s1);
  const g2 = record(s2);
  const ws = await connected(c);
  const [a, b] = ws.sentOf('subscribe');
  assert.deepEqual(a.since, { offset: 10, epoch: 'e1' });
  ws.recv({ type: 'subscribed', channel: 'g1', partition: 0, offset: 50, epoch: 'e1', recovered: false, id: a.id });
  ws.recv({ type: 'subscribed', channel: 'g2', partition: 0, offset: 5, epoch: 'e2', recovered: false, id: b.id });
  assert.deepEqual(g1.gaps, [{ from: 11, to: 50, fromEpoch: 'e1', epoch: 'e1', reason: 'not_retained' }]);
  assert.equal(g2.gaps[0].reason, 'epoch_changed');
  assert.deepEqual(s1.position, { offset: 50, epoch: 'e1' });
  ws.recv(event('g1', 51, 8));
  assert.deepEqual(g1.events.map((e) => e.offset), [51]);
  // A subscribed the gateway sends on its own (a fill that found the log
  // moved on): a gap from the position to its offset.
  ws.recv({ type: 'subscribed', channel: 'g1', partition: 0, offset: 90, epoch: 'e1', recovered: false });
  assert.deepEqual([g1.gaps[1].from, g1.gaps[1].to], [52, 90]);
  assert.equal(c.stats.gaps, 3);
  c.close();
});

test("recover: 'history' fills a gap from ingest's history API, then the live events held meanwhile", async () => {
  const pages = [];
  const fetchImpl = async (url, init) => {
    pages.push({ url, auth: init.headers.Authorization });
    const hist = (o, p) => ({ ...event('h', o, p), type: 'event' });
    return {
      ok: true,
      status: 200,
      headers: new Map(),
      json: async () => ({ channel: 'h', partition: 0, epoch: 'e1', events: [hist(12, 8), hist(30, 12), hist(55, 30)], next_since: 55, more: false, complete: true }),
    };
  };
  const c = client({ historyUrl: 'http://ingest:1/', fetch: fetchImpl });
  const sub = c.subscribe('h', { since: { offset: 10, epoch: 'e1' }, recover: 'history' });
  const got = record(sub);
  let recovered = null;
  sub.on('recovered', (r) => (recovered = r));
  const ws = await connected(c);
  const [s] = ws.sentOf('subscribe');
  ws.recv({ type: 'subscribed', channel: 'h', partition: 0, offset: 50, epoch: 'e1', recovered: false, id: s.id });
  ws.recv(event('h', 55, 30)); // live, while history is read
  await waitFor(() => got.events.length === 3, 'history then live');
  assert.deepEqual(got.events.map((e) => e.offset), [12, 30, 55]);
  assert.equal(pages[0].url, 'http://ingest:1/v1/channels/h/events?since=10&limit=1000&epoch=e1');
  assert.match(pages[0].auth, /^Bearer tok-/);
  assert.deepEqual(got.gaps, []);
  assert.deepEqual(recovered, { from: 11, to: 50, source: 'history' });
  assert.ok(got.events.every((e) => e.verified));
  c.close();
});

test('errors: unavailable is retried after its hint; forbidden ends the subscription', async () => {
  const c = client();
  const ok = c.subscribe('u');
  const no = c.subscribe('f');
  const gotNo = record(no);
  const ws = await connected(c);
  const [su, sf] = ws.sentOf('subscribe');
  ws.recv({ type: 'error', code: 'unavailable', channel: 'u', message: 'later', retry_after_ms: 30, id: su.id });
  ws.recv({ type: 'error', code: 'forbidden', channel: 'f', message: 'no', id: sf.id });
  assert.equal(no.state, 'failed');
  assert.equal(gotNo.errors[0].fatal, true);
  assert.equal(c.getSubscription('f'), null);
  await waitFor(() => ws.sentOf('subscribe').length === 3, 'the retried subscribe');
  assert.equal(ws.sentOf('subscribe')[2].channel, 'u');
  assert.equal(ok.state, 'subscribing');
  // A narrower token took a channel away.
  ws.recv({ type: 'subscribed', channel: 'u', partition: 0, offset: 1, epoch: 'e1', recovered: false, id: ws.sentOf('subscribe')[2].id });
  ws.recv({ type: 'unsubscribed', channel: 'u', reason: 'forbidden' });
  assert.equal(ok.state, 'failed');
  c.close();
});

test('positions persist: a new client (a reload) resumes where the last one stopped', async () => {
  const mem = new Map();
  const storage = { getItem: (k) => mem.get(k) ?? null, setItem: (k, v) => mem.set(k, v), removeItem: (k) => mem.delete(k) };
  const c1 = client({ storage });
  c1.subscribe('p');
  const ws = await connected(c1);
  ws.recv({ type: 'subscribed', channel: 'p', partition: 0, offset: 3, epoch: 'e1', recovered: false, id: ws.sentOf('subscribe')[0].id });
  ws.recv(event('p', 8, 2));
  c1.close(); // flushes
  assert.deepEqual(JSON.parse(mem.get('holdfast:position:p')), { offset: 8, epoch: 'e1' });
  FakeSocket.reset();
  const c2 = client({ storage });
  const sub = c2.subscribe('p');
  assert.deepEqual(sub.position, { offset: 8, epoch: 'e1' });
  const ws2 = await connected(c2);
  assert.deepEqual(ws2.sentOf('subscribe')[0].since, { offset: 8, epoch: 'e1' });
  c2.close();
});

test('msgpack: the same protocol in binary frames, bytes payloads kept as bytes', async () => {
  const c = client({ codec: msgpackCodec });
  const sub = c.subscribe('m');
  const got = record(sub);
  const ws = await waitFor(() => FakeSocket.last());
  assert.deepEqual(ws.protocols, ['holdfast.v1.1.msgpack', 'holdfast.v1.msgpack']);
  ws.open('holdfast.v1.1.msgpack');
  ws.welcome();
  await waitFor(() => c.state === 'connected');
  const [s] = ws.sentOf('subscribe');
  ws.recv({ type: 'subscribed', channel: 'm', partition: 1, offset: -1, epoch: null, recovered: false, id: s.id });
  const json = new TextEncoder().encode('{"a":[1,2]}');
  ws.recv({ ...event('m', 0, -1), data: json, content_type: 'application/json' });
  ws.recv({ ...event('m', 1, 0), data: new Uint8Array([0, 255, 7]), content_type: 'application/octet-stream' });
  assert.deepEqual(got.events[0].data, { a: [1, 2] });
  assert.deepEqual([...got.events[1].data], [0, 255, 7]);
  assert.equal(got.events[1].contentType, 'application/octet-stream');
  c.close();
});

test('subscribe refuses bad names and duplicates; unsubscribe tells the gateway', async () => {
  const c = client();
  assert.throws(() => c.subscribe('a/b'), /invalid channel/);
  const sub = c.subscribe('z');
  assert.throws(() => c.subscribe('z'), /already subscribed/);
  const ws = await connected(c);
  sub.unsubscribe();
  assert.equal(sub.state, 'unsubscribed');
  assert.equal(ws.sentOf('unsubscribe')[0].channel, 'z');
  assert.equal(c.getSubscription('z'), null);
  c.close();
  assert.equal(c.state, 'disconnected');
});
