// demo.js - the demo page: one channel through @holdfast/client, with
// everything the client does made visible (tools/stack.sh serves it; the
// browser test drives it). window.__demo exposes what the page saw.

import { HoldfastClient } from '/sdk/index.js';

const $ = (id) => document.getElementById(id);
const cfg = await (await fetch('/config')).json();
const demo = (window.__demo = {
  events: [], banners: [], history: { state: 'loading' },
  counters: { events: 0, verified: 0, duplicates: 0, gaps: 0, reconnects: 0, renewals: 0 },
});

const client = new HoldfastClient({
  urls: cfg.gateways,
  getToken: async () => (await (await fetch('/token')).json()).token,
  historyUrl: cfg.ingestUrl,
  storage: 'localStorage', // a reload resumes where this page stopped
});
demo.client = client;
const sub = client.subscribe(cfg.channel, { recover: 'history' });
demo.sub = sub;
demo.subscribed = [];
$('channel').textContent = cfg.channel;

// ---- what happened -----------------------------------------------------------

function banner(text, kind = '') {
  demo.banners.push({ text, kind, at: Date.now() });
  const li = document.createElement('li');
  li.className = kind;
  const time = document.createElement('time');
  time.textContent = new Date().toLocaleTimeString();
  li.append(time, text);
  $('banners').prepend(li);
}

function count(name, by = 1) {
  demo.counters[name] += by;
  $(`c-${name}`).textContent = demo.counters[name];
}

// ---- connection state, with the retry countdown ----------------------------------

let retryAt = 0;
let tokenExp = null;
client.on('state', (s) => {
  const pill = $('conn');
  pill.className = `pill ${s.to}`;
  pill.dataset.state = s.to;
  retryAt = s.to === 'disconnected' && s.retryInMs !== undefined ? Date.now() + s.retryInMs : 0;
  if (s.to === 'disconnected' && s.code !== undefined) {
    const why = s.why ? ` ${s.why}` : '';
    banner(`connection lost (${s.code}${why}); retrying in ${s.retryInMs} ms`, s.why === 'drain' ? 'warn' : 'bad');
  }
  if (s.to === 'connected') {
    if (client.stats.connects > 1) count('reconnects');
    $('gateway').textContent = s.gateway ?? new URL(s.url).host;
    $('protocol').textContent = s.protocol;
    tokenExp = client.welcome?.exp ?? null;
    banner(`connected to gateway ${s.gateway ?? s.url} (protocol ${s.protocol})`, 'ok');
  }
  if (s.to === 'failed') banner(`stopped: ${s.reason}`, 'bad');
  render();
});
client.on('token', (t) => {
  tokenExp = t.exp;
  count('renewals');
});
client.on('error', (e) => e.fatal && banner(`error ${e.code}: ${e.message}`, 'bad'));

function render() {
  const state = client.state;
  let text = state;
  if (state === 'disconnected' && retryAt) {
    text = `reconnecting in ${(Math.max(0, retryAt - Date.now()) / 1000).toFixed(1)} s`;
  }
  $('state').textContent = text;
  $('token').textContent = tokenExp && state === 'connected' ? `${Math.max(0, Math.round(tokenExp - Date.now() / 1000))} s` : '-';
  const p = sub.position;
  $('position').textContent = p ? `${p.offset} @ ${p.epoch ?? '-'}` : '-';
}
setInterval(render, 100);

// ---- the channel ---------------------------------------------------------------------

sub.on('subscribed', (s) => {
  demo.subscribed.push([s.offset, s.epoch, s.recovered]);
  if (!s.wasRecovering) banner(`subscribed to ${cfg.channel} at offset ${s.offset} (partition ${s.partition})`, 'ok');
  else if (s.recovered) banner(`resumed at ${s.offset}, recovered`, 'ok');
  else banner(`resumed at ${s.offset}, not recovered`, 'warn');
});
sub.on('gap', (g) => {
  count('gaps');
  banner(`gap: offsets ${g.from}..${g.to} could not be replayed (${g.reason})`, 'bad');
});
sub.on('recovered', (r) => banner(`gap ${r.from}..${r.to} filled from history`, 'ok'));
sub.on('duplicate', () => count('duplicates'));
sub.on('event', (e) => {
  const gateway = client.welcome?.gateway ?? client.url;
  const ageMs = e.tsUs ? (Date.now() * 1000 - e.tsUs) / 1000 : null;
  const row = { offset: e.offset, prev: e.prevOffset, verified: e.verified, seq: e.data?.seq ?? null, text: e.data?.text ?? '', gateway, ageMs };
  demo.events.push(row);
  count('events');
  if (e.verified) count('verified');
  const tr = document.createElement('tr');
  tr.className = 'new';
  // prev_offset is null only for the first event replayed after a resume.
  const link = e.verified ? '\u2713 linked' : e.prevOffset === null ? 'resume seam' : '\u2717 broken';
  const cells = [e.offset, e.prevOffset ?? '-', link, ageMs === null ? '-' : `${ageMs.toFixed(1)} ms`,
    row.seq ?? '-', row.text, gateway];
  cells.forEach((v, k) => {
    const td = document.createElement('td');
    td.textContent = v;
    if (k === 2) td.className = `link ${e.verified ? 'ok' : 'no'}`;
    tr.append(td);
  });
  $('feed').prepend(tr);
  while ($('feed').rows.length > 200) $('feed').lastElementChild.remove();
});

// ---- history over HTTP (ingest, CORS) ------------------------------------------------------

try {
  const page = await client.history(cfg.channel, { since: -1, maxEvents: 1000 });
  const last = page.events.slice(-5).map((e) => e.offset).join(', ');
  demo.history = { state: 'ok', count: page.events.length };
  $('history').textContent = `${page.events.length} events in the channel's history${last ? `; the latest at offsets ${last}` : ''}`;
} catch (err) {
  demo.history = { state: 'error', message: String(err?.message ?? err) };
  $('history').textContent = `history unavailable: ${err?.message ?? err}`;
  $('history').classList.add('error');
}

// ---- buttons ---------------------------------------------------------------------------------

async function publish(text) {
  const r = await fetch('/publish', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ text }) });
  if (!r.ok) banner(`publish failed: HTTP ${r.status}`, 'bad');
}
$('publish').onclick = () => publish($('text').value);
$('burst').onclick = async () => {
  for (let k = 1; k <= 10; k++) await publish(`${$('text').value} #${k}`);
};
$('drop').onclick = () => {
  banner('connection dropped by the page', 'warn');
  client.reconnect();
};
