import { createHash } from 'node:crypto';
import { extprocInputs } from './extproc/config.js';
import type { Server as HttpServer } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Registry } from 'prom-client';
import { createHttpClient } from './authz/http-client.js';
import type { AuthzObserver, HttpClient, RevocationList } from './authz/ports.js';
import { parseKeysFile, parseKeysFileOffThread, type ApiKeySet } from './authz/apikey.js';
import { AuthzService, EMPTY_AUTHZ, readAuthzFiles, type AuthzSnapshot } from './authz/service.js';
import { Composer } from './bff/composer.js';
import { describeBff } from './bff/config.js';
import { UndiciUpstreamClient } from './bff/undici-upstream-client.js';
import { MAX_REFERENCED_FILE_BYTES, OFF_THREAD_MIN_CHARS, readConfigFile } from './config/config-text.js';
import { readDescriptorFiles } from './config/descriptor-files.js';
import { ConfigError } from './config/errors.js';
import { ConfigHolder } from './config/holder.js';
import { schemaReader, type ConfigInputs } from './config/inputs.js';
import { checkPortcullisConfigOffThread, parsePortcullisConfig, readPortcullisConfigText, readSchemaFile, redactedConfig, restartOnlyChanges, watchedPaths, type PortcullisConfig } from './config/portcullis-config.js';
import { readSettled, type FileRead } from './config/settle.js';
import { watchConfig, type ConfigWatcher } from './config/watcher.js';
import type { Logger } from './observability/logger.js';
import { createMetrics } from './observability/metrics.js';
import { compileDescriptorFilesOffThread, dumpLimits, type DescriptorFile } from './ratelimit/descriptor-config.js';
import { OverLimitCache } from './ratelimit/local-cache.js';
import { RateLimitService, type RateLimitObserver, type RateLimitSnapshot } from './ratelimit/service.js';
import type { RateLimitConfig } from './ratelimit/types.js';
import { createAdminServer, listen, type AdminDeps } from './server/admin-http.js';
import { createBffServer } from './server/bff-http.js';
import { DeadlineSignals } from './server/deadline-signals.js';
import { pooledRandomHex } from './shared/random-hex.js';
import { startGrpcServer, type GrpcServer } from './server/grpc-server.js';
import { clientSanInterceptor, clientSanPolicy, RefusalLog } from './server/grpc-client-sans.js';
import { grpcTlsFiles } from './server/grpc-tls-config.js';
import { ServerTlsIdentity, type GrpcTlsObserver } from './server/grpc-tls-identity.js';
import type { TlsFileBytes } from './server/grpc-tls-material.js';
import { authzHandlers } from './server/authz-handler.js';
import { externalProcessorHandlers } from './server/extproc-handler.js';
import { authorizationServiceDefinition, externalProcessorServiceDefinition, rateLimitServiceDefinition } from './server/protos.js';
import { handleJsonRequest, rateLimitHandlers } from './server/ratelimit-handler.js';
import type { Clock } from './shared/clock.js';
import { ErrorCode } from './shared/errors.js';
import { FailureStreak } from './shared/failure-streak.js';
import type { CacheStore } from './store/cache-store.js';
import type { CounterStore } from './store/counter-store.js';
import { MemoryRevocationList } from './store/revocation-list.js';
import { MemoryCacheStore } from './store/memory-cache-store.js';

export interface AppDeps {
  readonly config: PortcullisConfig;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly store: CounterStore;
  readonly random: () => number;
  /** JWT jti / API key revocation; default: in memory (one instance). */
  readonly revocation?: RevocationList;
  /** For JWKS, OIDC discovery and introspection; default: undici. */
  readonly http?: HttpClient;
  /** The ext_proc response cache; default: in memory, bounded by extproc.cache.max_memory_bytes. */
  readonly cache?: CacheStore;
  /** A worker under src/server/supervisor.ts: the supervisor serves the admin port and watches the files. */
  readonly worker?: boolean;
  /** Why the counter store's connection is down, as the connection log last said it (redacted): /readyz shows it. */
  readonly storeTrouble?: () => string | undefined;
}

