// Types of '@holdfast/client/msgpack' (src/msgpack.js).
import type { Codec } from './index.js';

/** The holdfast.v1.1.msgpack subprotocol: binary frames, a little smaller and faster to parse. */
export const msgpackCodec: Codec;
export function encode(value: unknown): Uint8Array;
export function decode(data: ArrayBuffer | Uint8Array): unknown;
