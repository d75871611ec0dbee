import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decide,
  type DecideOptions,
  type DescriptorStatus,
  type LimitEvaluation,
  type LimitOutcome,
  type LimitStats,
} from '../../../src/ratelimit/decide.js';
import type { CompiledLimit } from '../../../src/ratelimit/types.js';
import { UNIT_SECONDS, type Unit } from '../../../src/ratelimit/units.js';

/** 2023-11-14T22:15:23.999Z: 23 s into its minute, 923 s into its hour. The milliseconds must not matter. */
const NOW_MS = 1_700_000_123_999;
const UINT32_MAX = 4294967295;

function limit(overrides: Partial<CompiledLimit> = {}): CompiledLimit {
  const unit: Unit = overrides.unit ?? 'MINUTE';
  const unitMultiplier = overrides.unitMultiplier ?? 1;
  const requestsPerUnit = overrides.requestsPerUnit ?? 10;
  return {
    fullKey: 'd.k',
    statsSuffix: '',
    name: '',
    requestsPerUnit,
    unit,
    unitMultiplier,
    windowSeconds: UNIT_SECONDS[unit] * unitMultiplier,
    algorithm: 'fixed_window',
    burst: requestsPerUnit,
    unlimited: false,
    shadowMode: false,
    quotaMode: false,
    replaces: [],
    detailedMetric: false,
    keyTag: '',
    ...overrides,
  };
}

const counted = (before: number, hits: number, consumed = true): LimitOutcome => ({ kind: 'counted', hits, before, after: before + hits, consumed });
const ev = (l: CompiledLimit, outcome: LimitOutcome, statsKey = 'd.k'): LimitEvaluation => ({ limit: l, statsKey, outcome });

const OPTIONS: DecideOptions = {
  nearLimitRatio: 0.8,
  globalShadowMode: false,
  globalQuotaMode: false,
  responseHeaders: { enabled: false, limit: 'RateLimit-Limit', remaining: 'RateLimit-Remaining', reset: 'RateLimit-Reset' },
};
const HEADERS_ON: DecideOptions = { ...OPTIONS, responseHeaders: { ...OPTIONS.responseHeaders, enabled: true } };

function status(code: 'OK' | 'OVER_LIMIT', l: CompiledLimit | undefined, remaining: number, reset: number | undefined): DescriptorStatus {
  return {
    code,
    currentLimit: l && { requestsPerUnit: l.requestsPerUnit, unit: l.unit, name: l.name },
    limitRemaining: remaining,
    durationUntilResetSeconds: reset,
  };
}

function stats(key: string, s: Partial<Omit<LimitStats, 'key'>>): LimitStats {
  return { key, totalHits: 0, overLimit: 0, nearLimit: 0, withinLimit: 0, overLimitWithLocalCache: 0, shadowMode: 0, ...s };
}

interface SingleCase {
  readonly name: string;
  readonly limit: CompiledLimit;
  readonly outcome: LimitOutcome;
  readonly options?: DecideOptions;
  readonly status: DescriptorStatus;
  /** null: no stats at all for this limit. */
  readonly stats: Partial<Omit<LimitStats, 'key'>> | null;
  readonly overall: 'OK' | 'OVER_LIMIT';
}

const L10 = limit();
const SHADOW = limit({ shadowMode: true });
const NAMED = limit({ name: 'per-user' });

