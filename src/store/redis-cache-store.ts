// The CacheStore for Redis: one hash per path key (fields = variants), so invalidating a path is one DEL that every
// instance sharing the Redis sees at once; no pub/sub and no per-instance copies to keep in step. Each field holds
// its own expiry (hash fields have no TTL before Redis 7.4); the hash's TTL is raised to the longest entry's.
//
// Every call is bounded by the caller's signal (the cache budget, well below Envoy's message_timeout): a slow or
// dead Redis turns into StoreError at once, and the stream carries on without the cache.

import type { Cluster, Redis } from 'ioredis';
import { ErrorCode, StoreError } from '../shared/errors.js';
import type { CachedResponse, CacheStore } from './cache-store.js';
import { raceAbort } from './redis-counter-store.js';

interface Serialized {
  s: number;
  h: [string, string][];
  /** body, base64 */
  b: string;
  t: number;
  a: number;
  l: number;
  v: [string, string | null][];
  /** expires at, ms */
  e: number;
}

export class RedisCacheStore implements CacheStore {
  constructor(private readonly client: Redis | Cluster, private readonly prefix: string) {}

  async get(pathKey: string, variant: string, nowMs: number, signal: AbortSignal): Promise<CachedResponse | undefined> {
    const raw = await this.run(signal, () => this.client.hget(this.key(pathKey), variant));
    if (raw === null) return undefined;
    let parsed: Serialized;
    try {
      parsed = JSON.parse(raw) as Serialized;
    } catch {
      return undefined;
    }
    if (parsed.e <= nowMs) return undefined;
    return {
      status: parsed.s, headers: parsed.h, body: Buffer.from(parsed.b, 'base64'), storedAtMs: parsed.t,
      initialAgeSeconds: parsed.a, lifetimeSeconds: parsed.l, vary: parsed.v,
    };
  }

  async set(pathKey: string, variant: string, entry: CachedResponse, ttlMs: number, signal: AbortSignal): Promise<void> {
    if (ttlMs <= 0) return;
    const value: Serialized = {
      s: entry.status, h: entry.headers.map(([n, v]) => [n, v]), b: entry.body.toString('base64'), t: entry.storedAtMs,
      a: entry.initialAgeSeconds, l: entry.lifetimeSeconds, v: entry.vary.map(([n, v]) => [n, v]), e: entry.storedAtMs + ttlMs,
    };
    const key = this.key(pathKey);
    const ms = Math.ceil(ttlMs);
    // NX sets a TTL on a new hash; GT only ever lengthens an existing one (Redis 7.0+).
    await this.run(signal, () => this.client.multi().hset(key, variant, JSON.stringify(value)).pexpire(key, ms, 'NX').pexpire(key, ms, 'GT').exec());
  }

  async invalidate(pathKey: string, signal: AbortSignal): Promise<void> {
    await this.run(signal, () => this.client.del(this.key(pathKey)));
  }

  async ping(signal: AbortSignal): Promise<void> {
    await this.run(signal, () => this.client.ping());
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }

  private key(pathKey: string): string {
    return `${this.prefix}${pathKey}`;
  }

  private run<T>(signal: AbortSignal, work: () => Promise<T>): Promise<T> {
    if (signal.aborted) return Promise.reject(new StoreError(ErrorCode.STORE_TIMEOUT, 'redis: no answer before the request deadline'));
    let started: Promise<T>;
    try {
      started = work();
    } catch (error) {
      return Promise.reject(new StoreError(ErrorCode.STORE_UNAVAILABLE, `redis: ${(error as Error).message}`, { cause: error }));
    }
    return raceAbort(started, signal);
  }
}
