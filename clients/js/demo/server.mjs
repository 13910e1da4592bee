#!/usr/bin/env node
// server.mjs - the demo page's server, for the local stack (tools/stack.sh)
// and the browser test: what an application's back end does beside Holdfast.
//
//   GET  /              the page (index.html, demo.js, demo.css)
//   GET  /sdk/*.js      @holdfast/client's modules, as they are in clients/js/src
//   GET  /config        the gateways' URLs, ingest's URL, the channel
//   GET  /token         a subscribe token for the demo channel, short-lived
//                       (--token-ttl, 30 s) so that its in-band renewal shows
//   POST /publish       {text}: publishes to the demo channel through ingest
//                       with a publish token that never leaves this server
//
// Loopback only. Tokens are HS256 with the stack's secret (--key-file).
// Usage: node server.mjs --port 0 --gateways ws://...,ws://... --ingest http://...
//        --key-file .run/auth.secret [--ready-file F] [--token-ttl 30] [--channel demo]

import http from 'node:http';
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { readSecret, mintToken } from './token.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const sdk = join(here, '..', 'src');
const { values: opt } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    gateways: { type: 'string' },
    ingest: { type: 'string' },
    'key-file': { type: 'string' },
    'ready-file': { type: 'string' },
    'token-ttl': { type: 'string', default: '30' },
    channel: { type: 'string', default: 'demo' },
  },
});
for (const name of ['gateways', 'ingest', 'key-file']) {
  if (!opt[name]) {
    console.error(`demo server: --${name} is required`);
    process.exit(2);
  }
}
const secret = readSecret(opt['key-file']);
const ttl = Number(opt['token-ttl']);
const channel = opt.channel;
const config = { gateways: opt.gateways.split(/[ ,]+/).filter(Boolean), ingestUrl: opt.ingest, channel, tokenTtl: ttl };
let publishToken = null;
let publishTokenAt = 0;
let seq = 0;

const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };
const pages = { '/': 'index.html', '/index.html': 'index.html', '/demo.js': 'demo.js', '/demo.css': 'demo.css' };

function send(res, status, type, body) {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
  res.end(body);
}

function json(res, status, obj) {
  send(res, status, 'application/json', `${JSON.stringify(obj)}\n`);
}

function file(res, path) {
  try {
    send(res, 200, types[path.slice(path.lastIndexOf('.'))] ?? 'application/octet-stream', readFileSync(path));
  } catch {
    json(res, 404, { error: 'not found' });
  }
}

function readBody(req, max = 4096) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (d) => {
      body += d;
      if (body.length > max) reject(new Error('body too large'));
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

async function publish(res, req) {
  let text;
  try {
    text = String(JSON.parse(await readBody(req)).text ?? '').slice(0, 200);
  } catch {
    json(res, 400, { error: 'expected {"text": "..."}' });
    return;
  }
  // The publish token stays here; it is re-minted hourly.
  if (!publishToken || Date.now() - publishTokenAt > 3600e3) {
    publishToken = mintToken(secret, { sub: 'demo-server', publish: [channel], ttlSeconds: 7200 });
    publishTokenAt = Date.now();
  }
  const n = ++seq;
  const r = await fetch(`${opt.ingest}/v1/events`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${publishToken}`, 'Idempotency-Key': `demo-${process.pid}-${n}` },
    body: JSON.stringify({ channel, type: 'demo.message', data: { text, seq: n } }),
  }).catch((err) => ({ status: 502, text: async () => JSON.stringify({ error: String(err) }) }));
  send(res, r.status, 'application/json', await r.text());
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://localhost');
  try {
    if (req.method === 'GET' && pages[url.pathname]) return file(res, join(here, pages[url.pathname]));
    if (req.method === 'GET' && url.pathname.startsWith('/sdk/')) {
      const rel = normalize(url.pathname.slice(5));
      if (rel.startsWith('..') || !rel.endsWith('.js')) return json(res, 404, { error: 'not found' });
      return file(res, join(sdk, rel));
    }
    if (req.method === 'GET' && url.pathname === '/config') return json(res, 200, config);
    if (req.method === 'GET' && url.pathname === '/token') {
      const token = mintToken(secret, { sub: 'demo-page', subscribe: [channel], ttlSeconds: ttl });
      return json(res, 200, { token, ttl });
    }
    if (req.method === 'POST' && url.pathname === '/publish') return await publish(res, req);
    return json(res, 404, { error: 'not found' });
  } catch (err) {
    return json(res, 500, { error: String(err?.message ?? err) });
  }
});

server.listen(Number(opt.port), '127.0.0.1', () => {
  const { port } = server.address();
  console.log(`demo=http://127.0.0.1:${port}/`);
  if (opt['ready-file']) {
    writeFileSync(`${opt['ready-file']}.tmp`, `demo=http://127.0.0.1:${port}/\n`);
    renameSync(`${opt['ready-file']}.tmp`, opt['ready-file']);
  }
});
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections?.(); // idle keep-alive connections would hold close() open
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
