import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { heldBytes, MemoryCacheStore } from '../../../src/store/memory-cache-store.js';
import { entry, NOW, runCacheStoreConformance } from './cache-conformance.js';

runCacheStoreConformance('memory', async () => {
  const store = new MemoryCacheStore(4 << 20);
  return { store, cleanup: () => store.close() };
});

describe('MemoryCacheStore bounds', () => {
  const signal = (): AbortSignal => AbortSignal.timeout(1000);
  it('evicts the least recently used entries to stay within max bytes', async () => {
    const size = heldBytes('a\nv', entry('x'.repeat(100)));
    const store = new MemoryCacheStore(size * 3);
    for (const k of ['a', 'b', 'c']) await store.set(k, 'v', entry('x'.repeat(100)), 10_000, signal());
    assert.ok(await store.get('a', 'v', NOW, signal()), 'a read makes a the most recent');
    await store.set('d', 'v', entry('x'.repeat(100)), 10_000, signal());
    assert.equal(store.size, 3);
    assert.ok(store.usedBytes <= size * 3);
    assert.equal(await store.get('b', 'v', NOW, signal()), undefined, 'b was the least recently used');
    assert.ok(await store.get('a', 'v', NOW, signal()));
  });
  it('sweeps run-out refresh locks: ever new variants locked and never stored do not pile up', async () => {
    const store = new MemoryCacheStore(1 << 20);
    // 100 locks live at any time (1 s ttl, one every 10 ms), 20,000 taken.
    for (let i = 0; i < 20_000; i++) assert.equal(await store.tryLock(`p${i}`, 'v', 1000, NOW + i * 10, signal()), true);
    assert.ok(store.lockCount <= 1025, `${store.lockCount} locks held`);
    assert.equal(await store.tryLock('p19999', 'v', 1000, NOW + 199_999, signal()), false, 'a live lock survives the sweeps');
  });
  it('refuses an entry larger than the whole bound', async () => {
    const store = new MemoryCacheStore(10);
    await store.set('a', 'v', entry('x'.repeat(100)), 10_000, signal());
    assert.equal(store.size, 0);
  });
  it('holds about max bytes of process memory when filled far past its bound with small responses', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const maxBytes = 4 << 20;
    const store = new MemoryCacheStore(maxBytes);
    // ArrayBuffers are freed by a background sweeper: settle, collect again, then read.
    const held = async (): Promise<number> => {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 100));
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const before = await held();
    let other: Buffer | undefined;
    const live = new AbortController().signal; // one signal: 60,000 AbortSignal.timeout timers would be what is held
    for (let i = 0; i < 60_000; i++) {
      // As the stream builds a stored body: Buffer.concat of the received chunks (a view into a shared pool slab),
      // with other short-lived pooled buffers allocated in between, as under load.
      const body = Buffer.concat([Buffer.from(new Uint8Array(40).fill(65))]);
      other = Buffer.from('x'.repeat(3000));
      await store.set(`p${i}`, `v${i}`, { status: 404, headers: [['content-type', 'application/json']], body, storedAtMs: NOW, initialAgeSeconds: 0, lifetimeSeconds: 60, staleWhileRevalidateSeconds: 0, vary: [] }, 60_000, live);
    }
    assert.ok(other !== undefined && store.usedBytes <= maxBytes);
    const grown = (await held()) - before;
    assert.ok(grown < maxBytes * 1.5, `${(grown / 2 ** 20).toFixed(1)} MiB held for a ${maxBytes / 2 ** 20} MiB bound (${store.size} entries)`);
    await store.close();
  });
});
