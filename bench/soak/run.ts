// Soak (what `npm run soak` runs; build first, run.sh does): Portcullis with every service on, under steady
// high-cardinality traffic (load.ts) for SOAK_MINUTES while its config and descriptor files are rewritten every few
// seconds (every fifth write broken on purpose) and, in the workers variant, Redis is killed and restarted. Each
// Portcullis process is sampled (probe.ts, sample.ts); the report says per phase what every process held.
//
// Knobs: SOAK_MINUTES (10) SOAK_RATE (300 operations/s) SOAK_VARIANT (single: one process, memory store | workers:
// a supervisor and 2 workers on Redis) SOAK_BROKEN_RELOADS (1; 0: every write is valid) SOAK_PHASES (4, after the
// warm-up) SOAK_WARMUP_MINUTES (a fifth of SOAK_MINUTES, at least 1) SOAK_SAMPLE_SECONDS (5) SOAK_RELOAD_SECONDS (3)
// SOAK_REDIS_BOUNCE_SECONDS (30: Redis is killed that often and restarted 5 s later) SOAK_KEEP (1: keep the work dir).
//
// Exit code 0 when the soak passed, 1 when it failed: a quantity kept growing after the warm-up beyond its tolerance
// (sample.ts), Portcullis or one of its workers exited, a check got a wrong answer or more than 1 % got none, the
// reloads were not applied or a broken one was not refused. Report: stdout and bench/soak/results/<time>.md.

