import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Code, Decision, LimitStats } from '../../../src/ratelimit/decide.js';
import { OverLimitCache } from '../../../src/ratelimit/local-cache.js';
import { RateLimitService, type RateLimitObserver, type RateLimitSettings } from '../../../src/ratelimit/service.js';
import type { RateLimitConfig, RequestDescriptor } from '../../../src/ratelimit/types.js';
import { ErrorCode, PortcullisError, StoreError } from '../../../src/shared/errors.js';
import type { ConsumePolicy, CounterOp, CounterResult, CounterStore } from '../../../src/store/counter-store.js';
import { MemoryCounterStore } from '../../../src/store/memory-counter-store.js';
import { FakeClock } from '../../fakes/fake-clock.js';
import { compileFixtures, compileYaml, desc, withHits, withOverride } from './support.js';

const UINT32_MAX = 4294967295;
/** A minute boundary: 2023-11-14T22:15:00Z. */
const T0 = 1_700_000_100_000;

const BASE_SETTINGS: RateLimitSettings = {
  shadowMode: false,
  quotaMode: false,
  nearLimitRatio: 0.8,
  responseHeaders: { enabled: false, limit: 'RateLimit-Limit', remaining: 'RateLimit-Remaining', reset: 'RateLimit-Reset' },
  localCache: { enabled: false, maxEntries: 1000 },
  stopIncrementWhenOverLimit: false,
  cacheKeyPrefix: '',
  expirationJitterMaxSeconds: 0,
  failureMode: 'error',
  maxDescriptors: 256,
  maxEntries: 64,
  maxEntryBytes: 4096,
  responseDynamicMetadata: false,
};

class RecordingObserver implements RateLimitObserver {
  readonly stats: LimitStats[] = [];
  readonly notFound: [string, number][] = [];
  readonly decisions: [string, Code, boolean][] = [];
  readonly storeErrors: string[] = [];
  cacheHits = 0;
  limitStats(stats: readonly LimitStats[]): void {
    this.stats.push(...stats);
  }
  domainNotFound(domain: string, descriptors: number): void {
    this.notFound.push([domain, descriptors]);
  }
  decision(domain: string, code: Code, globalShadow: boolean): void {
    this.decisions.push([domain, code, globalShadow]);
  }
  localCacheHit(): void {
    this.cacheHits++;
  }
  storeError(code: string): void {
    this.storeErrors.push(code);
  }
  storeAnswered(): void {}
}

interface StoreCall {
  readonly ops: readonly CounterOp[];
  readonly policy: ConsumePolicy;
  readonly nowMs: number;
}

