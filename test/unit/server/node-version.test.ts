import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NODE_24_V8_FLAGS, v8FlagsFor } from '../../../src/server/node-version.js';

describe('v8FlagsFor', () => {
  const table: [version: string, needsFlags: boolean][] = [
    ['v20.20.2', false],
    ['v22.23.5', false],
    ['v24.0.0', false],
    ['v24.14.1', false],
    ['v24.15.0', true],
    ['v24.22.3', true],
    ['v25.1.0', true],
    ['v26.12.1', true],
    ['v27.0.0', false],
    ['24.15.0', true],
    ['not a version', false],
  ];
  for (const [version, needsFlags] of table) {
    it(`${version}: ${needsFlags ? NODE_24_V8_FLAGS.join(' ') : 'none'}`, () => {
      assert.deepEqual(v8FlagsFor(version), needsFlags ? NODE_24_V8_FLAGS : []);
    });
  }

  it('the flags are the two measured ones', () => {
    assert.deepEqual(NODE_24_V8_FLAGS, ['--no-lazy-feedback-allocation', '--no-allocation-site-pretenuring']);
  });
});
