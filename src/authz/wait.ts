import { whenAborted } from '../shared/abort.js';

/**
 * How long a Check may wait on dependencies (JWKS, introspection): authz.timeout_ms, or Envoy's deadline when shorter
 * (`envoyRemainingMs`), less a fifth so a slow dependency still ends in our answer rather than Envoy's timeout. The
 * server and `portcullis explain` both wait this long, so a dependency too slow for one is too slow for the other.
 */
export function checkBudgetMs(timeoutMs: number, envoyRemainingMs?: number): number {
  const remaining = envoyRemainingMs !== undefined && Number.isFinite(envoyRemainingMs) ? Math.min(envoyRemainingMs, timeoutMs) : timeoutMs;
  return Math.max(1, remaining * 0.8);
}

/** Resolves or rejects with `promise`, or rejects as soon as `signal` aborts (the work itself carries on). */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error('deadline exceeded'));
  return new Promise<T>((resolve, reject) => {
    const unsubscribe = whenAborted(signal, () => reject(new Error('deadline exceeded')));
    promise.then(
      (v) => {
        unsubscribe();
        resolve(v);
      },
      (e: unknown) => {
        unsubscribe();
        reject(e);
      },
    );
  });
}
