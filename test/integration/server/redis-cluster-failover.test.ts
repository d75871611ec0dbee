// `portcullis serve` against a Redis Cluster of 3 masters with a replica each while a master fails over, with real
// processes: the service in its own process, real redis-server nodes, gRPC clients driving steady traffic. What a
// failover may cost is the failed master's slots for about cluster-node-timeout plus the election; what it must
// not cost: calls past their deadline, requests on the other masters, a restart to recover, or a flood of log lines.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { hourlyUserLimit } from '../../support/hourly-counts.js';
import { startPortcullis, type PortcullisInstance } from '../../support/portcullis.js';
import { rateLimitClient, type RateLimitClient } from '../../support/ratelimit-client.js';
import { sendCommand, startRedisCluster, type RedisCluster } from '../../support/redis-server.js';
import { keySlot } from '../../../src/store/redis-counter-store.js';

const DOMAIN = 'failover';
const USERS = Array.from({ length: 30 }, (_, i) => `u${i}`);
const DEADLINE_MS = 1000;
const users = hourlyUserLimit(DOMAIN, 100_000_000);
const { counterKey } = users;

interface Call { readonly atMs: number; readonly tookMs: number; readonly outcome: 'counted' | 'failure_mode' | string; readonly user: string }

/** Calls from `workers` loops, each one call at a time, until stop(); counts the answers that were counted per user. */
function drive(client: RateLimitClient, workers = 6): { calls: Call[]; counted: Map<string, number>; stop(): Promise<void> } {
  const calls: Call[] = [];
  const counted = new Map(USERS.map((u) => [u, 0]));
  let stopping = false;
  const loop = async (w: number): Promise<void> => {
    for (let i = 0; !stopping; i++) {
      const user = USERS[(w * 7 + i) % USERS.length]!;
      const started = Date.now();
      let outcome: string;
      try {
        const response = await users.ask(client, user, DEADLINE_MS);
        outcome = response.statuses?.[0]?.current_limit ? 'counted' : 'failure_mode';
        if (outcome === 'counted') counted.set(user, counted.get(user)! + 1);
      } catch (error) {
        outcome = `grpc ${(error as grpc.ServiceError).code}`;
      }
      calls.push({ atMs: started, tookMs: Date.now() - started, outcome, user });
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  const loops = Array.from({ length: workers }, (_, w) => loop(w));
  return { calls, counted, stop: async () => { stopping = true; await Promise.all(loops); } };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function storedCount(cluster: RedisCluster, key: string): Promise<number> {
  const reply = await sendCommand((await cluster.masterOf(keySlot(key))).port, ['GET', key]);
  return Number(/\r\n(\d+)\r\n/.exec(reply)?.[1] ?? 0);
}

describe('portcullis serve on a Redis Cluster with replicas, while a master fails over', () => {
  let descriptors: string;
  before(() => {
    descriptors = mkdtempSync(path.join(tmpdir(), 'portcullis-failover-'));
    users.writeDescriptors(descriptors);
  });
  after(() => rmSync(descriptors, { recursive: true, force: true }));

  const serve = (seeds: readonly string[]): Promise<PortcullisInstance> => startPortcullis({
    server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
    redis: { cluster: seeds },
    log: { level: 'info' },
    ratelimit: { descriptors, failure_mode: 'allow', timeout_ms: DEADLINE_MS },
  });

  it('kill -9 of a master: its slots answer by failure_mode until the replica takes over, the rest count exactly, few log lines', async () => {
    const cluster = await startRedisCluster({ nodeTimeoutMs: 1000, replicas: 1 });
    const server = await serve(cluster.urls.slice(0, 3));
    const client = rateLimitClient(server.grpcAddress);
    try {
      const startedMs = Date.now();
      const victim = await cluster.masterOf(keySlot(counterKey(USERS[0]!, startedMs)));
      const [replica] = await cluster.replicasOf(victim);
      assert.ok(replica !== undefined, 'the master has a replica');
      const load = drive(client);
      await sleep(1000);
      const killedMs = Date.now();
      await victim.kill();
      // Recovered: the replica serves the slots, and calls for them count again.
      const user = USERS[0]!;
      let recoveredMs: number | undefined;
      while (recoveredMs === undefined && Date.now() - killedMs < 15_000) {
        await sleep(100);
        const recent = load.calls.filter((c) => c.atMs > Date.now() - 500);
        if (recent.length > 0 && recent.every((c) => c.outcome === 'counted') && recent.some((c) => c.user === user)) recoveredMs = Date.now();
      }
      await sleep(1000);
      await load.stop();
      assert.ok(recoveredMs !== undefined, `no recovery within 15 s of the kill: ${JSON.stringify(load.calls.slice(-10))}`);
      await cluster.waitHealthy();
      assert.equal((await cluster.masterOf(keySlot(counterKey(user, startedMs)))).port, replica.port, `the replica took over from ${victim.port}`);

      const outcomes = new Set(load.calls.map((c) => c.outcome));
      assert.deepEqual([...outcomes].filter((o) => o !== 'counted' && o !== 'failure_mode'), [], 'every call answered, none past its deadline');
      const slowest = Math.max(...load.calls.map((c) => c.tookMs));
      assert.ok(slowest < DEADLINE_MS, `a call took ${slowest} ms`);

      // Counters on the masters that stayed up: exactly what was answered as counted. (On the failed master's slots
      // a write whose answer the kill swallowed is counted without being answered, and one not yet replicated is lost.)
      const mismatches: string[] = [];
      for (const u of USERS) {
        const key = counterKey(u, startedMs);
        if ((await cluster.masterOf(keySlot(key))).port === replica.port) continue;
        const stored = await storedCount(cluster, key);
        if (stored !== load.counted.get(u)) mismatches.push(`${u}: stored ${stored}, answered as counted ${load.counted.get(u)}`);
      }
      assert.deepEqual(mismatches, []);

      const failing = server.logs().filter((l) => l['msg'] === 'counter store failing; answering with ratelimit.failure_mode');
      const back = server.logs().filter((l) => l['msg'] === 'counter store answering again');
      assert.ok(failing.length >= 1 && failing.length <= 3, `${failing.length} 'failing' lines: ${JSON.stringify(failing)}`);
      assert.ok(back.length <= 3, `${back.length} 'answering again' lines: ${JSON.stringify(back)}`);
    } finally {
      client.close();
      await server.stop();
      await cluster.stop();
    }
  });

  it('CLUSTER FAILOVER on the replica: every call counted, counts exact', async () => {
    const cluster = await startRedisCluster({ nodeTimeoutMs: 1000, replicas: 1 });
    const server = await serve(cluster.urls.slice(0, 3));
    const client = rateLimitClient(server.grpcAddress);
    try {
      const startedMs = Date.now();
      const master = await cluster.masterOf(keySlot(counterKey(USERS[0]!, startedMs)));
      const [replica] = await cluster.replicasOf(master);
      const load = drive(client);
      await sleep(1000);
      assert.match(await sendCommand(replica!.port, ['CLUSTER', 'FAILOVER']), /^\+OK/);
      await cluster.waitHealthy();
      await sleep(1500);
      await load.stop();
      assert.equal((await cluster.masterOf(keySlot(counterKey(USERS[0]!, startedMs)))).port, replica!.port);
      const notCounted = load.calls.filter((c) => c.outcome !== 'counted');
      assert.ok(notCounted.length <= load.calls.length / 100, `${notCounted.length} of ${load.calls.length} not counted: ${JSON.stringify(notCounted.slice(0, 5))}`);
      for (const u of USERS) assert.equal(await storedCount(cluster, counterKey(u, startedMs)), load.counted.get(u), u);
    } finally {
      client.close();
      await server.stop();
      await cluster.stop();
    }
  });

  it('a password-protected cluster: the promoted replica (not a seed) is authenticated too, and serves', async () => {
    const cluster = await startRedisCluster({ nodeTimeoutMs: 1000, replicas: 1 });
    const startedMs = Date.now();
    const victim = await cluster.masterOf(keySlot(counterKey(USERS[0]!, startedMs)));
    const masters = await Promise.all([0, 8000, 16000].map((slot) => cluster.masterOf(slot)));
    for (const node of cluster.servers) await sendCommand(node.port, ['CONFIG', 'SET', 'masterauth', 's3cret']);
    for (const node of cluster.servers) await sendCommand(node.port, ['CONFIG', 'SET', 'requirepass', 's3cret']);
    // Seeds: the masters only, as operators list them.
    const server = await serve(masters.map((m) => `redis://:s3cret@127.0.0.1:${m.port}`));
    const client = rateLimitClient(server.grpcAddress);
    const counts = async (): Promise<boolean> =>
      (await users.ask(client, USERS[0]!, DEADLINE_MS)).statuses?.[0]?.current_limit !== undefined;
    try {
      assert.ok(await counts(), 'counts before the failover');
      await victim.kill();
      const killedMs = Date.now();
      let recovered = false;
      while (!recovered && Date.now() - killedMs < 15_000) {
        await sleep(100);
        recovered = await counts();
      }
      const reasons = server.logs().filter((l) => l['msg'] === 'counter store failing; answering with ratelimit.failure_mode').map((l) => String(l['err']));
      assert.ok(recovered, `still not counting 15 s after the failover: ${reasons.join(' | ')}`);
      assert.ok(!server.output().includes('s3cret'), 'the password is never logged');
    } finally {
      client.close();
      await server.stop();
      await cluster.stop();
    }
  });
});
