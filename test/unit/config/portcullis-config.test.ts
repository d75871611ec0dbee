import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, type ConfigIssue } from '../../../src/config/errors.js';
import { checkPortcullisConfigOffThread, loadPortcullisConfig, parsePortcullisConfig, redactedConfig, restartOnlyChanges, type PortcullisConfig } from '../../../src/config/portcullis-config.js';
import { DEFAULT_GRPC_TRANSPORT_LIMITS } from '../../../src/server/grpc-transport.js';
import { ErrorCode } from '../../../src/shared/errors.js';

const REPO_ROOT = ((): string => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return dir;
})();
const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'portcullis');
const FILE = '/etc/portcullis/portcullis.yaml';

function parseError(text: string, file = FILE): ConfigError {
  try {
    parsePortcullisConfig(text, file);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(error.code, ErrorCode.CONFIG_INVALID);
    return error;
  }
  assert.fail(`expected a ConfigError for:\n${text}`);
}

function deepFrozen(value: unknown, at = 'config'): void {
  if (value === null || typeof value !== 'object') return;
  assert.ok(Object.isFrozen(value), `${at} is not frozen`);
  for (const [k, v] of Object.entries(value)) deepFrozen(v, `${at}.${k}`);
}

const DEFAULT_RATELIMIT = {
  descriptors: '/etc/portcullis/ratelimit',
  shadowMode: false,
  quotaMode: false,
  nearLimitRatio: 0.8,
  responseHeaders: { enabled: false, limit: 'RateLimit-Limit', remaining: 'RateLimit-Remaining', reset: 'RateLimit-Reset' },
  localCache: { enabled: false, maxEntries: 100000 },
  stopIncrementWhenOverLimit: false,
  cacheKeyPrefix: '',
  expirationJitterMaxSeconds: 300,
  failureMode: 'error',
  responseDynamicMetadata: false,
  maxDescriptors: 256,
  maxEntries: 64,
  maxEntryBytes: 4096,
  descriptorsMaxBytes: 16 << 20,
  descriptorsLoadTimeoutMs: 30_000,
  timeoutMs: 1000,
  reload: { enabled: true, pollIntervalMs: 1000, settleMs: 100 },
  metrics: { maxKeys: 10000 },
};

export const DEFAULT_EXTPROC = {
  requestId: { header: 'x-request-id', echo: 'portcullis' as const },
  tracing: { mirror: { traceId: undefined, spanId: undefined } },
  cache: { maxEntryBytes: 1048576, maxMemoryBytes: 67108864, timeoutMs: 50, keyPrefix: 'portcullis:cache:', refreshLockMs: 5000 },
  maxMessageBytes: 67108864,
  routes: [],
};
const EMPTY_BFF: PortcullisConfig['bff'] = { services: new Map(), endpoints: [], degradedHeader: 'x-bff-degraded', maxResponseBytes: 1048576 };

const DEFAULTS: PortcullisConfig = {
  file: FILE,
  server: { grpc: { address: '127.0.0.1:9191', tls: undefined, ...DEFAULT_GRPC_TRANSPORT_LIMITS }, admin: { address: '127.0.0.1:9192' }, http: undefined, shutdownTimeoutMs: 10000, workers: 1 },
  redis: undefined,
  memory: { maxKeys: 500_000 },
  log: { level: 'info' },
  ratelimit: DEFAULT_RATELIMIT as PortcullisConfig['ratelimit'],
  authz: undefined,
  extproc: DEFAULT_EXTPROC,
  bff: EMPTY_BFF,
};

