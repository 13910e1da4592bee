// faults.test.js - @holdfast/client against the real services, through
// faults, with the delivered streams checked against PostgreSQL afterwards
// by tests/support/ws_verify.py (078_sdk_js.sh runs both).
//
// Twelve clients (half JSON, half msgpack; SDK_PER_GROUP sets how many
// per group of three) on four gateways, three channels each, tokens of 4 s renewed in-band the whole time, while two
// publishers go through ingest:
//   ga SIGKILLed          its clients resume on gc
//   gb SIGTERMed (drain)  its clients wait their hint, resume on gc
//   Redis SIGKILLed       the gateways go on from Kafka; Redis comes back
//   fault proxy reset     the clients behind it reconnect through it
//   fault proxy stall     their heartbeat notices; they resume on gc
// then a stale epoch (a gap, reported) and history() against what the
// clients got. Each fault's resume times go to $SDK_MEASURE.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';

import { HoldfastClient } from '../../src/index.js';
import { msgpackCodec } from '../../src/msgpack.js';
import {
  env, waitFor, sleep, tokens, publisher, record, resultOf, signal, pidOf, alive, libsh, faultProxy, metric,
} from './support.js';

const TOKEN_TTL_S = 4;
// Clients per group: 3 in make test; more for measuring (SDK_PER_GROUP=20).
const PER_GROUP = Number(process.env.SDK_PER_GROUP ?? 3);
const ga = env('SDK_GW_A');
const gb = env('SDK_GW_B');
const gc = env('SDK_GW_C');
const px = env('SDK_PROXY_URL');
const tok = tokens();

const channels = Array.from({ length: 12 }, (_, i) => `sdk:${i}`);
const groups = {
  kill: [ga, gc],
  drain: [gb, gc],
  proxy: [px, px, gc], // a reset comes back through the proxy; a stall moves on
  steady: [gc],
};

const clients = [];
const records = [];
const refreshes = { calls: 0 };
const measure = { faults: {} };

function newClient(urls, i) {
  return new HoldfastClient({
    urls,
    codec: i % 2 ? msgpackCodec : undefined,
    getToken: ({ reason }) => {
      if (reason === 'refresh') refreshes.calls++;
      return tok.subscribe(TOKEN_TTL_S);
    },
    backoffBaseMs: 250,
  });
}

function group(name) {
  return records.filter((r) => r.group === name);
}

const totalReceived = () => records.reduce((n, r) => n + r.received(), 0);

/** Each client's count of resumes before a fault. */
const resumesOf = (recs) => recs.map((r) => r.resumes.length);

/** Waits until every client of recs has resumed once more since `before`: connected, every subscription live again. */
async function resumed(recs, before, what) {
  await waitFor(() => recs.every((r, k) => r.resumes.length > before[k] && clients[r.client].state === 'connected' &&
    r.allSubscribed() && !r.resuming()), what, 30000);
}

/**
 * Resume times of one fault, per client: from the fault to every
 * subscription back; from the close the client saw; and that minus a
 * drain's hint (the wait the gateway asked for).
 */
function summarize(name, recs, faultAt) {
  const last = recs.flatMap((r) => r.resumes.slice(-1)); // each client's resume from this fault
  const stats = (xs) => {
    xs.sort((a, b) => a - b);
    return { min: xs[0], median: xs[Math.floor(xs.length / 2)], max: xs.at(-1) };
  };
  measure.faults[name] = {
    clients: recs.length,
    from_fault_ms: stats(last.map((x) => x.doneAt - faultAt)),
    from_close_ms: stats(last.map((x) => x.ms)),
    from_close_minus_hint_ms: stats(last.map((x) => x.ms - x.hintMs)),
  };
}

