// HTTP/2 abuse against a real `portcullis serve`: a hand-written client (test/support/h2-frames.ts) breaks the
// protocol's good manners on connections of its own while a well-behaved gRPC client, on its own connection, keeps
// calling ShouldRateLimit. In every case that client must get every answer, with a bounded p99; the process must
// stay up; its RSS must stay bounded during the abuse and come back near where it was once the abuser leaves.
// The numbers of each case are printed as test diagnostics (docs/tuning.md, "HTTP/2 transport bounds").

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { loadEnvoyApi } from '../../../src/server/protos.js';
import { body, extprocClient, requestHeaders, responseHeaders } from '../../support/extproc-client.js';
import {
  FLAG, FRAME, SETTING, frame, grpcMessage, grpcRequestHeaders, headerBlock, rawH2Connect, rstStreamFrame, settingsFrame, type RawH2Connection,
} from '../../support/h2-frames.js';
import { startPortcullis, type PortcullisInstance } from '../../support/portcullis.js';
import { rateLimitClient, type RateLimitClient } from '../../support/ratelimit-client.js';

const ABUSE_MS = 2500;
/** The good client's bound while a case runs: far above its baseline (a few ms), far below a stalled event loop. */
const GOOD_P99_MS = 250;
const GOOD_DEADLINE_MS = 2000;
const MB = 1024 * 1024;
const CACHED_BYTES = 1_000_000;
const RL_PATH = '/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit';
const PROCESS_PATH = '/envoy.service.ext_proc.v3.ExternalProcessor/Process';
const RL_REQUEST = { domain: 'd', descriptors: [{ entries: [{ key: 'k', value: 'v' }] }] };
const GET = (p: string): Record<string, string> => ({ ':method': 'GET', ':path': p, ':authority': 'api', ':scheme': 'http', 'x-request-id': 'r' });

type Serializer = (value: object) => Buffer;
interface ServiceCtor { service: Record<string, { requestSerialize: Serializer }> }
const api = loadEnvoyApi() as unknown as {
  envoy: { service: { ratelimit: { v3: { RateLimitService: ServiceCtor } }; ext_proc: { v3: { ExternalProcessor: ServiceCtor } } } };
};
const serializeRl = api.envoy.service.ratelimit.v3.RateLimitService.service['ShouldRateLimit']!.requestSerialize;
const serializeProcess = api.envoy.service.ext_proc.v3.ExternalProcessor.service['Process']!.requestSerialize;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const rssMb = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

interface Outcome {
  calls: number;
  errors: number;
  p99Ms: number;
  maxMs: number;
  rssBaseMb: number;
  rssPeakMb: number;
  rssAfterMb: number;
  abuse: Record<string, unknown>;
}

interface Abuse {
  /** Runs until `stopped()`; what it returns is printed with the numbers. */
  run(stopped: () => boolean): Promise<Record<string, unknown>>;
}