describe('portcullis.yaml: valid files', () => {
  it('reads every key into a frozen, typed config with the descriptors path resolved', async () => {
    const file = path.join(FIXTURES, 'full.yaml');
    const config = await loadPortcullisConfig(file);
    assert.deepEqual(config, {
      file,
      server: {
        grpc: { address: '0.0.0.0:8081', tls: undefined, maxConcurrentStreams: 2048, maxSessionMemoryMb: 64, keepaliveTimeMs: 30000, keepaliveTimeoutMs: 10000 },
        admin: { address: '127.0.0.1:6070' }, http: undefined, shutdownTimeoutMs: 5000, workers: 2,
      },
      redis: { url: 'redis://:secret@redis.internal:6379/2', cluster: undefined, sentinel: undefined, tls: undefined, connectTimeoutMs: 500 },
      memory: { maxKeys: 500_000 },
      authz: undefined,
      log: { level: 'debug' },
      ratelimit: {
        descriptors: path.join(FIXTURES, 'limits'),
        descriptorsMaxBytes: 16 << 20,
        descriptorsLoadTimeoutMs: 30_000,
        shadowMode: true,
        quotaMode: true,
        nearLimitRatio: 0.9,
        responseHeaders: { enabled: true, limit: 'X-Limit', remaining: 'X-Remaining', reset: 'X-Reset' },
        localCache: { enabled: true, maxEntries: 5000 },
        stopIncrementWhenOverLimit: true,
        cacheKeyPrefix: 'rl:',
        expirationJitterMaxSeconds: 60,
        failureMode: 'allow',
        responseDynamicMetadata: true,
        maxDescriptors: 16,
        maxEntries: 8,
        maxEntryBytes: 4096,
        timeoutMs: 250,
        reload: { enabled: false, pollIntervalMs: 2000, settleMs: 100 },
        metrics: { maxKeys: 500 },
      },
      extproc: DEFAULT_EXTPROC,
      bff: EMPTY_BFF,
    });
    deepFrozen(config);
    assert.throws(() => {
      (config.ratelimit as { shadowMode: boolean }).shadowMode = false;
    }, TypeError);
  });

  it('resolves a relative path of the file itself', async () => {
    const relative = path.relative(process.cwd(), path.join(FIXTURES, 'full.yaml'));
    const config = await loadPortcullisConfig(relative);
    assert.equal(config.file, path.join(FIXTURES, 'full.yaml'));
    assert.equal(config.ratelimit.descriptors, path.join(FIXTURES, 'limits'));
  });

  const defaultCases: { name: string; text: string }[] = [
    { name: 'an empty file', text: '' },
    { name: 'only comments', text: '# nothing here\n' },
    { name: 'empty sections', text: 'server:\nredis:\nlog:\nratelimit:\n' },
    { name: 'empty nested sections', text: 'server:\n  grpc: {}\n  admin:\nratelimit:\n  response_headers: {}\n  local_cache:\n  reload: {}\n  metrics:\n' },
  ];
  for (const c of defaultCases) {
    it(`uses every default for ${c.name}`, () => {
      const config = parsePortcullisConfig(c.text, FILE);
      assert.deepEqual(config, DEFAULTS);
      deepFrozen(config);
    });
  }

  it('keeps an absolute descriptors path', () => {
    const config = parsePortcullisConfig('ratelimit:\n  descriptors: /srv/limits\n', FILE);
    assert.equal(config.ratelimit.descriptors, '/srv/limits');
  });

  it('resolves the descriptors path against the directory of the file', () => {
    const config = parsePortcullisConfig('ratelimit:\n  descriptors: ../shared/limits\n', '/etc/portcullis/conf/portcullis.yaml');
    assert.equal(config.ratelimit.descriptors, '/etc/portcullis/shared/limits');
  });

  it('reads server.workers as a count or auto when Redis is configured', () => {
    assert.equal(parsePortcullisConfig('server:\n  workers: 3\nredis: { url: "redis://r:1" }\n', FILE).server.workers, 3);
    assert.equal(parsePortcullisConfig('server:\n  workers: auto\nredis: { cluster: ["redis://r:1"] }\n', FILE).server.workers, 'auto');
    assert.equal(parsePortcullisConfig('server:\n  workers: 1\n', FILE).server.workers, 1);
  });

  it('reads a Redis cluster', () => {
    const config = parsePortcullisConfig('redis:\n  cluster:\n    - redis://a:7000\n    - redis://b:7001\n', FILE);
    assert.deepEqual(config.redis, { url: undefined, cluster: ['redis://a:7000', 'redis://b:7001'], sentinel: undefined, tls: undefined, connectTimeoutMs: 2000 });
  });

  it('reports a cluster seed that is not a URL once, not also as another scheme', () => {
    const error = parseError('redis:\n  cluster: [b:2, rediss://a:1, rediss://c:3]\n');
    assert.deepEqual(error.issues.map((i) => i.path), ['redis.cluster[0]']);
  });

  const sentinels: { name: string; text: string; sentinel: unknown }[] = [
    {
      name: 'the master name and the sentinels',
      text: 'redis:\n  sentinel:\n    master: mymaster\n    nodes: [redis://s1:26379, redis://s2:26380]\n',
      sentinel: { master: 'mymaster', nodes: ['redis://s1:26379', 'redis://s2:26380'], username: undefined, password: undefined },
    },
    {
      name: "the master's credentials and the sentinels' (on one node, or the same on several)",
      text: 'redis:\n  sentinel:\n    master: m\n    nodes: [redis://:sp@s1:26379, redis://s2:26379, redis://:sp@s3:26379]\n    username: app\n    password: mp\n',
      sentinel: { master: 'm', nodes: ['redis://:sp@s1:26379', 'redis://s2:26379', 'redis://:sp@s3:26379'], username: 'app', password: 'mp' },
    },
    {
      name: 'TLS sentinels',
      text: 'redis:\n  sentinel:\n    master: m\n    nodes: [rediss://s1:26379, rediss://s2:26379]\n',
      sentinel: { master: 'm', nodes: ['rediss://s1:26379', 'rediss://s2:26379'], username: undefined, password: undefined },
    },
  ];
  for (const c of sentinels) {
    it(`reads a Redis Sentinel setup: ${c.name}`, () => {
      const config = parsePortcullisConfig(c.text, FILE);
      assert.deepEqual(config.redis, { url: undefined, cluster: undefined, sentinel: c.sentinel, tls: undefined, connectTimeoutMs: 2000 });
      assert.ok(Object.isFrozen(config.redis?.sentinel) && Object.isFrozen(config.redis?.sentinel?.nodes));
    });
  }

  it('lets server.workers > 1 use a Redis Sentinel setup', () => {
    assert.equal(parsePortcullisConfig('server:\n  workers: 2\nredis: { sentinel: { master: m, nodes: ["redis://s:26379"] } }\n', FILE).server.workers, 2);
  });

  it('reads a Redis cluster reached over TLS', () => {
    const config = parsePortcullisConfig('redis:\n  cluster:\n    - rediss://:pw@a:7000\n    - rediss://b:7001\n', FILE);
    assert.deepEqual(config.redis?.cluster, ['rediss://:pw@a:7000', 'rediss://b:7001']);
  });

  const addresses = ['0.0.0.0:0', 'localhost:65535', '[::1]:9191', 'portcullis.svc.cluster.local:8081'];
  for (const address of addresses) {
    it(`accepts the address ${address}`, () => {
      assert.equal(parsePortcullisConfig(`server:\n  grpc:\n    address: "${address}"\n`, FILE).server.grpc.address, address);
    });
  }

  // FILE is /etc/portcullis/portcullis.yaml: a relative socket path lands next to it, as every other path does.
  const sockets: [string, string][] = [
    ['unix:/run/portcullis/grpc.sock', 'unix:/run/portcullis/grpc.sock'],
    ['unix:///run/portcullis/grpc.sock', 'unix:/run/portcullis/grpc.sock'],
    ['unix:grpc.sock', 'unix:/etc/portcullis/grpc.sock'],
    ['unix:../run/grpc.sock', 'unix:/etc/run/grpc.sock'],
  ];
  for (const [address, resolved] of sockets) {
    it(`accepts the Unix socket address ${address} as ${resolved}`, () => {
      assert.equal(parsePortcullisConfig(`server:\n  grpc:\n    address: "${address}"\n`, FILE).server.grpc.address, resolved);
    });
  }

  it('lets server.workers > 1 serve a Unix socket (the supervisor binds it)', () => {
    const config = parsePortcullisConfig('server:\n  grpc: { address: "unix:/run/p.sock" }\n  workers: 2\nredis: { url: "redis://a:1" }\n', FILE);
    assert.equal(config.server.grpc.address, 'unix:/run/p.sock');
    assert.equal(config.server.workers, 2);
  });

  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  for (const level of levels) {
    it(`accepts log level ${level}`, () => {
      assert.equal(parsePortcullisConfig(`log:\n  level: ${level}\n`, FILE).log.level, level);
    });
  }
});

