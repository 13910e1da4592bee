// msgpack.js - the msgpack encoding of the protocol (holdfast.v1.1.msgpack),
// the optional entry point '@holdfast/client/msgpack':
//
//   import { msgpackCodec } from '@holdfast/client/msgpack';
//   new HoldfastClient({ url, getToken, codec: msgpackCodec });
//
// A small msgpack reader and writer of its own (the protocol's messages are
// flat maps of strings, integers, booleans, nil and bytes), so the SDK
// still has no runtime dependency. Integers beyond 2^53 lose precision as
// JavaScript numbers do; offsets stay far below that.

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/** Encodes a value of the protocol (object, array, string, number, boolean, null, Uint8Array). */
export function encode(value) {
  const w = { buf: new Uint8Array(64), len: 0 };
  write(w, value);
  return w.buf.subarray(0, w.len);
}

function room(w, n) {
  if (w.len + n <= w.buf.length) return;
  let size = w.buf.length * 2;
  while (size < w.len + n) size *= 2;
  const next = new Uint8Array(size);
  next.set(w.buf.subarray(0, w.len));
  w.buf = next;
}

function bytes(w, ...b) {
  room(w, b.length);
  for (const x of b) w.buf[w.len++] = x;
}

function uint(w, tag, n, size) {
  room(w, size + 1);
  w.buf[w.len++] = tag;
  for (let i = size - 1; i >= 0; i--) w.buf[w.len++] = Number((BigInt(n) >> BigInt(8 * i)) & 255n);
}

function writeInt(w, n) {
  if (n >= 0) {
    if (n < 128) bytes(w, n);
    else if (n < 256) bytes(w, 0xcc, n);
    else if (n < 65536) uint(w, 0xcd, n, 2);
    else if (n < 4294967296) uint(w, 0xce, n, 4);
    else uint(w, 0xcf, n, 8);
  } else if (n >= -32) {
    bytes(w, n & 0xff);
  } else if (n >= -128) {
    bytes(w, 0xd0, n & 0xff);
  } else if (n >= -32768) {
    uint(w, 0xd1, n & 0xffff, 2);
  } else if (n >= -2147483648) {
    uint(w, 0xd2, (n >>> 0) & 0xffffffff, 4);
  } else {
    uint(w, 0xd3, BigInt.asUintN(64, BigInt(n)), 8);
  }
}

function writeLength(w, n, fix, fixMax, t8, t16, t32) {
  if (n <= fixMax && fix !== null) bytes(w, fix | n);
  else if (n < 256 && t8 !== null) bytes(w, t8, n);
  else if (n < 65536) uint(w, t16, n, 2);
  else uint(w, t32, n, 4);
}

function write(w, v) {
  if (v === null || v === undefined) bytes(w, 0xc0);
  else if (v === false) bytes(w, 0xc2);
  else if (v === true) bytes(w, 0xc3);
  else if (typeof v === 'number') {
    if (Number.isSafeInteger(v)) writeInt(w, v);
    else {
      room(w, 9);
      w.buf[w.len++] = 0xcb;
      new DataView(w.buf.buffer, w.buf.byteOffset + w.len, 8).setFloat64(0, v);
      w.len += 8;
    }
  } else if (typeof v === 'string') {
    const s = utf8Encoder.encode(v);
    writeLength(w, s.length, 0xa0, 31, 0xd9, 0xda, 0xdb);
    room(w, s.length);
    w.buf.set(s, w.len);
    w.len += s.length;
  } else if (v instanceof Uint8Array) {
    writeLength(w, v.length, null, -1, 0xc4, 0xc5, 0xc6);
    room(w, v.length);
    w.buf.set(v, w.len);
    w.len += v.length;
  } else if (Array.isArray(v)) {
    writeLength(w, v.length, 0x90, 15, null, 0xdc, 0xdd);
    for (const x of v) write(w, x);
  } else if (typeof v === 'object') {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined);
    writeLength(w, keys.length, 0x80, 15, null, 0xde, 0xdf);
    for (const k of keys) {
      write(w, k);
      write(w, v[k]);
    }
  } else {
    throw new TypeError(`msgpack: cannot encode a ${typeof v}`);
  }
}

