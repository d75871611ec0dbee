// The behaviour every CounterStore must show, run against each implementation (memory here in test/unit, Redis and
// Redis Cluster in test/integration). Time is a fixed nowMs so every expected number is exact; only the expiry
// test waits in real time, because Redis expires keys by its own clock.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ErrorCode, StoreError } from '../../../src/shared/errors.js';
import type { ConsumePolicy, CounterOp, CounterResult, CounterStore } from '../../../src/store/counter-store.js';

export interface StoreHarness {
  readonly store: CounterStore;
  /** Remaining time to live of `key` (as Redis's PTTL) at `nowMs`; undefined when the key does not exist. */
  ttlMs(key: string, nowMs: number): Promise<number | undefined>;
  cleanup(): Promise<void>;
}

/** A window start for every unit up to a minute, so expected windows are easy to compute. */
export const NOW = 1_700_000_040_000;

export function fixed(key: string, hits: number, capacity: number, ttlMs = 60_000): CounterOp {
  return { key, algorithm: 'fixed_window', hits, capacity, windowMs: 60_000, refill: 0, ttlMs };
}

export function sliding(key: string, hits: number, capacity: number, windowMs: number): CounterOp {
  return { key, algorithm: 'sliding_window', hits, capacity, windowMs, refill: 0, ttlMs: 0 };
}

export function bucket(key: string, hits: number, capacity: number, windowMs: number, refill: number): CounterOp {
  return { key, algorithm: 'token_bucket', hits, capacity, windowMs, refill, ttlMs: 0 };
}

export function r(before: number, after: number, consumed: boolean): CounterResult {
  return { before, after, consumed };
}

