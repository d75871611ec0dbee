/**
 * The only thing the response cache knows about storage. Entries are grouped under a path key (host + normalized
 * path) so that an unsafe request invalidates every variant of the path in one call, on every instance sharing the
 * store. Both implementations must give identical answers; test/unit/store/cache-conformance.ts holds the suite.
 */

export interface CachedResponse {
  readonly status: number;
  /** Upstream response headers as stored (hop-by-hop headers already removed). */
  readonly headers: readonly (readonly [string, string])[];
  readonly body: Buffer;
  readonly storedAtMs: number;
  readonly initialAgeSeconds: number;
  /** Freshness lifetime; the entry expires at storedAtMs + (lifetime - initialAge) seconds. */
  readonly lifetimeSeconds: number;
  /**
   * Seconds past its lifetime the entry may still be served while one request refreshes it (stale-while-revalidate,
   * RFC 5861 §3); 0: never served stale. The store keeps the entry that much longer (the ttl given to set()).
   */
  readonly staleWhileRevalidateSeconds: number;
  /** The request's values of the headers the response's Vary named (null: absent). */
  readonly vary: readonly (readonly [string, string | null])[];
}

/**
 * Variants one path keeps at most; past it the soonest to expire go first. Without a bound, one path asked for with
 * ever new query strings grows without end until its entries expire, each up to cache.max_entry_bytes.
 */
export const MAX_VARIANTS_PER_PATH = 1000;

export interface CacheStore {
  /**
   * The entry stored until after nowMs (its lifetime and stale window: whether it is fresh is the caller's to tell),
   * or undefined. Rejects with a StoreError when the store fails or `signal` aborts first.
   */
  get(pathKey: string, variant: string, nowMs: number, signal: AbortSignal): Promise<CachedResponse | undefined>;
  /** Stores `entry` until storedAtMs + ttlMs, and releases the variant's refresh lock (the entry is fresh again). */
  set(pathKey: string, variant: string, entry: CachedResponse, ttlMs: number, signal: AbortSignal): Promise<void>;
  /**
   * Takes the variant's refresh lock for ttlMs: true when taken, false while another holder's has not run out. It
   * lets one request of all those that find a stale entry (on every instance sharing the store) go to the origin to
   * refresh it. Nothing releases it but set() of the variant and its ttl: a refresh that fails or stores nothing
   * hands the lock on when the ttl passes. The ttl runs on nowMs in memory, on the server's clock in Redis.
   */
  tryLock(pathKey: string, variant: string, ttlMs: number, nowMs: number, signal: AbortSignal): Promise<boolean>;
  /** Drops every variant stored under `pathKey`. */
  invalidate(pathKey: string, signal: AbortSignal): Promise<void>;
  ping(signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

export function entrySize(entry: CachedResponse): number {
  let size = entry.body.length + 64;
  for (const [n, v] of entry.headers) size += n.length + v.length + 8;
  for (const [n, v] of entry.vary) size += n.length + (v?.length ?? 0) + 8;
  return size;
}
