// `npm run bench:gateway`: the cost of each Portcullis filter in the request path, measured through a real Envoy.
//
// Targets, alternated run by run on the same machine (one Envoy each, started fresh, same upstream):
//   bare        the generated gateway bootstrap with every Portcullis filter removed (cors, rbac, buffer, router)
//   ratelimit   + envoy.filters.http.ratelimit → Portcullis (Redis store)
//   ext_authz   + ext_authz only        } as src/gateway/filters.ts turns them on (today: both), with the shipped
//   ext_proc    + ext_proc only         } authz policies (the benchmarked path is an open, anonymous route)
//   all         every filter ENABLED_FILTERS turns on
//   all-noop    every filter, pointed at bench/gateway/noop-server.ts instead of Portcullis: the transport ceiling,
//               what Envoy's side calls cost before Portcullis does any work
// Per target: a fixed moderate rate (BENCH_RATE, default 500 req/s, open loop, Node client) → p50/p99; then peak
// throughput with wrk (BENCH_CONNECTIONS connections, one thread). Limits are raised so every answer is 200 and every
// request is a real counter update in Redis.
//
// During each peak run the CPU time of every process in the path (Envoy, Portcullis, Redis, upstreams, the rest of the
// machine) is read from /proc: where the CPU goes, per request.
//
// Knobs: BENCH_RUNS (3) BENCH_SECONDS (8) BENCH_RATE (500) BENCH_CONNECTIONS (32), BENCH_WARMUP_SECONDS (4, at peak
// through every filter, once per backend before the runs), BENCH_TARGETS (a comma-separated
// subset; bare is always run, the ratios need it). Output: Markdown on stdout.
// For looking inside Portcullis: BENCH_STORE (redis | memory), BENCH_PORTCULLIS_NODE_ARGS (Node flags for Portcullis
// only, e.g. "--trace-gc", after the shipped ones; BENCH_SHIPPED_NODE_FLAGS replaces those for Portcullis and the
// no-op, bench/support/proc.ts), BENCH_PORTCULLIS_LOG (keep its stdout, JSON log and any trace, at this path).
// Cores: BENCH_ENVOY_CONCURRENCY (Envoy worker threads, 1) and BENCH_WORKERS (Portcullis' server.workers, 1; with
// more than one, its CPU column sums the supervisor and its workers). envoy_grpc opens one connection per Envoy thread
// and the supervisor spreads connections, not calls, so workers beyond Envoy's threads stay idle (docs/workers.md).
// Transport: BENCH_UDS=1 serves Portcullis' gRPC on a Unix socket (server.grpc.address: unix:…) and points the
// portcullis cluster at it (address: pipe); the no-op backend of all-noop stays on TCP.

