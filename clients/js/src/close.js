// close.js - what a close from the gateway means and what to do about it
// (schemas/websocket.md, "Close codes").

const REASON = /^([a-z0-9_:]+)(?: retry_after_ms=([0-9]+))?: ([\s\S]*)$/;

/**
 * Splits a close reason "CODE[ retry_after_ms=N]: text" into its parts.
 * A reason without a code (a proxy, the browser, an older gateway) gives
 * why "" and the whole reason as text.
 */
export function parseCloseReason(reason) {
  const m = REASON.exec(reason || '');
  if (!m) return { why: '', retryAfterMs: null, text: reason || '' };
  return { why: m[1], retryAfterMs: m[2] === undefined ? null : Number(m[2]), text: m[3] };
}

/**
 * The client's policy for a close it did not ask for: 'final' (the same
 * connection would fail the same way: stop and report), 'token' (fetch a
 * fresh token, then reconnect) or 'retry' (reconnect after backoff, or
 * after the server's retry_after_ms).
 */
export function closePolicy(code) {
  if (code === 1003 || code === 1007 || code === 1009) return 'final';
  if (code === 4401) return 'token';
  return 'retry';
}
