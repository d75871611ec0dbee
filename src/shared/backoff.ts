/**
 * How long to leave a failing dependency alone: `firstMs` after the first failure of a run, doubling with each
 * further failure up to `maxMs`, shortened at random by up to `jitter` (a fraction). The jitter only ever shortens:
 * the backoff is never longer than the cap the caller chose, and gateways that lost the dependency at the same moment
 * (one outage, one deploy) spread their retries over the last fifth of each delay instead of arriving together.
 */
export interface BackoffPolicy {
  readonly firstMs: number;
  readonly maxMs: number;
  readonly jitter: number;
}

/** The delay after the `failures`-th failure in a row (1 for the first); `random` in [0, 1). */
export function backoffDelayMs(failures: number, policy: BackoffPolicy, random: number): number {
  // 2^30 is far past any cap; the exponent is bounded so a run of failures that lasts for ever never overflows.
  const nominal = Math.min(policy.maxMs, policy.firstMs * 2 ** Math.min(Math.max(failures, 1) - 1, 30));
  return Math.round(nominal * (1 - policy.jitter * random));
}

/**
 * A run of failures of one dependency and when it may be tried again. Callers record every attempt's result; while
 * `closedUntilMs` is in the future they do not call the dependency. Time is the caller's clock.
 */
export class Backoff {
  private run = 0;
  private untilMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly policy: BackoffPolicy, private readonly random: () => number) {}

  /**
   * An attempt failed at `nowMs`: the delay before the next, which also holds off other callers until then.
   * `askedMs`: how long the dependency asked to be left alone (an HTTP Retry-After, from `nowMs`). The delay is at
   * least that, but never over `maxMs`: the dependency may slow the retries down to the pace a long outage would
   * reach anyway, not stop them (a `Retry-After: 999999` would otherwise switch it off for days). No jitter is taken
   * off what was asked.
   */
  failed(nowMs: number, askedMs = 0): number {
    this.run++;
    const delay = Math.max(backoffDelayMs(this.run, this.policy, this.random()), Math.min(askedMs, this.policy.maxMs));
    this.untilMs = nowMs + delay;
    return delay;
  }

  /** An attempt succeeded: the next failure starts a new run at `firstMs`. */
  succeeded(): void {
    this.run = 0;
    this.untilMs = Number.NEGATIVE_INFINITY;
  }

  /** Failures in a row so far (0: the last attempt succeeded, or none was made). */
  get failures(): number {
    return this.run;
  }

  /** Whether the dependency is to be left alone at `nowMs`. */
  waiting(nowMs: number): boolean {
    return nowMs < this.untilMs;
  }

  /** Until when it is left alone (−Infinity while not failing). */
  get closedUntilMs(): number {
    return this.untilMs;
  }
}
