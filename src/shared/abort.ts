const waiters = new WeakMap<AbortSignal, Set<() => void>>();

/**
 * Calls `onAbort` when `signal` aborts; the returned function unsubscribes in O(1). Calls that share one
 * signal (see server/deadline-signals.ts) share one real listener: EventTarget's own removeEventListener
 * walks every listener, which made the shared signals quadratic under load.
 */
export function whenAborted(signal: AbortSignal, onAbort: () => void): () => void {
  const set = waiters.get(signal) ?? subscribe(signal);
  set.add(onAbort);
  return () => void set.delete(onAbort);
}

/**
 * The one real listener of `signal`, made in a scope of its own: V8 gives the closures of one function call one
 * shared context, so a listener made inside whenAborted would keep that call's `onAbort` (and through it the first
 * caller's whole request) alive until the signal is collected, after its deadline timer. At low load each request
 * has a signal of its own, alive for ratelimit.timeout_ms: at 500 req/s that kept ≈ 1,000 promises and 200 KB more
 * alive (docs/benchmarks.md).
 */
function subscribe(signal: AbortSignal): Set<() => void> {
  const subscribers = new Set<() => void>();
  signal.addEventListener('abort', () => {
    for (const fn of subscribers) fn();
    subscribers.clear();
  }, { once: true });
  waiters.set(signal, subscribers);
  return subscribers;
}