import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { buildGatewayBootstrap, type HostPort, type SocketPath } from '../../src/gateway/envoy-bootstrap.js';
import { ENABLED_FILTERS, type PortcullisFilters } from '../../src/gateway/filters.js';
import { allInstances } from '../../src/gateway/topology.js';
import { repoRoot, startEnvoy, type EnvoyInstance } from '../../test/support/envoy.js';
import { makeCertificates, portcullisTarget, testTarget } from '../../test/support/gateway.js';
import { shippedPortcullisConfig, splitHostPort, startPortcullis } from '../../test/support/portcullis.js';
import { sendCommand, startRedis } from '../../test/support/redis-server.js';
import { benchNodeFlags, processTicks, processTreeTicks, TICK_US } from '../support/proc.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 8);
const RATE = Number(process.env['BENCH_RATE'] ?? 500);
const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? 32);
const WARMUP_SECONDS = Number(process.env['BENCH_WARMUP_SECONDS'] ?? 4);
const STORE = process.env['BENCH_STORE'] ?? 'redis';
if (STORE !== 'redis' && STORE !== 'memory') throw new Error(`BENCH_STORE must be redis or memory, got '${STORE}'`);
const ENVOY_CONCURRENCY = Number(process.env['BENCH_ENVOY_CONCURRENCY'] ?? 1);
const WORKERS = Number(process.env['BENCH_WORKERS'] ?? 1);
for (const [name, value] of [['BENCH_ENVOY_CONCURRENCY', ENVOY_CONCURRENCY], ['BENCH_WORKERS', WORKERS]] as const) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a whole number ≥ 1, got '${process.env[name]}'`);
}
if (WORKERS > 1 && STORE === 'memory') throw new Error('BENCH_WORKERS > 1 needs BENCH_STORE=redis: workers share counts through Redis');
const UDS = (process.env['BENCH_UDS'] ?? '0') === '1';
const PORTCULLIS_NODE_ARGS = (process.env['BENCH_PORTCULLIS_NODE_ARGS'] ?? '').split(/\s+/).filter((a) => a !== '');
const PATH = '/api/users/1';

interface Target {
  readonly name: string;
  /** Filters kept in the chain, by short name. */
  readonly keep: readonly string[];
  /** Who answers the filters' calls. */
  readonly backend: 'portcullis' | 'noop';
}

function targets(enabled: PortcullisFilters): Target[] {
  const portcullis = ['ratelimit', ...(enabled.extAuthz ? ['ext_authz'] : []), ...(enabled.extProc ? ['ext_proc'] : [])];
  return [
    { name: 'bare', keep: [], backend: 'portcullis' },
    ...portcullis.map((name): Target => ({ name, keep: [name], backend: 'portcullis' })),
    { name: 'all', keep: portcullis, backend: 'portcullis' },
    { name: 'all-noop', keep: portcullis, backend: 'noop' },
  ];
}

/** The no-op backend in its own process, as Portcullis runs in its own. */
async function startNoop(): Promise<{ address: string; pid: number | undefined; stop(): void }> {
  const child = spawn(process.execPath, [...benchNodeFlags(), path.join(repoRoot(), 'dist/bench/gateway/noop-server.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const address = await new Promise<string>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const m = /listening (\S+)/.exec(chunk);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`noop-server exited with ${code}`)));
  });
  return { address, pid: child.pid, stop: () => child.kill('SIGTERM') };
}

type Json = Record<string, unknown>;

/** The generated bootstrap, with only the `keep` Portcullis filters left in every listener's chain. */
function bootstrapFor(base: Json, keep: readonly string[]): Json {
  const copy = structuredClone(base);
  const portcullisFilters = ['ext_authz', 'ratelimit', 'ext_proc'];
  const listeners = (copy['static_resources'] as { listeners: { filter_chains: { filters: { typed_config: { http_filters: { name: string }[] } }[] }[] }[] }).listeners;
  for (const listener of listeners) {
    const hcm = listener.filter_chains[0]!.filters[0]!.typed_config;
    hcm.http_filters = hcm.http_filters.filter((f) => {
      const short = f.name.replace('envoy.filters.http.', '');
      return !portcullisFilters.includes(short) || keep.includes(short);
    });
  }
  return copy;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

/** Open loop at `rate` req/s for `seconds`: latencies in ms of the answered requests, and non-200 answers. */
async function fixedRate(port: number, rate: number, seconds: number): Promise<{ p50: number; p99: number; errors: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const latencies: number[] = [];
  let errors = 0;
  const pending: Promise<void>[] = [];
  const total = rate * seconds;
  const started = performance.now();
  for (let i = 0; i < total; i += 1) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    pending.push(new Promise<void>((resolve) => {
      const sent = performance.now();
      const req = request({ host: '127.0.0.1', port, path: PATH, agent }, (response) => {
        response.resume();
        response.once('end', () => {
          // Latency from the scheduled time: a late send counts against the target (no coordinated omission).
          latencies.push(performance.now() - Math.min(sent, due));
          if (response.statusCode !== 200) errors += 1;
          resolve();
        });
      });
      req.once('error', () => {
        errors += 1;
        resolve();
      });
      req.end();
    }));
  }
  await Promise.all(pending);
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors };
}

const run = promisify(execFile);

/** Busy ticks of the whole machine (/proc/stat: everything but idle and iowait). */
function machineBusyTicks(): number {
  const [, ...values] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number);
  return values.reduce((a, b) => a + b, 0) - values[3]! - values[4]!;
}

async function peak(port: number, seconds: number): Promise<{ rps: number; p50: number; p99: number; non2xx: number }> {
  const { stdout } = await run('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', `http://127.0.0.1:${port}${PATH}`]);
  const ms = (text: string | undefined): number => {
    const m = /([\d.]+)(us|ms|s)/.exec(text ?? '');
    if (m === null) return NaN;
    return Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1);
  };
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]),
    p50: ms(/ 50%\s+(\S+)/.exec(stdout)?.[1]),
    p99: ms(/ 99%\s+(\S+)/.exec(stdout)?.[1]),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0),
  };
}

const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-bench-gateway-'));
const certDir = path.join(dir, 'certs');
makeCertificates(certDir);
// Same descriptor keys as envoy/ratelimit/gateway.yaml, limits out of reach: every request is a counter update.
const descriptors = path.join(dir, 'ratelimit');
(await import('node:fs')).mkdirSync(descriptors);
writeFileSync(path.join(descriptors, 'gateway.yaml'), ['domain: gateway', 'descriptors:',
  ...['scope', 'remote_address', 'api_key', 'user_id', 'route'].map((key) => `  - key: ${key}\n    rate_limit: { unit: second, requests_per_unit: 1000000000 }`)].join('\n'));