import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startIdentityProvider } from '../../test/support/identity-provider.js';
import { startPortcullis, type PortcullisInstance } from '../../test/support/portcullis.js';
import { startRedis, type RedisServer } from '../../test/support/redis-server.js';
import { processTree } from '../support/proc.js';
import { startLoad } from './load.js';
import { judgeAll, phaseSeries, readProbeSamples, renderTables, seriesCount, type Phase } from './sample.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const num = (name: string, fallback: number): number => {
  const raw = process.env[name];
  const n = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${raw}: not a number`);
  return n;
};
const MINUTES = num('SOAK_MINUTES', 10);
const RATE = num('SOAK_RATE', 300);
const VARIANT = process.env['SOAK_VARIANT'] || 'single';
const BROKEN_RELOADS = process.env['SOAK_BROKEN_RELOADS'] !== '0';
const PHASES = Math.max(3, Math.round(num('SOAK_PHASES', 4)));
const WARMUP_MINUTES = num('SOAK_WARMUP_MINUTES', Math.max(1, MINUTES / 5));
const SAMPLE_MS = num('SOAK_SAMPLE_SECONDS', 5) * 1000;
const RELOAD_MS = num('SOAK_RELOAD_SECONDS', 3) * 1000;
const BOUNCE_MS = num('SOAK_REDIS_BOUNCE_SECONDS', 30) * 1000;
const REDIS_DOWN_MS = 5000;
/** Redis must have been up this long before a rate limit check counts (ioredis reconnects with a backoff). */
const REDIS_TRUSTED_AFTER_MS = 5000;
if (VARIANT !== 'single' && VARIANT !== 'workers') throw new Error(`SOAK_VARIANT=${VARIANT}: single or workers`);
if (MINUTES <= WARMUP_MINUTES) throw new Error(`SOAK_MINUTES (${MINUTES}) must exceed the warm-up (${WARMUP_MINUTES})`);
const DOMAIN = 'soak';
/** Read now: the tree may change while the soak runs. */
const commit = git(['rev-parse', '--short', 'HEAD']) + (git(['status', '--porcelain', '--untracked-files=no']) === '' ? '' : ' (with local changes)');

const log = (message: string): void => void process.stderr.write(`${new Date().toISOString().slice(11, 19)} soak: ${message}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// Everything started here dies with this process, also on Ctrl-C (test/support/redis-server.ts kills its servers).
const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-soak-'));
let portcullis: PortcullisInstance | undefined;
const servers: Server[] = [];
const cleanup = (): void => {
  for (const pid of processTree(portcullis?.pid).reverse()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const s of servers) s.closeAllConnections();
  if (process.env['SOAK_KEEP'] !== '1') rmSync(dir, { recursive: true, force: true });
};
process.once('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

// Bounded caches are sized from the rate so that the traffic fills each within about half the warm-up: after it,
// everything that may grow has reached its bound, and what still grows is a finding.
const fill = (share: number): number => Math.max(200, Math.round(RATE * share * WARMUP_MINUTES * 30));

const idp = await startIdentityProvider();
idp.setIntrospection((token) => (token.startsWith('ok-')
  ? { active: true, sub: `u-${token.slice(3, 9)}`, scope: 'orders:read', exp: Math.floor(Date.now() / 1000) + 600 }
  : { active: false }));
const upstream = createServer((req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(req.url?.startsWith('/orders') ? `[{"id":${Math.floor(Math.random() * 1e6)}}]` : `{"id":"${req.url?.slice(7, 40) ?? ''}"}`);
});
servers.push(upstream);
await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;

let redis: RedisServer | undefined;
/** Bumped on every kill and restart; see storeEpoch in load.ts. */
let redisEpoch = 0;
let redisUpSince = Date.now();
let redisBounces = 0;
let redisUp = true;
if (VARIANT === 'workers') redis = await startRedis();

const apiKey = `pk_soak-${randomBytes(18).toString('hex')}`;
writeFileSync(path.join(dir, 'keys.yaml'), `- { id: soak, sha256: ${createHash('sha256').update(apiKey).digest('hex')}, owner: soak, tier: gold, scopes: [orders:read] }\n`);
writeFileSync(path.join(dir, 'introspection-secret'), 's3cret\n');
writeFileSync(path.join(dir, 'user.json'), JSON.stringify({ type: 'object', properties: { name: { type: 'string' } }, required: ['name'] }));
mkdirSync(path.join(dir, 'ratelimit'));
const probeDir = path.join(dir, 'probe');
mkdirSync(probeDir);

/** Generation of the files: each write changes something a reload must apply (a limit, a cache size, a flag). */
let generation = 0;
const flip = (): number => Math.floor(generation / 2) % 2;
const descriptors = (): string => `domain: ${DOMAIN}
descriptors:
  - key: user
    rate_limit: { unit: minute, requests_per_unit: ${50 + (generation % 7)} }
  - key: path
    value: /api/*
    detailed_metric: true
    rate_limit: { unit: second, requests_per_unit: 5 }
  - key: any
    rate_limit: { unit: hour, requests_per_unit: 3 }
  - key: tb
    rate_limit: { unit: second, requests_per_unit: 2, algorithm: token_bucket, burst: 4 }
`;
const config = (): string => `# generation ${generation}
server:
  grpc: { address: "127.0.0.1:0" }
  admin: { address: "127.0.0.1:0" }
  http: { address: "127.0.0.1:0" }
  workers: ${VARIANT === 'workers' ? 2 : 1}
${redis ? `redis: { url: "${redis.url}", connect_timeout_ms: 300 }` : `memory: { max_keys: ${fill(0.25 * 0.6)} }`}
log: { level: info }
ratelimit:
  descriptors: ./ratelimit
  local_cache: { enabled: true, max_entries: ${fill(0.25 * 0.2)} }
  near_limit_ratio: ${0.8 + flip() * 0.05}
  timeout_ms: 200
  reload: { enabled: true, poll_interval_ms: 500, settle_ms: 50 }
  metrics: { max_keys: 500 }
authz:
  default_policy: deny
  log_decisions: true
  timeout_ms: 500
  api_keys: { header: x-api-key, query: api_key, file: ./keys.yaml }
  jwt:
    cache_max_entries: ${fill(0.5 * 0.3)}
    providers:
      - name: main
        issuer: ${idp.issuer}
        audiences: [orders-api]
        algorithms: [RS256]
        jwks: { uri: ${idp.jwksUrl} }
        refresh_seconds: ${5 + flip()}
        refetch_cooldown_seconds: 1
  introspection: { url: ${idp.introspectionUrl}, client_id: gw, client_secret_file: ./introspection-secret, cache_seconds: 60, cache_max_entries: ${fill(0.5 * 0.15) + flip()} }
  revocation: { enabled: true, refresh_ms: 500, max_staleness_ms: 3000, on_unavailable: allow }
  policies:
    - { name: public, match: { path_prefix: /public }, authenticate: [anonymous] }
    - { name: orders, match: { path_prefix: /api }, authenticate: [jwt, api_key] }
    - { name: opaque, match: { path_prefix: /opaque }, authenticate: [introspection] }
extproc:
  cache: { max_memory_bytes: ${fill(0.18 * 0.3) * 1024}, timeout_ms: 50 }
  routes:
    - name: users
      match: { path_prefix: /api/users }
      headers: { request: { set: { x-gw: "{route}" } }, response: { remove: [server] } }
      validate: { content_types: [application/json], json_schema: ./user.json, max_body_bytes: 4096 }
      cache: { ttl_seconds: { "200": 300, "404": 60 }, public: ${flip() === 0} }
    - name: all
      cache: { ttl_seconds: { "200": 30 } }
bff:
  services:
    users: ${upstreamUrl}
    orders: { url: "${upstreamUrl}", max_concurrency: ${8 + flip()} }
  endpoints:
    - path: /bff/dash/{userId}
      timeout_ms: 500
      params: { userId: { pattern: "[A-Za-z0-9_-]{1,64}" } }
      calls:
        user: { service: users, path: "/users/{userId}", timeout_ms: 300 }
        orders: { service: orders, path: "/orders", query: { user: "{userId}" }, on_error: [] }
      respond: { user: "{user}", orders: "{orders}" }
`;
const configFile = path.join(dir, 'portcullis.yaml');
const descriptorFile = path.join(dir, 'ratelimit', `${DOMAIN}.yaml`);
/** As an editor or a ConfigMap swap does: the watcher never sees half a file. */
const writeAtomic = (file: string, text: string): void => {
  // A dot-file: the descriptor directory's loader skips those, as envoyproxy/ratelimit's does not.
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
  writeFileSync(temp, text);
  renameSync(temp, file);
};
writeAtomic(configFile, config());
writeAtomic(descriptorFile, descriptors());

log(`${VARIANT}, ${MINUTES} min (${WARMUP_MINUTES} warm-up + ${PHASES} phases), ${RATE} operations/s, work dir ${dir}`);
portcullis = await startPortcullis({}, {
  configFile, cwd: dir, logFile: path.join(dir, 'portcullis.log'), readyTimeoutMs: 30_000,
  nodeArgs: ['--expose-gc', '--import', pathToFileURL(path.join(ROOT, 'dist', 'bench', 'soak', 'probe.js')).href],
  env: { SOAK_PROBE_DIR: probeDir, SOAK_SAMPLE_MS: String(SAMPLE_MS) },
});
const pc = portcullis;
if (pc.httpUrl === undefined) throw new Error('portcullis logged no composer address');
const httpUrl = pc.httpUrl;
for (let i = 0; ; i++) {
  if ((await fetch(`${pc.adminUrl}/readyz`).catch(() => undefined))?.ok) break;
  if (i === 150) throw new Error(`portcullis not ready after 30 s:\n${pc.output().slice(-3000)}`);
  await sleep(200);
}
const startMetrics = parseMetrics(await (await fetch(`${pc.adminUrl}/metrics`)).text());
log(`portcullis ready (pid ${pc.pid}, grpc ${pc.grpcAddress}, composer ${httpUrl})`);

const start = Date.now();
const warmupMs = WARMUP_MINUTES * 60_000;
const phaseMs = (MINUTES * 60_000 - warmupMs) / PHASES;
const phases: Phase[] = [{ name: 'warm-up', start, end: start + warmupMs, warmup: true }];
for (let i = 0; i < PHASES; i++) phases.push({ name: `phase ${i + 1}`, start: start + warmupMs + i * phaseMs, end: start + warmupMs + (i + 1) * phaseMs, warmup: false });
const end = start + MINUTES * 60_000;

const load = startLoad({
  grpcAddress: pc.grpcAddress, httpUrl, domain: DOMAIN, validApiKey: apiKey,
  token: (claims) => idp.token(claims),
  storeEpoch: () => (redis === undefined ? 0 : redisUp && Date.now() - redisUpSince >= REDIS_TRUSTED_AFTER_MS ? redisEpoch : undefined),
}, RATE);

let written = 0;
let broken = 0;
const reloads = setInterval(() => {
  generation++;
  const spoil = BROKEN_RELOADS && generation % 5 === 0;
  written++;
  if (spoil) broken++;
  // A broken config has an unknown key; a broken descriptor file an unknown unit: both are refused whole.
  if (generation % 2) writeAtomic(configFile, config() + (spoil ? `bogus_${generation % 3}: 1\n` : ''));
  else writeAtomic(descriptorFile, descriptors() + (spoil ? `  - key: user\n    rate_limit: { unit: fortnight_${generation % 3}, requests_per_unit: 1 }\n` : ''));
}, RELOAD_MS);

const bounce = redis === undefined ? undefined : setInterval(() => {
  const r = redis as RedisServer;
  redisUp = false;
  redisEpoch++;
  redisBounces++;
  void r.kill().then(() => sleep(REDIS_DOWN_MS)).then(() => r.restart()).then(() => {
    redisEpoch++;
    redisUpSince = Date.now();
    redisUp = true;
  }, (error: unknown) => log(`redis restart failed: ${String(error)}`));
}, BOUNCE_MS);

const series: { at: number; count: number }[] = [];
let exited: string | undefined;
let lastPhase = -1;
while (Date.now() < end && exited === undefined) {
  await sleep(Math.min(SAMPLE_MS, end - Date.now()));
  const alive = processTree(pc.pid);
  if (alive.length === 0 || !isAlive(pc.pid)) {
    exited = `Portcullis (pid ${pc.pid}) exited during the soak`;
    break;
  }
  try {
    series.push({ at: Date.now(), count: seriesCount(await (await fetch(`${pc.adminUrl}/metrics`, { signal: AbortSignal.timeout(5000) })).text()) });
  } catch (error) {
    log(`/metrics failed: ${String(error)}`);
  }
  const phase = phases.findIndex((p) => Date.now() >= p.start && Date.now() < p.end);
  if (phase !== lastPhase && phase > 0) log(`${phases[phase]?.name} starts`);
  lastPhase = phase;
  const t = load.traffic;
  log(`t=${Math.round((Date.now() - start) / 1000)}s ${Object.entries(t).map(([k, v]) => `${k} ${v.answered}/${v.sent}`).join(', ')}; checks ${load.checks.passed} passed, ${load.checks.wrong} wrong, ${load.checks.unanswered} unanswered`);
}
clearInterval(reloads);
clearInterval(bounce);
await load.stop();
// A worker replaced mid-run shows as a new pid in the probe files and in the restart counter.
const endMetrics = exited === undefined ? parseMetrics(await (await fetch(`${pc.adminUrl}/metrics`)).text()) : new Map<string, number>();
const exitCode = exited === undefined ? await pc.stop() : null;
for (const s of servers) s.close();
await idp.stop();
await redis?.stop();

// Verdict.
const samples = readProbeSamples(probeDir);
const seriesByPhase = phaseSeries(samples, series, phases);
const judgements = judgeAll(seriesByPhase, phases);
const delta = (name: string): number => (endMetrics.get(name) ?? 0) - (startMetrics.get(name) ?? 0);
const loadsOk = delta('portcullis_config_loads_total{result="success"}');
const loadsRefused = delta('portcullis_config_loads_total{result="error"}');
const restarts = delta('portcullis_worker_restarts_total');
const checks = load.checks;
const checksRun = checks.passed + checks.wrong + checks.unanswered;
const failures: string[] = [];
if (exited !== undefined) failures.push(exited);
if (exitCode !== null && exitCode !== 0) failures.push(`Portcullis exited with ${exitCode} on SIGTERM`);
if (restarts > 0) failures.push(`${restarts} worker(s) exited and were replaced`);
if (checks.wrong > 0) failures.push(`${checks.wrong} check(s) answered wrong`);
if (checks.unanswered > 0.01 * checksRun) failures.push(`${checks.unanswered} of ${checksRun} checks got no answer (more than 1 %)`);
if (checks.passed === 0) failures.push('no check passed');
if (exited === undefined && loadsOk === 0) failures.push('no reload was applied');
if (exited === undefined && BROKEN_RELOADS && broken > 0 && loadsRefused === 0) failures.push('no broken file was refused');
if (!samples.some((s) => s.gc)) failures.push('the probe ran without --expose-gc: heap figures are not after a GC');
for (const j of judgements.filter((x) => x.result === 'FAIL')) failures.push(`${j.process}: ${j.metric} rose every phase, by ${j.rise.toFixed(1)} (tolerance ${j.tolerance.toFixed(1)})`);

const elapsed = (Date.now() - start) / 1000;
const report = [
  `## Soak ${new Date(start).toISOString()}: ${VARIANT}, ${failures.length === 0 ? 'PASSED' : 'FAILED'}`,
  '',
  `Command: \`SOAK_VARIANT=${VARIANT} SOAK_MINUTES=${MINUTES} SOAK_RATE=${RATE} SOAK_BROKEN_RELOADS=${BROKEN_RELOADS ? 1 : 0} npm run soak\` ` +
    `(warm-up ${WARMUP_MINUTES} min, ${PHASES} phases of ${(phaseMs / 60_000).toFixed(1)} min, a sample every ${SAMPLE_MS / 1000} s), commit ${commit}.`,
  `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, ` +
    `load average at the end ${loadavg().map((n) => n.toFixed(1)).join(' ')}; the load generator runs on the same host.`,
  '',
  `Portcullis: ${VARIANT === 'workers' ? 'a supervisor and 2 workers, Redis store' : 'one process, memory store'}; ` +
    `${exited ?? `ran ${elapsed.toFixed(0)} s, exit code ${exitCode} on SIGTERM`}; worker restarts ${restarts}. ` +
    `Files rewritten ${written} times (${broken} broken on purpose): ${loadsOk} loads applied, ${loadsRefused} refused` +
    `${VARIANT === 'workers' ? ' (counted per worker)' : ''}.` + (redis ? ` Redis killed and restarted ${redisBounces} times (down ${REDIS_DOWN_MS / 1000} s each).` : ''),
  '',
  '| traffic | sent | answered | failed (deadlines, cancels, store down included) | per second |',
  '|---|---:|---:|---:|---:|',
  ...Object.entries(load.traffic).map(([k, t]) => `| ${k} | ${t.sent} | ${t.answered} | ${t.failed} | ${(t.sent / elapsed).toFixed(0)} |`),
  '',
  `Checks (known answers, one round a second): ${checks.passed} passed, ${checks.wrong} wrong, ${checks.unanswered} unanswered, ` +
    `${checks.skipped} rate limit checks skipped while Redis was down or just back.`,
  ...(checks.examples.length > 0 ? ['', ...checks.examples.map((e) => `- ${e}`)] : []),
  '',
  ...renderTables(seriesByPhase, judgements, phases),
  `Selected counters over the run: ${['portcullis_memory_store_evictions_total', 'portcullis_ratelimit_stats_keys_overflow_total', 'portcullis_authz_jwks_refreshes_total{provider="main",result="success"}',
    'portcullis_extproc_cache_total{result="stored"}', 'portcullis_ratelimit_store_errors_total']
    .filter((n) => [...endMetrics.keys()].some((k) => k.startsWith(n))).map((n) => `${n} ${sumOf(endMetrics, n) - sumOf(startMetrics, n)}`).join(', ') || '–'}.`,
  '',
  failures.length === 0 ? '**Verdict: passed.**' : `**Verdict: failed.**\n\n${failures.map((f) => `- ${f}`).join('\n')}`,
  '',
  ...(exited === undefined ? [] : ['Last Portcullis output:', '', '```', pc.output().slice(-3000), '```', '']),
];
const text = report.join('\n');
process.stdout.write(`${text}\n`);
const results = path.join(ROOT, 'bench', 'soak', 'results');
mkdirSync(results, { recursive: true });
const reportFile = path.join(results, `${new Date(start).toISOString().replace(/[:.]/g, '-')}-${VARIANT}.md`);
writeFileSync(reportFile, `${text}\n`);
log(`report: ${path.relative(ROOT, reportFile)}`);
process.exit(failures.length === 0 ? 0 : 1);

function parseMetrics(exposition: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of exposition.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    out.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return out;
}

function sumOf(metrics: Map<string, number>, prefix: string): number {
  let sum = 0;
  for (const [k, v] of metrics) if (k === prefix || k.startsWith(`${prefix}{`)) sum += v;
  return sum;
}

function isAlive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

