// `portcullis serve` (and `portcullis revoke`) against a single redis-server that wants a client certificate
// (tls-auth-clients yes) and whose CA is private, given by redis.tls.ca_file, not NODE_EXTRA_CA_CERTS. Without
// redis.tls.cert_file the server refuses every connection, and the log must say it is the certificate (Node says
// "write ECONNRESET" two times in three, "tlsv13 alert certificate required" the third); with it, counts work, for
// every client serve opens. ca_file replaces the CAs Node trusts: a server whose CA is only in NODE_EXTRA_CA_CERTS
// is not trusted then.

import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify as stringifyYaml } from 'yaml';
import { eventually } from '../../support/app.js';
import { runCommand } from '../../support/envoy.js';
import { hourlyUserLimit } from '../../support/hourly-counts.js';
import { portcullisBin, startPortcullis, validatePortcullisConfig, writeConfig, type PortcullisInstance } from '../../support/portcullis.js';
import { rateLimitClient, type RateLimitClient } from '../../support/ratelimit-client.js';
import { makeRedisTlsFiles, sendCommand, startRedis, type RedisServer, type RedisTlsFiles } from '../../support/redis-server.js';

const DOMAIN = 'mtls';
const LIMIT = 3;
const PASSWORD = 's3cret-mtls';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const users = hourlyUserLimit(DOMAIN, LIMIT);

/** The code the service answered for `user`; undefined when it answered by failure_mode (allow): nothing counted. */
async function ask(client: RateLimitClient, user: string): Promise<string | undefined> {
  const status = (await users.ask(client, user)).statuses?.[0];
  return status?.current_limit === undefined || status.current_limit === null ? undefined : String(status.code);
}

