import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Server as HttpServer } from 'node:http';
import type { Registry } from 'prom-client';
import { readDescriptorFiles } from './config/descriptor-files.js';
import { ConfigError } from './config/errors.js';
import { ConfigHolder } from './config/holder.js';
import { parsePortcullisConfig, redactedConfig, type PortcullisConfig } from './config/portcullis-config.js';
import { watchConfig, type ConfigWatcher } from './config/watcher.js';
import type { Logger } from './observability/logger.js';
import { createMetrics } from './observability/metrics.js';
import { compileDescriptorFiles, dumpLimits } from './ratelimit/descriptor-config.js';
import { OverLimitCache } from './ratelimit/local-cache.js';
import { RateLimitService, type RateLimitSnapshot } from './ratelimit/service.js';
import type { RateLimitConfig } from './ratelimit/types.js';
import { createAdminServer, listen, type AdminDeps } from './server/admin-http.js';
import { DeadlineSignals } from './server/deadline-signals.js';
import { startGrpcServer, type GrpcServer } from './server/grpc-server.js';
import { rateLimitServiceDefinition } from './server/protos.js';
import { handleJsonRequest, rateLimitHandlers } from './server/ratelimit-handler.js';
import type { Clock } from './shared/clock.js';
import type { CounterStore } from './store/counter-store.js';

export interface AppDeps {
  readonly config: PortcullisConfig;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly store: CounterStore;
  readonly random: () => number;
  /** A worker under src/server/supervisor.ts: the supervisor serves the admin port and watches the files. */
  readonly worker?: boolean;
}

export interface App {
  /** Binds both servers; resolves with the addresses actually bound (port 0 works). */
  start(): Promise<{ grpcAddress: string; adminAddress: string }>;
  /** Re-reads portcullis.yaml and the descriptor files; keeps the last good config on error. */
  reload(): Promise<void>;
  /** SIGTERM path: NOT_SERVING, drain in-flight calls, close. */
  close(): Promise<void>;
  /** What /readyz reports. */
  ready(): { ready: boolean; reasons: string[] };
  /** The admin routes that read this process's state, for a supervisor to serve. */
  readonly views: Pick<AdminDeps, 'config' | 'limits' | 'json'>;
}

interface Loaded {
  readonly config: PortcullisConfig;
  readonly snapshot: RateLimitSnapshot;
}