const redis = await startRedis();
// The upstreams run in their own process (ports moved by SAMPLE_PORT_OFFSET), never in the load generator's.
const SAMPLE_PORT_OFFSET = 20000;
const samples = spawn(process.execPath, [path.join(repoRoot(), 'dist/examples/services/main.js'), '--port-offset', String(SAMPLE_PORT_OFFSET)], { stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise<void>((resolve, reject) => {
  let seen = 0;
  samples.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    seen += chunk.split('listening').length - 1;
    if (seen >= allInstances().length) resolve();
  });
  samples.once('exit', (code) => reject(new Error(`sample services exited with ${code}`)));
});
const shipped = shippedPortcullisConfig(undefined);
const portcullis = await startPortcullis({
  server: { grpc: { address: UDS ? `unix:${path.join(dir, 'portcullis.sock')}` : '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' }, workers: WORKERS },
  ...(STORE === 'redis' ? { redis: { url: redis.url } } : {}),
  log: { level: 'info' },
  ratelimit: { descriptors, response_headers: { enabled: false }, failure_mode: 'error' },
  // The shipped policies: /api/users/1 is an open route, so every request is a full Check that ends as `anonymous`.
  authz: shipped['authz'],
  // The shipped extproc section: /api/users/1 has no extproc route, so its stream has no response phase.
  extproc: shipped['extproc'],
  // The log (a decision line per Check) goes to a file, as a deployment's stdout goes to its log collector: read
  // through a pipe, each line would wake this process, the fixed-rate client, and pile up in its heap.
}, { logFile: process.env['BENCH_PORTCULLIS_LOG'] ?? path.join(dir, 'portcullis.log'), runtimeFlags: benchNodeFlags(), nodeArgs: PORTCULLIS_NODE_ARGS });
const noop = await startNoop();
/** The gateway bootstrap with its Portcullis cluster at `backend`. */
const bootstrapAt = (backend: HostPort | SocketPath): Json => buildGatewayBootstrap(
  {
    ...testTarget({ samples: new Map(), portcullis: backend, certDir, accessLogPath: '/dev/null' }),
    endpoint: (_service, instance) => ({ host: '127.0.0.1', port: instance.port + SAMPLE_PORT_OFFSET }),
    callTimeouts: {},
  },
  ENABLED_FILTERS,
);
const bases = { portcullis: bootstrapAt(portcullisTarget(portcullis)), noop: bootstrapAt(splitHostPort(noop.address)) };

const only = process.env['BENCH_TARGETS']?.split(',').map((t) => t.trim());
const list = targets(ENABLED_FILTERS).filter((t) => only === undefined || t.name === 'bare' || only.includes(t.name));
/** CPU ticks per request of each process during a peak run, by process. */
type CpuPerRequest = Record<string, number>;
const results = new Map<string, { p50: number[]; p99: number[]; rps: number[]; peakP99: number[]; errors: number; cpu: CpuPerRequest[] }>();
for (const t of list) results.set(t.name, { p50: [], p99: [], rps: [], peakP99: [], errors: 0, cpu: [] });
const redisPid = Number(/process_id:(\d+)/.exec(await sendCommand(redis.port, ['INFO', 'server']))?.[1]);
/**
 * Ticks so far of every process in the request path, and of the whole machine ("other" = wrk, kernel, the rest). The
 * `portcullis` column is whichever backend the target calls.
 */
const cpuSample = (envoyPid: number | undefined, backend: Target['backend']): Record<string, number> => {
  const backendPid = backend === 'noop' ? noop.pid : portcullis.pid;
  const own = { envoy: processTicks(envoyPid), portcullis: processTreeTicks(backendPid), redis: processTicks(redisPid), upstreams: processTicks(samples.pid) };
  return { ...own, other: machineBusyTicks() - Object.values(own).reduce((a, b) => a + b, 0) };
};
try {
  // Both backends run for the whole bench: warm their JIT once, at peak through every filter, before any measured run.
  // Without it the first run of each invocation was the slowest (p99 at the fixed rate 22–57 ms, docs/benchmarks.md).
  for (const backend of ['portcullis', 'noop'] as const) {
    if (!list.some((t) => t.backend === backend && t.keep.length > 0)) continue;
    const envoy = await startEnvoy(bootstrapFor(bases[backend], targets(ENABLED_FILTERS).find((t) => t.name === 'all')!.keep), { concurrency: ENVOY_CONCURRENCY });
    try {
      await peak(envoy.listenerPort('http'), WARMUP_SECONDS);
    } finally {
      await envoy.stop();
    }
  }
  for (let r = 0; r < RUNS; r += 1) {
    for (const t of list) {
      const envoy: EnvoyInstance = await startEnvoy(bootstrapFor(bases[t.backend], t.keep), { concurrency: ENVOY_CONCURRENCY });
      try {
        const port = envoy.listenerPort('http');
        await fixedRate(port, 100, 1); // warm-up: connections to Portcullis and upstreams
        const slow = await fixedRate(port, RATE, SECONDS);
        const before = cpuSample(envoy.pid, t.backend);
        const fast = await peak(port, SECONDS);
        const after = cpuSample(envoy.pid, t.backend);
        const entry = results.get(t.name)!;
        entry.cpu.push(Object.fromEntries(Object.keys(after).map((k) => [k, (after[k]! - before[k]!) / (fast.rps * SECONDS)])));
        entry.p50.push(slow.p50);
        entry.p99.push(slow.p99);
        entry.rps.push(fast.rps);
        entry.peakP99.push(fast.p99);
        entry.errors += slow.errors + fast.non2xx;
        process.stderr.write(`run ${r + 1} ${t.name}: ${RATE}/s p50 ${slow.p50.toFixed(2)} ms p99 ${slow.p99.toFixed(2)} ms; peak ${fast.rps.toFixed(0)} req/s p99 ${fast.p99.toFixed(2)} ms\n`);
      } finally {
        await envoy.stop();
      }
    }
  }
} finally {
  await portcullis.stop();
  noop.stop();
  samples.kill('SIGTERM');
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
}

