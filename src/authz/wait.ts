import { whenAborted } from '../shared/abort.js';

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
