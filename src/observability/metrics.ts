import { getHeapStatistics } from 'node:v8';
import { collectDefaultMetrics, Counter, Gauge, Histogram, type Aggregator, type Registry } from 'prom-client';
import type { BffObserver } from '../bff/composer.js';
import type { LimitStats } from '../ratelimit/decide.js';
import type { AuthzObserver } from '../authz/ports.js';
import type { Decision } from '../authz/types.js';
import type { RateLimitObserver } from '../ratelimit/service.js';
import { extprocMetrics, type ExtprocMetrics } from './extproc-metrics.js';
import { HotCounter, type HotSeries } from './hot-counter.js';
import { HotHistogram } from './hot-histogram.js';

const OVERFLOW = '__overflow__';

/**
 * Caps the number of distinct label values one metric family may create: per-value stats
 * (detailed_metric, value_to_metric, limit overrides) would otherwise grow without bound
 * (envoyproxy/ratelimit#275). Past the cap, values are folded into `__overflow__` and counted.
 */
class LabelBudget {
  private readonly seen = new Set<string>();
  constructor(private readonly max: number, private readonly overflow: Counter) {}
  admit(value: string): string {
    if (this.seen.has(value)) return value;
    if (this.seen.size < this.max) {
      this.seen.add(value);
      return value;
    }
    this.overflow.inc();
    return OVERFLOW;
  }
}

export interface Metrics {
  readonly ratelimit: RateLimitObserver & {
    storeError(code: string): void;
    serviceError(code: string): void;
    observeDuration(seconds: number): void;
  };
  readonly authz: AuthzMetrics;
  readonly extproc: ExtprocMetrics;
  readonly configLoads: Counter<'result'>;
  readonly configLastSuccess: Gauge;
  readonly configLastFailure: Gauge;
  readonly bff: BffObserver;
  readonly grpcTls: GrpcTlsMetrics;
}

/** server.grpc.tls: certificate loads and rotations, and calls refused by client_sans. */
export interface GrpcTlsMetrics {
  /** The serving certificate now served (at start-up or by a rotation) expires at `notAfter`. */
  certificateLoaded(notAfter: Date, rotated: boolean): void;
  /** A rotation's files were refused (the last good certificate keeps serving). */
  rotationRefused(): void;
  clientRefused(reason: string): void;
}

type StatName = Exclude<keyof LimitStats, 'key'>;
const STAT_METRICS: readonly [StatName, string, string][] = [
  ['totalHits', 'portcullis_ratelimit_total_hits_total', 'Hits counted against a limit.'],
  ['overLimit', 'portcullis_ratelimit_over_limit_total', 'Hits over the limit.'],
  ['nearLimit', 'portcullis_ratelimit_near_limit_total', 'Hits above near_limit_ratio of the limit.'],
  ['withinLimit', 'portcullis_ratelimit_within_limit_total', 'Hits within the limit.'],
  ['overLimitWithLocalCache', 'portcullis_ratelimit_over_limit_with_local_cache_total', 'Over-limit hits answered by the local cache.'],
  ['shadowMode', 'portcullis_ratelimit_shadow_mode_total', 'Over-limit hits let through by shadow_mode.'],
];

