import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nodeVersionProblem } from '../../../src/server/node-version.js';

describe('nodeVersionProblem', () => {
  const table: [string, boolean][] = [
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
  for (const [version, problem] of table) {
    it(`${version}: ${problem ? 'named' : 'not named'}`, () => {
      const found = nodeVersionProblem(version);
      assert.equal(found !== undefined, problem);
      if (found !== undefined) assert.match(found, new RegExp(`Node ${version.replace(/\./g, '\\.')}.*Node 22`));
    });
  }
});
