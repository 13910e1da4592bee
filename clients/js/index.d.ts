// Types of @holdfast/client (src/index.js). Protocol: schemas/websocket.md.

export type ConnectionState = 'disconnected' | 'connecting' | 'connected' | 'failed';

/** A position in a channel's stream: everything up to offset (in this epoch) was delivered. */
export interface Position {
  offset: number;
  epoch: string | null;
}

export interface HoldfastEvent<T = unknown> {
  channel: string;
  /** The event's id (a UUID), the same in PostgreSQL, Kafka and every client. */
  id: string;
  partition: number;
  /** Kafka offset: the event's position. */
  offset: number;
  /** Offset of the channel's previous event (-1: none); null when the gateway did not know it. */
  prevOffset: number | null;
  epoch: string | null;
  /** The event's type as published, or null. */
  type: string | null;
  /** Commit time in PostgreSQL, ms and µs since the Unix epoch. */
  ts: number | null;
  tsUs: number | null;
  contentType: string;
  /** The payload: parsed JSON for application/json, bytes otherwise. */
  data: T;
  /** prevOffset links to the event before it (or to the resume position): the chain is checked. */
  verified: boolean;
}

export interface StateChange {
  from: ConnectionState;
  to: ConnectionState;
  /** Close code and reason of the connection that ended, when one did. */
  code?: number;
  reason?: string;
  /** The reason's machine code: drain, token_expired, slow_consumer, heartbeat, ... */
  why?: string;
  /** When disconnected: how long until the next attempt. */
  retryInMs?: number;
  url?: string;
  /** When connected: the gateway's id (protocol 1.1). */
  gateway?: string | null;
  protocol?: '1.1' | '1.0';
}

export interface Welcome {
  type: 'welcome';
  version: string;
  gateway: string;
  sub: string;
  exp: number | null;
  server_time_us: number;
  ping_interval_ms: number;
  idle_timeout_ms: number;
  max_subscriptions: number;
  max_frame: number;
  msg_rate: number;
  msg_burst: number;
}

export class HoldfastError extends Error {
  /** The protocol's code: token_invalid, forbidden, unsupported_frame, ... */
  code: string;
  /** Retrying would fail the same way: the client (or subscription) stopped. */
  fatal: boolean;
  closeCode?: number;
}

export interface Codec {
  name: string;
  protocols: string[];
  binary: boolean;
  encode(msg: object): string | Uint8Array;
  decode(data: string | ArrayBuffer | Uint8Array): Record<string, unknown> | null;
  eventData(msg: Record<string, unknown>): unknown;
}

export const jsonCodec: Codec;

export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface ClientOptions {
  /** A gateway's WebSocket URL (ws://host:port/v1/ws), or several, tried in turn. */
  url?: string;
  urls?: string[];
  /** A token whose subscribe patterns cover the channels; called again to renew it. */
  getToken?: (ctx: { reason: 'connect' | 'reconnect' | 'refresh' | 'expired' | 'invalid' | 'history' }) => Promise<string> | string;
  /** A token that never changes (tests, tools). */
  token?: string;
  /** jsonCodec (default) or msgpackCodec from '@holdfast/client/msgpack'. */
  codec?: Codec;
  /** Ingest's base URL, for history() and recover: 'history'. */
  historyUrl?: string;
  /** Keep positions across page reloads: 'localStorage' or a Storage-like object. */
  storage?: 'localStorage' | StorageLike | null;
  storagePrefix?: string;
  /** A WebSocket implementation (default: the global one; in Node without one, the 'ws' package). */
  WebSocket?: unknown;
  /** With the 'ws' package the token goes in an Authorization header unless this is 'query'. */
  tokenIn?: 'header' | 'query';
  fetch?: typeof fetch;
  /** Connect on construction (default true). */
  autoConnect?: boolean;
  /** Full-jitter backoff: a delay drawn from 0 to min(cap, base * 2^attempt). Defaults 500 and 30000. */
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** A connection that held this long resets the backoff (default 5000). */
  stableMs?: number;
  /** Give up a connection attempt after this (default 15000). */
  connectTimeoutMs?: number;
  /** 1.1: a connection silent for the gateway's ping interval plus this is dead (default max(2000, interval / 2) + 1000). */
  deadMarginMs?: number;
  /** 1.0 gateways only: ping when quiet this long, give up this much later. */
  pingIntervalMs?: number;
  pongTimeoutMs?: number;
  /** Renew the token this long before it expires: a quarter of its life, within these bounds. */
  refreshMinMs?: number;
  refreshMaxMs?: number;
}