interface BadCase {
  readonly name: string;
  readonly text: string;
  readonly line: number;
  readonly path: string;
  readonly message: string;
}

const UNKNOWN_KEYS: readonly BadCase[] = [
  { name: 'top level', text: 'server: {}\nbogus: 1\n', line: 2, path: 'bogus', message: "unknown key 'bogus' (expected one of: server, redis, memory, log, ratelimit, authz, extproc, bff)" },
  { name: 'server', text: 'server:\n  port: 80\n', line: 2, path: 'server.port', message: "unknown key 'port' (expected one of: grpc, admin, http, shutdown_timeout_ms, workers)" },
  // Names every object inherits are unknown keys like any other.
  { name: 'top level constructor', text: 'constructor: 5\n', line: 1, path: 'constructor', message: "unknown key 'constructor' (expected one of: server, redis, memory, log, ratelimit, authz, extproc, bff)" },
  { name: 'server toString', text: 'server:\n  toString: 1\n', line: 2, path: 'server.toString', message: "unknown key 'toString' (expected one of: grpc, admin, http, shutdown_timeout_ms, workers)" },
  { name: 'top level __proto__', text: '__proto__: {}\n', line: 1, path: '__proto__', message: "unknown key '__proto__' (expected one of: server, redis, memory, log, ratelimit, authz, extproc, bff)" },
  { name: 'ratelimit hasOwnProperty', text: 'ratelimit:\n  hasOwnProperty: 1\n', line: 2, path: 'ratelimit.hasOwnProperty', message: "unknown key 'hasOwnProperty'" },
  { name: 'server.grpc', text: 'server:\n  grpc:\n    address: a:1\n    tls_cert: x\n', line: 4, path: 'server.grpc.tls_cert', message: "unknown key 'tls_cert' (expected one of: address, max_concurrent_streams, max_session_memory_mb, keepalive_time_ms, keepalive_timeout_ms, tls)" },
  { name: 'server.admin', text: 'server:\n  admin:\n    host: x\n', line: 3, path: 'server.admin.host', message: "unknown key 'host' (expected one of: address)" },
  { name: 'redis', text: 'redis:\n  password: x\n', line: 2, path: 'redis.password', message: 'unknown key (expected one of: url, cluster, sentinel, tls, connect_timeout_ms)' },
  { name: 'log', text: 'log:\n  format: json\n', line: 2, path: 'log.format', message: "unknown key 'format' (expected one of: level)" },
  { name: 'ratelimit', text: 'ratelimit:\n  shadowmode: true\n', line: 2, path: 'ratelimit.shadowmode', message: "unknown key 'shadowmode'" },
  {
    name: 'ratelimit.response_headers', text: 'ratelimit:\n  response_headers:\n    enabled: true\n    policy_header: X\n', line: 4,
    path: 'ratelimit.response_headers.policy_header', message: "unknown key 'policy_header' (expected one of: enabled, limit_header, remaining_header, reset_header)",
  },
  { name: 'ratelimit.local_cache', text: 'ratelimit:\n  local_cache:\n    size: 10\n', line: 3, path: 'ratelimit.local_cache.size', message: "unknown key 'size' (expected one of: enabled, max_entries)" },
  { name: 'ratelimit.reload', text: 'ratelimit:\n  reload:\n    watch: true\n', line: 3, path: 'ratelimit.reload.watch', message: "unknown key 'watch' (expected one of: enabled, poll_interval_ms, settle_ms)" },
  { name: 'ratelimit.metrics', text: 'ratelimit:\n  metrics:\n    prefix: x\n', line: 3, path: 'ratelimit.metrics.prefix', message: "unknown key 'prefix' (expected one of: max_keys)" },
];

