import path from 'node:path';
import { authzField, authzFiles, compileAuthz, type AuthzSettings } from '../authz/config.js';
import { compileExtproc, extprocInputs, extprocSchema, type ExtprocSettings, type HeaderRules } from '../extproc/config.js';
import { bffSection, type BffConfig } from '../bff/config.js';
import type { RateLimitSettings } from '../ratelimit/service.js';
import { MAX_CONFIG_FILE_BYTES, MAX_REFERENCED_FILE_BYTES, readConfigFile, readNamedFileSync } from './config-text.js';
import { checkWorkers, workersField, type WorkersSetting } from '../server/workers-config.js';
import { compileGrpcAddress, grpcAddressField, hostPortProblem } from '../server/grpc-address.js';
import { grpcTransportFields, grpcTransportLimits, type GrpcTransportLimits } from '../server/grpc-transport.js';
import { compileGrpcTls, grpcTlsField, grpcTlsFiles, type GrpcTlsSettings, type TlsFileReader } from '../server/grpc-tls-config.js';
import { readTlsFilesSync } from '../server/grpc-tls-material.js';
import { redactUrlCredentials } from '../shared/redact.js';
import { compileRedis, readRedisTlsFile, redactRedisSettings, redisConfigured, redisField, type RedisSettings, type RedisTlsFileReader } from '../store/redis-config.js';
import { ConfigError, IssueCollector } from './errors.js';
import { runOffThread } from './off-thread.js';
import { boolean, number, object, oneOf, string } from './schema.js';
import { mapGet, parseYaml } from './yaml.js';

/** portcullis.yaml, parsed once, validated, frozen. Paths are absolute. */
export interface PortcullisConfig {
  readonly file: string;
  readonly server: {
    /**
     * The gRPC listener and the per-connection bounds of its HTTP/2 transport (src/server/grpc-server.ts). The address
     * is host:port or `unix:` and an absolute socket path (src/server/grpc-address.ts); tls: undefined is plaintext
     * (src/server/grpc-tls-config.ts).
     */
    readonly grpc: { readonly address: string; readonly tls: GrpcTlsSettings | undefined } & GrpcTransportLimits;
    readonly admin: { readonly address: string };
    /** The composer's HTTP listener (bff endpoints); undefined: off. */
    readonly http: { readonly address: string } | undefined;
    /** How long SIGTERM waits for in-flight calls before closing connections. */
    readonly shutdownTimeoutMs: number;
    /** Worker processes serving the gRPC port (src/server/supervisor.ts); 1 = this process serves it. */
    readonly workers: WorkersSetting;
  };
  /** undefined: the in-memory store (one instance only). */
  readonly redis: RedisSettings | undefined;
  /** The in-memory store (used when no Redis is configured). */
  readonly memory: { readonly maxKeys: number };
  readonly log: { readonly level: string };
  readonly ratelimit: RateLimitSettings & {
    readonly descriptors: string;
    /** Budgets for loading the descriptor files (off the serving thread: see loadDescriptorConfig). */
    readonly descriptorsMaxBytes: number;
    readonly descriptorsLoadTimeoutMs: number;
    /** Default deadline when Envoy sends none (its filter timeout is usually shorter). */
    readonly timeoutMs: number;
    readonly reload: { readonly enabled: boolean; readonly pollIntervalMs: number; readonly settleMs: number };
    readonly metrics: { readonly maxKeys: number };
  };
  /** undefined without an `authz:` section: every Check is denied. */
  readonly authz: AuthzSettings | undefined;
  /** ext_proc: ids, header rules, validation, response cache (src/extproc/config.ts). */
  readonly extproc: ExtprocSettings;
  readonly bff: BffConfig;
}