/** Composition root: builds every dependency once and passes it down. */
export function buildApp(deps: AppDeps): App {
  const { logger, registry, store, clock } = deps;
  const metrics = createMetrics(registry, deps.config.ratelimit.metrics.maxKeys);
  const holder = new ConfigHolder<Loaded>({ config: deps.config, snapshot: { settings: deps.config.ratelimit, config: undefined } });
  const overLimitCache = new OverLimitCache(deps.config.ratelimit.localCache.maxEntries);
  const service = new RateLimitService({
    store, clock, overLimitCache, random: deps.random, observer: metrics.ratelimit,
    snapshot: () => holder.current().snapshot,
  });
  let inFlight = 0;
  let drained: (() => void) | undefined;
  let shuttingDown = false;
  let storeReachable = false;
  let lastFingerprint = '';
  let lastGoodText: string | undefined;
  let grpc: GrpcServer | undefined;
  let admin: HttpServer | undefined;
  let watcher: ConfigWatcher | undefined;
  let storeProbe: NodeJS.Timeout | undefined;

  const reload = async (): Promise<void> => {
    const previous = holder.current();
    const file = previous.config.file;
    try {
      const text = await readFile(file, 'utf8');
      // Every poll lands here: an unchanged file costs a read, not a YAML parse (2 % of a core under load).
      const config = text === lastGoodText ? previous.config : parsePortcullisConfig(text, file);
      const files = await readDescriptorFiles(config.ratelimit.descriptors);
      const fingerprint = createHash('sha256').update(text).update(JSON.stringify(files)).digest('hex');
      if (fingerprint === lastFingerprint) return;
      const rateLimitConfig: RateLimitConfig = compileDescriptorFiles(files);
      if (JSON.stringify([config.server, config.redis]) !== JSON.stringify([previous.config.server, previous.config.redis]) && lastFingerprint !== '') {
        logger.warn('server and redis settings changed in the config file: they take effect on restart');
      }
      holder.swap({ config, snapshot: { settings: config.ratelimit, config: rateLimitConfig } });
      lastFingerprint = fingerprint;
      lastGoodText = text;
      metrics.configLoads.inc({ result: 'success' });
      metrics.configLastSuccess.set(clock.nowMs() / 1000);
      logger.info({ domains: [...rateLimitConfig.domains.keys()], files: files.map((f) => f.name) }, 'config loaded');
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      // Report a broken state once, not on every poll.
      const fingerprint = `error:${error.message}`;
      if (fingerprint === lastFingerprint) return;
      lastFingerprint = fingerprint;
      metrics.configLoads.inc({ result: 'error' });
      logger.error({ issues: error.issues.length, errors: error.message.split('\n') }, 'config rejected; keeping the last good config');
    }
  };

  const ready = (): { ready: boolean; reasons: string[] } => {
    const reasons: string[] = [];
    if (shuttingDown) reasons.push('shutting down');
    if (holder.current().snapshot.config === undefined) reasons.push('no rate limit configuration loaded');
    if (!storeReachable) reasons.push('counter store not reachable');
    return { ready: reasons.length === 0, reasons };
  };

  // One slow ping on a busy machine must not flap readiness: two failures in a row mark the store down.
  let failedPings = 0;
  const probeStore = async (): Promise<void> => {
    try {
      await store.ping(AbortSignal.timeout(1000));
      if (!storeReachable) logger.info('counter store reachable');
      storeReachable = true;
      failedPings = 0;
    } catch (error) {
      failedPings++;
      if (storeReachable && failedPings >= 2) {
        logger.warn({ err: (error as Error).message }, 'counter store unreachable');
        storeReachable = false;
      }
    }
    grpc?.setServing(ready().ready ? 'SERVING' : 'NOT_SERVING');
  };

  const views: App['views'] = {
    config: () => ({ ...(redactedConfig(holder.current().config) as object), domains: [...(holder.current().snapshot.config?.domains.keys() ?? [])] }),
    limits: () => dumpLimits(holder.current().snapshot.config),
    json: (body) => handleJsonRequest(service, body, AbortSignal.timeout(holder.current().config.ratelimit.timeoutMs)),
  };

  return {
    reload,
    ready,
    views,
    async start() {
      await reload();
      const settings = deps.config;
      grpc = await startGrpcServer(settings.server.grpc.address, [{
        definition: rateLimitServiceDefinition(),
        implementation: rateLimitHandlers({
          service,
          logger,
          deadlines: new DeadlineSignals(),
          timeoutMs: () => holder.current().config.ratelimit.timeoutMs,
          onError: (code) => metrics.ratelimit.serviceError(code),
          observeDuration: (s) => metrics.ratelimit.observeDuration(s),
          inFlight: {
            enter: () => void inFlight++,
            leave: () => {
              inFlight--;
              if (inFlight === 0) drained?.();
            },
          },
        }),
      }]);
      await probeStore();
      storeProbe = setInterval(() => void probeStore(), 1000);
      storeProbe.unref();
      if (deps.worker) return { grpcAddress: grpc.address, adminAddress: '' };
      admin = createAdminServer({
        registry, logger, ready, ...views,
        live: () => !shuttingDown,
      });
      const adminAddress = await listen(admin, settings.server.admin.address);
      if (settings.ratelimit.reload.enabled) {
        watcher = watchConfig([settings.file, settings.ratelimit.descriptors], settings.ratelimit.reload.pollIntervalMs, () =>
          reload().catch((error: unknown) => logger.error({ err: error }, 'config reload failed')),
        );
      }
      return { grpcAddress: grpc.address, adminAddress };
    },
    async close() {
      shuttingDown = true;
      grpc?.setServing('NOT_SERVING');
      watcher?.close();
      clearInterval(storeProbe);
      const timeoutMs = holder.current().config.server.shutdownTimeoutMs;
      if (inFlight > 0) {
        await Promise.race([
          new Promise<void>((resolve) => (drained = resolve)),
          new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref()),
        ]);
      }
      await grpc?.shutdown(timeoutMs);
      if (admin) {
        const server = admin;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await closed;
      }
      await store.close();
    },
  };
}
