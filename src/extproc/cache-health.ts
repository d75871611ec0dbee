/**
 * Whether the cache store is failing, shared by every stream so that an outage is logged once per change of state
 * instead of once per request: at a few hundred requests a second, a line per failed lookup buried everything else
 * in the log while Redis was away. The failures stay counted per operation in
 * portcullis_extproc_cache_errors_total; the lines that are not worth a warning go to debug.
 */
export class CacheHealth {
  private failing = false;
  private failures = 0;

  /** A cache call failed. True when it is the first failure since the store last answered: log that one. */
  failed(): boolean {
    this.failures++;
    if (this.failing) return false;
    this.failing = true;
    return true;
  }

  /** A cache call succeeded. When this ends a run of failures, how many there were (log the recovery); else undefined. */
  answered(): number | undefined {
    if (!this.failing) return undefined;
    const failures = this.failures;
    this.failing = false;
    this.failures = 0;
    return failures;
  }
}
