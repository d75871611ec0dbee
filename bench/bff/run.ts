// Composer benchmark (what `npm run bench:bff` runs; build first, run.sh does).
//
// Three sample services (upstreams.ts) answer after fixed delays. One endpoint fans out to all three in parallel.
// Targets, alternated run by run on the same machine with the same wrk flags:
//   slowest      wrk straight at the slowest service: the floor for the composed answer's latency
//   handwritten  the same fan-out written by hand with Promise.all on undici (handwritten.ts)
//   portcullis   node bin/portcullis.js serve with the endpoint declared under bff:
// Modes: latency (1 connection: the added latency over the slowest call) and throughput (BENCH_CONCURRENCY
// connections), for each scenario of delays: the realistic one (BENCH_DELAYS, default 5,10,20 ms) and one where
// the services answer at once (0,0,0: what the fan-out itself costs).
//
// Knobs: BENCH_DURATION (5s) BENCH_RUNS (3) BENCH_CONCURRENCY (32) BENCH_DELAYS (5,10,20)
// Output: Markdown on stdout and in bench/bff/results/<timestamp>.md. Exits non-zero if a target fails its sanity
// check, wrk reports a non-2xx answer or a socket error, or the composer degraded any answer.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { benchNodeFlags } from '../support/proc.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const DURATION = process.env['BENCH_DURATION'] ?? '5s';
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 32);
const SCENARIOS = [process.env['BENCH_DELAYS'] ?? '5,10,20', '0,0,0'];

const children: ChildProcess[] = [];
const cleanups: (() => void)[] = [];
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  for (const f of cleanups) f();
});

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

