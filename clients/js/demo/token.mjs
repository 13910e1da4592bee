// token.mjs - mints HS256 tokens with the local stack's secret, as an
// application's back end would (the claims are SECURITY.md's). Used by the
// demo server and the SDK's tests; never shipped to browsers.

import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** The HS256 secret of a key file, as the services read it (without the trailing newline). */
export function readSecret(path) {
  return readFileSync(path).toString('latin1').replace(/[\r\n]+$/, '');
}

/** A JWT for sub with the given claims (subscribe, publish patterns), valid ttlSeconds. */
export function mintToken(secret, { sub, subscribe, publish, ttlSeconds }) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub, iat: now, exp: now + ttlSeconds };
  if (subscribe) claims.subscribe = subscribe;
  if (publish) claims.publish = publish;
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  const sig = createHmac('sha256', Buffer.from(secret, 'latin1')).update(body).digest('base64url');
  return `${body}.${sig}`;
}
