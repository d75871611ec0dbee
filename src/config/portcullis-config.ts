import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { RateLimitSettings } from '../ratelimit/service.js';
import { checkWorkers, workersField, type WorkersSetting } from '../server/workers-config.js';
import { ConfigError, IssueCollector } from './errors.js';
import { boolean, list, number, object, oneOf, string } from './schema.js';
import { parseYaml } from './yaml.js';

/** portcullis.yaml, parsed once, validated, frozen. Paths are absolute. */
export interface PortcullisConfig {
  readonly file: string;
  readonly server: {
    readonly grpc: { readonly address: string };
    readonly admin: { readonly address: string };
    /** How long SIGTERM waits for in-flight calls before closing connections. */
    readonly shutdownTimeoutMs: number;
    /** Worker processes serving the gRPC port (src/server/supervisor.ts); 1 = this process serves it. */
    readonly workers: WorkersSetting;
  };
  /** undefined: the in-memory store (one instance only). */
  readonly redis: { readonly url: string | undefined; readonly cluster: readonly string[] | undefined; readonly connectTimeoutMs: number } | undefined;
  readonly log: { readonly level: string };
  readonly ratelimit: RateLimitSettings & {
    readonly descriptors: string;
    /** Default deadline when Envoy sends none (its filter timeout is usually shorter). */
    readonly timeoutMs: number;
    readonly reload: { readonly enabled: boolean; readonly pollIntervalMs: number };
    readonly metrics: { readonly maxKeys: number };
  };
}

const address = (fallback: string) =>
  string(fallback, (s) => (/^[^\s]+:\d{1,5}$/.test(s) && Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535 ? undefined : `expected host:port, got '${s}'`));
const redisUrl = string('', (s) => (/^rediss?:\/\//.test(s) ? undefined : `expected a redis:// or rediss:// URL, got '${s}'`));

const schema = object({
  server: object({
    grpc: object({ address: address('127.0.0.1:9191') }),
    admin: object({ address: address('127.0.0.1:9192') }),
    shutdown_timeout_ms: number(10000, { min: 0, integer: true }),
    workers: workersField,
  }),
  redis: object({
    url: redisUrl,
    cluster: list(redisUrl),
    connect_timeout_ms: number(2000, { min: 1, integer: true }),
  }),
  log: object({ level: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info') }),
  ratelimit: object({
    descriptors: string('./ratelimit'),
    shadow_mode: boolean(false),
    quota_mode: boolean(false),
    response_headers: object({
      enabled: boolean(false),
      limit_header: string('RateLimit-Limit'),
      remaining_header: string('RateLimit-Remaining'),
      reset_header: string('RateLimit-Reset'),
    }),
    local_cache: object({ enabled: boolean(false), max_entries: number(100000, { min: 1, integer: true }) }),
    stop_increment_when_over_limit: boolean(false),
    near_limit_ratio: number(0.8, { min: 0, max: 1 }),
    failure_mode: oneOf(['error', 'allow', 'deny'] as const, 'error'),
    response_dynamic_metadata: boolean(false),
    cache_key_prefix: string(''),
    expiration_jitter_max_seconds: number(300, { min: 0, integer: true }),
    timeout_ms: number(1000, { min: 1, integer: true }),
    max_descriptors: number(256, { min: 1, integer: true }),
    max_entries: number(64, { min: 1, integer: true }),
    reload: object({ enabled: boolean(true), poll_interval_ms: number(1000, { min: 50, integer: true }) }),
    metrics: object({ max_keys: number(10000, { min: 0, integer: true }) }),
  }),
});

/** Parses portcullis.yaml text; throws ConfigError listing every problem. */
export function parsePortcullisConfig(text: string, file: string): PortcullisConfig {
  const issues = new IssueCollector(path.basename(file));
  const parsed = parseYaml(text);
  if (!parsed.ok) {
    issues.add(parsed.line, '', `invalid YAML: ${parsed.message}`);
    throw new ConfigError(issues.issues);
  }
  const raw = schema(parsed.root, '', issues, 1);
  if (raw.redis.url !== '' && raw.redis.cluster !== undefined) {
    const redis = parsed.root?.kind === 'map' ? parsed.root.entries.find((e) => e.key.kind === 'scalar' && e.key.value === 'redis') : undefined;
    issues.add(redis?.key.line, 'redis', 'set either url or cluster, not both');
  }
  const redisConfigured = raw.redis.url !== '' || raw.redis.cluster !== undefined;
  checkWorkers(raw.server.workers, redisConfigured, issues);
  if (issues.issues.length > 0) throw new ConfigError(issues.issues);

  const rl = raw.ratelimit;
  return deepFreeze({
    file,
    server: { grpc: raw.server.grpc, admin: raw.server.admin, shutdownTimeoutMs: raw.server.shutdown_timeout_ms, workers: raw.server.workers.value },
    redis: redisConfigured
      ? { url: raw.redis.url || undefined, cluster: raw.redis.cluster, connectTimeoutMs: raw.redis.connect_timeout_ms }
      : undefined,
    log: raw.log,
    ratelimit: {
      descriptors: path.resolve(path.dirname(file), rl.descriptors),
      shadowMode: rl.shadow_mode,
      quotaMode: rl.quota_mode,
      nearLimitRatio: rl.near_limit_ratio,
      responseHeaders: {
        enabled: rl.response_headers.enabled,
        limit: rl.response_headers.limit_header,
        remaining: rl.response_headers.remaining_header,
        reset: rl.response_headers.reset_header,
      },
      localCache: { enabled: rl.local_cache.enabled, maxEntries: rl.local_cache.max_entries },
      stopIncrementWhenOverLimit: rl.stop_increment_when_over_limit,
      cacheKeyPrefix: rl.cache_key_prefix,
      expirationJitterMaxSeconds: rl.expiration_jitter_max_seconds,
      failureMode: rl.failure_mode,
      responseDynamicMetadata: rl.response_dynamic_metadata,
      maxDescriptors: rl.max_descriptors,
      maxEntries: rl.max_entries,
      timeoutMs: rl.timeout_ms,
      reload: { enabled: rl.reload.enabled, pollIntervalMs: rl.reload.poll_interval_ms },
      metrics: { maxKeys: rl.metrics.max_keys },
    },
  });
}

export async function loadPortcullisConfig(file: string): Promise<PortcullisConfig> {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = await readFile(absolute, 'utf8');
  } catch (error) {
    throw new ConfigError([{ file: absolute, line: undefined, path: '', message: `cannot read config file: ${(error as Error).message}` }]);
  }
  return parsePortcullisConfig(text, absolute);
}

/** The config as shown on /config: secrets in Redis URLs replaced. */
export function redactedConfig(config: PortcullisConfig): unknown {
  // Up to the last @ before the host: passwords may contain @ themselves.
  const redact = (url: string): string => url.replace(/\/\/[^/]*@/, '//***@');
  return {
    ...config,
    redis: config.redis && {
      ...config.redis,
      url: config.redis.url && redact(config.redis.url),
      cluster: config.redis.cluster?.map(redact),
    },
  };
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
