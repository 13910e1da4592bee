// client.js - HoldfastClient: one WebSocket connection to a Holdfast gateway
// at a time, and everything that keeps its subscriptions whole across
// connections: reconnecting (full-jitter backoff, the next URL each time,
// the browser's online/offline events), resuming every subscription with
// `since`, renewing the token in-band before it expires, the heartbeat
// that notices a dead connection, and stopping on errors that a retry
// would only repeat. The protocol is schemas/websocket.md (1.1, with 1.0
// gateways still served).

import { Emitter } from './emitter.js';
import { jsonCodec } from './codec.js';
import { closePolicy, parseCloseReason } from './close.js';
import { fullJitter } from './backoff.js';
import { PositionStore } from './positions.js';
import { fetchHistory } from './history.js';
import { Subscription } from './subscription.js';

const CHANNEL = /^[A-Za-z0-9][A-Za-z0-9_.:@=-]{0,199}$/;
const TIMER_MAX_MS = 2 ** 31 - 1;
const DEFAULTS = {
  backoffBaseMs: 500,
  backoffCapMs: 30000,
  stableMs: 5000, // a connection that held this long resets the backoff
  pingIntervalMs: 25000, // 1.0 gateways: the client's own ping when quiet
  pongTimeoutMs: 10000,
  refreshMinMs: 1000, // renew the token at least this long before it expires ...
  refreshMaxMs: 60000, // ... and at most this long (a quarter of its life between)
};

/** The exp claim of a JWT, or null (not a JWT, or none). */
function jwtExp(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = typeof atob === 'function' ? atob(part) : Buffer.from(part, 'base64').toString();
    const exp = JSON.parse(json).exp;
    return typeof exp === 'number' ? exp : null;
  } catch {
    return null;
  }
}

/** An error the client reports: code is the protocol's (token_invalid, forbidden, ...). */
export class HoldfastError extends Error {
  constructor(code, message, { fatal = false, closeCode, cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = 'HoldfastError';
    this.code = code;
    this.fatal = fatal;
    if (closeCode !== undefined) this.closeCode = closeCode;
  }
}

export class HoldfastClient extends Emitter {
  /** 'disconnected' | 'connecting' | 'connected' | 'failed' */
  state = 'disconnected';
  /** The gateway's welcome on the current connection (1.1), or null. */
  welcome = null;
  /** '1.1' or '1.0' on the current connection; null when none. */
  protocol = null;
  /** URL of the current (or last tried) gateway. */
  url = null;
  /** Counters over the client's life. */
  stats = { connects: 0, events: 0, duplicates: 0, chainBreaks: 0, gaps: 0, tokenRefreshes: 0 };

  #opt;
  #urls;
  #codec;
  #WebSocket = null;
  #headerToken = false;
  #ws = null;
  #gen = 0; // bumped for every socket: events of an older one are ignored
  #urlIndex = 0;
  #attempt = 0;
  #admittedAt = 0;
  #closed = false; // close() was called
  #token = null;
  #tokenFresh = false; // #token came from getToken for the connection being made
  #invalidTokens = 0; // token_invalid / token_missing closes in a row
  #skewMs = 0; // local clock minus the gateway's
  #subs = new Map();
  #pending = new Map(); // request id -> handler of its answer
  #nextId = 1;
  #timers = new Set();
  #retryTimer = null;
  #deadTimer = null;
  #quietTimer = null;
  #refreshTimer = null;
  #store;
  #unlisten = [];

