// memory.max_keys through the real `serve` process: many distinct descriptor values stay under the bound, the
// evictions are counted on /metrics, and the service keeps answering exactly for what it still holds.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPortcullis, type PortcullisInstance } from '../../support/portcullis.js';
import { rateLimitClient, type RateLimitClient } from '../../support/ratelimit-client.js';
import { awayFromWindowEdge } from '../../support/windows.js';

const MAX_KEYS = 200;
const DISTINCT = 2000;

async function metric(instance: PortcullisInstance, name: string): Promise<number> {
  const text = await (await fetch(`${instance.adminUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line !== undefined, `${name} is exported`);
  return Number(line.slice(name.length + 1));
}

describe('memory store bound (memory.max_keys) in a running server', () => {
  let dir: string;
  let portcullis: PortcullisInstance;
  let client: RateLimitClient;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'portcullis-memory-bound-'));
    writeFileSync(path.join(dir, 'users.yaml'), 'domain: users\ndescriptors:\n  - key: user\n    rate_limit: { unit: hour, requests_per_unit: 2 }\n');
    portcullis = await startPortcullis({
      server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
      memory: { max_keys: MAX_KEYS },
      log: { level: 'info' },
      ratelimit: { descriptors: dir },
    });
    client = rateLimitClient(portcullis.grpcAddress);
  });

  after(async () => {
    client?.close();
    if (portcullis) assert.equal(await portcullis.stop(), 0, portcullis.output());
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('holds at most max_keys windows, counts the evictions, and still limits the keys it holds', async () => {
    const request = (user: string) => ({ domain: 'users', descriptors: [{ entries: [{ key: 'user', value: user }] }] });
    for (let start = 0; start < DISTINCT; start += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, i) => client.shouldRateLimit(request(`u${start + i}`))));
    }
    assert.ok(await metric(portcullis, 'portcullis_memory_store_keys') <= MAX_KEYS);
    assert.ok(await metric(portcullis, 'portcullis_memory_store_evictions_total') >= DISTINCT - MAX_KEYS);

    // A recently used key is still held: its limit of 2 per hour applies.
    await awayFromWindowEdge(3600, 5);
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await client.shouldRateLimit(request('recent'))).overall_code);
    assert.deepEqual(codes, ['OK', 'OK', 'OVER_LIMIT']);
  });
});