const SINGLE: readonly SingleCase[] = [
  { name: 'within the limit', limit: L10, outcome: counted(3, 1), status: status('OK', L10, 6, 37), stats: { totalHits: 1, withinLimit: 1 }, overall: 'OK' },
  { name: 'exactly at the limit is OK with 0 remaining', limit: L10, outcome: counted(9, 1), status: status('OK', L10, 0, 37), stats: { totalHits: 1, withinLimit: 1, nearLimit: 1 }, overall: 'OK' },
  { name: 'one over the limit', limit: L10, outcome: counted(10, 1), status: status('OVER_LIMIT', L10, 0, 37), stats: { totalHits: 1, overLimit: 1 }, overall: 'OVER_LIMIT' },
  { name: 'well over the limit', limit: L10, outcome: counted(25, 3), status: status('OVER_LIMIT', L10, 0, 37), stats: { totalHits: 3, overLimit: 3 }, overall: 'OVER_LIMIT' },
  {
    name: 'hits > limit in one request from zero',
    limit: L10, outcome: counted(0, 15), status: status('OVER_LIMIT', L10, 0, 37),
    // over_limit += after - rpu; near_limit += rpu - max(near, before)
    stats: { totalHits: 15, overLimit: 5, nearLimit: 2 }, overall: 'OVER_LIMIT',
  },
  {
    name: 'crossing the limit from inside the near band',
    limit: L10, outcome: counted(9, 3), status: status('OVER_LIMIT', L10, 0, 37), stats: { totalHits: 3, overLimit: 2, nearLimit: 1 }, overall: 'OVER_LIMIT',
  },
  { name: 'hits 0 is a check: remaining unchanged', limit: L10, outcome: counted(3, 0), status: status('OK', L10, 7, 37), stats: { totalHits: 0 }, overall: 'OK' },
  { name: 'hits 0 on a counter already over', limit: L10, outcome: counted(12, 0), status: status('OVER_LIMIT', L10, 0, 37), stats: { totalHits: 0, overLimit: 0 }, overall: 'OVER_LIMIT' },
  { name: 'requests_per_unit 0: everything is over', limit: limit({ requestsPerUnit: 0 }), outcome: counted(0, 1), status: status('OVER_LIMIT', limit({ requestsPerUnit: 0 }), 0, 37), stats: { totalHits: 1, overLimit: 1 }, overall: 'OVER_LIMIT' },
  { name: 'current_limit echoes the name', limit: NAMED, outcome: counted(0, 1), status: status('OK', NAMED, 9, 37), stats: { totalHits: 1, withinLimit: 1 }, overall: 'OK' },
  {
    name: 'shadow_mode: over becomes OK, remaining 0, current_limit kept',
    limit: SHADOW, outcome: counted(9, 3), status: status('OK', SHADOW, 0, 37), stats: { totalHits: 3, overLimit: 2, nearLimit: 1, shadowMode: 2 }, overall: 'OK',
  },
  {
    name: 'shadow_mode already over: shadow counts every hit',
    limit: SHADOW, outcome: counted(12, 2), status: status('OK', SHADOW, 0, 37), stats: { totalHits: 2, overLimit: 2, shadowMode: 2 }, overall: 'OK',
  },
  { name: 'shadow_mode within the limit changes nothing', limit: SHADOW, outcome: counted(1, 1), status: status('OK', SHADOW, 8, 37), stats: { totalHits: 1, withinLimit: 1 }, overall: 'OK' },
  { name: 'unlimited', limit: limit({ unlimited: true }), outcome: { kind: 'unlimited' }, status: status('OK', undefined, UINT32_MAX, undefined), stats: null, overall: 'OK' },
  { name: 'replaced', limit: NAMED, outcome: { kind: 'replaced' }, status: status('OK', undefined, 0, undefined), stats: null, overall: 'OK' },
  {
    name: 'local cache hit',
    limit: L10, outcome: { kind: 'local_cache', hits: 3 }, status: status('OVER_LIMIT', L10, 0, 37),
    stats: { totalHits: 3, overLimit: 3, overLimitWithLocalCache: 3 }, overall: 'OVER_LIMIT',
  },
  {
    name: 'local cache hit in shadow mode',
    limit: SHADOW, outcome: { kind: 'local_cache', hits: 2 }, status: status('OK', SHADOW, 0, 37),
    stats: { totalHits: 2, overLimit: 2, overLimitWithLocalCache: 2, shadowMode: 2 }, overall: 'OK',
  },
  {
    name: 'not written and not over (another key went over): unchanged remaining, no hits counted',
    limit: L10, outcome: counted(4, 1, false), status: status('OK', L10, 6, 37), stats: { totalHits: 0 }, overall: 'OK',
  },
  {
    name: 'not written but over: still OVER_LIMIT',
    limit: L10, outcome: counted(9, 2, false), status: status('OVER_LIMIT', L10, 0, 37), stats: { totalHits: 2, overLimit: 1, nearLimit: 1 }, overall: 'OVER_LIMIT',
  },
  {
    name: 'global shadow: status stays OVER_LIMIT, overall OK',
    limit: L10, outcome: counted(10, 1), options: { ...OPTIONS, globalShadowMode: true }, status: status('OVER_LIMIT', L10, 0, 37),
    stats: { totalHits: 1, overLimit: 1 }, overall: 'OK',
  },
];

