// The whole gateway for e2e tests: every sample service (examples/services) on a free port, Portcullis with the
// shipped envoy/portcullis.yaml and descriptor files, and a real Envoy running the bootstrap that
// src/gateway/envoy-bootstrap.ts generates — the same definition as envoy/envoy.yaml, with free ports, temp
// certificates and an access log file.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startSampleService, type SampleService } from '../../examples/services/sample-service.js';
import { buildGatewayBootstrap, type GatewayTarget, type SocketPath } from '../../src/gateway/envoy-bootstrap.js';
import type { PortcullisFilters } from '../../src/gateway/filters.js';
import { allInstances } from '../../src/gateway/topology.js';
import { repoRoot, startEnvoy, type EnvoyInstance, type HostPort } from './envoy.js';
import { shippedPortcullisConfig, startPortcullis, type PortcullisInstance } from './portcullis.js';

/** Makes the demo CA, server and client certificates into `dir` with scripts/make-certs.sh. */
export function makeCertificates(dir: string): void {
  execFileSync('bash', [path.join(repoRoot(), 'scripts', 'make-certs.sh'), dir], { stdio: 'pipe' });
}

/** The e2e target: loopback, free ports, temp files; addresses of the started samples and Portcullis. */
export function testTarget(options: {
  samples: ReadonlyMap<string, SampleService>;
  portcullis: HostPort | SocketPath;
  certDir: string;
  accessLogPath: string;
  /** A fixed admin port (the metrics listener forwards to it); absent: a free one and no metrics listener. */
  adminPort?: number;
}): GatewayTarget {
  const free = { host: '127.0.0.1', port: 0 };
  return {
    listeners: { http: free, https: free, mtls: free },
    admin: { host: '127.0.0.1', port: options.adminPort ?? 0 },
    ...(options.adminPort === undefined ? {} : { metrics: free }),
    portcullis: options.portcullis,
    endpoint: (_service, instance) => {
      const sample = options.samples.get(instance.name);
      if (sample === undefined) throw new Error(`no sample started for ${instance.name}`);
      return { host: sample.host, port: sample.port };
    },
    certDir: options.certDir,
    accessLogPath: options.accessLogPath,
    adminAllowCidrs: ['127.0.0.1/32'],
    // A loaded CI machine needs longer than production's deadlines for the first calls.
    callTimeouts: { rateLimit: '2s', extAuthz: '2s', extProc: '2s' },
  };
}

/** Where Envoy reaches a started Portcullis: its Unix socket (server.grpc.address: unix:…) or its host:port. */
export function portcullisTarget(portcullis: PortcullisInstance): HostPort | SocketPath {
  return portcullis.grpcSocket === undefined ? portcullis.grpc : { pipe: portcullis.grpcSocket };
}

export interface Gateway {
  envoy: EnvoyInstance;
  portcullis: PortcullisInstance;
  /** Sample services by instance name (users-1, flaky-2, …). */
  samples: ReadonlyMap<string, SampleService>;
  certDir: string;
  accessLogPath: string;
  port(listener: 'http' | 'https' | 'mtls' | 'metrics'): number;
  /** Parsed access log lines written so far. */
  accessLog(): Record<string, unknown>[];
  stop(): Promise<void>;
}

