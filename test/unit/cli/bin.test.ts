import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot } from '../../support/envoy.js';
import { shebangNodeFlags } from '../../support/portcullis.js';

const bin = path.join(repoRoot(), 'bin', 'portcullis.js');

describe('bin/portcullis.js', () => {
  it('runs as a program with a larger first old-generation limit (the GC finding in docs/benchmarks.md)', async () => {
    assert.deepEqual(shebangNodeFlags(bin), ['--initial-old-space-size=128']);
    const { stdout } = await promisify(execFile)(bin, ['validate', '--descriptors', path.join(repoRoot(), 'envoy', 'ratelimit')]);
    assert.match(stdout, /^ok: \d+ descriptor file/);
  });

  it('reads only node flags from a `#!/usr/bin/env -S node …` line', () => {
    assert.deepEqual(shebangNodeFlags(path.join(repoRoot(), 'package.json')), []);
  });
});