describe('decide: one limit', () => {
  for (const c of SINGLE) {
    it(c.name, () => {
      const d = decide([[ev(c.limit, c.outcome)]], NOW_MS, c.options ?? OPTIONS);
      assert.deepEqual(d.statuses, [c.status]);
      assert.deepEqual(d.stats, c.stats === null ? [] : [stats('d.k', c.stats)]);
      assert.equal(d.overallCode, c.overall);
    });
  }

  it('a descriptor with no limit is OK with nothing else', () => {
    const d = decide([[]], NOW_MS, HEADERS_ON);
    assert.deepEqual(d.statuses, [status('OK', undefined, 0, undefined)]);
    assert.deepEqual([d.overallCode, d.stats, d.responseHeaders, d.globalShadowApplied], ['OK', [], [], false]);
  });

  it('reports whether global shadow mode changed the answer', () => {
    const shadow = { ...OPTIONS, globalShadowMode: true };
    assert.equal(decide([[ev(L10, counted(10, 1))]], NOW_MS, shadow).globalShadowApplied, true);
    assert.equal(decide([[ev(L10, counted(1, 1))]], NOW_MS, shadow).globalShadowApplied, false);
    assert.equal(decide([[ev(L10, counted(10, 1))]], NOW_MS, OPTIONS).globalShadowApplied, false);
  });

  it('uses the stats key it was given', () => {
    const d = decide([[ev(L10, counted(0, 1), 'domain.key_value')]], NOW_MS, OPTIONS);
    assert.equal(d.stats[0]!.key, 'domain.key_value');
  });
});

describe('decide: near-limit stats', () => {
  // nearThreshold = floor(float32(rpu) * float32(ratio)); with rpu 90 and ratio 0.7 that is 63 (62 in float64).
  const cases: { name: string; rpu: number; ratio: number; before: number; hits: number; near: number; over: number; within: number }[] = [
    { name: 'below the threshold', rpu: 10, ratio: 0.8, before: 6, hits: 2, near: 0, over: 0, within: 2 },
    { name: 'crossing the threshold counts the part above it', rpu: 10, ratio: 0.8, before: 7, hits: 2, near: 1, over: 0, within: 2 },
    { name: 'already at the threshold counts every hit', rpu: 10, ratio: 0.8, before: 8, hits: 2, near: 2, over: 0, within: 2 },
    { name: 'float32 threshold: reaching 63 of 90 at 0.7 is not near', rpu: 90, ratio: 0.7, before: 62, hits: 1, near: 0, over: 0, within: 1 },
    { name: 'float32 threshold: 64 of 90 at 0.7 is 1 near', rpu: 90, ratio: 0.7, before: 62, hits: 2, near: 1, over: 0, within: 2 },
    { name: 'ratio 1: near only when over', rpu: 10, ratio: 1, before: 9, hits: 1, near: 0, over: 0, within: 1 },
    { name: 'ratio 0: every hit is near', rpu: 10, ratio: 0, before: 0, hits: 3, near: 3, over: 0, within: 3 },
    { name: 'over from below the threshold: near is rpu - near threshold', rpu: 10, ratio: 0.5, before: 2, hits: 10, near: 5, over: 2, within: 0 },
    { name: 'over from inside the band: near is rpu - before', rpu: 100, ratio: 0.8, before: 95, hits: 10, near: 5, over: 5, within: 0 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const l = limit({ requestsPerUnit: c.rpu });
      const d = decide([[ev(l, counted(c.before, c.hits))]], NOW_MS, { ...OPTIONS, nearLimitRatio: c.ratio });
      const s = d.stats[0]!;
      assert.deepEqual([s.nearLimit, s.overLimit, s.withinLimit, s.totalHits], [c.near, c.over, c.within, c.hits]);
    });
  }
});