const bare = results.get('bare')!;
const lines = [
  `| target | p50 at ${RATE}/s (ms) | added p50 | p99 at ${RATE}/s (ms) | added p99 | peak req/s | × bare | peak p99 (ms) | non-200 |`,
  '|---|---|---|---|---|---|---|---|---|',
];
for (const t of list) {
  const e = results.get(t.name)!;
  const [p50, p99, rps] = [median(e.p50), median(e.p99), median(e.rps)];
  lines.push(`| ${t.name} | ${p50.toFixed(2)} | ${t.name === 'bare' ? '—' : `+${(p50 - median(bare.p50)).toFixed(2)}`} | ${p99.toFixed(2)} | ${t.name === 'bare' ? '—' : `+${(p99 - median(bare.p99)).toFixed(2)}`} | ${rps.toFixed(0)} | ${(rps / median(bare.rps)).toFixed(2)} | ${median(e.peakP99).toFixed(2)} | ${e.errors} |`);
}
// Where the CPU goes at peak: each process's CPU time per request (µs; clock ticks are 10 ms), medians over runs.
const processes = ['envoy', 'portcullis', 'redis', 'upstreams', 'other'];
const cpuLines = [
  `| target | ${processes.join(' | ')} | total µs/request |`,
  `|---|${processes.map(() => '---').join('|')}|---|`,
];
for (const t of list) {
  const runs = results.get(t.name)!.cpu;
  const us = processes.map((p) => median(runs.map((c) => c[p]!)) * TICK_US);
  const total = us.reduce((a, b) => a + b, 0);
  cpuLines.push(`| ${t.name} | ${us.map((u) => `${u.toFixed(0)} (${((100 * u) / total).toFixed(0)} %)`).join(' | ')} | ${total.toFixed(0)} |`);
}
const all = results.get('all');
const ceiling = results.get('all-noop');
const againstCeiling = all === undefined || ceiling === undefined ? ''
  : `all / all-noop (Portcullis against the no-op backend, same filters): peak ${(median(all.rps) / median(ceiling.rps)).toFixed(2)}×, `
    + `p50 at ${RATE}/s ${(median(all.p50) - median(ceiling.p50)).toFixed(2)} ms more, p99 ${(median(all.p99) - median(ceiling.p99)).toFixed(2)} ms more.`;
// The runtime moves these numbers (Node 22 against 20: docs/benchmarks.md, 2026-12-06), so the report names it.
process.stdout.write(`Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version} (the client, the sample services and Portcullis).\n`
  + `Medians of ${RUNS} alternated runs, ${SECONDS} s each; fixed rate: Node open-loop client; peak: wrk -t1 -c${CONNECTIONS}.\n`
  + `Portcullis: ${STORE} store, ${WORKERS} worker(s), gRPC over ${UDS ? 'a Unix socket (Envoy cluster address: pipe)' : 'TCP (loopback)'}; node flags: ${[...benchNodeFlags(), ...PORTCULLIS_NODE_ARGS].join(' ') || '(none)'} (the no-op: ${benchNodeFlags().join(' ') || '(none)'}); Envoy: ${ENVOY_CONCURRENCY} worker thread(s).\n\n${lines.join('\n')}\n\n${againstCeiling}\n\n`
  + `CPU per request at peak, by process (/proc; "other" is wrk, the kernel and the rest of the machine):\n\n${cpuLines.join('\n')}\n`);
