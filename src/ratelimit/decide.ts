import type { CompiledLimit } from './types.js';
import type { Unit } from './units.js';
import { secondsUntilWindowEnd } from './units.js';

/** What the store (or the local over-limit cache) said about one limit of one request descriptor. */
export type LimitOutcome =
  | { readonly kind: 'counted'; readonly hits: number; readonly before: number; readonly after: number; readonly consumed: boolean }
  | { readonly kind: 'local_cache'; readonly hits: number }
  | { readonly kind: 'unlimited' }
  | { readonly kind: 'replaced' };

export interface LimitEvaluation {
  readonly limit: CompiledLimit;
  readonly statsKey: string;
  readonly outcome: LimitOutcome;
}

export type Code = 'OK' | 'OVER_LIMIT';

export interface DescriptorStatus {
  readonly code: Code;
  readonly currentLimit: { readonly requestsPerUnit: number; readonly unit: Unit; readonly name: string } | undefined;
  readonly limitRemaining: number;
  readonly durationUntilResetSeconds: number | undefined;
}

/** Per-limit counter deltas, named as envoyproxy/ratelimit's `ratelimit.service.rate_limit.<key>.*` stats. */
export interface LimitStats {
  readonly key: string;
  readonly totalHits: number;
  readonly overLimit: number;
  readonly nearLimit: number;
  readonly withinLimit: number;
  readonly overLimitWithLocalCache: number;
  readonly shadowMode: number;
}

export interface DecideOptions {
  readonly nearLimitRatio: number;
  readonly globalShadowMode: boolean;
  readonly globalQuotaMode: boolean;
  readonly responseHeaders: { readonly enabled: boolean; readonly limit: string; readonly remaining: string; readonly reset: string };
}

export interface Decision {
  readonly overallCode: Code;
  readonly statuses: readonly DescriptorStatus[];
  readonly responseHeaders: readonly (readonly [string, string])[];
  readonly stats: readonly LimitStats[];
  /** The global shadow mode turned an OVER_LIMIT answer into OK. */
  readonly globalShadowApplied: boolean;
  /** Indices of the descriptors in quota mode that are over their limit (their statuses read OK). */
  readonly quotaViolations?: readonly number[];
  /** envoyproxy/ratelimit's RESPONSE_DYNAMIC_METADATA content, when enabled. */
  readonly dynamicMetadata?: Readonly<Record<string, unknown>>;
}

const UINT32_MAX = 4294967295;
const NO_LIMIT: DescriptorStatus = { code: 'OK', currentLimit: undefined, limitRemaining: 0, durationUntilResetSeconds: undefined };
const UNLIMITED: DescriptorStatus = { code: 'OK', currentLimit: undefined, limitRemaining: UINT32_MAX, durationUntilResetSeconds: undefined };

interface Judged {
  readonly status: DescriptorStatus;
  readonly quota: boolean;
  /** Over the limit before shadow mode rewrote the code. */
  readonly over: boolean;
}

/**
 * envoyproxy/ratelimit's decision, as one pure function: per-limit codes, remaining and reset, shadow
 * and quota modes, the overall code, RateLimit-* response headers and stat increments.
 * `descriptors[i]` holds the evaluations of request descriptor i (empty: nothing matched).
 */
export function decide(descriptors: readonly (readonly LimitEvaluation[])[], nowMs: number, options: DecideOptions): Decision {
  const stats: LimitStats[] = [];
  const judged = descriptors.map((evaluations) => {
    const results = evaluations.map((e) => judgeLimit(e, nowMs, options, stats));
    return pickMostRestrictive(results);
  });

  // Quota mode is a soft limit: an over-limit quota descriptor never rejects the request (envoyproxy/ratelimit answers
  // OK for it, keeping current_limit and remaining 0, without duration_until_reset). The response headers still see
  // the status as it was, as upstream's do.
  const over = judged.some((j) => !j.quota && j.status.code === 'OVER_LIMIT');
  const overallCode: Code = over && !options.globalShadowMode ? 'OVER_LIMIT' : 'OK';
  // A loop, not flatMap: this runs on every request, and nearly always finds nothing.
  let quotaViolations: number[] | undefined;
  judged.forEach((j, i) => {
    if (j.quota && j.status.code === 'OVER_LIMIT') (quotaViolations ??= []).push(i);
  });
  return {
    overallCode,
    statuses: judged.map((j) => (j.quota && j.status.code === 'OVER_LIMIT' ? { ...j.status, code: 'OK', durationUntilResetSeconds: undefined } : j.status)),
    responseHeaders: options.responseHeaders.enabled ? responseHeaders(judged, options) : [],
    stats,
    globalShadowApplied: over && options.globalShadowMode,
    ...(quotaViolations === undefined ? {} : { quotaViolations }),
  };
}

