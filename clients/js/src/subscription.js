// subscription.js - one channel's stream: where it stands, the prev_offset
// chain, duplicates, gaps, and resuming with `since` on every new
// connection.
//
// `last` is the offset up to which every event of the channel has been
// delivered (the position); an event at or below it is a duplicate; one
// whose prev_offset is above it means something in between is missing,
// and the subscription asks again from `last` (the gateway then replays
// the rest from Kafka). The gateway already guarantees this; the client
// checks it so that no fault between the two goes unnoticed.
//
// An event can also stand twice in the log at two offsets: a relay that
// lost its lease while a broker still held one of its writes, appended
// after the next relay wrote the same event again. Such a copy carries
// the id of an event already delivered and a prev_offset at or below the
// position; it is dropped by its id (the last RECENT_IDS ids are kept) and
// the position moves past it, so the chain goes on from either copy.

import { Emitter } from './emitter.js';
import { toEvent } from './codec.js';

const RECENT_IDS = 256; // ids of the last events delivered, per subscription

export class Subscription extends Emitter {
  /** The channel's name. */
  channel;
  /** 'subscribing' | 'subscribed' | 'recovering' | 'unsubscribed' | 'failed' */
  state = 'subscribing';
  /** Kafka partition of the channel, once known. */
  partition = null;
  /** Counters since the subscription was made. */
  stats = { events: 0, duplicates: 0, chainBreaks: 0, gaps: 0, resubscribes: 0, recovered: 0 };

  #client;
  #position; // {offset, epoch}: everything up to offset has been delivered; null: none yet
  #lastEvent = null; // offset of the last event delivered since `subscribed`, for the chain mark
  #reqId = null; // id of the subscribe in flight
  #since = null; // the since it carried
  #resumes = 0; // subscribeds answered on this subscription
  #recentIds = new Set(); // ids of the last RECENT_IDS events delivered, oldest first
  #recover;
  #buffer = null; // events held while a gap is filled from history

  constructor(client, channel, { since, recover } = {}) {
    super();
    this.#client = client;
    this.channel = channel;
    this.#position = since ? { offset: since.offset, epoch: since.epoch ?? null } : null;
    this.#recover = recover ?? null;
  }

  /** {offset, epoch} to resume from: the last event delivered, or where the subscription began. */
  get position() {
    return this.#position ? { ...this.#position } : null;
  }

  /** Stops the stream; the client forgets the subscription. */
  unsubscribe() {
    if (this.state === 'unsubscribed' || this.state === 'failed') return;
    this.#client._unsubscribe(this);
    this.#end('unsubscribed', { reason: 'client' });
  }

  /** The channel's past over HTTP (ingest's history API): see HoldfastClient.history. */
  history(opts = {}) {
    return this.#client.history(this.channel, opts);
  }

  // ---- called by the client ----------------------------------------------

