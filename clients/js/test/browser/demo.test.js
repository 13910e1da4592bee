// demo.test.js - the demo page in Debian's Chromium, driven by
// playwright-core (079_sdk_browser.sh starts the services and the demo
// server): the page connects, loads the channel's history from ingest
// (CORS), publishes and sees its event; the gateway it is on is SIGKILLed
// while it publishes ten more; it resumes on the other, recovered, and
// gets every event. The same page from an origin ingest does not allow
// cannot read history. A screenshot of the page is saved.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const env = (name) => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is not set: run this through tests/integration/079_sdk_browser.sh`);
  return v;
};
const run = env('HF_RUN');
const demoUrl = env('SDK_DEMO_URL');

// Debian's Chromium, quiet: nothing it would fetch on its own can reach
// out here, and trying floods the closed network.
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const demoState = (page) => page.evaluate(() => {
  const d = window.__demo;
  return {
    state: d.client.state, gateway: d.client.welcome?.gateway ?? null, events: d.events,
    banners: d.banners.map((b) => b.text), subscribed: d.subscribed, history: d.history, counters: d.counters,
  };
});

/** Publishes through the demo server, as the page's button does. */
async function publish(text) {
  const r = await fetch(new URL('/publish', demoUrl), { method: 'POST', body: JSON.stringify({ text }) });
  assert.equal(r.status, 201, await r.text());
}

test('the demo page in Chromium: publish, a gateway SIGKILLed, resumed elsewhere with nothing lost', { timeout: 90000 }, async (t) => {
  for (const k of [1, 2, 3]) await publish(`history #${k}`); // what the page finds in history
  const profile = mkdtempSync(join(tmpdir(), 'holdfast-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: env('SDK_CHROMIUM'), headless: true, args: ARGS, viewport: { width: 1280, height: 980 },
  });
  const pageErrors = [];
  try {
    const page = await ctx.newPage();
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(demoUrl);
    await page.waitForFunction(() => window.__demo?.client?.state === 'connected', null, { timeout: 20000 });
    await page.waitForFunction(() => window.__demo.history.state !== 'loading', null, { timeout: 20000 });
    let s = await demoState(page);
    assert.equal(s.history.state, 'ok', `history from ingest through CORS: ${JSON.stringify(s.history)}`);
    assert.equal(s.history.count, 3, 'the events published before the page opened');
    assert.match(await page.textContent('#protocol'), /^1\.1$/);

    await page.fill('#text', 'before the kill');
    await page.click('#publish');
    await page.waitForFunction(() => window.__demo.events.some((e) => e.text === 'before the kill'), null, { timeout: 20000 });
    await page.waitForSelector('#feed tr');

    s = await demoState(page);
    const victim = s.gateway;
    assert.ok(['ga', 'gb'].includes(victim), `the page names its gateway: ${victim}`);
    const pid = Number(readFileSync(join(run, `${victim}.pid`), 'utf8'));
    process.kill(pid, 'SIGKILL');
    await page.fill('#text', 'during the outage');
    await page.click('#burst'); // ten events, published while the page reconnects
    await page.waitForFunction((v) => window.__demo.client.state === 'connected' && window.__demo.client.welcome?.gateway !== v,
      victim, { timeout: 30000 });
    await page.waitForFunction(() => window.__demo.banners.some((b) => /^resumed at \d+, recovered$/.test(b.text)), null, { timeout: 30000 });
    await page.waitForFunction(() => window.__demo.events.filter((e) => e.text.startsWith('during the outage')).length === 10,
      null, { timeout: 30000 });
    await page.fill('#text', 'after the resume');
    await page.click('#publish');
    await page.waitForFunction(() => window.__demo.events.some((e) => e.text === 'after the resume'), null, { timeout: 20000 });

    s = await demoState(page);
    const texts = s.events.map((e) => e.text);
    assert.deepEqual(texts, ['before the kill', ...Array.from({ length: 10 }, (_, k) => `during the outage #${k + 1}`), 'after the resume']);
    // A resume replayed from Kafka starts with prev_offset null (the
    // gateway does not know it there): the one link that cannot be checked.
    assert.ok(s.events.every((e) => e.verified || e.prev === null), 'every prev_offset link verified in the page');
    assert.ok(s.events.filter((e) => !e.verified).length <= 1);
    assert.ok(s.banners.some((b) => /^connection lost \(1006/.test(b)), 'the cut is shown');
    assert.notEqual(s.gateway, victim);
    assert.equal(s.counters.gaps, 0);

    // Ingest allows the demo's origin only: the same page served from
    // another origin (localhost) may not read its answers.
    const other = await ctx.newPage();
    other.on('pageerror', (e) => pageErrors.push(String(e)));
    await other.goto(demoUrl.replace('127.0.0.1', 'localhost'));
    // (until the page has set its state up, there is nothing to compare)
    await other.waitForFunction(() => {
        const state = window.__demo?.history?.state;
        return state !== undefined && state !== 'loading';
    }, null, { timeout: 20000 });
    const refused = await other.evaluate(() => window.__demo.history);
    assert.equal(refused.state, 'error', `another origin's history: ${JSON.stringify(refused)}`);
    await other.close();

    await page.waitForFunction(() => window.__demo.counters.renewals >= 1, null, { timeout: 20000 });
    await page.bringToFront();
    const shot = join(run, 'demo.png');
    await page.screenshot({ path: shot, fullPage: false });
    if (process.env.SDK_SCREENSHOT) copyFileSync(shot, process.env.SDK_SCREENSHOT);
    const png = readFileSync(shot);
    assert.ok(png.length > 10000 && png.subarray(1, 4).toString() === 'PNG', 'a screenshot');

    s = await demoState(page);
    t.diagnostic(`resumed on ${s.gateway} after ${victim} was killed; ${s.events.length} events, ` +
      `${s.counters.verified} links verified, ${s.counters.renewals} token renewals`);

    // A reload resumes from the position the page kept in localStorage.
    const lastOffset = s.events.at(-1).offset;
    await page.reload();
    await page.waitForFunction(() => window.__demo?.subscribed?.length === 1, null, { timeout: 20000 });
    const after = await demoState(page);
    assert.equal(after.subscribed[0][0], lastOffset, 'resumed at the last offset it had shown');
    assert.equal(after.subscribed[0][2], true, 'recovered');
    await publish('after the reload');
    await page.waitForFunction(() => window.__demo.events.some((e) => e.text === 'after the reload'), null, { timeout: 20000 });
    const reloaded = await demoState(page);
    assert.deepEqual(reloaded.events.map((e) => e.text), ['after the reload'], 'nothing twice');

    // What the page received (both loads), for ws_verify.py against PostgreSQL.
    writeFileSync(join(run, 'ws.json'), JSON.stringify([{
      client: 'chromium', slow: false, finished: true, errors: [], channels: ['demo'],
      closes: s.banners.filter((b) => b.startsWith('connection lost')).map((b) => [Number(/\((\d+)/.exec(b)[1]), b]),
      subs: { demo: {
        subscribed: [...s.subscribed, ...reloaded.subscribed],
        events: [...s.events, ...reloaded.events].map((e) => [e.offset, e.prev, e.seq]),
      } },
    }]));
  } finally {
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
  }
  assert.deepEqual(pageErrors, []);
});
