// `portcullis serve` on a Redis Cluster that is down (CLUSTERDOWN: a master gone with no replica to take over, and
// cluster-require-full-coverage yes, Redis's default). Every node still answers PING, so /readyz said ready while
// every rate limit call got the failure_mode answer; a single Redis that is down makes /readyz 503, and so must this.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPortcullis } from '../../support/portcullis.js';
import { rateLimitClient } from '../../support/ratelimit-client.js';
import { startRedisCluster } from '../../support/redis-server.js';

const DOMAIN = 'down';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function readyz(adminUrl: string): Promise<{ status: number; reasons: string[] }> {
  const res = await fetch(`${adminUrl}/readyz`);
  return { status: res.status, reasons: ((await res.json()) as { reasons: string[] }).reasons };
}

/** Polls /readyz until `status`; the answers seen, for the assertion message. */
async function waitReadyz(adminUrl: string, status: number, timeoutMs: number): Promise<{ ok: boolean; seen: string[] }> {
  const seen: string[] = [];
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const answer = await readyz(adminUrl);
    seen.push(`${answer.status} ${answer.reasons.join(',')}`);
    if (answer.status === status) return { ok: true, seen };
    await sleep(200);
  }
  return { ok: false, seen };
}

describe('portcullis serve on a Redis Cluster that is down', () => {
  let descriptors: string;
  before(() => {
    descriptors = mkdtempSync(path.join(tmpdir(), 'portcullis-down-'));
    writeFileSync(path.join(descriptors, 'd.yaml'), `domain: ${DOMAIN}\ndescriptors:\n  - key: user\n    rate_limit: { unit: hour, requests_per_unit: 100 }\n`);
  });
  after(() => rmSync(descriptors, { recursive: true, force: true }));

  it('a master killed with no replica: /readyz 503 while the cluster is down (as for a single Redis), ready again once it is back', async () => {
    const cluster = await startRedisCluster({ nodeTimeoutMs: 1000 });
    const server = await startPortcullis({
      server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
      redis: { cluster: cluster.urls },
      log: { level: 'info' },
      ratelimit: { descriptors, failure_mode: 'allow', timeout_ms: 500 },
    });
    const client = rateLimitClient(server.grpcAddress);
    const counted = async (): Promise<boolean> =>
      (await client.shouldRateLimit({ domain: DOMAIN, descriptors: [{ entries: [{ key: 'user', value: 'u' }] }] }, 1000)).statuses?.[0]?.current_limit !== undefined;
    try {
      assert.equal((await waitReadyz(server.adminUrl, 200, 5000)).ok, true, 'ready while the cluster is up');
      const victim = await cluster.masterOf(0);
      await victim.kill();
      const down = await waitReadyz(server.adminUrl, 503, 10_000);
      assert.ok(down.ok, `/readyz never 503 after the kill: ${down.seen.slice(-5).join(' | ')}`);
      assert.ok(down.seen.at(-1)!.includes('counter store not reachable'), down.seen.at(-1));
      assert.equal(await counted(), false, 'while not ready, calls get the failure_mode answer');
      const unreachable = server.logs().filter((l) => l['msg'] === 'counter store unreachable');
      assert.equal(unreachable.length, 1, JSON.stringify(unreachable));
      assert.match(String(unreachable[0]!['err']), /CLUSTERDOWN/);

      await victim.restart();
      const back = await waitReadyz(server.adminUrl, 200, 15_000);
      assert.ok(back.ok, `/readyz never 200 after the restart: ${back.seen.slice(-5).join(' | ')}`);
      let countsAgain = false;
      for (let i = 0; i < 50 && !countsAgain; i++) {
        countsAgain = await counted();
        if (!countsAgain) await sleep(100);
      }
      assert.ok(countsAgain, 'counts again once ready');
    } finally {
      client.close();
      await server.stop();
      await cluster.stop();
    }
  });
});