export async function rejectsWithCode(promise: Promise<unknown>, code: ErrorCode): Promise<StoreError> {
  let caught: unknown;
  await promise.then(
    () => assert.fail(`expected a rejection with ${code}`),
    (error: unknown) => (caught = error),
  );
  assert.ok(caught instanceof StoreError, `expected a StoreError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function runCounterStoreConformance(name: string, makeStore: () => Promise<StoreHarness>): void {
  describe(`CounterStore conformance: ${name}`, () => {
    let harness: StoreHarness;
    let run: string;
    // Unique per test and per run, so a shared Redis never carries state from one test to the next.
    const key = (label: string): string => `conformance:${run}:${label}`;
    const apply = (ops: readonly CounterOp[], policy: ConsumePolicy = 'always', nowMs = NOW): Promise<CounterResult[]> =>
      harness.store.apply(ops, policy, nowMs, AbortSignal.timeout(10_000));
    /** Applies ops one call at a time and returns the single result of each. */
    const applyEach = async (ops: readonly CounterOp[], policy: ConsumePolicy = 'always', nowMs = NOW): Promise<CounterResult[]> => {
      const results: CounterResult[] = [];
      for (const op of ops) results.push(...(await apply([op], policy, nowMs)));
      return results;
    };
    /**
     * The TTL of a key that must have one. A store may set it a moment after the write that creates the key (the
     * Redis store owes a new fixed window's PEXPIRE to its next write, in the next turn), so this waits up to 500 ms.
     */
    const ttlOfKept = async (k: string, nowMs: number): Promise<number | undefined> => {
      const deadline = performance.now() + 500;
      for (;;) {
        const ttl = await harness.ttlMs(k, nowMs);
        if (ttl !== undefined || performance.now() > deadline) return ttl;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    /** Redis's TTLs count down in real time: allow for the real time since the write started (`since`). */
    const assertTtl = async (k: string, nowMs: number, expected: number, since: number): Promise<void> => {
      const ttl = await ttlOfKept(k, nowMs);
      const slack = Math.ceil(performance.now() - since) + 1;
      assert.ok(ttl !== undefined && ttl <= expected && ttl >= expected - slack, `TTL of ${k}: ${ttl}, expected ${expected} (-${slack})`);
    };

    beforeEach(async () => {
      run = randomUUID();
      harness = await makeStore();
    });
    afterEach(async () => {
      await harness.cleanup();
    });

    it('answers ping', async () => {
      await harness.store.ping(AbortSignal.timeout(10_000));
    });

    it('returns no results for no ops', async () => {
      assert.deepEqual(await apply([]), []);
    });

    describe('fixed window', () => {
      it('counts up to and past the capacity, consuming every hit under `always`', async () => {
        const k = key('fw');
        const results = await applyEach([1, 2, 3, 4, 5].map(() => fixed(k, 1, 3)));
        assert.deepEqual(results, [r(0, 1, true), r(1, 2, true), r(2, 3, true), r(3, 4, true), r(4, 5, true)]);
      });

      it('consumes a single request larger than the capacity', async () => {
        const k = key('fw-big');
        assert.deepEqual(await apply([fixed(k, 5, 3)]), [r(0, 5, true)]);
        assert.deepEqual(await apply([fixed(k, 1, 3)]), [r(5, 6, true)]);
      });

      it('treats hits = 0 as a pure check that writes nothing', async () => {
        const k = key('fw-check');
        assert.deepEqual(await apply([fixed(k, 0, 3)]), [r(0, 0, true)]);
        assert.equal(await harness.ttlMs(k, NOW), undefined, 'a check must not create the key');
        await apply([fixed(k, 2, 3)]);
        assert.deepEqual(await apply([fixed(k, 0, 3)]), [r(2, 2, true)]);
        assert.deepEqual(await apply([fixed(k, 1, 3)]), [r(2, 3, true)]);
      });
    });

    describe('sliding window', () => {
      it('weights the previous window by its overlap with the rolling window', async () => {
        const k = key('sw');
        const op = (hits: number): CounterOp => sliding(k, hits, 10, 10_000);
        assert.deepEqual(await apply([op(8)], 'always', NOW), [r(0, 8, true)]);
        // 25 % into the next window: 75 % of 8 = 6 still counts.
        assert.deepEqual(await apply([op(4)], 'always', NOW + 12_500), [r(6, 10, true)]);
        // Over the capacity: never consumed, whatever the policy.
        assert.deepEqual(await apply([op(1)], 'always', NOW + 12_500), [r(10, 11, false)]);
        assert.deepEqual(await apply([op(0)], 'always', NOW + 15_000), [r(8, 8, true)]);
        // Next window: the 4 of the window before weigh floor(4 × 9999 / 10000) = 3.
        assert.deepEqual(await apply([op(0)], 'always', NOW + 20_001), [r(3, 3, true)]);
        // Two windows later nothing counts.
        assert.deepEqual(await apply([op(1)], 'always', NOW + 30_000), [r(0, 1, true)]);
      });

      it('does not move the limit when a request is rejected', async () => {
        const k = key('sw-reject');
        assert.deepEqual(await apply([sliding(k, 3, 3, 60_000)]), [r(0, 3, true)]);
        for (let i = 0; i < 3; i++) assert.deepEqual(await apply([sliding(k, 1, 3, 60_000)]), [r(3, 4, false)]);
        assert.deepEqual(await apply([sliding(k, 2, 3, 60_000)], 'always', NOW + 60_000), [r(3, 5, false)]);
        assert.deepEqual(await apply([sliding(k, 1, 3, 60_000)], 'always', NOW + 90_000), [r(1, 2, true)]);
      });
    });

    describe('token bucket (GCRA)', () => {
      it('allows a burst of `capacity`, then one token per emission interval', async () => {
        const k = key('tb');
        const op = (hits: number): CounterOp => bucket(k, hits, 5, 1000, 1);
        const burst = await applyEach([1, 2, 3, 4, 5, 6].map(() => op(1)));
        assert.deepEqual(burst, [r(0, 1, true), r(1, 2, true), r(2, 3, true), r(3, 4, true), r(4, 5, true), r(5, 6, false)]);
        assert.deepEqual(await apply([op(1)], 'always', NOW + 999), [r(5, 6, false)]);
        assert.deepEqual(await apply([op(1)], 'always', NOW + 1000), [r(4, 5, true)]);
        // TAT is now NOW + 6000: 2.5 intervals ahead of NOW + 3500, which counts as 3 tokens in use.
        assert.deepEqual(await apply([op(2)], 'always', NOW + 3500), [r(3, 5, true)]);
        assert.deepEqual(await apply([op(6)], 'always', NOW + 10_000), [r(0, 6, false)]);
        assert.deepEqual(await apply([op(5)], 'always', NOW + 10_000), [r(0, 5, true)]);
      });

      it('reports at most the capacity when the capacity was lowered', async () => {
        const k = key('tb-lowered');
        assert.deepEqual(await apply([bucket(k, 10, 10, 10_000, 10)]), [r(0, 10, true)]);
        assert.deepEqual(await apply([bucket(k, 0, 3, 10_000, 10)]), [r(3, 3, true)]);
        assert.deepEqual(await apply([bucket(k, 1, 3, 10_000, 10)]), [r(3, 4, false)]);
        // 7 s later 3 tokens are still in use (TAT = +10 s): the lowered burst is still full.
        assert.deepEqual(await apply([bucket(k, 1, 3, 10_000, 10)], 'always', NOW + 7000), [r(3, 4, false)]);
        assert.deepEqual(await apply([bucket(k, 1, 3, 10_000, 10)], 'always', NOW + 8000), [r(2, 3, true)]);
      });

      it('is exact when the emission interval is not a whole number of milliseconds', async () => {
        const k = key('tb-third');
        const op = (hits: number): CounterOp => bucket(k, hits, 3, 1000, 3); // T = 333⅓ ms
        assert.deepEqual(await apply([op(1), op(1), op(1)]), [r(0, 1, true), r(1, 2, true), r(2, 3, true)]);
        // TAT = NOW + 1000: at +333, 667 ms ahead = 2.001 intervals → 3 in use; at +334, 1.998 → 2.
        assert.deepEqual(await apply([op(1)], 'always', NOW + 333), [r(3, 4, false)]);
        assert.deepEqual(await apply([op(1)], 'always', NOW + 334), [r(2, 3, true)]);
        // TAT = NOW + 1333⅓: still one token in use at +1333, none at +1334.
        assert.deepEqual(await apply([op(0)], 'always', NOW + 1333), [r(1, 1, true)]);
        assert.deepEqual(await apply([op(0)], 'always', NOW + 1334), [r(0, 0, true)]);
      });

      it('does not drift over many intervals (7 tokens per second for 300 seconds)', async () => {
        const k = key('tb-drift');
        const op = bucket(k, 1, 7, 1000, 7);
        const expected = [0, 1, 2, 3, 4, 5, 6].map((before) => r(before, before + 1, true));
        for (let second = 0; second < 300; second++) {
          const now = NOW + second * 1000;
          assert.deepEqual(await apply([op, op, op, op, op, op, op], 'always', now), expected, `second ${second}`);
          assert.deepEqual(await apply([op], 'always', now), [r(7, 8, false)], `second ${second}`);
        }
      });
    });

    describe('policies', () => {
      /** A fixed window already at its capacity of 1, and a fresh one with room. */
      const setup = async (label: string): Promise<{ full: string; free: string }> => {
        const full = key(`${label}-full`);
        const free = key(`${label}-free`);
        await apply([fixed(full, 1, 1)]);
        return { full, free };
      };
      const peek = async (...ops: CounterOp[]): Promise<number[]> => (await apply(ops)).map((result) => result.before);

      it('`always` consumes every fixed-window op, over or not', async () => {
        const { full, free } = await setup('always');
        assert.deepEqual(await apply([fixed(full, 1, 1), fixed(free, 1, 5)], 'always'), [r(1, 2, true), r(0, 1, true)]);
        assert.deepEqual(await peek(fixed(full, 0, 1), fixed(free, 0, 5)), [2, 1]);
      });

      it('`only_over` consumes only the ops that go over when any does', async () => {
        const { full, free } = await setup('only-over');
        assert.deepEqual(await apply([fixed(full, 1, 1), fixed(free, 1, 5)], 'only_over'), [r(1, 2, true), r(0, 1, false)]);
        assert.deepEqual(await peek(fixed(full, 0, 1), fixed(free, 0, 5)), [2, 0]);
      });

      it('`only_over` and `none_if_over` consume everything when nothing goes over', async () => {
        for (const policy of ['only_over', 'none_if_over'] as const) {
          const a = key(`${policy}-a`);
          const b = key(`${policy}-b`);
          const c = key(`${policy}-c`);
          const ops = [fixed(a, 1, 5), sliding(b, 2, 5, 60_000), bucket(c, 3, 5, 60_000, 5)];
          assert.deepEqual(await apply(ops, policy), [r(0, 1, true), r(0, 2, true), r(0, 3, true)], policy);
        }
      });

      it('`none_if_over` consumes nothing when any op goes over', async () => {
        const { full, free } = await setup('none');
        assert.deepEqual(await apply([fixed(full, 1, 1), fixed(free, 1, 5)], 'none_if_over'), [r(1, 2, false), r(0, 1, false)]);
        assert.deepEqual(await peek(fixed(full, 0, 1), fixed(free, 0, 5)), [1, 0]);
      });

      it('a rolling limit going over stops the other ops without consuming itself', async () => {
        const s = key('rolling-s');
        const f = key('rolling-f');
        const t = key('rolling-t');
        await apply([sliding(s, 2, 2, 60_000)]);
        const ops = [sliding(s, 1, 2, 60_000), fixed(f, 1, 5), bucket(t, 1, 5, 60_000, 5)];
        assert.deepEqual(await apply(ops, 'only_over'), [r(2, 3, false), r(0, 1, false), r(0, 1, false)]);
        assert.deepEqual(await apply(ops, 'none_if_over'), [r(2, 3, false), r(0, 1, false), r(0, 1, false)]);
        assert.deepEqual(await apply(ops, 'always'), [r(2, 3, false), r(0, 1, true), r(0, 1, true)]);
      });

      it('a check (hits = 0) on a key already over counts as going over', async () => {
        const { full, free } = await setup('check-over');
        await apply([fixed(full, 1, 1)]); // 2 > 1
        assert.deepEqual(await apply([fixed(full, 0, 1), fixed(free, 1, 5)], 'none_if_over'), [r(2, 2, false), r(0, 1, false)]);
        assert.deepEqual(await apply([fixed(full, 0, 1), fixed(free, 1, 5)], 'only_over'), [r(2, 2, true), r(0, 1, false)]);
        assert.deepEqual(await peek(fixed(full, 0, 1), fixed(free, 0, 5)), [2, 0]);
      });
    });

    it('answers many ops of every algorithm in one call, in op order', async () => {
      const ops = Array.from({ length: 60 }, (_, i): CounterOp => {
        const k = key(`many-${i}`);
        const hits = 1 + (i % 4);
        if (i % 3 === 0) return fixed(k, hits, 100);
        if (i % 3 === 1) return sliding(k, hits, 100, 60_000);
        return bucket(k, hits, 100, 60_000, 60); // one token per second
      });
      assert.deepEqual(await apply(ops), ops.map((op) => r(0, op.hits, true)));
      assert.deepEqual(await apply(ops), ops.map((op) => r(op.hits, 2 * op.hits, true)));
    });

    it('lets ops on the same key in one call see each other', async () => {
      const k = key('same');
      assert.deepEqual(await apply([fixed(k, 2, 10), fixed(k, 3, 10)]), [r(0, 2, true), r(2, 5, true)]);
      const t = key('same-bucket');
      assert.deepEqual(
        await apply([bucket(t, 2, 3, 60_000, 3), bucket(t, 2, 3, 60_000, 3), bucket(t, 1, 3, 60_000, 3)]),
        [r(0, 2, true), r(2, 4, false), r(2, 3, true)],
      );
    });

    it('keeps counts beyond 32 bits exact', async () => {
      const f = key('big-f');
      assert.deepEqual(await apply([fixed(f, 3_000_000_000, 4_000_000_000)]), [r(0, 3_000_000_000, true)]);
      assert.deepEqual(await apply([fixed(f, 3_000_000_000, 4_000_000_000)]), [r(3_000_000_000, 6_000_000_000, true)]);

      const s = key('big-s');
      const hour = 3_600_000;
      assert.deepEqual(await apply([sliding(s, 2_000_000_000, 3_000_000_000, hour)]), [r(0, 2_000_000_000, true)]);
      // A quarter into the next hour: 75 % of 2e9 still counts.
      const later = NOW - (NOW % hour) + hour + hour / 4;
      assert.deepEqual(
        await apply([sliding(s, 1_000_000_000, 3_000_000_000, hour)], 'always', later),
        [r(1_500_000_000, 2_500_000_000, true)],
      );

      // A million tokens a day: T = 86.4 ms.
      const t = key('big-t');
      const day = 86_400_000;
      const op = (hits: number): CounterOp => bucket(t, hits, 1_000_000, day, 1_000_000);
      assert.deepEqual(await apply([op(999_999)]), [r(0, 999_999, true)]);
      // Half a day later 499 999.0 intervals remain: exactly 499 999 tokens in use.
      assert.deepEqual(await apply([op(500_002)], 'always', NOW + day / 2), [r(499_999, 1_000_001, false)]);
      assert.deepEqual(await apply([op(500_001)], 'always', NOW + day / 2), [r(499_999, 1_000_000, true)]);
    });

    it('is atomic per key under concurrency: 200 parallel calls count exactly 1..200', async () => {
      const k = key('race');
      const results = (await Promise.all(Array.from({ length: 200 }, () => apply([fixed(k, 1, 1000)])))).flat();
      assert.deepEqual(
        results.map((result) => result.after).sort((a, b) => a - b),
        Array.from({ length: 200 }, (_, i) => i + 1),
      );
      assert.ok(results.every((result) => result.consumed && result.before === result.after - 1));

      const t = key('race-bucket');
      const taken = (await Promise.all(Array.from({ length: 200 }, () => apply([bucket(t, 1, 50, 60_000, 50)])))).flat();
      assert.equal(taken.filter((result) => result.consumed).length, 50);
    });

    it('gives each key the time to live its algorithm needs', async () => {
      const f = key('ttl-f');
      const s = key('ttl-s');
      const t = key('ttl-t');
      const third = key('ttl-third');
      const since = performance.now();
      await apply([fixed(f, 1, 5, 60_000), bucket(t, 2, 5, 1000, 1), bucket(third, 1, 3, 1000, 3)]);
      await apply([sliding(s, 1, 5, 10_000)], 'always', NOW + 2500);
      await assertTtl(f, NOW, 60_000, since);
      await assertTtl(t, NOW, 2000, since); // TAT = now + 2 intervals
      await assertTtl(third, NOW, 334, since); // TAT = now + 333⅓, rounded up
      await assertTtl(s, NOW + 2500, 17_500, since); // until the end of the next window
    });

    it('forgets keys once their time to live has passed', async () => {
      const f = key('expire-f');
      const s = key('expire-s');
      const t = key('expire-t');
      // TTLs of at most 500 ms (the sliding window's is 2 × 200 ms), with room for a slow first call.
      await apply([fixed(f, 3, 5, 500), sliding(s, 1, 5, 200), bucket(t, 1, 5, 500, 1)]);
      for (const k of [f, s, t]) assert.notEqual(await ttlOfKept(k, NOW), undefined, k);
      await sleep(800);
      for (const k of [f, s, t]) assert.equal(await harness.ttlMs(k, NOW + 800), undefined, k);
      assert.deepEqual(await apply([fixed(f, 1, 5, 500)], 'always', NOW + 800), [r(0, 1, true)]);
    });

    it("treats a key holding another algorithm's state as empty, and replaces it", async () => {
      const k = key('switch');
      assert.deepEqual(await apply([fixed(k, 3, 5)]), [r(0, 3, true)]);
      assert.deepEqual(await apply([sliding(k, 1, 5, 60_000)]), [r(0, 1, true)]);
      assert.deepEqual(await apply([bucket(k, 2, 5, 60_000, 5)]), [r(0, 2, true)]);
      assert.deepEqual(await apply([fixed(k, 1, 5)]), [r(0, 1, true)]);
      assert.deepEqual(await apply([fixed(k, 1, 5)]), [r(1, 2, true)]);
    });

    it('rejects with STORE_TIMEOUT and changes nothing when the signal has already aborted', async () => {
      const k = key('aborted');
      const controller = new AbortController();
      controller.abort();
      await rejectsWithCode(harness.store.apply([fixed(k, 1, 5)], 'always', NOW, controller.signal), ErrorCode.STORE_TIMEOUT);
      await rejectsWithCode(harness.store.ping(controller.signal), ErrorCode.STORE_TIMEOUT);
      assert.deepEqual(await apply([fixed(k, 1, 5)]), [r(0, 1, true)]);
    });

    it('rejects ops no algorithm can evaluate, before writing anything', async () => {
      const k = key('invalid');
      const invalid: CounterOp[] = [
        bucket(key('x'), 1, 5, 1000, 0),
        sliding(key('x'), 1, 5, 0),
        fixed(key('x'), -1, 5),
        fixed(key('x'), 1.5, 5),
        fixed(key('x'), 1, 5, 0),
      ];
      for (const op of invalid) {
        await assert.rejects(apply([fixed(k, 1, 5), op]), RangeError, JSON.stringify(op));
      }
      await assert.rejects(harness.store.apply([fixed(k, 1, 5)], 'always', 1.5, AbortSignal.timeout(10_000)), RangeError);
      assert.deepEqual(await apply([fixed(k, 1, 5)]), [r(0, 1, true)]);
    });
  });
}