/** All Portcullis metrics, registered on the registry passed in (never the global one). */
export function createMetrics(registry: Registry, maxKeys: number): Metrics {
  const registers = [registry];
  const overflow = new Counter({ name: 'portcullis_ratelimit_stats_keys_overflow_total', help: 'Label values folded into "__overflow__": stat keys past ratelimit.metrics.max_keys, domains past min(max_keys, 1000).', registers });
  const keys = new LabelBudget(maxKeys, overflow);
  const domains = new LabelBudget(Math.max(1, Math.min(maxKeys, 1000)), overflow);
  const stats = STAT_METRICS.map(([field, name, help]) => [field, new HotCounter({ name, help, labelNames: ['key'], registers })] as const);
  const children = new Map<string, { field: StatName; counter: HotSeries }[]>();
  const decisionSeries = new Map<string, Map<string, HotSeries>>();
  const decisions = new HotCounter({ name: 'portcullis_ratelimit_decisions_total', help: 'ShouldRateLimit answers by domain and overall code.', labelNames: ['domain', 'code'], registers });
  const domainNotFound = new Counter({ name: 'portcullis_ratelimit_domain_not_found_total', help: 'Descriptors for a domain no file defines.', labelNames: ['domain'], registers });
  const globalShadow = new Counter({ name: 'portcullis_ratelimit_global_shadow_mode_total', help: 'OVER_LIMIT answers turned into OK by the global shadow_mode.', registers });
  const localCache = new Counter({ name: 'portcullis_ratelimit_local_cache_hits_total', help: 'Limits answered from the local over-limit cache without the store.', registers });
  const storeErrors = new Counter({ name: 'portcullis_ratelimit_store_errors_total', help: 'Requests whose counter store call failed, by error code.', labelNames: ['code'], registers });
  const serviceErrors = new Counter({ name: 'portcullis_ratelimit_service_errors_total', help: 'Requests answered with a gRPC error, by error code.', labelNames: ['code'], registers });
  const requestDuration = new HotHistogram({
    name: 'portcullis_ratelimit_request_duration_seconds', help: 'ShouldRateLimit handling time.', registers,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
  }).bind();
  return {
    ratelimit: {
      limitStats(list) {
        for (const s of list) {
          const key = keys.admit(s.key);
          let series = children.get(key);
          if (series === undefined) {
            series = stats.map(([field, counter]) => ({ field, counter: counter.bind({ key }) }));
            children.set(key, series);
          }
          for (const { field, counter } of series) if (s[field] > 0) counter.inc(s[field]);
        }
      },
      domainNotFound(domain, descriptors) {
        domainNotFound.inc({ domain: domains.admit(domain) }, descriptors);
      },
      decision(domain, code, shadow) {
        // Series bound once per domain and code: no label hashing or key string per request.
        const admitted = domains.admit(domain);
        let byCode = decisionSeries.get(admitted);
        if (byCode === undefined) {
          byCode = new Map();
          decisionSeries.set(admitted, byCode);
        }
        let series = byCode.get(code);
        if (series === undefined) {
          series = decisions.bind({ domain: admitted, code });
          byCode.set(code, series);
        }
        series.inc();
        if (shadow) globalShadow.inc();
      },
      localCacheHit() {
        localCache.inc();
      },
      storeError(code) {
        storeErrors.inc({ code });
      },
      // Nothing to count: a success is every decision. (app.ts logs the end of a run of store errors.)
      storeAnswered() {},
      serviceError(code) {
        serviceErrors.inc({ code });
      },
      observeDuration(seconds) {
        requestDuration.observe(seconds);
      },
    },
    authz: createAuthzMetrics(registry),
    extproc: extprocMetrics(registers),
    bff: createBffMetrics(registry),
    grpcTls: createGrpcTlsMetrics(registry),
    configLoads: new Counter({ name: 'portcullis_config_loads_total', help: 'Config (re)loads by result.', labelNames: ['result'], registers }),
    // Across workers (prom-client's cluster aggregation) the oldest: a worker that missed a reload shows, where the
    // default sum would be a date twice as far away per extra worker.
    configLastSuccess: new Gauge({ name: 'portcullis_config_last_success_timestamp_seconds', help: 'When the running config was loaded (with workers: the oldest of theirs).', registers, aggregator: 'min' }),
    // Later than the last success: the files on disk are rejected right now, which the loads counter cannot tell (a
    // rejection counts once, and whether a success followed is lost in any window). Across workers the newest.
    configLastFailure: new Gauge({ name: 'portcullis_config_last_failure_timestamp_seconds', help: 'When a config reload was last rejected (0: never; with workers: the newest of theirs).', registers, aggregator: 'max' }),
  };
}

