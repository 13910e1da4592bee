// positions.js - where each channel's stream stands, kept across page
// reloads when asked (localStorage, or any object with getItem/setItem).

/**
 * storage: null (memory only), 'localStorage', or a Storage-like object.
 * Writes are batched (at most one per channel per flushMs) because a
 * busy channel delivers far more often than a reload needs.
 */
export class PositionStore {
  #storage;
  #prefix;
  #pending = new Map();
  #timer = null;
  #flushMs;

  constructor(storage, prefix = 'holdfast:position:', flushMs = 250) {
    if (storage === 'localStorage') {
      try {
        storage = globalThis.localStorage ?? null;
      } catch {
        storage = null; // storage disabled (privacy settings, sandboxed frames): memory only
      }
    }
    this.#storage = storage || null;
    this.#prefix = prefix;
    this.#flushMs = flushMs;
  }

  get persistent() {
    return this.#storage !== null;
  }

  /** The stored {offset, epoch} of channel, or null. */
  load(channel) {
    if (!this.#storage) return null;
    try {
      const p = JSON.parse(this.#storage.getItem(this.#prefix + channel) ?? 'null');
      if (p && Number.isInteger(p.offset) && p.offset >= -1 &&
          (p.epoch === null || typeof p.epoch === 'string')) {
        return { offset: p.offset, epoch: p.epoch };
      }
    } catch {
      // a damaged entry is as good as none
    }
    return null;
  }

  save(channel, position) {
    if (!this.#storage) return;
    this.#pending.set(channel, position);
    this.#timer ??= setTimeout(() => this.flush(), this.#flushMs);
  }

  forget(channel) {
    this.#pending.delete(channel);
    try {
      this.#storage?.removeItem(this.#prefix + channel);
    } catch {
      // storage full or denied: nothing to undo
    }
  }

  flush() {
    clearTimeout(this.#timer);
    this.#timer = null;
    for (const [channel, p] of this.#pending) {
      try {
        this.#storage.setItem(this.#prefix + channel, JSON.stringify(p));
      } catch {
        // storage full or denied: the position lives on in memory
      }
    }
    this.#pending.clear();
  }
}
