// `portcullis serve` against a Redis it cannot use: the log must say why, once, without the password. A Cluster's
// reasons were hidden behind ioredis's "Failed to refresh slots cache." (its nodes say "Connection is closed."
// whatever closed them); a single node's plaintext-to-TLS failure said only "read ECONNRESET", one line per retry.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPortcullis } from '../../support/portcullis.js';
import { rateLimitClient } from '../../support/ratelimit-client.js';
import { makeRedisTlsFiles, startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '../../support/redis-server.js';

const DOMAIN = 'reason';
const PASSWORD = 's3cret-reason';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('portcullis serve logs why it cannot use Redis', () => {
  let descriptors: string;
  let tlsDir: string;
  let cluster: RedisCluster;
  let single: RedisServer;
  before(async () => {
    descriptors = mkdtempSync(path.join(tmpdir(), 'portcullis-reason-'));
    writeFileSync(path.join(descriptors, 'd.yaml'), `domain: ${DOMAIN}\ndescriptors:\n  - key: user\n    rate_limit: { unit: hour, requests_per_unit: 5 }\n`);
    cluster = await startRedisCluster({ tls: true, password: PASSWORD });
    tlsDir = mkdtempSync(path.join(tmpdir(), 'portcullis-reason-tls-'));
    single = await startRedis({ tls: makeRedisTlsFiles(tlsDir), password: PASSWORD });
  });
  after(async () => {
    await cluster?.stop();
    await single?.stop();
    rmSync(descriptors, { recursive: true, force: true });
    if (tlsDir !== undefined) rmSync(tlsDir, { recursive: true, force: true });
  });

  /** Serves with `redis`, sends requests for ~3 s, and returns the "redis connection failed" reasons logged. */
  const failures = async (redis: object, env: Record<string, string>, expected: RegExp): Promise<string[]> => {
    const server = await startPortcullis({
      server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
      redis: { ...redis, connect_timeout_ms: 500 },
      log: { level: 'info' },
      ratelimit: { descriptors, failure_mode: 'allow', timeout_ms: 200 },
    }, { env });
    const client = rateLimitClient(server.grpcAddress);
    try {
      const reasons = (): string[] => server.logs().filter((l) => l['msg'] === 'redis connection failed').map((l) => String(l['reason']));
      const startedMs = Date.now();
      while (Date.now() - startedMs < 3000) {
        await client.shouldRateLimit({ domain: DOMAIN, descriptors: [{ entries: [{ key: 'user', value: 'u' }] }] }, 500);
        await sleep(50);
      }
      assert.ok(!server.output().includes(PASSWORD), 'the password is never logged');
      const matching = reasons().filter((r) => expected.test(r));
      assert.equal(matching.length, 1, `one line naming the reason ${expected}: ${JSON.stringify(reasons())}`);
      return reasons();
    } finally {
      client.close();
      await server.stop();
    }
  };

  it('a Cluster whose certificate is not trusted: "self-signed certificate", once', async () => {
    const seeds = cluster.servers.map((s) => `rediss://:${PASSWORD}@127.0.0.1:${s.port}`);
    await failures({ cluster: seeds }, { NODE_EXTRA_CA_CERTS: '' }, /self-signed certificate/);
  });

  it('a Cluster with a wrong password: WRONGPASS, once', async () => {
    const seeds = cluster.servers.map((s) => `rediss://:wrong-${PASSWORD}@127.0.0.1:${s.port}`);
    await failures({ cluster: seeds }, { NODE_EXTRA_CA_CERTS: cluster.tls!.caFile }, /WRONGPASS/);
  });

  it('a Cluster spoken to in plaintext on its TLS ports: the reset, with the hint, once', async () => {
    const seeds = cluster.servers.map((s) => `redis://:${PASSWORD}@127.0.0.1:${s.port}`);
    await failures({ cluster: seeds }, {}, /ECONNRESET.*rediss:\/\//);
  });

  it('a Cluster seed that does not resolve: ENOTFOUND, once', async () => {
    await failures({ cluster: [`redis://:${PASSWORD}@no-such-host.invalid:6379`] }, {}, /ENOTFOUND/);
  });

  it('a single node spoken to in plaintext on its TLS port: the reset, with the hint, once', async () => {
    await failures({ url: `redis://:${PASSWORD}@127.0.0.1:${single.port}` }, {}, /ECONNRESET.*rediss:\/\//);
  });

  it('a single node whose certificate is not trusted: "self-signed certificate", once', async () => {
    await failures({ url: `rediss://:${PASSWORD}@127.0.0.1:${single.port}` }, { NODE_EXTRA_CA_CERTS: '' }, /self-signed certificate/);
  });
});
