import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nestsDeeperThan } from '../../../src/shared/json-depth.js';

describe('nestsDeeperThan', () => {
  const rows: [string, string, number, boolean][] = [
    ['flat', '{"a":1,"b":[1,2]}', 2, false],
    ['at the limit', '{"a":{"b":[1]}}', 3, false],
    ['one over', '{"a":{"b":[[1]]}}', 3, true],
    ['brackets in strings do not count', '{"a":"[[[[{{{{"}', 1, false],
    ['an escaped quote does not end the string', '{"a":"\\"[[[["}', 1, false],
    ['an escaped backslash does end it', '{"a":"\\\\","b":[[1]]}', 2, true],
    ['siblings do not add up', '[[1],[2],[3],[4]]', 2, false],
  ];
  for (const [name, text, limit, deeper] of rows) it(name, () => assert.equal(nestsDeeperThan(Buffer.from(text), limit), deeper, text));
});
