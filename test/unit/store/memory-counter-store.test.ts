import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode } from '../../../src/shared/errors.js';
import { MemoryCounterStore } from '../../../src/store/memory-counter-store.js';
import { fixed, NOW, r, rejectsWithCode, runCounterStoreConformance } from './conformance.js';

runCounterStoreConformance('memory', async () => {
  const store = new MemoryCounterStore();
  return {
    store,
    ttlMs: async (key, nowMs) => store.ttlMs(key, nowMs),
    cleanup: () => store.close(),
  };
});

describe('MemoryCounterStore', () => {
  const signal = (): AbortSignal => AbortSignal.timeout(10_000);

  it('expires a key exactly when its time to live has passed, by the nowMs passed in', async () => {
    const store = new MemoryCounterStore();
    await store.apply([fixed('k', 2, 5, 1000)], 'always', NOW, signal());
    assert.deepEqual(await store.apply([fixed('k', 0, 5, 1000)], 'always', NOW + 999, signal()), [r(2, 2, true)]);
    assert.deepEqual(await store.apply([fixed('k', 0, 5, 1000)], 'always', NOW + 1000, signal()), [r(0, 0, true)]);
  });

  it('sweeps expired keys nobody reads again, a bounded number per sweep', async () => {
    const store = new MemoryCounterStore({ sweepEveryCalls: 1, sweepBudget: 10 });
    for (let i = 0; i < 100; i++) await store.apply([fixed(`old-${i}`, 1, 5, 1000)], 'always', NOW, signal());
    assert.equal(store.size, 100);
    const sizes: number[] = [];
    for (let call = 0; call < 15; call++) {
      await store.apply([fixed('live', 1, 1000, 60_000)], 'always', NOW + 5000, signal());
      sizes.push(store.size);
    }
    // Each sweep looks at no more than 10 entries, so no request pays for reclaiming all 100 at once.
    for (let i = 1; i < sizes.length; i++) assert.ok(sizes[i - 1]! - sizes[i]! <= 10, `sizes ${sizes.join(',')}`);
    assert.ok(sizes[0]! >= 90, `first sweep reclaimed too much: ${sizes[0]}`);
    assert.equal(store.size, 1, 'only the live key is left');
    assert.equal(store.ttlMs('live', NOW + 5000), 60_000);
  });

  it('rejects with STORE_UNAVAILABLE once closed', async () => {
    const store = new MemoryCounterStore();
    await store.close();
    await rejectsWithCode(store.apply([fixed('k', 1, 5)], 'always', NOW, signal()), ErrorCode.STORE_UNAVAILABLE);
    await rejectsWithCode(store.ping(signal()), ErrorCode.STORE_UNAVAILABLE);
  });
});

describe('MemoryCounterStore: memory.max_keys', () => {
  const signal = (): AbortSignal => AbortSignal.timeout(10_000);

  it('holds at most max_keys windows, evicting an expired one first, then the least recently used', async () => {
    let evicted = 0;
    const store = new MemoryCounterStore({ maxKeys: 3, sweepEveryCalls: 1_000_000, observer: { keys: () => undefined, evicted: () => void evicted++ } });
    await store.apply([fixed('short', 1, 9, 1000)], 'always', NOW, signal());
    await store.apply([fixed('a', 1, 9)], 'always', NOW, signal());
    await store.apply([fixed('b', 1, 9)], 'always', NOW, signal());
    // 'short' has expired: it makes room, no live count is lost.
    await store.apply([fixed('c', 1, 9)], 'always', NOW + 2000, signal());
    assert.equal(store.size, 3);
    assert.equal(evicted, 0);
    // 'a' is used again, so 'b' is now the least recently used live window.
    assert.deepEqual(await store.apply([fixed('a', 1, 9)], 'always', NOW + 2000, signal()), [r(1, 2, true)]);
    await store.apply([fixed('d', 1, 9)], 'always', NOW + 2000, signal());
    assert.equal(store.size, 3);
    assert.equal(evicted, 1);
    assert.equal(store.ttlMs('b', NOW + 2000), undefined, 'b was evicted');
    assert.deepEqual(await store.apply([fixed('a', 1, 9), fixed('c', 0, 9)], 'always', NOW + 2000, signal()), [r(2, 3, true), r(1, 1, true)]);
  });

  it('stays bounded under a flood of distinct keys', async () => {
    const store = new MemoryCounterStore({ maxKeys: 1000 });
    for (let i = 0; i < 20_000; i++) await store.apply([fixed(`flood:${i}`, 1, 9)], 'always', NOW, signal());
    assert.equal(store.size, 1000);
  });
});
