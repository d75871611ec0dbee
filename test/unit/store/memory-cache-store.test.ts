import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { entrySize } from '../../../src/store/cache-store.js';
import { MemoryCacheStore } from '../../../src/store/memory-cache-store.js';
import { entry, NOW, runCacheStoreConformance } from './cache-conformance.js';

runCacheStoreConformance('memory', async () => {
  const store = new MemoryCacheStore(1 << 20);
  return { store, cleanup: () => store.close() };
});

describe('MemoryCacheStore bounds', () => {
  const signal = (): AbortSignal => AbortSignal.timeout(1000);
  it('evicts the least recently used entries to stay within max bytes', async () => {
    const size = entrySize(entry('x'.repeat(100)));
    const store = new MemoryCacheStore(size * 3);
    for (const k of ['a', 'b', 'c']) await store.set(k, 'v', entry('x'.repeat(100)), 10_000, signal());
    assert.ok(await store.get('a', 'v', NOW, signal()), 'a read makes a the most recent');
    await store.set('d', 'v', entry('x'.repeat(100)), 10_000, signal());
    assert.equal(store.size, 3);
    assert.ok(store.usedBytes <= size * 3);
    assert.equal(await store.get('b', 'v', NOW, signal()), undefined, 'b was the least recently used');
    assert.ok(await store.get('a', 'v', NOW, signal()));
  });
  it('refuses an entry larger than the whole bound', async () => {
    const store = new MemoryCacheStore(10);
    await store.set('a', 'v', entry('x'.repeat(100)), 10_000, signal());
    assert.equal(store.size, 0);
  });
});