describe('portcullis and a Redis that requires a client certificate (tls-auth-clients yes), its CA given by redis.tls.ca_file', () => {
  let dir: string;
  let descriptors: string;
  let keysFile: string;
  let tls: RedisTlsFiles;
  let other: RedisTlsFiles;
  let redis: RedisServer;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'portcullis-mtls-'));
    descriptors = path.join(dir, 'descriptors');
    const certs = path.join(dir, 'certs');
    for (const d of [descriptors, certs]) mkdirSync(d);
    users.writeDescriptors(descriptors);
    keysFile = path.join(dir, 'keys.yaml');
    writeFileSync(keysFile, `- { id: k1, sha256: '${'0'.repeat(64)}', owner: o }\n`);
    tls = makeRedisTlsFiles(certs);
    other = makeRedisTlsFiles(certs, 'other-');
    redis = await startRedis({ tls, authClients: true, password: PASSWORD });
  });
  after(async () => {
    await redis?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** portcullis.yaml with every Redis client serve opens: the counter store, the ext_proc cache, the revocation list. */
  const config = (redisTls: object): object => ({
    server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
    redis: { url: `rediss://:${PASSWORD}@127.0.0.1:${redis.port}`, tls: redisTls, connect_timeout_ms: 500 },
    log: { level: 'info' },
    // allow: a store the service cannot use shows as answers without a current limit, not as gRPC errors.
    ratelimit: { descriptors, failure_mode: 'allow', timeout_ms: 500 },
    authz: {
      api_keys: { header: 'x-api-key', file: keysFile },
      revocation: { enabled: true, on_unavailable: 'deny' },
      policies: [{ name: 'api', match: { path_prefix: '/' }, authenticate: ['api_key'] }],
    },
  });
  const secrets = (): string[] => [PASSWORD, ...[tls.clientKeyFile, other.clientKeyFile].flatMap((file) => readKeyLines(file))];
  const assertNothingSecretLogged = (server: PortcullisInstance): void => {
    const output = server.output();
    for (const secret of secrets()) assert.ok(!output.includes(secret), 'neither the password nor key material is logged');
  };

  it('without a client certificate: never counts, and each client logs once that it has none', async () => {
    const server = await startPortcullis(config({ ca_file: tls.caFile }), { env: { NODE_EXTRA_CA_CERTS: '' } });
    const client = rateLimitClient(server.grpcAddress);
    try {
      for (const deadline = Date.now() + 3000; Date.now() < deadline; await sleep(50)) {
        assert.equal(await ask(client, 'refused'), undefined, 'counted without a client certificate');
      }
      const failed = server.logs().filter((l) => l['msg'] === 'redis connection failed');
      for (const name of ['counter store', 'extproc cache', 'revocation list']) {
        const reasons = failed.filter((l) => l['client'] === name).map((l) => String(l['reason']));
        assert.equal(reasons.length, 1, `${name}: one line: ${JSON.stringify(failed)}`);
        assert.match(reasons[0]!, /^no client certificate: the server (?:closed the TLS connection \((?:read|write) ECONNRESET\)|answered tlsv13 alert certificate required \(SSL alert number 116\)): a server that requires one \(tls-auth-clients yes\) refuses the connection so: set redis\.tls\.cert_file and redis\.tls\.key_file$/);
      }
      const readyz = await fetch(`${server.adminUrl}/readyz`);
      assert.equal(readyz.status, 503);
      assert.match(((await readyz.json()) as { reasons: string[] }).reasons.join(), /counter store not reachable: no client certificate/);
      assert.match(redis.output(), /peer did not return a certificate/, 'the server refused it for that reason');
      assertNothingSecretLogged(server);
    } finally {
      client.close();
      assert.equal(await server.stop(), 0, 'exits cleanly: it did not crash');
    }
  });

  it('with its certificate and key (relative paths): counts and limits; /config shows the paths, never the key', async () => {
    // The files beside the config, named relative to it.
    const { file, dir: configDir } = writeConfig(config({ ca_file: './certs/ca.pem', cert_file: 'certs/client.pem', key_file: './certs/client-key.pem' }));
    mkdirSync(path.join(configDir, 'certs'));
    cpSync(tls.caFile, path.join(configDir, 'certs', 'ca.pem'));
    cpSync(tls.clientCertFile, path.join(configDir, 'certs', 'client.pem'));
    cpSync(tls.clientKeyFile, path.join(configDir, 'certs', 'client-key.pem'));
    const server = await startPortcullis({}, { configFile: file, env: { NODE_EXTRA_CA_CERTS: '' } });
    const client = rateLimitClient(server.grpcAddress);
    try {
      const startedMs = Date.now();
      let first: string | undefined;
      for (const deadline = Date.now() + 5000; first === undefined && Date.now() < deadline; await sleep(50)) first = await ask(client, 'warm-up');
      const lines = (): string => JSON.stringify(server.logs().filter((l) => /redis|counter store/.test(String(l['msg']))));
      assert.equal(first, 'OK', `never counted with the client certificate: ${lines()}`);
      const codes: (string | undefined)[] = [];
      for (let i = 0; i <= LIMIT; i++) codes.push(await ask(client, 'alice'));
      assert.deepEqual(codes, [...Array<string>(LIMIT).fill('OK'), 'OVER_LIMIT']);
      assert.equal(await users.storedCount(redis, 'alice', startedMs), LIMIT + 1, 'the count is in Redis');
      // Every client connected: none logged a failure, and /readyz is ready (the revocation list among its checks).
      assert.deepEqual(server.logs().filter((l) => l['msg'] === 'redis connection failed'), [], lines());
      assert.equal((await fetch(`${server.adminUrl}/readyz`)).status, 200);

      const shown = await (await fetch(`${server.adminUrl}/config`)).text();
      const certsDir = path.join(configDir, 'certs');
      assert.deepEqual((JSON.parse(shown) as { redis: { tls: unknown } }).redis.tls, {
        caFile: path.join(certsDir, 'ca.pem'), certFile: path.join(certsDir, 'client.pem'), keyFile: path.join(certsDir, 'client-key.pem'),
      });
      assert.ok(!/PRIVATE KEY|BEGIN CERTIFICATE/.test(shown), shown);
      assertNothingSecretLogged(server);
      for (const secret of secrets()) assert.ok(!shown.includes(secret), '/config shows no secret');
    } finally {
      client.close();
      await server.stop();
    }
  });

  it('ca_file replaces the CAs Node trusts: the right CA in NODE_EXTRA_CA_CERTS does not help when ca_file names another', async () => {
    const server = await startPortcullis(config({ ca_file: other.caFile, cert_file: tls.clientCertFile, key_file: tls.clientKeyFile }), { env: { NODE_EXTRA_CA_CERTS: tls.caFile } });
    const client = rateLimitClient(server.grpcAddress);
    try {
      for (const deadline = Date.now() + 2000; Date.now() < deadline; await sleep(100)) {
        assert.equal(await ask(client, 'other-ca'), undefined, 'counted by a server whose CA is not ca_file\'s');
      }
      const failed = server.logs().filter((l) => l['msg'] === 'redis connection failed' && l['client'] === 'counter store');
      assert.match(String(failed[0]?.['reason']), /certificate/, JSON.stringify(failed));
    } finally {
      client.close();
      await server.stop();
    }
  });

  // Each worker parses the config it is handed and opens its own clients: each must read and show the certificate.
  it('worker processes (server.workers: 2) connect with the same settings', async () => {
    const base = config({ ca_file: tls.caFile, cert_file: tls.clientCertFile, key_file: tls.clientKeyFile }) as { server: object };
    const server = await startPortcullis({ ...base, server: { ...base.server, workers: 2 } }, { env: { NODE_EXTRA_CA_CERTS: '' }, readyTimeoutMs: 60_000 });
    try {
      await eventually(async () => (await fetch(`${server.adminUrl}/readyz`)).status === 200, 20_000, 'every worker ready: each reached Redis');
      assert.deepEqual(server.logs().filter((l) => l['msg'] === 'redis connection failed'), []);
      assertNothingSecretLogged(server);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });

  it('portcullis revoke reaches the list with the same settings; validate names a key that is not the certificate\'s', async () => {
    const authz = { policies: [{ name: 'open', match: { path_prefix: '/' }, authenticate: ['anonymous'] }], revocation: { enabled: true } };
    const settings = (key: string): object => ({
      redis: { url: `rediss://:${PASSWORD}@127.0.0.1:${redis.port}`, tls: { ca_file: tls.caFile, cert_file: tls.clientCertFile, key_file: key } },
      ratelimit: { descriptors }, authz,
    });
    const { file } = writeConfig(settings(tls.clientKeyFile));
    const revoked = await runCommand(process.execPath, [portcullisBin(), 'revoke', '--config', file, '--jti', 'over-mtls']);
    assert.equal(revoked.code, 0, revoked.output);
    assert.match(await sendCommand(redis.port, ['ZSCORE', '{portcullis:authz}:revoked:jti', 'over-mtls']), /^\$\d+\r\n\d+/);

    const wrong = writeConfig(settings(other.clientKeyFile)).file;
    const validated = await validatePortcullisConfig(wrong);
    assert.equal(validated.code, 1, validated.output);
    const line = stringifyYaml(settings(other.clientKeyFile)).split('\n').findIndex((l) => l.includes('key_file:')) + 1;
    assert.match(validated.output, new RegExp(`portcullis\\.yaml: ${other.clientKeyFile.replace(/[.]/g, '\\.')} the private key it holds does not belong to the certificate .*\\(line ${line}, at redis\\.tls\\.key_file\\)`));
    assert.ok(!secrets().some((secret) => validated.output.includes(secret)), validated.output);
  });
});

/** The base64 lines of a PEM private key file: what must never appear in a log. */
function readKeyLines(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 16 && !l.startsWith('-----'));
}
