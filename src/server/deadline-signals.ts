/**
 * Hands out AbortSignals that fire at a call's deadline. Calls whose deadlines fall in the same
 * `slotMs` slot share one controller and one timer: under load that is one of each per slot instead
 * of per call, which the profile showed to be a visible share of a request's cost. A signal fires at
 * the end of its slot, at most `slotMs` after the exact deadline.
 */
/** One reason for every expiry: abort() without one builds a DOMException, stack trace and all, each time. */
const DEADLINE_EXCEEDED = Object.freeze(new Error('deadline exceeded'));

export class DeadlineSignals {
  private slot = -1;
  private controller: AbortController | undefined;

  constructor(private readonly slotMs = 2) {}

  /** `atMs` is a Date.now() timestamp. */
  signalFor(atMs: number): AbortSignal {
    const slot = Math.ceil(atMs / this.slotMs);
    if (slot !== this.slot || this.controller === undefined) {
      const controller = new AbortController();
      setTimeout(() => controller.abort(DEADLINE_EXCEEDED), Math.max(0, slot * this.slotMs - Date.now())).unref();
      this.controller = controller;
      this.slot = slot;
    }
    return this.controller.signal;
  }
}

/**
 * How long the store may take for a call with `remainingMs` left before its caller gives up: the caller's deadline
 * minus a margin, capped by `timeoutMs` (ratelimit.timeout_ms). The margin is the time the answer needs to reach
 * Envoy from a busy process (the event loop may be late to fire the store deadline, then the response must be
 * encoded and written): without it, a stalled store makes the configured failure_mode answer (allow/deny) arrive
 * just after Envoy gave up, and Envoy sees DEADLINE_EXCEEDED instead. 20% of what is left, 5 ms to 250 ms (a busy
 * machine was measured taking 50 to 150 ms from the callback to the caller).
 */
export function storeDeadlineMs(remainingMs: number, timeoutMs: number): number {
  const marginMs = Math.min(250, Math.max(5, remainingMs * 0.2));
  return Math.max(1, Math.min(timeoutMs, remainingMs - marginMs));
}
