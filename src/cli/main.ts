import { Cluster } from 'ioredis';
import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import path from 'node:path';
import { logVerbosity, setLogVerbosity } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { buildApp } from '../app.js';
import { ConfigError } from '../config/errors.js';
import { schemaReader } from '../config/inputs.js';
import { loadPortcullisConfig, parsePortcullisConfig, type PortcullisConfig } from '../config/portcullis-config.js';
import { redactUrlCredentials } from '../shared/redact.js';
import { checkEnvoyCommand } from './check-envoy.js';
import { createLogger, drainLogger, stdoutDestination, type Logger } from '../observability/logger.js';
import { collectNodeMetrics, createLogMetrics, createMemoryStoreMetrics } from '../observability/metrics.js';
import { MemoryRevocationList } from '../store/revocation-list.js';
import { explain, keysNew, revoke, sharedRevocationList } from './authz-commands.js';
import { validate } from './validate.js';
import { readTlsFilesSyncOr, tlsFileBytes, type TlsFileBytes } from '../server/grpc-tls-material.js';
import { askForHandover, runSupervisor, serveSupervisor, type Handover } from '../server/supervisor.js';
import { resolveWorkers } from '../server/workers-config.js';
import { systemClock } from '../shared/clock.js';
import type { CacheStore } from '../store/cache-store.js';
import { ErrorCode, PortcullisError } from '../shared/errors.js';
import type { CounterStore } from '../store/counter-store.js';
import { MemoryCacheStore } from '../store/memory-cache-store.js';
import { RedisCacheStore } from '../store/redis-cache-store.js';
import { MemoryCounterStore } from '../store/memory-counter-store.js';
import { createRedisClient, type RedisClient } from '../store/redis-client.js';
import { RedisCounterStore } from '../store/redis-counter-store.js';
import { probeClusterSeeds, watchRedisConnection, type RedisProbe } from '../store/redis-connection-log.js';

const USAGE = `usage:
  portcullis serve --config portcullis.yaml       run the gRPC services and the admin server
  portcullis validate --config portcullis.yaml    check the config and its descriptor files; exit 1 on any error
  portcullis validate --descriptors DIR           check envoyproxy/ratelimit descriptor files only (with --config:
                                                 these instead of the config's directory)
  portcullis keys new --id ID [--owner O] [--tier T]   print a fresh API key once and its keys-file entry (hash only)
  portcullis explain --config FILE --method GET --path /x [-H 'name: value']... [--principal P] [--source-ip IP] [--policy NAME] [--timeout-ms MS]
                                                  show which policy a request gets, each method's outcome, the answer
  portcullis revoke --config FILE (--jti ID | --api-key-id ID) [--ttl SECONDS]
                                                  add a token id or API key id to the shared revocation list (Redis)
  portcullis revoke --config FILE --lift (--jti ID | --api-key-id ID)
                                                  remove one from the list (every instance accepts it again); exit 1
                                                  if it was not revoked
  portcullis revoke --config FILE --list          every id on the list, with the time it is kept until
  portcullis check-envoy envoy.yaml [--config portcullis.yaml] [--descriptors DIR]
                                                  descriptors Envoy can send that no rule matches, rules nothing
                                                  reaches, unknown domains, routes no authz policy covers,
                                                  unreachable ext_proc routes; exit 1 on any finding
`;

/** What the entry point (bin/portcullis.js) set up before loading the CLI. */
export interface Runtime {
  /** V8 flags set on this process for its Node release (server/node-version.ts). */
  readonly v8Flags: readonly string[];
}

export async function main(argv: readonly string[], runtime: Runtime = { v8Flags: [] }): Promise<number> {
  const [command, ...rest] = argv;
  // `portcullis --help` is how most people ask first: the usage they asked for, exit 0, as `portcullis help`.
  if (command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (command === 'keys' || command === 'explain' || command === 'revoke') return authzCommand(command, rest);
  let values: { config?: string; descriptors?: string; help?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: rest,
      options: { config: { type: 'string', short: 'c' }, descriptors: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: command === 'check-envoy',
    }));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === 'validate' && (values.config !== undefined || values.descriptors !== undefined)) {
    return validate(values, (s) => process.stdout.write(s), (s) => process.stderr.write(s));
  }
  if (command === 'check-envoy' && positionals[0] !== undefined) return checkEnvoyCommand(positionals[0], values, process.stdout, process.stderr);
  if (command === 'serve' && values.config) return serve(values.config, runtime);
  process.stderr.write(USAGE);
  return 2;
}

