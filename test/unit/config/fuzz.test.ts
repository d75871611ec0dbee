// Seeded, bounded fuzzing of the config loaders: mutated portcullis.yaml, descriptor and keys files must load or be
// rejected with a ConfigError whose every issue names the file and a line, quickly, and never throw anything else.
// Deterministic: the same seed gives the same files, so a failure here reproduces with its case number.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { decodeConfigText } from '../../../src/config/config-text.js';
import { ConfigError } from '../../../src/config/errors.js';
import { parseKeysFile } from '../../../src/authz/apikey.js';
import { parsePortcullisConfig } from '../../../src/config/portcullis-config.js';
import { compileDescriptorFiles } from '../../../src/ratelimit/descriptor-config.js';
import { DESCRIPTOR_FIXTURES, REPO_ROOT } from '../ratelimit/support.js';
import { mutate } from '../../support/config-mutations.js';
import { prng } from '../../support/prng.js';

const CASES_PER_SEED_FILE = 150;
const MAX_MS_PER_CASE = 2000;

type Loader = (text: string, name: string) => unknown;
const loadPortcullis: Loader = (text, name) => parsePortcullisConfig(text, `/etc/portcullis/${name}`);
const loadDescriptors: Loader = (text, name) => compileDescriptorFiles([{ name, text }]);
const loadKeys: Loader = (text, name) => parseKeysFile(text, name);

/** Loads one mutated file; returns whether it was rejected. Fails the test on any other outcome. */
function check(bytes: Buffer, name: string, load: Loader, label: string): boolean {
  const started = performance.now();
  let rejected = false;
  try {
    const decoded = decodeConfigText(bytes, name);
    if ('issue' in decoded) throw new ConfigError([decoded.issue]);
    load(decoded.text, name);
  } catch (error) {
    if (!(error instanceof ConfigError)) assert.fail(`${label}: threw ${error instanceof Error ? error.stack : String(error)}\n--- file ---\n${bytes.toString('latin1')}`);
    assert.ok(error.issues.length > 0, label);
    for (const issue of error.issues) {
      assert.equal(issue.file, name, `${label}: ${issue.message}`);
      assert.ok(Number.isInteger(issue.line) && (issue.line ?? 0) >= 1, `${label}: no line in '${issue.message}'\n--- file ---\n${bytes.toString('latin1')}`);
    }
    rejected = true;
  }
  const took = performance.now() - started;
  assert.ok(took < MAX_MS_PER_CASE, `${label}: took ${Math.round(took)} ms\n--- file ---\n${bytes.toString('latin1')}`);
  return rejected;
}

const SEEDS: { file: string; load: Loader }[] = [
  { file: path.join(REPO_ROOT, 'test', 'fixtures', 'portcullis', 'full.yaml'), load: loadPortcullis },
  ...['basic.yaml', 'nested.yaml', 'wildcard.yaml', 'extensions.yaml', 'metadata.yaml'].map((f) => ({ file: path.join(DESCRIPTOR_FIXTURES, f), load: loadDescriptors })),
  { file: path.join(REPO_ROOT, 'test', 'fixtures', 'authz', 'keys.yaml'), load: loadKeys },
];

describe('config loaders under fuzzed input', () => {
  SEEDS.forEach(({ file, load }, s) => {
    it(`${path.basename(file)}: ${CASES_PER_SEED_FILE} mutated versions load or fail with file and line`, () => {
      const random = prng(0x5eed + s);
      const original = readFileSync(file);
      let rejected = 0;
      for (let i = 0; i < CASES_PER_SEED_FILE; i++) {
        let bytes: Buffer = original;
        const rounds = 1 + Math.floor(random() * 3);
        for (let r = 0; r < rounds; r++) bytes = mutate(bytes, random);
        if (check(bytes, path.basename(file), load, `case ${i} of seed ${s}`)) rejected++;
      }
      // The mutations must mostly break the file, or this test proves little.
      assert.ok(rejected > CASES_PER_SEED_FILE / 3, `only ${rejected} of ${CASES_PER_SEED_FILE} mutations were rejected`);
    });
  });
});