function judgeLimit(evaluation: LimitEvaluation, nowMs: number, options: DecideOptions, stats: LimitStats[]): Judged {
  const { limit, outcome } = evaluation;
  const quota = limit.quotaMode || options.globalQuotaMode;
  if (outcome.kind === 'unlimited') return { status: UNLIMITED, quota: false, over: false };
  if (outcome.kind === 'replaced') return { status: NO_LIMIT, quota: false, over: false };
  const currentLimit = currentLimitOf(limit);
  const capacity = limit.algorithm === 'token_bucket' ? limit.burst : limit.requestsPerUnit;

  if (outcome.kind === 'local_cache') {
    const h = outcome.hits;
    stats.push({ key: evaluation.statsKey, totalHits: h, overLimit: h, nearLimit: 0, withinLimit: 0, overLimitWithLocalCache: h, shadowMode: limit.shadowMode ? h : 0 });
    const status: DescriptorStatus = {
      code: limit.shadowMode ? 'OK' : 'OVER_LIMIT', currentLimit, limitRemaining: 0,
      durationUntilResetSeconds: resetSeconds(limit, nowMs, capacity, capacity + h, capacity),
    };
    return { status, quota, over: true };
  }

  // An op that was not written reports the usage it left unchanged (envoyproxy/ratelimit sends INCRBY 0),
  // unless it is the one that went over.
  const wouldExceed = outcome.after > capacity;
  const counts = outcome.consumed || wouldExceed;
  const hits = counts ? outcome.hits : 0;
  const before = outcome.before;
  const after = counts ? outcome.after : outcome.before;
  const near = Math.floor(Math.fround(Math.fround(capacity) * Math.fround(options.nearLimitRatio)));
  const s = { key: evaluation.statsKey, totalHits: hits, overLimit: 0, nearLimit: 0, withinLimit: 0, overLimitWithLocalCache: 0, shadowMode: 0 };
  const reset = resetSeconds(limit, nowMs, before, after, capacity);
  let status: DescriptorStatus;
  const over = after > capacity;
  if (over) {
    if (before >= capacity) {
      s.overLimit = hits;
    } else {
      s.overLimit = after - capacity;
      s.nearLimit = capacity - Math.max(near, before);
    }
    if (limit.shadowMode) s.shadowMode = before >= capacity ? hits : after - capacity;
    status = { code: limit.shadowMode ? 'OK' : 'OVER_LIMIT', currentLimit, limitRemaining: 0, durationUntilResetSeconds: reset };
  } else {
    s.withinLimit = hits;
    if (after > near) s.nearLimit = before >= near ? hits : after - near;
    status = { code: 'OK', currentLimit, limitRemaining: capacity - after, durationUntilResetSeconds: reset };
  }
  stats.push(s);
  return { status, quota, over };
}

/** One currentLimit per compiled limit, so the transport can keep its wire form beside it (a reload compiles anew). */
const currentLimits = new WeakMap<CompiledLimit, NonNullable<DescriptorStatus['currentLimit']>>();
function currentLimitOf(limit: CompiledLimit): NonNullable<DescriptorStatus['currentLimit']> {
  let current = currentLimits.get(limit);
  if (current === undefined) {
    current = Object.freeze({ requestsPerUnit: limit.requestsPerUnit, unit: limit.unit, name: limit.name });
    currentLimits.set(limit, current);
  }
  return current;
}

/** Several limits on one descriptor answer with the one that binds: the first over, else the least remaining. */
function pickMostRestrictive(results: readonly Judged[]): Judged {
  if (results.length === 0) return { status: NO_LIMIT, quota: false, over: false };
  const overResult = results.find((r) => r.status.code === 'OVER_LIMIT');
  if (overResult) return overResult;
  let best = results[0]!;
  for (const r of results) {
    if (r.status.currentLimit && (!best.status.currentLimit || r.status.limitRemaining < best.status.limitRemaining)) best = r;
  }
  return best;
}

/**
 * Seconds until the limit's answer changes: the end of the epoch-aligned window for windows; for a
 * token bucket, until it is full again (within the limit) or until the request would fit (over it).
 */
function resetSeconds(limit: CompiledLimit, nowMs: number, before: number, after: number, capacity: number): number {
  if (limit.algorithm !== 'token_bucket') {
    return secondsUntilWindowEnd(Math.floor(nowMs / 1000), limit.windowSeconds);
  }
  const msPerToken = (limit.windowSeconds * 1000) / limit.requestsPerUnit;
  // Over: until the request would fit. One asking for more than the burst never fits: a whole bucket's refill time
  // is the longest wait there is, where hits × interval would be any length (2^32 hits read as 1,600 years).
  const hits = after - before;
  const tokens = after <= capacity ? after : hits > capacity ? capacity : after - capacity;
  return Math.ceil((tokens * msPerToken) / 1000);
}

/** envoyproxy/ratelimit picks the last non-quota OVER_LIMIT status, else the least remaining (first wins ties). */
function responseHeaders(judged: readonly Judged[], options: DecideOptions): (readonly [string, string])[] {
  let chosen: DescriptorStatus | undefined;
  for (const j of judged) {
    if (!j.quota && j.status.code === 'OVER_LIMIT') chosen = j.status;
  }
  if (chosen === undefined) {
    for (const j of judged) {
      if (j.status.currentLimit && (chosen === undefined || j.status.limitRemaining < chosen.limitRemaining)) chosen = j.status;
    }
  }
  if (chosen?.currentLimit === undefined) return [];
  const names = options.responseHeaders;
  return [
    [names.limit, String(chosen.currentLimit.requestsPerUnit)],
    [names.remaining, String(chosen.limitRemaining)],
    [names.reset, String(chosen.durationUntilResetSeconds ?? 0)],
  ];
}