function createGrpcTlsMetrics(registry: Registry): GrpcTlsMetrics {
  const registers = [registry];
  // Registered with the first certificate: a gauge never set reads 0 (expired in 1970), which a plaintext listener
  // would export and PortcullisTlsCertificateExpiring take for a certificate. Across workers the soonest.
  let expiry: Gauge | undefined;
  const rotations = new Counter({ name: 'portcullis_grpc_tls_certificate_rotations_total', help: 'Certificate files of server.grpc.tls read again after they changed, by result (error: the last good certificate keeps serving).', labelNames: ['result'], registers });
  const refused = new Counter({ name: 'portcullis_grpc_tls_client_refused_total', help: 'gRPC calls refused because of the client certificate (server.grpc.tls.client_sans), by reason.', labelNames: ['reason'], registers });
  return {
    certificateLoaded(notAfter, rotated) {
      expiry ??= new Gauge({ name: 'portcullis_grpc_tls_certificate_expiry_timestamp_seconds', help: 'When the gRPC listener\'s serving certificate expires (server.grpc.tls; with workers: the soonest of theirs).', registers, aggregator: 'min' });
      expiry.set(notAfter.getTime() / 1000);
      if (rotated) rotations.inc({ result: 'success' });
    },
    rotationRefused: () => rotations.inc({ result: 'error' }),
    clientRefused: (reason) => refused.inc({ reason }),
  };
}

export interface AuthzMetrics extends AuthzObserver {
  check(decision: Decision, seconds: number): void;
  serviceError(code: string): void;
}

/**
 * ext_authz metrics. Labels are bounded: policy names come from the config (capped all the same, reloads can add
 * names), decision and reason from closed sets, provider names from the config. No identity, key or token ever
 * becomes a label.
 */
function createAuthzMetrics(registry: Registry): AuthzMetrics {
  const registers = [registry];
  const overflow = new Counter({ name: 'portcullis_authz_label_overflow_total', help: 'Label values folded into "__overflow__" (too many distinct policy or provider names).', registers });
  const policies = new LabelBudget(200, overflow);
  const providers = new LabelBudget(100, overflow);
  const checks = new HotCounter({ name: 'portcullis_authz_checks_total', help: 'Check answers by policy, decision and reason.', labelNames: ['policy', 'decision', 'reason'], registers });
  const checkDuration = new HotHistogram({
    name: 'portcullis_authz_check_duration_seconds', help: 'Check handling time.', registers,
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
  }).bind();
  const refreshes = new Counter({ name: 'portcullis_authz_jwks_refreshes_total', help: 'JWKS fetches by provider and result.', labelNames: ['provider', 'result'], registers });
  const cache = new HotCounter({ name: 'portcullis_authz_cache_lookups_total', help: 'Verified-token cache lookups (jwt, introspection) by result; hit ratio = hit / (hit + miss).', labelNames: ['cache', 'result'], registers });
  const introspection = new Counter({ name: 'portcullis_authz_introspection_errors_total', help: 'Introspection calls that failed or timed out.', registers });
  const shed = new Counter({
    name: 'portcullis_authz_introspection_shed_total',
    help: 'Checks answered with introspection.on_failure without a call: authz.introspection.max_in_flight calls to the endpoint were under way.',
    registers,
  });
  const revocation = new Counter({ name: 'portcullis_authz_revocation_unavailable_total', help: 'Revocation lookups answered while the local copy was too old to trust.', registers });
  const errors = new Counter({ name: 'portcullis_authz_service_errors_total', help: 'Checks answered with a gRPC error, by error code.', labelNames: ['code'], registers });
  // Bound children by admitted policy label, then reason (the reason implies the decision): no key string per Check.
  const series = new Map<string, Map<string, HotSeries>>();
  // One lookup per Check with a bearer token: the four series are bound once.
  const cacheSeries = {
    jwt: { hit: cache.bind({ cache: 'jwt', result: 'hit' }), miss: cache.bind({ cache: 'jwt', result: 'miss' }) },
    introspection: { hit: cache.bind({ cache: 'introspection', result: 'hit' }), miss: cache.bind({ cache: 'introspection', result: 'miss' }) },
  };
  return {
    check(decision, seconds) {
      const policy = policies.admit(decision.policy || '__none__');
      let byReason = series.get(policy);
      if (byReason === undefined) series.set(policy, (byReason = new Map()));
      let child = byReason.get(decision.reason);
      if (child === undefined) byReason.set(decision.reason, (child = checks.bind({ policy, decision: decision.allow ? 'allow' : 'deny', reason: decision.reason })));
      child.inc();
      checkDuration.observe(seconds);
    },
    jwksRefresh(provider, result) {
      refreshes.inc({ provider: providers.admit(provider), result });
    },
    cacheLookup(name, result) {
      cacheSeries[name][result].inc();
    },
    introspectionError() {
      introspection.inc();
    },
    introspectionAnswered() {},
    introspectionShed() {
      shed.inc();
    },
    revocationUnavailable() {
      revocation.inc();
    },
    serviceError(code) {
      errors.inc({ code });
    },
  };
}