const WRONG_TYPES: readonly BadCase[] = [
  { name: 'a section that is a list', text: 'server: [1, 2]\n', line: 1, path: 'server', message: 'expected a mapping, got a list' },
  { name: 'a section that is a scalar', text: 'ratelimit: true\n', line: 1, path: 'ratelimit', message: 'expected a mapping, got true' },
  { name: 'a number for a string', text: 'server:\n  grpc:\n    address: 8081\n', line: 3, path: 'server.grpc.address', message: 'expected a string, got 8081' },
  { name: 'a string for an integer', text: 'server:\n  shutdown_timeout_ms: 10s\n', line: 2, path: 'server.shutdown_timeout_ms', message: "expected an integer, got '10s'" },
  { name: 'a float for an integer', text: 'ratelimit:\n  max_entries: 1.5\n', line: 2, path: 'ratelimit.max_entries', message: 'expected an integer, got 1.5' },
  { name: '1.0 is not an integer', text: 'ratelimit:\n  timeout_ms: 1.0\n', line: 2, path: 'ratelimit.timeout_ms', message: 'expected an integer, got 1' },
  { name: 'a quoted boolean', text: "ratelimit:\n  shadow_mode: 'true'\n", line: 2, path: 'ratelimit.shadow_mode', message: "expected true or false, got 'true'" },
  { name: 'a number for a boolean', text: 'ratelimit:\n  local_cache:\n    enabled: 1\n', line: 3, path: 'ratelimit.local_cache.enabled', message: 'expected true or false, got 1' },
  { name: 'a string for a number', text: 'ratelimit:\n  near_limit_ratio: high\n', line: 2, path: 'ratelimit.near_limit_ratio', message: "expected a number, got 'high'" },
  { name: 'a scalar for a list', text: 'redis:\n  cluster: redis://a:1\n', line: 2, path: 'redis.cluster', message: "expected a list, got 'redis://a:1'" },
  { name: 'a mapping for a string', text: 'ratelimit:\n  descriptors: {path: x}\n', line: 2, path: 'ratelimit.descriptors', message: 'expected a string, got a mapping' },
  { name: 'a ratio above 1', text: 'ratelimit:\n  near_limit_ratio: 1.5\n', line: 2, path: 'ratelimit.near_limit_ratio', message: 'must be between 0 and 1, got 1.5' },
  { name: 'a negative ratio', text: 'ratelimit:\n  near_limit_ratio: -0.1\n', line: 2, path: 'ratelimit.near_limit_ratio', message: 'must be between 0 and 1, got -0.1' },
  { name: 'a zero timeout', text: 'ratelimit:\n  timeout_ms: 0\n', line: 2, path: 'ratelimit.timeout_ms', message: 'must be between 1 and 60000, got 0' },
  { name: 'a poll interval below 50 ms', text: 'ratelimit:\n  reload:\n    poll_interval_ms: 10\n', line: 3, path: 'ratelimit.reload.poll_interval_ms', message: 'must be between 50 and 3600000, got 10' },
  { name: 'a negative jitter', text: 'ratelimit:\n  expiration_jitter_max_seconds: -1\n', line: 2, path: 'ratelimit.expiration_jitter_max_seconds', message: 'must be between 0 and 86400, got -1' },
  { name: 'no concurrent streams', text: 'server:\n  grpc:\n    max_concurrent_streams: 0\n', line: 3, path: 'server.grpc.max_concurrent_streams', message: 'must be between 1 and 2147483647, got 0' },
  { name: 'a session memory cap in bytes', text: 'server:\n  grpc:\n    max_session_memory_mb: 33554432\n', line: 3, path: 'server.grpc.max_session_memory_mb', message: 'must be between 1 and 65536, got 33554432' },
  { name: 'a keepalive in seconds', text: 'server:\n  grpc: { keepalive_time_ms: 60 }\n', line: 2, path: 'server.grpc.keepalive_time_ms', message: 'must be between 1000 and 2147483647, got 60' },
  { name: 'a keepalive timeout as a string', text: 'server:\n  grpc:\n    keepalive_timeout_ms: 20s\n', line: 3, path: 'server.grpc.keepalive_timeout_ms', message: "expected an integer, got '20s'" },
  { name: 'a shutdown timeout past any sane bound', text: 'server:\n  shutdown_timeout_ms: 99999999999999999999999\n', line: 2, path: 'server.shutdown_timeout_ms', message: 'must be between 0 and 600000, got 99999999999999999999999' },
  { name: 'a store timeout that would overflow Node timers', text: 'ratelimit:\n  timeout_ms: 3000000000\n', line: 2, path: 'ratelimit.timeout_ms', message: 'must be between 1 and 60000, got 3000000000' },
  { name: 'an infinite number', text: 'ratelimit:\n  near_limit_ratio: .inf\n', line: 2, path: 'ratelimit.near_limit_ratio', message: 'expected a number, got Infinity' },
  { name: 'a memory store bound of 0', text: 'memory:\n  max_keys: 0\n', line: 2, path: 'memory.max_keys', message: 'must be between 1 and 100000000, got 0' },
  { name: 'zero max_descriptors', text: 'ratelimit:\n  max_descriptors: 0\n', line: 2, path: 'ratelimit.max_descriptors', message: 'must be between 1 and 65536, got 0' },
];

