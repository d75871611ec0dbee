import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  applyOps,
  decideConsumption,
  divmod,
  fixedWindow,
  slidingWindow,
  stepOp,
  tokenBucket,
  validateRequest,
  type CounterState,
  type SlidingWindowState,
  type TokenBucketState,
} from '../../../src/store/algorithms.js';
import type { ConsumePolicy, CounterOp } from '../../../src/store/counter-store.js';
import { bucket, fixed, NOW, r, sliding } from './conformance.js';

describe('divmod', () => {
  const cases: [number, number, number, number][] = [
    [0, 7, 0, 0],
    [6, 7, 0, 6],
    [7, 7, 1, 0],
    [1000, 3, 333, 1],
    [NOW, 60_000, 28_333_334, 0],
    [NOW + 59_999, 60_000, 28_333_334, 59_999],
    [2 ** 53 - 1, 3, 3_002_399_751_580_330, 1],
  ];
  for (const [a, b, q, rem] of cases) {
    it(`${a} = ${q} × ${b} + ${rem}`, () => assert.deepEqual(divmod(a, b), [q, rem]));
  }
});

describe('fixedWindow', () => {
  const cases: { name: string; count?: number; hits: number; consume: boolean; result: ReturnType<typeof r>; writes?: number }[] = [
    { name: 'first hit', hits: 1, consume: true, result: r(0, 1, true), writes: 1 },
    { name: 'reaches the capacity', count: 2, hits: 1, consume: true, result: r(2, 3, true), writes: 3 },
    { name: 'goes over and still consumes', count: 3, hits: 2, consume: true, result: r(3, 5, true), writes: 5 },
    { name: 'not consuming', count: 3, hits: 2, consume: false, result: r(3, 5, false) },
    { name: 'hits 0 writes nothing', count: 2, hits: 0, consume: true, result: r(2, 2, true) },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const state = c.count === undefined ? undefined : { algorithm: 'fixed_window' as const, count: c.count };
      const step = fixedWindow(state, fixed('k', c.hits, 3, 5000), NOW, c.consume);
      assert.deepEqual(step.result, c.result);
      if (c.writes === undefined) assert.equal(step.write, undefined);
      else assert.deepEqual(step.write, { state: { algorithm: 'fixed_window', count: c.writes }, ttlMs: 5000 });
    });
  }
});

describe('slidingWindow', () => {
  const W = 10_000;
  const state = (start: number, current: number, previous: number): SlidingWindowState => ({
    algorithm: 'sliding_window',
    start,
    current,
    previous,
  });
  const cases: { name: string; state?: SlidingWindowState; now: number; hits: number; before: number; consumed: boolean }[] = [
    { name: 'empty', now: NOW + 100, hits: 3, before: 0, consumed: true },
    { name: 'same window', state: state(NOW, 4, 0), now: NOW + 9999, hits: 1, before: 4, consumed: true },
    { name: 'previous window fully weighted at its end', state: state(NOW, 8, 0), now: NOW + W, hits: 1, before: 8, consumed: true },
    { name: 'previous window 75 % weighted', state: state(NOW, 8, 0), now: NOW + W + 2500, hits: 4, before: 6, consumed: true },
    { name: 'floor of the weighted count', state: state(NOW, 9, 0), now: NOW + W + 5000, hits: 0, before: 4, consumed: true },
    { name: 'both windows', state: state(NOW + W, 3, 8), now: NOW + W + 5000, hits: 3, before: 7, consumed: true },
    { name: 'over: never consumes', state: state(NOW + W, 3, 8), now: NOW + W + 5000, hits: 4, before: 7, consumed: false },
    { name: 'two windows old', state: state(NOW, 10, 10), now: NOW + 2 * W, hits: 1, before: 0, consumed: true },
    // Another instance's clock is ahead: its window counts as the current one, fully.
    { name: 'state from a later window', state: state(NOW + W, 2, 6), now: NOW + W - 1, hits: 1, before: 8, consumed: true },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const step = slidingWindow(c.state, sliding('k', c.hits, 10, W), c.now, true);
      assert.deepEqual(step.result, r(c.before, c.before + c.hits, c.consumed));
      assert.equal(step.write !== undefined, c.consumed && c.hits > 0);
    });
  }

  it('rolls the current window into the previous one, and lives until the end of the next window', () => {
    const step = slidingWindow(state(NOW, 8, 5), sliding('k', 2, 10, W), NOW + W + 2500, true);
    assert.deepEqual(step.write, { state: state(NOW + W, 2, 8), ttlMs: 17_500 });
  });
});