  /**
   * @param {object} options
   *   url | urls     gateway WebSocket URL(s), ws://host:port/v1/ws; tried in turn
   *   getToken       async ({reason}) => token (a JWT whose subscribe patterns cover the channels)
   *   codec          jsonCodec (default) or msgpackCodec from '@holdfast/client/msgpack'
   *   historyUrl     ingest's base URL, for history() and recover: 'history'
   *   storage        null, 'localStorage' or a Storage: keeps positions across reloads
   *   WebSocket      an implementation (default: the global one, else the 'ws' package)
   *   autoConnect    connect on construction (default true)
   */
  constructor(options = {}) {
    super();
    this.#opt = { ...DEFAULTS, autoConnect: true, ...options };
    this.#urls = options.urls ?? (options.url ? [options.url] : []);
    if (this.#urls.length === 0) throw new TypeError('HoldfastClient: url or urls is required');
    if (typeof options.getToken !== 'function' && options.token === undefined) {
      throw new TypeError('HoldfastClient: getToken (or a static token) is required');
    }
    this.#codec = options.codec ?? jsonCodec;
    this.#store = new PositionStore(options.storage ?? null, options.storagePrefix);
    this.#listenToBrowser();
    if (this.#opt.autoConnect) queueMicrotask(() => this.connect());
  }

  // ---- public API ----------------------------------------------------------

  /** Starts connecting (again, after close() or a final error). */
  connect() {
    if (this.state === 'connecting' || this.state === 'connected' || this.#retryTimer) return;
    this.#closed = false;
    this.#invalidTokens = 0;
    this.#open('connect');
  }

  /** Closes the connection for good; subscriptions stay, and resume on connect(). */
  close() {
    this.#closed = true;
    this.#clearConnectionTimers();
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    const ws = this.#ws;
    this.#detach();
    try {
      ws?.close(1000, 'client closed');
    } catch {
      // already closing
    }
    this.#setState('disconnected', { code: 1000, reason: 'client closed' });
  }

  /** Closes close() and forgets browser listeners: the client is done. */
  destroy() {
    this.close();
    for (const off of this.#unlisten) off();
    this.#unlisten = [];
  }

  /** Drops the connection as a network failure would (backoff, next URL, resume). */
  reconnect() {
    if (!this.#ws) return;
    this.#lost(4000, 'dropped by the client', { why: 'client_drop' });
  }

  /**
   * Subscribes to channel. options.since {offset, epoch} resumes after that
   * position (else a stored one, with storage; else live from now);
   * options.recover 'history' fills a gap the gateway can no longer replay
   * from ingest's history API.
   */
  subscribe(channel, options = {}) {
    if (!CHANNEL.test(channel)) throw new TypeError(`invalid channel name: ${channel}`);
    if (this.#subs.has(channel)) throw new Error(`already subscribed to ${channel}`);
    const since = options.since ?? this.#store.load(channel) ?? undefined;
    const sub = new Subscription(this, channel, { ...options, since });
    this.#subs.set(channel, sub);
    if (this.state === 'connected') sub._sendSubscribe();
    return sub;
  }

  getSubscription(channel) {
    return this.#subs.get(channel) ?? null;
  }

  get subscriptions() {
    return [...this.#subs.values()];
  }

  /**
   * Events of channel after `since` (offset; -1 from the start) from
   * ingest's HTTP API, paged: {events, epoch, complete, more}.
   */
  async history(channel, { since = -1, epoch, until, maxEvents, signal } = {}) {
    const token = await this.#getToken('history');
    return fetchHistory({
      baseUrl: this.#opt.historyUrl, token, fetchImpl: this.#opt.fetch, channel, since, epoch,
      until, maxEvents, signal,
    });
  }

  // ---- connecting ------------------------------------------------------------

  async #open(reason) {
    const gen = ++this.#gen;
    this.#setState('connecting', { url: this.#urls[this.#urlIndex] });
    let token;
    try {
      this.#WebSocket ??= await this.#resolveWebSocket();
      if (!this.#token || reason === 'expired' || reason === 'invalid' || this.#expiring(this.#token)) {
        this.#token = null;
        token = await this.#getToken(reason);
        this.#tokenFresh = true;
      } else {
        token = this.#token;
        this.#tokenFresh = false;
      }
    } catch (err) {
      if (gen !== this.#gen || this.#closed) return;
      this.emit('error', new HoldfastError('token_unavailable', `getToken failed: ${err?.message ?? err}`, { cause: err }));
      this.#retry(null, { code: 0, reason: 'getToken failed' });
      return;
    }
    if (gen !== this.#gen || this.#closed) return;
    const url = (this.url = this.#urls[this.#urlIndex]);
    let ws;
    try {
      if (this.#headerToken) {
        ws = new this.#WebSocket(url, this.#codec.protocols, { headers: { Authorization: `Bearer ${token}` } });
      } else {
        const sep = url.includes('?') ? '&' : '?';
        ws = new this.#WebSocket(`${url}${sep}token=${encodeURIComponent(token)}`, this.#codec.protocols);
      }
    } catch (err) {
      this.emit('error', new HoldfastError('connect_failed', String(err?.message ?? err), { cause: err }));
      this.#retry(null, { code: 0, reason: 'connect failed' });
      return;
    }
    this.#ws = ws;
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => gen === this.#gen && this.#onOpen(ws);
    ws.onmessage = (ev) => gen === this.#gen && this.#onMessage(ev.data);
    ws.onclose = (ev) => gen === this.#gen && this.#onClose(ev.code, ev.reason);
    ws.onerror = () => {}; // a close follows; it says more
    this.#watchDead(this.#opt.connectTimeoutMs ?? 15000); // the handshake too must end
  }

  async #resolveWebSocket() {
    if (this.#opt.WebSocket) return this.#opt.WebSocket;
    if (typeof globalThis.WebSocket === 'function') return globalThis.WebSocket;
    // Node without a global WebSocket: the optional peer dependency. The
    // name is a variable so that bundlers for browsers leave it alone.
    const name = 'ws';
    try {
      const mod = await import(name);
      this.#headerToken = this.#opt.tokenIn !== 'query';
      return mod.WebSocket ?? mod.default;
    } catch {
      throw new Error('no WebSocket here: install the "ws" package or pass options.WebSocket');
    }
  }

  /** The token's exp (JWT) has passed, or will within a second: not worth a connection. */
  #expiring(token) {
    const exp = jwtExp(token);
    return exp !== null && exp * 1000 + this.#skewMs <= Date.now() + 1000;
  }

  async #getToken(reason) {
    if (typeof this.#opt.getToken !== 'function') return this.#opt.token;
    const token = await this.#opt.getToken({ reason });
    if (typeof token !== 'string' || token === '') throw new Error('getToken gave no token');
    if (reason !== 'history') this.#token = token;
    return token;
  }

  #onOpen(ws) {
    const p = ws.protocol || '';
    this.protocol = p.includes('v1.1.') ? '1.1' : '1.0';
    if (this.protocol === '1.0') this.#admitted(null); // 1.0 says nothing on admission
  }

  #admitted(welcome) {
    this.welcome = welcome;
    this.#admittedAt = Date.now();
    this.#invalidTokens = 0;
    this.stats.connects++;
    if (welcome) {
      this.#skewMs = Date.now() - welcome.server_time_us / 1000;
      this.#scheduleRefresh(welcome.exp);
    }
    this.#heard();
    this.#setState('connected', { url: this.url, gateway: welcome?.gateway ?? null, protocol: this.protocol });
    if (welcome) this.emit('welcome', welcome);
    for (const sub of this.#subs.values()) sub._sendSubscribe();
  }

  // ---- messages ----------------------------------------------------------------

  #onMessage(data) {
    let msg;
    try {
      msg = this.#codec.decode(data);
    } catch {
      msg = null;
    }
    if (!msg) return; // not ours to understand: unknown frames are ignored
    this.#heard();
    const handler = this.#handlers[msg.type];
    if (handler) handler.call(this, msg);
  }

  #handlers = {
    welcome(msg) {
      if (this.state === 'connecting') this.#admitted(msg);
    },
    subscribed(msg) {
      this.#subs.get(msg.channel)?._onSubscribed(msg);
    },
    event(msg) {
      this.#subs.get(msg.channel)?._onEvent(msg);
    },
    unsubscribed(msg) {
      this.#subs.get(msg.channel)?._onUnsubscribed(msg);
    },
    ping() {
      this._send({ type: 'pong' });
    },
    pong() {},
    authenticated(msg) {
      this.#takeAnswer(msg);
    },
    error(msg) {
      if (this.#takeAnswer(msg)) return;
      const sub = msg.channel ? this.#subs.get(msg.channel) : null;
      if (sub) sub._onError(msg);
      else this.emit('error', new HoldfastError(msg.code, msg.message));
    },
  };

  /** Hands an answer to the request that waits for it; false when none does. */
  #takeAnswer(msg) {
    const handler = msg.id !== undefined ? this.#pending.get(msg.id) : undefined;
    if (!handler) return false;
    this.#pending.delete(msg.id);
    handler(msg);
    return true;
  }

  // ---- token renewal -------------------------------------------------------------

  #scheduleRefresh(exp) {
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = null;
    if (!exp || this.protocol !== '1.1') return;
    const expiresAt = exp * 1000 + this.#skewMs;
    const life = expiresAt - Date.now();
    const margin = Math.min(this.#opt.refreshMaxMs, Math.max(this.#opt.refreshMinMs, life / 4));
    const wait = Math.max(0, life - margin);
    // Timers take at most 2^31-1 ms (24.8 days); a longer token is looked at again then.
    this.#refreshTimer = wait > TIMER_MAX_MS
      ? setTimeout(() => this.#scheduleRefresh(exp), TIMER_MAX_MS)
      : setTimeout(() => this.#refresh(0), wait);
  }

  async #refresh(tries) {
    this.#refreshTimer = null;
    const gen = this.#gen;
    let token;
    try {
      token = await this.#getToken('refresh');
    } catch (err) {
      this.emit('error', new HoldfastError('token_unavailable', `getToken failed: ${err?.message ?? err}`, { cause: err }));
      token = null;
    }
    if (gen !== this.#gen || this.state !== 'connected') return;
    if (!token) {
      if (tries < 3) this.#refreshTimer = setTimeout(() => this.#refresh(tries + 1), 1000);
      return;
    }
    const id = this._nextId();
    this.#pending.set(id, (msg) => {
      if (msg.type === 'authenticated') {
        this.stats.tokenRefreshes++;
        this.#scheduleRefresh(msg.exp);
        this.emit('token', { exp: msg.exp });
      } else if (msg.code === 'subject_mismatch') {
        this.#lost(4000, 'token of another subject: reconnecting with it', { why: 'subject_mismatch', now: true });
      } else {
        this.emit('error', new HoldfastError(msg.code, `token refused: ${msg.message}`));
        if (tries < 3) this.#refreshTimer = setTimeout(() => this.#refresh(tries + 1), 1000);
      }
    });
    this._send({ type: 'auth', token, id });
  }

  // ---- liveness ------------------------------------------------------------------------

  /** Something arrived: the connection is alive; arm the next deadline. */
  #heard() {
    let deadMs;
    if (this.protocol === '1.1' && this.welcome) {
      // The gateway pings a quiet connection every ping_interval_ms
      // (checking once a second): silence well past that is a dead link.
      const ping = this.welcome.ping_interval_ms;
      deadMs = ping + (this.#opt.deadMarginMs ?? Math.max(2000, ping / 2) + 1000);
    } else {
      // A 1.0 gateway pings with control frames browsers hide: ask ourselves.
      deadMs = this.#opt.pingIntervalMs + this.#opt.pongTimeoutMs;
      clearTimeout(this.#quietTimer);
      this.#quietTimer = setTimeout(() => this._send({ type: 'ping' }), this.#opt.pingIntervalMs);
    }
    this.#watchDead(deadMs);
  }

  #watchDead(ms) {
    clearTimeout(this.#deadTimer);
    this.#deadTimer = setTimeout(() => this.#lost(4000, `no message from the gateway for ${ms} ms`, { why: 'heartbeat' }), ms);
  }

  // ---- losing a connection -------------------------------------------------------

  #onClose(code, reason) {
    const r = parseCloseReason(reason);
    this.#detach();
    if (this.#closed) return;
    const policy = closePolicy(code);
    if (policy === 'final') {
      this.#fail(code, reason, r.why || 'protocol_error');
      return;
    }
    if (policy === 'token') {
      // An expired token is renewed; a missing or invalid one gets one
      // more chance with a fresh token, and then the error is final.
      if (r.why !== 'token_expired' && this.#tokenFresh && ++this.#invalidTokens >= 2) {
        this.#fail(code, reason, r.why || 'token_invalid');
        return;
      }
      this.#retry(r.why === 'token_expired' ? 'expired' : 'invalid', { code, reason, why: r.why, retryAfterMs: r.retryAfterMs, now: true });
      return;
    }
    this.#retry(null, { code, reason, why: r.why, retryAfterMs: r.retryAfterMs });
  }

  /** The connection is gone without a close from the gateway (heartbeat, offline, drop). */
  #lost(code, reason, info) {
    const ws = this.#ws;
    this.#detach();
    try {
      ws?.close(code, reason.slice(0, 120));
    } catch {
      // its close handshake is not waited for
    }
    if (this.#closed) return;
    this.#retry(null, { code: 1006, reason, ...info });
  }

  #fail(code, reason, why) {
    this.#setState('failed', { code, reason, why });
    this.emit('error', new HoldfastError(why, `connection refused for good (${code}): ${reason}`, { fatal: true, closeCode: code }));
  }

  /** Schedules the next connection: after the server's hint, else full-jitter backoff, on the next URL. */
  #retry(tokenReason, info) {
    const held = this.#admittedAt && Date.now() - this.#admittedAt >= this.#opt.stableMs;
    if (held) this.#attempt = 0;
    let delay = fullJitter(this.#attempt, this.#opt.backoffBaseMs, this.#opt.backoffCapMs);
    if (info.now && this.#attempt === 0) delay = 0;
    if (info.retryAfterMs != null) {
      // A drain already spread its clients: its delay is the one to keep.
      delay = info.why === 'drain' ? info.retryAfterMs : Math.max(delay, info.retryAfterMs);
    }
    this.#attempt++;
    this.#admittedAt = 0;
    this.#urlIndex = (this.#urlIndex + 1) % this.#urls.length;
    this.#setState('disconnected', { code: info.code, reason: info.reason, why: info.why ?? '', retryInMs: delay });
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      if (!this.#closed) this.#open(tokenReason ?? 'reconnect');
    }, delay);
  }

  /** Forgets the socket (its late events are ignored) and what hangs on it. */
  #detach() {
    if (this.#ws) {
      this.#ws.onopen = this.#ws.onmessage = this.#ws.onclose = null;
      this.#ws.onerror = () => {};
    }
    this.#ws = null;
    this.#gen++;
    this.welcome = null;
    this.protocol = null;
    this.#pending.clear();
    this.#clearConnectionTimers();
    for (const sub of this.#subs.values()) sub._onDisconnect();
    this.#store.flush();
  }

  #clearConnectionTimers() {
    clearTimeout(this.#deadTimer);
    clearTimeout(this.#quietTimer);
    clearTimeout(this.#refreshTimer);
    this.#deadTimer = this.#quietTimer = this.#refreshTimer = null;
  }

  #setState(to, info = {}) {
    const from = this.state;
    this.state = to;
    if (from !== to || to === 'disconnected') this.emit('state', { from, to, ...info });
  }

  #listenToBrowser() {
    const w = globalThis.window;
    if (!w || typeof w.addEventListener !== 'function') return;
    const listen = (name, fn) => {
      w.addEventListener(name, fn);
      this.#unlisten.push(() => w.removeEventListener(name, fn));
    };
    // Back online: try now rather than at the end of a long backoff.
    listen('online', () => {
      if (this.#retryTimer && !this.#closed) {
        clearTimeout(this.#retryTimer);
        this.#retryTimer = null;
        this.#attempt = 0;
        this.#open('reconnect');
      }
    });
    // Offline: the socket may hang for minutes before the OS notices.
    listen('offline', () => {
      if (this.#ws && !this.#closed) this.#lost(4000, 'the browser went offline', { why: 'offline' });
    });
    listen('pagehide', () => this.#store.flush());
  }

  // ---- for Subscription -----------------------------------------------------

  _nextId() {
    return this.#nextId++;
  }

  _send(msg) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== 1) return false;
    ws.send(this.#codec.encode(msg));
    return true;
  }

  _eventData(msg) {
    return this.#codec.eventData(msg);
  }

  _count(name) {
    this.stats[name]++;
  }

  _savePosition(sub) {
    const p = sub.position;
    if (p) this.#store.save(sub.channel, p);
  }

  _later(ms, fn) {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
  }

  _unsubscribe(sub) {
    this.#subs.delete(sub.channel);
    if (this.state === 'connected') this._send({ type: 'unsubscribe', channel: sub.channel, id: this._nextId() });
  }

  _forget(sub) {
    this.#subs.delete(sub.channel);
  }
}
