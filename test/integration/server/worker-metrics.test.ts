// What the supervisor's /metrics says about its processes (server.workers: 2, real workers on a real redis-server),
// beside a single process with the same config: counters summed, and each of Node's gauges by the rule
// collectNodeMetrics gives it (src/observability/metrics.ts): the worst process for what a per-process limit bounds
// and for the event loop lag, the sum for resident memory. The values are checked against what the kernel says about
// each process (/proc), or against the single process where only V8 knows them.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../../support/app.js';
import { shippedPortcullisConfig, startPortcullis, type PortcullisInstance } from '../../support/portcullis.js';
import { startRedis, type RedisServer } from '../../support/redis-server.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** One scrape: every sample line, `name{labels}` to its value. */
async function scrape(instance: PortcullisInstance): Promise<Map<string, number>> {
  const text = await (await fetch(`${instance.adminUrl}/metrics`)).text();
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

function sample(samples: Map<string, number>, series: string): number {
  const value = samples.get(series);
  assert.ok(value !== undefined, `${series} missing`);
  return value;
}

/** Open descriptors as prom-client counts them in the process (its own readdir's descriptor left out). */
const openFds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;
const residentBytes = (pid: number): number => Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
/** The supervisor's (and so its workers') descriptor limit: an Envoy's connections can fill one worker up to it. */
const FD_LIMIT = 256;
const fdLimit = (pid: number): number => Number(/^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))![1]);

