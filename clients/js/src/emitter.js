// emitter.js - the small event emitter HoldfastClient and Subscription share.

export class Emitter {
  #handlers = new Map();

  /** Calls fn(payload) on each `event`; returns a function that stops it. */
  on(event, fn) {
    let set = this.#handlers.get(event);
    if (!set) this.#handlers.set(event, (set = new Set()));
    set.add(fn);
    return () => this.off(event, fn);
  }

  once(event, fn) {
    const off = this.on(event, (payload) => {
      off();
      fn(payload);
    });
    return off;
  }

  off(event, fn) {
    this.#handlers.get(event)?.delete(fn);
  }

  /** A handler that throws does not stop the others, nor the library. */
  emit(event, payload) {
    const set = this.#handlers.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(payload);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
