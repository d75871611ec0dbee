import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readTlsFilesSyncOr, tlsFileBytes, tlsFileTexts, type TlsFileBytes, type TlsFilePaths } from '../../../src/server/grpc-tls-material.js';
import { makeTestCertificates, type TestCertificates } from '../../support/grpc-tls.js';

let dir: string;
let a: TestCertificates;
let b: TestCertificates;
before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'pc-tls-material-'));
  a = makeTestCertificates(path.join(dir, 'a'));
  b = makeTestCertificates(path.join(dir, 'b'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('readTlsFilesSyncOr: what a replacement worker parses its config with', () => {
  const files = (key: string): TlsFilePaths => {
    const keyFile = path.join(dir, `key-${Math.random()}`);
    writeFileSync(keyFile, key);
    return { certFile: a.server, keyFile, clientCaFile: undefined };
  };
  const material = (cert: string, key: string): TlsFileBytes => ({ cert: readFileSync(cert), key: readFileSync(key), ca: undefined });
  const table: [string, () => TlsFilePaths, () => TlsFileBytes | undefined, 'files' | 'serving' | 'problem'][] = [
    ['good files win over what is served', () => files(readFileSync(a.serverKey, 'utf8')), () => material(b.server, b.serverKey), 'files'],
    ['broken files: the material the siblings serve', () => files('garbage'), () => material(b.server, b.serverKey), 'serving'],
    ['a key that does not match: the material the siblings serve', () => files(readFileSync(b.serverKey, 'utf8')), () => material(b.server, b.serverKey), 'serving'],
    ['broken files and nothing served: the files as read, for the config error', () => files('garbage'), () => undefined, 'files'],
    ['broken files and broken material served: the files as read', () => files('garbage'), () => material(a.server, b.serverKey), 'files'],
  ];
  for (const [name, paths, serving, expected] of table) {
    it(name, () => {
      const given = serving();
      const p = paths();
      const read = readTlsFilesSyncOr(given)(p);
      assert.ok('bytes' in read);
      if (expected === 'serving') assert.equal(read.bytes, given);
      else assert.equal(read.bytes.key.toString('utf8'), readFileSync(p.keyFile, 'utf8'));
    });
  }

  it('a missing file, with nothing served, is the read problem naming the setting', () => {
    const read = readTlsFilesSyncOr(undefined)({ certFile: path.join(dir, 'absent.pem'), keyFile: a.serverKey, clientCaFile: undefined });
    assert.ok('problem' in read);
    assert.equal(read.setting, 'cert_file');
  });
});

describe('tlsFileTexts / tlsFileBytes: the material as the supervisor IPC channel carries it (JSON)', () => {
  it('round-trips a certificate chain, key and CA unchanged through JSON', () => {
    const bytes: TlsFileBytes = { cert: readFileSync(a.server), key: readFileSync(a.serverKey), ca: readFileSync(a.ca) };
    const back = tlsFileBytes(JSON.parse(JSON.stringify(tlsFileTexts(bytes))) as ReturnType<typeof tlsFileTexts>);
    assert.ok(back.cert.equals(bytes.cert) && back.key.equals(bytes.key) && back.ca!.equals(bytes.ca!));
    const noCa = tlsFileBytes(JSON.parse(JSON.stringify(tlsFileTexts({ ...bytes, ca: undefined }))) as ReturnType<typeof tlsFileTexts>);
    assert.equal(noCa.ca, undefined);
  });
});
