import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { LimitStats } from '../ratelimit/decide.js';
import type { RateLimitObserver } from '../ratelimit/service.js';

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
  readonly configLoads: Counter<'result'>;
  readonly configLastSuccess: Gauge;
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
  const overflow = new Counter({ name: 'portcullis_ratelimit_stats_keys_overflow_total', help: 'Stat increments folded into key="__overflow__" because ratelimit.metrics.max_keys was reached.', registers });
  const keys = new LabelBudget(maxKeys, overflow);
  const domains = new LabelBudget(Math.max(1, Math.min(maxKeys, 1000)), overflow);
  const stats = STAT_METRICS.map(([field, name, help]) => [field, new Counter({ name, help, labelNames: ['key'], registers })] as const);
  const children = new Map<string, { field: StatName; counter: Counter.Internal }[]>();
  const decisionSeries = new Map<string, Counter.Internal>();
  const decisions = new Counter({ name: 'portcullis_ratelimit_decisions_total', help: 'ShouldRateLimit answers by domain and overall code.', labelNames: ['domain', 'code'], registers });
  const domainNotFound = new Counter({ name: 'portcullis_ratelimit_domain_not_found_total', help: 'Descriptors for a domain no file defines.', labelNames: ['domain'], registers });
  const globalShadow = new Counter({ name: 'portcullis_ratelimit_global_shadow_mode_total', help: 'OVER_LIMIT answers turned into OK by the global shadow_mode.', registers });
  const localCache = new Counter({ name: 'portcullis_ratelimit_local_cache_hits_total', help: 'Limits answered from the local over-limit cache without the store.', registers });
  const storeErrors = new Counter({ name: 'portcullis_ratelimit_store_errors_total', help: 'Requests whose counter store call failed, by error code.', labelNames: ['code'], registers });
  const serviceErrors = new Counter({ name: 'portcullis_ratelimit_service_errors_total', help: 'Requests answered with a gRPC error, by error code.', labelNames: ['code'], registers });
  const duration = new Histogram({
    name: 'portcullis_ratelimit_request_duration_seconds', help: 'ShouldRateLimit handling time.', registers,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
  });
  return {
    ratelimit: {
      limitStats(list) {
        for (const s of list) {
          const key = keys.admit(s.key);
          let series = children.get(key);
          if (series === undefined) {
            series = stats.map(([field, counter]) => ({ field, counter: counter.labels(key) }));
            children.set(key, series);
          }
          for (const { field, counter } of series) if (s[field] > 0) counter.inc(s[field]);
        }
      },
      domainNotFound(domain, descriptors) {
        domainNotFound.inc({ domain: domains.admit(domain) }, descriptors);
      },
      decision(domain, code, shadow) {
        const admitted = domains.admit(domain);
        const key = `${admitted}\u0000${code}`;
        let series = decisionSeries.get(key);
        if (series === undefined) {
          series = decisions.labels(admitted, code);
          decisionSeries.set(key, series);
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
      serviceError(code) {
        serviceErrors.inc({ code });
      },
      observeDuration(seconds) {
        duration.observe(seconds);
      },
    },
    configLoads: new Counter({ name: 'portcullis_config_loads_total', help: 'Config (re)loads by result.', labelNames: ['result'], registers }),
    configLastSuccess: new Gauge({ name: 'portcullis_config_last_success_timestamp_seconds', help: 'When the running config was loaded.', registers }),
  };
}

/** The in-memory counter store's bound (memory.max_keys): keys held and windows evicted to stay under it. */
export function createMemoryStoreMetrics(registry: Registry): { keys(n: number): void; evicted(): void } {
  const registers = [registry];
  const keys = new Gauge({ name: 'portcullis_memory_store_keys', help: 'Counter windows held by the in-memory store.', registers });
  const evictions = new Counter({ name: 'portcullis_memory_store_evictions_total', help: 'Live counter windows evicted (least recently used) because memory.max_keys was reached.', registers });
  return { keys: (n) => keys.set(n), evicted: () => evictions.inc() };
}
