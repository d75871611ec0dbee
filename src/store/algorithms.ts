// The counting semantics of every CounterStore, as pure functions.
//
// MemoryCounterStore runs these directly; the Lua script in redis-counter-store.ts mirrors them line for line, and
// the integration suite runs random op sequences through both to prove they agree. Change one, change the other.
//
// Integer safety: Lua numbers are doubles and Redis truncates them when it turns a script's return value into an
// integer reply, so every value is computed with integer operations on doubles (products, sums and `divmod`). They
// are exact while products stay below 2^53, i.e. while capacity × windowMs ≤ 9e15 (a burst of one million over a
// 100-day window). Beyond that both implementations still agree, because they perform the same IEEE operations in
// the same order, but a result may be off by one.

import type { CounterOp, CounterResult, ConsumePolicy } from './counter-store.js';

/** What a key holds between requests, tagged with the algorithm that wrote it. */
export type CounterState = FixedWindowState | SlidingWindowState | TokenBucketState;

export interface FixedWindowState {
  readonly algorithm: 'fixed_window';
  readonly count: number;
}

/** Two adjacent epoch-aligned windows: `current` hits in [start, start+W), `previous` in [start-W, start). */
export interface SlidingWindowState {
  readonly algorithm: 'sliding_window';
  readonly start: number;
  readonly current: number;
  readonly previous: number;
}

/**
 * GCRA's theoretical arrival time, kept exact as `tatMs + remainder / refill` milliseconds: the emission interval
 * windowMs / refill is rarely a whole number of milliseconds, and a float TAT would drift by a token over time.
 */
export interface TokenBucketState {
  readonly algorithm: 'token_bucket';
  readonly tatMs: number;
  readonly remainder: number;
}

/** One op's outcome, plus the state to store (with its time to live) when the op changed it. */
export interface Step<S extends CounterState> {
  readonly result: CounterResult;
  readonly write?: { readonly state: S; readonly ttlMs: number };
}

/** floor(a / b) and a mod b for non-negative integers, corrected for the rounding of the division. */
export function divmod(a: number, b: number): [quotient: number, remainder: number] {
  let q = Math.floor(a / b);
  let r = a - q * b;
  if (r < 0) {
    q -= 1;
    r += b;
  } else if (r >= b) {
    q += 1;
    r -= b;
  }
  return [q, r];
}

/** "Over the limit" everywhere: the usage this request asks for exceeds the capacity. */
export function isOver(result: CounterResult, capacity: number): boolean {
  return result.after > capacity;
}

/**
 * Fixed window. The key already names the window, so the state is a bare count. When asked to consume it always
 * does, even past the capacity: envoyproxy/ratelimit's INCRBY counts rejected requests too.
 */
export function fixedWindow(
  state: FixedWindowState | undefined,
  op: CounterOp,
  _nowMs: number, // the window start is already in the key
  consume: boolean,
): Step<FixedWindowState> {
  const before = state?.count ?? 0;
  const after = before + op.hits;
  const result = { before, after, consumed: consume };
  // A zero-hit write would change nothing; skipping it keeps a pure check free of writes (and of TTL refreshes).
  if (!consume || op.hits === 0) return { result };
  return { result, write: { state: { algorithm: 'fixed_window', count: after }, ttlMs: op.ttlMs } };
}

/**
 * Sliding window: the previous window's count weighted by how much of it still overlaps the rolling window, plus
 * the current window's count. Never consumes past the capacity, so a client that keeps retrying while rejected
 * does not push its own limit further away.
 */
export function slidingWindow(
  state: SlidingWindowState | undefined,
  op: CounterOp,
  nowMs: number,
  consume: boolean,
): Step<SlidingWindowState> {
  const windowMs = op.windowMs;
  let start = nowMs - divmod(nowMs, windowMs)[1];
  let current = 0;
  let previous = 0;
  if (state !== undefined) {
    if (state.start >= start) {
      // A state from a later window means another instance's clock runs ahead; treat its window as the current
      // one rather than wiping it (elapsed is then clamped to 0 below).
      start = state.start;
      current = state.current;
      previous = state.previous;
    } else if (state.start === start - windowMs) {
      previous = state.current;
    }
  }
  const elapsed = Math.max(0, nowMs - start);
  const before = divmod(previous * (windowMs - elapsed), windowMs)[0] + current;
  const after = before + op.hits;
  const consumed = consume && after <= op.capacity;
  const result = { before, after, consumed };
  if (!consumed || op.hits === 0) return { result };
  // The current window's count matters until the end of the next window, when it stops being "previous".
  const ttlMs = start + 2 * windowMs - nowMs;
  return {
    result,
    write: { state: { algorithm: 'sliding_window', start, current: current + op.hits, previous }, ttlMs },
  };
}

/**
 * Token bucket as GCRA. Emission interval T = windowMs / refill, burst = capacity. Tokens in use are
 * ceil((tat - now) / T), which in exact integers is ceil(((tatMs - now) × refill + remainder) / windowMs).
 * Never consumes past the capacity.
 */
