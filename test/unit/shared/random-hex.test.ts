import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pooledRandomHex } from '../../../src/shared/random-hex.js';

describe('pooledRandomHex', () => {
  it('hands out hex of the asked length, never the same bytes twice, across pool refills and oversized asks', () => {
    const random = pooledRandomHex(64);
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const bytes = [8, 16, 3, 100][i % 4]!;
      const hex = random(bytes);
      assert.match(hex, new RegExp(`^[0-9a-f]{${bytes * 2}}$`));
      if (bytes >= 8) {
        assert.ok(!seen.has(hex), 'an id repeated');
        seen.add(hex);
      }
    }
  });
});