export async function startGateway(options: {
  redisUrl: string | undefined;
  filters: PortcullisFilters;
  /** A keys file instead of the shipped envoy/keys.yaml (tests that need many independent rate limit budgets). */
  apiKeysFile?: string;
  /** A change to the generated bootstrap, for tests of a setting the shipped gateway does not use. */
  adjustBootstrap?: (bootstrap: ReturnType<typeof buildGatewayBootstrap>) => ReturnType<typeof buildGatewayBootstrap>;
  /** A change to Portcullis' config (shippedPortcullisConfig), for tests of a feature the shipped gateway does not use. */
  adjustPortcullisConfig?: (config: Record<string, unknown>) => Record<string, unknown>;
}): Promise<Gateway> {
  const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-gateway-'));
  const stops: (() => Promise<unknown>)[] = [async () => rmSync(dir, { recursive: true, force: true })];
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.reverse()) await stop();
  };
  try {
    const certDir = path.join(dir, 'certs');
    makeCertificates(certDir);
    const samples = new Map<string, SampleService>();
    for (const { service, instance } of allInstances()) {
      const sample = await startSampleService({ service: service.service, version: instance.version, instance: instance.name });
      samples.set(instance.name, sample);
      stops.push(() => sample.stop());
    }
    const shipped = shippedPortcullisConfig(options.redisUrl, { apiKeysFile: options.apiKeysFile });
    const portcullis = await startPortcullis(options.adjustPortcullisConfig?.(shipped) ?? shipped);
    stops.push(() => portcullis.stop());
    const accessLogPath = path.join(dir, 'access.log');
    const adminPort = await freeLoopbackPort();
    const generated = buildGatewayBootstrap(testTarget({ samples, portcullis: portcullisTarget(portcullis), certDir, accessLogPath, adminPort }), options.filters);
    const bootstrap = options.adjustBootstrap?.(generated) ?? generated;
    // Access log files are flushed every 10 s by default; tests read them sooner.
    const envoy = await startEnvoy(bootstrap, { extraArgs: ['--file-flush-interval-msec', '100'] });
    stops.push(() => envoy.stop());
    return {
      envoy, portcullis, samples, certDir, accessLogPath,
      port: (listener) => envoy.listenerPort(listener),
      accessLog: () => {
        let text = '';
        try {
          text = readFileSync(accessLogPath, 'utf8');
        } catch {
          return [];
        }
        return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
      },
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The body as JSON, or undefined. */
  json: Record<string, unknown> | undefined;
}

export interface SendOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Source address of the connection (any 127.x.y.z works on Linux): one client per address. */
  localAddress?: string;
  /** TLS: CA to trust and optionally a client certificate. */
  tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
  timeoutMs?: number;
}

/** One request on a fresh connection (no pooling: each test decides its client address). */
export function send(port: number, pathname: string, options: SendOptions = {}): Promise<Reply> {
  const { method = 'GET', headers = {}, body, localAddress, tls, timeoutMs = 10_000 } = options;
  return new Promise((resolve, reject) => {
    const common = {
      host: '127.0.0.1', port, path: pathname, method, agent: false as const, localAddress,
      headers: { ...headers, ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }) },
      timeout: timeoutMs,
    };
    const req = tls === undefined
      ? httpRequest(common)
      : httpsRequest({ ...common, servername: 'localhost', ca: tls.ca, cert: tls.cert, key: tls.key });
    let answered = false;
    req.once('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    // A body larger than Envoy accepts is cut short by its 413 (EPIPE, reset): give that answer time to arrive.
    req.on('error', (error) => setTimeout(() => answered || reject(error), 500));
    req.once('response', (response) => {
      answered = true;
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.once('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, unknown> | undefined;
        try {
          const parsed: unknown = JSON.parse(text);
          if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) json = parsed as Record<string, unknown>;
        } catch {
          json = undefined;
        }
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text, json });
      });
      response.once('error', reject);
    });
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** A loopback port nobody listens on right now (the metrics listener's cluster needs the admin port up front). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Hands out loopback addresses nobody used yet in this process (a fresh per-address rate limit budget each). */
export function loopbackAddresses(): () => string {
  let next = 0;
  return () => {
    next += 1;
    return `127.0.${10 + Math.floor(next / 250)}.${(next % 250) + 1}`;
  };
}

/** A counter or gauge from Envoy's admin /stats (0 when absent). */
export async function envoyStat(envoy: EnvoyInstance, name: string): Promise<number> {
  const response = await fetch(`${envoy.adminUrl}/stats?format=json&filter=${encodeURIComponent(`^${name.replace(/\./g, '\\.')}$`)}`);
  const body = (await response.json()) as { stats: { name?: string; value?: number }[] };
  return body.stats.find((stat) => stat.name === name)?.value ?? 0;
}
