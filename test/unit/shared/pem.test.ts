import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { keyPairProblem, parsePemCertificates, parsePemPrivateKey } from '../../../src/shared/pem.js';
import { makeRedisTlsFiles } from '../../support/redis-server.js';

const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-pem-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const mine = makeRedisTlsFiles(dir);
const other = makeRedisTlsFiles(dir, 'other-');
const read = (file: string): string => readFileSync(file, 'utf8');
execFileSync('openssl', ['pkey', '-in', mine.clientKeyFile, '-aes256', '-passout', 'pass:x', '-out', path.join(dir, 'encrypted.key')], { stdio: 'pipe' });
execFileSync('openssl', ['ec', '-in', mine.clientKeyFile, '-out', path.join(dir, 'traditional.key')], { stdio: 'pipe' });

describe('parsePemCertificates', () => {
  const cases: [name: string, text: string, expected: number | RegExp][] = [
    ['one certificate', read(mine.caFile), 1],
    ['a chain: the certificate, then its CA', read(mine.clientCertFile) + read(mine.caFile), 2],
    ['two CAs in one file, text between them', `# ours\n${read(mine.caFile)}\n# theirs\n${read(other.caFile)}`, 2],
    ['nothing PEM', 'hello\n', /^holds no PEM certificate/],
    ['empty', '', /^holds no PEM certificate/],
    ['a private key', read(mine.clientKeyFile), /^holds a private key, not a PEM certificate$/],
    ['a certificate that does not parse', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', /^certificate 1 of 1 does not parse \(/],
    ['a good one, then a broken one', `${read(mine.caFile)}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n`, /^certificate 2 of 2 does not parse/],
  ];
  for (const [name, text, expected] of cases) {
    it(name, () => {
      const parsed = parsePemCertificates(text);
      if (typeof expected === 'number') assert.equal('certificates' in parsed ? parsed.certificates.length : parsed.problem, expected);
      else assert.match('problem' in parsed ? parsed.problem : 'parsed', expected);
    });
  }
});

describe('parsePemPrivateKey', () => {
  const cases: [name: string, text: string, problem: RegExp | undefined][] = [
    ['PKCS#8', read(mine.clientKeyFile), undefined],
    ['the EC form (BEGIN EC PRIVATE KEY)', read(path.join(dir, 'traditional.key')), undefined],
    ['encrypted with a passphrase', read(path.join(dir, 'encrypted.key')), /^is encrypted with a passphrase, which is not supported/],
    ['a certificate', read(mine.clientCertFile), /^holds a certificate, not a PEM private key$/],
    ['nothing PEM', 'hello\n', /^holds no PEM private key/],
    ['a key that does not parse', '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n', /^does not parse as a private key \(/],
  ];
  for (const [name, text, problem] of cases) {
    it(name, () => {
      const parsed = parsePemPrivateKey(text);
      if (problem === undefined) assert.ok('key' in parsed, JSON.stringify(parsed));
      else assert.match('problem' in parsed ? parsed.problem : 'parsed', problem);
    });
  }

  it('never quotes the text in a problem', () => {
    const text = read(mine.clientKeyFile).replace(/\n(.{10})/, '\n$1!!');
    const parsed = parsePemPrivateKey(text);
    assert.ok('problem' in parsed);
    for (const line of text.split('\n').filter((l) => l.length > 8 && !l.startsWith('-----'))) assert.ok(!parsed.problem.includes(line));
  });
});

describe('keyPairProblem', () => {
  const certificate = (file: string): Parameters<typeof keyPairProblem>[0] => {
    const parsed = parsePemCertificates(read(file));
    assert.ok('certificates' in parsed);
    return parsed.certificates[0]!;
  };
  const key = (file: string): Parameters<typeof keyPairProblem>[1] => {
    const parsed = parsePemPrivateKey(read(file));
    assert.ok('key' in parsed);
    return parsed.key;
  };
  it('the key of the certificate', () => assert.equal(keyPairProblem(certificate(mine.clientCertFile), key(mine.clientKeyFile)), undefined));
  it('the same key in its EC form', () => assert.equal(keyPairProblem(certificate(mine.clientCertFile), key(path.join(dir, 'traditional.key'))), undefined));
  it('another key', () => assert.match(keyPairProblem(certificate(mine.clientCertFile), key(other.clientKeyFile)) ?? '', /^the private key does not belong to the certificate \(subject CN=portcullis-test-client\)/));
});
