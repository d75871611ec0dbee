// `portcullis serve` through a TLS-only Redis Sentinel where every server wants a client certificate (tls-auth-clients
// yes: the master, its replica and the sentinel), the private CA given by redis.tls.ca_file (NODE_EXTRA_CA_CERTS
// empty). The certificate must reach the lookups (sentinelTLS), the failover detector's subscriptions (sentinelTLS
// too) and the master the sentinel names (tls); without it the log must say so for the sentinel that refused.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../../support/app.js';
import { hourlyUserLimit } from '../../support/hourly-counts.js';
import { startPortcullis, type PortcullisInstance } from '../../support/portcullis.js';
import { rateLimitClient } from '../../support/ratelimit-client.js';
import {
  makeRedisTlsFiles, sendCommand, startSentinelSet, waitReplicating, type RedisSentinel, type RedisServer, type RedisTlsFiles, type SentinelSet,
} from '../../support/redis-server.js';

const DOMAIN = 'sentinelmtls';
const LIMIT = 1_000_000;
const MASTER_PASSWORD = 'mtls-data-secret';
const SENTINEL_PASSWORD = 'mtls-sentinel-secret';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const users = hourlyUserLimit(DOMAIN, LIMIT);
const { count, storedCount } = users;

describe('portcullis serve through a Redis Sentinel that requires client certificates (redis.tls)', () => {
  let dir: string;
  let descriptors: string;
  let tls: RedisTlsFiles;
  let a: RedisServer;
  let b: RedisServer;
  let sentinel: RedisSentinel;
  let set: SentinelSet | undefined;

  const serve = (redisTls: object): Promise<PortcullisInstance> => startPortcullis({
    server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
    redis: {
      sentinel: { master: sentinel.name, nodes: [`rediss://:${SENTINEL_PASSWORD}@127.0.0.1:${sentinel.server.port}`], password: MASTER_PASSWORD },
      tls: redisTls,
      connect_timeout_ms: 500,
    },
    log: { level: 'info' },
    ratelimit: { descriptors, failure_mode: 'allow', timeout_ms: 500 },
  }, { env: { NODE_EXTRA_CA_CERTS: '' } });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'portcullis-sentinelmtls-'));
    descriptors = path.join(dir, 'descriptors');
    const certs = path.join(dir, 'certs');
    for (const d of [descriptors, certs]) mkdirSync(d);
    users.writeDescriptors(descriptors);
    tls = makeRedisTlsFiles(certs);
    set = await startSentinelSet({ password: MASTER_PASSWORD, sentinelPassword: SENTINEL_PASSWORD, downAfterMs: 300, tls, authClients: true });
    ({ master: a, replica: b, sentinel } = set);
  });
  after(async () => {
    await set?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('counts on the master the sentinel names and follows a SENTINEL FAILOVER, with the certificate given', async () => {
    const server = await serve({ ca_file: tls.caFile, cert_file: tls.clientCertFile, key_file: tls.clientKeyFile });
    const client = rateLimitClient(server.grpcAddress);
    try {
      const startedMs = Date.now();
      let counted: number | undefined;
      for (const deadline = Date.now() + 5000; counted === undefined && Date.now() < deadline; await sleep(50)) counted = await count(client, 'warm-up');
      const lines = (): string => JSON.stringify(server.logs().filter((l) => /redis|counter store/.test(String(l['msg']))));
      assert.equal(counted, 1, `never counted through the sentinel: ${lines()}`);
      for (let i = 2; i <= 4; i++) assert.equal(await count(client, 'before'), i - 1);
      assert.equal(await storedCount(a, 'before', startedMs), 3, 'the master holds the counts');

      // The failover is heard through the detector's subscription to the sentinel: that connection shows the
      // certificate too, or the client would keep writing to the demoted master.
      await waitReplicating(b, a.port);
      assert.match(await sendCommand(sentinel.server.port, ['SENTINEL', 'FAILOVER', sentinel.name]), /^\+OK/);
      await eventually(async () => (await sentinel.masterPort()) === b.port, 10_000, 'the sentinel names the replica');
      let onB = false;
      for (const deadline = Date.now() + 5000; !onB && Date.now() < deadline; await sleep(50)) {
        const before = await storedCount(b, 'after', startedMs);
        onB = (await count(client, 'after')) !== undefined && (await storedCount(b, 'after', startedMs)) === before + 1;
      }
      assert.ok(onB, `never counted on the promoted replica: ${lines()}`);
      assert.deepEqual(server.logs().filter((l) => /^redis (?:connection failed|sentinel not heard)/.test(String(l['msg'])) && /certificate/i.test(String(l['reason']))), [], 'no certificate trouble');
      assert.ok(!server.output().includes(MASTER_PASSWORD) && !server.output().includes(SENTINEL_PASSWORD), 'no password is logged');
    } finally {
      client.close();
      await server.stop();
    }
    // The old master rejoins as the promoted replica's replica, ready for the next test.
    await sendCommand(a.port, ['REPLICAOF', '127.0.0.1', String(b.port)]);
    await waitReplicating(a, b.port);
  });

  it('without a client certificate: never counts, and the log names the sentinel that refused and why', async () => {
    const server = await serve({ ca_file: tls.caFile });
    const client = rateLimitClient(server.grpcAddress);
    try {
      for (const deadline = Date.now() + 2500; Date.now() < deadline; await sleep(100)) {
        assert.equal(await count(client, 'refused'), undefined, 'counted without a client certificate');
      }
      const failed = server.logs().filter((l) => l['msg'] === 'redis connection failed');
      assert.deepEqual(failed.map((l) => l['client']).sort(), ['counter store', 'extproc cache'], JSON.stringify(failed));
      for (const line of failed) {
        assert.match(String(line['reason']), new RegExp(`^no sentinel answered: 127\\.0\\.0\\.1:${sentinel.server.port}: no client certificate: .*set redis\\.tls\\.cert_file and redis\\.tls\\.key_file$`), JSON.stringify(failed));
      }
      assert.ok(!/Unhandled|uncaught/i.test(server.output()), server.output().slice(-2000));
    } finally {
      client.close();
      assert.equal(await server.stop(), 0, 'exits cleanly: it did not crash');
    }
  });
});
