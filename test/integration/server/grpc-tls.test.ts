import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, status, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { clientSanInterceptor, clientSanPolicy } from '../../../src/server/grpc-client-sans.js';
import { startGrpcServer } from '../../../src/server/grpc-server.js';
import { ServerTlsIdentity } from '../../../src/server/grpc-tls-identity.js';
import { eventually } from '../../support/app.js';
import { DEMO_CLIENT_SAN, fingerprintOf, makeTestCertificates, servedCertificate, tlsCredentials, type TestCertificates } from '../../support/grpc-tls.js';
import { startPortcullis, type PortcullisInstance } from '../../support/portcullis.js';
import { rateLimitClient } from '../../support/ratelimit-client.js';
import { startRedis, type RedisServer } from '../../support/redis-server.js';

// server.grpc.tls against real processes (bin/portcullis.js serve) and real grpc-js clients: TLS, mTLS, client_sans,
// certificate rotation without a restart, and server.workers: 2 serving TLS on the shared port.

const LIMITS = `domain: tls
descriptors:
  - key: user
    rate_limit: { unit: minute, requests_per_unit: 1000 }
`;
const request = (user: string) => ({ domain: 'tls', descriptors: [{ entries: [{ key: 'user', value: user }] }] });

let scratch: string;
let descriptors: string;
/** The CA Portcullis' certificate and the allowed client's come from. */
let main: TestCertificates;
/** Another CA: a client certificate Portcullis must refuse, and the certificate a rotation brings. */
let other: TestCertificates;
before(() => {
  scratch = mkdtempSync(path.join(tmpdir(), 'pc-grpctls-'));
  descriptors = path.join(scratch, 'limits');
  mkdirSync(descriptors);
  writeFileSync(path.join(descriptors, 'tls.yaml'), LIMITS);
  main = makeTestCertificates(path.join(scratch, 'main'));
  other = makeTestCertificates(path.join(scratch, 'other'));
});
after(() => rmSync(scratch, { recursive: true, force: true }));

const config = (tls: object, extra: { server?: object; [key: string]: unknown } = {}) => {
  const { server, ...rest } = extra;
  return {
    server: { grpc: { address: '127.0.0.1:0', tls }, admin: { address: '127.0.0.1:0' }, shutdown_timeout_ms: 2000, ...server },
    log: { level: 'info' },
    ratelimit: { descriptors, reload: { enabled: true, poll_interval_ms: 100, settle_ms: 50 } },
    ...rest,
  };
};

/** The gRPC status a ShouldRateLimit gets (0: answered). */
async function callStatus(address: string, credentials: ChannelCredentials | undefined): Promise<number> {
  const client = rateLimitClient(address, true, { credentials, channelOptions: { 'grpc.ssl_target_name_override': 'localhost' } });
  try {
    await client.shouldRateLimit(request('alice'), 3000);
    return status.OK;
  } catch (error) {
    return (error as ServiceError).code;
  } finally {
    client.close();
  }
}

