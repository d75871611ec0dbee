// RedisCacheStore against a real redis-server: the shared conformance suite, then what only a real server shows:
// the hash's TTL follows the longest entry, a paused server turns into STORE_TIMEOUT within the budget, a dead one
// into STORE_UNAVAILABLE, and the store heals when Redis returns.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { RedisCacheStore } from '../../../src/store/redis-cache-store.js';
import { createRedisClient } from '../../../src/store/redis-client.js';
import { sendCommand, startRedis, type RedisServer } from '../../support/redis-server.js';
import { entry, NOW, runCacheStoreConformance } from '../../unit/store/cache-conformance.js';

let server: RedisServer;
before(async () => {
  server = await startRedis();
});
after(async () => {
  await server.stop();
});

/** A store whose client is connected (the client fails fast while disconnected, by design). */
async function connectedStore(prefix: string): Promise<RedisCacheStore> {
  const client = createRedisClient({ url: server.url });
  if (client.status !== 'ready') await once(client, 'ready');
  return new RedisCacheStore(client, prefix);
}

runCacheStoreConformance('redis', async () => {
  const store = await connectedStore('conformance:');
  return { store, cleanup: () => store.close() };
});

describe('RedisCacheStore on a real server', () => {
  const signal = (ms = 2000): AbortSignal => AbortSignal.timeout(ms);

  it('keeps the hash alive as long as its longest entry, never shortening it', async () => {
    const admin = new Redis(server.url);
    const store = await connectedStore('ttl:');
    try {
      await store.set('p', 'long', entry('a'), 60_000, signal());
      await store.set('p', 'short', entry('b'), 1_000, signal());
      for (const k of ['ttl:{p}', 'ttl:{p}:exp']) {
        const ttl = await admin.pttl(k);
        assert.ok(ttl > 55_000 && ttl <= 60_000, `pttl ${k} ${ttl}`);
      }
    } finally {
      admin.disconnect();
      await store.close();
    }
  });

  it('deletes expired variants when the path is stored again: new query strings on one path do not pile up', async () => {
    const admin = new Redis(server.url);
    const store = await connectedStore('growth:');
    try {
      for (let i = 0; i < 50; i++) await store.set('p', `q${i}`, entry(`b${i}`), 1_000, signal());
      assert.equal(await admin.hlen('growth:{p}'), 50);
      await store.set('p', 'later', entry('x', { storedAtMs: NOW + 2_000 }), 1_000, signal());
      assert.equal(await admin.hlen('growth:{p}'), 1);
      assert.equal(await admin.zcard('growth:{p}:exp'), 1);
      assert.equal((await store.get('p', 'later', NOW + 2_500, signal()))?.body.toString(), 'x');
      await store.invalidate('p', signal());
      assert.equal(await admin.exists('growth:{p}', 'growth:{p}:exp'), 0);
    } finally {
      admin.disconnect();
      await store.close();
    }
  });

  it('writes nothing more while a call is unanswered past its budget (a stalled Redis): no pile of late writes', async () => {
    const admin = new Redis(server.url);
    const store = await connectedStore('stall:');
    try {
      const sleeping = sendCommand(server.port, ['DEBUG', 'SLEEP', '0.8']);
      await new Promise((r) => setTimeout(r, 50));
      for (let i = 0; i < 6; i++) {
        await assert.rejects(store.set('p', `v${i}`, entry('x'), 60_000, signal(40)), (e: { code?: string }) => e.code === 'PC_STORE_TIMEOUT');
        await new Promise((r) => setTimeout(r, 50));
      }
      await sleeping;
      await store.ping(signal());
      // Only the first store, written before the stall was known, ran when Redis woke.
      assert.deepEqual(await admin.hkeys('stall:{p}'), ['v0']);
    } finally {
      admin.disconnect();
      await store.close();
    }
  });

  it('a paused Redis is a STORE_TIMEOUT within the budget; a dead one STORE_UNAVAILABLE; then it heals', async () => {
    const store = await connectedStore('outage:');
    try {
      await store.set('p', 'v', entry('x'), 60_000, signal());
      const sleeping = sendCommand(server.port, ['DEBUG', 'SLEEP', '0.5']);
      await new Promise((r) => setTimeout(r, 50));
      const started = performance.now();
      await assert.rejects(store.get('p', 'v', NOW, signal(100)), (e: { code?: string }) => e.code === 'PC_STORE_TIMEOUT');
      assert.ok(performance.now() - started < 300, 'gave up at the budget');
      await sleeping;
      await server.kill();
      await assert.rejects(store.get('p', 'v', NOW, signal(100)), (e: { code?: string }) => e.code === 'PC_STORE_UNAVAILABLE' || e.code === 'PC_STORE_TIMEOUT');
      await server.restart();
      let healed = false;
      for (let i = 0; i < 100 && !healed; i++) {
        healed = await store.ping(signal(200)).then(() => true, () => false);
        if (!healed) await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(healed);
      assert.equal(await store.get('p', 'v', NOW, signal()), undefined, 'a restarted Redis (no persistence) is empty');
    } finally {
      await store.close();
    }
  });
});