async function startServer(grpcExtra: object = {}): Promise<{ server: PortcullisInstance; good: RateLimitClient; pid: number; dir: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-h2abuse-'));
  mkdirSync(path.join(dir, 'ratelimit'));
  writeFileSync(path.join(dir, 'ratelimit', 'd.yaml'), 'domain: d\ndescriptors:\n  - key: k\n    rate_limit: { unit: second, requests_per_unit: 1000000000 }\n');
  const server = await startPortcullis({
    server: { grpc: { address: '127.0.0.1:0', ...grpcExtra }, admin: { address: '127.0.0.1:0' }, shutdown_timeout_ms: 1000 },
    log: { level: 'info' },
    ratelimit: { descriptors: path.join(dir, 'ratelimit') },
    // A cached route: a GET of a few hundred bytes answered with a 1 MB body, the largest reply a peer can ask for.
    extproc: { cache: { max_entry_bytes: 2 * CACHED_BYTES }, routes: [{ name: 'big', match: { path_prefix: '/big' }, cache: { ttl_seconds: { '200': 300 }, public: true } }] },
  }, { logFile: path.join(dir, 'portcullis.log') });
  const good = rateLimitClient(server.grpcAddress, true);
  try {
    await good.shouldRateLimit(RL_REQUEST);
    await primeCache(server.grpcAddress);
  } catch (error) {
    good.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return { server, good, pid: server.pid!, dir };
}

/** Stores the 1 MB entry the no-read case asks for, the way Envoy would: a miss, the response, its body. */
async function primeCache(address: string): Promise<void> {
  const client = extprocClient(address);
  try {
    const miss = client.open();
    await miss.exchange(requestHeaders(GET('/big/x')));
    await miss.exchange(responseHeaders({ ':status': '200', 'content-type': 'text/plain' }));
    await miss.exchange(body('response_body', Buffer.alloc(CACHED_BYTES, 97)));
    miss.end();
    await miss.status;
    const hit = client.open();
    const answer = await hit.exchange(requestHeaders(GET('/big/x')));
    assert.equal(answer.immediate_response?.body?.length, CACHED_BYTES, 'the entry is cached');
    hit.end();
    await hit.status;
  } finally {
    client.close();
  }
}

/** Runs `abuse` for ABUSE_MS while the good client calls on two loops; RSS sampled every 25 ms. */
async function underAbuse(t: TestContext, target: { good: RateLimitClient; pid: number }, abuse: Abuse, ms = ABUSE_MS): Promise<Outcome> {
  const { good, pid } = target;
  const rssBaseMb = rssMb(pid);
  let rssPeakMb = rssBaseMb;
  const sampler = setInterval(() => {
    if (alive(pid)) rssPeakMb = Math.max(rssPeakMb, rssMb(pid));
  }, 25);
  let stopped = false;
  const latencies: number[] = [];
  let errors = 0;
  const loop = async (): Promise<void> => {
    while (!stopped) {
      const started = performance.now();
      try {
        await good.shouldRateLimit(RL_REQUEST, GOOD_DEADLINE_MS);
      } catch {
        errors++;
      }
      latencies.push(performance.now() - started);
    }
  };
  const loops = [loop(), loop()];
  const running = abuse.run(() => stopped);
  await sleep(ms);
  stopped = true;
  await Promise.all(loops);
  // An abuser blocked on a server that stopped reading from it gives up within its own write timeout.
  const info = await running;
  clearInterval(sampler);
  await sleep(1000);
  latencies.sort((a, b) => a - b);
  const outcome: Outcome = {
    calls: latencies.length,
    errors,
    p99Ms: Math.round(latencies[Math.floor(latencies.length * 0.99)] ?? Infinity),
    maxMs: Math.round(latencies.at(-1) ?? Infinity),
    rssBaseMb: Math.round(rssBaseMb),
    rssPeakMb: Math.round(rssPeakMb),
    rssAfterMb: alive(pid) ? Math.round(rssMb(pid)) : NaN,
    abuse: info,
  };
  t.diagnostic(JSON.stringify(outcome));
  assert.ok(alive(pid), 'portcullis is still running');
  assert.equal(errors, 0, 'every call of the well-behaved client was answered in time');
  assert.ok(outcome.calls > 50, `the well-behaved client made progress (${outcome.calls} calls)`);
  assert.ok(outcome.p99Ms < GOOD_P99_MS, `good client p99 ${outcome.p99Ms} ms < ${GOOD_P99_MS} ms`);
  return outcome;
}

/** A write that resolves 'stuck' when the server stopped reading from this connection for a second. */
function writeOrStuck(c: RawH2Connection, ...frames: Buffer[]): Promise<boolean | 'stuck'> {
  return Promise.race([c.write(...frames), sleep(1000).then(() => 'stuck' as const)]);
}

const rlHeaders = headerBlock(grpcRequestHeaders(RL_PATH));

describe('HTTP/2 abuse against portcullis serve (default transport bounds)', () => {
  let target: Awaited<ReturnType<typeof startServer>>;

  before(async () => {
    target = await startServer();
  });
  after(async () => {
    target?.good.close();
    assert.equal(await target?.server.stop(), 0, 'portcullis exits 0 on SIGTERM after the abuse');
    if (target) rmSync(target.dir, { recursive: true, force: true });
  });

  it('refuses none of a legitimate burst: 1500 concurrent calls and 200 concurrent 1 MB replies on one connection each', async () => {
    // Past max_concurrent_streams a client's streams wait for a slot (Envoy opens another connection); a peer that
    // reads its replies never reaches max_session_memory_mb.
    const burst = await Promise.allSettled(Array.from({ length: 1500 }, () => target.good.shouldRateLimit(RL_REQUEST, 10_000)));
    assert.deepEqual(burst.filter((r) => r.status === 'rejected'), []);
    const client = extprocClient(target.server.grpcAddress, { 'grpc.use_local_subchannel_pool': 1 });
    try {
      const hits = await Promise.all(Array.from({ length: 200 }, async () => {
        const stream = client.open();
        const answer = await stream.exchange(requestHeaders(GET('/big/x')), 10_000);
        stream.end();
        await stream.status;
        return answer.immediate_response?.body?.length;
      }));
      assert.deepEqual(new Set(hits), new Set([CACHED_BYTES]));
    } finally {
      client.close();
    }
  });

  it('rapid reset: HEADERS then RST_STREAM, thousands per second, connection after connection', async (t) => {
    const outcome = await underAbuse(t, target, {
      async run(stopped) {
        let streams = 0;
        let connections = 0;
        let goaways = 0;
        const started = Date.now();
        while (!stopped()) {
          const c = await rawH2Connect(target.server.grpc.port);
          connections++;
          for (let id = 1; !stopped() && !c.closed(); ) {
            const frames: Buffer[] = [];
            for (let i = 0; i < 100; i++, id += 2) frames.push(frame(FRAME.HEADERS, FLAG.END_HEADERS, id, rlHeaders), rstStreamFrame(id));
            streams += 100;
            if ((await writeOrStuck(c, ...frames)) !== true) break;
          }
          if (c.goaway() !== undefined) goaways++;
          c.close();
        }
        return { streams, streamsPerSecond: Math.round(streams / ((Date.now() - started) / 1000)), connections, goaways };
      },
    });
    // nghttp2's reset-rate defence: each abusive connection is ended with GOAWAY once its burst is spent.
    assert.ok((outcome.abuse['goaways'] as number) >= 1, 'the server ended the resetting connections');
    assert.ok(outcome.rssAfterMb - outcome.rssBaseMb < 100);
  });

  it('streams opened and never finished, far past max concurrent streams', async (t) => {
    const connections: RawH2Connection[] = [];
    const outcome = await underAbuse(t, target, {
      async run(stopped) {
        let streams = 0;
        for (let k = 0; k < 2 && !stopped(); k++) {
          const c = await rawH2Connect(target.server.grpc.port);
          connections.push(c);
          for (let id = 1; id < 40_000 && !stopped() && !c.closed(); id += 2) {
            if ((await writeOrStuck(c, frame(FRAME.HEADERS, FLAG.END_HEADERS, id, rlHeaders))) !== true) break;
            streams++;
          }
        }
        while (!stopped()) await sleep(50);
        return { streams, closedByServer: connections.filter((c) => c.closed()).length };
      },
    });
    for (const c of connections) c.close();
    // 20,000 open streams a connection held ~10 KB each for ever (~400 MB); past 1024 nghttp2 ends the connection.
    assert.equal(outcome.abuse['closedByServer'], 2, 'each connection past the stream limit was closed');
    assert.ok(outcome.rssPeakMb - outcome.rssBaseMb < 150, `RSS grew ${outcome.rssPeakMb - outcome.rssBaseMb} MB`);
  });

  it('a client that never reads (zero window) asking for 1 MB replies: what the server buffers is bounded', async (t) => {
    const connections: RawH2Connection[] = [];
    const ask = grpcMessage(serializeProcess(requestHeaders(GET('/big/x'))));
    const processHeaders = headerBlock(grpcRequestHeaders(PROCESS_PATH));
    const outcome = await underAbuse(t, target, {
      async run(stopped) {
        let streams = 0;
        for (let k = 0; k < 2 && !stopped(); k++) {
          const c = await rawH2Connect(target.server.grpc.port, { read: false, settings: [[SETTING.INITIAL_WINDOW_SIZE, 0]] });
          connections.push(c);
          // Under the stream limit: what bounds this peer is the memory its connection may hold.
          for (let id = 1; id < 800 && !stopped(); id += 2) {
            void c.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, id, processHeaders), frame(FRAME.DATA, 0, id, ask));
            streams++;
            if (id % 50 === 1) await sleep(5);
          }
        }
        while (!stopped()) await sleep(50);
        return { streams, askedMb: Math.round((streams * CACHED_BYTES) / MB) };
      },
    });
    for (const c of connections) c.close();
    // 800 replies of 1 MB were queued in full before (~800 MB); max_session_memory_mb (32) refuses streams past it.
    assert.ok(outcome.rssPeakMb - outcome.rssBaseMb < 200, `RSS grew ${outcome.rssPeakMb - outcome.rssBaseMb} MB`);
    assert.ok(outcome.rssAfterMb - outcome.rssBaseMb < 100, `RSS after the abuser left: +${outcome.rssAfterMb - outcome.rssBaseMb} MB`);
  });

  it('PING flood and SETTINGS flood from a peer that never reads the acknowledgements', async (t) => {
    await underAbuse(t, target, {
      async run(stopped) {
        const counts = { pings: 0, settings: 0 };
        const flood = async (kind: 'pings' | 'settings', make: () => Buffer): Promise<void> => {
          const c = await rawH2Connect(target.server.grpc.port, { read: false });
          while (!stopped() && !c.closed()) {
            counts[kind] += 1000;
            if ((await writeOrStuck(c, ...Array.from({ length: 1000 }, make))) !== true) break;
          }
          c.close();
        };
        await Promise.all([
          flood('pings', () => frame(FRAME.PING, 0, 0, Buffer.alloc(8))),
          flood('settings', () => settingsFrame([[SETTING.INITIAL_WINDOW_SIZE, 65_535]])),
        ]);
        return counts;
      },
    });
  });

  it('a header block that never ends: CONTINUATION after CONTINUATION, full and empty', async (t) => {
    const outcome = await underAbuse(t, target, {
      async run(stopped) {
        const counts = { bytes: 0, emptyFrames: 0 };
        const junk = headerBlock([['x-junk', 'a'.repeat(16_000)]]);
        const endless = async (payload: Buffer, count: (n: number) => void): Promise<void> => {
          const c = await rawH2Connect(target.server.grpc.port);
          await c.write(frame(FRAME.HEADERS, 0, 1, rlHeaders));
          while (!stopped() && !c.closed()) {
            count(100);
            if ((await writeOrStuck(c, ...Array.from({ length: 100 }, () => frame(FRAME.CONTINUATION, 0, 1, payload)))) !== true) break;
          }
          c.close();
        };
        await Promise.all([
          endless(junk, (n) => (counts.bytes += n * junk.length)),
          endless(Buffer.alloc(0), (n) => (counts.emptyFrames += n)),
        ]);
        return counts;
      },
    });
    assert.ok(outcome.rssPeakMb - outcome.rssBaseMb < 100, `RSS grew ${outcome.rssPeakMb - outcome.rssBaseMb} MB`);
  });

  it('huge metadata: thousands of headers, one 1 MB header value, a 1 MB header block', async (t) => {
    const statuses: Record<string, number> = {};
    const outcome = await underAbuse(t, target, {
      async run(stopped) {
        const many = new grpc.Metadata();
        for (let i = 0; i < 2000; i++) many.set(`x-h${i}`, 'v'.repeat(20));
        const huge = new grpc.Metadata();
        huge.set('x-huge', 'v'.repeat(MB));
        const client = new grpc.Client(target.server.grpcAddress, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
        const identity = (b: Buffer): Buffer => b;
        while (!stopped()) {
          await Promise.all([many, huge].map((md) => new Promise<void>((resolve) => {
            client.makeUnaryRequest(RL_PATH, identity, identity, serializeRl(RL_REQUEST), md, { deadline: Date.now() + GOOD_DEADLINE_MS }, (error) => {
              const code = grpc.status[error?.code ?? grpc.status.OK];
              statuses[code] = (statuses[code] ?? 0) + 1;
              resolve();
            });
          })));
        }
        client.close();
        const c = await rawH2Connect(target.server.grpc.port);
        const block = headerBlock(grpcRequestHeaders(RL_PATH, Array.from({ length: 100_000 }, (_, i) => [`x-h${i}`, 'v'] as const)));
        const frames: Buffer[] = [];
        for (let at = 0; at < block.length; at += 16_384) {
          frames.push(frame(at === 0 ? FRAME.HEADERS : FRAME.CONTINUATION, at + 16_384 >= block.length ? FLAG.END_HEADERS : 0, 1, block.subarray(at, at + 16_384)));
        }
        await writeOrStuck(c, ...frames);
        for (let i = 0; i < 20 && !c.closed(); i++) await sleep(50);
        const raw = { blockBytes: block.length, closed: c.closed(), goaway: c.goaway() };
        c.close();
        return { statuses, raw };
      },
    });
    // Node's http2 refuses a header list past its 64 KB limit: the call fails, nothing reaches a handler.
    assert.equal(statuses['OK'], undefined, 'no call with oversized metadata was served');
    assert.ok((outcome.abuse['raw'] as { closed: boolean }).closed, 'the 1 MB header block ended its connection');
  });

  it('many idle connections: half send nothing, half only the preface', async (t) => {
    const connections: RawH2Connection[] = [];
    const outcome = await underAbuse(t, target, {
      async run(stopped) {
        for (let i = 0; i < 1000 && !stopped(); i++) connections.push(await rawH2Connect(target.server.grpc.port, { preface: i % 2 === 0 }));
        while (!stopped()) await sleep(50);
        return { connections: connections.length, closedByServer: connections.filter((c) => c.closed()).length };
      },
    });
    for (const c of connections) c.close();
    assert.ok(outcome.rssPeakMb - outcome.rssBaseMb < 100, `RSS grew ${outcome.rssPeakMb - outcome.rssBaseMb} MB`);
  });
});

