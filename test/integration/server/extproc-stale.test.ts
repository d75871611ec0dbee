// stale-while-revalidate across instances: two Portcullis apps (their own gRPC servers and Redis clients) sharing one
// real redis-server, one fake clock. Concurrent streams on an expired entry: exactly one goes to the origin, on
// whichever instance took the Redis lock; every other is answered STALE at once, and the refresh ends it for both.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createRedisClient } from '../../../src/store/redis-client.js';
import { RedisCacheStore } from '../../../src/store/redis-cache-store.js';
import { startTestApp, type TestApp } from '../../support/app.js';
import { body, extprocClient, requestHeaders, responseHeaders, setHeaders, type ExtprocClient, type ProcessStream } from '../../support/extproc-client.js';
import { startRedis, type RedisServer } from '../../support/redis-server.js';
import { FakeClock } from '../../fakes/fake-clock.js';

const EXTPROC = `
cache: { timeout_ms: 1000, refresh_lock_ms: 10000 }
routes:
  - name: catalog
    match: { path_prefix: /catalog }
    cache: { ttl_seconds: { "200": 300 }, public: true, stale_while_revalidate_seconds: 60 }
`;

const GET = (path: string): Record<string, string> => ({ ':method': 'GET', ':path': path, ':authority': 'shop', ':scheme': 'http' });

describe('stale-while-revalidate with Redis shared by two instances', () => {
  const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
  let redis: RedisServer;
  const apps: TestApp[] = [];
  const clients: ExtprocClient[] = [];

  before(async () => {
    redis = await startRedis();
    const prefix = `stale:${Date.now()}:`;
    for (let i = 0; i < 2; i++) {
      const app = await startTestApp({ descriptors: { 'd.yaml': 'domain: d\ndescriptors: []\n' }, extproc: EXTPROC, clock, cache: new RedisCacheStore(createRedisClient({ url: redis.url }), prefix) });
      apps.push(app);
      clients.push(extprocClient(app.grpcAddress));
    }
  });
  after(async () => {
    for (const c of clients) c.close();
    for (const app of apps) await app.close();
    await redis.stop();
  });

  /** A whole MISS on `client`: the origin's answer `text` stored with max-age=10. */
  const fill = async (s: ProcessStream, text: string): Promise<string | undefined> => {
    const answered = await s.exchange(responseHeaders({ ':status': '200', 'cache-control': 'max-age=10', 'content-length': String(text.length) }));
    await s.exchange(body('response_body', text));
    s.end();
    await s.status;
    return setHeaders(answered.response_headers?.response?.header_mutation)['x-cache-status'];
  };

  it('20 concurrent streams on an expired entry: one MISS goes to the origin, 19 are STALE; then both instances HIT', async () => {
    const first = clients[0]!.open();
    assert.equal((await first.exchange(requestHeaders(GET('/catalog/hot')))).response, 'request_headers');
    assert.equal(await fill(first, 'v1'), 'MISS');

    clock.advance(12_000);
    const streams = Array.from({ length: 20 }, (_, i) => clients[i % 2]!.open());
    const answers = await Promise.all(streams.map((s) => s.exchange(requestHeaders(GET('/catalog/hot')))));
    const toOrigin = answers.flatMap((a, i) => (a.response === 'request_headers' ? [i] : []));
    assert.equal(toOrigin.length, 1, `exactly one request goes to the origin, got ${toOrigin.length}`);
    for (const [i, a] of answers.entries()) {
      if (i === toOrigin[0]) continue;
      const headers = setHeaders(a.immediate_response?.headers);
      assert.equal(headers['x-cache-status'], 'STALE', `stream ${i}`);
      assert.equal(headers['age'], '12');
      assert.equal(headers['warning'], undefined);
      assert.equal(a.immediate_response?.body?.toString(), 'v1');
    }
    for (const [i, s] of streams.entries()) {
      if (i === toOrigin[0]) continue;
      s.end();
      await s.status;
    }
    assert.equal(await apps[0]!.metric('portcullis_extproc_cache_total', { result: 'stale' }) + await apps[1]!.metric('portcullis_extproc_cache_total', { result: 'stale' }), 19);

    assert.equal(await fill(streams[toOrigin[0]!]!, 'v2'), 'MISS', 'the refresh is marked MISS');
    for (const client of clients) {
      const s = client.open();
      const hit = await s.exchange(requestHeaders(GET('/catalog/hot')));
      const headers = setHeaders(hit.immediate_response?.headers);
      assert.equal(`${headers['x-cache-status']} ${headers['age']} ${hit.immediate_response?.body?.toString()}`, 'HIT 0 v2');
      s.end();
      await s.status;
    }
  });

  it('a refresh that never stores: the lock is the refresh_lock_ms TTL in Redis, then one more request goes to the origin', async () => {
    const first = clients[0]!.open();
    await first.exchange(requestHeaders(GET('/catalog/flaky')));
    await fill(first, 'v1');
    clock.advance(11_000);
    const refresher = clients[1]!.open();
    assert.equal((await refresher.exchange(requestHeaders(GET('/catalog/flaky')))).response, 'request_headers');
    // The origin fails: a 500 is not stored, and nothing releases the lock but its TTL.
    await refresher.exchange(responseHeaders({ ':status': '500' }, true));
    refresher.end();
    await refresher.status;
    const kind = async (client: ExtprocClient): Promise<string> => {
      const s = client.open();
      const a = await s.exchange(requestHeaders(GET('/catalog/flaky')));
      s.cancel();
      return a.response === 'immediate_response' ? setHeaders(a.immediate_response?.headers)['x-cache-status'] ?? '' : String(a.response);
    };
    assert.deepEqual([await kind(clients[0]!), await kind(clients[1]!)], ['STALE', 'STALE']);
    // Redis' clock runs the lock out: shorten it as if refresh_lock_ms had passed.
    const admin = new Redis(redis.url);
    try {
      const locks = await admin.keys('stale:*:lock:*');
      assert.ok(locks.length >= 1, 'the lock is a key of its own');
      for (const key of locks) assert.ok((await admin.pttl(key)) > 0, 'with a TTL');
      await admin.del(...locks);
    } finally {
      admin.disconnect();
    }
    assert.deepEqual([await kind(clients[0]!), await kind(clients[1]!)], ['request_headers', 'STALE']);
  });
});