describe('tokenBucket (GCRA)', () => {
  const tat = (tatMs: number, remainder = 0): TokenBucketState => ({ algorithm: 'token_bucket', tatMs, remainder });
  // capacity 5, one token per second
  const op = (hits: number): CounterOp => bucket('k', hits, 5, 1000, 1);
  const cases: { name: string; state?: TokenBucketState; now: number; hits: number; before: number; consumed: boolean; tat?: TokenBucketState; ttl?: number }[] = [
    { name: 'empty bucket', now: NOW, hits: 1, before: 0, consumed: true, tat: tat(NOW + 1000), ttl: 1000 },
    { name: 'burst at once', now: NOW, hits: 5, before: 0, consumed: true, tat: tat(NOW + 5000), ttl: 5000 },
    { name: 'burst exceeded', now: NOW, hits: 6, before: 0, consumed: false },
    { name: 'full', state: tat(NOW + 5000), now: NOW, hits: 1, before: 5, consumed: false },
    { name: 'partial interval rounds up', state: tat(NOW + 5000), now: NOW + 999, hits: 1, before: 5, consumed: false },
    { name: 'one interval later', state: tat(NOW + 5000), now: NOW + 1000, hits: 1, before: 4, consumed: true, tat: tat(NOW + 6000), ttl: 5000 },
    { name: 'TAT in the past counts from now', state: tat(NOW - 50_000), now: NOW, hits: 2, before: 0, consumed: true, tat: tat(NOW + 2000), ttl: 2000 },
    { name: 'TAT beyond the burst is clamped', state: tat(NOW + 60_000), now: NOW, hits: 0, before: 5, consumed: true },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const step = tokenBucket(c.state, op(c.hits), c.now, true);
      assert.deepEqual(step.result, r(c.before, c.before + c.hits, c.consumed));
      if (c.tat === undefined) assert.equal(step.write, undefined);
      else assert.deepEqual(step.write, { state: c.tat, ttlMs: c.ttl });
    });
  }

  it('keeps a fractional emission interval exact (T = 1000/3 ms)', () => {
    const third = (hits: number): CounterOp => bucket('k', hits, 3, 1000, 3);
    let state: TokenBucketState | undefined;
    // 3000 single tokens, 3 per second, must end exactly 1000 s later: a float TAT would drift.
    for (let i = 0; i < 3000; i++) {
      const now = NOW + Math.floor(i / 3) * 1000;
      const step = tokenBucket(state, third(1), now, true);
      assert.deepEqual(step.result, r(i % 3, (i % 3) + 1, true), `token ${i}`);
      state = step.write!.state;
    }
    assert.deepEqual(state, tat(NOW + 1_000_000));
    const one = tokenBucket(tat(NOW + 1000), third(1), NOW + 334, true);
    assert.deepEqual(one.result, r(2, 3, true));
    assert.deepEqual(one.write, { state: tat(NOW + 1333, 1), ttlMs: 1000 });
  });
});

describe('decideConsumption', () => {
  const cases: [ConsumePolicy, boolean[], boolean[]][] = [
    ['always', [false, true, false], [true, true, true]],
    ['only_over', [false, false], [true, true]],
    ['only_over', [false, true, false, true], [false, true, false, true]],
    ['none_if_over', [false, false], [true, true]],
    ['none_if_over', [false, true], [false, false]],
    ['none_if_over', [], []],
  ];
  for (const [policy, over, consume] of cases) {
    it(`${policy} ${JSON.stringify(over)}`, () => assert.deepEqual(decideConsumption(policy, over), consume));
  }
});

describe('stepOp', () => {
  it("reads another algorithm's state as empty", () => {
    const foreign: CounterState = { algorithm: 'fixed_window', count: 7 };
    assert.deepEqual(stepOp(foreign, sliding('k', 1, 5, 1000), NOW, true).result, r(0, 1, true));
    assert.deepEqual(stepOp(foreign, bucket('k', 1, 5, 1000, 1), NOW, true).result, r(0, 1, true));
    assert.deepEqual(stepOp(foreign, fixed('k', 1, 5), NOW, true).result, r(7, 8, true));
  });
});

describe('applyOps', () => {
  const storage = (): { read(key: string): CounterState | undefined; write(key: string, state: CounterState): void; map: Map<string, CounterState> } => {
    const map = new Map<string, CounterState>();
    return { map, read: (key) => map.get(key), write: (key, state) => void map.set(key, state) };
  };

  it('decides on the stored states, then writes in op order', () => {
    const s = storage();
    s.map.set('full', { algorithm: 'fixed_window', count: 1 });
    const ops = [fixed('full', 1, 1), fixed('free', 1, 5), sliding('s', 1, 5, 1000)];
    assert.deepEqual(applyOps(ops, 'only_over', NOW, s), [r(1, 2, true), r(0, 1, false), r(0, 1, false)]);
    assert.deepEqual([...s.map.keys()], ['full']);
    assert.deepEqual(applyOps(ops, 'none_if_over', NOW, s), [r(2, 3, false), r(0, 1, false), r(0, 1, false)]);
    assert.deepEqual(applyOps(ops.slice(1), 'none_if_over', NOW, s), [r(0, 1, true), r(0, 1, true)]);
  });

  it('lets repeated keys see the earlier writes of the same request', () => {
    const s = storage();
    assert.deepEqual(applyOps([fixed('k', 2, 9), fixed('k', 3, 9)], 'always', NOW, s), [r(0, 2, true), r(2, 5, true)]);
  });
});

describe('validateRequest', () => {
  const ok: CounterOp[] = [fixed('a', 0, 0, 1), sliding('b', 1, 1, 1), bucket('c', 1, 1, 1, 1)];
  it('accepts valid ops', () => validateRequest(ok, NOW));
  const bad: [string, CounterOp[], number][] = [
    ['negative hits', [fixed('a', -1, 1)], NOW],
    ['fractional capacity', [fixed('a', 1, 1.5)], NOW],
    ['zero TTL', [fixed('a', 1, 1, 0)], NOW],
    ['zero window', [sliding('a', 1, 1, 0)], NOW],
    ['zero refill', [bucket('a', 1, 1, 1000, 0)], NOW],
    ['NaN hits', [bucket('a', Number.NaN, 1, 1000, 1)], NOW],
    ['unknown algorithm', [{ ...fixed('a', 1, 1), algorithm: 'leaky' as 'fixed_window' }], NOW],
    ['fractional now', ok, NOW + 0.5],
    ['negative now', ok, -1],
  ];
  for (const [name, ops, now] of bad) {
    it(`rejects ${name}`, () => assert.throws(() => validateRequest(ops, now), RangeError));
  }
});
