// `portcullis serve` through a Redis Sentinel that speaks TLS only: a master and a replica (no plaintext port,
// tls-replication, requirepass) and one sentinel (no plaintext port, its own requirepass, TLS to the data nodes), its
// private CA trusted through NODE_EXTRA_CA_CERTS. rediss:// sentinel nodes mean TLS to the sentinels and to the master
// they name (sentinelOptions); this runs that against real processes: counting, one SENTINEL FAILOVER followed, and
// the same setup with the CA not trusted, which must not count, must not crash, and must say it is the certificate.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
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

const DOMAIN = 'sentineltls';
const LIMIT = 1_000_000;
const MASTER_PASSWORD = 'tls-data-secret';
const SENTINEL_PASSWORD = 'tls-sentinel-secret';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const users = hourlyUserLimit(DOMAIN, LIMIT);
const { count, storedCount } = users;

describe('portcullis serve through a TLS-only Redis Sentinel (rediss:// sentinels, private CA, passwords)', () => {
  let dir: string;
  let descriptors: string;
  let tls: RedisTlsFiles;
  let a: RedisServer;
  let b: RedisServer;
  let sentinel: RedisSentinel;
  let set: SentinelSet | undefined;

  const serve = (env: Record<string, string>): Promise<PortcullisInstance> => startPortcullis({
    server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
    redis: {
      sentinel: { master: sentinel.name, nodes: [`rediss://:${SENTINEL_PASSWORD}@127.0.0.1:${sentinel.server.port}`], password: MASTER_PASSWORD },
      connect_timeout_ms: 500,
    },
    log: { level: 'info' },
    // allow: a store the service cannot use shows as answers without a current limit, not as gRPC errors.
    ratelimit: { descriptors, failure_mode: 'allow', timeout_ms: 500 },
  }, { env });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'portcullis-sentineltls-'));
    descriptors = path.join(dir, 'descriptors');
    const certs = path.join(dir, 'certs');
    for (const d of [descriptors, certs]) mkdirSync(d);
    users.writeDescriptors(descriptors);
    tls = makeRedisTlsFiles(certs);
    set = await startSentinelSet({ password: MASTER_PASSWORD, sentinelPassword: SENTINEL_PASSWORD, downAfterMs: 300, tls });
    ({ master: a, replica: b, sentinel } = set);
  });
  after(async () => {
    await set?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('has no plaintext port anywhere: master, replica and sentinel each listen on their TLS port alone', async () => {
    for (const server of [a, b, sentinel.server]) {
      assert.ok(server.url.startsWith('rediss://'));
      const pid = Number(/process_id:(\d+)/.exec(await sendCommand(server.port, ['INFO', 'server']))?.[1]);
      assert.deepEqual(listeningPorts(pid), [server.port], `the ports process ${pid} listens on`);
    }
  });

  it('counts on the master the sentinel names, over TLS, and follows a SENTINEL FAILOVER to the replica', async () => {
    const server = await serve({ NODE_EXTRA_CA_CERTS: tls.caFile });
    const client = rateLimitClient(server.grpcAddress);
    try {
      const startedMs = Date.now();
      let counted: number | undefined;
      for (const deadline = Date.now() + 5000; counted === undefined && Date.now() < deadline; await sleep(50)) counted = await count(client, 'warm-up');
      const lines = (): string => JSON.stringify(server.logs().filter((l) => /redis|counter store/.test(String(l['msg']))));
      assert.equal(counted, 1, `never counted through the TLS sentinel: ${lines()}`);
      for (let i = 2; i <= 5; i++) assert.equal(await count(client, 'before'), i - 1);
      assert.equal(await storedCount(a, 'before', startedMs), 4, 'the master holds the counts');
      assert.equal(await sentinel.masterPort(), a.port);

      await waitReplicating(b, a.port);
      assert.match(await sendCommand(sentinel.server.port, ['SENTINEL', 'FAILOVER', sentinel.name]), /^\+OK/);
      await eventually(async () => (await sentinel.masterPort()) === b.port, 10_000, 'the sentinel names the replica');
      // Counting again, on the promoted replica: each call now adds to what b holds.
      let onB = false;
      for (const deadline = Date.now() + 5000; !onB && Date.now() < deadline; await sleep(50)) {
        const before = await storedCount(b, 'after', startedMs);
        onB = (await count(client, 'after')) !== undefined && (await storedCount(b, 'after', startedMs)) === before + 1;
      }
      assert.ok(onB, `never counted on the promoted replica: ${lines()}`);

      // The sentinel gone: the master still counts, and the failover detector's subscription, which retries every
      // second, does not print "[ioredis] Unhandled error event" at each attempt.
      await sentinel.server.kill();
      try {
        for (const deadline = Date.now() + 2200; Date.now() < deadline; await sleep(100)) {
          assert.notEqual(await count(client, 'no sentinel'), undefined, `the master counts while the sentinel is down: ${lines()}`);
        }
        assert.doesNotMatch(server.output(), /Unhandled error event/);
      } finally {
        await sentinel.server.restart();
      }
      assert.ok(!server.output().includes(MASTER_PASSWORD) && !server.output().includes(SENTINEL_PASSWORD), 'no password is logged');
      assert.deepEqual(server.logs().filter((l) => l['msg'] === 'redis connection failed' && /certificate/i.test(String(l['reason']))), [], 'no certificate trouble');
    } finally {
      client.close();
      await server.stop();
    }
    // The old master rejoins as the promoted replica's replica, ready for the next test.
    await sendCommand(a.port, ['REPLICAOF', '127.0.0.1', String(b.port)]);
    await waitReplicating(a, b.port);
  });

  // TLS with the certificates checked, not merely encrypted: sentinels whose CA is not trusted are not asked.
  it('without the CA trusted: never counts, does not crash, /readyz is not ready and the log names the certificate', async () => {
    const server = await serve({ NODE_EXTRA_CA_CERTS: '' });
    const client = rateLimitClient(server.grpcAddress);
    try {
      for (const deadline = Date.now() + 2500; Date.now() < deadline; await sleep(100)) {
        assert.equal(await count(client, 'untrusted'), undefined, 'counted through sentinels whose certificate is not trusted');
      }
      const readyz = await fetch(`${server.adminUrl}/readyz`);
      assert.equal(readyz.status, 503);
      assert.deepEqual(((await readyz.json()) as { reasons: string[] }).reasons.map((r) => r.replace(/:\d+:/, ':PORT:')), ['counter store not reachable: no sentinel answered: 127.0.0.1:PORT: self-signed certificate in certificate chain']);
      assert.equal((await fetch(`${server.adminUrl}/healthz`)).status, 200, 'still alive');
      // One line per client (the counter store, the ext_proc cache), naming the sentinel and its certificate; not
      // ioredis's "All sentinels are unreachable… Last error: Connection is closed.".
      const failed = server.logs().filter((l) => l['msg'] === 'redis connection failed');
      assert.deepEqual(failed.map((l) => l['client']).sort(), ['counter store', 'extproc cache'], JSON.stringify(failed));
      const sentinelAt = `127\\.0\\.0\\.1:${sentinel.server.port}`;
      for (const line of failed) assert.match(String(line['reason']), new RegExp(`^no sentinel answered: ${sentinelAt}: self-signed certificate`), JSON.stringify(failed));
      assert.ok(!server.output().includes(MASTER_PASSWORD) && !server.output().includes(SENTINEL_PASSWORD), 'no password is logged');
      assert.ok(!/Unhandled|uncaught/i.test(server.output()), server.output().slice(-2000));
    } finally {
      client.close();
      assert.equal(await server.stop(), 0, 'exits cleanly: it did not crash');
    }
  });
});


/** The TCP ports process `pid` listens on (Linux: its socket inodes among /proc/net/tcp{,6}'s LISTEN entries). */
function listeningPorts(pid: number): number[] {
  const inodes = new Set(readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
    } catch {
      return undefined; // closed meanwhile
    }
  }).filter((inode) => inode !== undefined));
  const ports = new Set<number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is ip:port in hex; st 0A is LISTEN; the inode is the tenth field.
      if (fields[3] === '0A' && inodes.has(fields[9]!)) ports.add(parseInt(fields[1]!.split(':')[1]!, 16));
    }
  }
  return [...ports].sort((x, y) => x - y);
}
