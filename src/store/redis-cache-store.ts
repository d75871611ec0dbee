// The CacheStore for Redis: one hash per path key (fields = variants), so invalidating a path is one DEL that every
// instance sharing the Redis sees at once; no pub/sub and no per-instance copies to keep in step. Hash fields have no
// TTL before Redis 7.4, so each field holds its own expiry and a sorted set beside the hash (same hash tag, so one
// slot in a cluster) indexes the variants by expiry: every store deletes the variants that have expired and those
// past MAX_VARIANTS_PER_PATH, and sets both keys' TTL to the longest entry's. A variant's refresh lock is a key of its
// own (SET NX PX: one holder across instances, gone at its TTL), in the same slot so that the store script deletes it.
//
// Every call is bounded by the caller's signal (the cache budget, well below Envoy's message_timeout): a slow or
// dead Redis turns into StoreError at once, and the stream carries on without the cache.

import type { Cluster, Redis } from 'ioredis';
import { ErrorCode, StoreError } from '../shared/errors.js';
import { MAX_VARIANTS_PER_PATH, type CachedResponse, type CacheStore } from './cache-store.js';
import { raceAbort } from './redis-counter-store.js';
import { deadlineError, StallGuard } from './stall-guard.js';

interface Serialized {
  s: number;
  h: [string, string][];
  /** body, base64 */
  b: string;
  t: number;
  a: number;
  l: number;
  /** stale-while-revalidate seconds; absent in entries stored before it existed */
  w?: number;
  v: [string, string | null][];
  /** expires at, ms */
  e: number;
}

/**
 * KEYS: the path's hash, its expiry index, the variant's refresh lock (released: the entry is fresh again). ARGV: variant, serialized entry, expires at (ms), now (ms), max variants.
 * At most 500 expired and 500 surplus variants go per call (and unpack() stays well inside Lua's stack), so a path
 * that had piled up is cleaned over a few stores, never in one long script.
 */
const STORE_SCRIPT = `
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local now = tonumber(ARGV[4])
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 500)
local over = redis.call('ZCARD', KEYS[2]) - #gone - tonumber(ARGV[5])
if over > 0 then
  local soonest = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf', 'LIMIT', 0, math.min(over, 500))
  for _, v in ipairs(soonest) do gone[#gone + 1] = v end
end
if #gone > 0 then
  redis.call('HDEL', KEYS[1], unpack(gone))
  redis.call('ZREM', KEYS[2], unpack(gone))
end
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if last[2] == nil then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 0
end
local ttl = math.max(1, math.ceil(tonumber(last[2]) - now))
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return #gone
`;
const STORE_SCRIPT_NAME = 'portcullisCacheStore';

interface StoreScriptRunner {
  [STORE_SCRIPT_NAME](hash: string, index: string, lock: string, variant: string, value: string, expiresAtMs: number, nowMs: number, maxVariants: number): Promise<number>;
}

export class RedisCacheStore implements CacheStore {
  /** Single node only, as in RedisCounterStore: holds calls back while Redis leaves one unanswered past its deadline. */
  private readonly stall: StallGuard | undefined;

  constructor(private readonly client: Redis | Cluster, private readonly prefix: string) {
    this.stall = client.isCluster ? undefined : new StallGuard();
    // defineCommand sends EVALSHA and falls back to EVAL on NOSCRIPT (after a restart or SCRIPT FLUSH).
    if (!(STORE_SCRIPT_NAME in client)) client.defineCommand(STORE_SCRIPT_NAME, { numberOfKeys: 3, lua: STORE_SCRIPT });
  }

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
      initialAgeSeconds: parsed.a, lifetimeSeconds: parsed.l, staleWhileRevalidateSeconds: parsed.w ?? 0, vary: parsed.v,
    };
  }

  async set(pathKey: string, variant: string, entry: CachedResponse, ttlMs: number, signal: AbortSignal): Promise<void> {
    if (ttlMs <= 0) return;
    const value: Serialized = {
      s: entry.status, h: entry.headers.map(([n, v]) => [n, v]), b: entry.body.toString('base64'), t: entry.storedAtMs,
      a: entry.initialAgeSeconds, l: entry.lifetimeSeconds, w: entry.staleWhileRevalidateSeconds, v: entry.vary.map(([n, v]) => [n, v]), e: entry.storedAtMs + ttlMs,
    };
    const key = this.key(pathKey);
    const runner = this.client as unknown as StoreScriptRunner;
    await this.run(signal, () => runner[STORE_SCRIPT_NAME](key, `${key}:exp`, this.lockKey(key, variant), variant, JSON.stringify(value), value.e, entry.storedAtMs, MAX_VARIANTS_PER_PATH));
  }

  async tryLock(pathKey: string, variant: string, ttlMs: number, _nowMs: number, signal: AbortSignal): Promise<boolean> {
    const lock = this.lockKey(this.key(pathKey), variant);
    const taken = await this.run(signal, () => this.client.set(lock, '1', 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX'));
    return taken === 'OK';
  }

  async invalidate(pathKey: string, signal: AbortSignal): Promise<void> {
    const key = this.key(pathKey);
    await this.run(signal, () => this.client.del(key, `${key}:exp`));
  }

  async ping(signal: AbortSignal): Promise<void> {
    await this.run(signal, () => this.client.ping());
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }

  /** The path's hash; its expiry index is this + ':exp'. The braces keep both in one cluster slot. */
  private key(pathKey: string): string {
    return `${this.prefix}{${pathKey}}`;
  }

  /** A variant's refresh lock: its own key (SET NX PX), in the path's slot so the store script can release it. */
  private lockKey(hashKey: string, variant: string): string {
    return `${hashKey}:lock:${variant}`;
  }

  private run<T>(signal: AbortSignal, work: () => Promise<T>): Promise<T> {
    if (signal.aborted) return Promise.reject(deadlineError());
    if (this.stall?.stalled) return this.stall.clear(signal).then(() => this.run(signal, work));
    let started: Promise<T>;
    try {
      started = work();
    } catch (error) {
      return Promise.reject(new StoreError(ErrorCode.STORE_UNAVAILABLE, `redis: ${(error as Error).message}`, { cause: error }));
    }
    return raceAbort(started, signal, this.stall);
  }
}
