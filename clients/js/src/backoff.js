// backoff.js - full-jitter exponential backoff: a delay drawn uniformly from
// 0 to min(cap, base * 2^attempt), so that clients cut off together do not
// come back together.

export function fullJitter(attempt, baseMs, capMs, random = Math.random) {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
