import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../../src/config/errors.js';
import type { GrpcTlsSettings } from '../../../src/server/grpc-tls-config.js';
import { ServerTlsIdentity, type GrpcTlsObserver } from '../../../src/server/grpc-tls-identity.js';
import { makeTestCertificates, type TestCertificates } from '../../support/grpc-tls.js';

// ServerTlsIdentity: what grpc-js' certificate-provider credentials are fed. Only checked material reaches them.

let dir: string;
let a: TestCertificates;
let b: TestCertificates;
before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'pc-tls-identity-'));
  a = makeTestCertificates(path.join(dir, 'a'));
  b = makeTestCertificates(path.join(dir, 'b'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function recorder() {
  const events: string[] = [];
  const observer: GrpcTlsObserver = {
    loaded: (_m, rotated) => void events.push(rotated ? 'rotated' : 'loaded'),
    rotationRefused: ({ setting, problem }) => void events.push(`refused ${setting}: ${problem}`),
  };
  return { events, observer };
}

/** A directory of live files, replaced the way a rotation replaces them (rename-over). */
function liveFiles(name: string, withCa: boolean) {
  const live = mkdtempSync(path.join(dir, `${name}-`));
  const settings: GrpcTlsSettings = { certFile: path.join(live, 'tls.crt'), keyFile: path.join(live, 'tls.key'), clientCaFile: withCa ? path.join(live, 'ca.crt') : undefined, clientSans: undefined };
  const put = (to: string, content: Buffer | string): void => {
    writeFileSync(`${to}.tmp`, content);
    renameSync(`${to}.tmp`, to);
  };
  copyFileSync(a.server, settings.certFile);
  copyFileSync(a.serverKey, settings.keyFile);
  if (withCa) copyFileSync(a.ca, settings.clientCaFile!);
  return { settings, put };
}

/** Subscribes as grpc-js does; resolves once the first (next-tick) update arrived. */
async function subscribe(identity: ServerTlsIdentity) {
  const identities: Buffer[] = [];
  const cas: (Buffer | null)[] = [];
  identity.addIdentityCertificateListener((update) => void identities.push(update!.certificate));
  identity.addCaCertificateListener((update) => void cas.push(update?.caCertificate ?? null));
  await new Promise((resolve) => setImmediate(resolve));
  return { identities, cas };
}

describe('ServerTlsIdentity', () => {
  it('delivers the material on the next tick, as grpc-js expects, and a rotation to every listener', async () => {
    const { settings, put } = liveFiles('rotate', true);
    const { events, observer } = recorder();
    const identity = await ServerTlsIdentity.load(settings, observer);
    const { identities, cas } = await subscribe(identity);
    assert.deepEqual(identities, [readFileSync(a.server)]);
    assert.deepEqual(cas, [readFileSync(a.ca)]);

    await identity.refresh();
    assert.equal(identities.length, 1, 'unchanged files: no update');

    put(settings.certFile, readFileSync(b.server));
    put(settings.keyFile, readFileSync(b.serverKey));
    await identity.refresh();
    assert.deepEqual(identities.at(-1), readFileSync(b.server));
    assert.equal(cas.length, 1, 'the CA did not change: not pushed again');
    put(settings.clientCaFile!, readFileSync(b.ca));
    await identity.refresh();
    assert.deepEqual(cas.at(-1), readFileSync(b.ca));
    assert.deepEqual(events, ['loaded', 'rotated', 'rotated']);
  });

  it('keeps the last good material on a broken rewrite, and reports each problem once', async () => {
    const { settings, put } = liveFiles('broken', false);
    const { events, observer } = recorder();
    const identity = await ServerTlsIdentity.load(settings, observer);
    const { identities } = await subscribe(identity);
    put(settings.keyFile, readFileSync(b.serverKey));
    await identity.refresh();
    await identity.refresh();
    rmSync(settings.certFile);
    await identity.refresh();
    assert.equal(identities.length, 1, 'nothing pushed');
    assert.deepEqual(events.slice(1).map((e) => e.replace(/ \(subject.*/, '').replace(/ENOENT.*/, 'ENOENT')), [
      'refused key_file: the private key does not belong to the certificate',
      'refused cert_file: cannot read the file: ENOENT',
    ]);
    // Put back as it was: served again without a rotation (nothing changed), and a later problem is news again.
    copyFileSync(a.server, settings.certFile);
    put(settings.keyFile, readFileSync(a.serverKey));
    await identity.refresh();
    assert.equal(identities.length, 1);
    put(settings.keyFile, 'garbage');
    await identity.refresh();
    assert.match(events.at(-1)!, /^refused key_file: the file holds no PEM private key/);
  });

  it('reads a problem again after settleMs before it reports it: a certificate, then its key, is no problem', async () => {
    const { settings, put } = liveFiles('settle', false);
    const { events, observer } = recorder();
    let fixKey: (() => void) | undefined;
    const identity = await ServerTlsIdentity.load(settings, observer, async () => fixKey?.());
    const { identities } = await subscribe(identity);
    put(settings.certFile, readFileSync(b.server));
    fixKey = () => put(settings.keyFile, readFileSync(b.serverKey));
    await identity.refresh(50);
    assert.deepEqual(events, ['loaded', 'rotated']);
    assert.deepEqual(identities.at(-1), readFileSync(b.server));
  });

  it("starts a replacement worker with its siblings' material while the files are broken, and takes the files once fixed", async () => {
    const { settings, put } = liveFiles('handed', false);
    put(settings.keyFile, 'garbage');
    const { events, observer } = recorder();
    const siblings = { cert: readFileSync(a.server), key: readFileSync(a.serverKey), ca: undefined };
    const identity = await ServerTlsIdentity.load(settings, observer, undefined, siblings);
    const { identities } = await subscribe(identity);
    assert.deepEqual(identities, [siblings.cert]);
    assert.equal(identity.served.key.equals(siblings.key), true);
    await identity.refresh();
    assert.deepEqual(events.map((e) => e.replace(/:.*/, '')), ['loaded', 'refused key_file'], 'the broken files reported once, not on every refresh');
    put(settings.certFile, readFileSync(b.server));
    put(settings.keyFile, readFileSync(b.serverKey));
    await identity.refresh();
    assert.deepEqual(identities.at(-1), readFileSync(b.server));
    assert.equal(events.at(-1), 'rotated');
  });

  it('prefers good files to what it is handed, and refuses broken files with broken handed material', async () => {
    const { settings, put } = liveFiles('handed-files', false);
    const siblings = { cert: readFileSync(b.server), key: readFileSync(b.serverKey), ca: undefined };
    const fromFiles = await ServerTlsIdentity.load(settings, recorder().observer, undefined, siblings);
    assert.deepEqual(fromFiles.served.cert, readFileSync(a.server));
    put(settings.keyFile, 'garbage');
    const mismatched = { cert: readFileSync(a.server), key: readFileSync(b.serverKey), ca: undefined };
    await assert.rejects(ServerTlsIdentity.load(settings, recorder().observer, undefined, mismatched), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.issues[0]?.path, 'server.grpc.tls.key_file', 'the files\' problem is the one reported');
      return true;
    });
  });

  it('refuses to start without good files: a ConfigError naming the file and setting', async () => {
    const { settings } = liveFiles('start', false);
    writeFileSync(settings.keyFile, readFileSync(b.serverKey));
    await assert.rejects(ServerTlsIdentity.load(settings, recorder().observer), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.issues[0]?.path, 'server.grpc.tls.key_file');
      assert.equal(error.issues[0]?.file, settings.keyFile);
      return true;
    });
  });
});
