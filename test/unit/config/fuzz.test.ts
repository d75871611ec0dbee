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
import { prng } from '../../support/prng.js';

const CASES_PER_SEED_FILE = 150;
const MAX_MS_PER_CASE = 2000;


const SNIPPETS = [
  ':', ': ', '- ', '-', '[', ']', '{', '}', ',', '&a ', '*a', '&b [*a, *a, *a, *a]', 'k: &c [1, *c]\n', 'k: &d { x: *d }\n', '!!str ', '!!binary ', '|', '>', '"', "'", '#', '%YAML 1.1\n',
  '---\n', '...\n', '<<: *a\n', '? ', '\t', '\n', '  ', '99999999999999999999999', '3000000000', '-1', '1.5', '.inf', '.nan', '0x1F',
  'yes', '~', 'null', 'domain: x\n', 'ratelimit:\n', 'descriptors:\n', 'key: k\n', 'rate_limit: { unit: second, requests_per_unit: 1 }\n',
  '\u00e9', '\uFFFD', '\u0000', '\u2028',
];

/** One mutation of `bytes`, chosen by `random`. */
function mutate(bytes: Buffer, random: () => number): Buffer {
  const at = Math.floor(random() * (bytes.length + 1));
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  switch (Math.floor(random() * 7)) {
    case 0: // delete a range
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(Math.min(bytes.length, at + 1 + Math.floor(random() * 12)))]);
    case 1: // insert YAML syntax
      return Buffer.concat([bytes.subarray(0, at), Buffer.from(pick(SNIPPETS)), bytes.subarray(at)]);
    case 2: { // duplicate a line (duplicate keys)
      const lines = bytes.toString('latin1').split('\n');
      const i = Math.floor(random() * lines.length);
      lines.splice(i, 0, lines[i] ?? '');
      return Buffer.from(lines.join('\n'), 'latin1');
    }
    case 3: { // swap two lines (indentation changes)
      const lines = bytes.toString('latin1').split('\n');
      const i = Math.floor(random() * lines.length);
      const j = Math.floor(random() * lines.length);
      [lines[i], lines[j]] = [lines[j] ?? '', lines[i] ?? ''];
      return Buffer.from(lines.join('\n'), 'latin1');
    }
    case 4: // a byte that breaks UTF-8
      return Buffer.concat([bytes.subarray(0, at), Buffer.from([pick([0x80, 0xc0, 0xe9, 0xff, 0xed])]), bytes.subarray(at)]);
    case 5: { // flip one character
      const copy = Buffer.from(bytes);
      if (copy.length > 0) copy[Math.min(at, copy.length - 1)] = 32 + Math.floor(random() * 95);
      return copy;
    }
    default: { // an alias bomb prefix: 8^7 leaves from a few hundred bytes
      const levels = ['b0: &b0 [x, x, x, x, x, x, x, x]'];
      for (let l = 1; l < 7; l++) levels.push(`b${l}: &b${l} [${Array.from({ length: 8 }, () => `*b${l - 1}`).join(', ')}]`);
      return Buffer.concat([Buffer.from(`${levels.join('\n')}\n`), bytes]);
    }
  }
}

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
