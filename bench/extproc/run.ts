// `npm run bench:extproc`: ext_proc, side by side, alternated run by run (BENCH_RUNS, default 3).
//
//  1. gRPC: header-only streams per second (request_headers + response_headers, then end) against a no-op Process
//     server and against Portcullis (memory store, one route with header rules), same ghz load, same concurrency.
//     The no-op replays Portcullis' own answers to that stream (captured once), so both send the same bytes.
//  2. Through Envoy: request latency p50/p99 with the header-only ext_proc filter (envoy/extproc.yaml) and with the
//     same bootstrap minus the filter, to an instant upstream: the difference is what header-only processing adds.
//  3. Through Envoy: a cache HIT against a request that goes to a 5 ms upstream.
//
// Knobs: BENCH_RUNS (3) BENCH_DURATION_MS (5000) BENCH_CONCURRENCY (32) BENCH_HTTP_REQUESTS (2000)

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { createServer } from 'node:http';
import { Agent, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, credentials } from '@grpc/grpc-js';
import { externalProcessorServiceDefinition } from '../../src/server/protos.js';
import { extprocBootstrap, repoRoot, startEnvoy } from '../../test/support/envoy.js';
import { startPortcullis } from '../../test/support/portcullis.js';
import { startUpstream } from '../../test/support/upstream.js';
import { benchNodeFlags, processTicks, TICK_US } from '../support/proc.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const DURATION_MS = Number(process.env['BENCH_DURATION_MS'] ?? 5000);
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 32);
const HTTP_REQUESTS = Number(process.env['BENCH_HTTP_REQUESTS'] ?? 2000);

const EXTPROC = {
  routes: [
    { name: 'api', match: { path_prefix: '/api' }, headers: { request: { set: { 'x-gateway': 'portcullis', 'x-client-ip': '{client_ip}' } }, response: { set: { 'x-content-type-options': 'nosniff' }, remove: ['server'] } } },
    { name: 'cached', match: { path_prefix: '/cached' }, cache: { ttl_seconds: { '200': 300 }, public: true } },
  ],
};

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

async function startNoop(answersFile: string): Promise<{ address: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [...benchNodeFlags(), `${repoRoot()}/dist/bench/extproc/noop-server.js`, answersFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  const address = await new Promise<string>((resolve) => {
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      const m = /listening (\S+)/.exec(c);
      if (m) resolve(m[1]!);
    });
  });
  return { address, child };
}

const GHZ = `${repoRoot()}/.tools/bin/ghz`;

/** ProcessingRequest headers as protojson (raw_value, as Envoy sends them). */
const protojsonHeaders = (headers: Record<string, string>): unknown => ({
  headers: Object.entries(headers).map(([key, value]) => ({ key, rawValue: Buffer.from(value, 'latin1').toString('base64') })),
});

/** One header-only stream as Envoy sends it: request_headers, then response_headers. */
const STREAM_REQUEST = {
  ':method': 'GET', ':path': '/api/users/1?x=1', ':authority': 'api.example', ':scheme': 'http', 'user-agent': 'bench',
  accept: 'application/json', 'x-request-id': 'b6f3a0c2-6a0e-4d38-9c1b-3c1c1b8c7d11', 'x-forwarded-for': '203.0.113.9',
};
const STREAM_RESPONSE = { ':status': '200', 'content-type': 'application/json', 'content-length': '2', server: 'upstream' };

/** ghz's data file: the stream above as protojson. */
function writeStreamData(dir: string): string {
  const file = path.join(dir, 'streams.json');
  writeFileSync(file, JSON.stringify([
    { requestHeaders: { headers: protojsonHeaders(STREAM_REQUEST), endOfStream: true } },
    { responseHeaders: { headers: protojsonHeaders(STREAM_RESPONSE), endOfStream: true } },
  ]));
  return file;
}

/**
 * Portcullis' answers to that stream, as bytes, into a file the no-op replays: both servers then send answers of
 * the same shape and size (Portcullis' ids differ per stream, their length does not), so ghz, which shares the
 * machine, spends the same CPU decoding either.
 */