/** Opens a Redis client for `name` (the counter store, the ext_proc cache, the revocation list). */
type OpenRedis = (name: string) => RedisClient;

/**
 * Every Redis client `serve` opens comes from here, its connection trouble logged under its name (the connection log:
 * redis-connection-log.ts): one that was not watched failed without a line in the log. The clients of a cluster share
 * one seed probe, so an outage costs one probe connection per seed rather than one per client. `troubles` holds each
 * client's last reported reason while its connection is down (for /readyz).
 */
function redisOpener(redis: NonNullable<PortcullisConfig['redis']>, logger: Logger, troubles: Map<string, string>): OpenRedis {
  let probe: RedisProbe | undefined;
  return (name) => {
    const client = createRedisClient(redis);
    if (client instanceof Cluster && redis.cluster !== undefined) probe ??= probeClusterSeeds(client, redis.cluster);
    watchRedisConnection(client, {
      down: (reason) => {
        troubles.set(name, reason);
        logger.error({ client: name, reason }, 'redis connection failed');
      },
      up: () => {
        troubles.delete(name);
        logger.info({ client: name }, 'redis connected');
      },
      seedSkipped: (reason) => logger.warn({ client: name, reason }, 'redis cluster seed skipped'),
      sentinelLost: (reason) => logger.warn({ client: name, reason }, 'redis sentinel not heard: the failovers it announces are missed until it is back'),
      sentinelBack: (sentinel) => logger.info({ client: name, sentinel }, 'redis sentinel heard again'),
    }, { redact: redactUrlCredentials, clock: systemClock, ...(client.isCluster && probe !== undefined ? { probe } : {}) });
    return client;
  };
}

function createStore(config: PortcullisConfig, openRedis: OpenRedis | undefined, registry: Registry): CounterStore {
  if (openRedis === undefined) return new MemoryCounterStore({ maxKeys: config.memory.maxKeys, observer: createMemoryStoreMetrics(registry) });
  return new RedisCounterStore(openRedis('counter store'));
}

function createCacheStore(config: PortcullisConfig, openRedis: OpenRedis | undefined): CacheStore {
  if (openRedis === undefined) return new MemoryCacheStore(config.extproc.cache.maxMemoryBytes);
  return new RedisCacheStore(openRedis('extproc cache'), config.extproc.cache.keyPrefix);
}

async function serve(configFile: string, runtime: Runtime): Promise<number> {
  // A replacement worker starts from the config its siblings run, not from files an edit may have broken since.
  const handover = cluster.isWorker ? await askForHandover() : undefined;
  const servingTls = handover?.tls === undefined ? undefined : tlsFileBytes(handover.tls);
  let config: PortcullisConfig;
  try {
    const startup = handover?.startup;
    config = startup === undefined ? await loadPortcullisConfig(configFile) : parsePortcullisConfig(startup.text, path.resolve(configFile), { schema: schemaReader(startup), grpcTls: readTlsFilesSyncOr(servingTls) });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    return 1;
  }
  const workers = resolveWorkers(config.server.workers);
  const logOutput = stdoutDestination();
  const logger = createLogger(config.log.level, logOutput);
  if (cluster.isPrimary && runtime.v8Flags.length > 0) logger.info({ node: process.version, v8Flags: runtime.v8Flags }, 'V8 flags set for this Node release');
  try {
    if (cluster.isPrimary && workers > 1) {
      const processRegistry = new Registry();
      collectNodeMetrics(processRegistry);
      createLogMetrics(processRegistry, logOutput);
      return await runSupervisor({ config, workers, logger, processRegistry });
    }
    return await serveProcess(config, handover, servingTls, cluster.isWorker ? logger.child({ worker: Number(process.env['PORTCULLIS_WORKER']) }) : logger, logOutput);
  } finally {
    // bin/portcullis.js calls process.exit next: see drainLogger for why a gone log reader would hang it otherwise.
    await drainLogger(logger, 1000);
  }
}