/** Endpoints and calls come from the config; the budget still caps them across many reloads. */
const MAX_BFF_SERIES = 1000;

function createBffMetrics(registry: Registry): BffObserver {
  const registers = [registry];
  const overflow = new Counter({ name: 'portcullis_bff_labels_overflow_total', help: 'Composer observations folded into endpoint/call "__overflow__" because more than 1000 distinct ones were seen.', registers });
  const endpoints = new LabelBudget(MAX_BFF_SERIES, overflow);
  const calls = new LabelBudget(MAX_BFF_SERIES, overflow);
  const buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
  const answers = new Counter({ name: 'portcullis_bff_requests_total', help: 'Composer answers by endpoint (path template) and HTTP status.', labelNames: ['endpoint', 'status'], registers });
  const answerDuration = new Histogram({ name: 'portcullis_bff_request_duration_seconds', help: 'Composer answer time by endpoint.', labelNames: ['endpoint'], buckets, registers });
  const degradedAnswers = new Counter({ name: 'portcullis_bff_degraded_answers_total', help: 'Answers with at least one degraded part, by endpoint.', labelNames: ['endpoint'], registers });
  const callDuration = new Histogram({ name: 'portcullis_bff_call_duration_seconds', help: 'Upstream call time by endpoint and call.', labelNames: ['endpoint', 'call'], buckets, registers });
  const callFailures = new Counter({ name: 'portcullis_bff_call_failures_total', help: 'Failed upstream calls by endpoint, call and reason (timeout, deadline, aborted, status, network, body).', labelNames: ['endpoint', 'call', 'reason'], registers });
  const callDegraded = new Counter({ name: 'portcullis_bff_call_degraded_total', help: 'Calls whose part of the answer degraded (fallback used), by endpoint and call.', labelNames: ['endpoint', 'call'], registers });
  return {
    call(endpoint, call, seconds, outcome, degraded) {
      const e = endpoints.admit(endpoint);
      const c = calls.admit(`${e} ${call}`) === OVERFLOW ? OVERFLOW : call;
      callDuration.observe({ endpoint: e, call: c }, seconds);
      if (outcome !== 'ok' && outcome !== 'skipped') callFailures.inc({ endpoint: e, call: c, reason: outcome });
      if (degraded) callDegraded.inc({ endpoint: e, call: c });
    },
    answer(endpoint, status, seconds, degraded) {
      const e = endpoints.admit(endpoint);
      answers.inc({ endpoint: e, status: String(status) });
      answerDuration.observe({ endpoint: e }, seconds);
      if (degraded) degradedAnswers.inc({ endpoint: e });
    },
  };
}

/** The in-memory counter store's bound (memory.max_keys): keys held and windows evicted to stay under it. */
export function createMemoryStoreMetrics(registry: Registry): { keys(n: number): void; evicted(): void } {
  const registers = [registry];
  // Summed across processes: each would hold its own windows (server.workers > 1 needs redis, so it never does).
  const keys = new Gauge({ name: 'portcullis_memory_store_keys', help: 'Counter windows held by the in-memory store.', registers, aggregator: 'sum' });
  const evictions = new Counter({ name: 'portcullis_memory_store_evictions_total', help: 'Live counter windows evicted (least recently used) because memory.max_keys was reached.', registers });
  return { keys: (n) => keys.set(n), evicted: () => evictions.inc() };
}

/**
 * prom-client's gauges that end in `_total`: Prometheus reserves the suffix for counters (`promtool check metrics`
 * reports them), and each is the sum over `type` of its twin without the suffix, which stays.
 */
