/**
 * The only thing the rate limiter knows about storage. One call per rate limit request: the Redis
 * implementation answers it with one round trip (one EVALSHA; one per hash slot in Redis Cluster),
 * the memory implementation synchronously. Both must give identical answers for identical inputs;
 * test/unit/store/conformance.ts holds the shared suite.
 */
export type Algorithm = 'fixed_window' | 'sliding_window' | 'token_bucket';

export interface CounterOp {
  /**
   * Storage key. For fixed windows the caller has already put the window start in it
   * (envoyproxy/ratelimit's key format); sliding windows and token buckets use it as a stable name.
   */
  readonly key: string;
  readonly algorithm: Algorithm;
  /** Units this request consumes (0 = check only). */
  readonly hits: number;
  /**
   * Capacity: requests per window for fixed and sliding windows, bucket size (burst) for token buckets.
   * A request is over the limit when `after > capacity`.
   */
  readonly capacity: number;
  /** Window length; for token buckets, the time to refill `refill` tokens. */
  readonly windowMs: number;
  /** Token bucket only: tokens added per window (requests_per_unit). Ignored by the other algorithms. */
  readonly refill: number;
  /**
   * Fixed window only: key time to live, window plus jitter, counted from the write that creates the key or from a
   * later one (the key is never reused after its window, so either is late enough). A store may set it a moment
   * after that write (the Redis store: in the next event-loop turn).
   */
  readonly ttlMs: number;
}

/**
 * When is a request's usage written?
 * - `always`: every op consumes its hits, over the limit or not (envoyproxy/ratelimit's default).
 * - `only_over`: if any op would go over, only the ops that would go over consume; the others are
 *   left unchanged (envoyproxy/ratelimit's STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT).
 * - `none_if_over`: if any op would go over, no op consumes (all or nothing).
 * Sliding windows and token buckets never consume hits that take them over their capacity,
 * whatever the policy: a rejected request must not push a rolling limit further away.
 */
export type ConsumePolicy = 'always' | 'only_over' | 'none_if_over';

export interface CounterResult {
  /** Usage before this request, in the algorithm's units (count, estimated count, or tokens in use). */
  readonly before: number;
  /** before + hits: the usage this request asks for, whether or not it was written. */
  readonly after: number;
  /** Whether `hits` were written. */
  readonly consumed: boolean;
}

export interface CounterStore {
  /**
   * Evaluate and (per policy) apply every op, atomically per key; results in op order.
   * `nowMs` comes from the caller's clock so every instance and every test agrees on the window.
   * Rejects with a StoreError when the store fails or `signal` aborts first.
   */
  apply(
    ops: readonly CounterOp[],
    policy: ConsumePolicy,
    nowMs: number,
    signal: AbortSignal,
  ): Promise<CounterResult[]>;
  /** Resolves when the store answers (readiness). */
  ping(signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}