  _sendSubscribe() {
    if (this.state === 'unsubscribed' || this.state === 'failed') return;
    this.#reqId = this.#client._nextId();
    this.#since = this.#position ? { ...this.#position } : null;
    if (this.state !== 'recovering') this.state = 'subscribing';
    this.#buffer = null;
    const msg = { type: 'subscribe', channel: this.channel, id: this.#reqId };
    if (this.#since) msg.since = this.#since;
    this.#client._send(msg);
  }

  _onSubscribed(msg) {
    if (msg.id !== undefined && msg.id !== this.#reqId) return; // an older request's answer
    const unasked = msg.id === undefined;
    if (unasked && this.state !== 'subscribed') return;
    this.#reqId = null;
    this.partition = msg.partition;
    const since = unasked ? this.#position : this.#since;
    const wasRecovering = since !== null;
    const at = { offset: msg.offset, epoch: msg.epoch ?? null };
    this.#lastEvent = null;
    const resumed = this.#resumes++ > 0;
    if (msg.recovered && !unasked) {
      this.#position = { offset: msg.offset, epoch: at.epoch ?? since?.epoch ?? null };
      this.state = 'subscribed';
      this.emit('subscribed', { recovered: true, wasRecovering, resumed, ...at, partition: msg.partition });
      return;
    }
    if (!wasRecovering) {
      this.#position = at;
      this.state = 'subscribed';
      this.#client._savePosition(this);
      this.emit('subscribed', { recovered: false, wasRecovering, resumed, ...at, partition: msg.partition });
      return;
    }
    // The gateway could not replay from `since`: the events are gone from
    // its log (or belong to another epoch). Everything after at.offset
    // follows; what lies between is reported, or fetched from history.
    const gap = {
      from: since.offset + 1,
      to: at.offset,
      fromEpoch: since.epoch,
      epoch: at.epoch,
      reason: since.epoch !== null && at.epoch !== null && since.epoch !== at.epoch
        ? 'epoch_changed'
        : 'not_retained',
    };
    this.emit('subscribed', { recovered: false, wasRecovering, resumed, ...at, partition: msg.partition });
    if (this.#recover === 'history' && gap.reason === 'not_retained' && gap.to >= gap.from) {
      this.#fillFromHistory(since, at, gap);
      return;
    }
    this.#gap(gap, at);
  }

  _onEvent(msg) {
    if (this.state === 'recovering') {
      this.#buffer?.push(msg);
      return;
    }
    if (this.state !== 'subscribed') return; // before (or between) subscribeds: replayed later
    const pos = this.#position;
    if (msg.epoch && pos.epoch && msg.epoch !== pos.epoch) {
      // Offsets compare only within an epoch: ask where the stream stands.
      this.#resync();
      return;
    }
    if (msg.offset <= pos.offset) {
      this.stats.duplicates++;
      this.#client._count('duplicates');
      this.emit('duplicate', { offset: msg.offset });
      return;
    }
    if (msg.id !== undefined && this.#recentIds.has(msg.id)) {
      // the same event again at a later offset: delivered once already
      this.stats.duplicates++;
      this.#client._count('duplicates');
      this.#position = { offset: msg.offset, epoch: msg.epoch ?? pos.epoch };
      this.#client._savePosition(this);
      this.emit('duplicate', { offset: msg.offset, id: msg.id });
      return;
    }
    const prev = msg.prev_offset ?? null;
    if (prev !== null && prev > pos.offset) {
      this.stats.chainBreaks++;
      this.#client._count('chainBreaks');
      this.#resync();
      return;
    }
    this.#deliver(msg, this.#client._eventData(msg));
  }

  _onUnsubscribed(msg) {
    if (msg.reason === undefined) return; // the answer to our own unsubscribe
    this.#client._forget(this);
    this.#end('failed', { reason: msg.reason });
    this.emit('error', { code: msg.reason, message: `unsubscribed by the gateway: ${msg.reason}`, fatal: true });
  }

  /** An error answering this subscription's subscribe. */
  _onError(msg) {
    if (msg.id !== undefined && msg.id !== this.#reqId) return;
    this.#reqId = null;
    if (msg.code === 'unavailable') {
      // Kafka did not answer the gateway: the subscription was not made.
      this.#client._later(msg.retry_after_ms ?? 1000, () => {
        if (this.#client.state === 'connected') this._sendSubscribe();
      });
      this.emit('error', { code: msg.code, message: msg.message, fatal: false });
      return;
    }
    if (msg.code === 'already_subscribed') return;
    this.#client._forget(this);
    this.#end('failed', { reason: msg.code });
    this.emit('error', { code: msg.code, message: msg.message, fatal: true });
  }

  /** The connection ended: resubscribe with `since` on the next one. */
  _onDisconnect() {
    this.#reqId = null;
    if (this.state === 'subscribed' || this.state === 'recovering') this.state = 'subscribing';
    this.#buffer = null;
  }

  // ---- inside -----------------------------------------------------------

  #deliver(msg, data) {
    const prev = msg.prev_offset ?? null;
    const verified = prev !== null && (this.#lastEvent !== null ? prev === this.#lastEvent : prev <= this.#position.offset);
    this.#position = { offset: msg.offset, epoch: msg.epoch ?? this.#position.epoch };
    this.#lastEvent = msg.offset;
    if (msg.id !== undefined) {
      this.#recentIds.add(msg.id);
      if (this.#recentIds.size > RECENT_IDS) this.#recentIds.delete(this.#recentIds.values().next().value);
    }
    this.stats.events++;
    this.#client._count('events');
    this.#client._savePosition(this);
    const e = toEvent(msg, data);
    e.verified = verified;
    this.emit('event', e);
  }

  /** Asks for the stream again from the position, on the same connection. */
  #resync() {
    this.stats.resubscribes++;
    this.state = 'subscribing';
    if (this.#client.state !== 'connected') return; // the next connection resubscribes
    this.#client._send({ type: 'unsubscribe', channel: this.channel });
    this._sendSubscribe();
  }

  #gap(gap, at) {
    this.stats.gaps++;
    this.#client._count('gaps');
    this.#position = at;
    this.state = 'subscribed';
    this.#client._savePosition(this);
    this.emit('gap', gap);
  }

  async #fillFromHistory(since, at, gap) {
    this.state = 'recovering';
    const buffer = (this.#buffer = []);
    let result = null;
    let error = null;
    try {
      result = await this.#client.history(this.channel, {
        since: since.offset,
        epoch: since.epoch ?? undefined,
        until: at.offset,
      });
    } catch (err) {
      error = err;
    }
    if (this.state !== 'recovering' || this.#buffer !== buffer) return; // reconnected meanwhile
    this.#buffer = null;
    this.state = 'subscribed';
    // History is read from PostgreSQL where Kafka no longer has it; a page
    // that is complete and not cut covers every event up to `until`.
    const covered = result !== null && result.complete && !result.more;
    if (result && result.complete) {
      for (const e of result.events) {
        if (e.offset <= this.#position.offset || e.offset > at.offset) continue;
        this.#deliver({ ...e, prev_offset: e.prevOffset, event_type: e.type, ts_us: e.tsUs,
          content_type: e.contentType }, e.data);
      }
    }
    if (covered) {
      this.stats.recovered++;
      if (this.#position.offset < at.offset) this.#position = { ...at, epoch: at.epoch ?? this.#position.epoch };
      this.#client._savePosition(this);
      this.emit('recovered', { from: gap.from, to: gap.to, source: 'history' });
    } else {
      this.#gap({ ...gap, from: this.#position.offset + 1,
        reason: error ? 'history_failed' : gap.reason, error: error ?? undefined }, at);
    }
    for (const m of buffer) this._onEvent(m);
  }

  #end(state, info) {
    this.state = state;
    this.#buffer = null;
    this.emit('unsubscribed', info);
  }
}
