// parts.test.js - the SDK's pure parts: close reasons, the retry policy,
// full-jitter backoff, the msgpack codec.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { parseCloseReason, closePolicy, fullJitter } from '../src/index.js';
import { encode, decode } from '../src/msgpack.js';

test('close reasons: code, retry_after_ms, text', () => {
  assert.deepEqual(parseCloseReason('drain retry_after_ms=2317: gateway restarting: resume elsewhere'),
    { why: 'drain', retryAfterMs: 2317, text: 'gateway restarting: resume elsewhere' });
  assert.deepEqual(parseCloseReason('limit:connections_per_subject retry_after_ms=5000: too many'),
    { why: 'limit:connections_per_subject', retryAfterMs: 5000, text: 'too many' });
  assert.deepEqual(parseCloseReason('token_expired: unauthorized: token expired'),
    { why: 'token_expired', retryAfterMs: null, text: 'unauthorized: token expired' });
  assert.equal(parseCloseReason('gateway restarting: resume elsewhere').why, ''); // 1.0's text
  assert.deepEqual(parseCloseReason('Going away'), { why: '', retryAfterMs: null, text: 'Going away' });
  assert.deepEqual(parseCloseReason(''), { why: '', retryAfterMs: null, text: '' });
  assert.deepEqual(parseCloseReason(undefined).why, '');
});

test('close policy: frame errors final, 4401 token, the rest retried', () => {
  for (const code of [1003, 1007, 1009]) assert.equal(closePolicy(code), 'final');
  assert.equal(closePolicy(4401), 'token');
  for (const code of [1000, 1001, 1006, 1008, 1011, 1012, 4001, 4000]) assert.equal(closePolicy(code), 'retry');
});

test('full jitter: within [0, min(cap, base * 2^attempt)), spread over it', () => {
  assert.equal(fullJitter(0, 500, 30000, () => 0), 0);
  assert.equal(fullJitter(0, 500, 30000, () => 0.999999), 499);
  assert.equal(fullJitter(3, 500, 30000, () => 0.5), 2000);
  assert.equal(fullJitter(20, 500, 30000, () => 0.5), 15000);
  assert.equal(fullJitter(5000, 500, 30000, () => 0.5), 15000);
  const seen = new Set();
  for (let i = 0; i < 200; i++) {
    const d = fullJitter(2, 100, 30000);
    assert.ok(d >= 0 && d < 400);
    seen.add(Math.floor(d / 100));
  }
  assert.equal(seen.size, 4, 'every quarter of the range drawn');
});

test('msgpack: round trips of the protocol\'s values, every width', () => {
  const values = [
    null, true, false, 0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1,
    -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 53) + 1, 1.5, -0.25,
    '', 'a', 'é', 'x'.repeat(31), 'x'.repeat(32), 'x'.repeat(255), 'x'.repeat(256), 'y'.repeat(70000),
    new Uint8Array([]), new Uint8Array([1, 2, 3]), new Uint8Array(300), new Uint8Array(70000),
    [], [1, [2, [3]]], new Array(20).fill(1), { a: 1, b: { c: 'd' } },
    Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])),
  ];
  for (const v of values) assert.deepEqual(decode(encode(v)), v, JSON.stringify(v)?.slice(0, 40));
});

test('msgpack: hostile or broken input is refused, never a huge allocation', () => {
  assert.throws(() => decode(new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff])), /truncated/);
  assert.throws(() => decode(new Uint8Array([0xdf, 0xff, 0xff, 0xff, 0xff])), /truncated/);
  assert.throws(() => decode(new Uint8Array([0xa5, 0x61])), /truncated/);
  assert.throws(() => decode(new Uint8Array([0x01, 0x02])), /bytes after/);
  assert.throws(() => decode(new Uint8Array([0xc1])), /unknown/);
  assert.throws(() => decode(new Uint8Array([0xa2, 0xc3, 0x28])), TypeError); // not UTF-8
  const deep = new Uint8Array(200).fill(0x91);
  assert.throws(() => decode(deep), /deep|truncated/);
});
