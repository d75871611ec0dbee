import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { INTROSPECTION_BACKOFF } from '../../../src/authz/introspection.js';
import { JWKS_RETRY } from '../../../src/authz/jwks.js';
import { Backoff, backoffDelayMs } from '../../../src/shared/backoff.js';

describe('backoffDelayMs', () => {
  // [policy, failures in a row, random, delay]
  const rows: [string, typeof JWKS_RETRY, number, number, number][] = [
    ['jwks', JWKS_RETRY, 1, 0, 2000],
    ['jwks', JWKS_RETRY, 2, 0, 4000],
    ['jwks', JWKS_RETRY, 3, 0, 8000],
    ['jwks', JWKS_RETRY, 4, 0, 16_000],
    ['jwks', JWKS_RETRY, 5, 0, 32_000],
    ['jwks', JWKS_RETRY, 6, 0, 60_000],
    ['jwks', JWKS_RETRY, 7, 0, 60_000],
    ['jwks', JWKS_RETRY, 10_000, 0, 60_000],
    ['jwks', JWKS_RETRY, 1, 0.5, 1800],
    ['jwks', JWKS_RETRY, 1, 0.999_999, 1600],
    ['jwks', JWKS_RETRY, 9, 0.999_999, 48_000],
    ['introspection', INTROSPECTION_BACKOFF, 1, 0, 1000],
    ['introspection', INTROSPECTION_BACKOFF, 2, 0, 2000],
    ['introspection', INTROSPECTION_BACKOFF, 5, 0, 16_000],
    ['introspection', INTROSPECTION_BACKOFF, 6, 0, 30_000],
    ['introspection', INTROSPECTION_BACKOFF, Number.MAX_SAFE_INTEGER, 0, 30_000],
    ['introspection', INTROSPECTION_BACKOFF, 6, 0.999_999, 24_000],
    ['a cap under the first delay (refresh_seconds: 1)', { ...JWKS_RETRY, maxMs: 1000 }, 1, 0, 1000],
    ['a cap under the first delay (refresh_seconds: 1)', { ...JWKS_RETRY, maxMs: 1000 }, 5, 0, 1000],
  ];
  for (const [name, policy, failures, random, delay] of rows) {
    it(`${name}: failure ${failures}, random ${random} → ${delay} ms`, () => assert.equal(backoffDelayMs(failures, policy, random), delay));
  }
});

describe('Backoff', () => {
  it('holds off until the delay has passed, longer with each failure; a success starts over', () => {
    const backoff = new Backoff({ firstMs: 1000, maxMs: 4000, jitter: 0.2 }, () => 0);
    assert.equal(backoff.waiting(0), false);
    // [now, delay returned, waiting just before its end, waiting at its end]
    const rows: [number, number][] = [[0, 1000], [1000, 2000], [3000, 4000], [7000, 4000]];
    for (const [now, delay] of rows) {
      assert.equal(backoff.failed(now), delay);
      assert.equal(backoff.waiting(now + delay - 1), true);
      assert.equal(backoff.waiting(now + delay), false);
    }
    assert.equal(backoff.failures, 4);
    backoff.succeeded();
    assert.equal(backoff.failures, 0);
    assert.equal(backoff.waiting(7001), false);
    assert.equal(backoff.failed(8000), 1000);
  });
});

describe('Backoff: a wait the dependency asked for (Retry-After)', () => {
  // [failures in a row before, ms asked, random, delay]: at least what was asked, never over the cap, whatever asked.
  const policy = { firstMs: 1000, maxMs: 30_000, jitter: 0.2 };
  const rows: [number, number, number, number][] = [
    [0, 0, 0, 1000],
    [0, 3000, 0, 3000],
    [0, 3000, 0.999_999, 3000],
    [0, 500, 0, 1000],
    [0, 500, 0.999_999, 800],
    [2, 3000, 0, 4000],
    [0, 30_000, 0, 30_000],
    [0, 999_999_000, 0, 30_000],
    [0, Number.POSITIVE_INFINITY, 0, 30_000],
    [10, 999_999_000, 0.999_999, 30_000],
  ];
  for (const [before, asked, random, delay] of rows) {
    it(`after ${before} failures, ${asked} ms asked, random ${random} → ${delay} ms`, () => {
      const backoff = new Backoff(policy, () => random);
      for (let i = 0; i < before; i++) backoff.failed(0);
      assert.equal(backoff.failed(100_000, asked), delay);
      assert.equal(backoff.waiting(100_000 + delay - 1), true);
      assert.equal(backoff.waiting(100_000 + delay), false);
      assert.equal(backoff.failures, before + 1, 'one failure, whatever was asked');
    });
  }
});