export interface App {
  /**
   * Loads the config and binds the servers; resolves with the addresses actually bound (port 0 works). httpAddress:
   * the composer, when on. `from`: what a sibling worker runs (a supervisor's hand-over), loaded first, then the files.
   */
  start(from?: ConfigInputs, servingTls?: TlsFileBytes): Promise<{ grpcAddress: string; adminAddress: string; httpAddress: string | undefined }>;
  /** Re-reads portcullis.yaml and the files it names; keeps the last good config on error. */
  reload(): Promise<void>;
  /** What the config in use was loaded from (undefined before the first good load), for a supervisor to hand over. */
  configInputs(): ConfigInputs | undefined;
  /** The gRPC listener's TLS material served now (undefined: plaintext, or not started), for a supervisor to hand over. */
  servingTls(): TlsFileBytes | undefined;
  /** The files and directories the config in use was built from: what a supervisor watches for its workers. */
  watchedPaths(): string[];
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
  readonly authz: AuthzSnapshot;
}

/** A reload reads the files at most this many times more while they keep changing (ratelimit.reload.settle_ms). */
const SETTLE_MAX_REREADS = 20;
/** How long parsing the keys file may take in its worker thread (parseKeysFileOffThread): 100,000 keys take about 6 s. */
const KEYS_LOAD_TIMEOUT_MS = 60_000;
/** Checks shed by authz.introspection.max_in_flight: the metric counts each, the log says so at most this often. */
const INTROSPECTION_SHED_LOG_EVERY_MS = 60_000;
/** How long checking a large portcullis.yaml may take in its worker thread (at most 1 MiB: seconds at worst). */
const CONFIG_CHECK_TIMEOUT_MS = 30_000;

