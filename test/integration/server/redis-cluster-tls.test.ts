// `portcullis serve` against a Redis Cluster that speaks TLS only (nodes, cluster bus, replication), with a password,
// seeded by one rediss:// URL: the service must reach the seed and the masters it learns from CLUSTER SLOTS over
// TLS, trusting the cluster's private CA through NODE_EXTRA_CA_CERTS as a single node's rediss:// URL does. ioredis's
// Cluster ignores the seed's scheme by itself, so without redisOptions.tls the service spoke plaintext (password
// included) to TLS ports and never counted.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hourlyUserLimit } from '../../support/hourly-counts.js';
import { startPortcullis } from '../../support/portcullis.js';
import { rateLimitClient, type WireResponse } from '../../support/ratelimit-client.js';
import { sendCommand, startRedisCluster, type RedisCluster } from '../../support/redis-server.js';
import { keySlot } from '../../../src/store/redis-counter-store.js';

const DOMAIN = 'clustertls';
const PASSWORD = 's3cret-tls';
const LIMIT = 2;
const users = hourlyUserLimit(DOMAIN, LIMIT);
const { counterKey } = users;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('portcullis serve on a TLS-only Redis Cluster (rediss:// seed, private CA, password)', () => {
  let descriptors: string;
  let cluster: RedisCluster;
  before(async () => {
    descriptors = mkdtempSync(path.join(tmpdir(), 'portcullis-clustertls-'));
    users.writeDescriptors(descriptors);
    cluster = await startRedisCluster({ tls: true, password: PASSWORD });
  });
  after(async () => {
    await cluster?.stop();
    rmSync(descriptors, { recursive: true, force: true });
  });

  it('counts on every master, the ones learnt from CLUSTER SLOTS included, and limits', async () => {
    const seed = cluster.servers[0]!;
    assert.ok(seed.url.startsWith('rediss://') && cluster.tls !== undefined);
    const server = await startPortcullis({
      server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
      // One seed: the other masters are reached at the addresses CLUSTER SLOTS gives.
      redis: { cluster: [`rediss://:${PASSWORD}@127.0.0.1:${seed.port}`] },
      log: { level: 'info' },
      // allow: a store the service cannot reach shows as answers without a current limit, not as gRPC errors.
      ratelimit: { descriptors, failure_mode: 'allow', timeout_ms: 1000 },
    }, { env: { NODE_EXTRA_CA_CERTS: cluster.tls.caFile } });
    const client = rateLimitClient(server.grpcAddress);
    try {
      const startedMs = Date.now();
      // One user per master, each master found by asking the cluster who serves the user's key.
      const byMaster = new Map<number, string>();
      for (let i = 0; byMaster.size < 3 && i < 2000; i++) {
        const user = `u${i}`;
        const master = await cluster.masterOf(keySlot(counterKey(user, startedMs)));
        if (!byMaster.has(master.port)) byMaster.set(master.port, user);
      }
      assert.equal(byMaster.size, 3, 'a user on each of the 3 masters');
      assert.ok([...byMaster.keys()].some((port) => port !== seed.port));

      // The cluster is reached within a few seconds of start-up (the first calls may still find it connecting).
      let first: WireResponse | undefined;
      for (const deadline = Date.now() + 10_000; Date.now() < deadline; await sleep(100)) {
        first = await users.ask(client, 'warm-up', 1000);
        if (first.statuses?.[0]?.current_limit !== undefined) break;
      }
      const reasons = server.logs().filter((l) => /redis|counter store/.test(String(l['msg']))).map((l) => `${String(l['msg'])}: ${String(l['err'] ?? l['reason'] ?? '')}`);
      assert.ok(first?.statuses?.[0]?.current_limit !== undefined, `never counted in the TLS cluster: ${reasons.join(' | ')}`);

      for (const [port, user] of byMaster) {
        const codes: string[] = [];
        for (let i = 0; i <= LIMIT; i++) {
          const status = (await users.ask(client, user, 1000)).statuses?.[0];
          assert.ok(status?.current_limit !== undefined, `${user} (master ${port}) call ${i + 1} was not counted`);
          codes.push(String(status.code));
        }
        assert.deepEqual(codes, [...Array<string>(LIMIT).fill('OK'), 'OVER_LIMIT'], `${user} on master ${port}`);
        const reply = await sendCommand(port, ['GET', counterKey(user, startedMs)]);
        assert.equal(Number(/\r\n(\d+)\r\n/.exec(reply)?.[1]), LIMIT + 1, `the count stored on master ${port}: ${JSON.stringify(reply)}`);
      }
      assert.ok(!server.output().includes(PASSWORD), 'the password is never logged');
    } finally {
      client.close();
      await server.stop();
    }
  });

  // TLS with the certificate checked, not merely encrypted: a cluster whose CA is not trusted is not talked to.
  it('checks the nodes\' certificate: without their CA trusted, nothing counts', async () => {
    const server = await startPortcullis({
      server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
      redis: { cluster: cluster.servers.map((s) => `rediss://:${PASSWORD}@127.0.0.1:${s.port}`) },
      log: { level: 'info' },
      ratelimit: { descriptors, failure_mode: 'allow', timeout_ms: 1000 },
    }, { env: { NODE_EXTRA_CA_CERTS: '' } });
    const client = rateLimitClient(server.grpcAddress);
    try {
      for (const deadline = Date.now() + 2000; Date.now() < deadline; await sleep(200)) {
        assert.equal((await users.ask(client, 'untrusted', 1000)).statuses?.[0]?.current_limit, undefined, 'counted by a cluster whose certificate is not trusted');
      }
    } finally {
      client.close();
      await server.stop();
    }
  });
});
