// A CacheStore in process memory, bounded by bytes: least recently used entries go first. For one instance (no
// Redis configured) and as the reference the Redis store is compared with. Time is the nowMs each call passes in.

import { ErrorCode, StoreError } from '../shared/errors.js';
import { entrySize, MAX_VARIANTS_PER_PATH, type CachedResponse, type CacheStore } from './cache-store.js';

/**
 * What a slot costs beyond entrySize (the body and header text): the Slot and CachedResponse objects, the body's
 * Buffer and ArrayBuffer, the header pair arrays and string headers, and the Map and Set entries that hold the key.
 * Measured on Node 20 (heap + array buffers after GC, 1-header entries): about 700 bytes a slot, 60 a header. Without
 * it a store of small responses (404s, `{}`) held 7 times its max_memory_bytes.
 */
const SLOT_OVERHEAD_BYTES = 768;
const HEADER_OVERHEAD_BYTES = 64;

/** Bytes `entry` holds in this store under `key` (the key is kept twice: in slots and in its path's set). */
export function heldBytes(key: string, entry: CachedResponse): number {
  return entrySize(entry) + SLOT_OVERHEAD_BYTES + HEADER_OVERHEAD_BYTES * (entry.headers.length + entry.vary.length) + 2 * key.length;
}

const LOCK_SWEEP_MIN = 1024;

interface Slot {
  readonly entry: CachedResponse;
  readonly expiresAtMs: number;
  readonly size: number;
}

export class MemoryCacheStore implements CacheStore {
  /** Insertion order is recency order: a read re-inserts. Key: pathKey + '\n' + variant. */
  private readonly slots = new Map<string, Slot>();
  private readonly byPath = new Map<string, Set<string>>();
  /** Refresh locks: key as in slots, value when the lock runs out (ms). Apart from the slots, as in Redis. */
  private readonly locks = new Map<string, number>();
  /** Past this many locks the run-out ones are swept; then it is set to twice what is left (amortized O(1)). */
  private lockSweepAt = LOCK_SWEEP_MIN;
  private bytes = 0;
  private closed = false;

  constructor(private readonly maxBytes: number) {}

  get size(): number {
    return this.slots.size;
  }

  get usedBytes(): number {
    return this.bytes;
  }

  /** Refresh locks held, run-out ones not yet swept included. */
  get lockCount(): number {
    return this.locks.size;
  }

  async get(pathKey: string, variant: string, nowMs: number, signal: AbortSignal): Promise<CachedResponse | undefined> {
    this.checkUsable(signal);
    const key = `${pathKey}\n${variant}`;
    const slot = this.slots.get(key);
    if (slot === undefined) return undefined;
    if (slot.expiresAtMs <= nowMs) {
      this.drop(key);
      return undefined;
    }
    this.slots.delete(key);
    this.slots.set(key, slot);
    return slot.entry;
  }

  async set(pathKey: string, variant: string, entry: CachedResponse, ttlMs: number, signal: AbortSignal): Promise<void> {
    this.checkUsable(signal);
    const key = `${pathKey}\n${variant}`;
    const size = heldBytes(key, entry);
    this.drop(key);
    if (ttlMs <= 0) return;
    this.locks.delete(key);
    if (size > this.maxBytes) return;
    while (this.bytes + size > this.maxBytes) {
      const oldest = this.slots.keys().next();
      if (oldest.done === true) break;
      this.drop(oldest.value);
    }
    // A body of under 4 KiB is usually a view into an 8 KiB pool slab that Buffer.concat / allocUnsafe share with
    // short-lived buffers; kept, it would pin the whole slab (a 40-byte body held 8 KiB, far past max_memory_bytes).
    const body = Buffer.allocUnsafeSlow(entry.body.length);
    entry.body.copy(body);
    this.slots.set(key, { entry: { ...entry, body }, expiresAtMs: entry.storedAtMs + ttlMs, size });
    this.bytes += size;
    let variants = this.byPath.get(pathKey);
    if (variants === undefined) this.byPath.set(pathKey, (variants = new Set()));
    variants.add(key);
    if (variants.size > MAX_VARIANTS_PER_PATH) this.trim(variants, entry.storedAtMs);
  }

  async tryLock(pathKey: string, variant: string, ttlMs: number, nowMs: number, signal: AbortSignal): Promise<boolean> {
    this.checkUsable(signal);
    const key = `${pathKey}\n${variant}`;
    const heldUntil = this.locks.get(key);
    if (heldUntil !== undefined && heldUntil > nowMs) return false;
    // Deleted first: a re-taken lock goes to the end of the map like a new one.
    this.locks.delete(key);
    this.locks.set(key, nowMs + ttlMs);
    if (this.locks.size > this.lockSweepAt) {
      for (const [k, until] of this.locks) if (until <= nowMs) this.locks.delete(k);
      this.lockSweepAt = Math.max(LOCK_SWEEP_MIN, 2 * this.locks.size);
    }
    return true;
  }

  /** A path past MAX_VARIANTS_PER_PATH: its expired variants go, then the soonest to expire, as in the Redis store. */
  private trim(variants: Set<string>, nowMs: number): void {
    let soonest: string | undefined;
    for (const key of [...variants]) {
      const expiresAtMs = this.slots.get(key)!.expiresAtMs;
      if (expiresAtMs <= nowMs) this.drop(key);
      else if (soonest === undefined || expiresAtMs < this.slots.get(soonest)!.expiresAtMs) soonest = key;
    }
    if (variants.size > MAX_VARIANTS_PER_PATH && soonest !== undefined) this.drop(soonest);
  }

  async invalidate(pathKey: string, signal: AbortSignal): Promise<void> {
    this.checkUsable(signal);
    for (const key of this.byPath.get(pathKey) ?? []) this.drop(key);
    this.byPath.delete(pathKey);
  }

  async ping(signal: AbortSignal): Promise<void> {
    this.checkUsable(signal);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.slots.clear();
    this.byPath.clear();
    this.locks.clear();
    this.bytes = 0;
  }

  private drop(key: string): void {
    const slot = this.slots.get(key);
    if (slot === undefined) return;
    this.slots.delete(key);
    this.bytes -= slot.size;
    const pathKey = key.slice(0, key.indexOf('\n'));
    const variants = this.byPath.get(pathKey);
    variants?.delete(key);
    if (variants?.size === 0) this.byPath.delete(pathKey);
  }

  private checkUsable(signal: AbortSignal): void {
    if (signal.aborted) throw new StoreError(ErrorCode.STORE_TIMEOUT, 'memory cache store: request deadline passed');
    if (this.closed) throw new StoreError(ErrorCode.STORE_UNAVAILABLE, 'memory cache store is closed');
  }
}