async function metric(instance: PortcullisInstance, series: string): Promise<number> {
  const text = await (await fetch(`${instance.adminUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

const clientOf = (certs: TestCertificates) => ({ cert: certs.client, key: certs.clientKey });

describe('server.grpc.tls (one process)', () => {
  it('serves TLS with the configured certificate; a plaintext client is refused', async () => {
    const portcullis = await startPortcullis(config({ cert_file: main.server, key_file: main.serverKey }));
    try {
      assert.equal(await callStatus(portcullis.grpcAddress, tlsCredentials([main.ca])), status.OK, portcullis.output());
      assert.equal(await callStatus(portcullis.grpcAddress, undefined), status.UNAVAILABLE, 'plaintext gets no gRPC answer');
      const served = await servedCertificate(portcullis.grpc.host, portcullis.grpc.port, [main.ca]);
      assert.equal(served.fingerprint256, fingerprintOf(main.server));
      assert.ok(await metric(portcullis, 'portcullis_grpc_tls_certificate_expiry_timestamp_seconds') > Date.now() / 1000);
    } finally {
      assert.equal(await portcullis.stop(), 0, portcullis.output());
    }
  });

  it('with client_ca_file: a client without a certificate, or with one from another CA, is refused at the handshake', async () => {
    const portcullis = await startPortcullis(config({ cert_file: main.server, key_file: main.serverKey, client_ca_file: main.ca }));
    try {
      assert.equal(await callStatus(portcullis.grpcAddress, tlsCredentials([main.ca], clientOf(main))), status.OK, portcullis.output());
      assert.equal(await callStatus(portcullis.grpcAddress, tlsCredentials([main.ca])), status.UNAVAILABLE, 'no client certificate');
      assert.equal(await callStatus(portcullis.grpcAddress, tlsCredentials([main.ca], clientOf(other))), status.UNAVAILABLE, 'a certificate another CA signed');
      assert.equal(await callStatus(portcullis.grpcAddress, undefined), status.UNAVAILABLE, 'plaintext');
    } finally {
      assert.equal(await portcullis.stop(), 0, portcullis.output());
    }
  });

  it('client_sans: a listed identity calls; another verified certificate gets PERMISSION_DENIED, counted, logged once a minute', async () => {
    const allowed = await startPortcullis(config({ cert_file: main.server, key_file: main.serverKey, client_ca_file: main.ca, client_sans: ['envoy.internal', DEMO_CLIENT_SAN] }));
    try {
      assert.equal(await callStatus(allowed.grpcAddress, tlsCredentials([main.ca], clientOf(main))), status.OK, allowed.output());
      assert.equal(await metric(allowed, 'portcullis_grpc_tls_client_refused_total{reason="identity_not_allowed"}'), 0);
    } finally {
      assert.equal(await allowed.stop(), 0, allowed.output());
    }
    const refusing = await startPortcullis(config({ cert_file: main.server, key_file: main.serverKey, client_ca_file: main.ca, client_sans: ['spiffe://portcullis.local/someone-else'] }));
    try {
      const credentials = tlsCredentials([main.ca], clientOf(main));
      for (let i = 0; i < 3; i++) assert.equal(await callStatus(refusing.grpcAddress, credentials), status.PERMISSION_DENIED, refusing.output());
      assert.equal(await metric(refusing, 'portcullis_grpc_tls_client_refused_total{reason="identity_not_allowed"}'), 3);
      const lines = refusing.logs().filter((l) => String(l['msg']).startsWith('gRPC calls refused'));
      assert.equal(lines.length, 1, 'three refusals within a minute: one line');
      assert.equal(lines[0]!['subjectAltName'], `URI:${DEMO_CLIENT_SAN}`);
      assert.equal(await callStatus(refusing.grpcAddress, tlsCredentials([main.ca], clientOf(other))), status.UNAVAILABLE, 'the CA is checked before any SAN');
    } finally {
      assert.equal(await refusing.stop(), 0, refusing.output());
    }
  });

  it('rotation: new connections get the rewritten certificate; a broken rewrite keeps the last good one and says why', async () => {
    const live = path.join(scratch, 'live');
    mkdirSync(live);
    // As cert-manager and kubelet do: a new file renamed over the old one.
    const put = (from: string, to: string): void => {
      copyFileSync(from, path.join(live, `.${to}.tmp`));
      renameSync(path.join(live, `.${to}.tmp`), path.join(live, to));
    };
    const write = (text: string, to: string): void => {
      writeFileSync(path.join(live, `.${to}.tmp`), text);
      renameSync(path.join(live, `.${to}.tmp`), path.join(live, to));
    };
    put(main.server, 'tls.crt');
    put(main.serverKey, 'tls.key');
    // Relative paths: against the config file's directory (here: live's parent).
    const portcullis = await startPortcullis({}, { configFile: writeConfigIn(scratch, config({ cert_file: 'live/tls.crt', key_file: 'live/tls.key' })) });
    const both = [main.ca, other.ca];
    const served = async (): Promise<string> => (await servedCertificate(portcullis.grpc.host, portcullis.grpc.port, both)).fingerprint256;
    try {
      assert.equal(await served(), fingerprintOf(main.server));
      // A gRPC connection opened before the rotation keeps working on it.
      const before = rateLimitClient(portcullis.grpcAddress, true, { credentials: tlsCredentials([main.ca]), channelOptions: { 'grpc.ssl_target_name_override': 'localhost' } });
      await before.shouldRateLimit(request('early'));

      put(other.server, 'tls.crt');
      put(other.serverKey, 'tls.key');
      await eventually(async () => (await served()) === fingerprintOf(other.server), 10_000, 'a new connection is served the new certificate');
      assert.equal(await callStatus(portcullis.grpcAddress, tlsCredentials([other.ca])), status.OK, 'a new gRPC connection trusts the new CA only');
      await before.shouldRateLimit(request('early'));
      before.close();
      assert.equal(await metric(portcullis, 'portcullis_grpc_tls_certificate_rotations_total{result="success"}'), 1);

      // Broken: a key that is no key, then a certificate whose key is not key_file's. The last good one serves on.
      write('-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n', 'tls.key');
      await eventually(() => portcullis.logs().some((l) => l['msg'] === 'gRPC TLS certificate files refused; new connections keep getting the last good certificate' && l['setting'] === 'server.grpc.tls.key_file'), 10_000, 'the refusal is logged');
      assert.equal(await served(), fingerprintOf(other.server));
      put(other.serverKey, 'tls.key');
      put(main.server, 'tls.crt');
      await eventually(() => portcullis.logs().some((l) => typeof l['problem'] === 'string' && l['problem'].includes('does not belong to the certificate')), 10_000, 'the mismatch is logged');
      assert.equal(await served(), fingerprintOf(other.server));
      assert.equal(await callStatus(portcullis.grpcAddress, tlsCredentials([other.ca])), status.OK);
      assert.ok(await metric(portcullis, 'portcullis_grpc_tls_certificate_rotations_total{result="error"}') >= 2);
      const text = portcullis.output();
      assert.ok(!text.includes('bm90IGEga2V5') && !text.includes('PRIVATE KEY-----\n'), 'no key material in the log');

      // Fixed: served again.
      put(main.serverKey, 'tls.key');
      await eventually(async () => (await served()) === fingerprintOf(main.server), 10_000, 'the fixed files are served');
    } finally {
      assert.equal(await portcullis.stop(), 0, portcullis.output());
    }
  });

  it('refuses to start on a broken certificate file, naming the setting', async () => {
    const bad = path.join(scratch, 'bad.pem');
    writeFileSync(bad, 'not a certificate\n');
    await assert.rejects(startPortcullis(config({ cert_file: bad, key_file: main.serverKey }), { readyTimeoutMs: 10_000 }), (error: Error) => {
      assert.match(error.message, /the file holds no PEM certificate.*server\.grpc\.tls\.cert_file/s);
      return true;
    });
  });
});

describe('client_sans with the installed grpc-js (in process)', () => {
  it('works out one verdict per connection, not one per call', async () => {
    const sessions = { computed: 0 };
    const tls = { certFile: main.server, keyFile: main.serverKey, clientCaFile: main.ca, clientSans: [DEMO_CLIENT_SAN] };
    const identity = await ServerTlsIdentity.load(tls, { loaded: () => undefined, rotationRefused: () => undefined });
    const server = await startGrpcServer('127.0.0.1:0', [], {
      credentials: identity.credentials(),
      interceptors: [clientSanInterceptor(clientSanPolicy(tls.clientSans), () => assert.fail('refused'), sessions)],
    });
    const client = new Client(server.address, tlsCredentials([main.ca], clientOf(main)), { 'grpc.ssl_target_name_override': 'localhost' });
    try {
      // grpc.health.v1.Health/Check with an empty request (service ''): answered by every Portcullis gRPC server.
      const check = (): Promise<void> => new Promise((resolve, reject) => {
        client.makeUnaryRequest('/grpc.health.v1.Health/Check', () => Buffer.alloc(0), (b: Buffer) => b, {}, (error) => (error ? reject(error) : resolve()));
      });
      for (let i = 0; i < 5; i++) await check();
      assert.equal(sessions.computed, 1, "the connection's verdict is cached: grpc-js still hands the first interceptor its call with the HTTP/2 stream");
    } finally {
      client.close();
      await server.shutdown(1000);
    }
  });
});

/** The config as YAML in `dir` (not a fresh temp dir): its relative paths resolve there. */
function writeConfigIn(dir: string, value: object): string {
  const file = path.join(dir, 'portcullis.yaml');
  writeFileSync(file, JSON.stringify(value));
  return file;
}

describe('server.grpc.tls with server.workers: 2 (node:cluster), against a real redis-server', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });

  it('every worker serves mTLS with client_sans on the shared port, and each takes a rotated certificate', async () => {
    const live = mkdtempSync(path.join(scratch, 'workers-'));
    copyFileSync(main.server, path.join(live, 'tls.crt'));
    copyFileSync(main.serverKey, path.join(live, 'tls.key'));
    const portcullis = await startPortcullis(config(
      { cert_file: path.join(live, 'tls.crt'), key_file: path.join(live, 'tls.key'), client_ca_file: main.ca, client_sans: [DEMO_CLIENT_SAN] },
      { server: { workers: 2 }, redis: { url: redis.url } },
    ));
    try {
      const credentials = tlsCredentials([main.ca], clientOf(main));
      // Connections are handed to workers in turn: six of them reach both.
      for (let i = 0; i < 6; i++) assert.equal(await callStatus(portcullis.grpcAddress, credentials), status.OK, portcullis.output());
      await eventually(async () => {
        const { workers } = (await (await fetch(`${portcullis.adminUrl}/config`)).json()) as { workers: { decisions: number }[] };
        return workers.length === 2 && workers.every((w) => w.decisions > 0);
      }, 5000, 'both workers answered over TLS');
      assert.equal(await callStatus(portcullis.grpcAddress, undefined), status.UNAVAILABLE, 'plaintext');
      assert.equal(await callStatus(portcullis.grpcAddress, tlsCredentials([main.ca], clientOf(other))), status.UNAVAILABLE, 'another CA');

      // Rotated: the supervisor sees the files change and tells both workers; connections alternate between them.
      for (const [from, to] of [[other.server, 'tls.crt'], [other.serverKey, 'tls.key']] as const) {
        copyFileSync(from, path.join(live, `.${to}.tmp`));
        renameSync(path.join(live, `.${to}.tmp`), path.join(live, to));
      }
      const served = async (): Promise<string> => (await servedCertificate(portcullis.grpc.host, portcullis.grpc.port, [main.ca, other.ca], clientOf(main))).fingerprint256;
      await eventually(async () => {
        const seen = [await served(), await served(), await served(), await served()];
        return seen.every((f) => f === fingerprintOf(other.server));
      }, 10_000, 'four new connections in a row (both workers) are served the new certificate');
    } finally {
      assert.equal(await portcullis.stop(), 0, portcullis.output());
    }
  });

  it("a worker replaced while a rotation has broken the files starts with its siblings' certificate", async () => {
    const live = mkdtempSync(path.join(scratch, 'workers-broken-'));
    copyFileSync(main.server, path.join(live, 'tls.crt'));
    copyFileSync(main.serverKey, path.join(live, 'tls.key'));
    const portcullis = await startPortcullis(config(
      { cert_file: path.join(live, 'tls.crt'), key_file: path.join(live, 'tls.key') },
      { server: { workers: 2 }, redis: { url: redis.url } },
    ));
    const workerPids = async (): Promise<(number | undefined)[]> =>
      ((await (await fetch(`${portcullis.adminUrl}/config`)).json()) as { workers: { pid?: number }[] }).workers.map((w) => w.pid);
    const refusedBy = (since: number): Set<unknown> => new Set(portcullis.logs().slice(since)
      .filter((l) => typeof l['msg'] === 'string' && l['msg'].startsWith('gRPC TLS certificate files refused')).map((l) => l['worker']));
    try {
      // A rotation that wrote a key of another certificate: both workers refuse it and keep serving main's.
      writeFileSync(path.join(live, '.tls.key.tmp'), readFileSync(other.serverKey));
      renameSync(path.join(live, '.tls.key.tmp'), path.join(live, 'tls.key'));
      await eventually(() => refusedBy(0).size === 2, 10_000, 'both workers refused the broken files');
      const [victim] = await workerPids();
      assert.ok(victim);
      const atKill = portcullis.logs().length;
      process.kill(victim, 'SIGKILL');
      await eventually(async () => {
        const [now] = await workerPids();
        return now !== undefined && now !== victim && (await fetch(`${portcullis.adminUrl}/readyz`)).status === 200;
      }, 30_000, 'a replacement worker, ready (read from the broken files alone, it would exit, again and again)');
      assert.equal(refusedBy(atKill).size, 1, 'the replacement reports the files it could not use');
      const served = async (): Promise<string> => (await servedCertificate(portcullis.grpc.host, portcullis.grpc.port, [main.ca])).fingerprint256;
      for (let i = 0; i < 4; i++) assert.equal(await served(), fingerprintOf(main.server), 'every new connection, either worker');
      for (let i = 0; i < 4; i++) assert.equal(await callStatus(portcullis.grpcAddress, tlsCredentials([main.ca])), status.OK, portcullis.output());
    } finally {
      assert.equal(await portcullis.stop(), 0, portcullis.output());
    }
  });
});