describe('server.workers: 2, /metrics across the processes (each gauge by its rule), beside a single process', () => {
  let redis: RedisServer;
  let single: PortcullisInstance;
  let supervisor: PortcullisInstance;
  /** The supervisor's pid, then its workers'. */
  let pids: number[];
  let workerPids: number[];

  before(async () => {
    redis = await startRedis();
    const shipped = shippedPortcullisConfig(redis.url);
    single = await startPortcullis(shipped);
    // Its workers inherit the limit.
    supervisor = await startPortcullis({ ...shipped, server: { ...(shipped['server'] as object), workers: 2 } }, { readyTimeoutMs: 60_000, fdLimit: FD_LIMIT });
    await eventually(async () => (await fetch(`${supervisor.adminUrl}/readyz`)).status === 200, 20_000, 'both workers ready');
    const config = (await (await fetch(`${supervisor.adminUrl}/config`)).json()) as { workers: { pid: number }[] };
    workerPids = config.workers.map((w) => w.pid);
    assert.equal(workerPids.length, 2);
    pids = [supervisor.pid!, ...workerPids];
    assert.deepEqual(pids.map(fdLimit), [FD_LIMIT, FD_LIMIT, FD_LIMIT]);
  });

  after(async () => {
    await supervisor?.stop();
    await single?.stop();
    await redis?.stop();
  });

  it('file descriptors: the fullest process against the limit, so one worker near its limit shows', async () => {
    const [first, second] = workerPids as [number, number];
    assert.equal(sample(await scrape(supervisor), 'portcullis_process_max_fds'), FD_LIMIT, 'the limit, not the sum of three');
    assert.equal(sample(await scrape(single), 'portcullis_process_max_fds'), fdLimit(single.pid!));
    // Connections to the first worker only: the supervisor hands each to a worker that took its last one, and the
    // stopped second worker never says it did (it gets one, which waits).
    const base = openFds(first);
    process.kill(second, 'SIGSTOP');
    const sockets: Socket[] = [];
    try {
      for (let i = 0; i < 190; i++) {
        const socket = connect(supervisor.grpc.port, supervisor.grpc.host);
        socket.on('error', () => {});
        sockets.push(socket);
      }
      await eventually(() => openFds(first) >= base + 185, 10_000, 'the first worker to hold the connections');
    } finally {
      process.kill(second, 'SIGCONT');
    }
    try {
      const before = pids.map(openFds);
      const samples = await scrape(supervisor);
      const after = pids.map(openFds);
      const open = sample(samples, 'portcullis_process_open_fds');
      const max = sample(samples, 'portcullis_process_max_fds');
      const fullest = Math.max(before[1]!, after[1]!);
      assert.ok(open <= fullest && open >= Math.min(before[1]!, after[1]!) - 2, `open ${open}: the first worker's (${before} then ${after}, supervisor first), not their sum`);
      // PortcullisFileDescriptorsNearLimit's ratio: over 0.8 with one worker near its limit. Summed, open and limit
      // read as the average process, under half.
      assert.ok(open / max > 0.8, `${open} / ${max}`);
      assert.ok(after.reduce((a, b) => a + b, 0) / (3 * FD_LIMIT) < 0.5, 'the sums would not have told');
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });

  it('memory: the V8 heap of the largest process (about one process\'s), resident memory the sum of all three', async () => {
    const singleSamples = await scrape(single);
    const rssBefore = pids.map(residentBytes).reduce((a, b) => a + b, 0);
    const samples = await scrape(supervisor);
    const rssAfter = pids.map(residentBytes).reduce((a, b) => a + b, 0);
    // Each worker runs what the single process runs: summed, the heap would read about twice the single one.
    for (const name of ['portcullis_nodejs_heap_size_used_bytes', 'portcullis_nodejs_heap_size_total_bytes']) {
      const ratio = sample(samples, name) / sample(singleSamples, name);
      assert.ok(ratio > 0.6 && ratio < 1.5, `${name}: ${ratio} times the single process's`);
    }
    const old = sample(samples, 'portcullis_nodejs_heap_space_size_used_bytes{space="old"}') / sample(singleSamples, 'portcullis_nodejs_heap_space_size_used_bytes{space="old"}');
    assert.ok(old > 0.6 && old < 1.5, `old space: ${old} times the single process's`);
    // What the container's memory limit counts: every process, the supervisor's too.
    const rss = sample(samples, 'portcullis_process_resident_memory_bytes');
    assert.ok(rss > 0.85 * Math.min(rssBefore, rssAfter) && rss < 1.15 * Math.max(rssBefore, rssAfter), `resident ${rss}, the processes' ${rssBefore} then ${rssAfter}`);
  });

  it('event loop lag: the slowest process\'s, so one stalled worker shows', async () => {
    await scrape(supervisor); // each process's lag histogram starts over at every scrape
    // Node's histogram records the time between two of its 10 ms ticks, and forgets the last tick when it starts over:
    // a stall before the first tick after the scrape would go unrecorded.
    await sleep(50);
    const [first] = workerPids;
    process.kill(first!, 'SIGSTOP');
    await sleep(500);
    process.kill(first!, 'SIGCONT');
    await sleep(150); // its loop wakes, and the late timer records the stall
    const samples = await scrape(supervisor);
    // The stalled worker's p99 is its stall (one sample of about 0.5 s among a few dozen); the others' about 0.01 s.
    // Averaged over three processes, as prom-client does by default, that read under 0.2 s.
    for (const name of ['portcullis_nodejs_eventloop_lag_p99_seconds', 'portcullis_nodejs_eventloop_lag_max_seconds']) {
      const lag = sample(samples, name);
      assert.ok(lag >= 0.4 && lag < 5, `${name}: ${lag}`);
    }
    assert.ok(sample(samples, 'portcullis_nodejs_eventloop_lag_min_seconds') < 0.1, 'the quickest sample is another process\'s');
  });

  it('Portcullis\' own series: config loads summed, the running config\'s load time the oldest worker\'s', async () => {
    const samples = await scrape(supervisor);
    const loads = supervisor.logs().filter((l) => l['msg'] === 'config loaded');
    assert.deepEqual(loads.map((l) => l['worker']).sort(), [1, 2]);
    assert.equal(sample(samples, 'portcullis_config_loads_total{result="success"}'), 2, 'a counter: both workers\' loads');
    assert.equal(sample(await scrape(single), 'portcullis_config_loads_total{result="success"}'), 1);
    const oldest = Math.min(...loads.map((l) => Number(l['time']))) / 1000;
    const loaded = sample(samples, 'portcullis_config_last_success_timestamp_seconds');
    assert.ok(Math.abs(loaded - oldest) < 0.05, `loaded at ${loaded}, the oldest worker's load logged at ${oldest}`);
    assert.equal(sample(samples, 'portcullis_config_last_failure_timestamp_seconds'), 0);
    // The supervisor's own: one series each, not merged with anything.
    assert.equal(sample(samples, 'portcullis_workers_running'), 2);
    assert.equal(sample(samples, 'portcullis_workers_configured'), 2);
  });
});
