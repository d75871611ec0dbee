// A CounterStore in process memory: for a single instance, for tests, and as the reference the Redis store is
// compared with. The semantics live in algorithms.ts; this file only keeps states and their expiry.
//
// Time is the nowMs each call passes in, never the wall clock, so tests move time by passing a later nowMs. Expired
// entries are dropped when touched, and a small sweep every few calls reclaims the ones nobody touches again (every
// fixed window leaves one such key behind), without a timer that would keep the process alive.

import { ErrorCode, StoreError } from '../shared/errors.js';
import { applyOps, validateRequest, type CounterState } from './algorithms.js';
import type { ConsumePolicy, CounterOp, CounterResult, CounterStore } from './counter-store.js';

interface Entry {
  readonly state: CounterState;
  readonly expiresAtMs: number;
}

export interface MemoryCounterStoreOptions {
  /** Sweep after this many apply() calls. */
  readonly sweepEveryCalls?: number;
  /** Entries a sweep examines at most, so no single request pays for a large cleanup. */
  readonly sweepBudget?: number;
  /** Most counter windows held (memory.max_keys); default 500,000. */
  readonly maxKeys?: number;
  readonly observer?: { keys(n: number): void; evicted(): void };
}

/** How many of the least recently used entries a full store looks at for an expired one before evicting a live one. */
const EVICTION_SCAN = 64;

export class MemoryCounterStore implements CounterStore {
  private readonly entries = new Map<string, Entry>();
  private readonly sweepEveryCalls: number;
  private readonly sweepBudget: number;
  private callsSinceSweep = 0;
  /** Where the last sweep stopped; Map iterators stay valid while entries are added and deleted. */
  private sweepCursor: Iterator<[string, Entry]> | undefined;
  private closed = false;
  private readonly maxKeys: number;
  private readonly observer: MemoryCounterStoreOptions['observer'];

  constructor(options: MemoryCounterStoreOptions = {}) {
    this.sweepEveryCalls = options.sweepEveryCalls ?? 64;
    this.sweepBudget = options.sweepBudget ?? 256;
    this.maxKeys = options.maxKeys ?? 500_000;
    this.observer = options.observer;
  }

  /** Entries held, including expired ones not yet swept (for tests and metrics). */
  get size(): number {
    return this.entries.size;
  }

  /** Remaining time to live of `key` at `nowMs`, like Redis's PTTL; undefined when absent or expired. */
  ttlMs(key: string, nowMs: number): number | undefined {
    const entry = this.entries.get(key);
    return entry === undefined || entry.expiresAtMs <= nowMs ? undefined : entry.expiresAtMs - nowMs;
  }

  async apply(
    ops: readonly CounterOp[],
    policy: ConsumePolicy,
    nowMs: number,
    signal: AbortSignal,
  ): Promise<CounterResult[]> {
    this.checkUsable(signal);
    validateRequest(ops, nowMs);
    const results = applyOps(ops, policy, nowMs, {
      read: (key) => this.read(key, nowMs),
      write: (key, state, ttlMs) => this.write(key, { state, expiresAtMs: nowMs + ttlMs }, nowMs),
    });
    if (++this.callsSinceSweep >= this.sweepEveryCalls) {
      this.callsSinceSweep = 0;
      this.sweep(nowMs);
      this.observer?.keys(this.entries.size);
    }
    return results;
  }

  async ping(signal: AbortSignal): Promise<void> {
    this.checkUsable(signal);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.entries.clear();
    this.sweepCursor = undefined;
  }

  private checkUsable(signal: AbortSignal): void {
    if (signal.aborted) throw new StoreError(ErrorCode.STORE_TIMEOUT, 'memory counter store: request deadline passed');
    if (this.closed) throw new StoreError(ErrorCode.STORE_UNAVAILABLE, 'memory counter store is closed');
  }

  private read(key: string, nowMs: number): CounterState | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    // Same rule as Redis: a key with a TTL of t ms written at w is gone from w + t on.
    if (entry.expiresAtMs <= nowMs) {
      this.entries.delete(key);
      return undefined;
    }
    // Map order is recency order: the least recently used window comes first.
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.state;
  }

  /**
   * A full store makes room for a new key: an expired window among the least recently used goes first (no count
   * changes), else the least recently used live one (its count restarts from 0 if it is asked for again).
   */
  private write(key: string, entry: Entry, nowMs: number): void {
    if (!this.entries.has(key) && this.entries.size >= this.maxKeys) {
      let examined = 0;
      let victim: string | undefined;
      for (const [k, e] of this.entries) {
        if (e.expiresAtMs <= nowMs) {
          victim = k;
          break;
        }
        victim ??= k;
        if (++examined >= EVICTION_SCAN) break;
      }
      const live = victim !== undefined && (this.entries.get(victim)?.expiresAtMs ?? 0) > nowMs;
      if (victim !== undefined) this.entries.delete(victim);
      if (live) this.observer?.evicted();
    }
    this.entries.set(key, entry);
  }

  private sweep(nowMs: number): void {
    for (let examined = 0; examined < this.sweepBudget; examined++) {
      this.sweepCursor ??= this.entries.entries();
      const next = this.sweepCursor.next();
      if (next.done === true) {
        this.sweepCursor = undefined;
        return;
      }
      const [key, entry] = next.value;
      if (entry.expiresAtMs <= nowMs) this.entries.delete(key);
    }
  }
}