describe('decide: duration_until_reset', () => {
  const cases: { name: string; unit: Unit; multiplier?: number; nowMs: number; reset: number }[] = [
    { name: 'SECOND is always 1', unit: 'SECOND', nowMs: NOW_MS, reset: 1 },
    { name: 'SECOND at a whole second', unit: 'SECOND', nowMs: 1_700_000_123_000, reset: 1 },
    { name: 'MINUTE', unit: 'MINUTE', nowMs: NOW_MS, reset: 37 },
    { name: 'MINUTE at the window start is a whole window', unit: 'MINUTE', nowMs: 1_700_000_100_000, reset: 60 },
    { name: 'MINUTE one second before the end', unit: 'MINUTE', nowMs: 1_700_000_159_999, reset: 1 },
    { name: 'HOUR', unit: 'HOUR', nowMs: NOW_MS, reset: 2677 },
    { name: 'DAY', unit: 'DAY', nowMs: NOW_MS, reset: 6277 },
    { name: 'WEEK', unit: 'WEEK', nowMs: NOW_MS, reset: 92677 },
    { name: 'WEEK starts on Thursday 00:00 UTC (2024-01-04)', unit: 'WEEK', nowMs: Date.UTC(2024, 0, 4), reset: 604800 },
    { name: 'WEEK ends on Wednesday 23:59:59 UTC (2024-01-10)', unit: 'WEEK', nowMs: Date.UTC(2024, 0, 10, 23, 59, 59), reset: 1 },
    { name: 'MONTH is 30 epoch-aligned days', unit: 'MONTH', nowMs: NOW_MS, reset: 351877 },
    { name: 'YEAR is 365 epoch-aligned days', unit: 'YEAR', nowMs: NOW_MS, reset: 2943877 },
    { name: '5 minutes (unit_multiplier 5)', unit: 'MINUTE', multiplier: 5, nowMs: NOW_MS, reset: 277 },
    { name: '2 hours (unit_multiplier 2)', unit: 'HOUR', multiplier: 2, nowMs: NOW_MS, reset: 6277 },
    { name: '30 seconds (unit_multiplier 30)', unit: 'SECOND', multiplier: 30, nowMs: NOW_MS, reset: 7 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const l = limit({ unit: c.unit, unitMultiplier: c.multiplier ?? 1 });
      const ok = decide([[ev(l, counted(0, 1))]], c.nowMs, OPTIONS);
      assert.equal(ok.statuses[0]!.durationUntilResetSeconds, c.reset);
      const over = decide([[ev(l, counted(10, 1))]], c.nowMs, OPTIONS);
      assert.equal(over.statuses[0]!.durationUntilResetSeconds, c.reset);
      const cached = decide([[ev(l, { kind: 'local_cache', hits: 1 })]], c.nowMs, OPTIONS);
      assert.equal(cached.statuses[0]!.durationUntilResetSeconds, c.reset);
    });
  }

  it('a sliding window resets with its epoch-aligned window', () => {
    const l = limit({ algorithm: 'sliding_window' });
    assert.equal(decide([[ev(l, counted(0, 1))]], NOW_MS, OPTIONS).statuses[0]!.durationUntilResetSeconds, 37);
  });

  it('a token bucket resets when it is full again (within) or when the request would fit (over)', () => {
    // 10 per minute: one token every 6 s; burst 20.
    const bucket = limit({ algorithm: 'token_bucket', requestsPerUnit: 10, burst: 20 });
    const within = decide([[ev(bucket, counted(3, 1))]], NOW_MS, OPTIONS).statuses[0]!;
    assert.deepEqual([within.code, within.limitRemaining, within.durationUntilResetSeconds], ['OK', 16, 24]);
    const over = decide([[ev(bucket, counted(20, 2, false))]], NOW_MS, OPTIONS).statuses[0]!;
    assert.deepEqual([over.code, over.limitRemaining, over.durationUntilResetSeconds], ['OVER_LIMIT', 0, 12]);
    // More than the burst never fits: at most the time to refill the whole bucket (20 × 6 s), however many hits.
    for (const hits of [21, 1_000, 4_294_967_295]) {
      const never = decide([[ev(bucket, counted(5, hits, false))]], NOW_MS, OPTIONS).statuses[0]!;
      assert.deepEqual([never.code, never.durationUntilResetSeconds], ['OVER_LIMIT', 120], String(hits));
    }
    // 7 per minute: 8.57 s per token, rounded up.
    const seven = limit({ algorithm: 'token_bucket', requestsPerUnit: 7, burst: 7 });
    assert.equal(decide([[ev(seven, counted(0, 1))]], NOW_MS, OPTIONS).statuses[0]!.durationUntilResetSeconds, 9);
    // current_limit shows requests_per_unit, not the burst.
    assert.deepEqual(within.currentLimit, { requestsPerUnit: 10, unit: 'MINUTE', name: '' });
  });
});

