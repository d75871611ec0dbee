import type { Clock } from '../shared/clock.js';
import { ErrorCode, PortcullisError, StoreError } from '../shared/errors.js';
import type { ConsumePolicy, CounterOp, CounterResult, CounterStore } from '../store/counter-store.js';
import { decide, type Code, type DecideOptions, type Decision, type LimitEvaluation, type LimitOutcome, type LimitStats } from './decide.js';
import type { OverLimitCache } from './local-cache.js';
import { matchDescriptor, type Match } from './matcher.js';
import type { CompiledLimit, ConsumeWhenOverLimit, DescriptorEntry, RateLimitConfig, RateLimitRequest, RequestDescriptor } from './types.js';
import { windowStart } from './units.js';

/** The `ratelimit:` section of portcullis.yaml, parsed and frozen. */
export interface RateLimitSettings {
  readonly shadowMode: boolean;
  readonly quotaMode: boolean;
  readonly nearLimitRatio: number;
  readonly responseHeaders: { readonly enabled: boolean; readonly limit: string; readonly remaining: string; readonly reset: string };
  readonly localCache: { readonly enabled: boolean; readonly maxEntries: number };
  readonly stopIncrementWhenOverLimit: boolean;
  readonly cacheKeyPrefix: string;
  readonly expirationJitterMaxSeconds: number;
  readonly failureMode: 'error' | 'allow' | 'deny';
  readonly responseDynamicMetadata: boolean;
  readonly maxDescriptors: number;
  readonly maxEntries: number;
  /** Longest entry key or value, in UTF-8 bytes: longer ones would become multi-megabyte store keys. */
  readonly maxEntryBytes: number;
}

/** What a handler reads once per request: settings and descriptors swap together on reload. */
export interface RateLimitSnapshot {
  readonly settings: RateLimitSettings;
  /** undefined until a descriptor configuration has loaded. */
  readonly config: RateLimitConfig | undefined;
}

/** Where the service reports what it decided; implemented with prom-client in observability/. */
export interface RateLimitObserver {
  limitStats(stats: readonly LimitStats[]): void;
  domainNotFound(domain: string, descriptors: number): void;
  decision(domain: string, code: Code, globalShadow: boolean): void;
  localCacheHit(): void;
  /** The store failed; the request gets the failure_mode answer. */
  storeError(code: string, message: string): void;
  /** The store answered a request's ops (what ends a run of storeError). */
  storeAnswered(): void;
}

export interface RateLimitServiceDeps {
  readonly store: CounterStore;
  readonly clock: Clock;
  readonly observer: RateLimitObserver;
  readonly snapshot: () => RateLimitSnapshot;
  /** One over-limit cache per process; used only while settings enable it. */
  readonly overLimitCache: OverLimitCache;
  /** [0, 1), for key expiration jitter. */
  readonly random: () => number;
}

/** Hits above this exceed every uint32 limit already; capping keeps counters exact in Lua doubles. */
const MAX_HITS = 4294967296;

const POLICY: Readonly<Record<ConsumeWhenOverLimit, ConsumePolicy>> = {
  all: 'always',
  over_limit_only: 'only_over',
  none: 'none_if_over',
};

interface PlannedLimit {
  readonly limit: CompiledLimit;
  readonly statsKey: string;
  /** Index into the store ops, or the outcome decided without the store. */
  readonly source: number | LimitOutcome;
  readonly key: string;
}

/** ShouldRateLimit as a transport-free service: validate, match, count, decide. */
export class RateLimitService {
  constructor(private readonly deps: RateLimitServiceDeps) {}

