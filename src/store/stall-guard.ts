// A stalled Redis (a paused process, DEBUG SLEEP, a long script) keeps its connection open, so the client goes on
// writing every new call into the socket, where it waits: each caller gets its failure_mode answer at its deadline,
// yet every call runs when Redis wakes and counts its request, and the calls and their replies pile up in memory for
// as long as the stall lasts (a 45 s pause under 1,000 calls/s grew the heap by 150 MB and counted 16,000 requests
// that had all been answered with failure_mode).
//
// StallGuard notices the stall from the callers' deadlines: a call still unanswered when its caller gave up means
// Redis is not answering. Until every such call has its reply, new calls are held back, not written; each waits for
// the stall to end within its own deadline. Replies come in order on one connection, so once the overdue calls are
// answered Redis is answering again. What a stall can still count is the calls written before the first deadline
// passed.

import { whenAborted } from '../shared/abort.js';
import { ErrorCode, StoreError } from '../shared/errors.js';

export class StallGuard {
  /** Calls whose caller's deadline passed before their reply came. */
  private overdueCalls = 0;
  private readonly waiting = new Set<() => void>();

  /** True while a call is unanswered past its caller's deadline. */
  get stalled(): boolean {
    return this.overdueCalls > 0;
  }

  /**
   * Resolves at once unless stalled; else when the stall ends, or rejects with STORE_TIMEOUT when `signal` aborts
   * first (the call was never written: it counts nothing).
   */
  clear(signal: AbortSignal): Promise<void> {
    if (this.overdueCalls === 0) return Promise.resolve();
    if (signal.aborted) return Promise.reject(deadlineError());
    return new Promise<void>((resolve, reject) => {
      const done = (): void => {
        this.waiting.delete(done);
        unsubscribe();
        resolve();
      };
      const unsubscribe = whenAborted(signal, () => {
        this.waiting.delete(done);
        reject(deadlineError());
      });
      this.waiting.add(done);
    });
  }

  /** A call's caller gave up before its reply came (raceAbort): until it settles, the call is overdue. */
  overdue(): void {
    this.overdueCalls++;
  }

  /** An overdue call settled. */
  answered(): void {
    this.overdueCalls--;
    if (this.overdueCalls > 0) return;
    for (const release of [...this.waiting]) release();
  }
}

/** What a Redis call answers when its caller's deadline passes first (held back, or written and unanswered). */
export function deadlineError(): StoreError {
  return new StoreError(ErrorCode.STORE_TIMEOUT, 'redis: no answer before the request deadline');
}
