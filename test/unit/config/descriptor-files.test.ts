import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { readAuthzFiles } from '../../../src/authz/service.js';
import { decodeConfigText, readConfigFile, readConfigFileSync, type FileRef } from '../../../src/config/config-text.js';
import { readDescriptorFiles } from '../../../src/config/descriptor-files.js';
import { ConfigError } from '../../../src/config/errors.js';
import { loadPortcullisConfig } from '../../../src/config/portcullis-config.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempDir(files: Record<string, string | Buffer>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-files-'));
  dirs.push(dir);
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), content);
  }
  return dir;
}

async function rejection(promise: Promise<unknown>): Promise<ConfigError> {
  const error = await promise.then(() => assert.fail('expected a ConfigError'), (e: unknown) => e);
  assert.ok(error instanceof ConfigError, String(error));
  return error;
}

describe('decodeConfigText', () => {
  const invalid: [string, number[], number][] = [
    ['a lone continuation byte', [0x61, 0x0a, 0x80], 2],
    ['a truncated sequence at the end', [0x0a, 0x0a, 0xe2, 0x82], 3],
    ['an overlong encoding', [0xc0, 0xaf], 1],
    ['a UTF-16 surrogate', [0x0a, 0xed, 0xa0, 0x80], 2],
    ['Latin-1 é', [0x76, 0x3a, 0x20, 0xe9, 0x0a], 1],
  ];
  for (const [name, bytes, line] of invalid) {
    it(`rejects ${name} with its line`, () => {
      const result = decodeConfigText(Uint8Array.from(bytes), 'f.yaml');
      assert.ok('issue' in result);
      assert.equal(result.issue.line, line);
      assert.match(result.issue.message, /^not valid UTF-8 \(byte \d+ is 0x[0-9a-f]{2}\)$/);
    });
  }
  it('keeps valid multi-byte text, U+FFFD included', () => {
    assert.deepEqual(decodeConfigText(Buffer.from('value: é€😀\uFFFD\n'), 'f.yaml'), { text: 'value: é€😀\uFFFD\n' });
  });
  // Both as envoyproxy/ratelimit's yaml.v2 reads them: checked against the Go service, which loads these files.
  it('reads UTF-16 with a byte order mark (Windows PowerShell writes it), little and big endian', () => {
    const text = 'domain: d\nkey: é€😀\n';
    const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]);
    const be = Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(text, 'utf16le').swap16()]);
    assert.deepEqual(decodeConfigText(le, 'f.yaml'), { text });
    assert.deepEqual(decodeConfigText(be, 'f.yaml'), { text });
    const bad = decodeConfigText(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('a\nb', 'utf16le'), Buffer.from([0x00, 0xd8])]), 'f.yaml');
    assert.ok('issue' in bad);
    assert.equal(bad.issue.message, 'not valid UTF-16');
  });

  it('reads a lone CR as a line break (classic Mac files), and keeps CRLF', () => {
    assert.deepEqual(decodeConfigText(Buffer.from('a: 1\rb: "x\ry"\r\nc: 3\r'), 'f.yaml'), { text: 'a: 1\nb: "x\ny"\r\nc: 3\n' });
    const bad = decodeConfigText(Buffer.from([0x61, 0x0d, 0x62, 0x0d, 0x0a, 0xe9]), 'f.yaml');
    assert.ok('issue' in bad);
    assert.equal(bad.issue.line, 3);
  });
});

describe('readDescriptorFiles', () => {
  it('rejects a descriptor file that is not UTF-8, naming file and line, and reports every such file', async () => {
    const dir = tempDir({
      'a.yaml': Buffer.concat([Buffer.from('domain: a\ndescriptors:\n  - key: k\n    value: caf'), Buffer.from([0xe9]), Buffer.from('\n')]),
      'b.yaml': 'domain: b\n',
      'sub/c.yaml': Buffer.from([0x64, 0xff, 0xfe]), // FF FE first would be a UTF-16 byte order mark
    });
    const error = await rejection(readDescriptorFiles(dir));
    assert.deepEqual(error.issues.map((i) => [i.file, i.line]), [['a.yaml', 4], [path.join('sub', 'c.yaml'), 1]]);
  });

  it('refuses files over the size budget before reading them', async () => {
    const dir = tempDir({ 'a.yaml': 'domain: a\n', 'b.yaml': `domain: b\n# ${'x'.repeat(200)}\n` });
    assert.equal((await readDescriptorFiles(dir, 1000)).length, 2);
    const error = await rejection(readDescriptorFiles(dir, 100));
    assert.deepEqual(error.issues.map((i) => [i.file, i.message]), [['b.yaml', 'descriptor files exceed 100 bytes together (ratelimit.descriptors_max_bytes); not loaded']]);
  });

  it('walks a directory once however many links lead to it: symlink loops end, files are read once', async () => {
    const dir = tempDir({ 'a.yaml': 'domain: a\n', 'sub/b.yaml': 'domain: b\n' });
    symlinkSync('.', path.join(dir, 'loop1'));
    symlinkSync('.', path.join(dir, 'loop2'));
    symlinkSync('..', path.join(dir, 'sub', 'up'));
    symlinkSync('sub', path.join(dir, 'again'));
    const files = await readDescriptorFiles(dir);
    // 'again' sorts before 'sub': the directory is read once, under the first name that reaches it.
    assert.deepEqual(files.map((f) => f.name), ['a.yaml', path.join('again', 'b.yaml')]);
  });
});

