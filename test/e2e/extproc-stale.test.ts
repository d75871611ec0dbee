// stale-while-revalidate end to end: two real Envoys (envoy/extproc.yaml, ports moved), each calling its own
// Portcullis, both sharing one real redis-server, in front of one slow upstream that counts the requests it answers
// (max-age=2). When the entry expires, a burst of concurrent requests through both Envoys reaches the origin once:
// the request that took the refresh lock; every other one is answered STALE from the expired entry.

import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { extprocBootstrap, repoRoot, startEnvoy } from '../support/envoy.js';
import { startPortcullis } from '../support/portcullis.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';

interface Answer {
  status: number;
  cacheStatus: string | undefined;
  age: string | undefined;
  text: string;
}

function get(baseUrl: string, pathname: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    // One Host for both Envoys (the key includes it; each listens on its own port).
    httpRequest(`${baseUrl}${pathname}`, { headers: { host: 'shop.example' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => {
        const header = (name: string): string | undefined => res.headers[name] as string | undefined;
        resolve({ status: res.statusCode ?? 0, cacheStatus: header('x-cache-status'), age: header('age'), text });
      });
    }).on('error', reject).end();
  });
}

/**
 * Answers `version <n>` with max-age=2, UPSTREAM_DELAY_MS late, so a burst arrives while the refresh is out. No Date:
 * its whole-second resolution would count up to a second of apparent age against so short a lifetime.
 */
const UPSTREAM_DELAY_MS = 400;

describe('stale-while-revalidate through Envoy, two instances sharing Redis', () => {
  let redis: RedisServer;
  let upstream: Server;
  let hits = 0;
  const baseUrls: string[] = [];

  const stops: (() => Promise<unknown>)[] = [];

  before(async () => {
    redis = await startRedis();
    stops.push(() => redis.stop());
    upstream = createServer((req, res) => {
      req.resume();
      hits += 1;
      const body = `version ${hits}`;
      res.sendDate = false;
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'cache-control': 'max-age=2' });
        res.end(body);
      }, UPSTREAM_DELAY_MS);
    });
    upstream.listen(0, '127.0.0.1');
    await new Promise((resolve) => upstream.once('listening', resolve));
    stops.push(() => new Promise((resolve) => upstream.close(resolve)));
    const { port } = upstream.address() as AddressInfo;
    for (let i = 0; i < 2; i++) {
      const portcullis = await startPortcullis({
        server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
        redis: { url: redis.url },
        ratelimit: { descriptors: path.join(repoRoot(), 'envoy', 'ratelimit') },
        extproc: {
          // The example's 50 ms cache budget is for production; a shared CI machine needs more.
          cache: { timeout_ms: 500 },
          routes: [{ name: 'catalog', match: { path_prefix: '/catalog' }, cache: { ttl_seconds: { '200': 60 }, public: true, stale_while_revalidate_seconds: 30 } }],
        },
      });
      stops.push(() => portcullis.stop());
      const envoy = await startEnvoy(extprocBootstrap({ upstream: { host: '127.0.0.1', port }, portcullis: portcullis.grpc, messageTimeout: '2s' }));
      stops.push(() => envoy.stop());
      baseUrls.push(`http://127.0.0.1:${envoy.listenerPort('ingress')}`);
    }
  });
  after(async () => {
    for (const stop of stops.reverse()) await stop();
  });

  it('12 concurrent requests after expiry reach the origin once: one MISS, the rest STALE; then HIT on the new version', async () => {
    const first = await get(baseUrls[0]!, '/catalog/hot');
    assert.deepEqual([first.status, first.cacheStatus, first.text], [200, 'MISS', 'version 1']);
    assert.equal((await get(baseUrls[1]!, '/catalog/hot')).cacheStatus, 'HIT', 'stored in the shared Redis');

    // Age is whole seconds: expired once two full seconds have passed since it was stored.
    await new Promise((resolve) => setTimeout(resolve, 2_200));
    const before = hits;
    const burst = await Promise.all(Array.from({ length: 12 }, (_, i) => get(baseUrls[i % 2]!, '/catalog/hot')));
    assert.equal(hits - before, 1, 'the origin answered one request of the burst');
    const byStatus = new Map<string, string[]>();
    for (const a of burst) byStatus.set(a.cacheStatus ?? 'none', [...(byStatus.get(a.cacheStatus ?? 'none') ?? []), a.text]);
    assert.deepEqual(byStatus.get('MISS'), ['version 2'], 'one request went to the origin and got the new version');
    assert.deepEqual(byStatus.get('STALE'), Array(11).fill('version 1'), 'the rest got the stale entry at once');
    for (const a of burst.filter((b) => b.cacheStatus === 'STALE')) {
      assert.equal(a.status, 200);
      assert.ok(Number(a.age) >= 2, `age ${a.age} counts past the lifetime`);
    }

    for (const baseUrl of baseUrls) {
      const fresh = await get(baseUrl, '/catalog/hot');
      assert.deepEqual([fresh.cacheStatus, fresh.text], ['HIT', 'version 2'], 'the refresh replaced the entry for both instances');
    }
    assert.equal(hits - before, 1);
  });
});