/** Composition root: builds every dependency once and passes it down. */
export function buildApp(deps: AppDeps): App {
  const { logger, registry, store, clock } = deps;
  const cache = deps.cache ?? new MemoryCacheStore(deps.config.extproc.cache.maxMemoryBytes);
  const metrics = createMetrics(registry, deps.config.ratelimit.metrics.maxKeys);
  const holder = new ConfigHolder<Loaded>({ config: deps.config, snapshot: { settings: deps.config.ratelimit, config: undefined }, authz: EMPTY_AUTHZ });
  const revocation = deps.revocation ?? new MemoryRevocationList(clock);
  // An introspection endpoint that refuses the gateway's credentials or answers garbage fails every Check: the log
  // says so once per change of state (and per new reason), the metric counts each.
  const introspectionStreak = new FailureStreak(clock);
  let shedLoggedMs = Number.NEGATIVE_INFINITY;
  let shedSinceLog = 0;
  const authzObserver: AuthzObserver = {
    ...metrics.authz,
    introspectionError(detail) {
      metrics.authz.introspectionError(detail);
      if (introspectionStreak.failed(detail)) logger.warn({ error: detail }, 'introspection failing; answering with introspection.on_failure');
    },
    introspectionAnswered() {
      const failures = introspectionStreak.answered();
      if (failures !== undefined) logger.info({ failures }, 'introspection answering again');
    },
    // A flood of distinct junk tokens sheds thousands of Checks a second: the metric counts each, the log says it
    // at most once a minute, with how many were shed since its last line.
    introspectionShed(detail) {
      metrics.authz.introspectionShed(detail);
      shedSinceLog++;
      const nowMs = clock.nowMs();
      if (nowMs - shedLoggedMs < INTROSPECTION_SHED_LOG_EVERY_MS) return;
      logger.warn({ error: detail, shed: shedSinceLog }, 'introspection calls at authz.introspection.max_in_flight; answering Checks that need another with introspection.on_failure');
      shedLoggedMs = nowMs;
      shedSinceLog = 0;
    },
  };
  // A JWKS that cannot be fetched is retried with backoff (jwks.ts) for as long as the issuer is down: the log says
  // when a provider's fetches start failing, each new reason why, and when they succeed again; the metric counts each.
  const jwksStreaks = new Map<string, FailureStreak>();
  const jwksStreak = (provider: string): FailureStreak => {
    let streak = jwksStreaks.get(provider);
    if (streak === undefined) jwksStreaks.set(provider, (streak = new FailureStreak(clock, undefined, undefined, true)));
    return streak;
  };
  const authz = new AuthzService({
    clock, revocation, http: deps.http ?? createHttpClient(), observer: authzObserver,
    onKeyRefresh(provider, result, error) {
      const streak = jwksStreak(provider);
      if (result === 'error') {
        if (streak.failed(error)) logger.warn({ provider, error }, 'JWKS refresh failing; keeping the last good keys, retrying with backoff');
        return;
      }
      const failures = streak.answered();
      if (failures !== undefined) logger.info({ provider, failures }, 'JWKS refreshed again');
      else logger.debug({ provider }, 'JWKS refreshed');
    },
    random: deps.random,
    onKeysSkipped: (provider, skipped) => logger.warn({ provider, skipped }, 'JWKS keys skipped: each is named with why; the others serve'),
  });
  const overLimitCache = new OverLimitCache(deps.config.ratelimit.localCache.maxEntries);
  // A Redis that refuses to count (out of memory, read-only) still answers PING, so /readyz stays green while every
  // request gets the failure_mode answer: the log says when that starts and when counting resumes, once each.
  // Timeouts are left to the store probe ('counter store unreachable'): one slow call under load is not an outage.
  const storeStreak = new FailureStreak(clock);
  const ratelimitObserver: RateLimitObserver = {
    ...metrics.ratelimit,
    storeError(code, message) {
      metrics.ratelimit.storeError(code);
      if (code === ErrorCode.STORE_UNAVAILABLE && storeStreak.failed(message)) {
        logger.warn({ err: message, failureMode: holder.current().config.ratelimit.failureMode }, 'counter store failing; answering with ratelimit.failure_mode');
      }
    },
    storeAnswered() {
      const failures = storeStreak.answered();
      if (failures !== undefined) logger.info({ failures }, 'counter store answering again');
    },
  };
  const service = new RateLimitService({
    store, clock, overLimitCache, random: deps.random, observer: ratelimitObserver,
    snapshot: () => holder.current().snapshot,
  });
  const upstream = new UndiciUpstreamClient();
  const composer = new Composer({ client: upstream, observer: metrics.bff, now: () => performance.now() });
  let inFlight = 0;
  let drained: (() => void) | undefined;
  let shuttingDown = false;
  let storeReachable = false;
  let lastFingerprint = '';
  /** What the config in use was loaded from; undefined before the first good load. */
  let lastGood: ConfigInputs | undefined;
  /** Settings the file changed that the process applies only on restart (restartOnlyChanges), for the log and /config. */
  let restartPending: string[] = [];
  let grpc: GrpcServer | undefined;
  /** The gRPC listener's certificate (server.grpc.tls), re-read on every reload; undefined: plaintext. */
  let tlsIdentity: ServerTlsIdentity | undefined;
  const tlsObserver: GrpcTlsObserver = {
    loaded(material, rotated) {
      metrics.grpcTls.certificateLoaded(material.notAfter, rotated);
      logger.info({ fingerprint: material.fingerprint, notAfter: material.notAfter.toISOString() }, rotated ? 'gRPC TLS certificate rotated: new connections get it' : 'gRPC TLS certificate loaded');
    },
    rotationRefused({ setting, file, problem }) {
      metrics.grpcTls.rotationRefused();
      logger.warn({ setting: `server.grpc.tls.${setting}`, file, problem }, 'gRPC TLS certificate files refused; new connections keep getting the last good certificate');
    },
  };
  /** The gRPC listener's certificate files: watched, though `server` waits for a restart (their content does not). */
  const tlsFiles = grpcTlsFiles(deps.config.server.grpc.tls);
  const allWatchedPaths = (): string[] => [...new Set([...watchedPaths(holder.current().config), ...tlsFiles])];
  let admin: HttpServer | undefined;
  let bffServer: HttpServer | undefined;
  let watcher: ConfigWatcher | undefined;
  let storeProbe: NodeJS.Timeout | undefined;
  /** gRPC calls and composer requests: SIGTERM waits for both. */
  const inFlightRequests = {
    enter: (): void => void inFlight++,
    leave: (): void => {
      inFlight--;
      if (inFlight === 0) drained?.();
    },
  };

  // Loads run one at a time: the watcher, SIGHUP and a supervisor's message may each ask for one at any time, and of
  // two overlapping loads the one that read the files first may finish last and swap the older config back in.
  // Reloads asked for while one waits its turn share it: it reads the files as they are when it starts.
  let lastLoad: Promise<void> = Promise.resolve();
  let waitingReload: Promise<void> | undefined;
  const inTurn = (source?: ConfigInputs): Promise<void> => {
    const next = lastLoad.catch(() => undefined).then(() => {
      if (source === undefined) waitingReload = undefined;
      return load(source);
    });
    lastLoad = next;
    return next;
  };
  const reload = (): Promise<void> => (waitingReload ??= inTurn());

  /**
   * Reads the files on disk, or takes `source` (what a sibling worker last loaded: a replacement's start), and swaps
   * in the config they make; keeps the last good one when they make none. Only through inTurn().
   */
  /** What one read of the files (or of `source`) makes; the fingerprint covers every text read. */
  interface Read {
    readonly text: string;
    readonly config: PortcullisConfig;
    readonly schemas: Record<string, string>;
    readonly descriptors: readonly DescriptorFile[];
    readonly authzTexts: ReadonlyMap<string, string>;
  }
  const read = async (source: ConfigInputs | undefined): Promise<FileRead<Read | ConfigError>> => {
    const previous = holder.current();
    const file = previous.config.file;
    try {
      const text = source?.text ?? await readPortcullisConfigText(file);
      const readSchema = source === undefined ? readSchemaFile : schemaReader(source);
      const schemas: Record<string, string> = {};
      const recordSchema = (f: string): string => (schemas[f] = readSchema(f));
      // Every poll lands here: an unchanged file costs a read, not a YAML parse (2 % of a core under load).
      if (text !== lastGood?.text) await checkOffThread(text, file);
      let config = text === lastGood?.text ? previous.config : parsePortcullisConfig(text, file, { schema: recordSchema });
      if (config === previous.config) {
        for (const f of extprocInputs(config.extproc)) {
          try {
            schemas[f] = source === undefined ? await readConfigFile({ file: f, setting: '', what: 'JSON Schema file', maxBytes: MAX_REFERENCED_FILE_BYTES }) : readSchema(f);
          } catch (error) {
            throw error instanceof ConfigError ? error : new ConfigError([{ file: f, line: undefined, path: '', message: `cannot read JSON Schema file: ${(error as Error).message}` }]);
          }
        }
        // JSON Schemas are compiled while the config is parsed: an edited schema file means parsing the text again.
        if (!sameTexts(schemas, lastGood?.schemas)) config = parsePortcullisConfig(text, file, { schema: (f) => schemas[f] ?? recordSchema(f) });
      }
      const descriptors = source?.descriptors ?? await readDescriptorFiles(config.ratelimit.descriptors, config.ratelimit.descriptorsMaxBytes);
      const authzTexts = source === undefined ? await readAuthzFiles(config.authz) : new Map(Object.entries(source.authz));
      const hash = createHash('sha256').update(text);
      for (const f of descriptors) hash.update('\0').update(f.name).update('\0').update(f.text);
      for (const [name, content] of authzTexts) hash.update('\0').update(name).update('\0').update(content);
      // By name: a parse reads the schemas in route order, an unchanged text's poll in extprocInputs' order.
      for (const name of Object.keys(schemas).sort()) hash.update('\0').update(name).update('\0').update(schemas[name]!);
      return { key: hash.digest('hex'), result: { text, config, schemas, descriptors, authzTexts } };
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      return { key: `error:${error.message}`, result: error };
    }
  };

  /**
   * A large portcullis.yaml is parsed in a worker first (checkPortcullisConfigOffThread), once per text: a file that
   * keeps changing is read again while it settles, and a bad one must not cost the serving thread a parse per read.
   */
  let lastChecked: { readonly text: string; readonly error: ConfigError | undefined } | undefined;
  const checkOffThread = async (text: string, file: string): Promise<void> => {
    if (text.length < OFF_THREAD_MIN_CHARS) return;
    if (lastChecked?.text !== text) {
      const error = await checkPortcullisConfigOffThread(text, file, CONFIG_CHECK_TIMEOUT_MS).then(() => undefined, (e: unknown) => e);
      if (error !== undefined && !(error instanceof ConfigError)) throw error;
      lastChecked = { text, error };
    }
    if (lastChecked.error !== undefined) throw lastChecked.error;
  };
  /** The keys file last parsed, by path and text: a reload that leaves it alone does not parse it again. */
  let lastKeys: { readonly file: string; readonly text: string; readonly set: ApiKeySet } | undefined;
  const keySet = async (file: string | undefined, texts: ReadonlyMap<string, string>): Promise<ApiKeySet | undefined> => {
    const text = file === undefined ? undefined : texts.get(file);
    if (file === undefined || text === undefined) return undefined;
    if (lastKeys?.file !== file || lastKeys.text !== text) {
      // A keys file may hold a hundred thousand keys (seconds of YAML), or be hostile: a large one parses in a worker.
      const set = text.length < OFF_THREAD_MIN_CHARS ? parseKeysFile(text, file) : await parseKeysFileOffThread(text, file, KEYS_LOAD_TIMEOUT_MS);
      lastKeys = { file, text, set };
    }
    return lastKeys.set;
  };

  /**
   * Reads the files on disk, or takes `source` (what a sibling worker last loaded: a replacement's start), and swaps
   * in the config they make; keeps the last good one when they make none. Only through inTurn().
   */
  const load = async (source?: ConfigInputs): Promise<void> => {
    if (tlsIdentity !== undefined && source === undefined) {
      await tlsIdentity.refresh(deps.config.ratelimit.reload.settleMs).catch((error: unknown) => logger.error({ err: error }, 'gRPC TLS certificate refresh failed'));
    }
    // A reload waits for the files to settle (readSettled): a writer caught halfway must not be applied, nor reported
    // as an error. The first load and a hand-over do not wait: nothing older is serving yet, or the text is final.
    const settleMs = source === undefined && lastFingerprint !== '' ? deps.config.ratelimit.reload.settleMs : 0;
    const { key: fingerprint, result } = await readSettled(() => read(source), { known: lastFingerprint, settleMs, maxRereads: SETTLE_MAX_REREADS, sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)) });
    if (fingerprint === lastFingerprint) return;
    try {
      if (result instanceof ConfigError) throw result;
      const { text, config, schemas, descriptors, authzTexts } = result;
      const rateLimitConfig: RateLimitConfig = await compileDescriptorFilesOffThread(descriptors, config.ratelimit.descriptorsLoadTimeoutMs, config.ratelimit.descriptors);
      const waiting = restartOnlyChanges(deps.config, config);
      if (waiting.length > 0 && waiting.join() !== restartPending.join()) logger.warn({ settings: waiting }, 'settings changed in the config file that take effect on restart');
      restartPending = waiting;
      const authzSnapshot = authz.prepare(config.authz, authzTexts, await keySet(config.authz?.apiKeys?.file, authzTexts));
      holder.swap({ config, snapshot: { settings: config.ratelimit, config: rateLimitConfig }, authz: authzSnapshot });
      authz.retain(authzSnapshot);
      lastFingerprint = fingerprint;
      lastGood = { text, schemas, descriptors, authz: Object.fromEntries(authzTexts) };
      upstream.retain(config.bff.services.values()).catch((error: unknown) => logger.warn({ err: error }, 'closing unused bff pools failed'));
      metrics.configLoads.inc({ result: 'success' });
      metrics.configLastSuccess.set(clock.nowMs() / 1000);
      logger.info({ domains: [...rateLimitConfig.domains.keys()], files: descriptors.map((f) => f.name), policies: authzSnapshot.policies.ordered.map((p) => p.name), bffEndpoints: config.bff.endpoints.length }, 'config loaded');
      if (config.bff.endpoints.length > 0 && config.server.http === undefined) logger.warn('bff endpoints are configured but server.http.address is not set: the composer is off');
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      // Report a broken state once, not on every poll: the next poll reads the same files, or the same error, and
      // stops at the fingerprint check above (nor does it wait for the files to settle or compile them again).
      lastFingerprint = fingerprint;
      metrics.configLoads.inc({ result: 'error' });
      metrics.configLastFailure.set(clock.nowMs() / 1000);
      logger.error({ issues: error.issues.length, errors: error.listed }, 'config rejected; keeping the last good config');
    }
  };

  const ready = (): { ready: boolean; reasons: string[] } => {
    const reasons: string[] = [];
    if (shuttingDown) reasons.push('shutting down');
    if (holder.current().snapshot.config === undefined) reasons.push('no rate limit configuration loaded');
    if (!storeReachable) {
      const trouble = deps.storeTrouble?.();
      reasons.push(trouble === undefined ? 'counter store not reachable' : `counter store not reachable: ${trouble}`);
    }
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
    // The file's config as applied, and which of its settings wait for a restart (still running with start-up values).
    config: () => ({ ...(redactedConfig(holder.current().config) as object), pendingRestart: restartPending, domains: [...(holder.current().snapshot.config?.domains.keys() ?? [])], bff: describeBff(holder.current().config.bff) }),
    limits: () => dumpLimits(holder.current().snapshot.config),
    json: (body) => handleJsonRequest(service, body, AbortSignal.timeout(holder.current().config.ratelimit.timeoutMs)),
  };

  return {
    reload,
    ready,
    views,
    configInputs: () => lastGood,
    servingTls: () => tlsIdentity?.served,
    watchedPaths: allWatchedPaths,
    async start(from, servingTls) {
      await inTurn(from);
      // The hand-over may predate an edit the siblings were told to load before this worker could hear it.
      if (from !== undefined) await reload();
      const settings = deps.config;
      const tls = settings.server.grpc.tls;
      if (tls !== undefined) tlsIdentity = await ServerTlsIdentity.load(tls, tlsObserver, undefined, servingTls);
      const refusals = new RefusalLog(clock, (reason) => metrics.grpcTls.clientRefused(reason), (entry) =>
        logger.warn(entry, 'gRPC calls refused: client certificate not allowed by server.grpc.tls.client_sans (at most one line a minute)'));
      const interceptors = tls?.clientSans === undefined ? [] : [clientSanInterceptor(clientSanPolicy(tls.clientSans), (verdict, peer) => refusals.refused(verdict, peer))];
      const authzDefinition = authorizationServiceDefinition();
      grpc = await startGrpcServer(settings.server.grpc.address, [{
        definition: rateLimitServiceDefinition(),
        implementation: rateLimitHandlers({
          service,
          logger,
          deadlines: new DeadlineSignals(),
          timeoutMs: () => holder.current().config.ratelimit.timeoutMs,
          onError: (code) => metrics.ratelimit.serviceError(code),
          observeDuration: (s) => metrics.ratelimit.observeDuration(s),
          inFlight: inFlightRequests,
        }),
      }, {
        definition: authzDefinition,
        implementation: authzHandlers({
          service: authz,
          snapshot: () => holder.current().authz,
          logger,
          // 10 ms slots: a Check's budget is hundreds of ms (0.8 of Envoy's timeout), so firing up to 10 ms late costs
          // nothing, and one AbortController per 10 ms instead of per 2 ms was a visible share of an API-key Check.
          deadlines: new DeadlineSignals(10),
          timeoutMs: () => holder.current().config.authz?.timeoutMs ?? 1000,
          observe: (decision, seconds) => metrics.authz.check(decision, seconds),
          onError: (code) => metrics.authz.serviceError(code),
          inFlight: inFlightRequests,
        }),
      }, {
        definition: externalProcessorServiceDefinition(),
        implementation: externalProcessorHandlers({
          settings: () => holder.current().config.extproc,
          cache, clock, log: logger,
          randomHex: pooledRandomHex(),
          observer: metrics.extproc,
          inFlight: inFlightRequests,
        }),
      }], {
        limits: settings.server.grpc, maxReceiveMessageBytes: settings.extproc.maxMessageBytes, clearStaleSocket: !deps.worker,
        ...(tlsIdentity === undefined ? {} : { credentials: tlsIdentity.credentials() }), interceptors,
      });
      revocation.start();
      let httpAddress: string | undefined;
      if (settings.server.http !== undefined) {
        bffServer = createBffServer({
          config: () => holder.current().config.bff, composer, observer: metrics.bff, logger, now: () => performance.now(),
          inFlight: inFlightRequests,
        });
        httpAddress = await listen(bffServer, settings.server.http.address);
      }
      await probeStore();
      storeProbe = setInterval(() => void probeStore(), 1000);
      storeProbe.unref();
      if (deps.worker) return { grpcAddress: grpc.address, adminAddress: '', httpAddress };
      admin = createAdminServer({
        registry, logger, ready, ...views,
        live: () => !shuttingDown,
      });
      const adminAddress = await listen(admin, settings.server.admin.address);
      if (settings.ratelimit.reload.enabled) {
        watcher = watchConfig(allWatchedPaths, settings.ratelimit.reload.pollIntervalMs, () =>
          reload().catch((error: unknown) => logger.error({ err: error }, 'config reload failed')),
        );
        await watcher.ready;
      }
      return { grpcAddress: grpc.address, adminAddress, httpAddress };
    },
    async close() {
      shuttingDown = true;
      grpc?.setServing('NOT_SERVING');
      watcher?.close();
      clearInterval(storeProbe);
      bffServer?.close();
      bffServer?.closeIdleConnections();
      // One deadline for the whole drain. tryShutdown stops accepting at once (listener closed, HTTP/2 GOAWAY on
      // every connection, so Envoy moves new calls elsewhere) and lets the calls in flight finish, while the
      // composer's listener, closed above, finishes its requests. Waiting for the in-flight count to reach zero
      // before closing never ended under steady load, since new calls kept arriving.
      const timeoutMs = holder.current().config.server.shutdownTimeoutMs;
      const requestsDone = inFlight === 0 ? undefined : Promise.race([
        new Promise<void>((resolve) => (drained = resolve)),
        new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref()),
      ]);
      await Promise.all([grpc?.shutdown(timeoutMs), requestsDone]);
      if (admin) {
        const server = admin;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await closed;
      }
      authz.close();
      await revocation.close();
      bffServer?.closeAllConnections();
      await upstream.close();
      await store.close();
      await cache.close();
    },
  };
}

/** Whether two path → text records hold the same files with the same texts (in any order). */
function sameTexts(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>> | undefined): boolean {
  if (b === undefined) return false;
  const names = Object.keys(a);
  return names.length === Object.keys(b).length && names.every((name) => Object.hasOwn(b, name) && b[name] === a[name]);
}
