// The behaviour every CacheStore must show, run against each implementation (memory here in test/unit, Redis in
// test/integration). Expiry is checked through the nowMs passed in, so it needs no waiting.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { MAX_VARIANTS_PER_PATH, type CachedResponse, type CacheStore } from '../../../src/store/cache-store.js';

export const NOW = 1_700_000_000_000;

export function entry(body: string, extra: Partial<CachedResponse> = {}): CachedResponse {
  return {
    status: 200, headers: [['content-type', 'text/plain'], ['set-cookie-like', 'a'], ['x-multi', '1'], ['x-multi', '2']],
    body: Buffer.from(body, 'latin1'), storedAtMs: NOW, initialAgeSeconds: 3, lifetimeSeconds: 60, staleWhileRevalidateSeconds: 30,
    vary: [['accept-encoding', 'gzip'], ['accept-language', null]], ...extra,
  };
}

export function runCacheStoreConformance(name: string, makeStore: () => Promise<{ store: CacheStore; cleanup(): Promise<void> }>): void {
  describe(`CacheStore conformance: ${name}`, () => {
    let store: CacheStore;
    let cleanup: () => Promise<void>;
    let run: string;
    const key = (label: string): string => `${run}:${label}`;
    const signal = (): AbortSignal => AbortSignal.timeout(5000);

    beforeEach(async () => {
      run = randomUUID();
      ({ store, cleanup } = await makeStore());
    });
    afterEach(() => cleanup());

    it('returns what was stored, byte for byte, with repeated headers and vary kept in order', async () => {
      const binary = String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i));
      await store.set(key('p'), 'v', entry(binary), 10_000, signal());
      assert.deepEqual(await store.get(key('p'), 'v', NOW, signal()), entry(binary));
    });

    it(`keeps at most ${MAX_VARIANTS_PER_PATH} variants of a path: past it the soonest to expire goes`, async () => {
      for (let i = 0; i <= MAX_VARIANTS_PER_PATH; i++) await store.set(key('many'), `v${i}`, entry(`b${i}`), 10_000 + i, signal());
      // v0 had the shortest ttl: it went; every other variant is kept.
      assert.equal(await store.get(key('many'), 'v0', NOW, signal()), undefined);
      for (const i of [1, 500, MAX_VARIANTS_PER_PATH]) assert.equal((await store.get(key('many'), `v${i}`, NOW, signal()))?.body.toString(), `b${i}`);
    });

    it('misses an unknown key or variant', async () => {
      await store.set(key('p'), 'v', entry('x'), 10_000, signal());
      assert.equal(await store.get(key('p'), 'other', NOW, signal()), undefined);
      assert.equal(await store.get(key('q'), 'v', NOW, signal()), undefined);
    });

    it('expires an entry at storedAt + ttl by the nowMs passed in', async () => {
      await store.set(key('p'), 'v', entry('x'), 10_000, signal());
      assert.ok(await store.get(key('p'), 'v', NOW + 9_999, signal()));
      assert.equal(await store.get(key('p'), 'v', NOW + 10_000, signal()), undefined);
    });

    it('a later set replaces the variant', async () => {
      await store.set(key('p'), 'v', entry('old'), 10_000, signal());
      await store.set(key('p'), 'v', entry('new'), 10_000, signal());
      assert.equal((await store.get(key('p'), 'v', NOW, signal()))?.body.toString(), 'new');
    });

    it('invalidates every variant of a path and nothing else', async () => {
      await store.set(key('p'), 'a', entry('a'), 10_000, signal());
      await store.set(key('p'), 'b', entry('b'), 10_000, signal());
      await store.set(key('q'), 'a', entry('q'), 10_000, signal());
      await store.invalidate(key('p'), signal());
      assert.equal(await store.get(key('p'), 'a', NOW, signal()), undefined);
      assert.equal(await store.get(key('p'), 'b', NOW, signal()), undefined);
      assert.equal((await store.get(key('q'), 'a', NOW, signal()))?.body.toString(), 'q');
      await store.invalidate(key('never-stored'), signal());
    });

    it('does not store with a non-positive ttl', async () => {
      await store.set(key('p'), 'v', entry('x'), 0, signal());
      assert.equal(await store.get(key('p'), 'v', NOW, signal()), undefined);
    });

    it('rejects with STORE_TIMEOUT when the signal has already aborted', async () => {
      const aborted = AbortSignal.abort();
      await assert.rejects(store.get(key('p'), 'v', NOW, aborted), (e: { code?: string }) => e.code === 'PC_STORE_TIMEOUT');
      await assert.rejects(store.tryLock(key('p'), 'v', 1000, NOW, aborted), (e: { code?: string }) => e.code === 'PC_STORE_TIMEOUT');
    });

    // The lock's ttl runs on nowMs in memory and on the server's clock in Redis: the test moves both past it.
    it('gives a variant\'s refresh lock to one taker until its ttl runs out; variants and paths lock apart', async () => {
      assert.equal(await store.tryLock(key('p'), 'v', 100, NOW, signal()), true);
      assert.equal(await store.tryLock(key('p'), 'v', 100, NOW + 10, signal()), false);
      assert.equal(await store.tryLock(key('p'), 'other', 100, NOW + 10, signal()), true);
      assert.equal(await store.tryLock(key('q'), 'v', 100, NOW + 10, signal()), true);
      await new Promise((resolve) => setTimeout(resolve, 150));
      assert.equal(await store.tryLock(key('p'), 'v', 100, NOW + 150, signal()), true, 'taken again once the ttl passed');
      assert.equal(await store.tryLock(key('p'), 'v', 100, NOW + 160, signal()), false);
    });

    it('a set of the variant releases its refresh lock, an invalidation and other variants\' sets do not', async () => {
      assert.equal(await store.tryLock(key('p'), 'v', 10_000, NOW, signal()), true);
      await store.set(key('p'), 'other', entry('x'), 10_000, signal());
      await store.invalidate(key('p'), signal());
      assert.equal(await store.tryLock(key('p'), 'v', 10_000, NOW, signal()), false);
      await store.set(key('p'), 'v', entry('fresh'), 10_000, signal());
      assert.equal(await store.tryLock(key('p'), 'v', 10_000, NOW, signal()), true);
    });

    it('keeps an entry through its stale window: get answers until storedAt + the ttl it was given', async () => {
      const stale = entry('x', { lifetimeSeconds: 10, initialAgeSeconds: 0, staleWhileRevalidateSeconds: 5 });
      await store.set(key('p'), 'v', stale, 15_000, signal());
      assert.deepEqual(await store.get(key('p'), 'v', NOW + 12_000, signal()), stale);
      assert.equal(await store.get(key('p'), 'v', NOW + 15_000, signal()), undefined);
    });
  });
}
