// The places that start Portcullis but cannot import PORTCULLIS_NODE_FLAGS (a Dockerfile, a shebang, shell scripts)
// start it with exactly those flags, and node accepts them.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { PORTCULLIS_NODE_FLAGS } from '../../../src/server/node-flags.js';
import { repoRoot } from '../../support/envoy.js';

const read = (file: string): string => readFileSync(path.join(repoRoot(), file), 'utf8');
const flags = PORTCULLIS_NODE_FLAGS.join(' ');

describe('PORTCULLIS_NODE_FLAGS where Portcullis is started', () => {
  it('node accepts them (a misspelt flag makes node exit 9 before any script runs)', () => {
    const result = spawnSync(process.execPath, [...PORTCULLIS_NODE_FLAGS, '-e', 'process.exit(0)'], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
  });

  const places: [file: string, pattern: RegExp][] = [
    ['Dockerfile', /^ENTRYPOINT \["node", (.*), "bin\/portcullis\.js"\]$/m],
    ['bin/portcullis.js', /^#!\/usr\/bin\/env -S node (.*)$/m],
    ['scripts/demo.sh', /^start portcullis node (.*) bin\/portcullis\.js serve /m],
    ['bench/ratelimit/run.sh', /\$\{BENCH_SHIPPED_NODE_FLAGS-(.*?)\}/],
    ['bench/authz/run.sh', /\$\{BENCH_SHIPPED_NODE_FLAGS-(.*?)\}/],
  ];
  for (const [file, pattern] of places) {
    it(file, () => {
      const found = pattern.exec(read(file));
      assert.ok(found, `${file}: no line starting Portcullis matches ${pattern}`);
      assert.equal(found[1]!.replaceAll('"', '').replaceAll(',', ' ').split(/\s+/).join(' '), flags);
    });
  }
});
