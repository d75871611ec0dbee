/**
 * Hands out AbortSignals that fire at a call's deadline. Calls whose deadlines fall in the same slot share one
 * controller and one timer: under load that is one of each per slot instead of per call, which the profile showed to
 * be a visible share of a request's cost. A slot is `minSlotMs` wide, or for a far deadline the smallest power-of-two
 * multiple of it that is at least 1/64 of the wait, so a signal fires at most 1/32 of its wait late: well inside
 * the 20 % margin storeDeadlineMs keeps. At low load this is what lets calls share: a 1 s store deadline gets 16 ms
 * slots, not a controller and a 1 s timer per call, which outlived scavenges (docs/benchmarks.md).
 */
/** One reason for every expiry: abort() without one builds a DOMException, stack trace and all, each time. */
const DEADLINE_EXCEEDED = Object.freeze(new Error('deadline exceeded'));

export class DeadlineSignals {
  /** The newest slot of each width in use, and its controller. */
  private readonly newest = new Map<number, { slot: number; controller: AbortController }>();

  constructor(private readonly minSlotMs = 2) {}

  /** `atMs` is a Date.now() timestamp. */
  signalFor(atMs: number): AbortSignal {
    const nowMs = Date.now();
    let width = this.minSlotMs;
    while (width * 64 <= atMs - nowMs) width *= 2;
    const slot = Math.ceil(atMs / width);
    const shared = this.newest.get(width);
    if (shared !== undefined && shared.slot === slot) return shared.controller.signal;
    const controller = new AbortController();
    setTimeout(() => controller.abort(DEADLINE_EXCEEDED), Math.max(0, slot * width - nowMs)).unref();
    this.newest.set(width, { slot, controller });
    return controller.signal;
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
