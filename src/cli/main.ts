import { parseArgs } from 'node:util';
import { logVerbosity, setLogVerbosity } from '@grpc/grpc-js';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { buildApp } from '../app.js';
import { readDescriptorFiles } from '../config/descriptor-files.js';
import { ConfigError } from '../config/errors.js';
import { loadPortcullisConfig, parsePortcullisConfig, redactRedisUrl, type PortcullisConfig } from '../config/portcullis-config.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { createMemoryStoreMetrics } from '../observability/metrics.js';
import { compileDescriptorFilesOffThread } from '../ratelimit/descriptor-config.js';
import { systemClock } from '../shared/clock.js';
import { ErrorCode, PortcullisError } from '../shared/errors.js';
import type { CounterStore } from '../store/counter-store.js';
import { MemoryCounterStore } from '../store/memory-counter-store.js';
import { createRedisClient, RedisCounterStore } from '../store/redis-counter-store.js';
import { watchRedisConnection } from '../store/redis-connection-log.js';

const USAGE = `usage:
  portcullis serve --config portcullis.yaml       run the gRPC services and the admin server
  portcullis validate --config portcullis.yaml    check the config and its descriptor files; exit 1 on any error
  portcullis validate --descriptors DIR           check envoyproxy/ratelimit descriptor files only
`;

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  let values: { config?: string; descriptors?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: rest,
      options: { config: { type: 'string', short: 'c' }, descriptors: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === 'validate') return validate(values);
  if (command === 'serve' && values.config) return serve(values.config);
  process.stderr.write(USAGE);
  return 2;
}

async function validate(options: { config?: string; descriptors?: string }): Promise<number> {
  try {
    const config = options.config ? await loadPortcullisConfig(options.config) : undefined;
    const descriptors = config?.ratelimit.descriptors ?? options.descriptors;
    if (!descriptors) {
      process.stderr.write(USAGE);
      return 2;
    }
    // The budgets `serve` applies: a file validate accepts loads, and a file that would stall a load fails here too.
    const budgets = config?.ratelimit ?? parsePortcullisConfig('', 'portcullis.yaml').ratelimit;
    const files = await readDescriptorFiles(descriptors, budgets.descriptorsMaxBytes);
    const compiled = await compileDescriptorFilesOffThread(files, budgets.descriptorsLoadTimeoutMs, descriptors);
    process.stdout.write(`ok: ${files.length} descriptor file(s), domains: ${[...compiled.domains.keys()].join(', ') || '(none)'}\n`);
    return 0;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n${error.issues.length} error(s)\n`);
    return 1;
  }
}

function createStore(config: PortcullisConfig, logger: Logger, registry: Registry): CounterStore {
  if (config.redis === undefined) return new MemoryCounterStore({ maxKeys: config.memory.maxKeys, observer: createMemoryStoreMetrics(registry) });
  const client = createRedisClient({ url: config.redis.url, cluster: config.redis.cluster, connectTimeoutMs: config.redis.connectTimeoutMs });
  watchRedisConnection(client, {
    down: (reason) => logger.error({ reason }, 'redis connection failed'),
    up: () => logger.info('redis connected'),
  }, redactRedisUrl);
  return new RedisCounterStore(client);
}

async function serve(configFile: string): Promise<number> {
  let config: PortcullisConfig;
  try {
    config = await loadPortcullisConfig(configFile);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    return 1;
  }
  const logger = createLogger(config.log.level);
  // grpc-js prints its own errors to stderr (a bind failure as a raw line); Portcullis reports them itself.
  if (process.env['GRPC_VERBOSITY'] === undefined) setLogVerbosity(logVerbosity.NONE);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'portcullis_' });
  const app = buildApp({ config, logger, registry, clock: systemClock, store: createStore(config, logger, registry), random: Math.random });
  let addresses: { grpcAddress: string; adminAddress: string };
  try {
    addresses = await app.start();
  } catch (error) {
    if (!(error instanceof PortcullisError) || (error.code !== ErrorCode.LISTEN_FAILED && error.code !== ErrorCode.CONFIG_INVALID)) throw error;
    // An operator error, not a bug: one line, no stack trace.
    process.stderr.write(`portcullis: ${error.message}\n`);
    return 1;
  }
  const { grpcAddress, adminAddress } = addresses;
  logger.info({ grpcAddress, adminAddress, store: config.redis ? 'redis' : 'memory' }, 'portcullis listening');

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
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}