/** Decodes one msgpack value filling all of data (Uint8Array or ArrayBuffer). */
export function decode(data) {
  const buf = data instanceof Uint8Array ? data : new Uint8Array(data);
  const r = { buf, view: new DataView(buf.buffer, buf.byteOffset, buf.byteLength), pos: 0 };
  const v = read(r, 0);
  if (r.pos !== buf.length) throw new RangeError('msgpack: bytes after the value');
  return v;
}

function need(r, n) {
  if (r.pos + n > r.buf.length) throw new RangeError('msgpack: truncated');
}

function readUint(r, size) {
  need(r, size);
  const p = r.pos;
  r.pos += size;
  if (size === 1) return r.view.getUint8(p);
  if (size === 2) return r.view.getUint16(p);
  if (size === 4) return r.view.getUint32(p);
  return Number(r.view.getBigUint64(p));
}

function readBytes(r, n) {
  need(r, n);
  const out = r.buf.subarray(r.pos, r.pos + n);
  r.pos += n;
  return out;
}

function readMap(r, n, depth) {
  const out = {};
  for (let i = 0; i < n; i++) {
    const k = read(r, depth + 1);
    out[String(k)] = read(r, depth + 1);
  }
  return out;
}

function readArray(r, n, depth) {
  // Each element takes a byte at least: a hostile count cannot allocate.
  need(r, n);
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = read(r, depth + 1);
  return out;
}

function read(r, depth) {
  if (depth > 64) throw new RangeError('msgpack: nested too deep');
  const c = readUint(r, 1);
  if (c < 0x80) return c;
  if (c < 0x90) return readMap(r, c & 0x0f, depth);
  if (c < 0xa0) return readArray(r, c & 0x0f, depth);
  if (c < 0xc0) return utf8Decoder.decode(readBytes(r, c & 0x1f));
  if (c >= 0xe0) return c - 256;
  switch (c) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xc4:
    case 0xc5:
    case 0xc6:
      return readBytes(r, readUint(r, 1 << (c - 0xc4))).slice();
    case 0xc7:
    case 0xc8:
    case 0xc9: {
      const n = readUint(r, 1 << (c - 0xc7));
      readBytes(r, 1 + n); // an extension type: not used by the protocol
      return null;
    }
    case 0xca:
      need(r, 4);
      r.pos += 4;
      return r.view.getFloat32(r.pos - 4);
    case 0xcb:
      need(r, 8);
      r.pos += 8;
      return r.view.getFloat64(r.pos - 8);
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
      return readUint(r, 1 << (c - 0xcc));
    case 0xd0:
      need(r, 1);
      return r.view.getInt8(r.pos++);
    case 0xd1:
      need(r, 2);
      r.pos += 2;
      return r.view.getInt16(r.pos - 2);
    case 0xd2:
      need(r, 4);
      r.pos += 4;
      return r.view.getInt32(r.pos - 4);
    case 0xd3:
      need(r, 8);
      r.pos += 8;
      return Number(r.view.getBigInt64(r.pos - 8));
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
      readBytes(r, 1 + (1 << (c - 0xd4)));
      return null;
    case 0xd9:
    case 0xda:
    case 0xdb:
      return utf8Decoder.decode(readBytes(r, readUint(r, 1 << (c - 0xd9))));
    case 0xdc:
    case 0xdd:
      return readArray(r, readUint(r, c === 0xdc ? 2 : 4), depth);
    case 0xde:
    case 0xdf: {
      const n = readUint(r, c === 0xde ? 2 : 4);
      need(r, n * 2);
      return readMap(r, n, depth);
    }
    default:
      throw new RangeError(`msgpack: unknown byte 0x${c.toString(16)}`);
  }
}

export const msgpackCodec = {
  name: 'msgpack',
  protocols: ['holdfast.v1.1.msgpack', 'holdfast.v1.msgpack'],
  binary: true,
  encode,
  decode(data) {
    if (typeof data === 'string') return null;
    const msg = decode(data);
    return msg && typeof msg === 'object' && !Array.isArray(msg) && !(msg instanceof Uint8Array)
      ? msg
      : null;
  },
  /** data is always bytes under msgpack; JSON payloads are parsed, as over JSON. */
  eventData(msg) {
    const ct = msg.content_type || 'application/json';
    if (ct === 'application/json' && msg.data instanceof Uint8Array) {
      return JSON.parse(utf8Decoder.decode(msg.data));
    }
    return msg.data;
  },
};
