// history.js - a channel's past over ingest's HTTP API
// (GET /v1/channels/{channel}/events; schemas/openapi.yaml).

import { base64ToBytes, toEvent } from './codec.js';

const PAGE_MAX = 1000;

/**
 * Events of channel with offset > since (and <= until, when given), in
 * order, paging as needed. Resolves to {events, epoch, complete, more}:
 * complete false when since belongs to another epoch (the page then starts
 * at the current epoch's first event), more true when maxEvents cut it.
 */
export async function fetchHistory({ baseUrl, token, fetchImpl, channel, since = -1, epoch,
  until = Infinity, maxEvents = 10000, signal }) {
  if (!baseUrl) throw new Error('history needs the ingest URL (option historyUrl)');
  const doFetch = fetchImpl ?? globalThis.fetch;
  const events = [];
  let cursor = since;
  let pageEpoch = epoch ?? null;
  let complete = true;
  let more = false;
  for (let page = 0; page < 1000; page++) {
    const limit = Math.min(PAGE_MAX, maxEvents - events.length);
    if (limit <= 0) {
      more = true;
      break;
    }
    const q = new URLSearchParams({ since: String(cursor), limit: String(limit) });
    if (pageEpoch) q.set('epoch', pageEpoch);
    const url = `${baseUrl.replace(/\/+$/, '')}/v1/channels/${encodeURIComponent(channel)}/events?${q}`;
    const res = await doFetch(url, { headers: { Authorization: `Bearer ${token}` }, signal });
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      const err = new Error(`history: ${res.status} ${body?.error?.message ?? res.statusText}`);
      err.code = body?.error?.code ?? `http_${res.status}`;
      err.status = res.status;
      err.retryAfterMs = Number(res.headers.get('Retry-After')) * 1000 || null;
      throw err;
    }
    if (body.complete === false) complete = false;
    pageEpoch = body.epoch ?? pageEpoch;
    let reached = false;
    for (const m of body.events ?? []) {
      if (m.offset > until) {
        reached = true;
        break;
      }
      const data = m.encoding === 'base64' ? base64ToBytes(m.data) : m.data;
      events.push(toEvent(m, data));
    }
    if (reached || !body.more || body.next_since === undefined || body.next_since <= cursor) break;
    cursor = body.next_since;
    if (cursor >= until) break;
  }
  return { events, epoch: pageEpoch, complete, more };
}
