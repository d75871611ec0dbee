// `portcullis serve` (two worker processes, each with its own Redis clients) counting through a Redis Sentinel while
// the master fails over three ways, with real processes: a master and a replica with passwords, one sentinel (quorum
// 1, its own password) that fails a master over after DOWN_AFTER_MS, gRPC clients driving steady traffic. What a
// failover may cost: the failure_mode answer (never a call past its deadline) until the sentinel names the promoted
// replica, and the writes the old master took that had not reached the replica (replication is asynchronous). What
// it must not cost: a restart to recover, a call that hangs, counts that go back by more than that.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { eventually } from '../../support/app.js';
import { hourlyUserLimit } from '../../support/hourly-counts.js';
import { startPortcullis, type PortcullisInstance } from '../../support/portcullis.js';
import { rateLimitClient, type RateLimitClient } from '../../support/ratelimit-client.js';
import { sendCommand, startSentinelSet, waitReplicating, type RedisSentinel, type RedisServer, type SentinelSet } from '../../support/redis-server.js';

const DOMAIN = 'sentinel';
const USERS = Array.from({ length: 8 }, (_, i) => `u${i}`);
const LIMIT = 100_000_000;
/** The gRPC deadline of every call: the store gets 80 % of it (ratelimit.timeout_ms rules only longer ones). */
const DEADLINE_MS = 500;
const DOWN_AFTER_MS = 300;
const MASTER_PASSWORD = 'data-nodes-secret';
const SENTINEL_PASSWORD = 'sentinel-secret';
const users = hourlyUserLimit(DOMAIN, LIMIT);

interface Call { readonly atMs: number; readonly doneMs: number; readonly outcome: 'counted' | 'failure_mode' | string; readonly user: string; readonly count: number | undefined }

