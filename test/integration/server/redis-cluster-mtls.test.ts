// `portcullis serve` against a TLS-only Redis Cluster whose every node wants a client certificate (tls-auth-clients
// yes), seeded by one rediss:// URL, its private CA given by redis.tls.ca_file (NODE_EXTRA_CA_CERTS empty): the
// certificate must reach every node connection, the masters learnt from CLUSTER SLOTS included (ioredis's
// redisOptions.tls), and so must the server name. Without the certificate the log must say so, though ioredis's
// Cluster only says "Connection is closed." (the seed probe finds the reason).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hourlyUserLimit } from '../../support/hourly-counts.js';
import { startPortcullis, type PortcullisInstance } from '../../support/portcullis.js';
import { rateLimitClient, type WireResponse } from '../../support/ratelimit-client.js';
import { sendCommand, startRedisCluster, type RedisCluster } from '../../support/redis-server.js';
import { keySlot } from '../../../src/store/redis-counter-store.js';

const DOMAIN = 'clustermtls';
const PASSWORD = 's3cret-cluster-mtls';
const LIMIT = 2;
const users = hourlyUserLimit(DOMAIN, LIMIT);
const { counterKey } = users;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('portcullis serve on a Redis Cluster that requires client certificates (redis.tls, one rediss:// seed)', () => {
  let descriptors: string;
  let cluster: RedisCluster;
  before(async () => {
    descriptors = mkdtempSync(path.join(tmpdir(), 'portcullis-clustermtls-'));
    users.writeDescriptors(descriptors);
    cluster = await startRedisCluster({ tls: true, authClients: true, password: PASSWORD });
  });
  after(async () => {
    await cluster?.stop();
    rmSync(descriptors, { recursive: true, force: true });
  });

  const serve = (tls: object): Promise<PortcullisInstance> => startPortcullis({
    server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
    // One seed: the other masters are reached at the addresses CLUSTER SLOTS gives.
    redis: { cluster: [`rediss://:${PASSWORD}@127.0.0.1:${cluster.servers[0]!.port}`], tls, connect_timeout_ms: 500 },
    log: { level: 'info' },
    // allow: a store the service cannot reach shows as answers without a current limit, not as gRPC errors.
    ratelimit: { descriptors, failure_mode: 'allow', timeout_ms: 1000 },
  }, { env: { NODE_EXTRA_CA_CERTS: '' } });

  it('counts on every master, the ones learnt from CLUSTER SLOTS included, with the certificate and server name given', async () => {
    const files = cluster.tls!;
    // localhost: the name the nodes' certificate carries besides 127.0.0.1, sent as SNI and checked on every node.
    const server = await serve({ ca_file: files.caFile, cert_file: files.clientCertFile, key_file: files.clientKeyFile, server_name: 'localhost' });
    const client = rateLimitClient(server.grpcAddress);
    try {
      const startedMs = Date.now();
      const byMaster = new Map<number, string>();
      for (let i = 0; byMaster.size < 3 && i < 2000; i++) {
        const user = `u${i}`;
        const master = await cluster.masterOf(keySlot(counterKey(user, startedMs)));
        if (!byMaster.has(master.port)) byMaster.set(master.port, user);
      }
      assert.equal(byMaster.size, 3, 'a user on each of the 3 masters');

      let first: WireResponse | undefined;
      for (const deadline = Date.now() + 10_000; Date.now() < deadline; await sleep(100)) {
        first = await users.ask(client, 'warm-up', 1000);
        if (first.statuses?.[0]?.current_limit !== undefined) break;
      }
      const reasons = (): string => JSON.stringify(server.logs().filter((l) => /redis|counter store/.test(String(l['msg']))));
      assert.ok(first?.statuses?.[0]?.current_limit !== undefined, `never counted in the cluster: ${reasons()}`);

      for (const [port, user] of byMaster) {
        const codes: string[] = [];
        for (let i = 0; i <= LIMIT; i++) {
          const status = (await users.ask(client, user, 1000)).statuses?.[0];
          assert.ok(status?.current_limit !== undefined, `${user} (master ${port}) call ${i + 1} was not counted: ${reasons()}`);
          codes.push(String(status.code));
        }
        assert.deepEqual(codes, [...Array<string>(LIMIT).fill('OK'), 'OVER_LIMIT'], `${user} on master ${port}`);
        const reply = await sendCommand(port, ['GET', counterKey(user, startedMs)]);
        assert.equal(Number(/\r\n(\d+)\r\n/.exec(reply)?.[1]), LIMIT + 1, `the count stored on master ${port}: ${JSON.stringify(reply)}`);
      }
      assert.deepEqual(server.logs().filter((l) => l['msg'] === 'redis connection failed'), [], reasons());
      assert.ok(!server.output().includes(PASSWORD), 'the password is never logged');
    } finally {
      client.close();
      await server.stop();
    }
  });

  it('without a client certificate: nothing counts, and each client logs once that it has none', async () => {
    const server = await serve({ ca_file: cluster.tls!.caFile });
    const client = rateLimitClient(server.grpcAddress);
    try {
      for (const deadline = Date.now() + 3000; Date.now() < deadline; await sleep(100)) {
        assert.equal((await users.ask(client, 'refused', 1000)).statuses?.[0]?.current_limit, undefined, 'counted without a client certificate');
      }
      const failed = server.logs().filter((l) => l['msg'] === 'redis connection failed');
      for (const name of ['counter store', 'extproc cache']) {
        const reasons = failed.filter((l) => l['client'] === name).map((l) => String(l['reason']));
        assert.equal(reasons.length, 1, `${name}: one line: ${JSON.stringify(failed)}`);
        assert.match(reasons[0]!, /^127\.0\.0\.1:\d+: no client certificate: the server .*: set redis\.tls\.cert_file and redis\.tls\.key_file$/);
      }
      assert.ok(!server.output().includes(PASSWORD), 'the password is never logged');
    } finally {
      client.close();
      assert.equal(await server.stop(), 0, 'exits cleanly: it did not crash');
    }
  });
});