  async shouldRateLimit(request: RateLimitRequest, signal: AbortSignal): Promise<Decision> {
    const { settings, config } = this.deps.snapshot();
    validate(request, settings);
    if (config === undefined) throw new PortcullisError(ErrorCode.RL_NO_CONFIG, 'no rate limit configuration loaded');
    const nowMs = this.deps.clock.nowMs();
    const domain = config.domains.get(request.domain);
    if (domain === undefined) this.deps.observer.domainNotFound(request.domain, request.descriptors.length);

    const matches = request.descriptors.map((d) => (domain === undefined ? undefined : matchDescriptor(domain, d)));
    let replaced: Set<string> | undefined;
    for (const m of matches) {
      for (const l of m?.limits ?? []) if (l.replaces.length > 0) for (const name of l.replaces) (replaced ??= new Set()).add(name);
    }
    const useLocalCache = settings.localCache.enabled;
    const ops: CounterOp[] = [];
    const planned = matches.map((match, i) => {
      if (match === undefined) return [];
      const descriptor = request.descriptors[i]!;
      const hits = Math.min(MAX_HITS, descriptor.hitsAddend ?? Math.max(1, request.hitsAddend));
      return match.limits.map((limit): PlannedLimit => {
        const statsKey = match.statsKey + limit.statsSuffix;
        const key = storageKey(settings.cacheKeyPrefix, request.domain, descriptor.entries, match, limit, nowMs);
        if (limit.unlimited) return { limit, statsKey, source: { kind: 'unlimited' }, key };
        if (limit.name !== '' && replaced?.has(limit.name)) return { limit, statsKey, source: { kind: 'replaced' }, key };
        if (useLocalCache && this.deps.overLimitCache.has(key, nowMs)) {
          this.deps.observer.localCacheHit();
          return { limit, statsKey, source: { kind: 'local_cache', hits }, key };
        }
        ops.push(toOp(key, limit, hits, settings, this.deps.random));
        return { limit, statsKey, source: ops.length - 1, key };
      });
    });

    const consume = domain?.consumeWhenOverLimit ?? (settings.stopIncrementWhenOverLimit ? 'over_limit_only' : 'all');
    const anyCachedOver = planned.some((p) => p.some((l) => typeof l.source !== 'number' && l.source.kind === 'local_cache'));
    let policy = POLICY[consume];
    if (anyCachedOver && policy !== 'always') {
      // A known-over counter already rejects the request: the others are only read (INCRBY 0 upstream).
      for (let i = 0; i < ops.length; i++) ops[i] = { ...ops[i]!, hits: 0 };
      policy = 'always';
    }
    let results: CounterResult[] = [];
    if (ops.length > 0) {
      try {
        results = await this.deps.store.apply(ops, policy, nowMs, signal);
        this.deps.observer.storeAnswered();
      } catch (error) {
        if (!(error instanceof StoreError)) throw error;
        this.deps.observer.storeError(error.code, error.message);
        if (settings.failureMode === 'error') throw error;
        const answer = failureDecision(settings.failureMode, request.descriptors.length);
        // Counted like any answer: in deny mode an outage refuses everything, and refusals by domain must show it.
        this.deps.observer.decision(request.domain, answer.overallCode, false);
        return answer;
      }
    }

    const evaluations = planned.map((limits) =>
      limits.map((p): LimitEvaluation => {
        if (typeof p.source !== 'number') return { limit: p.limit, statsKey: p.statsKey, outcome: p.source };
        const result = results[p.source]!;
        const op = ops[p.source]!;
        return { limit: p.limit, statsKey: p.statsKey, outcome: { kind: 'counted', hits: op.hits, ...result } };
      }),
    );
    const decision = decide(evaluations, nowMs, decideOptions(settings));
    if (useLocalCache) this.rememberOverLimit(evaluations, planned, nowMs);
    this.deps.observer.limitStats(decision.stats);
    this.deps.observer.decision(request.domain, decision.overallCode, decision.globalShadowApplied);
    if (!settings.responseDynamicMetadata) return decision;
    // Upstream's quotaModeEnabled: a limit that is checked has quota_mode of its own (the global QUOTA_MODE aside).
    const quotaModeEnabled = planned.some((limits) => limits.some((p) => p.limit.quotaMode && (typeof p.source === 'number' || p.source.kind === 'local_cache')));
    return { ...decision, dynamicMetadata: dynamicMetadata(request, matches, decision.quotaViolations ?? [], quotaModeEnabled) };
  }

  /** Fixed-window counters now over their limit stay over until their window ends: skip the store till then. */
  private rememberOverLimit(evaluations: readonly (readonly LimitEvaluation[])[], planned: readonly (readonly PlannedLimit[])[], nowMs: number): void {
    evaluations.forEach((limits, i) =>
      limits.forEach((e, j) => {
        const o = e.outcome;
        if (o.kind !== 'counted' || !o.consumed || e.limit.algorithm !== 'fixed_window' || o.after <= e.limit.requestsPerUnit) return;
        const windowMs = e.limit.windowSeconds * 1000;
        this.deps.overLimitCache.add(planned[i]![j]!.key, (Math.floor(nowMs / windowMs) + 1) * windowMs);
      }),
    );
  }
}

/**
 * What Envoy receives as dynamic metadata (envoyproxy/ratelimit's RESPONSE_DYNAMIC_METADATA): the request (with each
 * descriptor's own `limit` override, in protobuf text form, and `hitsAddend`), which quota-mode descriptors are over
 * their limit (`quotaModeViolations`, what quota-aware routing reads, as their statuses say OK), and the `metadata` of
 * the matched descriptors merged, the first descriptor winning on conflicts.
 */