const BAD_VALUES: readonly BadCase[] = [
  { name: 'log level', text: 'log:\n  level: loud\n', line: 2, path: 'log.level', message: "must be one of fatal, error, warn, info, debug, trace, silent, got 'loud'" },
  { name: 'log level is case-sensitive', text: 'log:\n  level: INFO\n', line: 2, path: 'log.level', message: "must be one of fatal, error, warn, info, debug, trace, silent, got 'INFO'" },
  { name: 'failure_mode', text: 'ratelimit:\n  failure_mode: maybe\n', line: 2, path: 'ratelimit.failure_mode', message: "must be one of error, allow, deny, got 'maybe'" },
  { name: 'address without a port', text: 'server:\n  grpc:\n    address: localhost\n', line: 3, path: 'server.grpc.address', message: "expected host:port or unix:/path/to/socket, got 'localhost'" },
  { name: 'admin address without a port', text: 'server:\n  admin:\n    address: localhost\n', line: 3, path: 'server.admin.address', message: "expected host:port, got 'localhost'" },
  // Only the gRPC listener takes a socket: the admin port is scraped and probed over the network.
  { name: 'admin address on a Unix socket', text: 'server:\n  admin:\n    address: unix:/run/admin.sock\n', line: 3, path: 'server.admin.address', message: "expected host:port, got 'unix:/run/admin.sock'" },
  { name: 'a Unix socket address with a host', text: 'server:\n  grpc:\n    address: unix://portcullis/run/grpc.sock\n', line: 3, path: 'server.grpc.address', message: 'a Unix socket address has no host: write unix:/absolute/path.sock' },
  { name: 'a Unix socket address without a path', text: 'server:\n  grpc:\n    address: "unix:"\n', line: 3, path: 'server.grpc.address', message: 'expected a socket path after unix:, got nothing' },
  { name: 'a Unix socket address naming a directory', text: 'server:\n  grpc:\n    address: unix:/run/portcullis/\n', line: 3, path: 'server.grpc.address', message: "expected a socket file, got a directory path '/run/portcullis/'" },
  { name: 'an abstract Unix socket', text: 'server:\n  grpc:\n    address: unix-abstract:portcullis\n', line: 3, path: 'server.grpc.address', message: 'abstract Unix sockets are not supported' },
  { name: 'a Unix socket path longer than sun_path', text: `server:\n  grpc:\n    address: unix:/run/${'d'.repeat(100)}/grpc.sock\n`, line: 3, path: 'server.grpc.address', message: `the socket path '/run/${'d'.repeat(100)}/grpc.sock' is 115 bytes; the kernel takes at most 107` },
  { name: 'a relative Unix socket path that resolves past sun_path', text: `server:\n  grpc:\n    address: unix:${'s'.repeat(90)}.sock\n`, line: 3, path: 'server.grpc.address', message: `the socket path '/etc/portcullis/${'s'.repeat(90)}.sock' is 111 bytes` },
  { name: 'a Unix socket address in a flow mapping', text: 'server:\n  workers: 1\n  grpc: { address: "unix:" }\n', line: 3, path: 'server.grpc.address', message: 'expected a socket path after unix:' },
  { name: 'address with a port over 65535', text: 'server:\n  admin:\n    address: "h:70000"\n', line: 3, path: 'server.admin.address', message: "expected host:port, got 'h:70000'" },
  { name: 'address with a named port', text: 'server:\n  grpc:\n    address: "h:http"\n', line: 3, path: 'server.grpc.address', message: "expected host:port or unix:/path/to/socket, got 'h:http'" },
  { name: 'address with a space', text: 'server:\n  grpc:\n    address: "my host:80"\n', line: 3, path: 'server.grpc.address', message: "expected host:port or unix:/path/to/socket, got 'my host:80'" },
  { name: 'redis url with another scheme', text: 'redis:\n  url: http://cache:6379\n', line: 2, path: 'redis.url', message: "expected a redis:// or rediss:// URL, got 'http://cache:6379'" },
  { name: 'redis cluster member with another scheme', text: 'redis:\n  cluster:\n    - redis://a:1\n    - b:2\n', line: 4, path: 'redis.cluster[1]', message: 'expected a redis:// or rediss:// URL, got (not shown)' },
  // ioredis would throw on it at start, printing it; the password is not shown here either.
  { name: 'redis url that does not parse', text: 'redis:\n  url: "redis://:WrongPass@[::1:40451"\n', line: 2, path: 'redis.url', message: "expected a redis:// or rediss:// URL, got 'redis://***@[::1:40451'" },
  // A password with an unencoded /, ? or # ends the authority early: the URL does not parse, and is still not shown.
  { name: 'redis url with a / in the password', text: 'redis:\n  url: "redis://:s3/cret@cache:6379/0"\n', line: 2, path: 'redis.url', message: "expected a redis:// or rediss:// URL, got 'redis://***@cache:6379/0'" },
  { name: 'redis url with a # in the password', text: 'redis:\n  url: "redis://:s3#cret@cache:6379/0"\n', line: 2, path: 'redis.url', message: "expected a redis:// or rediss:// URL, got 'redis://***@cache:6379/0'" },
  // Every config error hides URL credentials, whichever field quotes the URL.
  { name: 'a redis url written where the cluster list goes', text: 'redis:\n  cluster: "redis://:s3cret@a:7000"\n', line: 2, path: 'redis.cluster', message: "expected a list, got 'redis://***@a:7000'" },
  { name: 'an introspection url that does not parse', text: 'authz:\n  introspection: { url: "https://gw:s3cret@idp:99999/i", client_id: gw, client_secret_file: ./s }\n  policies: []\n', line: 2, path: 'authz.introspection.url', message: "expected an http(s) URL, got 'https://***@idp:99999/i'" },
  { name: 'workers zero', text: 'server:\n  workers: 0\nredis: { url: "redis://a:1" }\n', line: 2, path: 'server.workers', message: "expected an integer between 1 and 256 or 'auto', got 0" },
  { name: 'workers a word', text: 'server:\n  workers: many\n', line: 2, path: 'server.workers', message: "expected an integer between 1 and 256 or 'auto', got 'many'" },
  { name: 'workers a float', text: 'server:\n  workers: 1.5\n', line: 2, path: 'server.workers', message: "expected an integer between 1 and 256 or 'auto', got 1.5" },
  { name: 'workers over 1 with the memory store', text: 'server:\n  grpc: { address: "a:1" }\n  workers: 2\n', line: 3, path: 'server.workers', message: 'workers: 2 needs redis: worker processes cannot share the in-memory store' },
  { name: 'workers auto with the memory store', text: 'log: { level: info }\nserver: { workers: auto }\n', line: 2, path: 'server.workers', message: 'workers: auto needs redis' },
  // ioredis reaches every node of a cluster the same way: one TLS seed among plain ones would not make the others TLS.
  { name: 'cluster seeds that mix rediss:// and redis://', text: 'redis:\n  cluster:\n    - rediss://:s3cret@a:1\n    - rediss://b:2\n    - redis://:s3cret@c:3\n', line: 5, path: 'redis.cluster[2]', message: "a redis:// seed among rediss:// seeds ('redis://***@c:3'): every node of a cluster is reached over TLS or none is, so all seeds must be rediss:// or all redis://" },
  { name: 'cluster seeds that mix redis:// and rediss://', text: 'redis:\n  cluster: [redis://a:1, rediss://b:2]\n', line: 2, path: 'redis.cluster[1]', message: "a rediss:// seed among redis:// seeds ('rediss://b:2')" },
  { name: 'url and cluster both set', text: 'server: {}\nredis:\n  url: redis://a:1\n  cluster: [redis://b:2]\n', line: 2, path: 'redis', message: 'set one of url, cluster and sentinel, not url and cluster' },
  { name: 'url and sentinel both set', text: 'redis:\n  url: redis://a:1\n  sentinel: { master: m, nodes: [redis://s:26379] }\n', line: 1, path: 'redis', message: 'set one of url, cluster and sentinel, not url and sentinel' },
  { name: 'cluster and sentinel both set', text: 'redis:\n  cluster: [redis://b:2]\n  sentinel: { master: m, nodes: [redis://s:26379] }\n', line: 1, path: 'redis', message: 'set one of url, cluster and sentinel, not cluster and sentinel' },
  { name: 'sentinel without its master', text: 'redis:\n  sentinel:\n    nodes: [redis://s:26379]\n', line: 3, path: 'redis.sentinel.master', message: 'is required: the name the sentinels monitor the master under' },
  { name: 'sentinel with an empty master name', text: 'redis:\n  sentinel:\n    master: ""\n    nodes: [redis://s:26379]\n', line: 3, path: 'redis.sentinel.master', message: 'expected the name the sentinels monitor the master under, got (not shown)' },
  { name: 'sentinel without nodes', text: 'redis:\n  sentinel:\n    master: m\n', line: 3, path: 'redis.sentinel.nodes', message: 'is required: at least one sentinel' },
  { name: 'sentinel with no nodes', text: 'redis:\n  sentinel:\n    master: m\n    nodes: []\n', line: 4, path: 'redis.sentinel.nodes', message: 'is required: at least one sentinel' },
  { name: 'a sentinel node that is not a URL', text: 'redis:\n  sentinel:\n    master: m\n    nodes:\n      - redis://a:26379\n      - b:26379\n', line: 6, path: 'redis.sentinel.nodes[1]', message: 'expected a redis:// or rediss:// URL, got (not shown)' },
  { name: 'sentinel nodes that mix rediss:// and redis://', text: 'redis:\n  sentinel:\n    master: m\n    nodes: [rediss://a:1, redis://:s3cret@b:2]\n', line: 4, path: 'redis.sentinel.nodes[1]', message: "a redis:// sentinel among rediss:// sentinels ('redis://***@b:2'): the sentinels and the master they name are reached over TLS or none is" },
  { name: 'sentinel nodes with different credentials', text: 'redis:\n  sentinel:\n    master: m\n    nodes:\n      - redis://:one@a:1\n      - redis://b:2\n      - redis://:two@c:3\n', line: 7, path: 'redis.sentinel.nodes[2]', message: "other credentials than an earlier sentinel ('redis://***@c:3'): every sentinel is authenticated with the same ones" },
  { name: 'sentinel: a list for the master', text: 'redis:\n  sentinel:\n    master: [m]\n    nodes: [redis://a:1]\n', line: 3, path: 'redis.sentinel.master', message: 'expected a string, got a list' },
  { name: 'sentinel: a number for the password', text: 'redis:\n  sentinel:\n    master: m\n    nodes: [redis://a:1]\n    password: 12345\n', line: 5, path: 'redis.sentinel.password', message: 'expected a string, got a number' },
  { name: 'sentinel: an unknown key', text: 'redis:\n  sentinel:\n    master: m\n    nodes: [redis://a:1]\n    db: 2\n', line: 5, path: 'redis.sentinel.db', message: 'unknown key (expected one of: master, nodes, username, password)' },
  { name: 'sentinel: a URL for the whole section', text: 'redis:\n  sentinel: "redis://:s3cret@a:26379"\n', line: 2, path: 'redis.sentinel', message: "expected a mapping, got 'redis://***@a:26379'" },
  { name: 'workers with a sentinel that has errors still count as redis', text: 'server: { workers: 2 }\nredis:\n  sentinel: { master: m }\n', line: 3, path: 'redis.sentinel.nodes', message: 'is required' },
];

