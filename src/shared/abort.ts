const waiters = new WeakMap<AbortSignal, Set<() => void>>();

/**
 * Calls `onAbort` when `signal` aborts; the returned function unsubscribes in O(1). Calls that share one
 * signal (see server/deadline-signals.ts) share one real listener: EventTarget's own removeEventListener
 * walks every listener, which made the shared signals quadratic under load.
 */
export function whenAborted(signal: AbortSignal, onAbort: () => void): () => void {
  let set = waiters.get(signal);
  if (set === undefined) {
    const created = new Set<() => void>();
    signal.addEventListener('abort', () => {
      for (const fn of created) fn();
      created.clear();
    }, { once: true });
    waiters.set(signal, created);
    set = created;
  }
  const current = set;
  current.add(onAbort);
  return () => void current.delete(onAbort);
}