function dynamicMetadata(
  request: RateLimitRequest,
  matches: readonly (Match | undefined)[],
  quotaViolations: readonly number[],
  quotaModeEnabled: boolean,
): Record<string, unknown> {
  const merged: Record<string, unknown> = {};
  for (const match of matches) {
    for (const [k, v] of Object.entries(match?.metadata ?? {})) if (!(k in merged)) merged[k] = v;
  }
  return {
    domain: request.domain,
    descriptors: request.descriptors.map((d) => ({
      entries: d.entries.map((e) => `${e.key}=${e.value}`),
      ...(d.limitOverride === undefined ? {} : { limit: overrideText(d.limitOverride) }),
      ...(d.hitsAddend === undefined ? {} : { hitsAddend: d.hitsAddend }),
    })),
    ...(request.hitsAddend > 0 ? { hitsAddend: request.hitsAddend } : {}),
    ...(quotaViolations.length > 0 ? { quotaModeViolations: [...quotaViolations] } : {}),
    quotaModeEnabled,
    ...(Object.keys(merged).length > 0 ? { metadata: merged } : {}),
  };
}

/** A limit override as Go's protobuf text (upstream's `descriptor.Limit.String()`), zero fields left out. */
function overrideText(limit: NonNullable<RequestDescriptor['limitOverride']>): string {
  return [limit.requestsPerUnit === 0 ? '' : `requests_per_unit:${limit.requestsPerUnit}`, `unit:${limit.unit}`].filter((part) => part !== '').join(' ');
}

function decideOptions(s: RateLimitSettings): DecideOptions {
  return { nearLimitRatio: s.nearLimitRatio, globalShadowMode: s.shadowMode, globalQuotaMode: s.quotaMode, responseHeaders: s.responseHeaders };
}

/** failure_mode allow/deny: answer every descriptor alike when the store cannot be asked. */
function failureDecision(mode: 'allow' | 'deny', descriptors: number): Decision {
  const code: Code = mode === 'allow' ? 'OK' : 'OVER_LIMIT';
  const status = { code, currentLimit: undefined, limitRemaining: 0, durationUntilResetSeconds: undefined };
  return { overallCode: code, statuses: Array.from({ length: descriptors }, () => status), responseHeaders: [], stats: [], globalShadowApplied: false };
}

function validate(request: RateLimitRequest, settings: RateLimitSettings): void {
  if (request.domain === '') throw new PortcullisError(ErrorCode.RL_EMPTY_DOMAIN, 'rate limit domain must not be empty');
  if (request.descriptors.length === 0) {
    throw new PortcullisError(ErrorCode.RL_EMPTY_DESCRIPTORS, 'rate limit descriptor list must not be empty');
  }
  if (request.descriptors.length > settings.maxDescriptors) {
    throw new PortcullisError(ErrorCode.RL_BAD_REQUEST, `rate limit request has ${request.descriptors.length} descriptors, more than the maximum of ${settings.maxDescriptors}`);
  }
  for (const d of request.descriptors) {
    if (d.entries.length > settings.maxEntries) {
      throw new PortcullisError(ErrorCode.RL_BAD_REQUEST, `rate limit descriptor has ${d.entries.length} entries, more than the maximum of ${settings.maxEntries}`);
    }
    for (const e of d.entries) {
      if (longerThan(e.key, settings.maxEntryBytes) || longerThan(e.value, settings.maxEntryBytes)) {
        throw new PortcullisError(ErrorCode.RL_BAD_REQUEST, `rate limit descriptor entry '${e.key.slice(0, 64)}' has a key or value longer than the maximum of ${settings.maxEntryBytes} bytes`);
      }
    }
  }
}

/** Whether `text` is longer than `maxBytes` in UTF-8; counts bytes only when the UTF-16 length cannot tell. */
function longerThan(text: string, maxBytes: number): boolean {
  if (text.length > maxBytes) return true;
  if (text.length * 3 <= maxBytes) return false;
  return Buffer.byteLength(text, 'utf8') > maxBytes;
}

/**
 * envoyproxy/ratelimit's cache key, `prefix + domain + "_" + (key + "_" + value + "_")* + windowStart`,
 * for plain fixed windows; other limits put their tag before the window start (or end with it).
 */
function storageKey(prefix: string, domain: string, entries: readonly DescriptorEntry[], match: Match, limit: CompiledLimit, nowMs: number): string {
  let key = `${prefix}${domain}_`;
  entries.forEach((entry, i) => {
    key += `${entry.key}_${match.keyValues[i]}_`;
  });
  key += limit.keyTag;
  if (limit.algorithm === 'fixed_window') key += windowStart(Math.floor(nowMs / 1000), limit.windowSeconds);
  return key;
}

function toOp(key: string, limit: CompiledLimit, hits: number, settings: RateLimitSettings, random: () => number): CounterOp {
  const windowMs = limit.windowSeconds * 1000;
  const jitterMs = settings.expirationJitterMaxSeconds > 0 ? Math.floor(random() * settings.expirationJitterMaxSeconds) * 1000 : 0;
  return {
    key,
    algorithm: limit.algorithm,
    hits,
    capacity: limit.algorithm === 'token_bucket' ? limit.burst : limit.requestsPerUnit,
    windowMs,
    refill: limit.requestsPerUnit,
    ttlMs: windowMs + jitterMs,
  };
}
