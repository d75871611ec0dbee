import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { PORTCULLIS_NODE_FLAGS } from '../../../src/server/node-flags.js';
import { eventually } from '../../support/app.js';
import { repoRoot } from '../../support/envoy.js';
import { startPortcullis, type PortcullisInstance } from '../../support/portcullis.js';
import { rateLimitClient, type RateLimitClient } from '../../support/ratelimit-client.js';
import { sendCommand, startRedis, type RedisServer } from '../../support/redis-server.js';
import { startUpstream, type Upstream } from '../../support/upstream.js';
import { awayFromWindowEdge } from '../../support/windows.js';

const limit = (domain: string, perMinute: number): string => `domain: ${domain}
descriptors:
  - key: user
    rate_limit: { unit: minute, requests_per_unit: ${perMinute} }
`;
const request = (domain: string, user: string) => ({ domain, descriptors: [{ entries: [{ key: 'user', value: user }] }] });

interface WorkerSummary { worker: number; pid: number | undefined; ready: boolean; decisions: number }

async function workers(instance: PortcullisInstance): Promise<WorkerSummary[]> {
  const config = (await (await fetch(`${instance.adminUrl}/config`)).json()) as { workers: WorkerSummary[] };
  return config.workers;
}

async function metric(instance: PortcullisInstance, series: string): Promise<number> {
  const text = await (await fetch(`${instance.adminUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

async function readyz(instance: PortcullisInstance): Promise<{ status: number; body: { ready: boolean; reasons: string[] } }> {
  const res = await fetch(`${instance.adminUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as { ready: boolean; reasons: string[] } };
}

describe('server.workers: 2 behind one gRPC port (node:cluster), against a real redis-server', () => {
  let redis: RedisServer;
  let upstream: Upstream;
  let portcullis: PortcullisInstance;
  let dir: string;
  /** Four clients, each on its own connection: the supervisor hands connections to workers in turn. */
  let clients: RateLimitClient[];

  before(async () => {
    redis = await startRedis();
    upstream = await startUpstream();
    dir = mkdtempSync(path.join(tmpdir(), 'portcullis-workers-'));
    writeFileSync(path.join(dir, 'spread.yaml'), limit('spread', 100));
    writeFileSync(path.join(dir, 'kill.yaml'), limit('kill', 1_000_000_000));
    portcullis = await startPortcullis({
      server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' }, http: { address: '127.0.0.1:0' }, workers: 2, shutdown_timeout_ms: 3000 },
      redis: { url: redis.url },
      log: { level: 'info' },
      ratelimit: { descriptors: dir, reload: { enabled: true, poll_interval_ms: 100 } },
      bff: { services: { up: upstream.url }, endpoints: [{ path: '/bff/ping', calls: { ping: { service: 'up', path: '/ping' } } }] },
    }, { readyTimeoutMs: 60_000 });
    // Both workers must listen before the clients connect, or the first one takes every connection.
    await eventually(async () => (await readyz(portcullis)).status === 200, 20_000, 'every worker ready');
    clients = [];
    for (let i = 0; i < 4; i++) {
      const client = rateLimitClient(portcullis.grpcAddress, true);
      await client.shouldRateLimit(request('warmup', `c${i}`)); // connect now, in order: round robin alternates
      clients.push(client);
    }
    // Worker status reaches the supervisor every 250 ms: the tests' baselines must include the warm-up calls.
    await eventually(async () => (await workers(portcullis)).reduce((n, w) => n + w.decisions, 0) === 4, 20_000, 'the warm-up calls counted');
  });

  after(async () => {
    for (const client of clients ?? []) client.close();
    if (portcullis) {
      const code = await portcullis.stop();
      assert.equal(code, 0, portcullis.output());
      // SIGTERM reached every worker, each drained, and the supervisor left last.
      const stopped = portcullis.logs().filter((l) => l['msg'] === 'stopped');
      assert.deepEqual(stopped.map((l) => l['worker'] ?? 'supervisor').sort(), [1, 2, 'supervisor'].sort());
      assert.equal(stopped.at(-1)?.['worker'], undefined, 'the supervisor stops after its workers');
    }
    await redis?.stop();
    await upstream?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('logs the composer\'s address, which the workers serve (port 0 resolved once for all of them)', async () => {
    assert.ok(portcullis.httpUrl, 'the listening line names the composer\'s address');
    for (let i = 0; i < 4; i++) {
      const res: Response = await fetch(`${portcullis.httpUrl}/bff/ping`, { headers: { connection: 'close' } });
      assert.equal(res.status, 200, await res.text());
    }
  });

  it('runs its workers with its own Node flags (the shipped ones here), and its listening line names them', async () => {
    const listening = portcullis.logs().find((l) => l['msg'] === 'portcullis listening');
    assert.deepEqual(listening?.['nodeFlags'], PORTCULLIS_NODE_FLAGS);
    for (const worker of await workers(portcullis)) {
      assert.ok(worker.pid);
      const argv = readFileSync(`/proc/${worker.pid}/cmdline`, 'utf8').split('\0');
      for (const flag of PORTCULLIS_NODE_FLAGS) assert.ok(argv.includes(flag), `worker ${worker.pid}: ${argv.join(' ')}`);
    }
  });

  /** Resolves once both workers have logged `msg` since log line `since`. */
  const bothLogged = (since: number, msg: string, what: string): Promise<void> => eventually(() => {
    const lines = portcullis.logs().slice(since).filter((l) => l['msg'] === msg);
    return new Set(lines.map((l) => l['worker'])).size === 2;
  }, 30_000, what);

  /** SIGKILLs worker `index + 1` (the first by default); resolves with what it was once its replacement runs and every worker is ready. */
  const killWorker = async (what: string, index = 0): Promise<WorkerSummary> => {
    const victim = (await workers(portcullis))[index];
    assert.ok(victim?.pid);
    process.kill(victim.pid, 'SIGKILL');
    await eventually(async () => {
      const now = await workers(portcullis);
      return now[index]!.pid !== victim.pid && now[index]!.pid !== undefined && (await readyz(portcullis)).status === 200;
    }, 30_000, what);
    return victim;
  };
  const killFirstWorker = (what: string): Promise<WorkerSummary> => killWorker(what, 0);

  it('serves one port from both workers, counts exactly across them, and sums their metrics', async () => {
    const before = await workers(portcullis);
    assert.equal(before.length, 2);
    assert.notEqual(before[0]!.pid, before[1]!.pid);
    await awayFromWindowEdge(60, 5);
    const responses = await Promise.all(Array.from({ length: 160 }, (_, i) => clients[i % 4]!.shouldRateLimit(request('spread', 'alice'))));
    assert.equal(responses.filter((r) => r.overall_code === 'OK').length, 100);
    assert.equal(responses.filter((r) => r.overall_code === 'OVER_LIMIT').length, 60);

    assert.equal(await metric(portcullis, 'portcullis_ratelimit_decisions_total{domain="spread",code="OK"}'), 100);
    assert.equal(await metric(portcullis, 'portcullis_ratelimit_decisions_total{domain="spread",code="OVER_LIMIT"}'), 60);
    assert.equal(await metric(portcullis, 'portcullis_workers_running'), 2);
    await eventually(async () => {
      const now = await workers(portcullis);
      const served = now.map((w, i) => w.decisions - before[i]!.decisions);
      return served.every((n) => n > 0) && served.reduce((a, b) => a + b, 0) === 160;
    }, 20_000, 'both workers to have answered part of the 160 requests');
  });

  it('/config shows a worker that stopped answering as not ready, as /readyz does', async () => {
    const [first] = await workers(portcullis);
    process.kill(first!.pid!, 'SIGSTOP');
    try {
      await eventually(async () => (await workers(portcullis))[0]!.ready === false, 10_000, '/config: worker 1 not ready');
      assert.ok((await readyz(portcullis)).body.reasons.includes('worker 1: no status'));
    } finally {
      process.kill(first!.pid!, 'SIGCONT');
    }
    await eventually(async () => (await workers(portcullis)).every((w) => w.ready) && (await readyz(portcullis)).status === 200, 10_000, 'ready again');
  });

  it('tells every worker to reload when a descriptor file changes', async () => {
    const loadedBefore = portcullis.logs().length;
    writeFileSync(path.join(dir, 'fresh.yaml'), limit('fresh', 5));
    await eventually(() => {
      const loaded = portcullis.logs().slice(loadedBefore).filter((l) => l['msg'] === 'config loaded' && (l['domains'] as string[]).includes('fresh'));
      return new Set(loaded.map((l) => l['worker'])).size === 2;
    }, 30_000, 'both workers to log the new domain');
    const before = await workers(portcullis);
    // A worker still on the old config would not know the domain and answer OK to all of them.
    await awayFromWindowEdge(60, 5);
    const responses = await Promise.all(Array.from({ length: 20 }, (_, i) => clients[i % 4]!.shouldRateLimit(request('fresh', 'bob'))));
    assert.equal(responses.filter((r) => r.overall_code === 'OK').length, 5);
    await eventually(async () => (await workers(portcullis)).every((w, i) => w.decisions > before[i]!.decisions), 20_000, 'both workers to answer');
  });

  it('replaces a killed worker; only the calls it held fail (UNAVAILABLE), or one lost in node:cluster\'s hand-off', async () => {
    const [victim, survivor] = await workers(portcullis);
    assert.ok(victim?.pid && survivor?.pid);
    let ok = 0;
    const failures: grpc.ServiceError[] = [];
    let running = true;
    let n = 0;
    const loops = clients.map(async (client) => {
      while (running) {
        try {
          // A client whose connection went to the victim reconnects with grpc-js' backoff; its next call waits for
          // the pick (seen: over 2 s on a loaded CI machine) and must not count as a failure of the supervisor.
          const r = await client.shouldRateLimit(request('kill', `u${n++ % 50}`), 10_000);
          if (r.overall_code === 'OK') ok++;
        } catch (error) {
          failures.push(error as grpc.ServiceError);
        }
      }
    });
    await eventually(() => ok >= 200, 60_000, 'load before the kill');
    process.kill(victim.pid, 'SIGKILL');
    await eventually(async () => (await readyz(portcullis)).status === 503, 5000, '/readyz to report the missing worker');
    await eventually(async () => {
      const now = await workers(portcullis);
      return now[0]!.pid !== victim.pid && now[0]!.pid !== undefined && (await readyz(portcullis)).status === 200;
    }, 30_000, 'a replacement worker, ready');
    const okAtReplacement = ok;
    await eventually(() => ok >= okAtReplacement + 200, 60_000, 'load after the replacement');
    running = false;
    await Promise.all(loops);

    // Each client has one call in flight, so at most the calls on the victim's connections were lost.
    assert.ok(failures.length <= clients.length, `${failures.length} failures: ${failures.map((f) => f.message).join('; ')}`);
    // A call the victim held fails UNAVAILABLE. The one other way to fail is node:cluster's known limit
    // (docs/workers.md, nodejs/node#3551): a reconnection handed to the victim as it died is never served, and
    // grpc-js, which has no handshake timeout, waits out the deadline before any worker sees the call.
    const lostInHandOff = (f: grpc.ServiceError): boolean => f.code === 4 /* DEADLINE_EXCEEDED */ && f.details.includes('Waiting for LB pick');
    for (const f of failures) assert.ok(f.code === 14 /* UNAVAILABLE */ || lostInHandOff(f), f.message);
    assert.equal(await metric(portcullis, 'portcullis_worker_restarts_total'), 1);
    assert.equal(await metric(portcullis, 'portcullis_workers_running'), 2);
    // Every OK was counted in Redis; a held call may have been counted without an answer.
    const sum = "local n = 0 for _, k in ipairs(redis.call('KEYS', 'kill_*')) do n = n + tonumber(redis.call('GET', k)) end return n";
    const counted = Number((await sendCommand(redis.port, ['EVAL', sum, '0'])).slice(1).trim());
    assert.ok(counted >= ok && counted <= ok + failures.length, `redis counted ${counted}, ${ok} OK, ${failures.length} failed`);
  });

  it('starts a replacement from the config its siblings run, not from files an edit they refused broke', async () => {
    const good = { config: readFileSync(portcullis.configFile, 'utf8'), spread: readFileSync(path.join(dir, 'spread.yaml'), 'utf8') };
    const atEdit = portcullis.logs().length;
    writeFileSync(portcullis.configFile, 'server: [not a mapping\n');
    writeFileSync(path.join(dir, 'spread.yaml'), 'domain: [broken\n');
    try {
      await bothLogged(atEdit, 'config rejected; keeping the last good config', 'both workers to refuse the edit');
      const atKill = portcullis.logs().length;
      // Read from the broken files, the replacement would exit at once, again and again (or, with only the descriptor
      // file broken, start with no rate limit config and never be ready).
      const victim = await killFirstWorker('a replacement worker, ready');
      const replacement = portcullis.logs().slice(atKill).filter((l) => l['worker'] === victim.worker).map((l) => l['msg']);
      const loaded = replacement.indexOf('config loaded');
      assert.ok(loaded >= 0, replacement.join(', '));
      assert.ok(replacement.indexOf('config rejected; keeping the last good config') > loaded, 'then it read the files, and refused them');

      // Every worker replaced, none left that saw the edit refused: each replacement still reports the files on disk
      // rejected after its own load, so the supervisor's aggregate (newest failure, oldest success) keeps
      // PortcullisConfigRejected's condition true instead of a replacement's 0 clearing it.
      await killWorker('the second worker replaced too', 1);
      const failure = await metric(portcullis, 'portcullis_config_last_failure_timestamp_seconds');
      const success = await metric(portcullis, 'portcullis_config_last_success_timestamp_seconds');
      assert.ok(success > 0 && failure > success, `last failure ${failure}, last success ${success}: the broken files still count as rejected`);

      // It serves the siblings' limits: spread (100 a minute per user) still counts on every connection.
      const fresh = Array.from({ length: 4 }, () => rateLimitClient(portcullis.grpcAddress, true));
      try {
        await awayFromWindowEdge(60, 5);
        const responses = await Promise.all(Array.from({ length: 104 }, (_, i) => fresh[i % 4]!.shouldRateLimit(request('spread', 'dave'))));
        assert.equal(responses.filter((r) => r.overall_code === 'OVER_LIMIT').length, 4);
      } finally {
        for (const client of fresh) client.close();
      }
    } finally {
      writeFileSync(portcullis.configFile, good.config);
      writeFileSync(path.join(dir, 'spread.yaml'), good.spread);
    }
  });

  it('starts a replacement with the start-up settings its siblings keep, not a redis change waiting for a restart', async () => {
    const good = readFileSync(portcullis.configFile, 'utf8');
    const atEdit = portcullis.logs().length;
    // Valid, but `redis` applies on restart only: the workers keep the Redis they started with.
    writeFileSync(portcullis.configFile, good.replace(redis.url, 'redis://127.0.0.1:1'));
    try {
      await bothLogged(atEdit, 'settings changed in the config file that take effect on restart', 'both workers to note the change');
      // On the changed URL the replacement would find no counter store and never be ready.
      await killFirstWorker('a replacement worker, ready on the Redis its siblings use');
    } finally {
      writeFileSync(portcullis.configFile, good);
    }
  });
});

describe('server.workers: a signal during start-up', () => {
  /** Live child processes of `pid` (Linux /proc). */
  const children = (pid: number): number[] => readdirSync(`/proc/${pid}/task`).flatMap((task) =>
    readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter((c) => c !== '').map(Number));

  /** A supervisor of two workers on a fresh redis-server, started as a user would (bin/portcullis.js serve). */
  async function supervise(extra = ''): Promise<{
    child: ReturnType<typeof spawn>; output: () => string; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>; done: () => Promise<void>;
  }> {
    const redis = await startRedis();
    const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-workers-start-'));
    const descriptors = path.join(dir, 'ratelimit');
    mkdirSync(descriptors);
    writeFileSync(path.join(descriptors, 'a.yaml'), limit('a', 10));
    writeFileSync(path.join(dir, 'portcullis.yaml'), `server:
  grpc: { address: "127.0.0.1:0" }
  admin: { address: "127.0.0.1:0" }
  workers: 2
${extra}redis: { url: "${redis.url}" }
ratelimit: { descriptors: "${descriptors}" }
`);
    const child = spawn(process.execPath, [path.join(repoRoot(), 'bin', 'portcullis.js'), 'serve', '--config', path.join(dir, 'portcullis.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (output += c));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    return {
      child, output: () => output, exited,
      done: async () => {
        child.kill('SIGKILL');
        await redis.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }

  it('SIGTERM before the workers listen drains what started and exits 0, leaving no worker behind', async () => {
    const s = await supervise();
    try {
      // The first worker forked: the supervisor is starting, and no worker listens yet (loading takes far longer).
      await eventually(async () => children(s.child.pid!).length > 0, 10_000, 'a worker forked');
      const forked = children(s.child.pid!);
      assert.ok(!s.output().includes('portcullis listening'), s.output());
      s.child.kill('SIGTERM');
      assert.deepEqual(await s.exited, { code: 0, signal: null }, s.output());
      await eventually(async () => forked.every((pid) => !existsSync(`/proc/${pid}`)), 10_000, 'every worker gone');
    } finally {
      await s.done();
    }
  });

  it('SIGHUP before the workers listen does not end the start: every worker reloads once they listen', async () => {
    const s = await supervise();
    try {
      await eventually(async () => children(s.child.pid!).length > 0, 10_000, 'a worker forked');
      assert.ok(!s.output().includes('portcullis listening'), s.output());
      s.child.kill('SIGHUP');
      await eventually(async () => s.output().includes('SIGHUP: reloading every worker'), 20_000, 'the reload, once started');
      assert.ok(s.output().indexOf('portcullis listening') < s.output().indexOf('SIGHUP: reloading every worker'), s.output());
      assert.ok(!s.output().includes('config rejected'), s.output());
      assert.equal(s.child.exitCode, null, s.output());
      s.child.kill('SIGTERM');
      assert.deepEqual(await s.exited, { code: 0, signal: null }, s.output());
    } finally {
      await s.done();
    }
  });

  it('SIGHUP while draining neither ends the supervisor nor spares a stuck worker its SIGKILL', async () => {
    const s = await supervise('  shutdown_timeout_ms: 300\n');
    try {
      await eventually(async () => s.output().includes('portcullis listening'), 20_000, 'listening');
      const [stuck, other] = children(s.child.pid!);
      // A worker that cannot drain: stopped, it never answers SIGTERM.
      process.kill(stuck!, 'SIGSTOP');
      s.child.kill('SIGTERM');
      await eventually(async () => s.output().includes('draining every worker'), 10_000, 'draining');
      s.child.kill('SIGHUP');
      assert.deepEqual(await s.exited, { code: 0, signal: null }, s.output());
      assert.ok(s.output().includes('SIGHUP while stopping'), s.output());
      await eventually(async () => [stuck, other].every((pid) => !existsSync(`/proc/${pid}`)), 10_000, 'every worker gone');
    } finally {
      await s.done();
    }
  });
});