/** Wraps a store to record every apply() and optionally fail it. */
class RecordingStore implements CounterStore {
  readonly calls: StoreCall[] = [];
  failWith: Error | undefined;
  constructor(readonly inner: CounterStore = new MemoryCounterStore()) {}
  async apply(ops: readonly CounterOp[], policy: ConsumePolicy, nowMs: number, signal: AbortSignal): Promise<CounterResult[]> {
    this.calls.push({ ops: ops.map((op) => ({ ...op })), policy, nowMs });
    if (this.failWith) throw this.failWith;
    return this.inner.apply(ops, policy, nowMs, signal);
  }
  ping(signal: AbortSignal): Promise<void> {
    return this.inner.ping(signal);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  get keys(): string[] {
    return this.calls.flatMap((c) => c.ops.map((op) => op.key));
  }
  get lastOps(): readonly CounterOp[] {
    return this.calls[this.calls.length - 1]?.ops ?? [];
  }
}

interface HarnessOptions {
  readonly config?: RateLimitConfig | undefined;
  readonly settings?: Partial<RateLimitSettings>;
  readonly nowMs?: number;
  readonly random?: () => number;
}

function harness(options: HarnessOptions = {}) {
  const clock = new FakeClock(options.nowMs ?? T0);
  const store = new RecordingStore();
  const observer = new RecordingObserver();
  const cache = new OverLimitCache(1000);
  const snapshot = { settings: { ...BASE_SETTINGS, ...options.settings }, config: 'config' in options ? options.config : compileFixtures('basic.yaml') };
  const service = new RateLimitService({
    store, clock, observer, overLimitCache: cache, random: options.random ?? (() => 0), snapshot: () => snapshot,
  });
  const call = (domain: string, descriptors: readonly RequestDescriptor[], hitsAddend = 0, signal = AbortSignal.timeout(10_000)): Promise<Decision> =>
    service.shouldRateLimit({ domain, descriptors, hitsAddend }, signal);
  return { clock, store, observer, cache, service, snapshot, call };
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, message?: string): Promise<PortcullisError> {
  let caught: unknown;
  await promise.then(
    () => assert.fail(`expected a rejection with ${code}`),
    (error: unknown) => (caught = error),
  );
  assert.ok(caught instanceof PortcullisError, `expected a PortcullisError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (message !== undefined) assert.equal(caught.message, message);
  return caught;
}

const summary = (d: Decision) => d.statuses.map((s) => [s.code, s.limitRemaining]);

const KEY_FORMAT_YAML = `
domain: domain
descriptors:
  - key: key
    rate_limit: {unit: second, requests_per_unit: 5}
  - key: key2
    value: value2
    descriptors:
      - key: subkey2
        value: subvalue2
        rate_limit: {unit: minute, requests_per_unit: 5}
  - key: key3
    value: value3
    rate_limit: {unit: hour, requests_per_unit: 5}
    descriptors:
      - key: subkey3
        value: subvalue3
        rate_limit: {unit: day, requests_per_unit: 5}
`;

const TWO_KEYS_YAML = (extra = '') => `
domain: two
${extra}
descriptors:
  - key: a
    rate_limit: {unit: minute, requests_per_unit: 1}
  - key: b
    rate_limit: {unit: minute, requests_per_unit: 10}
  - key: shadowed
    shadow_mode: true
    rate_limit: {unit: minute, requests_per_unit: 1}
  - key: free
    rate_limit: {unlimited: true}
`;

describe('RateLimitService: request validation', () => {
  const cases: { name: string; domain: string; descriptors: RequestDescriptor[]; config?: RateLimitConfig | undefined; settings?: Partial<RateLimitSettings>; code: ErrorCode; message: string }[] = [
    { name: 'empty domain', domain: '', descriptors: [desc('key2=x')], code: ErrorCode.RL_EMPTY_DOMAIN, message: 'rate limit domain must not be empty' },
    { name: 'empty domain is checked before the config', domain: '', descriptors: [desc('key2=x')], config: undefined, code: ErrorCode.RL_EMPTY_DOMAIN, message: 'rate limit domain must not be empty' },
    { name: 'empty descriptor list', domain: 'test-domain', descriptors: [], code: ErrorCode.RL_EMPTY_DESCRIPTORS, message: 'rate limit descriptor list must not be empty' },
    { name: 'no configuration loaded', domain: 'test-domain', descriptors: [desc('key2=x')], config: undefined, code: ErrorCode.RL_NO_CONFIG, message: 'no rate limit configuration loaded' },
    {
      name: 'too many descriptors', domain: 'test-domain', descriptors: [desc('a'), desc('b'), desc('c')], settings: { maxDescriptors: 2 },
      code: ErrorCode.RL_BAD_REQUEST, message: 'rate limit request has 3 descriptors, more than the maximum of 2',
    },
    {
      name: 'too many entries', domain: 'test-domain', descriptors: [desc('a'), desc('a=1', 'b=2', 'c=3')], settings: { maxEntries: 2 },
      code: ErrorCode.RL_BAD_REQUEST, message: 'rate limit descriptor has 3 entries, more than the maximum of 2',
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const h = harness({ ...('config' in c ? { config: c.config } : {}), settings: c.settings ?? {} });
      await rejectsWith(h.call(c.domain, c.descriptors), c.code, c.message);
      assert.equal(h.store.calls.length, 0, 'the store is not asked');
    });
  }

  it('accepts exactly the maximum number of descriptors and entries', async () => {
    const h = harness({ settings: { maxDescriptors: 2, maxEntries: 2 } });
    const d = await h.call('test-domain', [desc('key2=x'), desc('key1=value1', 'subkey1=y')]);
    assert.deepEqual(summary(d), [['OK', 19], ['OK', 4]]);
  });
});

describe('RateLimitService: domains and matching', () => {
  it('an unknown domain is OK for every descriptor, observed as domain_not_found, and touches no counter', async () => {
    const h = harness();
    const d = await h.call('nope', [desc('key2=x'), desc('key3=y')]);
    assert.equal(d.overallCode, 'OK');
    assert.deepEqual(d.statuses, [
      { code: 'OK', currentLimit: undefined, limitRemaining: 0, durationUntilResetSeconds: undefined },
      { code: 'OK', currentLimit: undefined, limitRemaining: 0, durationUntilResetSeconds: undefined },
    ]);
    assert.deepEqual(h.observer.notFound, [['nope', 2]]);
    assert.deepEqual(h.observer.decisions, [['nope', 'OK', false]]);
    assert.equal(h.store.calls.length, 0);
  });

  it('a known domain is not reported as not found', async () => {
    const h = harness();
    await h.call('test-domain', [desc('key2=x')]);
    assert.deepEqual(h.observer.notFound, []);
  });

  it('unmatched descriptors and descriptors with no entries are OK without a counter', async () => {
    const h = harness();
    const d = await h.call('test-domain', [{ entries: [], limitOverride: undefined, hitsAddend: undefined }, desc('unknown=1'), desc('key2=x')]);
    assert.deepEqual(d.statuses.map((s) => [s.code, s.currentLimit?.requestsPerUnit, s.limitRemaining]), [['OK', undefined, 0], ['OK', undefined, 0], ['OK', 20, 19]]);
    assert.deepEqual(h.store.keys, ['test-domain_key2_x_1700000100']);
  });

  it('fills current_limit and duration_until_reset', async () => {
    const h = harness({ nowMs: T0 + 23_000 });
    const d = await h.call('test-domain', [desc('key2=x')]);
    assert.deepEqual(d.statuses[0], { code: 'OK', currentLimit: { requestsPerUnit: 20, unit: 'MINUTE', name: '' }, limitRemaining: 19, durationUntilResetSeconds: 37 });
  });

  it('reports stats under the matched stats key', async () => {
    const h = harness();
    await h.call('test-domain', [desc('key1=value1', 'subkey1=anything'), desc('key7=v7')]);
    assert.deepEqual(h.observer.stats.map((s) => [s.key, s.totalHits, s.withinLimit]), [['test-domain.key1_value1.subkey1', 1, 1], ['test-domain.key7_v7', 1, 1]]);
  });

  it('empty keys and values are legal entries', async () => {
    const h = harness({ config: compileYaml(KEY_FORMAT_YAML), nowMs: 1_234_000 });
    const d = await h.call('domain', [desc('key'), desc('=')]);
    assert.deepEqual(summary(d), [['OK', 4], ['OK', 0]]);
    assert.deepEqual(h.store.keys, ['domain_key__1234']);
  });

  it('passes values that are not clean UTF-8 (U+FFFD after decoding) through unchanged', async () => {
    const h = harness();
    const value = '\uFFFDa\uFFFD';
    const d = await h.call('test-domain', [desc(`key2=${value}`)]);
    assert.deepEqual(summary(d), [['OK', 19]]);
    assert.deepEqual(h.store.keys, [`test-domain_key2_${value}_1700000100`]);
  });

  it('uses the configuration of each call (a reload takes effect on the next call)', async () => {
    const h = harness();
    assert.deepEqual(summary(await h.call('test-domain', [desc('key2=x')])), [['OK', 19]]);
    h.snapshot.config = compileYaml('domain: test-domain\ndescriptors:\n  - key: key2\n    rate_limit: {unit: minute, requests_per_unit: 50}\n');
    assert.deepEqual(summary(await h.call('test-domain', [desc('key2=x')])), [['OK', 48]]);
  });
});

describe('RateLimitService: hits', () => {
  const cases: { name: string; requestHits: number; descriptorHits?: number; opHits: number; remaining: number }[] = [
    { name: 'request hits_addend 0 means 1', requestHits: 0, opHits: 1, remaining: 19 },
    { name: 'request hits_addend', requestHits: 3, opHits: 3, remaining: 17 },
    { name: 'per-descriptor hits_addend wins over the request', requestHits: 3, descriptorHits: 5, opHits: 5, remaining: 15 },
    { name: 'per-descriptor hits_addend 1 with a request value', requestHits: 7, descriptorHits: 1, opHits: 1, remaining: 19 },
    { name: 'per-descriptor hits_addend 0 only checks', requestHits: 3, descriptorHits: 0, opHits: 0, remaining: 20 },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const h = harness();
      let d = desc('key2=x');
      if (c.descriptorHits !== undefined) d = withHits(d, c.descriptorHits);
      const decision = await h.call('test-domain', [d], c.requestHits);
      assert.deepEqual(h.store.lastOps.map((op) => op.hits), [c.opHits]);
      assert.deepEqual(summary(decision), [['OK', c.remaining]]);
    });
  }

  it('a check-only descriptor reports the usage others left', async () => {
    const h = harness();
    await h.call('test-domain', [desc('key2=x')], 4);
    const d = await h.call('test-domain', [withHits(desc('key2=x'), 0)]);
    assert.deepEqual(summary(d), [['OK', 16]]);
  });

  it('mixes per-descriptor and request hits in one request', async () => {
    const h = harness();
    const d = await h.call('test-domain', [withHits(desc('key2=x'), 2), desc('key2=y')], 6);
    assert.deepEqual(h.store.lastOps.map((op) => op.hits), [2, 6]);
    assert.deepEqual(summary(d), [['OK', 18], ['OK', 14]]);
  });

  for (const where of ['request', 'descriptor'] as const) {
    it(`a huge hits_addend (2^40, on the ${where}) is OVER_LIMIT and does not break the counter`, async () => {
      const h = harness();
      const huge = 2 ** 40;
      const d = await h.call('test-domain', [where === 'descriptor' ? withHits(desc('key2=x'), huge) : desc('key2=x')], where === 'request' ? huge : 0);
      assert.equal(d.overallCode, 'OVER_LIMIT');
      assert.deepEqual(summary(d), [['OVER_LIMIT', 0]]);
      const op = h.store.lastOps[0]!;
      assert.ok(Number.isSafeInteger(op.hits) && op.hits > 20, `hits ${op.hits}`);
      // Later calls still work and still see the counter over the limit.
      const after = await h.call('test-domain', [desc('key2=x')]);
      assert.deepEqual(summary(after), [['OVER_LIMIT', 0]]);
      const other = await h.call('test-domain', [desc('key2=other')]);
      assert.deepEqual(summary(other), [['OK', 19]]);
    });
  }
});

describe('RateLimitService: storage keys', () => {
  const cases: { name: string; nowMs: number; entries: string[]; prefix?: string; key: string; ttlMs: number }[] = [
    { name: 'SECOND', nowMs: 1_234_000, entries: ['key=value'], key: 'domain_key_value_1234', ttlMs: 1000 },
    { name: 'SECOND ignores milliseconds', nowMs: 1_234_999, entries: ['key=value'], key: 'domain_key_value_1234', ttlMs: 1000 },
    { name: 'MINUTE', nowMs: 1_234_000, entries: ['key2=value2', 'subkey2=subvalue2'], key: 'domain_key2_value2_subkey2_subvalue2_1200', ttlMs: 60_000 },
    { name: 'HOUR', nowMs: 1_000_000_000, entries: ['key3=value3'], key: 'domain_key3_value3_997200', ttlMs: 3_600_000 },
    { name: 'DAY', nowMs: 1_000_000_000, entries: ['key3=value3', 'subkey3=subvalue3'], key: 'domain_key3_value3_subkey3_subvalue3_950400', ttlMs: 86_400_000 },
    { name: 'cache_key_prefix', nowMs: 1_234_000, entries: ['key=value'], prefix: 'prefix:', key: 'prefix:domain_key_value_1234', ttlMs: 1000 },
    { name: 'empty value', nowMs: 1_234_000, entries: ['key'], key: 'domain_key__1234', ttlMs: 1000 },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const h = harness({ config: compileYaml(KEY_FORMAT_YAML), nowMs: c.nowMs, settings: { cacheKeyPrefix: c.prefix ?? '' } });
      await h.call('domain', [desc(...c.entries)]);
      assert.equal(h.store.calls.length, 1);
      const op = h.store.lastOps[0]!;
      assert.equal(op.key, c.key);
      assert.deepEqual([op.algorithm, op.ttlMs, op.hits], ['fixed_window', c.ttlMs, 1]);
    });
  }

  it('adds jitter to the time to live: window + floor(random * max) seconds', async () => {
    const h = harness({ config: compileYaml(KEY_FORMAT_YAML), nowMs: 1_234_000, random: () => 0.5, settings: { expirationJitterMaxSeconds: 300 } });
    await h.call('domain', [desc('key2=value2', 'subkey2=subvalue2')]);
    assert.equal(h.store.lastOps[0]!.ttlMs, 60_000 + 150_000);
  });

  it('share_threshold counts every matching value in one key named by the pattern', async () => {
    const h = harness({ config: compileFixtures('share_threshold.yaml') });
    await h.call('test-domain', [desc('files=files/a.txt')]);
    const d = await h.call('test-domain', [desc('files=files/b.txt')]);
    assert.deepEqual(h.store.keys, ['test-domain_files_files/*_1700000100', 'test-domain_files_files/*_1700000100']);
    assert.deepEqual(summary(d), [['OK', 98]]);
  });

  it('a plain wildcard counts each value in its own key', async () => {
    const h = harness({ config: compileFixtures('wildcard.yaml') });
    await h.call('wildcard', [desc('wild=foo1')]);
    const d = await h.call('wildcard', [desc('wild=foo2')]);
    assert.deepEqual(h.store.keys, ['wildcard_wild_foo1_1700000100', 'wildcard_wild_foo2_1700000100']);
    assert.deepEqual(summary(d), [['OK', 19]]);
  });

  it('limit overrides with different requests_per_unit share one counter', async () => {
    const h = harness();
    await h.call('test-domain', [withOverride(desc('key2=x'), 5, 'MINUTE')]);
    const d = await h.call('test-domain', [withOverride(desc('key2=x'), 10, 'MINUTE')]);
    assert.deepEqual(h.store.keys, ['test-domain_key2_x_1700000100', 'test-domain_key2_x_1700000100']);
    assert.deepEqual(d.statuses[0], { code: 'OK', currentLimit: { requestsPerUnit: 10, unit: 'MINUTE', name: '' }, limitRemaining: 8, durationUntilResetSeconds: 60 });
  });

  it('window rollover: a new window starts a new counter', async () => {
    const h = harness({ config: compileYaml(TWO_KEYS_YAML()) });
    assert.deepEqual(summary(await h.call('two', [desc('a')])), [['OK', 0]]);
    h.clock.advance(59_999);
    assert.deepEqual(summary(await h.call('two', [desc('a')])), [['OVER_LIMIT', 0]]);
    h.clock.advance(1);
    const d = await h.call('two', [desc('a')]);
    assert.deepEqual(summary(d), [['OK', 0]]);
    assert.equal(d.statuses[0]!.durationUntilResetSeconds, 60);
    assert.deepEqual(h.store.keys, ['two_a__1700000100', 'two_a__1700000100', 'two_a__1700000160']);
  });
});

describe('RateLimitService: replaces, unlimited, shadow', () => {
  it('a matched limit replaces another descriptor’s limit by name', async () => {
    const h = harness({ config: compileFixtures('replaces.yaml') });
    const d = await h.call('replaces', [desc('user=u1'), desc('vip=1')]);
    assert.deepEqual(d.statuses[0], { code: 'OK', currentLimit: undefined, limitRemaining: 0, durationUntilResetSeconds: undefined });
    assert.deepEqual(d.statuses[1]!.currentLimit, { requestsPerUnit: 1000, unit: 'MINUTE', name: 'vip' });
    assert.deepEqual(h.store.keys, ['replaces_vip_1_1700000100'], 'the replaced counter is not incremented');
  });

  it('without the replacing descriptor the limit counts', async () => {
    const h = harness({ config: compileFixtures('replaces.yaml') });
    const d = await h.call('replaces', [desc('user=u1')]);
    assert.deepEqual(d.statuses[0]!.currentLimit, { requestsPerUnit: 10, unit: 'MINUTE', name: 'per-user' });
    assert.deepEqual(h.store.keys, ['replaces_user_u1_1700000100']);
  });

  it('an unlimited limit replaces too, and neither touches the store', async () => {
    const h = harness({ config: compileFixtures('replaces.yaml') });
    const d = await h.call('replaces', [desc('vip_unlimited=1'), desc('user=u1')]);
    assert.deepEqual(summary(d), [['OK', UINT32_MAX], ['OK', 0]]);
    assert.equal(d.statuses[0]!.currentLimit, undefined);
    assert.equal(h.store.calls.length, 0);
    assert.deepEqual(h.observer.stats, [], 'no stats for unlimited or replaced limits');
  });

  it('rule shadow_mode: OK with 0 remaining, counter still incremented, shadow stat', async () => {
    const h = harness({ config: compileYaml(TWO_KEYS_YAML()) });
    await h.call('two', [desc('shadowed')]);
    const d = await h.call('two', [desc('shadowed')]);
    assert.equal(d.overallCode, 'OK');
    assert.deepEqual(d.statuses[0], { code: 'OK', currentLimit: { requestsPerUnit: 1, unit: 'MINUTE', name: '' }, limitRemaining: 0, durationUntilResetSeconds: 60 });
    assert.deepEqual(h.observer.stats.map((s) => [s.key, s.overLimit, s.shadowMode]), [['two.shadowed', 0, 0], ['two.shadowed', 1, 1]]);
    const check = await h.call('two', [withHits(desc('shadowed'), 0)]);
    assert.equal(h.store.calls.length, 3);
    assert.deepEqual(check.statuses[0]!.limitRemaining, 0);
  });

  it('global shadow mode: statuses keep OVER_LIMIT, the answer is OK, observed as global shadow', async () => {
    const h = harness({ config: compileYaml(TWO_KEYS_YAML()), settings: { shadowMode: true } });
    await h.call('two', [desc('a')]);
    const d = await h.call('two', [desc('a'), desc('b')]);
    assert.equal(d.overallCode, 'OK');
    assert.deepEqual(summary(d), [['OVER_LIMIT', 0], ['OK', 9]]);
    assert.deepEqual(h.observer.decisions, [['two', 'OK', false], ['two', 'OK', true]]);
  });

  it('global quota mode: never OVER_LIMIT; an over descriptor reads OK with remaining 0 and no reset', async () => {
    const h = harness({ config: compileYaml(TWO_KEYS_YAML()), settings: { quotaMode: true } });
    await h.call('two', [desc('a')]);
    assert.equal((await h.call('two', [desc('a'), desc('b')])).overallCode, 'OK');
    const d = await h.call('two', [desc('a')]);
    assert.equal(d.overallCode, 'OK');
    assert.deepEqual(summary(d), [['OK', 0]]);
    assert.equal(d.statuses[0]!.durationUntilResetSeconds, undefined);
    assert.deepEqual(h.observer.decisions.map(([, code]) => code), ['OK', 'OK', 'OK']);
  });

  it('adds RateLimit-* headers when enabled', async () => {
    const h = harness({ config: compileYaml(TWO_KEYS_YAML()), nowMs: T0 + 45_000, settings: { responseHeaders: { ...BASE_SETTINGS.responseHeaders, enabled: true } } });
    const d = await h.call('two', [desc('b')], 3);
    assert.deepEqual(d.responseHeaders, [['RateLimit-Limit', '10'], ['RateLimit-Remaining', '7'], ['RateLimit-Reset', '15']]);
  });
});

describe('RateLimitService: what an over-limit request consumes', () => {
  it('by default every counter is incremented, the one over the limit too', async () => {
    const h = harness({ config: compileYaml(TWO_KEYS_YAML()) });
    await h.call('two', [desc('a'), desc('b')]);
    const d = await h.call('two', [desc('a'), desc('b')]);
    assert.deepEqual(summary(d), [['OVER_LIMIT', 0], ['OK', 8]]);
    assert.equal(h.store.calls[1]!.policy, 'always');
    assert.deepEqual(summary(await h.call('two', [withHits(desc('b'), 0)])), [['OK', 8]]);
  });

  it('stop_increment_when_over_limit: only the over key consumes; the others report unchanged remaining', async () => {
    const h = harness({ config: compileYaml(TWO_KEYS_YAML()), settings: { stopIncrementWhenOverLimit: true } });
    assert.deepEqual(summary(await h.call('two', [desc('a'), desc('b')])), [['OK', 0], ['OK', 9]]);
    const d = await h.call('two', [desc('a'), desc('b')]);
    assert.equal(d.overallCode, 'OVER_LIMIT');
    assert.deepEqual(summary(d), [['OVER_LIMIT', 0], ['OK', 9]]);
    assert.equal(h.store.calls[1]!.policy, 'only_over');
    // b kept its count; a consumed (a check now sees 2 > 1).
    assert.deepEqual(summary(await h.call('two', [withHits(desc('b'), 0), withHits(desc('a'), 0)])), [['OK', 9], ['OVER_LIMIT', 0]]);
  });

  it('consume_when_over_limit: none (domain): no counter consumes when one would go over', async () => {
    const h = harness({ config: compileYaml(TWO_KEYS_YAML('consume_when_over_limit: none')) });
    await h.call('two', [desc('a'), desc('b')]);
    const d = await h.call('two', [desc('a'), desc('b')]);
    assert.deepEqual(summary(d), [['OVER_LIMIT', 0], ['OK', 9]]);
    assert.equal(h.store.calls[1]!.policy, 'none_if_over');
    // a is still at exactly 1 (a check is OK with 0 left), b at 1.
    assert.deepEqual(summary(await h.call('two', [withHits(desc('a'), 0), withHits(desc('b'), 0)])), [['OK', 0], ['OK', 9]]);
  });

  it('consume_when_over_limit: all (domain) wins over the global stop_increment_when_over_limit', async () => {
    const h = harness({ config: compileYaml(TWO_KEYS_YAML('consume_when_over_limit: all')), settings: { stopIncrementWhenOverLimit: true } });
    await h.call('two', [desc('a'), desc('b')]);
    const d = await h.call('two', [desc('a'), desc('b')]);
    assert.deepEqual(summary(d), [['OVER_LIMIT', 0], ['OK', 8]]);
    assert.equal(h.store.calls[1]!.policy, 'always');
  });

  it('consume_when_over_limit: over_limit_only (domain) works without the global setting', async () => {
    const h = harness({ config: compileYaml(TWO_KEYS_YAML('consume_when_over_limit: over_limit_only')) });
    await h.call('two', [desc('a'), desc('b')]);
    assert.deepEqual(summary(await h.call('two', [desc('a'), desc('b')])), [['OVER_LIMIT', 0], ['OK', 9]]);
    assert.equal(h.store.calls[1]!.policy, 'only_over');
  });
});

describe('RateLimitService: local over-limit cache', () => {
  it('a key known to be over skips the store until its window ends', async () => {
    const h = harness({ config: compileYaml(TWO_KEYS_YAML()), settings: { localCache: { enabled: true, maxEntries: 100 } }, nowMs: T0 + 30_000 });
    assert.deepEqual(summary(await h.call('two', [desc('a')])), [['OK', 0]]);
    assert.deepEqual(summary(await h.call('two', [desc('a')])), [['OVER_LIMIT', 0]]);
    assert.equal(h.store.calls.length, 2);
    const cached = await h.call('two', [desc('a')], 2);
    assert.deepEqual(cached.statuses[0], { code: 'OVER_LIMIT', currentLimit: { requestsPerUnit: 1, unit: 'MINUTE', name: '' }, limitRemaining: 0, durationUntilResetSeconds: 30 });
    assert.equal(h.store.calls.length, 2, 'the store was not asked');
    assert.equal(h.observer.cacheHits, 1);
    assert.deepEqual(h.observer.stats.at(-1), {
      key: 'two.a', totalHits: 2, overLimit: 2, nearLimit: 0, withinLimit: 0, overLimitWithLocalCache: 2, shadowMode: 0,
    });
    h.clock.advance(29_999);
    await h.call('two', [desc('a')]);
    assert.equal(h.store.calls.length, 2, 'still cached at the last millisecond of the window');
    h.clock.advance(1);
    assert.deepEqual(summary(await h.call('two', [desc('a')])), [['OK', 0]]);
    assert.equal(h.store.calls.length, 3, 'a new window asks the store again');
  });

  it('without the cache every call asks the store', async () => {
    const h = harness({ config: compileYaml(TWO_KEYS_YAML()) });
    for (let i = 0; i < 4; i++) await h.call('two', [desc('a')]);
    assert.equal(h.store.calls.length, 4);
    assert.equal(h.observer.cacheHits, 0);
  });

  it('with stop_increment_when_over_limit, a cached over key makes the others check only', async () => {
    const h = harness({ config: compileYaml(TWO_KEYS_YAML()), settings: { localCache: { enabled: true, maxEntries: 100 }, stopIncrementWhenOverLimit: true } });
    await h.call('two', [desc('a')]);
    await h.call('two', [desc('a')]);
    const d = await h.call('two', [desc('a'), desc('b')]);
    assert.deepEqual(summary(d), [['OVER_LIMIT', 0], ['OK', 10]]);
    assert.deepEqual(h.store.lastOps.map((op) => [op.key, op.hits]), [['two_b__1700000100', 0]]);
  });

  it('a cached over key does not stop the others by default', async () => {
    const h = harness({ config: compileYaml(TWO_KEYS_YAML()), settings: { localCache: { enabled: true, maxEntries: 100 } } });
    await h.call('two', [desc('a')]);
    await h.call('two', [desc('a')]);
    const d = await h.call('two', [desc('a'), desc('b')]);
    assert.deepEqual(summary(d), [['OVER_LIMIT', 0], ['OK', 9]]);
    assert.deepEqual(h.store.lastOps.map((op) => [op.key, op.hits]), [['two_b__1700000100', 1]]);
  });

  it('shadow mode limits are cached too, and answer OK from the cache', async () => {
    const h = harness({ config: compileYaml(TWO_KEYS_YAML()), settings: { localCache: { enabled: true, maxEntries: 100 } } });
    await h.call('two', [desc('shadowed')]);
    await h.call('two', [desc('shadowed')]);
    const d = await h.call('two', [desc('shadowed')]);
    assert.equal(h.store.calls.length, 2);
    assert.deepEqual(summary(d), [['OK', 0]]);
    assert.equal(h.observer.stats.at(-1)!.shadowMode, 1);
  });

  it('rolling limits are never cached', async () => {
    const h = harness({ config: compileFixtures('extensions.yaml'), settings: { localCache: { enabled: true, maxEntries: 100 } } });
    for (let i = 0; i < 12; i++) await h.call('ext', [desc('sliding')]);
    assert.equal(h.store.calls.length, 12);
  });
});

describe('RateLimitService: other algorithms end to end', () => {
  it('sliding window: the previous window weighs by its overlap', async () => {
    const h = harness({ config: compileFixtures('extensions.yaml') });
    const remaining: number[] = [];
    for (let i = 0; i < 10; i++) remaining.push((await h.call('ext', [desc('sliding')])).statuses[0]!.limitRemaining);
    assert.deepEqual(remaining, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    assert.deepEqual(summary(await h.call('ext', [desc('sliding')])), [['OVER_LIMIT', 0]]);
    h.clock.advance(60_000);
    assert.deepEqual(summary(await h.call('ext', [desc('sliding')])), [['OVER_LIMIT', 0]], 'the previous window still counts fully');
    h.clock.advance(30_000);
    assert.deepEqual(summary(await h.call('ext', [desc('sliding')])), [['OK', 4]], 'half of 10 left from the previous window, plus this one');
    assert.deepEqual(new Set(h.store.keys), new Set(['ext_sliding__sliding_window:60:']));
    assert.equal(h.store.lastOps[0]!.algorithm, 'sliding_window');
  });

  it('token bucket: burst, then one token per interval', async () => {
    const h = harness({ config: compileFixtures('extensions.yaml') });
    let last: Decision | undefined;
    for (let i = 0; i < 20; i++) last = await h.call('ext', [desc('bucket')]);
    assert.deepEqual(summary(last!), [['OK', 0]]);
    assert.equal(last!.statuses[0]!.durationUntilResetSeconds, 120, '20 tokens at 6 s each');
    const over = await h.call('ext', [desc('bucket')]);
    assert.deepEqual(summary(over), [['OVER_LIMIT', 0]]);
    assert.equal(over.statuses[0]!.durationUntilResetSeconds, 6);
    h.clock.advance(6_000);
    assert.deepEqual(summary(await h.call('ext', [desc('bucket')])), [['OK', 0]]);
    assert.deepEqual(summary(await h.call('ext', [desc('bucket')])), [['OVER_LIMIT', 0]]);
    assert.deepEqual(new Set(h.store.keys), new Set(['ext_bucket__token_bucket:60:']));
    const op = h.store.lastOps[0]!;
    assert.deepEqual([op.algorithm, op.capacity, op.refill, op.windowMs], ['token_bucket', 20, 10, 60_000]);
  });

  it('unit_multiplier: a 5-minute window', async () => {
    const h = harness({ config: compileFixtures('extensions.yaml'), nowMs: T0 + 60_000 });
    const d = await h.call('ext', [desc('five_minutes')]);
    // T0 + 60 s is 1700000160 s; its 300 s window starts at 1700000100.
    assert.deepEqual(h.store.keys, ['ext_five_minutes__1700000100']);
    assert.deepEqual(summary(d), [['OK', 2]]);
    assert.equal(d.statuses[0]!.durationUntilResetSeconds, 240);
    assert.equal(h.store.lastOps[0]!.ttlMs, 300_000);
  });

  it('rate_limits: several limits on one descriptor answer with the binding one', async () => {
    // extensions.yaml: api has burst 2/s and daily 5/day; the domain consumes nothing when over.
    const h = harness({ config: compileFixtures('extensions.yaml') });
    const first = await h.call('ext', [desc('api')]);
    assert.deepEqual(first.statuses[0]!.currentLimit, { requestsPerUnit: 2, unit: 'SECOND', name: 'burst' });
    assert.equal(first.statuses[0]!.limitRemaining, 1);
    await h.call('ext', [desc('api')]);
    const third = await h.call('ext', [desc('api')]);
    assert.deepEqual([third.overallCode, third.statuses[0]!.currentLimit?.name], ['OVER_LIMIT', 'burst']);
    h.clock.advance(1000);
    const fourth = await h.call('ext', [desc('api')]);
    assert.deepEqual([fourth.statuses[0]!.code, fourth.statuses[0]!.currentLimit?.name, fourth.statuses[0]!.limitRemaining], ['OK', 'burst', 1]);
    assert.deepEqual(h.store.lastOps.map((op) => op.key), ['ext_api__fixed_window:1:burst:1700000101', 'ext_api__fixed_window:86400:daily:1699920000']);
    assert.deepEqual(h.observer.stats.slice(0, 2).map((s) => s.key), ['ext.api#burst', 'ext.api#daily']);
    // daily: 3 consumed (the rejected call consumed nothing); two more use it up.
    h.clock.advance(1000);
    await h.call('ext', [desc('api')]);
    h.clock.advance(1000);
    const sixth = await h.call('ext', [desc('api')]);
    assert.deepEqual([sixth.statuses[0]!.code, sixth.statuses[0]!.currentLimit?.name, sixth.statuses[0]!.limitRemaining], ['OK', 'daily', 0]);
  });

  it('rate_limits: two limits with the same window count separately', async () => {
    const config = compileYaml(`
domain: same
descriptors:
  - key: k
    rate_limits:
      - {name: low, unit: minute, requests_per_unit: 10}
      - {name: high, unit: minute, requests_per_unit: 100}
`);
    const h = harness({ config });
    let d: Decision | undefined;
    for (let i = 0; i < 6; i++) d = await h.call('same', [desc('k')]);
    assert.deepEqual([d!.statuses[0]!.code, d!.statuses[0]!.currentLimit?.name, d!.statuses[0]!.limitRemaining], ['OK', 'low', 4]);
    const [low, high] = h.store.lastOps;
    assert.notEqual(low!.key, high!.key);
  });
});

describe('RateLimitService: store failures', () => {
  const boom = () => new StoreError(ErrorCode.STORE_UNAVAILABLE, 'CLUSTERDOWN The cluster is down');

  it('failure_mode error: the call fails with the store error', async () => {
    const h = harness();
    h.store.failWith = boom();
    const error = await rejectsWith(h.call('test-domain', [desc('key2=x')]), ErrorCode.STORE_UNAVAILABLE, 'CLUSTERDOWN The cluster is down');
    assert.ok(error instanceof StoreError);
    assert.deepEqual(h.observer.storeErrors, [ErrorCode.STORE_UNAVAILABLE]);
    assert.deepEqual(h.observer.decisions, []);
  });

  it('failure_mode allow: every descriptor OK', async () => {
    const h = harness({ settings: { failureMode: 'allow' } });
    h.store.failWith = boom();
    const d = await h.call('test-domain', [desc('key2=x'), desc('key3=y')]);
    assert.equal(d.overallCode, 'OK');
    assert.deepEqual(d.statuses, [
      { code: 'OK', currentLimit: undefined, limitRemaining: 0, durationUntilResetSeconds: undefined },
      { code: 'OK', currentLimit: undefined, limitRemaining: 0, durationUntilResetSeconds: undefined },
    ]);
    assert.deepEqual(h.observer.storeErrors, [ErrorCode.STORE_UNAVAILABLE]);
    // An answer like any other: portcullis_ratelimit_decisions_total counts it.
    assert.deepEqual(h.observer.decisions, [['test-domain', 'OK', false]]);
  });

  it('failure_mode deny: every descriptor OVER_LIMIT', async () => {
    const h = harness({ settings: { failureMode: 'deny' } });
    h.store.failWith = boom();
    const d = await h.call('test-domain', [desc('key2=x')]);
    assert.equal(d.overallCode, 'OVER_LIMIT');
    assert.deepEqual(summary(d), [['OVER_LIMIT', 0]]);
    // Counted as OVER_LIMIT, so the dashboard's refusals by domain show an outage in deny mode.
    assert.deepEqual(h.observer.decisions, [['test-domain', 'OVER_LIMIT', false]]);
  });

  it('a deadline that already passed fails as a store timeout', async () => {
    const h = harness();
    const controller = new AbortController();
    controller.abort();
    await rejectsWith(h.call('test-domain', [desc('key2=x')], 0, controller.signal), ErrorCode.STORE_TIMEOUT);
    assert.deepEqual(h.observer.storeErrors, [ErrorCode.STORE_TIMEOUT]);
  });

  it('an error that is not a store error is not hidden by failure_mode allow', async () => {
    const h = harness({ settings: { failureMode: 'allow' } });
    h.store.failWith = new TypeError('bug');
    await assert.rejects(h.call('test-domain', [desc('key2=x')]), TypeError);
    assert.deepEqual(h.observer.storeErrors, []);
  });

  it('calls that need no counter succeed while the store is down', async () => {
    const h = harness({ config: compileFixtures('replaces.yaml') });
    h.store.failWith = boom();
    const d = await h.call('replaces', [desc('vip_unlimited=1'), desc('user=u'), desc('other=x')]);
    assert.equal(d.overallCode, 'OK');
    assert.equal(h.store.calls.length, 0);
    const unknown = await h.call('nope', [desc('a=b')]);
    assert.equal(unknown.overallCode, 'OK');
  });
});

describe('RateLimitService: response dynamic metadata', () => {
  it('is absent unless enabled', async () => {
    const h = harness({ config: compileFixtures('metadata.yaml') });
    assert.equal((await h.call('test-domain', [desc('key2=x')])).dynamicMetadata, undefined);
  });

  it('carries the request and the matched descriptors\' metadata, the first winning on conflicts', async () => {
    const h = harness({ config: compileFixtures('metadata.yaml'), settings: { responseDynamicMetadata: true } });
    const d = await h.call('test-domain', [desc('key1=value1', 'subkey1=y'), desc('key2=x'), desc('other=1')]);
    assert.deepEqual(d.dynamicMetadata, {
      domain: 'test-domain',
      descriptors: [{ entries: ['key1=value1', 'subkey1=y'] }, { entries: ['key2=x'] }, { entries: ['other=1'] }],
      quotaModeEnabled: false,
      metadata: { name: 'service_1', service_with_quota: { name: 'service_2', weights: [0.5, 1.5] } },
    });
  });

  it('names the quota descriptors over their limit, and echoes each descriptor\'s override and hits_addend', async () => {
    const h = harness({ config: compileFixtures('quota_mode.yaml'), settings: { responseDynamicMetadata: true } });
    await h.call('quota', [desc('soft=a')]);
    const d = await h.call('quota', [desc('hard=c'), withHits(desc('soft=a'), 2), withOverride(desc('x=y'), 5, 'HOUR'), withHits(withOverride(desc('x=z'), 0, 'DAY'), 0)], 1);
    assert.equal(d.overallCode, 'OK');
    assert.deepEqual(d.dynamicMetadata, {
      domain: 'quota',
      descriptors: [
        { entries: ['hard=c'] },
        { entries: ['soft=a'], hitsAddend: 2 },
        { entries: ['x=y'], limit: 'requests_per_unit:5 unit:HOUR' },
        { entries: ['x=z'], limit: 'unit:DAY', hitsAddend: 0 },
      ],
      hitsAddend: 1,
      quotaModeViolations: [1],
      quotaModeEnabled: true,
    });
  });

  it('quotaModeEnabled reads the limits\' own quota_mode, not the global one', async () => {
    const h = harness({ config: compileFixtures('quota_mode.yaml'), settings: { responseDynamicMetadata: true, quotaMode: true } });
    await h.call('quota', [desc('hard=c')]);
    const d = await h.call('quota', [desc('hard=c')]);
    assert.deepEqual(d.dynamicMetadata, { domain: 'quota', descriptors: [{ entries: ['hard=c'] }], quotaModeViolations: [0], quotaModeEnabled: false });
  });
});