async function writeCapturedAnswers(dir: string, address: string): Promise<string> {
  const method = externalProcessorServiceDefinition()['Process']!;
  const client = new Client(address, credentials.createInsecure());
  const headers = (h: Record<string, string>): unknown => ({ headers: Object.entries(h).map(([key, value]) => ({ key, raw_value: Buffer.from(value, 'latin1') })) });
  const answers = await new Promise<Buffer[]>((resolve, reject) => {
    const got: Buffer[] = [];
    const stream = client.makeBidiStreamRequest<unknown, Buffer>(method.path, method.requestSerialize, (b: Buffer) => b);
    stream.on('data', (b: Buffer) => got.push(b)).on('error', reject).on('end', () => resolve(got));
    stream.write({ request_headers: { headers: headers(STREAM_REQUEST), end_of_stream: true } });
    stream.write({ response_headers: { headers: headers(STREAM_RESPONSE), end_of_stream: true } });
    stream.end();
  });
  client.close();
  if (answers.length !== 2) throw new Error(`expected 2 answers from Portcullis, got ${answers.length}`);
  const file = path.join(dir, 'answers.json');
  writeFileSync(file, JSON.stringify({ request_headers: answers[0]!.toString('base64'), response_headers: answers[1]!.toString('base64') }));
  return file;
}

/**
 * Header-only streams per second for DURATION_MS with CONCURRENCY streams in flight, driven by ghz in its own
 * process (a Go client, as in bench:ratelimit and bench:authz): a Node client in this process would share the
 * machine's cores with less headroom than the server it measures.
 */
function streamsPerSecond(address: string, data: string, durationMs = DURATION_MS): Promise<{ rps: number; count: number }> {
  const args = [
    '--insecure', '--protoset', `${repoRoot()}/dist/proto/envoy.binpb`, '--call', 'envoy.service.ext_proc.v3.ExternalProcessor/Process',
    '--data-file', data, '--concurrency', String(CONCURRENCY), '--connections', '1', '--duration', `${durationMs}ms`,
    '--duration-stop', 'ignore', '--format', 'json', address,
  ];
  return new Promise((resolve, reject) => {
    execFile(GHZ, args, { maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) return reject(new Error(`ghz failed: ${stderr || error.message}`));
      const report = JSON.parse(stdout) as { rps: number; count: number; statusCodeDistribution?: Record<string, number> };
      const ok = report.statusCodeDistribution?.['OK'] ?? 0;
      if (ok !== report.count) return reject(new Error(`ghz: streams failed against ${address}: ${JSON.stringify(report.statusCodeDistribution)}`));
      resolve(report);
    });
  });
}

