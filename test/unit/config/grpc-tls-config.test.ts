import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parsePortcullisConfig, restartOnlyChanges, watchedPaths } from '../../../src/config/portcullis-config.js';
import { validate } from '../../../src/cli/validate.js';
import { clientSanProblem } from '../../../src/server/grpc-tls-config.js';
import { readTlsFilesSync } from '../../../src/server/grpc-tls-material.js';
import { configIssues, type IssueSeen } from '../../support/config-issues.js';
import { makeTestCertificates, type TestCertificates } from '../../support/grpc-tls.js';

// server.grpc.tls, parsed once into the frozen config: every problem at its file, line and path, the files' own
// problems included (start-up and `portcullis validate` read them; a reload does not).

let dir: string;
let certs: TestCertificates;
let other: TestCertificates;
const KEY_BODY = 'c2VjcmV0IGtleSBieXRlcyB0aGF0IG11c3Qgbm90IGJlIGxvZ2dlZA==';
before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'pc-tls-config-'));
  certs = makeTestCertificates(path.join(dir, 'certs'));
  other = makeTestCertificates(path.join(dir, 'other'));
  mkdirSync(path.join(dir, 'limits'));
  writeFileSync(path.join(dir, 'not-pem.pem'), 'hello\n');
  writeFileSync(path.join(dir, 'garbage-key.pem'), `-----BEGIN PRIVATE KEY-----\n${KEY_BODY}\n-----END PRIVATE KEY-----\n`);
  writeFileSync(path.join(dir, 'encrypted-key.pem'), `-----BEGIN ENCRYPTED PRIVATE KEY-----\n${KEY_BODY}\n-----END ENCRYPTED PRIVATE KEY-----\n`);
  writeFileSync(path.join(dir, 'bad-cert.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
  mkdirSync(path.join(dir, 'a-directory.pem'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const fileIn = (): string => path.join(dir, 'portcullis.yaml');
const parse = (text: string) => parsePortcullisConfig(text, fileIn(), { grpcTls: readTlsFilesSync });
const grpc = (tls: string, address = '0.0.0.0:8081') => `server:\n  grpc:\n    address: "${address}"\n    tls:\n${tls}`;

const issues = (text: string): IssueSeen[] => configIssues(() => parse(text), text);

describe('server.grpc.tls: valid sections', () => {
  it('is absent by default: plaintext', () => {
    assert.equal(parse('{}').server.grpc.tls, undefined);
  });

  it('resolves relative paths against the config file directory, dedups client_sans, and freezes it', () => {
    const config = parse(grpc(`      cert_file: certs/server.pem\n      key_file: ./certs/server-key.pem\n      client_ca_file: ${certs.ca}\n      client_sans: ["spiffe://example.org/envoy", envoy.internal, "spiffe://example.org/envoy"]\n`));
    assert.deepEqual(config.server.grpc.tls, {
      certFile: certs.server, keyFile: certs.serverKey, clientCaFile: certs.ca, clientSans: ['spiffe://example.org/envoy', 'envoy.internal'],
    });
    assert.ok(Object.isFrozen(config.server.grpc.tls) && Object.isFrozen(config.server.grpc.tls?.clientSans));
    assert.deepEqual(watchedPaths(config).slice(-3), [certs.server, certs.serverKey, certs.ca], 'the files are watched for rotation');
  });

  it('without client_ca_file: no client certificate is asked for', () => {
    const config = parse(grpc(`      cert_file: ${certs.server}\n      key_file: ${certs.serverKey}\n`));
    assert.deepEqual(config.server.grpc.tls, { certFile: certs.server, keyFile: certs.serverKey, clientCaFile: undefined, clientSans: undefined });
  });

  it('is a start-up setting: a change waits for a restart', () => {
    const a = parse(grpc(`      cert_file: ${certs.server}\n      key_file: ${certs.serverKey}\n`));
    const b = parse(grpc(`      cert_file: ${other.server}\n      key_file: ${other.serverKey}\n`));
    assert.deepEqual(restartOnlyChanges(a, b), ['server']);
  });

  it('a reload (no file reader) checks the section, not the files', () => {
    const config = parsePortcullisConfig(grpc('      cert_file: missing.pem\n      key_file: missing-key.pem\n'), fileIn());
    assert.equal(config.server.grpc.tls?.certFile, path.join(dir, 'missing.pem'));
  });
});

describe('server.grpc.tls: problems, each at its line and path', () => {
  const cases: { name: string; tls: string; address?: string; line: number; path: string; message: RegExp }[] = [
    { name: 'no cert_file', tls: `      key_file: ${'KEY'}\n`, line: 5, path: 'server.grpc.tls.cert_file', message: /^is required$/ },
    { name: 'an empty key_file', tls: `      cert_file: CERT\n      key_file: ""\n`, line: 6, path: 'server.grpc.tls.key_file', message: /expected a file path, got nothing/ },
    { name: 'an empty client_ca_file', tls: `      cert_file: CERT\n      key_file: KEY\n      client_ca_file: ""\n`, line: 7, path: 'server.grpc.tls.client_ca_file', message: /expected a file path, got nothing/ },
    { name: 'an unknown key', tls: '      cert_file: CERT\n      key_file: KEY\n      ca_file: CA\n', line: 7, path: 'server.grpc.tls.ca_file', message: /unknown key 'ca_file'/ },
    { name: 'client_sans without client_ca_file', tls: '      cert_file: CERT\n      key_file: KEY\n      client_sans: [envoy]\n', line: 7, path: 'server.grpc.tls.client_sans', message: /client_sans needs client_ca_file/ },
    { name: 'an empty client_sans', tls: '      cert_file: CERT\n      key_file: KEY\n      client_ca_file: CA\n      client_sans: []\n', line: 8, path: 'server.grpc.tls.client_sans', message: /an empty list lets no client call/ },
    { name: 'a client_sans entry with a type prefix', tls: '      cert_file: CERT\n      key_file: KEY\n      client_ca_file: CA\n      client_sans:\n        - "URI:spiffe://x/y"\n', line: 9, path: 'server.grpc.tls.client_sans[0]', message: /without its type prefix/ },
    { name: 'a wildcard client_sans entry', tls: '      cert_file: CERT\n      key_file: KEY\n      client_ca_file: CA\n      client_sans: ["*.example.org"]\n', line: 8, path: 'server.grpc.tls.client_sans[0]', message: /wildcards are not matched/ },
    { name: 'a client_sans entry that is not a list', tls: '      cert_file: CERT\n      key_file: KEY\n      client_ca_file: CA\n      client_sans: envoy\n', line: 8, path: 'server.grpc.tls.client_sans', message: /expected a list/ },
    { name: 'tls on a Unix socket', address: 'unix:/run/p.sock', tls: '      cert_file: CERT\n      key_file: KEY\n', line: 5, path: 'server.grpc.tls', message: /tls is for a host:port address/ },
    { name: 'a missing cert_file', tls: '      cert_file: nowhere.pem\n      key_file: KEY\n', line: 5, path: 'server.grpc.tls.cert_file', message: /cannot read the file: ENOENT.*nowhere\.pem/ },
    { name: 'a directory for cert_file', tls: '      cert_file: a-directory.pem\n      key_file: KEY\n', line: 5, path: 'server.grpc.tls.cert_file', message: /it is a directory/ },
    { name: 'a cert_file without PEM', tls: '      cert_file: not-pem.pem\n      key_file: KEY\n', line: 5, path: 'server.grpc.tls.cert_file', message: /the file holds no PEM certificate/ },
    { name: 'a PEM certificate that does not parse', tls: '      cert_file: bad-cert.pem\n      key_file: KEY\n', line: 5, path: 'server.grpc.tls.cert_file', message: /certificate 1 of 1 does not parse/ },
    { name: 'a key_file that is no key', tls: '      cert_file: CERT\n      key_file: garbage-key.pem\n', line: 6, path: 'server.grpc.tls.key_file', message: /the file does not parse as a private key/ },
    { name: 'an encrypted key', tls: '      cert_file: CERT\n      key_file: encrypted-key.pem\n', line: 6, path: 'server.grpc.tls.key_file', message: /the file is encrypted with a passphrase/ },
    { name: "another certificate's key", tls: '      cert_file: CERT\n      key_file: OTHER_KEY\n', line: 6, path: 'server.grpc.tls.key_file', message: /the private key does not belong to the certificate \(subject CN=localhost\)/ },
    { name: 'a client_ca_file without PEM', tls: '      cert_file: CERT\n      key_file: KEY\n      client_ca_file: not-pem.pem\n', line: 7, path: 'server.grpc.tls.client_ca_file', message: /the file holds no PEM certificate/ },
  ];
  for (const c of cases) {
    it(`reports ${c.name}`, () => {
      const tls = c.tls.replace('OTHER_KEY', other.serverKey).replace('CERT', certs.server).replace('KEY', certs.serverKey).replace(/\bCA\b/, certs.ca);
      const found = issues(grpc(tls, c.address));
      const match = found.find((i) => i.path === c.path && c.message.test(i.message));
      assert.ok(match, `expected ${c.path}: ${c.message} in ${JSON.stringify(found, null, 2)}`);
      assert.equal(match.line, c.line);
      for (const issue of found) assert.ok(!issue.message.includes(KEY_BODY), 'no key bytes in a message');
    });
  }

  it('reports a tls that is not a mapping once', () => {
    assert.deepEqual(issues('server:\n  grpc:\n    tls: true\n'), [{ line: 3, path: 'server.grpc.tls', message: 'expected a mapping (cert_file, key_file, client_ca_file, client_sans), got true' }]);
  });

  it('reports every section problem at once, and reads no file until the section is sound', () => {
    const found = issues(grpc('      key_file: nowhere-key.pem\n      client_sans: ["bad name!"]\n', 'unix:/run/p.sock'));
    assert.deepEqual(found.map((i) => i.path).sort(), ['server.grpc.tls', 'server.grpc.tls.cert_file', 'server.grpc.tls.client_sans', 'server.grpc.tls.client_sans[0]']);
  });
});

describe('clientSanProblem', () => {
  const table: [string, RegExp | undefined][] = [
    ['spiffe://example.org/ns/default/sa/envoy', undefined],
    ['envoy.internal', undefined],
    ['Envoy-1.example.org', undefined],
    ['localhost', undefined],
    ['', /got nothing/],
    ['dns:envoy', /type prefix/],
    ['envoy internal', /whitespace/],
    ['*.example.org', /wildcards/],
    ['-envoy', /a DNS name/],
    ['envoy_1', /a DNS name/],
    ['://nothing', /expected a URI/],
  ];
  for (const [entry, problem] of table) {
    it(`${JSON.stringify(entry)}: ${problem ?? 'ok'}`, () => {
      const found = clientSanProblem(entry);
      if (problem === undefined) assert.equal(found, undefined);
      else assert.match(found ?? '', problem);
    });
  }
});

describe('portcullis validate: the certificate files', () => {
  it('reports a key that does not match the certificate, at file:line:path, exit 1', async () => {
    const file = path.join(dir, 'validate.yaml');
    writeFileSync(file, `server:\n  grpc:\n    address: 0.0.0.0:8081\n    tls:\n      cert_file: ${certs.server}\n      key_file: ${other.serverKey}\nratelimit: { descriptors: ./limits }\n`);
    let out = '';
    let err = '';
    const code = await validate({ config: file }, (s) => (out += s), (s) => (err += s));
    assert.equal(code, 1, out);
    assert.match(err, /validate\.yaml: .*the private key does not belong to the certificate .*\(line 6, at server\.grpc\.tls\.key_file\)/);
  });

  it('passes good files', async () => {
    const file = path.join(dir, 'validate-ok.yaml');
    writeFileSync(file, `server:\n  grpc:\n    address: 0.0.0.0:8081\n    tls: { cert_file: certs/server.pem, key_file: certs/server-key.pem, client_ca_file: certs/ca.pem, client_sans: [envoy] }\nratelimit: { descriptors: ./limits }\n`);
    let err = '';
    assert.equal(await validate({ config: file }, () => undefined, (s) => (err += s)), 0, err);
  });
});
