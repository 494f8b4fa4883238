// The store: one immutable state value, replaced by pure updates, watched by listeners.
// No DOM here; app.js batches rendering to one animation frame.

/**
 * createStore(initial, {onError}) → {get, apply, subscribe}.
 * apply(update, ...args) runs update(state, ...args) → next state; listeners hear about
 * every change (same state back = no change, nobody is told).
 */
export function createStore(initial, { onError = null } = {}) {
  let state = initial;
  const listeners = new Set();
  return {
    get: () => state,
    apply(update, ...args) {
      let next;
      try {
        next = update(state, ...args);
      } catch (err) {
        // An update is pure and must not throw; if one does, keep the old state.
        if (onError) onError(err, update);
        else throw err;
        return state;
      }
      if (next !== state && next !== undefined) {
        const prev = state;
        state = next;
        for (const fn of listeners) fn(state, prev);
      }
      return state;
    },
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  };
}
