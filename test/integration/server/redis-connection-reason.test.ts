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
  let keysDir: string;
  let keysFile: string;
  let tlsDir: string;
  let cluster: RedisCluster;
  let single: RedisServer;
  before(async () => {
    descriptors = mkdtempSync(path.join(tmpdir(), 'portcullis-reason-'));
    writeFileSync(path.join(descriptors, 'd.yaml'), `domain: ${DOMAIN}\ndescriptors:\n  - key: user\n    rate_limit: { unit: hour, requests_per_unit: 5 }\n`);
    // Not under the descriptors' directory: every file there is read as a descriptor file.
    keysDir = mkdtempSync(path.join(tmpdir(), 'portcullis-reason-keys-'));
    keysFile = path.join(keysDir, 'keys.yaml');
    writeFileSync(keysFile, `- { id: k1, sha256: '${'0'.repeat(64)}', owner: o }\n`);
    cluster = await startRedisCluster({ tls: true, password: PASSWORD });
    tlsDir = mkdtempSync(path.join(tmpdir(), 'portcullis-reason-tls-'));
    single = await startRedis({ tls: makeRedisTlsFiles(tlsDir), password: PASSWORD });
  });
  after(async () => {
    await cluster?.stop();
    await single?.stop();
    rmSync(descriptors, { recursive: true, force: true });
    if (tlsDir !== undefined) rmSync(tlsDir, { recursive: true, force: true });
    if (keysDir !== undefined) rmSync(keysDir, { recursive: true, force: true });
  });

  /**
   * Serves with `redis`, sends requests for ~3 s, and checks that each Redis client `serve` opens (the counter store,
   * the ext_proc cache, the revocation list) logged the reason once, under its name.
   */
  const failures = async (redis: object, env: Record<string, string>, expected: RegExp): Promise<void> => {
    const server = await startPortcullis({
      server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
      redis: { ...redis, connect_timeout_ms: 500 },
      log: { level: 'info' },
      ratelimit: { descriptors, failure_mode: 'allow', timeout_ms: 200 },
      authz: {
        api_keys: { header: 'x-api-key', file: keysFile },
        revocation: { enabled: true, on_unavailable: 'deny' },
        policies: [{ name: 'api', match: { path_prefix: '/' }, authenticate: ['api_key'] }],
      },
    }, { env });
    const client = rateLimitClient(server.grpcAddress);
    try {
      const startedMs = Date.now();
      while (Date.now() - startedMs < 3000) {
        await client.shouldRateLimit({ domain: DOMAIN, descriptors: [{ entries: [{ key: 'user', value: 'u' }] }] }, 500);
        await sleep(50);
      }
      assert.ok(!server.output().includes(PASSWORD), 'the password is never logged');
      const failed = server.logs().filter((l) => l['msg'] === 'redis connection failed');
      for (const name of ['counter store', 'extproc cache', 'revocation list']) {
        const reasons = failed.filter((l) => l['client'] === name).map((l) => String(l['reason']));
        assert.equal(reasons.filter((r) => expected.test(r)).length, 1, `${name}: one line naming the reason ${expected}: ${JSON.stringify(failed)}`);
      }
      // /readyz says why too: the counter store's last reason in the log.
      const readyz = await fetch(`${server.adminUrl}/readyz`);
      assert.equal(readyz.status, 503);
      const last = failed.filter((l) => l['client'] === 'counter store').at(-1)?.['reason'];
      assert.deepEqual(((await readyz.json()) as { reasons: string[] }).reasons, [`counter store not reachable: ${String(last)}`]);
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

  it('a Cluster seed that does not resolve beside good ones: the good seeds serve, the bad one is logged once', async () => {
    const seeds = [`rediss://:${PASSWORD}@no-such-host.invalid:6379`, ...cluster.servers.map((s) => `rediss://:${PASSWORD}@127.0.0.1:${s.port}`)];
    const server = await startPortcullis({
      server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
      redis: { cluster: seeds, connect_timeout_ms: 500 },
      log: { level: 'info' },
      ratelimit: { descriptors, failure_mode: 'allow', timeout_ms: 500 },
    }, { env: { NODE_EXTRA_CA_CERTS: cluster.tls!.caFile } });
    const client = rateLimitClient(server.grpcAddress);
    try {
      let counted = false;
      for (let i = 0; i < 30 && !counted; i++) {
        counted = (await client.shouldRateLimit({ domain: DOMAIN, descriptors: [{ entries: [{ key: 'user', value: 'seed' }] }] }, 500)).statuses?.[0]?.current_limit !== undefined;
        if (!counted) await sleep(100);
      }
      const lines = server.logs().filter((l) => /redis/.test(String(l['msg'])));
      assert.ok(counted, `never counted with one bad seed: ${JSON.stringify(lines)}`);
      const skipped = lines.filter((l) => l['msg'] === 'redis cluster seed skipped');
      // One line per client that uses the seeds (counter store, ext_proc cache), each naming the host and why.
      assert.ok(skipped.length >= 1, JSON.stringify(lines));
      assert.equal(new Set(skipped.map((l) => l['client'])).size, skipped.length, `once per client: ${JSON.stringify(skipped)}`);
      for (const line of skipped) assert.match(String(line['reason']), /^no-such-host\.invalid: .*ENOTFOUND/);
      assert.deepEqual(lines.filter((l) => l['msg'] === 'redis connection failed'), [], 'no failure: the cluster is reachable');
      assert.ok(!server.output().includes(PASSWORD), 'the password is never logged');
    } finally {
      client.close();
      await server.stop();
    }
  });

  it('a single node spoken to in plaintext on its TLS port: the reset, with the hint, once', async () => {
    await failures({ url: `redis://:${PASSWORD}@127.0.0.1:${single.port}` }, {}, /ECONNRESET.*rediss:\/\//);
  });

  it('a single node whose certificate is not trusted: "self-signed certificate", once', async () => {
    await failures({ url: `rediss://:${PASSWORD}@127.0.0.1:${single.port}` }, { NODE_EXTRA_CA_CERTS: '' }, /self-signed certificate/);
  });
});