/** Spawns a node script and resolves with the first stdout line matching `ready`. */
function start(args: string[], ready: RegExp, what: string): Promise<RegExpExecArray> {
  const child = spawn(process.execPath, [...benchNodeFlags(), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start:\n${output}`)), 20_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      const match = ready.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.once('exit', (code) => reject(new Error(`${what} exited with ${code}:\n${output}`)));
  });
}

interface WrkResult {
  rps: number;
  p50: number;
  p90: number;
  p99: number;
}

function toMs(text: string): number {
  const match = /^([\d.]+)(us|ms|s)$/.exec(text);
  if (!match) throw new Error(`cannot read wrk latency '${text}'`);
  const n = Number(match[1]);
  return match[2] === 'us' ? n / 1000 : match[2] === 's' ? n * 1000 : n;
}

async function wrk(url: string, connections: number): Promise<WrkResult> {
  const args = ['-t1', `-c${connections}`, `-d${DURATION}`, '--timeout', '10s', '--latency', '-H', 'x-user-id: bench', '-H', 'x-request-id: bench-1', url];
  const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  if (code !== 0) throw new Error(`wrk ${args.join(' ')} failed:\n${out}`);
  if (/Non-2xx or 3xx responses/.test(out) || /Socket errors/.test(out)) throw new Error(`wrk saw errors against ${url}:\n${out}`);
  const pct = (p: string): number => toMs(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out)?.[1] ?? 'NaNms');
  return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]), p50: pct('50'), p90: pct('90'), p99: pct('99') };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
};
const f = (n: number, digits = 2): string => n.toFixed(digits);

async function sanity(url: string, what: string): Promise<void> {
  const response = await fetch(url, { headers: { 'x-user-id': 'bench' } });
  const body = (await response.json()) as Record<string, unknown>;
  const keys = Object.keys(body).sort().join(',');
  if (response.status !== 200 || keys !== 'recentOrders,recommendations,user') throw new Error(`${what}: unexpected answer ${response.status} ${JSON.stringify(body)}`);
}

async function metricValue(adminUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  // Calls aborted because wrk closed its connections at the end of a run are not failures of the composer.
  return text.split('\n').filter((l) => l.startsWith(name) && !l.includes('reason="aborted"')).reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

async function scenario(delays: string): Promise<string[]> {
  const [, ports] = await start(['dist/bench/bff/upstreams.js', delays], /upstreams listening (\S+)\n/, 'upstreams') as unknown as [string, string];
  const [usersPort, ordersPort, recsPort] = ports.split(',');
  const [, handPort] = await start(['dist/bench/bff/handwritten.js', ports], /handwritten listening (\d+)\n/, 'handwritten') as unknown as [string, string];
  const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-bench-bff-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'portcullis.yaml');
  writeFileSync(file, stringify({
    server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' }, http: { address: '127.0.0.1:0' } },
    log: { level: 'info' }, // answers are logged at debug; info is startup only
    ratelimit: { descriptors: path.join(ROOT, 'envoy', 'ratelimit'), reload: { enabled: false } },
    bff: {
      services: { users: `http://127.0.0.1:${usersPort}`, orders: `http://127.0.0.1:${ordersPort}`, recommendations: `http://127.0.0.1:${recsPort}` },
      endpoints: [{
        path: '/bff/bench/{userId}',
        timeout_ms: 10000, // no degradation from a loaded machine: the numbers compare full answers
        calls: {
          user: { service: 'users', path: '/users/{userId}' },
          orders: { service: 'orders', path: '/orders', query: { user: '{userId}', limit: '5' }, on_error: [] },
          recs: { service: 'recommendations', path: '/recommendations/{userId}', on_error: [] },
        },
        respond: { user: '{user}', recentOrders: '{orders}', recommendations: '{recs}' },
      }],
    },
  }));
  const [, listening] = await start(['bin/portcullis.js', 'serve', '--config', file], /^(\{.*"msg":"portcullis listening".*\})$/m, 'portcullis') as unknown as [string, string];
  const line = JSON.parse(listening) as Record<string, string>;
  const portcullisUrl = `http://${line['httpAddress']}/bff/bench/bench`;
  const adminUrl = `http://${line['adminAddress']}`;
  const handUrl = `http://127.0.0.1:${handPort}/bff/bench/bench`;
  const slowest = delays.split(',').map(Number).reduce((best, d, i, all) => (d > (all[best] ?? -1) ? i : best), 0);
  const slowestUrl = `http://127.0.0.1:${ports.split(',')[slowest]}/recommendations/bench`;
  await sanity(handUrl, 'handwritten');
  await sanity(portcullisUrl, 'portcullis');

  const latency: Record<string, WrkResult[]> = { slowest: [], handwritten: [], portcullis: [] };
  const throughput: Record<string, WrkResult[]> = { handwritten: [], portcullis: [] };
  const targets: Record<string, string> = { slowest: slowestUrl, handwritten: handUrl, portcullis: portcullisUrl };
  for (const t of ['handwritten', 'portcullis']) await wrk(targets[t] ?? '', CONCURRENCY); // warm-up (JIT, pools)
  for (let run = 1; run <= RUNS; run++) {
    for (const t of Object.keys(latency)) {
      log(`delays ${delays}: run ${run}/${RUNS} latency ${t}`);
      latency[t]?.push(await wrk(targets[t] ?? '', 1));
    }
    for (const t of Object.keys(throughput)) {
      log(`delays ${delays}: run ${run}/${RUNS} throughput ${t}`);
      throughput[t]?.push(await wrk(targets[t] ?? '', CONCURRENCY));
    }
  }
  const degraded = await metricValue(adminUrl, 'portcullis_bff_degraded_answers_total');
  const failures = await metricValue(adminUrl, 'portcullis_bff_call_failures_total');
  for (const c of children.splice(0)) c.kill('SIGTERM');
  if (degraded > 0 || failures > 0) throw new Error(`the composer degraded ${degraded} answers (${failures} call failures): the numbers would not be comparable`);

  const m = (rs: WrkResult[] | undefined, k: keyof WrkResult): number => median((rs ?? []).map((r) => r[k]));
  const slow50 = m(latency['slowest'], 'p50');
  const port50 = m(latency['portcullis'], 'p50');
  const hand50 = m(latency['handwritten'], 'p50');
  const goal = 1.1 * slow50 + 1;
  const sum = delays.split(',').map(Number).reduce((a, b) => a + b, 0);
  const lines = [
    `### Services answering after ${delays} ms`,
    '',
    `Latency, 1 connection (\`wrk -t1 -c1 -d${DURATION} --latency\`), median of ${RUNS} runs:`,
    '',
    '| target | p50 ms | p90 ms | p99 ms | req/s |',
    '|---|---:|---:|---:|---:|',
    ...Object.entries(latency).map(([t, rs]) => `| ${t} | ${f(m(rs, 'p50'))} | ${f(m(rs, 'p90'))} | ${f(m(rs, 'p99'))} | ${f(m(rs, 'rps'), 0)} |`),
    '',
    `Composed p50 ${f(port50)} ms over the slowest call's ${f(slow50)} ms: +${f(port50 - slow50)} ms (handwritten +${f(hand50 - slow50)} ms); ` +
      `goal 1.1 × slowest + 1 ms = ${f(goal)} ms: **${port50 <= goal ? 'met' : 'missed'}**` + (sum > 0 ? `; the sum of the calls would be ≥ ${sum} ms.` : '.'),
    '',
    `Throughput, ${CONCURRENCY} connections (\`wrk -t1 -c${CONCURRENCY} -d${DURATION} --latency\`), median of ${RUNS} runs:`,
    '',
    '| target | req/s | p50 ms | p99 ms |',
    '|---|---:|---:|---:|',
    ...Object.entries(throughput).map(([t, rs]) => `| ${t} | ${f(m(rs, 'rps'), 0)} | ${f(m(rs, 'p50'))} | ${f(m(rs, 'p99'))} |`),
    '',
    `Portcullis / handwritten throughput: **${f(m(throughput['portcullis'], 'rps') / m(throughput['handwritten'], 'rps'))}**`,
    '',
  ];
  return lines;
}

const out: string[] = [
  `## Composer run ${new Date().toISOString()}`,
  '',
  `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, shared with other jobs (load average at start ${(await import('node:os')).loadavg().map((n) => n.toFixed(1)).join(' ')}). ` +
    'Everything on 127.0.0.1, no pinning; wrk, the services and each target in their own processes; targets alternated run by run.',
  '',
];
for (const delays of SCENARIOS) out.push(...(await scenario(delays)));
const text = out.join('\n');
process.stdout.write(`${text}\n`);
const results = path.join(ROOT, 'bench', 'bff', 'results');
mkdirSync(results, { recursive: true });
writeFileSync(path.join(results, `${new Date().toISOString().replace(/[:.]/g, '-')}.md`), `${text}\n`);
process.exit(0);
