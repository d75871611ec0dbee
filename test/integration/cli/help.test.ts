// Asking for help, the ways people ask: usage on stdout and exit 0 (a wrong command line stays exit 2, on stderr).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { portcullisBin } from '../../support/portcullis.js';

const run = (...args: string[]) => spawnSync(process.execPath, [portcullisBin(), ...args], { encoding: 'utf8' });

describe('portcullis --help', () => {
  const asks = [['--help'], ['-h'], ['help'], ['serve', '--help'], ['validate', '-h'], ['check-envoy', '--help'],
    ['keys', '--help'], ['keys', 'new', '--help'], ['explain', '--help'], ['revoke', '-h']];
  for (const args of asks) {
    it(`${args.join(' ')}: usage on stdout, exit 0`, () => {
      const result = run(...args);
      assert.equal(result.status, 0, result.stderr);
      assert.match(result.stdout, /^usage:\n {2}portcullis serve --config/);
      assert.equal(result.stderr, '');
    });
  }

  it('an unknown command or option: usage on stderr, exit 2', () => {
    for (const args of [['frobnicate'], ['--frobnicate'], ['keys', 'old']]) {
      const result = run(...args);
      assert.equal(result.status, 2, args.join(' '));
      assert.match(result.stderr, /usage:/);
      assert.equal(result.stdout, '');
    }
  });
});