export interface SubscribeOptions {
  /** Resume after this position (else the stored one, with storage; else live from now). */
  since?: Position;
  /** 'history': fill a gap the gateway can no longer replay from ingest's history API. */
  recover?: 'history';
}

export interface SubscribedInfo extends Position {
  /** The since given was honoured: nothing was missed. */
  recovered: boolean;
  /** A since was given (a resume, not a first subscribe). */
  wasRecovering: boolean;
  /** Not the subscription's first subscribed (a reconnect or a resync). */
  resumed: boolean;
  partition: number;
}

export interface GapInfo {
  /** First and last offset of what could not be replayed (offsets of the partition). */
  from: number;
  to: number;
  fromEpoch: string | null;
  epoch: string | null;
  reason: 'not_retained' | 'epoch_changed' | 'history_failed';
  error?: Error;
}

export interface HistoryOptions {
  /** Events after this offset (-1: from the start). */
  since?: number;
  epoch?: string;
  /** Up to this offset, inclusive. */
  until?: number;
  maxEvents?: number;
  signal?: AbortSignal;
}

export interface HistoryResult {
  events: HoldfastEvent[];
  epoch: string | null;
  /** false when since belonged to another epoch (the events start at the current one's beginning). */
  complete: boolean;
  /** maxEvents cut it. */
  more: boolean;
}

type Unsubscribe = () => void;

export class Subscription {
  readonly channel: string;
  readonly state: 'subscribing' | 'subscribed' | 'recovering' | 'unsubscribed' | 'failed';
  readonly partition: number | null;
  /** Where the stream stands: resume from here. */
  readonly position: Position | null;
  readonly stats: { events: number; duplicates: number; chainBreaks: number; gaps: number; resubscribes: number; recovered: number };
  on(event: 'event', fn: (e: HoldfastEvent) => void): Unsubscribe;
  on(event: 'subscribed', fn: (info: SubscribedInfo) => void): Unsubscribe;
  on(event: 'gap', fn: (gap: GapInfo) => void): Unsubscribe;
  on(event: 'recovered', fn: (info: { from: number; to: number; source: 'history' }) => void): Unsubscribe;
  on(event: 'duplicate', fn: (info: { offset: number; id?: string }) => void): Unsubscribe;
  on(event: 'unsubscribed', fn: (info: { reason: string }) => void): Unsubscribe;
  on(event: 'error', fn: (err: { code: string; message: string; fatal: boolean }) => void): Unsubscribe;
  once: Subscription['on'];
  off(event: string, fn: (...args: any[]) => void): void;
  unsubscribe(): void;
  history(opts?: HistoryOptions): Promise<HistoryResult>;
}

export class HoldfastClient {
  constructor(options: ClientOptions);
  readonly state: ConnectionState;
  readonly welcome: Welcome | null;
  readonly protocol: '1.1' | '1.0' | null;
  readonly url: string | null;
  readonly stats: { connects: number; events: number; duplicates: number; chainBreaks: number; gaps: number; tokenRefreshes: number };
  readonly subscriptions: Subscription[];
  on(event: 'state', fn: (change: StateChange) => void): Unsubscribe;
  on(event: 'welcome', fn: (welcome: Welcome) => void): Unsubscribe;
  on(event: 'token', fn: (info: { exp: number | null }) => void): Unsubscribe;
  on(event: 'error', fn: (err: HoldfastError) => void): Unsubscribe;
  once: HoldfastClient['on'];
  off(event: string, fn: (...args: any[]) => void): void;
  connect(): void;
  /** Closes the connection; subscriptions stay and resume on connect(). */
  close(): void;
  /** close(), and stops listening to the browser's online/offline events. */
  destroy(): void;
  /** Drops the connection as a network failure would: backoff, next URL, resume. */
  reconnect(): void;
  subscribe(channel: string, options?: SubscribeOptions): Subscription;
  getSubscription(channel: string): Subscription | null;
  history(channel: string, options?: HistoryOptions): Promise<HistoryResult>;
}

export function parseCloseReason(reason: string): { why: string; retryAfterMs: number | null; text: string };
export function closePolicy(code: number): 'final' | 'token' | 'retry';
export function fullJitter(attempt: number, baseMs: number, capMs: number, random?: () => number): number;