/** One process serving (alone, or as a supervisor's worker) until SIGTERM; resolves with the exit code. */
async function serveProcess(config: PortcullisConfig, handover: Handover | undefined, servingTls: TlsFileBytes | undefined, logger: Logger, logOutput: ReturnType<typeof stdoutDestination>): Promise<number> {
  const worker = cluster.isWorker;
  // grpc-js prints its own errors to stderr (a bind failure as a raw line); Portcullis reports them itself.
  if (process.env['GRPC_VERBOSITY'] === undefined) setLogVerbosity(logVerbosity.NONE);
  const registry = new Registry();
  collectNodeMetrics(registry);
  createLogMetrics(registry, logOutput);
  const redisTroubles = new Map<string, string>();
  const openRedis = config.redis === undefined ? undefined : redisOpener(config.redis, logger, redisTroubles);
  const revocation = openRedis !== undefined && config.authz?.revocation.enabled
    ? sharedRevocationList(openRedis('revocation list'), config.authz,
      (error) => logger.debug({ err: error.message }, 'revocation list refresh failed'))
    : new MemoryRevocationList(systemClock);
  const app = buildApp({
    config, logger, registry, clock: systemClock, store: createStore(config, openRedis, registry), cache: createCacheStore(config, openRedis),
    random: Math.random, revocation, worker, storeTrouble: () => redisTroubles.get('counter store'),
  });
  // A signal during start-up is kept and acted on once started: without a handler, Node would die of it undrained.
  let requested: string | undefined;
  let onSignal = (signal: string): void => void (requested ??= signal);
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  // Node's default for SIGHUP is to exit: `kill -HUP`, a service manager's reload or a closed terminal would stop
  // the server undrained. A single process reloads, as the supervisor does; a worker leaves it to its supervisor,
  // which gets the same signal (a process group's) and tells every worker to reload.
  process.on('SIGHUP', () => {
    if (worker) return;
    logger.info('SIGHUP: reloading the config');
    app.reload().catch((error: unknown) => logger.error({ err: error }, 'config reload failed'));
  });
  let addresses: Awaited<ReturnType<typeof app.start>>;
  try {
    addresses = await app.start(handover?.lastGood, servingTls);
  } catch (error) {
    if (!(error instanceof PortcullisError) || (error.code !== ErrorCode.LISTEN_FAILED && error.code !== ErrorCode.CONFIG_INVALID)) throw error;
    // An operator error, not a bug: one line, no stack trace.
    process.stderr.write(`portcullis: ${error.message}\n`);
    return 1;
  }
  const { grpcAddress, adminAddress, httpAddress } = addresses;
  if (worker) serveSupervisor(app, registry, { grpcAddress, httpAddress }, logger);
  // nodeFlags: whether it runs with the shipped flags (src/server/node-flags.ts) shows in the log.
  else logger.info({ grpcAddress, adminAddress, httpAddress, store: config.redis ? 'redis' : 'memory', nodeFlags: process.execArgv }, 'portcullis listening');

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'draining');
      app.close().then(
        () => {
          logger.info('stopped');
          resolve(0);
        },
        (error: unknown) => {
          logger.error({ err: error }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    onSignal = stop;
    if (requested !== undefined) stop(requested);
    // A worker whose supervisor is gone gets no new connections: drain and leave.
    if (worker) process.on('disconnect', () => stop('supervisor gone'));
  });
}

async function authzCommand(command: 'keys' | 'explain' | 'revoke', args: readonly string[]): Promise<number> {
  const out = (s: string): void => void process.stdout.write(s);
  try {
    if (args.includes('--help') || args.includes('-h')) {
      out(USAGE);
      return 0;
    }
    if (command === 'keys') {
      const [sub, ...rest] = args;
      const { values } = parseArgs({ args: [...rest], options: { id: { type: 'string' }, owner: { type: 'string' }, tier: { type: 'string' } }, strict: true });
      if (sub !== 'new') {
        process.stderr.write(USAGE);
        return 2;
      }
      return keysNew(values, out);
    }
    if (command === 'revoke') {
      const { values } = parseArgs({
        args: [...args],
        options: {
          config: { type: 'string', short: 'c' }, jti: { type: 'string' }, 'api-key-id': { type: 'string' }, ttl: { type: 'string' },
          lift: { type: 'boolean' }, list: { type: 'boolean' },
        },
        strict: true,
      });
      return await revoke({ ...values, apiKeyId: values['api-key-id'] }, out);
    }
    const { values } = parseArgs({
      args: [...args],
      options: {
        config: { type: 'string', short: 'c' }, method: { type: 'string', short: 'X' }, path: { type: 'string' },
        header: { type: 'string', short: 'H', multiple: true }, principal: { type: 'string' }, 'source-ip': { type: 'string' }, policy: { type: 'string' },
        'timeout-ms': { type: 'string' },
      },
      strict: true,
    });
    return await explain({ ...values, sourceIp: values['source-ip'], timeoutMs: values['timeout-ms'] }, out);
  } catch (error) {
    if (!(error instanceof TypeError) || !('code' in error)) throw error;
    process.stderr.write(`${error.message}\n${USAGE}`);
    return 2;
  }
}
