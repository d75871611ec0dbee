// `server.workers: n`: one supervisor process and n worker processes serving the same gRPC port.
//
// node:cluster keeps one listening address for Envoy: the supervisor owns the socket and hands each new connection to
// a worker in turn (round robin), so connections, not calls, are spread. Envoy opens one HTTP/2 connection per
// worker thread to each host, so give Envoy at least as many threads (--concurrency) as Portcullis has workers.
// A Unix socket address (unix:/path) is served the same way: the supervisor binds the path, and the file goes when
// the last worker closes its listener.
//
// The supervisor serves the admin port itself: /metrics merges the workers' metrics and its own process's
// (prom-client's AggregatorRegistry: counters summed, each gauge by its rule, see collectNodeMetrics) plus its worker
// counts; /readyz is ready only when all n workers run and each says it is ready; /config and /rlconfig show what a
// worker runs; POST /json is answered by a worker. It watches the config files and tells every worker to reload; on
// SIGTERM it stops restarting, asks every worker to drain, and waits.
// Workers run the ordinary App with `worker: true` (no admin server, no watcher) and talk to it over the IPC channel.

import cluster, { type Worker } from 'node:cluster';
import type { Server as HttpServer } from 'node:http';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import type { App } from '../app.js';
import type { ConfigInputs } from '../config/inputs.js';
import { watchedPaths, type PortcullisConfig } from '../config/portcullis-config.js';
import { watchConfig, type ConfigWatcher } from '../config/watcher.js';
import type { Logger } from '../observability/logger.js';
import { backoffDelayMs, type BackoffPolicy } from '../shared/backoff.js';
import { createAdminServer, listen } from './admin-http.js';
import { unixSocketPath } from './grpc-address.js';
import { tlsFileTexts, type TlsFileBytes, type TlsFileTexts } from './grpc-tls-material.js';
import { clearStaleSocket } from './unix-socket.js';

/** Messages on the IPC channel. Every one carries `pc` so prom-client's own messages are told apart. */
type ToWorker =
  | ({ readonly pc: 'handover' } & Handover)
  | { readonly pc: 'status' }
  | { readonly pc: 'reload' }
  | { readonly pc: 'metrics'; readonly id: number }
  | { readonly pc: 'json'; readonly id: number; readonly body: string };
type FromWorker =
  | { readonly pc: 'ask-handover' }
  | { readonly pc: 'inputs'; readonly inputs: ConfigInputs; readonly watched: readonly string[] }
  | { readonly pc: 'tls'; readonly serving: TlsFileTexts }
  | { readonly pc: 'listening'; readonly grpcAddress: string; readonly httpAddress: string | undefined }
  | { readonly pc: 'status'; readonly ready: boolean; readonly reasons: string[]; readonly decisions: number }
  | { readonly pc: 'views'; readonly config: unknown; readonly limits: string }
  | { readonly pc: 'json'; readonly id: number; readonly status: number; readonly body: string }
  | { readonly pc: 'metrics'; readonly id: number; readonly metrics: MetricsJson };

type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/**
 * What a worker starts from. The first workers get nothing and read the files. A replacement gets what its siblings
 * loaded: `startup`, the first load (the settings applied only at start-up, `server` and `redis` among them, come from
 * it), and `lastGood`, the latest, so that a file broken by an edit the siblings refused cannot stop it; and `tls`,
 * the gRPC listener's certificate, key and client CA as a sibling serves them, for the same reason (a rotation the
 * siblings refused). The key crosses the IPC channel between the supervisor and its own child; it is never logged.
 */
export interface Handover {
  readonly startup: ConfigInputs | undefined;
  readonly lastGood: ConfigInputs | undefined;
  readonly tls: TlsFileTexts | undefined;
}

const NO_HANDOVER: Handover = { startup: undefined, lastGood: undefined, tls: undefined };

const STATUS_INTERVAL_MS = 250;
const METRICS_TIMEOUT_MS = 2000;
/** A worker whose last status is older than this counts as not ready (stuck event loop, lost channel). */
const STATUS_STALE_MS = 2000;
const START_TIMEOUT_MS = 30_000;
/** A worker that ran this long before dying starts its backoff over. */
const HEALTHY_RUN_MS = 10_000;