describe('decide: quota mode (a soft limit, as envoyproxy/ratelimit: never rejects)', () => {
  const QUOTA = limit({ quotaMode: true });
  const OVER = counted(10, 1);
  const OK = counted(0, 1);
  const GLOBAL: DecideOptions = { ...OPTIONS, globalQuotaMode: true };
  const cases: { name: string; descriptors: [CompiledLimit, LimitOutcome][]; options?: DecideOptions; overall: 'OK' | 'OVER_LIMIT'; codes: string[] }[] = [
    { name: 'the only quota descriptor is over', descriptors: [[QUOTA, OVER]], overall: 'OK', codes: ['OK'] },
    { name: 'one of two quota descriptors is over', descriptors: [[QUOTA, OVER], [QUOTA, OK]], overall: 'OK', codes: ['OK', 'OK'] },
    { name: 'both quota descriptors are over', descriptors: [[QUOTA, OVER], [QUOTA, OVER]], overall: 'OK', codes: ['OK', 'OK'] },
    { name: 'all quota over, non-quota OK', descriptors: [[QUOTA, OVER], [L10, OK]], overall: 'OK', codes: ['OK', 'OK'] },
    { name: 'a non-quota descriptor over decides alone', descriptors: [[QUOTA, OVER], [L10, OVER]], overall: 'OVER_LIMIT', codes: ['OK', 'OVER_LIMIT'] },
    { name: 'nothing over', descriptors: [[QUOTA, OK], [L10, OK]], overall: 'OK', codes: ['OK', 'OK'] },
    { name: 'a shadowed quota descriptor', descriptors: [[limit({ quotaMode: true, shadowMode: true }), OVER], [QUOTA, OVER]], overall: 'OK', codes: ['OK', 'OK'] },
    { name: 'known over from the local cache', descriptors: [[QUOTA, { kind: 'local_cache', hits: 1 }]], overall: 'OK', codes: ['OK'] },
    { name: 'global QUOTA_MODE: one of two over', descriptors: [[L10, OVER], [L10, OK]], options: GLOBAL, overall: 'OK', codes: ['OK', 'OK'] },
    { name: 'global QUOTA_MODE: all over', descriptors: [[L10, OVER], [L10, OVER]], options: GLOBAL, overall: 'OK', codes: ['OK', 'OK'] },
    { name: 'global shadow too', descriptors: [[QUOTA, OVER]], options: { ...OPTIONS, globalShadowMode: true }, overall: 'OK', codes: ['OK'] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const d = decide(c.descriptors.map(([l, o]) => [ev(l, o)]), NOW_MS, c.options ?? OPTIONS);
      assert.equal(d.overallCode, c.overall);
      assert.deepEqual(d.statuses.map((s) => s.code), c.codes);
    });
  }

  it('an over quota status keeps its limit and remaining 0, without a reset time; one within keeps its reset', () => {
    const d = decide([[ev(QUOTA, OVER)], [ev(QUOTA, OK)]], NOW_MS, OPTIONS);
    assert.deepEqual(d.statuses, [status('OK', QUOTA, 0, undefined), status('OK', QUOTA, 9, 37)]);
    assert.equal(d.globalShadowApplied, false);
  });
});

