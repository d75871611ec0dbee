import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OverLimitCache } from '../../../src/ratelimit/local-cache.js';

describe('OverLimitCache', () => {
  it('holds a key until its expiry, exclusive', () => {
    const cache = new OverLimitCache(10);
    cache.add('k', 2000);
    assert.deepEqual([cache.has('k', 1000), cache.has('k', 1999), cache.has('k', 2000)], [true, true, false]);
    assert.equal(cache.size, 0, 'an expired entry is dropped when looked up');
    assert.equal(cache.has('other', 0), false);
  });

  it('a later add replaces the expiry', () => {
    const cache = new OverLimitCache(10);
    cache.add('k', 2000);
    cache.add('k', 5000);
    assert.equal(cache.has('k', 4000), true);
    assert.equal(cache.size, 1);
  });

  it('drops the oldest insertion past max entries', () => {
    const cache = new OverLimitCache(2);
    cache.add('a', 10_000);
    cache.add('b', 10_000);
    cache.add('c', 10_000);
    assert.deepEqual(['a', 'b', 'c'].map((k) => cache.has(k, 0)), [false, true, true]);
    assert.equal(cache.size, 2);
  });

  it('re-adding a key makes it the newest', () => {
    const cache = new OverLimitCache(2);
    cache.add('a', 10_000);
    cache.add('b', 10_000);
    cache.add('a', 10_000);
    cache.add('c', 10_000);
    assert.deepEqual(['a', 'b', 'c'].map((k) => cache.has(k, 0)), [true, false, true]);
  });
});