/** Delay before replacing a worker that died `crashes` times in a row: 100 ms, doubling, at most 10 s. */
export function restartDelayMs(crashes: number): number {
  return backoffDelayMs(crashes, RESTART_BACKOFF, 0);
}
const RESTART_BACKOFF: BackoffPolicy = { firstMs: 100, maxMs: 10_000, jitter: 0 };

interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  startedAt: number;
  crashes: number;
  listening: boolean;
  status: { ready: boolean; reasons: string[]; decisions: number; at: number } | undefined;
  restart: NodeJS.Timeout | undefined;
}

export interface SupervisorOptions {
  readonly config: PortcullisConfig;
  readonly workers: number;
  readonly logger: Logger;
  /**
   * This process's Node and log metrics (collectNodeMetrics, createLogMetrics), merged with the workers' as one more
   * process: the instance's CPU and memory are the supervisor's too, and it holds the listening socket.
   */
  readonly processRegistry: Registry;
}

/** Runs until SIGTERM/SIGINT; resolves with the exit code. */
export async function runSupervisor(options: SupervisorOptions): Promise<number> {
  const { config, logger } = options;
  // The workers' listener is this process's (node:cluster binds it here and hands connections over), so a stale socket
  // file is cleared here, once, before any worker binds: a worker would find its siblings' live socket.
  const socketPath = unixSocketPath(config.server.grpc.address);
  if (socketPath !== undefined) {
    try {
      await clearStaleSocket(socketPath);
    } catch (error) {
      logger.error({ err: (error as Error).message }, 'workers not started');
      return 1;
    }
  }
  const own = new Registry();
  const restarts = new Counter({ name: 'portcullis_worker_restarts_total', help: 'Worker processes replaced after they exited.', registers: [own] });
  const running = new Gauge({ name: 'portcullis_workers_running', help: 'Worker processes running, of server.workers.', registers: [own] });
  new Gauge({ name: 'portcullis_workers_configured', help: 'server.workers, resolved.', registers: [own] }).set(options.workers);

  const slots: Slot[] = Array.from({ length: options.workers }, (_, index) => ({
    index, worker: undefined, startedAt: 0, crashes: 0, listening: false, status: undefined, restart: undefined,
  }));
  let stopping = false;
  let grpcAddress = '';
  let httpAddress: string | undefined;
  let views: { config: unknown; limits: string } = { config: {}, limits: '' };
  let handover: Handover = NO_HANDOVER;
  /** What the workers' config was built from (a reload may name other files): what the supervisor watches. */
  let watched: readonly string[] = watchedPaths(config);
  let nextRequestId = 0;
  const jsonWaiters = new Map<number, (r: { status: number; body: string }) => void>();
  const metricsWaiters = new Map<number, (metrics: MetricsJson) => void>();
  let onListening: (() => void) | undefined;
  let onStartupExit: ((why: string) => void) | undefined;

  const send = (worker: Worker | undefined, message: ToWorker): void => {
    if (worker?.isConnected()) worker.send(message);
  };
  const live = (): Worker[] => slots.flatMap((s) => (s.worker?.isConnected() ? [s.worker] : []));

  const fork = (slot: Slot): void => {
    const worker = cluster.fork({ PORTCULLIS_WORKER: String(slot.index + 1) });
    slot.worker = worker;
    slot.startedAt = Date.now();
    slot.listening = false;
    slot.status = undefined;
    worker.on('message', (message: FromWorker) => {
      if (typeof message !== 'object' || message === null || !('pc' in message)) return;
      switch (message.pc) {
        case 'ask-handover':
          send(worker, { pc: 'handover', ...handover });
          break;
        case 'inputs':
          handover = { ...handover, startup: handover.startup ?? message.inputs, lastGood: message.inputs };
          watched = message.watched;
          break;
        case 'tls':
          handover = { ...handover, tls: message.serving };
          break;
        case 'listening':
          slot.listening = true;
          grpcAddress = message.grpcAddress;
          httpAddress = message.httpAddress;
          logger.info({ worker: slot.index + 1, pid: worker.process.pid }, 'worker listening');
          onListening?.();
          break;
        case 'status':
          slot.status = { ready: message.ready, reasons: message.reasons, decisions: message.decisions, at: Date.now() };
          break;
        case 'views':
          views = { config: message.config, limits: message.limits };
          break;
        case 'json':
          jsonWaiters.get(message.id)?.({ status: message.status, body: message.body });
          jsonWaiters.delete(message.id);
          break;
        case 'metrics':
          metricsWaiters.get(message.id)?.(message.metrics);
          metricsWaiters.delete(message.id);
          break;
      }
    });
    worker.on('exit', (code, signal) => {
      if (slot.worker === worker) {
        slot.worker = undefined;
        slot.status = undefined;
      }
      running.set(live().length);
      if (stopping) return;
      if (onStartupExit) {
        onStartupExit(`worker ${slot.index + 1} exited (code ${code}, signal ${signal}) before listening`);
        return;
      }
      slot.crashes = Date.now() - slot.startedAt >= HEALTHY_RUN_MS ? 1 : slot.crashes + 1;
      const delayMs = restartDelayMs(slot.crashes);
      logger.warn({ worker: slot.index + 1, pid: worker.process.pid, code, signal, delayMs }, 'worker exited; replacing it');
      slot.restart = setTimeout(() => {
        slot.restart = undefined;
        if (stopping) return;
        restarts.inc();
        fork(slot);
      }, delayMs);
    });
    worker.on('online', () => running.set(live().length));
  };

  // SIGTERM / SIGINT from the first moment: during start-up they end the start (what started is drained, exit 0);
  // after it, stop() drains. Without a handler this early, Node would die of the signal and leave the workers behind.
  let requested: string | undefined;
  let onStop: ((signal: string) => void) | undefined;
  const onSignal = (signal: string): void => {
    requested ??= signal;
    if (onStop !== undefined) onStop(signal);
    else onStartupExit?.(`${signal} during start-up`);
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  // SIGHUP from the first moment too (Node's default for it is to exit), and for as long as the process runs: one
  // during start-up reloads every worker once they all listen, one while draining has nothing left to reload.
  let reloadAll: (() => void) | undefined;
  let reloadAsked = false;
  process.on('SIGHUP', () => {
    if (stopping) logger.info('SIGHUP while stopping: nothing to reload');
    else if (reloadAll === undefined) reloadAsked = true;
    else reloadAll();
  });

  // ---- start every worker; any that dies before listening fails the start (a bad port, say) -----------------------
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`workers did not listen within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      onListening = () => {
        if (slots.every((s) => s.listening)) {
          clearTimeout(timer);
          resolve();
        }
      };
      onStartupExit = (why) => {
        clearTimeout(timer);
        reject(new Error(why));
      };
      for (const slot of slots) fork(slot);
    });
  } catch (error) {
    stopping = true;
    if (requested !== undefined) {
      logger.info({ signal: requested }, 'stopping during start-up: draining the workers that started');
      await stopWorkers(slots, config.server.shutdownTimeoutMs);
      return 0;
    }
    logger.error({ err: (error as Error).message }, 'workers failed to start');
    await stopWorkers(slots, config.server.shutdownTimeoutMs);
    return 1;
  } finally {
    onListening = undefined;
    onStartupExit = undefined;
  }

  const poll = setInterval(() => {
    for (const slot of slots) send(slot.worker, { pc: 'status' });
  }, STATUS_INTERVAL_MS);
  poll.unref();

  const ready = (): { ready: boolean; reasons: string[] } => {
    const now = Date.now();
    const reasons = [...(stopping ? ['shutting down'] : []), ...slots.flatMap((slot) => workerReasons(slot, now))];
    return { ready: reasons.length === 0, reasons };
  };

  /**
   * prom-client's aggregation (AggregatorRegistry.aggregate: counters and histograms summed, each gauge by the rule it
   * carries) over this process and the workers that are listening. Its clusterMetrics() would also ask a worker still
   * starting, which has no listener yet, and fail the whole scrape after 5 s; here such a worker is left out, and so is
   * one that does not answer in time (its counters come back with it: they are per process, like a restart's).
   */
  const workerMetrics = (slot: Slot): Promise<MetricsJson> => new Promise((resolve) => {
    if (!slot.listening || !slot.worker?.isConnected()) return resolve([]);
    const id = nextRequestId++;
    const timer = setTimeout(() => {
      metricsWaiters.delete(id);
      resolve([]);
    }, METRICS_TIMEOUT_MS);
    metricsWaiters.set(id, (metrics) => {
      clearTimeout(timer);
      resolve(metrics);
    });
    send(slot.worker, { pc: 'metrics', id });
  });
  const admin: HttpServer = createAdminServer({
    logger,
    registry: {
      contentType: own.contentType,
      metrics: async () => {
        const perProcess = await Promise.all([options.processRegistry.getMetricsAsJSON(), ...slots.map(workerMetrics)]);
        return `${await AggregatorRegistry.aggregate(perProcess).metrics()}\n${await own.metrics()}`;
      },
    },
    live: () => !stopping,
    ready,
    config: () => ({ ...(views.config as object), workers: workerSummaries(slots) }),
    limits: () => views.limits,
    json: (body) => new Promise((resolve) => {
      const id = nextRequestId++;
      const workers = slots.flatMap((s) => (s.listening && s.worker?.isConnected() ? [s.worker] : []));
      const worker = workers[id % Math.max(1, workers.length)];
      if (worker === undefined) return resolve({ status: 500, body: 'no worker running\n' });
      const timer = setTimeout(() => {
        jsonWaiters.delete(id);
        resolve({ status: 500, body: 'worker did not answer\n' });
      }, config.ratelimit.timeoutMs + 1000);
      jsonWaiters.set(id, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      send(worker, { pc: 'json', id, body });
    }),
  });
  let adminAddress: string;
  try {
    adminAddress = await listen(admin, config.server.admin.address);
  } catch (error) {
    logger.error({ err: (error as Error).message }, 'admin server failed to listen');
    clearInterval(poll);
    stopping = true;
    await stopWorkers(slots, config.server.shutdownTimeoutMs);
    return 1;
  }

  let watcher: ConfigWatcher | undefined;
  if (config.ratelimit.reload.enabled) {
    // Each worker compares fingerprints itself, so an unchanged poll costs it one read of the files.
    watcher = watchConfig(() => watched, config.ratelimit.reload.pollIntervalMs, async () => {
      for (const slot of slots) send(slot.worker, { pc: 'reload' });
    });
    await watcher.ready;
  }
  reloadAll = (): void => {
    logger.info('SIGHUP: reloading every worker');
    for (const slot of slots) send(slot.worker, { pc: 'reload' });
  };

  // The workers run with the supervisor's Node flags (node:cluster's default execArgv).
  logger.info({ grpcAddress, adminAddress, httpAddress, store: config.redis ? 'redis' : 'memory', workers: options.workers, nodeFlags: process.execArgv }, 'portcullis listening');
  if (reloadAsked) reloadAll();

  return new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal, workers: live().length }, 'draining every worker');
      watcher?.close();
      clearInterval(poll);
      for (const slot of slots) clearTimeout(slot.restart);
      void stopWorkers(slots, config.server.shutdownTimeoutMs).then(async () => {
        const closed = new Promise<void>((done) => admin.close(() => done()));
        admin.closeAllConnections();
        await closed;
        logger.info('stopped');
        resolve(0);
      });
    };
    onStop = stop;
    if (requested !== undefined) stop(requested);
  });
}

/** Why one worker is not ready, or nothing: /readyz and /config read it alike, so a worker that stopped answering is shown as such in both. */
function workerReasons(slot: Slot, now: number): string[] {
  const name = `worker ${slot.index + 1}`;
  if (slot.worker === undefined || !slot.worker.isConnected()) return [`${name}: not running`];
  if (slot.status === undefined || now - slot.status.at > STATUS_STALE_MS) return [`${name}: no status`];
  return slot.status.ready ? [] : slot.status.reasons.map((r) => `${name}: ${r}`);
}

function workerSummaries(slots: readonly Slot[]): unknown[] {
  const now = Date.now();
  return slots.map((s) => ({
    worker: s.index + 1,
    pid: s.worker?.process.pid,
    ready: workerReasons(s, now).length === 0,
    decisions: s.status?.decisions ?? 0,
  }));
}

/** SIGTERM to every worker (each drains as a single process does), SIGKILL to any still there after the drain time. */
async function stopWorkers(slots: readonly Slot[], drainMs: number): Promise<void> {
  const workers = slots.flatMap((s) => (s.worker !== undefined && s.worker.process.exitCode === null ? [s.worker] : []));
  await Promise.all(workers.map((worker) => new Promise<void>((resolve) => {
    if (worker.process.exitCode !== null || worker.process.signalCode !== null) return resolve();
    const force = setTimeout(() => worker.process.kill('SIGKILL'), drainMs + 5000);
    worker.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    worker.process.kill('SIGTERM');
  })));
}

// ---------------------------------------------------------------------------------------------------------------
// Worker side

/** Inside a worker, before it builds anything: what to start from (see Handover). The files, if no answer comes. */
export function askForHandover(timeoutMs = 5000): Promise<Handover> {
  return new Promise((resolve) => {
    const done = (handover: Handover): void => {
      clearTimeout(timer);
      process.off('message', onMessage);
      resolve(handover);
    };
    const onMessage = (message: ToWorker): void => {
      if (typeof message === 'object' && message !== null && message.pc === 'handover') done({ startup: message.startup, lastGood: message.lastGood, tls: message.tls });
    };
    const timer = setTimeout(() => done(NO_HANDOVER), timeoutMs);
    process.on('message', onMessage);
    process.send?.({ pc: 'ask-handover' } satisfies FromWorker);
  });
}

/** Inside a worker: answers the supervisor and feeds prom-client's aggregation with this worker's registry. */
export function serveSupervisor(app: App, registry: Registry, addresses: { grpcAddress: string; httpAddress: string | undefined }, logger: Logger): void {
  const reply = (message: FromWorker): void => {
    if (process.connected) process.send?.(message);
  };
  let sentInputs: ConfigInputs | undefined;
  let sentTls: TlsFileBytes | undefined;
  const sendViews = (): void => {
    reply({ pc: 'views', config: app.views.config(), limits: app.views.limits() });
    const inputs = app.configInputs();
    if (inputs !== undefined && inputs !== sentInputs) {
      sentInputs = inputs;
      reply({ pc: 'inputs', inputs, watched: app.watchedPaths() });
    }
    const tls = app.servingTls();
    if (tls !== undefined && tls !== sentTls) {
      sentTls = tls;
      reply({ pc: 'tls', serving: tlsFileTexts(tls) });
    }
  };
  process.on('message', (message: ToWorker) => {
    if (typeof message !== 'object' || message === null || !('pc' in message)) return;
    switch (message.pc) {
      case 'status':
        void decisionsServed(registry).then((decisions) => reply({ pc: 'status', ...app.ready(), decisions }));
        break;
      case 'metrics':
        void registry.getMetricsAsJSON().then((metrics) => reply({ pc: 'metrics', id: message.id, metrics }));
        break;
      case 'handover':
        break;
      case 'reload':
        app.reload().then(sendViews, (error: unknown) => logger.error({ err: error }, 'config reload failed'));
        break;
      case 'json':
        void app.views.json(message.body).then(
          (r) => reply({ pc: 'json', id: message.id, ...r }),
          () => reply({ pc: 'json', id: message.id, status: 500, body: 'internal error\n' }),
        );
        break;
    }
  });
  sendViews();
  reply({ pc: 'listening', grpcAddress: addresses.grpcAddress, httpAddress: addresses.httpAddress });
}

/** ShouldRateLimit answers this worker gave, from its own metrics: /config shows how the load spreads. */
async function decisionsServed(registry: Registry): Promise<number> {
  const metric = registry.getSingleMetric('portcullis_ratelimit_decisions_total');
  if (metric === undefined) return 0;
  const { values } = await metric.get();
  return values.reduce((sum, v) => sum + v.value, 0);
}