function runBad(title: string, cases: readonly BadCase[]): void {
  describe(title, () => {
    for (const c of cases) {
      it(c.name, () => {
        const error = parseError(c.text);
        const issue = error.issues.find((i) => i.path === c.path);
        assert.ok(issue, `no issue at ${c.path} in:\n${error.message}`);
        assert.ok(issue.message.startsWith(c.message), `message "${issue.message}" does not start with "${c.message}"`);
        assert.equal(issue.file, 'portcullis.yaml', 'file');
        assert.equal(issue.line, c.line, 'line');
        assert.ok(error.message.includes(`portcullis.yaml: ${issue.message} (line ${c.line}, at ${c.path})`), error.message);
      });
    }
  });
}

runBad('portcullis.yaml: unknown keys at every level', UNKNOWN_KEYS);
runBad('portcullis.yaml: wrong types', WRONG_TYPES);
runBad('portcullis.yaml: bad values', BAD_VALUES);

describe('portcullis.yaml: reporting', () => {
  it('reports every problem of a file at once', async () => {
    let caught: unknown;
    await loadPortcullisConfig(path.join(FIXTURES, 'several_errors.yaml')).catch((error: unknown) => (caught = error));
    assert.ok(caught instanceof ConfigError);
    const got = [...caught.issues].sort((a, b) => (a.line ?? 0) - (b.line ?? 0)).map((i: ConfigIssue) => [i.file, i.line, i.path]);
    assert.deepEqual(got, [
      ['several_errors.yaml', 3, 'server.grpc.address'],
      ['several_errors.yaml', 4, 'server.grpc.tls'],
      ['several_errors.yaml', 6, 'log.level'],
      ['several_errors.yaml', 8, 'ratelimit.near_limit_ratio'],
      ['several_errors.yaml', 9, 'ratelimit.failure_mode'],
      ['several_errors.yaml', 10, 'bogus'],
    ]);
    assert.equal(caught.message.split('\n').length, 6);
  });

  it('reports invalid YAML with its line', () => {
    const error = parseError('server:\n  grpc:\n    address: "unterminated\n');
    assert.equal(error.issues.length, 1);
    const issue = error.issues[0]!;
    assert.ok(issue.message.startsWith('invalid YAML: '), issue.message);
    assert.equal(issue.file, 'portcullis.yaml');
    assert.ok(issue.line !== undefined && issue.line >= 3, `line ${issue.line}`);
  });

  it('rejects a file that is not a mapping', () => {
    const error = parseError('- server\n- redis\n');
    assert.deepEqual(error.issues.map((i) => [i.line, i.path, i.message]), [[1, '', 'expected a mapping, got a list']]);
  });

  it('names the file when it cannot be read', async () => {
    const missing = path.join(FIXTURES, 'does-not-exist.yaml');
    let caught: unknown;
    await loadPortcullisConfig(missing).catch((error: unknown) => (caught = error));
    assert.ok(caught instanceof ConfigError);
    assert.equal(caught.issues[0]!.file, missing);
    assert.ok(caught.message.startsWith(`${missing}: cannot read config file: `), caught.message);
  });

  it('refuses an empty file (an editor rewriting it in place): {} is the file of defaults', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-empty-'));
    try {
      for (const text of ['', '  \n\n']) {
        writeFileSync(path.join(dir, 'portcullis.yaml'), text);
        await assert.rejects(loadPortcullisConfig(path.join(dir, 'portcullis.yaml')), /config file is empty \(write \{\} for every default\)/);
      }
      writeFileSync(path.join(dir, 'portcullis.yaml'), '{}\n');
      assert.equal((await loadPortcullisConfig(path.join(dir, 'portcullis.yaml'))).redis, undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('portcullis.yaml: redactedConfig', () => {
  const cases: { name: string; redis: string; shown: unknown; secret: string }[] = [
    {
      name: 'hides the password of the url',
      redis: 'redis:\n  url: redis://user:s3cret@cache:6379/0\n',
      shown: { url: 'redis://***@cache:6379/0', cluster: undefined, sentinel: undefined, tls: undefined, connectTimeoutMs: 2000 },
      secret: 's3cret',
    },
    {
      name: 'hides a password-only url',
      redis: 'redis:\n  url: rediss://:s3cret@cache:6380\n',
      shown: { url: 'rediss://***@cache:6380', cluster: undefined, sentinel: undefined, tls: undefined, connectTimeoutMs: 2000 },
      secret: 's3cret',
    },
    {
      name: 'hides the passwords of cluster members',
      redis: 'redis:\n  cluster:\n    - redis://:s3cret@a:7000\n    - redis://b:7001\n',
      shown: { url: undefined, cluster: ['redis://***@a:7000', 'redis://b:7001'], sentinel: undefined, tls: undefined, connectTimeoutMs: 2000 },
      secret: 's3cret',
    },
    {
      name: 'hides a password given as a query parameter (ioredis reads every parameter as an option)',
      redis: 'redis:\n  url: redis://cache:6379/0?password=s3cret&db=1\n',
      shown: { url: 'redis://cache:6379/0?password=***&db=1', cluster: undefined, sentinel: undefined, tls: undefined, connectTimeoutMs: 2000 },
      secret: 's3cret',
    },
    {
      name: 'hides user info and every secret-looking parameter at once',
      redis: 'redis:\n  url: rediss://u:s3cret@cache:6379?sentinelPassword=s3cret&family=6&password=s3cret\n',
      shown: { url: 'rediss://***@cache:6379?sentinelPassword=***&family=6&password=***', cluster: undefined, sentinel: undefined, tls: undefined, connectTimeoutMs: 2000 },
      secret: 's3cret',
    },
    {
      name: 'hides query passwords of cluster members',
      redis: 'redis:\n  cluster:\n    - redis://a:7000?password=s3cret\n',
      shown: { url: undefined, cluster: ['redis://a:7000?password=***'], sentinel: undefined, tls: undefined, connectTimeoutMs: 2000 },
      secret: 's3cret',
    },
    {
      name: 'hides a password that contains @',
      redis: 'redis:\n  url: redis://user:p@ss@cache:6379\n',
      shown: { url: 'redis://***@cache:6379', cluster: undefined, sentinel: undefined, tls: undefined, connectTimeoutMs: 2000 },
      secret: 'p@ss',
    },
    {
      name: 'hides a password with whitespace, in the user info and in a query parameter',
      redis: 'redis:\n  url: "redis://:hunter2 hunter3@127.0.0.1:16393/0?sentinelPassword=abc def"\n',
      shown: { url: 'redis://***@127.0.0.1:16393/0?sentinelPassword=***', cluster: undefined, sentinel: undefined, tls: undefined, connectTimeoutMs: 2000 },
      secret: 'hunter3',
    },
    {
      name: 'hides a password with @ and whitespace together',
      redis: 'redis:\n  url: "redis://user:a @b c@cache:6379?password=x @y&db=1"\n',
      shown: { url: 'redis://***@cache:6379?password=***&db=1', cluster: undefined, sentinel: undefined, tls: undefined, connectTimeoutMs: 2000 },
      secret: 'b c',
    },
    {
      name: 'hides percent-encoded passwords and a percent-encoded parameter name',
      redis: 'redis:\n  url: "redis://us%40r:p%20w%40x@cache:6379?p%61ssword=s%26cret%20x&db=1"\n',
      shown: { url: 'redis://***@cache:6379?p%61ssword=***&db=1', cluster: undefined, sentinel: undefined, tls: undefined, connectTimeoutMs: 2000 },
      secret: 'p%20w',
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const config = parsePortcullisConfig(c.redis, FILE);
      const shown = redactedConfig(config) as PortcullisConfig;
      assert.deepEqual(shown.redis, c.shown);
      const text = JSON.stringify(shown);
      assert.ok(!text.includes(c.secret), `secret visible in ${text}`);
      assert.ok(!text.includes(c.secret.slice(-2) + '@'), `part of the secret visible in ${text}`);
      assert.deepEqual(shown.ratelimit, config.ratelimit, 'the rest is shown as is');
    });
  }

  it("hides the Sentinel master's password and the sentinels' credentials", () => {
    const config = parsePortcullisConfig('redis:\n  sentinel:\n    master: m\n    nodes: [redis://:s3cret1@s1:26379, redis://s2:26379?password=s3cret1]\n    username: app\n    password: s3cret2\n', FILE);
    const shown = redactedConfig(config) as PortcullisConfig;
    assert.deepEqual(shown.redis?.sentinel, { master: 'm', nodes: ['redis://***@s1:26379', 'redis://s2:26379?password=***'], username: 'app', password: '***' });
    assert.ok(!JSON.stringify(shown).includes('s3cret'), JSON.stringify(shown));
    assert.equal(config.redis?.sentinel?.password, 's3cret2', 'the config itself is unchanged');
  });

  it('leaves a url without credentials alone, and does not change the config', () => {
    const config = parsePortcullisConfig('redis:\n  url: redis://cache:6379\n', FILE);
    assert.equal((redactedConfig(config) as PortcullisConfig).redis?.url, 'redis://cache:6379');
    const withSecret = parsePortcullisConfig('redis:\n  url: redis://:x@cache:6379\n', FILE);
    redactedConfig(withSecret);
    assert.equal(withSecret.redis?.url, 'redis://:x@cache:6379');
  });

  it('shows ext_proc header rules with their literal text hidden, whatever the header name; placeholders shown', () => {
    const config = parsePortcullisConfig(
      [
        'extproc:',
        '  routes:',
        '    - name: r',
        '      headers:',
        '        request: { set: { x-upstream-token: s3cr3t, x-upstream-creds: s3cr3t, x-user: "{user_id}", x-signed: "v1=s3cr3t;u={user_id}" }, append: { authorization: "Basic czNjcjN0" } }',
        '        response: { set: { set-cookie: "sid=s3cr3t" }, remove: [server] }',
        '',
      ].join('\n'),
      FILE,
    );
    const route = (redactedConfig(config) as { extproc: { routes: unknown[] } }).extproc.routes[0];
    assert.deepEqual((route as Record<string, unknown>).requestHeaders, {
      set: [['x-upstream-token', '***'], ['x-upstream-creds', '***'], ['x-user', '{user_id}'], ['x-signed', '***{user_id}']],
      append: [['authorization', '***']],
      remove: [],
    });
    assert.deepEqual((route as Record<string, unknown>).responseHeaders, { set: [['set-cookie', '***']], append: [], remove: ['server'] });
    assert.ok(!JSON.stringify(redactedConfig(config)).includes('s3cr3t'));
    assert.ok(!JSON.stringify(redactedConfig(config)).includes('czNjcjN0'));
  });

  it('hides the credentials of the authz URLs (introspection, JWKS, discovery)', () => {
    const config = parsePortcullisConfig(
      [
        'authz:',
        '  introspection: { url: "https://gw:s3cr3t@idp/introspect?access_token=t0ken", client_id: gw, client_secret_file: ./secret }',
        '  jwt:',
        '    providers:',
        '      - { name: a, issuer: "https://i", audiences: [x], jwks: { uri: "https://u:s3cr3t@idp/jwks" } }',
        '      - { name: b, issuer: "https://i", audiences: [x], jwks: { oidc_discovery: "https://u:s3cr3t@idp" } }',
        '  policies: [{ name: p, match: { path_prefix: / }, authenticate: [jwt, introspection] }]',
        '',
      ].join('\n'),
      FILE,
    );
    const text = JSON.stringify(redactedConfig(config));
    assert.ok(!text.includes('s3cr3t') && !text.includes('t0ken'), text);
    assert.match(text, /"url":"https:\/\/\*\*\*@idp\/introspect\?access_token=\*\*\*"/);
    assert.equal(config.authz?.introspection?.url, 'https://gw:s3cr3t@idp/introspect?access_token=t0ken', 'the config itself is unchanged');
  });

  it('shows no redis section when there is none', () => {
    assert.equal((redactedConfig(parsePortcullisConfig('', FILE)) as PortcullisConfig).redis, undefined);
  });
});


describe('schema: number() bounds every field', () => {
  it('applies DEFAULT_MAX_NUMBER when a field names no max, so new sections are bounded too', async () => {
    const { number, DEFAULT_MAX_NUMBER } = await import('../../../src/config/schema.js');
    const { IssueCollector } = await import('../../../src/config/errors.js');
    const { parseYaml } = await import('../../../src/config/yaml.js');
    const field = number(5, { min: 0, integer: true });
    const read = (text: string): [number, string[]] => {
      const issues = new IssueCollector('f.yaml');
      const parsed = parseYaml(`n: ${text}\n`);
      assert.ok(parsed.ok && parsed.root?.kind === 'map');
      const value = field(parsed.root.entries[0]?.value, 'n', issues, 1);
      return [value, issues.issues.map((i) => i.message)];
    };
    assert.deepEqual(read(String(DEFAULT_MAX_NUMBER)), [DEFAULT_MAX_NUMBER, []]);
    assert.deepEqual(read(String(DEFAULT_MAX_NUMBER + 1)), [5, [`must be between 0 and ${DEFAULT_MAX_NUMBER}, got ${DEFAULT_MAX_NUMBER + 1}`]]);
    assert.deepEqual(read('1e400'), [5, ['expected an integer, got Infinity']]);
  });
});

describe('restartOnlyChanges: what a reload cannot apply', () => {
  const base = 'server:\n  grpc: { address: "127.0.0.1:1" }\n';
  const table: [string, string, string[]][] = [
    ['nothing', base, []],
    ['a descriptor setting applies', `${base}ratelimit:\n  shadow_mode: true\n`, []],
    ['server', 'server:\n  grpc: { address: "127.0.0.1:2" }\n', ['server']],
    ['redis', `${base}redis: { url: "redis://127.0.0.1:1" }\n`, ['redis']],
    ['log level', `${base}log: { level: debug }\n`, ['log.level']],
    ['memory bound', `${base}memory: { max_keys: 3 }\n`, ['memory.max_keys']],
    ['reload and local cache', `${base}ratelimit:\n  reload: { enabled: false }\n  local_cache: { max_entries: 5 }\n`, ['ratelimit.reload', 'ratelimit.local_cache.max_entries']],
    ['metrics bound', `${base}ratelimit:\n  metrics: { max_keys: 10 }\n`, ['ratelimit.metrics.max_keys']],
    ['ext_proc message size', `${base}extproc:\n  max_message_bytes: 8388608\n`, ['extproc.max_message_bytes']],
    // The response cache store is built once, with its key prefix and (in memory) its byte bound.
    ['ext_proc cache store', `${base}extproc:\n  cache: { key_prefix: "p:", max_memory_bytes: 1024 }\n`, ['extproc.cache.key_prefix', 'extproc.cache.max_memory_bytes']],
    ['an ext_proc cache budget applies', `${base}extproc:\n  cache: { timeout_ms: 20, max_entry_bytes: 10 }\n`, []],
  ];
  const running = parsePortcullisConfig(base, '/tmp/portcullis.yaml');
  for (const [name, text, changed] of table) {
    it(`${name} → ${changed.join(', ') || 'none'}`, () => {
      assert.deepEqual(restartOnlyChanges(running, parsePortcullisConfig(text, '/tmp/portcullis.yaml')), changed);
    });
  }
});

describe('checkPortcullisConfigOffThread: a large portcullis.yaml is refused by a worker, not the serving thread', () => {
  it('throws the errors parsePortcullisConfig finds, and passes a good file', async () => {
    const text = Array.from({ length: 3 }, (_, i) => `k${i}: 1\n`).join('');
    const error = await checkPortcullisConfigOffThread(text, '/etc/p/portcullis.yaml', 30_000).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof ConfigError, String(error));
    assert.deepEqual(error.issues.map((i) => [i.line, i.path]), [[1, 'k0'], [2, 'k1'], [3, 'k2']]);
    await checkPortcullisConfigOffThread('log: { level: warn }\n', '/etc/p/portcullis.yaml', 30_000);
    // JSON Schema files are the serving thread's to read: a missing one is no error here.
    await checkPortcullisConfigOffThread('extproc:\n  routes:\n    - { name: r, validate: { json_schema: ./missing.json } }\n', '/etc/p/portcullis.yaml', 30_000);
  });
});