describe('decide: response headers', () => {
  const a = limit({ requestsPerUnit: 10 });
  const b = limit({ requestsPerUnit: 20 });
  const c = limit({ requestsPerUnit: 30 });
  const perSecond = limit({ requestsPerUnit: 40, unit: 'SECOND' });
  const cases: { name: string; descriptors: LimitEvaluation[][]; options?: DecideOptions; headers: [string, string][] }[] = [
    { name: 'disabled', descriptors: [[ev(a, counted(0, 1))]], options: OPTIONS, headers: [] },
    { name: 'no status has a limit', descriptors: [[], [ev(limit({ unlimited: true }), { kind: 'unlimited' })]], headers: [] },
    { name: 'one limit', descriptors: [[ev(a, counted(3, 1))]], headers: [['RateLimit-Limit', '10'], ['RateLimit-Remaining', '6'], ['RateLimit-Reset', '37']] },
    {
      name: 'least remaining wins, first on ties',
      descriptors: [[ev(a, counted(5, 0))], [ev(b, counted(17, 0))], [ev(c, counted(27, 0))]],
      headers: [['RateLimit-Limit', '20'], ['RateLimit-Remaining', '3'], ['RateLimit-Reset', '37']],
    },
    {
      name: 'the last OVER_LIMIT status wins',
      descriptors: [[ev(a, counted(10, 1))], [ev(b, counted(20, 1))], [ev(c, counted(0, 1))]],
      headers: [['RateLimit-Limit', '20'], ['RateLimit-Remaining', '0'], ['RateLimit-Reset', '37']],
    },
    {
      name: 'an over quota status is not preferred, but can still have the least remaining',
      descriptors: [[ev(limit({ requestsPerUnit: 10, quotaMode: true }), counted(10, 1))], [ev(b, counted(0, 1))]],
      headers: [['RateLimit-Limit', '10'], ['RateLimit-Remaining', '0'], ['RateLimit-Reset', '37']],
    },
    {
      name: 'a non-quota over status beats a quota over status after it',
      descriptors: [[ev(b, counted(20, 1))], [ev(limit({ requestsPerUnit: 10, quotaMode: true }), counted(10, 1))]],
      headers: [['RateLimit-Limit', '20'], ['RateLimit-Remaining', '0'], ['RateLimit-Reset', '37']],
    },
    {
      name: 'reset comes from the chosen status',
      descriptors: [[ev(a, counted(0, 1))], [ev(perSecond, counted(38, 1))]],
      headers: [['RateLimit-Limit', '40'], ['RateLimit-Remaining', '1'], ['RateLimit-Reset', '1']],
    },
    {
      name: 'unlimited and replaced statuses are skipped',
      descriptors: [[ev(limit({ unlimited: true }), { kind: 'unlimited' })], [ev(a, { kind: 'replaced' })], [ev(b, counted(10, 1))]],
      headers: [['RateLimit-Limit', '20'], ['RateLimit-Remaining', '9'], ['RateLimit-Reset', '37']],
    },
    {
      name: 'custom header names',
      descriptors: [[ev(a, counted(0, 1))]],
      options: { ...OPTIONS, responseHeaders: { enabled: true, limit: 'X-Limit', remaining: 'X-Remaining', reset: 'X-Reset' } },
      headers: [['X-Limit', '10'], ['X-Remaining', '9'], ['X-Reset', '37']],
    },
  ];
  for (const t of cases) {
    it(t.name, () => {
      const d = decide(t.descriptors, NOW_MS, t.options ?? HEADERS_ON);
      assert.deepEqual(d.responseHeaders.map(([k, v]) => [k, v]), t.headers);
    });
  }
});

