// usage.ts - the README's examples, type-checked against index.d.ts and
// msgpack.d.ts (tsc -p test/types): the declarations must describe the
// API as documented.
import { HoldfastClient, HoldfastError, type HoldfastEvent, type Position } from '@holdfast/client';
import { msgpackCodec } from '@holdfast/client/msgpack';

const client = new HoldfastClient({
  urls: ['ws://127.0.0.1:8090/v1/ws', 'ws://127.0.0.1:8091/v1/ws'],
  getToken: async ({ reason }) => (await fetch(`/token?why=${reason}`)).text(),
  codec: msgpackCodec,
  historyUrl: 'http://127.0.0.1:8080',
  storage: 'localStorage',
});
client.on('state', ({ from, to, code, reason, retryInMs, gateway }) => {
  const s: string = `${from} -> ${to} ${code ?? ''} ${reason ?? ''} ${retryInMs ?? ''} ${gateway ?? ''}`;
  void s;
});
client.on('error', (err: HoldfastError) => {
  const fatal: boolean = err.fatal;
  void fatal;
});
const since: Position = { offset: 1187, epoch: '9f2c61d0a8b4e7c3' };
const sub = client.subscribe('orders:42', { since, recover: 'history' });
sub.on('event', (e: HoldfastEvent) => {
  const n: number = e.offset;
  const prev: number | null = e.prevOffset;
  void [n, prev, e.data, e.verified, e.ts];
});
sub.on('subscribed', ({ recovered, wasRecovering, offset, epoch }) => void [recovered, wasRecovering, offset, epoch]);
sub.on('gap', ({ from, to, reason }) => void [from, to, reason]);
const where: Position | null = sub.position;
void where;
const page = await client.history('orders:42', { since: -1 });
const first: HoldfastEvent | undefined = page.events[0];
void first;
sub.unsubscribe();
client.close();
// @ts-expect-error: a subscription needs a channel name
client.subscribe();
