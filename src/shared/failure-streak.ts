/**
 * Whether a dependency (the counter store, the cache store) is failing, shared by every request, so that an outage
 * is logged once per change of state instead of once per request: at a few hundred requests a second, a line per
 * failed call buries everything else in the log while Redis is away. The failures stay counted in the metrics;
 * the callers log the first one of a run and its end.
 */
export class FailureStreak {
  private failing = false;
  private failures = 0;

  /** A call failed. True when it is the first failure since the dependency last answered: log that one. */
  failed(): boolean {
    this.failures++;
    if (this.failing) return false;
    this.failing = true;
    return true;
  }

  /** A call succeeded. When this ends a run of failures, how many there were (log the recovery); else undefined. */
  answered(): number | undefined {
    if (!this.failing) return undefined;
    const failures = this.failures;
    this.failing = false;
    this.failures = 0;
    return failures;
  }
}