/** Latencies (ms) of HTTP_REQUESTS sequential GETs over one keep-alive connection. */
async function latencies(baseUrl: string, path: string, count = HTTP_REQUESTS): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const get = (): Promise<void> => new Promise((resolve, reject) => {
    const req = httpRequest(`${baseUrl}${path}`, { agent }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
  for (let i = 0; i < 100; i++) await get();
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await get();
    out.push(performance.now() - t);
  }
  agent.destroy();
  return out;
}

function withoutExtproc(bootstrap: Record<string, unknown>): Record<string, unknown> {
  const copy = structuredClone(bootstrap) as { static_resources: { listeners: { filter_chains: { filters: { typed_config: { http_filters: { name: string }[] } }[] }[] }[] } };
  const hcm = copy.static_resources.listeners[0]!.filter_chains[0]!.filters[0]!.typed_config;
  hcm.http_filters = hcm.http_filters.filter((f) => f.name !== 'envoy.filters.http.ext_proc');
  return copy as unknown as Record<string, unknown>;
}

async function main(): Promise<void> {
  const lines: string[] = [];
  const say = (s: string): void => {
    lines.push(s);
    process.stdout.write(`${s}\n`);
  };
  if (!existsSync(GHZ)) throw new Error(`${GHZ} missing: bench/ratelimit/install-peers.sh installs it`);
  say(`Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`);
  const work = mkdtempSync(path.join(tmpdir(), 'bench-extproc-'));
  process.once('exit', () => rmSync(work, { recursive: true, force: true }));
  // log level info: startPortcullis waits for the "portcullis listening" line.
  const portcullis = await startPortcullis({
    server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } }, log: { level: 'info' },
    ratelimit: { descriptors: `${repoRoot()}/envoy/ratelimit` }, extproc: EXTPROC,
  }, { runtimeFlags: benchNodeFlags() });
  const noop = await startNoop(await writeCapturedAnswers(work, portcullis.grpcAddress));
  process.once('exit', () => noop.child.kill());
  try {
    say(`## gRPC: header-only streams/s (request_headers + response_headers), concurrency ${CONCURRENCY}, ${DURATION_MS} ms per run`);
    const rates = { noop: [] as number[], portcullis: [] as number[] };
    const cpu = { noop: [] as number[], portcullis: [] as number[] };
    const data = writeStreamData(work);
    await streamsPerSecond(noop.address, data, 1000); // warm-up
    await streamsPerSecond(portcullis.grpcAddress, data, 1000);
    // Streams per second, and the server's own CPU µs per stream over the run (ghz shares the machine).
    const measure = async (target: 'noop' | 'portcullis', address: string, pid: number | undefined): Promise<void> => {
      const before = processTicks(pid);
      const { rps, count } = await streamsPerSecond(address, data);
      rates[target].push(rps);
      cpu[target].push(((processTicks(pid) - before) * TICK_US) / count);
    };
    for (let run = 0; run < RUNS; run++) {
      await measure('noop', noop.address, noop.child.pid);
      await measure('portcullis', portcullis.grpcAddress, portcullis.pid);
      say(`run ${run + 1}: noop ${rates.noop[run]!.toFixed(0)}/s (${cpu.noop[run]!.toFixed(0)} µs CPU per stream)  portcullis ${rates.portcullis[run]!.toFixed(0)}/s (${cpu.portcullis[run]!.toFixed(0)} µs)`);
    }
    say(`median: noop ${median(rates.noop).toFixed(0)}/s, portcullis ${median(rates.portcullis).toFixed(0)}/s, ratio ${(median(rates.portcullis) / median(rates.noop)).toFixed(2)}x; `
      + `server CPU per stream noop ${median(cpu.noop).toFixed(0)} µs, portcullis ${median(cpu.portcullis).toFixed(0)} µs, ratio ${(median(cpu.noop) / median(cpu.portcullis)).toFixed(2)}x`);

    const upstream = await startUpstream();
    const slowServer = createServer((req, res) => {
      req.resume();
      setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5' }).end('slow\n'), 5);
    });
    await new Promise<void>((r) => slowServer.listen(0, '127.0.0.1', r));
    const slowPort = (slowServer.address() as AddressInfo).port;
    const bootstrap = extprocBootstrap({ upstream: { host: upstream.host, port: upstream.port }, portcullis: portcullis.grpc, messageTimeout: '2s' });
    const slowBootstrap = extprocBootstrap({ upstream: { host: '127.0.0.1', port: slowPort }, portcullis: portcullis.grpc, messageTimeout: '2s' });
    const withFilter = await startEnvoy(bootstrap);
    const plain = await startEnvoy(withoutExtproc(bootstrap));
    const slow = await startEnvoy(slowBootstrap);
    try {
      const url = (e: typeof plain): string => `http://127.0.0.1:${e.listenerPort('ingress')}`;
      say('');
      say(`## Through Envoy: ${HTTP_REQUESTS} sequential GETs per run, one keep-alive connection, instant upstream`);
      const added50: number[] = [];
      const added99: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        const p = await latencies(url(plain), '/api/x');
        const e = await latencies(url(withFilter), '/api/x');
        added50.push(pct(e, 0.5) - pct(p, 0.5));
        added99.push(pct(e, 0.99) - pct(p, 0.99));
        say(`run ${run + 1}: no filter p50 ${pct(p, 0.5).toFixed(3)} p99 ${pct(p, 0.99).toFixed(3)} ms; ext_proc p50 ${pct(e, 0.5).toFixed(3)} p99 ${pct(e, 0.99).toFixed(3)} ms`);
      }
      say(`median added by header-only ext_proc: p50 +${median(added50).toFixed(3)} ms, p99 +${median(added99).toFixed(3)} ms`);

      say('');
      say('## Cache HIT vs a 5 ms upstream (both through Envoy + ext_proc)');
      const hit50: number[] = [];
      const miss50: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        const hit = await latencies(url(slow), '/cached/item', 500);
        const upstreamCall = await latencies(url(slow), '/api/slow', 500);
        hit50.push(pct(hit, 0.5));
        miss50.push(pct(upstreamCall, 0.5));
        say(`run ${run + 1}: HIT p50 ${pct(hit, 0.5).toFixed(3)} p99 ${pct(hit, 0.99).toFixed(3)} ms; upstream p50 ${pct(upstreamCall, 0.5).toFixed(3)} p99 ${pct(upstreamCall, 0.99).toFixed(3)} ms`);
      }
      say(`median: HIT p50 ${median(hit50).toFixed(3)} ms vs 5 ms upstream p50 ${median(miss50).toFixed(3)} ms (${(median(miss50) / median(hit50)).toFixed(1)}x faster)`);
    } finally {
      await withFilter.stop();
      await plain.stop();
      await slow.stop();
      await upstream.stop();
      await new Promise((r) => slowServer.close(r));
    }
  } finally {
    await portcullis.stop();
    noop.child.kill();
  }
}

await main();
