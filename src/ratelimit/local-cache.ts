/**
 * Remembers counters known to be over their limit until their window ends, so repeated calls for
 * them skip the store (envoyproxy/ratelimit's LOCAL_CACHE_SIZE_IN_BYTES cache). Keys of fixed
 * windows carry the window start, so an entry can never outlive its window's meaning.
 * Bounded: past `maxEntries` the oldest insertion is dropped.
 */
export class OverLimitCache {
  private readonly expiries = new Map<string, number>();

  constructor(private readonly maxEntries: number) {}

  has(key: string, nowMs: number): boolean {
    const expiry = this.expiries.get(key);
    if (expiry === undefined) return false;
    if (expiry > nowMs) return true;
    this.expiries.delete(key);
    return false;
  }

  add(key: string, untilMs: number): void {
    this.expiries.delete(key);
    this.expiries.set(key, untilMs);
    if (this.expiries.size > this.maxEntries) {
      const oldest = this.expiries.keys().next().value;
      if (oldest !== undefined) this.expiries.delete(oldest);
    }
  }

  get size(): number {
    return this.expiries.size;
  }
}