describe('HTTP/2 abuse: keepalive reclaims what a silent peer holds (keepalive 1 s / 1 s)', () => {
  let target: Awaited<ReturnType<typeof startServer>>;

  before(async () => {
    target = await startServer({ keepalive_time_ms: 1000, keepalive_timeout_ms: 1000 });
  });
  after(async () => {
    target?.good.close();
    await target?.server.stop();
    if (target) rmSync(target.dir, { recursive: true, force: true });
  });

  it('closes a zero-window reader that holds replies, and a preface-only connection, once PINGs go unanswered', async (t) => {
    const ask = grpcMessage(serializeProcess(requestHeaders(GET('/big/x'))));
    const processHeaders = headerBlock(grpcRequestHeaders(PROCESS_PATH));
    let holder: RawH2Connection | undefined;
    let silent: RawH2Connection | undefined;
    const outcome = await underAbuse(t, target, {
      async run(stopped) {
        // It reads (so it sees the server close), but it grants no window and answers no PING.
        holder = await rawH2Connect(target.server.grpc.port, { settings: [[SETTING.INITIAL_WINDOW_SIZE, 0]] });
        silent = await rawH2Connect(target.server.grpc.port);
        for (let id = 1; id < 40; id += 2) void holder.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, id, processHeaders), frame(FRAME.DATA, 0, id, ask));
        const started = Date.now();
        while (!stopped() && !(holder.closed() && silent.closed())) await sleep(50);
        return { closedAfterMs: Date.now() - started, holderClosed: holder.closed(), silentClosed: silent.closed() };
      },
    }, 4000);
    assert.ok(outcome.abuse['holderClosed'], 'the connection that never read was closed');
    assert.ok(outcome.abuse['silentClosed'], 'the preface-only connection was closed');
    holder?.close();
    silent?.close();
  });
});
