// support.js - what the stack tests need around the real services that
// tests/integration/078_sdk_js.sh started (tests/support/lib.sh): tokens,
// a numbered publisher through ingest, recording SDK clients in the shape
// tests/support/ws_verify.py checks, and the faults (signals by PID, the
// fault proxy's control port, Redis restarted by lib.sh itself).

import { execFile } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import net from 'node:net';

import { readSecret, mintToken } from '../../demo/token.mjs';

export const env = (name) => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is not set: run this through tests/integration/078_sdk_js.sh`);
  return v;
};

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls cond until true; throws after timeoutMs (a bound, not a measurement). */
export async function waitFor(cond, what, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

export function tokens() {
  const secret = readSecret(env('HOLDFAST_AUTH_KEY_FILE'));
  return {
    subscribe: (ttlSeconds, subscribe = ['sdk:*'], sub = 'sdk-test') => mintToken(secret, { sub, subscribe, ttlSeconds }),
    publish: () => mintToken(secret, { sub: 'sdk-publisher', publish: ['*'], ttlSeconds: 3600 }),
  };
}

// ---- processes ----------------------------------------------------------------

export function pidOf(part) {
  const file = `${env('HF_RUN')}/${part}.pid`;
  return existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) : null;
}

export function alive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export function signal(part, sig) {
  const pid = pidOf(part);
  if (!pid) throw new Error(`no pid for ${part}`);
  process.kill(pid, sig);
  return pid;
}

/** Runs a lib.sh function in a shell of its own (what it starts outlives that shell). */
export function libsh(script) {
  return new Promise((resolve, reject) => {
    execFile('bash', ['-c', `set -e; source "$HF_SUPPORT/lib.sh"; hf_init "$HF_RUN"; ${script}`],
      { env: process.env, timeout: 60000 }, (err, stdout, stderr) => (err ? reject(new Error(`${script}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

/** One command to holdfast-faultproxy's control port; its reply line. */
export function faultProxy(command) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(env('SDK_PROXY_CONTROL')), '127.0.0.1');
    let reply = '';
    sock.setTimeout(5000, () => sock.destroy(new Error('fault proxy: no reply')));
    sock.on('data', (d) => {
      reply += d;
      if (reply.includes('\n')) {
        sock.end();
        if (reply.startsWith('ok')) resolve(reply.trim());
        else reject(new Error(`fault proxy: ${reply.trim()}`));
      }
    });
    sock.on('error', reject);
    sock.write(`${command}\n`);
  });
}

export async function metric(port, name) {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  const line = (await res.text()).split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

// ---- publishing ---------------------------------------------------------------------

/**
 * Publishes {"seq": n} events one POST at a time, round-robin over
 * channels, each with its own Idempotency-Key and retried with it, until
 * stop() is called; last[channel] is the seq last acknowledged there.
 */
export function publisher(ingestUrl, token, channels, { pauseMs = 15, name = 'p' } = {}) {
  const last = Object.fromEntries(channels.map((c) => [c, 0]));
  let stopped = false;
  let seq = 0;
  const done = (async () => {
    while (!stopped) {
      seq++;
      const channel = channels[seq % channels.length];
      const body = JSON.stringify({ channel, data: { seq } });
      for (let tries = 0; ; tries++) {
        try {
          const res = await fetch(`${ingestUrl}/v1/events`, {
            method: 'POST', body,
            headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}`, 'Idempotency-Key': `${name}-${seq}` },
          });
          await res.arrayBuffer();
          if (res.status === 201 || res.status === 200) break;
          if (res.status !== 503) throw new Error(`publish: HTTP ${res.status}`);
        } catch (err) {
          if (tries > 50) throw err;
        }
        await sleep(50);
      }
      last[channel] = seq;
      await sleep(pauseMs);
    }
  })();
  return { last, stop: () => { stopped = true; return done; }, get count() { return seq; } };
}

// ---- recording clients ----------------------------------------------------------------

/**
 * Subscribes client to channels and records, per channel, every
 * subscribed [offset, epoch, recovered] and every delivered event
 * [offset, prev_offset, seq]: ws_verify.py's input. Also when each close
 * happened and when every subscription was back (resume times).
 */
export function record(id, client, channels) {
  const rec = {
    client: id, slow: false, finished: false, errors: [], closes: [], channels,
    subs: Object.fromEntries(channels.map((c) => [c, { subscribed: [], events: [] }])),
    resumes: [], // {why, code, ms (from the close seen), hintMs (a drain's), doneAt}
  };
  let down = null; // the close being resumed from
  let pending = new Set();
  client.on('state', (s) => {
    if (s.to === 'disconnected' && s.code !== undefined && s.code !== 1000) {
      rec.closes.push([s.code, s.reason ?? '', s.why ?? '']);
      if (!down) down = { at: Date.now(), code: s.code, why: s.why ?? '', hintMs: s.why === 'drain' ? s.retryInMs : 0 };
      pending = new Set(channels);
    }
  });
  client.on('error', (e) => rec.errors.push({ code: e.code, message: e.message, fatal: e.fatal }));
  const subs = channels.map((ch) => {
    const sub = client.subscribe(ch);
    sub.on('subscribed', (s) => {
      rec.subs[ch].subscribed.push([s.offset, s.epoch, s.recovered]);
      if (down && s.resumed) {
        pending.delete(ch);
        if (pending.size === 0) {
          rec.resumes.push({ why: down.why, code: down.code, ms: Date.now() - down.at, hintMs: down.hintMs, doneAt: Date.now() });
          down = null;
        }
      }
    });
    sub.on('event', (e) => rec.subs[ch].events.push([e.offset, e.prevOffset, e.data?.seq ?? null]));
    sub.on('gap', (g) => rec.errors.push({ code: 'gap', message: JSON.stringify(g) }));
    sub.on('error', (e) => rec.errors.push({ code: e.code, message: e.message, fatal: e.fatal }));
    return sub;
  });
  rec.allSubscribed = () => subs.every((s) => s.state === 'subscribed');
  rec.received = () => channels.reduce((n, ch) => n + rec.subs[ch].events.length, 0);
  rec.lastSeq = (ch) => rec.subs[ch].events.at(-1)?.[2] ?? 0;
  rec.subscriptions = subs;
  rec.resuming = () => down !== null;
  return rec;
}

/** The part of a record ws_verify.py reads (plus the SDK's own counters). */
export function resultOf(rec, client) {
  const { allSubscribed, received, lastSeq, subscriptions, resuming, ...out } = rec;
  out.finished = true;
  out.sdk = { stats: client.stats, duplicatesDropped: subscriptions.reduce((n, s) => n + s.stats.duplicates, 0) };
  return out;
}
