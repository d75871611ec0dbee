import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { buildApp, type App } from '../../src/app.js';
import { parsePortcullisConfig } from '../../src/config/portcullis-config.js';
import { createLogger } from '../../src/observability/logger.js';
import type { Clock } from '../../src/shared/clock.js';
import { systemClock } from '../../src/shared/clock.js';
import type { CacheStore } from '../../src/store/cache-store.js';
import type { CounterStore } from '../../src/store/counter-store.js';
import { MemoryCounterStore } from '../../src/store/memory-counter-store.js';
import { createRedisClient } from '../../src/store/redis-client.js';
import { RedisCounterStore } from '../../src/store/redis-counter-store.js';
import type { RevocationList } from '../../src/authz/ports.js';
import { authzClient, type AuthzClient } from './authz-client.js';
import { rateLimitClient, type RateLimitClient } from './ratelimit-client.js';

export interface TestApp {
  readonly app: App;
  readonly dir: string;
  readonly descriptorsDir: string;
  readonly grpcAddress: string;
  readonly adminUrl: string;
  /** http://host:port of the composer listener, when `bff` was given. */
  readonly httpUrl: string | undefined;
  /** The config file, to rewrite before app.reload(). */
  readonly file: string;
  readonly client: RateLimitClient;
  readonly authz: AuthzClient;
  readonly registry: Registry;
  /** Parsed pino lines logged so far. */
  logs(): Record<string, unknown>[];
  /** Current value of a metric series, 0 when absent. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  close(): Promise<void>;
}

export interface TestAppOptions {
  /** Descriptor files by name. */
  readonly descriptors: Readonly<Record<string, string>>;
  /** YAML for the `ratelimit:` section, without `descriptors`. */
  readonly ratelimit?: string;
  readonly redisUrl?: string;
  readonly clock?: Clock;
  readonly store?: CounterStore;
  /** YAML for the `extproc:` section, without the key. */
  readonly extproc?: string;
  readonly cache?: CacheStore;
  /** Extra files in the config dir (JSON Schemas, keys files, JWKS), by relative name. */
  readonly files?: Readonly<Record<string, string>>;
  /** YAML for the `bff:` section; turns the composer listener on (port 0). */
  readonly bff?: string;
  /** YAML for the `authz:` section (relative paths resolve against `dir`). */
  readonly authz?: string;
  readonly revocation?: RevocationList;
}

/** A real Portcullis (gRPC on port 0, admin on port 0) in this process, with its own temp config dir. */
export async function startTestApp(options: TestAppOptions): Promise<TestApp> {
  const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-it-'));
  const descriptorsDir = path.join(dir, 'ratelimit');
  mkdirSync(descriptorsDir);
  for (const [name, text] of Object.entries(options.descriptors)) writeFileSync(path.join(descriptorsDir, name), text);
  for (const [name, text] of Object.entries(options.files ?? {})) writeFileSync(path.join(dir, name), text);
  const file = path.join(dir, 'portcullis.yaml');
  const indent = (yaml: string): string => yaml.split('\n').map((l) => `  ${l}`).join('\n');
  const ratelimit = indent(options.ratelimit ?? '');
  writeFileSync(file, [
    'server:',
    '  grpc: { address: "127.0.0.1:0" }',
    '  admin: { address: "127.0.0.1:0" }',
    '  shutdown_timeout_ms: 2000',
    ...(options.bff !== undefined ? ['  http: { address: "127.0.0.1:0" }'] : []),
    ...(options.redisUrl ? ['redis:', `  url: "${options.redisUrl}"`] : []),
    'log: { level: debug }',
    'ratelimit:',
    '  descriptors: ./ratelimit',
    '  reload: { enabled: true, poll_interval_ms: 100 }',
    ratelimit,
    ...(options.extproc ? ['extproc:', indent(options.extproc)] : []),
    ...(options.bff !== undefined ? ['bff:', indent(options.bff)] : []),
    ...(options.authz === undefined ? [] : ['authz:', indent(options.authz)]),
  ].join('\n'));
  const config = parsePortcullisConfig(readFileSync(file, 'utf8'), file);
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const registry = new Registry();
  const store = options.store ?? (options.redisUrl ? new RedisCounterStore(createRedisClient({ url: options.redisUrl })) : new MemoryCounterStore());
  const app = buildApp({ config, logger: createLogger('debug', sink), registry, clock: options.clock ?? systemClock, store, random: () => 0, cache: options.cache, ...(options.revocation ? { revocation: options.revocation } : {}) });
  const { grpcAddress, adminAddress, httpAddress } = await app.start();
  const client = rateLimitClient(grpcAddress);
  const authz = authzClient(grpcAddress);
  return {
    app, dir, descriptorsDir, grpcAddress, adminUrl: `http://${adminAddress}`, client, authz, registry, file,
    httpUrl: httpAddress === undefined ? undefined : `http://${httpAddress}`,
    logs: () => lines,
    async metric(name, labels = {}) {
      const metric = registry.getSingleMetric(name);
      if (!metric) return 0;
      const values = (await metric.get()).values;
      const match = values.find((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want));
      return match?.value ?? 0;
    },
    async close() {
      client.close();
      authz.close();
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls until `check` returns true or the time runs out. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