export function tokenBucket(
  state: TokenBucketState | undefined,
  op: CounterOp,
  nowMs: number,
  consume: boolean,
): Step<TokenBucketState> {
  const { windowMs, refill, capacity, hits } = op;
  // max(tat, now), in the same split representation.
  let baseMs = nowMs;
  let baseRemainder = 0;
  let before = 0;
  if (state !== undefined && state.tatMs >= nowMs) {
    baseMs = state.tatMs;
    baseRemainder = state.remainder;
    const [q, r] = divmod((state.tatMs - nowMs) * refill + state.remainder, windowMs);
    before = Math.min(capacity, r > 0 ? q + 1 : q);
  }
  const after = before + hits;
  const consumed = consume && after <= capacity;
  const result = { before, after, consumed };
  if (!consumed || hits === 0) return { result };
  // tat' = max(tat, now) + hits × T = base + (hits × windowMs) / refill, carrying whole milliseconds out of the
  // remainder.
  const [addMs, addRemainder] = divmod(hits * windowMs, refill);
  const [carryMs, remainder] = divmod(baseRemainder + addRemainder, refill);
  const tatMs = baseMs + addMs + carryMs;
  // The state only matters until the bucket is full again, at tat'; round up so it never expires early.
  const ttlMs = Math.max(1, tatMs - nowMs + (remainder > 0 ? 1 : 0));
  return { result, write: { state: { algorithm: 'token_bucket', tatMs, remainder }, ttlMs } };
}

/**
 * One op against whatever its key holds. A key holding another algorithm's state (the configuration changed the
 * algorithm but not the key) counts as empty, and is replaced if the op writes.
 */
export function stepOp(state: CounterState | undefined, op: CounterOp, nowMs: number, consume: boolean): Step<CounterState> {
  switch (op.algorithm) {
    case 'fixed_window':
      return fixedWindow(state?.algorithm === 'fixed_window' ? state : undefined, op, nowMs, consume);
    case 'sliding_window':
      return slidingWindow(state?.algorithm === 'sliding_window' ? state : undefined, op, nowMs, consume);
    case 'token_bucket':
      return tokenBucket(state?.algorithm === 'token_bucket' ? state : undefined, op, nowMs, consume);
  }
}

/** Which ops may consume, given which ones would go over (see ConsumePolicy). */
export function decideConsumption(policy: ConsumePolicy, over: readonly boolean[]): boolean[] {
  const anyOver = over.includes(true);
  switch (policy) {
    case 'always':
      return over.map(() => true);
    case 'only_over':
      return over.map((o) => o || !anyOver);
    case 'none_if_over':
      return over.map(() => !anyOver);
  }
}

/** Where applyOps reads and writes states: a Map for the memory store, a fake in tests. */
export interface StateStorage {
  read(key: string): CounterState | undefined;
  write(key: string, state: CounterState, ttlMs: number): void;
}

/**
 * A whole request: evaluate every op against the stored states, decide which ops consume, then step each op again
 * in order with its decision and write. The second pass re-reads the storage, so two ops on the same key see each
 * other's writes (as consecutive INCRBYs would); for distinct keys both passes give the same numbers.
 */
export function applyOps(
  ops: readonly CounterOp[],
  policy: ConsumePolicy,
  nowMs: number,
  storage: StateStorage,
): CounterResult[] {
  const over = ops.map((op) => isOver(stepOp(storage.read(op.key), op, nowMs, false).result, op.capacity));
  const consume = decideConsumption(policy, over);
  return ops.map((op, i) => {
    const step = stepOp(storage.read(op.key), op, nowMs, consume[i] === true);
    if (step.write !== undefined) storage.write(op.key, step.write.state, step.write.ttlMs);
    return step.result;
  });
}

/**
 * Rejects ops no algorithm can evaluate (a caller bug, not a store failure), before any store is touched, so both
 * stores fail the same way instead of the Lua script dividing by zero.
 */
export function validateRequest(ops: readonly CounterOp[], nowMs: number): void {
  if (!Number.isSafeInteger(nowMs) || nowMs < 0) throw new RangeError(`nowMs must be a non-negative integer, got ${nowMs}`);
  for (const op of ops) {
    const where = `counter op for key ${JSON.stringify(op.key)}`;
    const requireInteger = (name: string, value: number, min: number): void => {
      if (!Number.isSafeInteger(value) || value < min) {
        throw new RangeError(`${where}: ${name} must be an integer >= ${min}, got ${value}`);
      }
    };
    requireInteger('hits', op.hits, 0);
    requireInteger('capacity', op.capacity, 0);
    switch (op.algorithm) {
      case 'fixed_window':
        requireInteger('ttlMs', op.ttlMs, 1);
        break;
      case 'sliding_window':
        requireInteger('windowMs', op.windowMs, 1);
        break;
      case 'token_bucket':
        requireInteger('windowMs', op.windowMs, 1);
        requireInteger('refill', op.refill, 1);
        break;
      default:
        throw new RangeError(`${where}: unknown algorithm ${JSON.stringify(op.algorithm as unknown)}`);
    }
  }
}