const address = (fallback: string) => string(fallback, hostPortProblem);
const schema = object({
  server: object({
    grpc: object({ address: grpcAddressField, ...grpcTransportFields, tls: grpcTlsField }),
    admin: object({ address: address('127.0.0.1:9192') }),
    http: object({ address: address('') }),
    shutdown_timeout_ms: number(10000, { min: 0, max: 600_000, integer: true }),
    workers: workersField,
  }),
  // A Redis URL holds the password, and one that is not a URL cannot be told from a bare password.
  redis: redisField,
  memory: object({ max_keys: number(500_000, { min: 1, max: 100_000_000, integer: true }) }),
  log: object({ level: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info') }),
  ratelimit: object({
    descriptors: string('./ratelimit'),
    descriptors_max_bytes: number(16 << 20, { min: 1, max: 1 << 30, integer: true }),
    descriptors_load_timeout_ms: number(30_000, { min: 100, max: 600_000, integer: true }),
    shadow_mode: boolean(false),
    quota_mode: boolean(false),
    response_headers: object({
      enabled: boolean(false),
      limit_header: string('RateLimit-Limit'),
      remaining_header: string('RateLimit-Remaining'),
      reset_header: string('RateLimit-Reset'),
    }),
    local_cache: object({ enabled: boolean(false), max_entries: number(100000, { min: 1, max: 100_000_000, integer: true }) }),
    stop_increment_when_over_limit: boolean(false),
    near_limit_ratio: number(0.8, { min: 0, max: 1 }),
    failure_mode: oneOf(['error', 'allow', 'deny'] as const, 'error'),
    response_dynamic_metadata: boolean(false),
    cache_key_prefix: string(''),
    expiration_jitter_max_seconds: number(300, { min: 0, max: 86_400, integer: true }),
    timeout_ms: number(1000, { min: 1, max: 60_000, integer: true }),
    max_descriptors: number(256, { min: 1, max: 65_536, integer: true }),
    max_entries: number(64, { min: 1, max: 65_536, integer: true }),
    max_entry_bytes: number(4096, { min: 1, max: 1 << 20, integer: true }),
    reload: object({ enabled: boolean(true), poll_interval_ms: number(1000, { min: 50, max: 3_600_000, integer: true }), settle_ms: number(100, { min: 0, max: 10_000, integer: true }) }),
    metrics: object({ max_keys: number(10000, { min: 0, max: 10_000_000, integer: true }) }),
  }),
  authz: authzField,
  extproc: extprocSchema,
  bff: bffSection,
});

/**
 * The JSON Schema files extproc routes name, read from disk as every file the config names is (readConfigFileSync);
 * compileExtproc reports a failure at the route that names the file.
 */
export const readSchemaFile = (file: string): string => readNamedFileSync(file, MAX_REFERENCED_FILE_BYTES);

/** What parsing portcullis.yaml reads besides its text: the files it names. */
export interface ConfigFileReaders {
  /** The JSON Schema files the text names (compiled here). Default: from disk. */
  readonly schema?: (file: string) => string;
  /**
   * The gRPC listener's certificate files, to check them (start-up and `portcullis validate`: loadPortcullisConfig).
   * Absent: left to the listener (a reload: see compileGrpcTls).
   */
  readonly grpcTls?: TlsFileReader;
  /**
   * The PEM files redis.tls names, checked here and kept in the config: the Redis clients are made from it. Default:
   * from disk; null: not read (the check of the text alone, off the serving thread).
   */
  readonly redisTls?: RedisTlsFileReader | null;
}

/** Parses portcullis.yaml text; throws ConfigError listing every problem. */
export function parsePortcullisConfig(text: string, file: string, readers: ConfigFileReaders = {}): PortcullisConfig {
  const { schema: readSchema = readSchemaFile, grpcTls: readTls, redisTls: readRedisTls = readRedisTlsFile } = readers;
  const issues = new IssueCollector(path.basename(file));
  const parsed = parseYaml(text, { singleDocument: true });
  if (!parsed.ok) {
    for (const problem of parsed.problems) issues.add(problem.line, problem.path, `invalid YAML: ${problem.message}`);
    throw new ConfigError(issues.issues);
  }
  const raw = schema(parsed.root, '', issues, 1);
  const redisKey = parsed.root?.kind === 'map' ? parsed.root.entries.find((e) => e.key.kind === 'scalar' && e.key.value === 'redis') : undefined;
  const redis = compileRedis(raw.redis, redisKey?.key.line, issues, { dir: path.dirname(file), read: readRedisTls });
  checkWorkers(raw.server.workers, redisConfigured(raw.redis), issues);
  const grpcAddress = compileGrpcAddress(raw.server.grpc.address, path.dirname(file), issues);
  const grpcTls = compileGrpcTls(raw.server.grpc.tls, grpcAddress, path.dirname(file), issues, readTls);
  const authz = compileAuthz(raw.authz, file, issues);
  const extproc = compileExtproc(raw.extproc, parsed.root?.kind === 'map' ? mapGet(parsed.root, 'extproc') : undefined, path.dirname(file), issues, readSchema);
  if (issues.issues.length > 0) throw new ConfigError(issues.issues);

  const rl = raw.ratelimit;
  return deepFreeze({
    file,
    server: { grpc: { address: grpcAddress, tls: grpcTls, ...grpcTransportLimits(raw.server.grpc) }, admin: raw.server.admin, http: raw.server.http.address ? raw.server.http : undefined, shutdownTimeoutMs: raw.server.shutdown_timeout_ms, workers: raw.server.workers.value },
    redis,
    memory: { maxKeys: raw.memory.max_keys },
    log: raw.log,
    ratelimit: {
      descriptors: path.resolve(path.dirname(file), rl.descriptors),
      descriptorsMaxBytes: rl.descriptors_max_bytes,
      descriptorsLoadTimeoutMs: rl.descriptors_load_timeout_ms,
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
      maxEntryBytes: rl.max_entry_bytes,
      timeoutMs: rl.timeout_ms,
      reload: { enabled: rl.reload.enabled, pollIntervalMs: rl.reload.poll_interval_ms, settleMs: rl.reload.settle_ms },
      metrics: { maxKeys: rl.metrics.max_keys },
    },
    authz,
    extproc,
    bff: raw.bff,
  });
}

/**
 * Parses `text` as portcullis.yaml in a worker thread within `timeoutMs`, and throws its ConfigError there: a broken
 * or hostile file (a megabyte of unknown keys, of list items) is refused at no cost to the serving thread, which
 * parses only what passed (a config does not cross threads: it holds compiled schemas and templates). The check is
 * of the text alone, so its outcome is a function of the text: the JSON Schema files it names are read, and their
 * problems found, when the serving thread parses it.
 */
export async function checkPortcullisConfigOffThread(text: string, file: string, timeoutMs: number): Promise<void> {
  await runOffThread<boolean>(new URL(import.meta.url), 'checkPortcullisConfig', { text, file }, {
    timeoutMs, what: path.basename(file), setting: 'the config file load budget',
  });
}

/** The worker side of checkPortcullisConfigOffThread: every JSON Schema file reads as `{}`, redis.tls's are not read. */
export function checkPortcullisConfig(input: { text: string; file: string }): boolean {
  parsePortcullisConfig(input.text, input.file, { schema: () => '{}', redisTls: null });
  return true;
}

/**
 * Settings read once at start-up (listeners and clients opened, bounds fixed as their structures are built). A reload
 * applies everything else; these are the ones that changed from `running` to `next` and wait for a restart.
 */
export function restartOnlyChanges(running: PortcullisConfig, next: PortcullisConfig): string[] {
  const settings: [string, (c: PortcullisConfig) => unknown][] = [
    ['server', (c) => c.server],
    ['redis', (c) => c.redis],
    ['memory.max_keys', (c) => c.memory.maxKeys],
    ['log.level', (c) => c.log.level],
    ['ratelimit.reload', (c) => c.ratelimit.reload],
    ['ratelimit.local_cache.max_entries', (c) => c.ratelimit.localCache.maxEntries],
    ['ratelimit.metrics.max_keys', (c) => c.ratelimit.metrics.maxKeys],
    ['extproc.max_message_bytes', (c) => c.extproc.maxMessageBytes],
    // The response cache store is built once (src/cli/main.ts createCacheStore) with these two.
    ['extproc.cache.key_prefix', (c) => c.extproc.cache.keyPrefix],
    ['extproc.cache.max_memory_bytes', (c) => c.extproc.cache.maxMemoryBytes],
    ['authz.revocation.refresh_ms', (c) => c.authz?.revocation.refreshMs],
    ['authz.revocation.max_staleness_ms', (c) => c.authz?.revocation.maxStalenessMs],
  ];
  return settings.filter(([, read]) => JSON.stringify(read(running)) !== JSON.stringify(read(next))).map(([name]) => name);
}

/**
 * Every file and directory a running config was built from: what hot reload watches. The gRPC listener's certificate
 * files too: a reload re-reads them (ServerTlsIdentity.refresh), so a rotation is served without a restart.
 */
export function watchedPaths(config: PortcullisConfig): string[] {
  return [config.file, config.ratelimit.descriptors, ...authzFiles(config.authz), ...extprocInputs(config.extproc), ...grpcTlsFiles(config.server.grpc.tls)];
}

/** Reads and parses portcullis.yaml, and checks the files it names that only start-up reads (the listener's TLS). */
export async function loadPortcullisConfig(file: string): Promise<PortcullisConfig> {
  const absolute = path.resolve(file);
  return parsePortcullisConfig(await readPortcullisConfigText(absolute), absolute, { grpcTls: readTlsFilesSync });
}

/** The text of portcullis.yaml: a regular file of at most MAX_CONFIG_FILE_BYTES, valid UTF-8; ConfigError otherwise. */
export async function readPortcullisConfigText(file: string): Promise<string> {
  const text = await readConfigFile({ file, setting: '', what: 'config file', maxBytes: MAX_CONFIG_FILE_BYTES });
  // What a reload reads while an editor rewrites the file in place: every default (no authz: every Check denied)
  // would be swapped in for a moment. A file of defaults says so: `{}`.
  if (text.trim() === '') throw new ConfigError([{ file, line: 1, path: '', message: 'config file is empty (write {} for every default)' }]);
  return text;
}

/**
 * The config as shown on /config. Every URL's credentials are hidden (Redis URLs, and the introspection, JWKS and
 * discovery URLs of authz, which may carry user info or an access token), and so are redis.sentinel.password and the
 * literal text of every ext_proc header rule: a rule may add a credential for the upstreams under any header name
 * (`x-upstream-creds`), so only its placeholders are shown (`Bearer {token}` is `***{token}`). redis.tls's files are
 * shown by their paths, never their text (one is the client's private key).
 */
export function redactedConfig(config: PortcullisConfig): unknown {
  return redactStrings({
    ...config,
    redis: config.redis === undefined ? undefined : redactRedisSettings(config.redis),
    extproc: {
      ...config.extproc,
      routes: config.extproc.routes.map((route) => ({
        ...route,
        requestHeaders: redactHeaderRules(route.requestHeaders),
        responseHeaders: redactHeaderRules(route.responseHeaders),
      })),
    },
  });
}

function redactHeaderRules(rules: HeaderRules): unknown {
  const shown = (pairs: HeaderRules['set']): unknown[] => pairs.map(([name, template]) => [name, placeholdersOnly(template.source)]);
  return { set: shown(rules.set), append: shown(rules.append), remove: rules.remove };
}

/** A template with each run of literal text replaced by `***`: what it reads, never what it adds. */
function placeholdersOnly(source: string): string {
  return source.split(/(\{[a-z_][a-z0-9_]*\})/).map((part, i) => (i % 2 === 1 ? part : part === '' ? '' : '***')).join('');
}

/** Plain objects and arrays copied with every string's URL credentials hidden; anything else as it is. */
function redactStrings(value: unknown): unknown {
  if (typeof value === 'string') return redactUrlCredentials(value);
  if (Array.isArray(value)) return value.map(redactStrings);
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactStrings(v)]));
  }
  return value;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