/** Calls from `workers` loops, one call at a time each, until stop(). */
function drive(client: RateLimitClient, workers = 4): { calls: Call[]; stop(): Promise<void> } {
  const calls: Call[] = [];
  let stopping = false;
  const loop = async (w: number): Promise<void> => {
    for (let i = 0; !stopping; i++) {
      const user = USERS[(w * 3 + i) % USERS.length]!;
      const atMs = Date.now();
      let outcome: string;
      let count: number | undefined;
      try {
        const status = (await users.ask(client, user, DEADLINE_MS)).statuses?.[0];
        outcome = status?.current_limit ? 'counted' : 'failure_mode';
        if (outcome === 'counted') count = LIMIT - (status?.limit_remaining ?? 0);
      } catch (error) {
        outcome = `grpc ${(error as grpc.ServiceError).code}`;
      }
      calls.push({ atMs, doneMs: Date.now(), outcome, user, count });
      await sleep(5);
    }
  };
  const loops = Array.from({ length: workers }, (_, w) => loop(w));
  return { calls, stop: async () => { stopping = true; await Promise.all(loops); } };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** When calls count again: the first moment after `fromMs` past which 300 ms of calls all counted; undefined if never. */
async function recovery(calls: readonly Call[], fromMs: number, withinMs: number): Promise<number | undefined> {
  while (Date.now() - fromMs < withinMs) {
    await sleep(50);
    const recent = calls.filter((c) => c.atMs > Date.now() - 300);
    const since = recent[0]?.atMs ?? Date.now();
    if (since > fromMs && recent.length > 5 && recent.every((c) => c.outcome === 'counted')) return since;
  }
  return undefined;
}

/**
 * Per user, how far its count went back: the largest drop below a count answered earlier. A failover loses the
 * writes the promoted replica had not received, so a count may go back by at most the calls counted around it.
 */
function countsWentBack(calls: readonly Call[]): Map<string, number> {
  const back = new Map<string, number>();
  for (const user of USERS) {
    let highest = 0;
    let drop = 0;
    for (const call of [...calls].filter((c) => c.user === user && c.count !== undefined).sort((a, b) => a.doneMs - b.doneMs)) {
      drop = Math.max(drop, highest - call.count!);
      highest = Math.max(highest, call.count!);
    }
    back.set(user, drop);
  }
  return back;
}

async function readyz(server: PortcullisInstance): Promise<number> {
  return (await fetch(`${server.adminUrl}/readyz`)).status;
}

/** Every call answered within its deadline, as counted or by failure_mode. */
function assertAnswered(calls: readonly Call[], what: string): void {
  const others = calls.filter((c) => c.outcome !== 'counted' && c.outcome !== 'failure_mode');
  assert.deepEqual(others.slice(0, 5), [], `${what}: every call answered (counted or failure_mode)`);
  const slowest = Math.max(...calls.map((c) => c.doneMs - c.atMs));
  assert.ok(slowest < DEADLINE_MS, `${what}: a call took ${slowest} ms`);
}

describe('portcullis serve through Redis Sentinel while the master fails over', () => {
  let descriptors: string;
  let a: RedisServer;
  let b: RedisServer;
  let sentinel: RedisSentinel;
  let set: SentinelSet | undefined;
  let server: PortcullisInstance;
  let client: RateLimitClient;
  /** The servers by port, to find the one the sentinel names. */
  const byPort = (port: number): RedisServer => (port === a.port ? a : b);

  before(async () => {
    descriptors = mkdtempSync(path.join(tmpdir(), 'portcullis-sentinel-'));
    users.writeDescriptors(descriptors);
    set = await startSentinelSet({ password: MASTER_PASSWORD, sentinelPassword: SENTINEL_PASSWORD, downAfterMs: DOWN_AFTER_MS });
    ({ master: a, replica: b, sentinel } = set);
    server = await startPortcullis({
      server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' }, workers: 2 },
      redis: {
        sentinel: { master: sentinel.name, nodes: [`redis://:${SENTINEL_PASSWORD}@127.0.0.1:${sentinel.server.port}`], password: MASTER_PASSWORD },
        connect_timeout_ms: 300,
      },
      log: { level: 'info' },
      ratelimit: { descriptors, failure_mode: 'allow', timeout_ms: DEADLINE_MS },
    });
    client = rateLimitClient(server.grpcAddress);
    await eventually(async () => (await readyz(server)) === 200, 5000, 'ready');
  });
  after(async () => {
    client?.close();
    await server?.stop();
    await set?.stop();
    if (descriptors !== undefined) rmSync(descriptors, { recursive: true, force: true });
  });

  it('counts on the master the sentinel names, in both worker processes', async () => {
    const load = drive(client);
    await sleep(400);
    await load.stop();
    assertAnswered(load.calls, 'steady');
    assert.ok(load.calls.every((c) => c.outcome === 'counted'), JSON.stringify(load.calls.filter((c) => c.outcome !== 'counted').slice(0, 3)));
    const stored = await users.storedCount(a, USERS[0]!, Date.now());
    assert.equal(stored, load.calls.filter((c) => c.user === USERS[0]).length, 'the master holds every count');
    // Each worker opens its own clients (the counter store and the ext_proc cache): 2 × 2 on the master, besides the
    // replica's and the sentinel's (which name themselves, or replicate).
    const clients = (await sendCommand(a.port, ['CLIENT', 'LIST'])).split('\n').filter((l) => / name= /.test(l) && !/ cmd=(?:replconf|psync|sync|client)\b/.test(l) && !/ flags=S /.test(l));
    assert.ok(clients.length >= 4, `${clients.length} Portcullis connections on the master:\n${clients.join('\n')}`);
  });

  for (const failure of ['SENTINEL FAILOVER', 'kill -STOP of the master', 'kill -9 of the master'] as const) {
    it(`${failure}: failure_mode within the deadline until the promoted replica counts, counts back by no more than replication lost`, async () => {
      const master = byPort(await sentinel.masterPort());
      const replica = master === a ? b : a;
      await sentinel.waitMaster(master.port);
      await waitReplicating(replica, master.port);
      // The kill is the long outage here: the sentinel waits 1.5 s before it acts, long enough for /readyz to see it.
      const downAfterMs = failure === 'kill -9 of the master' ? 1500 : DOWN_AFTER_MS;
      await sendCommand(sentinel.server.port, ['SENTINEL', 'SET', sentinel.name, 'down-after-milliseconds', String(downAfterMs)]);
      const load = drive(client);
      await sleep(300);
      const failedMs = Date.now();
      const pid = (await sendCommand(master.port, ['INFO', 'server'])).match(/process_id:(\d+)/)?.[1];
      if (failure === 'SENTINEL FAILOVER') assert.match(await sendCommand(sentinel.server.port, ['SENTINEL', 'FAILOVER', sentinel.name]), /^\+OK/);
      else if (failure === 'kill -STOP of the master') process.kill(Number(pid), 'SIGSTOP');
      else await master.kill();
      const notReady: number[] = [];
      const watchReady = setInterval(() => void readyz(server).then((status) => status !== 200 && notReady.push(Date.now()), () => undefined), 200);
      try {
        // Counting again: on the promoted replica, once the sentinel names it (until then the old master may count).
        let switchedMs = Date.now();
        while ((await sentinel.masterPort().catch(() => undefined)) !== replica.port && switchedMs - failedMs < 10_000) {
          await sleep(20);
          switchedMs = Date.now();
        }
        const recoveredMs = await recovery(load.calls, switchedMs, 10_000);
        await sleep(300);
        await load.stop();
        assert.ok(recoveredMs !== undefined, `${failure}: no recovery within 10 s: ${JSON.stringify(load.calls.slice(-5))}\n${JSON.stringify(server.logs().slice(-20))}`);
        assert.equal(await sentinel.masterPort(), replica.port, 'the replica was promoted');
        // Every client follows the sentinel at once, also away from a paused master that keeps its connections open;
        // a client that reconnects after a refused connection tries again within a second.
        assert.ok(recoveredMs! - switchedMs < 1500, `${failure}: counting again ${recoveredMs! - switchedMs} ms after the sentinel named the replica`);
        assertAnswered(load.calls, failure);
        const back = countsWentBack(load.calls);
        for (const user of USERS) {
          // Bound: the calls for that user counted between the failure and the recovery (what the old master may have
          // taken and not passed on).
          const window = load.calls.filter((c) => c.user === user && c.outcome === 'counted' && c.atMs >= failedMs - 100 && c.atMs <= recoveredMs! + 500).length;
          assert.ok(back.get(user)! <= window, `${failure}: ${user}'s count went back by ${back.get(user)}, more than the ${window} calls counted during the failover`);
        }
        const failed = load.calls.filter((c) => c.outcome === 'failure_mode');
        // eslint-disable-next-line no-console
        console.log(`${failure}: the sentinel named the replica after ${switchedMs - failedMs} ms, counting again after ${recoveredMs! - failedMs} ms; ${failed.length} of ${load.calls.length} calls answered by failure_mode; counts went back by ${[...back.values()].join(',')}; /readyz not ready ${notReady.length} times`);
        if (failure === 'kill -9 of the master') {
          // A dead master refuses the connection: each call fails at once, not at its deadline.
          const slow = failed.filter((c) => c.doneMs - c.atMs > 100);
          assert.ok(slow.length <= failed.length / 10, `${slow.length} of ${failed.length} failure_mode answers took over 100 ms`);
          assert.ok(notReady.length > 0, '/readyz said not ready while no master answered');
          // The sentinel answered throughout: the log blames the master (refused), never the sentinels. ioredis said
          // "All sentinels are unreachable" at every other reconnect, without having asked one.
          const blamed = server.logs().filter((l) => l['msg'] === 'redis connection failed' && Number(l['time']) >= failedMs && /sentinel/i.test(String(l['reason'])));
          assert.deepEqual(blamed, [], 'no line blames the sentinel');
          assert.ok(server.logs().some((l) => l['msg'] === 'redis connection failed' && Number(l['time']) >= failedMs && /ECONNREFUSED/.test(String(l['reason']))), 'the refused master is logged');
        }
        await eventually(async () => (await readyz(server)) === 200, 5000, 'ready again');
      } finally {
        clearInterval(watchReady);
        if (failure === 'kill -STOP of the master') process.kill(Number(pid), 'SIGCONT');
        if (failure === 'kill -9 of the master') await master.restart();
      }
      // The old master rejoins as a replica, ready for the next failover. The sentinel would demote it at its next
      // look (every 10 s): sooner by hand. (Until then it is a master nobody writes to: every client follows the
      // sentinel.)
      await sendCommand(master.port, ['REPLICAOF', '127.0.0.1', String(replica.port)]);
      await waitReplicating(master, replica.port);
      await sentinel.waitMaster(replica.port);
    });
  }
});