const GAUGES_NAMED_LIKE_COUNTERS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * How the supervisor (server.workers > 1) merges each of Node's gauges over its processes, the workers and itself, into
 * the one series a single process would export (prom-client's cluster aggregation; counters and the GC histogram are
 * summed). prom-client's own choices sum most gauges: a sum of open file descriptors is no worker's, and against the
 * summed limit it reads as the average worker, so one worker out of descriptors, heap or event loop went unseen.
 * - What a per-process limit bounds (ulimit -n, -v, -d, V8's heap limit) and the event loop lag, which every call on
 *   that process waits behind: the worst process, as the alerts need it (max; min for the limit and the room left).
 * - What the instance holds as a whole: resident memory (what the container's memory limit counts) and Node's
 *   handles, requests and resources (connections, timers, calls in flight): the sum.
 * - The start time differs per process and none is the instance's: left out, as prom-client does. The version: the same.
 * Same names and labels as a single process, one series each: the queries and the cardinality do not depend on
 * server.workers. test/unit/observability/metrics.test.ts lists every gauge: a prom-client upgrade that adds one fails
 * there until it is decided here.
 */
const NODE_GAUGES_ACROSS_PROCESSES: Readonly<Record<string, Aggregator>> = {
  process_resident_memory_bytes: 'sum',
  process_virtual_memory_bytes: 'max',
  process_heap_bytes: 'max',
  process_open_fds: 'max',
  process_max_fds: 'min',
  process_start_time_seconds: 'omit',
  nodejs_eventloop_lag_seconds: 'max',
  nodejs_eventloop_lag_min_seconds: 'min',
  nodejs_eventloop_lag_max_seconds: 'max',
  nodejs_eventloop_lag_mean_seconds: 'max',
  nodejs_eventloop_lag_stddev_seconds: 'max',
  nodejs_eventloop_lag_p50_seconds: 'max',
  nodejs_eventloop_lag_p90_seconds: 'max',
  nodejs_eventloop_lag_p99_seconds: 'max',
  nodejs_active_handles: 'sum',
  nodejs_active_requests: 'sum',
  nodejs_active_resources: 'sum',
  nodejs_heap_size_total_bytes: 'max',
  nodejs_heap_size_used_bytes: 'max',
  nodejs_external_memory_bytes: 'max',
  nodejs_heap_space_size_total_bytes: 'max',
  nodejs_heap_space_size_used_bytes: 'max',
  nodejs_heap_space_size_available_bytes: 'min',
  nodejs_version_info: 'first',
};

/**
 * Node's process and runtime metrics, prefixed `portcullis_`, without the gauges that break Prometheus' naming rules,
 * each gauge with its rule across processes (NODE_GAUGES_ACROSS_PROCESSES).
 */
export function collectNodeMetrics(registry: Registry): void {
  const prefix = 'portcullis_';
  collectDefaultMetrics({ register: registry, prefix });
  for (const name of GAUGES_NAMED_LIKE_COUNTERS) registry.removeSingleMetric(prefix + name);
  for (const [name, aggregator] of Object.entries(NODE_GAUGES_ACROSS_PROCESSES)) {
    // prom-client takes no aggregator for its default metrics: set on the gauge, it travels in getMetricsAsJSON().
    const metric = registry.getSingleMetric(prefix + name) as { aggregator: Aggregator } | undefined;
    if (metric !== undefined) metric.aggregator = aggregator;
  }
  // prom-client exports what the heap uses, not what it may: a process past V8's limit (--max-old-space-size, else
  // what V8 derives from the machine's memory) dies with "JavaScript heap out of memory". The tightest process's.
  new Gauge({
    name: `${prefix}nodejs_heap_size_limit_bytes`,
    help: "V8's heap size limit of the process (v8.getHeapStatistics().heap_size_limit); with workers, the lowest.",
    registers: [registry],
    aggregator: 'min',
    collect() {
      this.set(getHeapStatistics().heap_size_limit);
    },
  });
}

/** Log lines the stdout destination dropped because its reader fell behind by more than LOG_BUFFER_MAX_CHARS. */
export function createLogMetrics(registry: Registry, destination: { on(event: 'drop', listener: () => void): unknown }): void {
  const dropped = new Counter({ name: 'portcullis_log_lines_dropped_total', help: 'Log lines dropped because stdout was not read fast enough (at most 16 MiB of lines wait in memory).', registers: [registry] });
  destination.on('drop', () => dropped.inc());
}