describe('readDescriptorFiles: a file that cannot be read is an error naming it, never a domain quietly gone', () => {
  it('a symlink whose target is missing (a swap to a path not there yet), a symlink loop, a FIFO', async () => {
    const dir = tempDir({ 'a.yaml': 'domain: a\n', 'real.yaml': 'domain: r\n' });
    symlinkSync('missing.yaml', path.join(dir, 'b.yaml'));
    symlinkSync('c.yaml', path.join(dir, 'c.yaml'));
    execFileSync('mkfifo', [path.join(dir, 'd.yaml')]);
    symlinkSync('real.yaml', path.join(dir, 'e.yaml'));
    const error = await rejection(readDescriptorFiles(dir));
    assert.deepEqual(error.issues.map((i) => [i.file, i.message.replace(/: ELOOP.*/, ': ELOOP')]), [
      ['b.yaml', 'symlink to missing.yaml, which does not exist (delete the link to drop what the file held)'],
      ['c.yaml', 'cannot read symlink to c.yaml: ELOOP'],
      ['d.yaml', 'cannot read: not a regular file or directory'],
    ]);
  });

  it('a file deleted is simply not read: its domain goes with it (docs/ratelimit.md)', async () => {
    const dir = tempDir({ 'a.yaml': 'domain: a\n', 'b.yaml': 'domain: b\n' });
    rmSync(path.join(dir, 'b.yaml'));
    assert.deepEqual((await readDescriptorFiles(dir)).map((f) => f.name), ['a.yaml']);
  });
});

describe('readConfigFile: portcullis.yaml and every file it names', () => {
  const ref = (file: string, maxBytes = 1000): FileRef => ({ file, setting: 'authz.api_keys.file', what: 'the file authz.api_keys.file names', maxBytes });
  const cases: [string, (dir: string) => void, RegExp][] = [
    ['missing', () => undefined, /^cannot read the file authz\.api_keys\.file names: ENOENT/],
    ['a dangling symlink', (dir) => symlinkSync('gone.yaml', path.join(dir, 'f')), /^cannot read the file authz\.api_keys\.file names: ENOENT/],
    ['a directory in its place', (dir) => mkdirSync(path.join(dir, 'f')), /^cannot read the file authz\.api_keys\.file names: it is a directory$/],
    // readFile on a FIFO waits for a writer: the load, and every reload queued behind it, would never end.
    ['a FIFO', (dir) => execFileSync('mkfifo', [path.join(dir, 'f')]), /^cannot read the file authz\.api_keys\.file names: not a regular file$/],
    ['over its budget', (dir) => writeFileSync(path.join(dir, 'f'), 'x'.repeat(1001)), /^the file authz\.api_keys\.file names is 1001 bytes, more than the maximum of 1000$/],
    ['not UTF-8 (a key would change silently to U+FFFD)', (dir) => writeFileSync(path.join(dir, 'f'), Buffer.from([0x2d, 0x20, 0xff, 0x0a])), /^the file authz\.api_keys\.file names is not valid UTF-8 \(byte 2 is 0xff\)$/],
  ];
  for (const [name, make, message] of cases) {
    it(`${name}: an error naming the file and the setting`, { timeout: 5000 }, async () => {
      const dir = tempDir({});
      make(dir);
      const file = path.join(dir, 'f');
      for (const read of [() => readConfigFile(ref(file)), async () => readConfigFileSync(ref(file))]) {
        const error = await rejection(read());
        assert.equal(error.issues.length, 1);
        assert.equal(error.issues[0]?.file, file);
        assert.equal(error.issues[0]?.path, 'authz.api_keys.file');
        assert.match(error.issues[0]?.message ?? '', message);
      }
    });
  }

  it('portcullis.yaml as a FIFO is refused at once', { timeout: 5000 }, async () => {
    const dir = tempDir({});
    execFileSync('mkfifo', [path.join(dir, 'portcullis.yaml')]);
    const error = await rejection(loadPortcullisConfig(path.join(dir, 'portcullis.yaml')));
    assert.match(error.message, /cannot read config file: not a regular file/);
  });

  it('the keys file as a FIFO or not UTF-8: readAuthzFiles names it', { timeout: 5000 }, async () => {
    const dir = tempDir({ 'portcullis.yaml': 'authz:\n  api_keys: { file: ./keys.yaml }\n', 'bad.yaml': Buffer.from([0x2d, 0x20, 0xff, 0x0a]) });
    execFileSync('mkfifo', [path.join(dir, 'keys.yaml')]);
    const config = await loadPortcullisConfig(path.join(dir, 'portcullis.yaml'));
    assert.match((await rejection(readAuthzFiles(config.authz))).message, /keys\.yaml: cannot read the file authz\.api_keys\.file names: not a regular file \(at authz\.api_keys\.file\)/);
    rmSync(path.join(dir, 'keys.yaml'));
    symlinkSync('bad.yaml', path.join(dir, 'keys.yaml'));
    assert.match((await rejection(readAuthzFiles(config.authz))).message, /keys\.yaml: the file authz\.api_keys\.file names is not valid UTF-8/);
  });
});

describe('loadPortcullisConfig: file budgets', () => {
  it('rejects a portcullis.yaml that is not UTF-8, with its line', async () => {
    const dir = tempDir({ 'portcullis.yaml': Buffer.concat([Buffer.from('log:\n  level: info\nratelimit:\n  cache_key_prefix: "'), Buffer.from([0xfc]), Buffer.from('"\n')]) });
    const error = await rejection(loadPortcullisConfig(path.join(dir, 'portcullis.yaml')));
    assert.equal(error.issues[0]?.line, 4);
  });

  it('rejects a portcullis.yaml over 1 MiB without parsing it', async () => {
    const dir = tempDir({ 'portcullis.yaml': `# ${'x'.repeat(1 << 20)}\n` });
    const error = await rejection(loadPortcullisConfig(path.join(dir, 'portcullis.yaml')));
    assert.match(error.message, /more than the maximum of 1048576/);
  });
});
