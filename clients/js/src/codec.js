// codec.js - the JSON encoding of the protocol (holdfast.v1.1.json), and
// what both codecs share: turning a decoded `event` into the SDK's event.

export const jsonCodec = {
  name: 'json',
  protocols: ['holdfast.v1.1.json', 'holdfast.v1.json'],
  binary: false,
  encode: (msg) => JSON.stringify(msg),
  /** A frame's data (a string for text frames) to a message, or null. */
  decode(data) {
    if (typeof data !== 'string') return null;
    const msg = JSON.parse(data);
    return msg && typeof msg === 'object' && !Array.isArray(msg) ? msg : null;
  },
  /** The payload of an event message: JSON as is; other types as bytes. */
  eventData(msg) {
    if (msg.encoding === 'base64' && typeof msg.data === 'string') return base64ToBytes(msg.data);
    return msg.data;
  },
};

export function base64ToBytes(s) {
  if (typeof atob === 'function') {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  return new Uint8Array(Buffer.from(s, 'base64'));
}

/** The SDK's event, from a decoded `event` message (WebSocket or history). */
export function toEvent(msg, data) {
  return {
    channel: msg.channel,
    id: msg.id,
    partition: msg.partition,
    offset: msg.offset,
    prevOffset: msg.prev_offset ?? null,
    epoch: msg.epoch ?? null,
    type: msg.event_type ?? null,
    ts: typeof msg.ts_us === 'number' ? Math.floor(msg.ts_us / 1000) : null,
    tsUs: msg.ts_us ?? null,
    contentType: msg.content_type ?? 'application/json',
    data,
  };
}
