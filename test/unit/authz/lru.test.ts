import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExpiringLru } from '../../../src/authz/lru.js';

describe('ExpiringLru', () => {
  it('answers until expiry, then forgets the entry', () => {
    const lru = new ExpiringLru<string>(10);
    lru.set('a', 'A', 1000);
    assert.equal(lru.get('a', 999), 'A');
    assert.equal(lru.get('a', 1000), undefined);
    assert.equal(lru.size, 0);
  });

  it('never holds more than maxEntries; an entry used since it was stored outlives unused older ones', () => {
    const lru = new ExpiringLru<number>(3);
    for (const k of ['a', 'b', 'c']) lru.set(k, 1, 10_000);
    assert.equal(lru.get('a', 0), 1);
    lru.set('d', 1, 10_000); // b is the oldest unused entry
    assert.deepEqual(['a', 'b', 'c', 'd'].map((k) => lru.get(k, 0) !== undefined), [true, false, true, true]);
    for (let i = 0; i < 1000; i++) lru.set(`flood-${i}`, i, 10_000);
    assert.equal(lru.size, 3);
    assert.equal(lru.get('flood-999', 0), 999);
  });

  it('when every entry was used, the oldest goes after one pass; setting a key again replaces it', () => {
    const lru = new ExpiringLru<string>(2);
    lru.set('a', 'A', 10_000);
    lru.set('b', 'B', 10_000);
    lru.get('a', 0);
    lru.get('b', 0);
    lru.set('c', 'C', 10_000);
    assert.deepEqual(['a', 'b', 'c'].map((k) => lru.get(k, 0)), [undefined, 'B', 'C']);
    lru.set('b', 'B2', 10_000);
    assert.equal(lru.get('b', 0), 'B2');
    assert.equal(lru.get('c', 0), 'C', 'replacing a key evicts nothing');
    assert.equal(lru.size, 2);
  });

  it('with maxEntries 0 it caches nothing', () => {
    const lru = new ExpiringLru<string>(0);
    lru.set('a', 'A', 10_000);
    assert.equal(lru.get('a', 0), undefined);
  });
});
