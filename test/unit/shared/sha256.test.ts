import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { sha256 } from '../../../src/shared/sha256.js';

describe('sha256', () => {
  for (const text of ['', 'pk_key', 'é ✓ multi-byte', 'x'.repeat(5000)]) {
    it(`matches createHash for ${JSON.stringify(text.slice(0, 16))} as hex and base64url`, () => {
      const expected = createHash('sha256').update(text).digest();
      assert.equal(sha256(text, 'hex'), expected.toString('hex'));
      assert.equal(sha256(text, 'base64url'), expected.toString('base64url'));
    });
  }
});