test('SDK clients through gateway kill, drain, Redis kill, a reset and a stalled link', { timeout: 150000 }, async (t) => {
  let i = 0;
  for (const [name, urls] of Object.entries(groups)) {
    for (let k = 0; k < PER_GROUP; k++, i++) {
      const c = newClient(urls, i);
      const mine = [channels[i % 12], channels[(i + 4) % 12], channels[(i + 8) % 12]];
      const rec = record(i, c, mine);
      rec.group = name;
      clients.push(c);
      records.push(rec);
    }
  }
  await waitFor(() => records.every((r) => r.allSubscribed()), 'every client subscribed');
  assert.ok(clients.every((c) => c.protocol === '1.1'), 'every connection speaks 1.1');
  const t0 = Date.now();
  const pubs = [
    publisher(env('SDK_INGEST_URL'), tok.publish(), channels.slice(0, 6), { name: 'a' }),
    publisher(env('SDK_INGEST_URL'), tok.publish(), channels.slice(6), { name: 'b' }),
  ];
  await waitFor(() => totalReceived() >= 300, 'events flowing');

  await t.test('a gateway SIGKILLed: its clients resume on another', async () => {
    const before = totalReceived();
    const resumes = resumesOf(group('kill'));
    const at = Date.now();
    const pid = signal('ga', 'SIGKILL');
    await waitFor(() => !alive(pid), 'ga gone');
    await resumed(group('kill'), resumes, 'the kill group back');
    assert.ok(group('kill').every((r) => r.closes.some((c) => c[0] === 1006)), 'they saw the connection cut');
    summarize('gateway SIGKILL', group('kill'), at);
    await waitFor(() => totalReceived() >= before + 200, 'events after the kill');
  });

  await t.test('a gateway drained: each client waits its own hint, then resumes', async () => {
    const before = totalReceived();
    const resumes = resumesOf(group('drain'));
    const at = Date.now();
    signal('gb', 'SIGTERM');
    await resumed(group('drain'), resumes, 'the drain group back');
    const closes = group('drain').map((r) => r.closes.find((c) => c[0] === 1012));
    assert.ok(closes.every((c) => c && c[2] === 'drain'), `1012 drain for each: ${JSON.stringify(closes)}`);
    summarize('gateway drain (SIGTERM)', group('drain'), at);
    await waitFor(() => !alive(pidOf('gb')), 'gb exits after its drain');
    await waitFor(() => totalReceived() >= before + 200, 'events after the drain');
  });

  await t.test('Redis SIGKILLed and restarted: nothing for the clients to do', async () => {
    const closesBefore = records.reduce((n, r) => n + r.closes.length, 0);
    const pid = signal('redis', 'SIGKILL');
    await waitFor(() => !alive(pid), 'Redis gone');
    const before = totalReceived();
    await waitFor(() => totalReceived() >= before + 150, 'events from Kafka while Redis is down');
    await libsh(`hf_redis_start "${env('HF_REDIS_PORT')}"`);
    await waitFor(async () => (await metric(env('SDK_GW_C_PORT'), 'holdfast_gateway_redis_connected')) === 1, 'gc back on Redis');
    const after = totalReceived();
    await waitFor(() => totalReceived() >= after + 150, 'events after Redis is back');
    assert.equal(records.reduce((n, r) => n + r.closes.length, 0), closesBefore, 'no client was disconnected');
  });

  await t.test('the fault proxy resets its connections: the clients come back through it', async () => {
    const resumes = resumesOf(group('proxy'));
    const at = Date.now();
    const reply = await faultProxy('reset');
    assert.match(reply, new RegExp(`connections=${PER_GROUP}\\b`), reply);
    await resumed(group('proxy'), resumes, 'the proxy group back');
    assert.ok(group('proxy').every((r) => clients[r.client].url === px), 'reconnected through the proxy');
    summarize('connection reset (fault proxy)', group('proxy'), at);
  });

  await t.test('the fault proxy stalls: the heartbeat notices, the clients resume elsewhere', async () => {
    const before = group('proxy').map((r) => r.closes.length);
    const resumes = resumesOf(group('proxy'));
    const at = Date.now();
    await faultProxy('stall');
    await waitFor(() => group('proxy').every((r, k) => r.closes.length > before[k]), 'the heartbeat to notice', 30000);
    assert.ok(group('proxy').every((r, k) => r.closes[before[k]][2] === 'heartbeat'),
      `each ended by the heartbeat: ${JSON.stringify(group('proxy').map((r) => r.closes.at(-1)))}`);
    await resumed(group('proxy'), resumes, 'the proxy group back on gc');
    assert.ok(group('proxy').every((r) => clients[r.client].url === gc));
    summarize('stalled link (fault proxy, heartbeat)', group('proxy'), at);
    await faultProxy('resume');
  });

  await t.test('tokens of 4 s were renewed in-band, never by reconnecting', () => {
    const closes = records.flatMap((r) => r.closes).filter((c) => c[0] === 4401);
    assert.deepEqual(closes, []);
    const renewals = clients.reduce((n, c) => n + c.stats.tokenRefreshes, 0);
    const seconds = (Date.now() - t0) / 1000;
    assert.ok(renewals >= clients.length * Math.floor(seconds / (TOKEN_TTL_S * 2)),
      `${renewals} renewals in ${seconds.toFixed(0)} s for ${clients.length} clients`);
    measure.token_renewals = renewals;
  });

  // The end of the stream: every channel's last acknowledged event reached
  // every client subscribed to it.
  await Promise.all(pubs.map((p) => p.stop()));
  const last = Object.assign({}, ...pubs.map((p) => p.last));
  await waitFor(() => records.every((r) => r.channels.every((ch) => r.lastSeq(ch) === last[ch])), 'every client caught up', 30000);
  measure.published = pubs.reduce((n, p) => n + p.count, 0);
  measure.delivered = totalReceived();
  measure.duplicates_dropped_by_sdk = clients.reduce((n, c) => n + c.stats.duplicates, 0);
  measure.chain_breaks = clients.reduce((n, c) => n + c.stats.chainBreaks, 0);

  await t.test('a stale epoch: recovered false, the gap reported, then the live stream', async () => {
    const c = newClient([gc], 1);
    const sub = c.subscribe('sdk:epoch', { since: { offset: 3, epoch: 'deadbeefdeadbeef' } });
    const gaps = [];
    const subscribed = [];
    sub.on('gap', (g) => gaps.push(g));
    sub.on('subscribed', (s) => subscribed.push(s));
    await waitFor(() => subscribed.length === 1, 'subscribed');
    assert.equal(subscribed[0].recovered, false);
    assert.equal(subscribed[0].wasRecovering, true);
    assert.equal(gaps.length, 1);
    assert.equal(gaps[0].reason, 'epoch_changed');
    assert.equal(gaps[0].fromEpoch, 'deadbeefdeadbeef');
    const got = [];
    sub.on('event', (e) => got.push(e));
    const p = publisher(env('SDK_INGEST_URL'), tok.publish(), ['sdk:epoch'], { name: 'epoch' });
    await waitFor(() => got.length >= 3, 'live events after the gap');
    await p.stop();
    assert.ok(got.every((e) => e.verified));
    c.close();
  });

  await t.test('history(): the channel\'s past from ingest, as the clients received it', async () => {
    const h = new HoldfastClient({ url: gc, autoConnect: false, historyUrl: env('SDK_INGEST_URL'), getToken: () => tok.subscribe(60) });
    const ch = records[0].channels[0];
    const page = await h.history(ch, { since: -1 });
    const offsets = page.events.map((e) => e.offset);
    const seen = records[0].subs[ch].events.map((e) => e[0]);
    assert.ok(seen.length > 0);
    assert.deepEqual(offsets.filter((o) => o >= seen[0] && o <= seen.at(-1)), seen);
    assert.ok(page.events.every((e, k) => k === 0 || e.prevOffset === page.events[k - 1].offset), 'chained');
  });

  for (const c of clients) c.close();
  writeFileSync(`${env('HF_RUN')}/ws.json`, JSON.stringify(records.map((r, k) => resultOf(r, clients[k]))));
  writeFileSync(env('SDK_MEASURE'), JSON.stringify(measure, null, 2));
});
