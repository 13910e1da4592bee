// @holdfast/client - the JavaScript client of Holdfast (schemas/websocket.md).
//
//   import { HoldfastClient } from '@holdfast/client';
//   const client = new HoldfastClient({ urls: [...], getToken: async () => token });
//   const sub = client.subscribe('orders:42');
//   sub.on('event', (e) => console.log(e.offset, e.data));

export { HoldfastClient, HoldfastError } from './client.js';
export { Subscription } from './subscription.js';
export { jsonCodec } from './codec.js';
export { parseCloseReason, closePolicy } from './close.js';
export { fullJitter } from './backoff.js';