describe('decide: several limits on one descriptor', () => {
  const burst = limit({ requestsPerUnit: 2, unit: 'SECOND', name: 'burst' });
  const daily = limit({ requestsPerUnit: 100, unit: 'DAY', name: 'daily' });
  const hourly = limit({ requestsPerUnit: 50, unit: 'HOUR', name: 'hourly' });
  const cases: { name: string; evaluations: LimitEvaluation[]; status: DescriptorStatus }[] = [
    { name: 'both within: least remaining', evaluations: [ev(burst, counted(0, 1)), ev(daily, counted(99, 1))], status: status('OK', daily, 0, 6277) },
    { name: 'within, tie: the first', evaluations: [ev(burst, counted(0, 0)), ev(daily, counted(98, 1)), ev(hourly, counted(48, 1))], status: status('OK', daily, 1, 6277) },
    { name: 'the second over', evaluations: [ev(daily, counted(0, 1)), ev(burst, counted(2, 1))], status: status('OVER_LIMIT', burst, 0, 1) },
    { name: 'both over: the first over', evaluations: [ev(burst, counted(2, 1)), ev(daily, counted(100, 1))], status: status('OVER_LIMIT', burst, 0, 1) },
    { name: 'both over, other order', evaluations: [ev(daily, counted(100, 1)), ev(burst, counted(2, 1))], status: status('OVER_LIMIT', daily, 0, 6277) },
    { name: 'a limited status beats an unlimited one', evaluations: [ev(limit({ unlimited: true }), { kind: 'unlimited' }), ev(daily, counted(0, 1))], status: status('OK', daily, 99, 6277) },
    { name: 'a replaced limit is skipped', evaluations: [ev(burst, { kind: 'replaced' }), ev(daily, counted(0, 1))], status: status('OK', daily, 99, 6277) },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const d = decide([c.evaluations], NOW_MS, OPTIONS);
      assert.deepEqual(d.statuses, [c.status]);
      assert.equal(d.overallCode, c.status.code);
    });
  }

  it('records stats for every limit, in order', () => {
    const d = decide([[ev(burst, counted(2, 1), 'd.k#burst'), ev(daily, counted(5, 1), 'd.k#daily')]], NOW_MS, OPTIONS);
    assert.deepEqual(d.stats, [
      stats('d.k#burst', { totalHits: 1, overLimit: 1 }),
      stats('d.k#daily', { totalHits: 1, withinLimit: 1 }),
    ]);
  });
});

describe('decide: several descriptors', () => {
  it('answers each descriptor in request order; any non-quota over makes the answer OVER_LIMIT', () => {
    const d = decide([[ev(L10, counted(0, 1))], [], [ev(L10, counted(10, 1))]], NOW_MS, OPTIONS);
    assert.deepEqual(d.statuses.map((s) => [s.code, s.limitRemaining]), [['OK', 9], ['OK', 0], ['OVER_LIMIT', 0]]);
    assert.equal(d.overallCode, 'OVER_LIMIT');
  });

  it('no descriptor at all is OK', () => {
    const d = decide([], NOW_MS, HEADERS_ON);
    assert.deepEqual([d.overallCode, d.statuses, d.responseHeaders], ['OK', [], []]);
  });
});
