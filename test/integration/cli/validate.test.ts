// `portcullis validate` as an operator runs it: every check that can run does, and every error is printed.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { runCommand } from '../../support/envoy.js';
import { portcullisBin } from '../../support/portcullis.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A temp dir with these files (paths relative to it). */
function tempDir(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-validate-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

const validate = (...args: string[]) => runCommand(process.execPath, [portcullisBin(), 'validate', ...args]);
const GOOD_DESCRIPTORS = 'domain: good\ndescriptors:\n  - key: k\n    rate_limit: { unit: second, requests_per_unit: 1 }\n';
const BAD_DESCRIPTORS = 'domain: bad\ndescriptors:\n  - key: k\n    rate_limit: { unit: fortnight, requests_per_unit: 1 }\n';

describe('portcullis validate', () => {
  it('a broken config and broken descriptor files: both errors printed, exit 1', async () => {
    const dir = tempDir({ 'portcullis.yaml': 'log: { level: loud }\n', 'rl/a.yaml': BAD_DESCRIPTORS });
    const result = await validate('--config', path.join(dir, 'portcullis.yaml'), '--descriptors', path.join(dir, 'rl'));
    assert.equal(result.code, 1, result.output);
    assert.match(result.output, /portcullis\.yaml: .*loud.*\(line 1, at log\.level\)/);
    assert.match(result.output, /a\.yaml: .*fortnight/);
    assert.match(result.output, /2 error\(s\)/);
  });

  it('a missing authz file and a broken descriptor file in the config\'s directory: both printed', async () => {
    const dir = tempDir({
      'portcullis.yaml': 'ratelimit: { descriptors: ./rl }\nauthz:\n  api_keys: { file: ./missing-keys.yaml }\n  policies:\n    - { name: p, authenticate: [api_key] }\n',
      'rl/a.yaml': BAD_DESCRIPTORS,
    });
    const result = await validate('--config', path.join(dir, 'portcullis.yaml'));
    assert.equal(result.code, 1, result.output);
    assert.match(result.output, /missing-keys\.yaml: cannot read the file authz\.api_keys\.file names: ENOENT.* \(at authz\.api_keys\.file\)/);
    assert.match(result.output, /fortnight/);
  });

  it('--descriptors beside --config checks that directory, not the config\'s', async () => {
    const dir = tempDir({ 'portcullis.yaml': 'ratelimit: { descriptors: ./rl }\n', 'rl/a.yaml': GOOD_DESCRIPTORS, 'candidate/a.yaml': BAD_DESCRIPTORS });
    const config = path.join(dir, 'portcullis.yaml');
    assert.equal((await validate('--config', config)).code, 0);
    const candidate = await validate('--config', config, '--descriptors', path.join(dir, 'candidate'));
    assert.equal(candidate.code, 1, candidate.output);
    assert.match(candidate.output, /fortnight/);
  });

  it('a good config: ok lines, exit 0', async () => {
    const dir = tempDir({ 'portcullis.yaml': 'ratelimit: { descriptors: ./rl }\n', 'rl/a.yaml': GOOD_DESCRIPTORS });
    const result = await validate('--config', path.join(dir, 'portcullis.yaml'));
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, /ok: 1 descriptor file\(s\) in .*rl, domains: good/);
  });

  it('bff endpoints with no server.http: valid, with a warning that serve leaves the composer off', async () => {
    const bff = 'bff:\n  services: { users: "http://127.0.0.1:8001" }\n  endpoints:\n    - { path: /bff/me, calls: { me: { service: users, path: /me } }, respond: { me: "{me}" } }\n';
    const dir = tempDir({ 'portcullis.yaml': `ratelimit: { descriptors: ./rl }\n${bff}`, 'rl/a.yaml': GOOD_DESCRIPTORS });
    const result = await validate('--config', path.join(dir, 'portcullis.yaml'));
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, /ok: 1 bff endpoint\(s\)/);
    assert.match(result.output, /warning: bff endpoints are configured but server\.http\.address is not set: the composer is off/);
    const listening = tempDir({ 'portcullis.yaml': `server: { http: { address: "127.0.0.1:0" } }\nratelimit: { descriptors: ./rl }\n${bff}`, 'rl/a.yaml': GOOD_DESCRIPTORS });
    const quiet = await validate('--config', path.join(listening, 'portcullis.yaml'));
    assert.equal(quiet.code, 0, quiet.output);
    assert.doesNotMatch(quiet.output, /warning/);
  });
});
