// redis.tls: the CA, client certificate and server name for every Redis connection, read and checked once at load.
// Each problem is reported at the setting that names the file (portcullis.yaml:line, redis.tls.*), and /config shows
// the paths, never the files' text.

import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import type { Cluster, Redis } from 'ioredis';
import { parsePortcullisConfig, redactedConfig, restartOnlyChanges } from '../../../src/config/portcullis-config.js';
import { ErrorCode, PortcullisError } from '../../../src/shared/errors.js';
import { createRedisClient, tlsOptions, type RedisClient } from '../../../src/store/redis-client.js';
import type { RedisTlsSettings } from '../../../src/store/redis-config.js';
import { redisTransport } from '../../../src/store/redis-connection-log.js';
import { configIssues, type IssueSeen } from '../../support/config-issues.js';
import { makeRedisTlsFiles } from '../../support/redis-server.js';

const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-redis-tls-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const certs = path.join(dir, 'certs');
mkdirSync(certs);
const made = makeRedisTlsFiles(certs);
const other = makeRedisTlsFiles(certs, 'other-');
// The names the examples use, relative to the config file.
copyFileSync(made.caFile, path.join(certs, 'redis-ca.pem'));
copyFileSync(made.clientCertFile, path.join(certs, 'portcullis.pem'));
copyFileSync(made.clientKeyFile, path.join(certs, 'portcullis-key.pem'));
copyFileSync(other.clientKeyFile, path.join(certs, 'other-key.pem'));
writeFileSync(path.join(certs, 'not-pem.txt'), 'hello\n');
const FILE = path.join(dir, 'portcullis.yaml');
const pem = (name: string): string => readFileSync(path.join(certs, name), 'utf8');

const parse = (text: string): ReturnType<typeof parsePortcullisConfig> => parsePortcullisConfig(text, FILE);
const issues = (text: string): IssueSeen[] => configIssues(() => parse(text), text);

const TLS_ALL = '  tls:\n    ca_file: ./certs/redis-ca.pem\n    cert_file: certs/portcullis.pem\n    key_file: ./certs/portcullis-key.pem\n';

describe('redis.tls: read into typed, frozen settings', () => {
  const cases: { name: string; text: string; tls: Omit<RedisTlsSettings, 'pem'>; pem: RedisTlsSettings['pem'] }[] = [
    {
      name: 'a CA for a single node; relative paths are the config file directory\'s',
      text: 'redis:\n  url: rediss://redis.internal:6380\n  tls:\n    ca_file: ./certs/redis-ca.pem\n',
      tls: { caFile: path.join(certs, 'redis-ca.pem'), certFile: undefined, keyFile: undefined, serverName: undefined },
      pem: { ca: pem('redis-ca.pem'), cert: undefined, key: undefined },
    },
    {
      name: 'a client certificate and its key, and a CA',
      text: `redis:\n  url: rediss://redis.internal:6380\n${TLS_ALL}`,
      tls: { caFile: path.join(certs, 'redis-ca.pem'), certFile: path.join(certs, 'portcullis.pem'), keyFile: path.join(certs, 'portcullis-key.pem'), serverName: undefined },
      pem: { ca: pem('redis-ca.pem'), cert: pem('portcullis.pem'), key: pem('portcullis-key.pem') },
    },
    {
      name: 'a client certificate alone (the servers\' CA public): absolute paths as they are, a server name',
      text: `redis:\n  cluster: [rediss://a:7000, rediss://b:7001]\n  tls:\n    cert_file: ${path.join(certs, 'portcullis.pem')}\n    key_file: ${path.join(certs, 'portcullis-key.pem')}\n    server_name: redis.internal\n`,
      tls: { caFile: undefined, certFile: path.join(certs, 'portcullis.pem'), keyFile: path.join(certs, 'portcullis-key.pem'), serverName: 'redis.internal' },
      pem: { ca: undefined, cert: pem('portcullis.pem'), key: pem('portcullis-key.pem') },
    },
    {
      name: 'TLS sentinels',
      text: `redis:\n  sentinel:\n    master: m\n    nodes: [rediss://s1:26379]\n${TLS_ALL}`,
      tls: { caFile: path.join(certs, 'redis-ca.pem'), certFile: path.join(certs, 'portcullis.pem'), keyFile: path.join(certs, 'portcullis-key.pem'), serverName: undefined },
      pem: { ca: pem('redis-ca.pem'), cert: pem('portcullis.pem'), key: pem('portcullis-key.pem') },
    },
    {
      name: 'an empty tls: Node\'s defaults',
      text: 'redis:\n  url: rediss://r:1\n  tls: {}\n',
      tls: { caFile: undefined, certFile: undefined, keyFile: undefined, serverName: undefined },
      pem: { ca: undefined, cert: undefined, key: undefined },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const redis = parse(c.text).redis;
      assert.deepEqual(redis?.tls, { ...c.tls, pem: c.pem });
      assert.ok(Object.isFrozen(redis?.tls) && Object.isFrozen(redis?.tls?.pem));
    });
  }

  it('no tls: undefined', () => assert.equal(parse('redis:\n  url: rediss://r:1\n').redis?.tls, undefined));

  it('checked off the serving thread (no reader): the text alone, no file read', () => {
    const text = 'redis:\n  url: rediss://r:1\n  tls:\n    ca_file: ./missing.pem\n    cert_file: ./missing.pem\n    key_file: ./missing.pem\n';
    const config = parsePortcullisConfig(text, FILE, { schema: () => '{}', redisTls: null });
    assert.deepEqual(config.redis?.tls?.pem, { ca: undefined, cert: undefined, key: undefined });
    // Such a config connects nowhere: the files it names were not read.
    assert.throws(() => tlsOptions(config.redis?.tls), (error: unknown) => error instanceof PortcullisError && /was not read/.test(error.message));
  });
});

describe('redis.tls: each problem at the setting that names it', () => {
  const cases: { name: string; text: string; expected: { line: number; path: string; message: RegExp }[] }[] = [
    // The scheme is the one switch for TLS; certificates named for plaintext connections are a mistake, not a guess.
    { name: 'with a redis:// url', text: `redis:\n  url: redis://:pw@r:6379\n${TLS_ALL}`, expected: [{ line: 3, path: 'redis.tls', message: /^TLS settings for plaintext connections \(redis\.url is redis:\/\/\): use rediss:\/\/ URLs/ }] },
    { name: 'with redis:// cluster seeds', text: `redis:\n  cluster: [redis://a:1, redis://b:2]\n${TLS_ALL}`, expected: [{ line: 3, path: 'redis.tls', message: /\(the cluster seeds are redis:\/\/\)/ }] },
    { name: 'with redis:// sentinels', text: `redis:\n  sentinel:\n    master: m\n    nodes: [redis://s:26379]\n${TLS_ALL}`, expected: [{ line: 5, path: 'redis.tls', message: /\(the sentinels are redis:\/\/\)/ }] },
    { name: 'without any Redis', text: `log: { level: info }\nredis:\n${TLS_ALL}`, expected: [{ line: 3, path: 'redis.tls', message: /^is set but no Redis is/ }] },
    { name: 'a certificate without its key', text: 'redis:\n  url: rediss://r:1\n  tls:\n    cert_file: certs/portcullis.pem\n', expected: [{ line: 4, path: 'redis.tls.cert_file', message: /^needs key_file/ }] },
    { name: 'a key without its certificate', text: 'redis:\n  url: rediss://r:1\n  tls:\n    key_file: certs/portcullis-key.pem\n', expected: [{ line: 4, path: 'redis.tls.key_file', message: /^needs cert_file/ }] },
    { name: 'a missing file', text: 'redis:\n  url: rediss://r:1\n  tls:\n    ca_file: certs/nope.pem\n', expected: [{ line: 4, path: 'redis.tls.ca_file', message: /^cannot read the file: ENOENT.*certs\/nope\.pem/ }] },
    { name: 'a directory', text: 'redis:\n  url: rediss://r:1\n  tls:\n    ca_file: certs\n', expected: [{ line: 4, path: 'redis.tls.ca_file', message: /^cannot read the file: it is a directory/ }] },
    { name: 'a CA file that is not PEM', text: 'redis:\n  url: rediss://r:1\n  tls:\n    ca_file: certs/not-pem.txt\n', expected: [{ line: 4, path: 'redis.tls.ca_file', message: /certs\/not-pem\.txt holds no PEM certificate/ }] },
    { name: 'a key given as the CA', text: 'redis:\n  url: rediss://r:1\n  tls:\n    ca_file: certs/portcullis-key.pem\n', expected: [{ line: 4, path: 'redis.tls.ca_file', message: /holds a private key, not a PEM certificate/ }] },
    {
      name: 'certificate and key swapped',
      text: 'redis:\n  url: rediss://r:1\n  tls:\n    cert_file: certs/portcullis-key.pem\n    key_file: certs/portcullis.pem\n',
      expected: [
        { line: 4, path: 'redis.tls.cert_file', message: /portcullis-key\.pem holds a private key, not a PEM certificate/ },
        { line: 5, path: 'redis.tls.key_file', message: /portcullis\.pem holds a certificate, not a PEM private key/ },
      ],
    },
    {
      name: 'a key that is not the certificate\'s',
      text: 'redis:\n  url: rediss://r:1\n  tls:\n    cert_file: certs/portcullis.pem\n    key_file: certs/other-key.pem\n',
      expected: [{ line: 5, path: 'redis.tls.key_file', message: /other-key\.pem the private key it holds does not belong to the certificate \(subject CN=portcullis-test-client\)/ }],
    },
    { name: 'an empty path', text: 'redis:\n  url: rediss://r:1\n  tls:\n    ca_file: ""\n', expected: [{ line: 4, path: 'redis.tls.ca_file', message: /^expected a file path$/ }] },
    { name: 'an IP address as the server name', text: 'redis:\n  url: rediss://r:1\n  tls:\n    server_name: 10.0.0.1\n', expected: [{ line: 4, path: 'redis.tls.server_name', message: /^an IP address is not a server name/ }] },
    { name: 'a server name that is no host name', text: 'redis:\n  url: rediss://r:1\n  tls:\n    server_name: "redis internal"\n', expected: [{ line: 4, path: 'redis.tls.server_name', message: /^expected a host name/ }] },
    // Not offered: a certificate that is not checked is TLS against a passive listener only.
    { name: 'no switch to skip the check', text: 'redis:\n  url: rediss://r:1\n  tls:\n    insecure_skip_verify: true\n', expected: [{ line: 4, path: 'redis.tls.insecure_skip_verify', message: /^unknown key \(expected one of: ca_file, cert_file, key_file, server_name\)$/ }] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const found = issues(c.text);
      assert.equal(found.length, c.expected.length, JSON.stringify(found));
      c.expected.forEach((e, i) => {
        assert.equal(found[i]?.line, e.line, JSON.stringify(found[i]));
        assert.equal(found[i]?.path, e.path, JSON.stringify(found[i]));
        assert.match(found[i]?.message ?? '', e.message);
      });
    });
  }

  it('never quotes a file\'s text, whatever is wrong with it', () => {
    const text = 'redis:\n  url: rediss://r:1\n  tls:\n    ca_file: certs/portcullis-key.pem\n    cert_file: certs/portcullis-key.pem\n    key_file: certs/other-key.pem\n';
    const messages = issues(text).map((i) => i.message).join('\n');
    for (const line of [...pem('portcullis-key.pem').split('\n'), ...pem('other-key.pem').split('\n')].filter((l) => l.length > 8 && !l.startsWith('-----'))) {
      assert.ok(!messages.includes(line), messages);
    }
  });
});

describe('redis.tls on /config and across reloads', () => {
  it('/config shows the paths and the server name, never the files\' text', () => {
    const config = parse(`redis:\n  url: rediss://:s3cret@r:6380\n${TLS_ALL}    server_name: redis.internal\n`);
    const shown = redactedConfig(config) as { redis: { tls: unknown } };
    assert.deepEqual(shown.redis.tls, { caFile: path.join(certs, 'redis-ca.pem'), certFile: path.join(certs, 'portcullis.pem'), keyFile: path.join(certs, 'portcullis-key.pem'), serverName: 'redis.internal' });
    const text = JSON.stringify(shown);
    assert.ok(!/PRIVATE KEY|BEGIN CERTIFICATE/.test(text), text);
    for (const line of pem('portcullis-key.pem').split('\n').filter((l) => l.length > 8 && !l.startsWith('-----'))) assert.ok(!text.includes(line));
    assert.equal(config.redis?.tls?.pem.key, pem('portcullis-key.pem'), 'the config itself keeps the key');
  });

  it('a changed redis.tls waits for a restart, like the rest of redis', () => {
    const before = parse('redis:\n  url: rediss://r:1\n');
    const after = parse(`redis:\n  url: rediss://r:1\n${TLS_ALL}`);
    assert.deepEqual(restartOnlyChanges(before, after), ['redis']);
  });
});

describe('createRedisClient: redis.tls on every connection', () => {
  const settings = parse(`redis:\n  url: rediss://r:1\n${TLS_ALL}    server_name: redis.internal\n`).redis!.tls!;
  const expected = { ca: pem('redis-ca.pem'), cert: pem('portcullis.pem'), key: pem('portcullis-key.pem'), servername: 'redis.internal' };
  /** The client, closed before it connects anywhere (it would reconnect forever, keeping the test process alive). */
  const opened = <T extends RedisClient>(make: () => RedisClient): T => {
    const client = make();
    client.disconnect();
    return client as T;
  };

  it('a single node', () => assert.deepEqual(opened<Redis>(() => createRedisClient({ url: 'rediss://127.0.0.1:1', tls: settings })).options.tls, expected));

  it('every node of a cluster (redisOptions: the seeds and the nodes learnt from CLUSTER SLOTS)', () => {
    assert.deepEqual(opened<Cluster>(() => createRedisClient({ cluster: ['rediss://127.0.0.1:1'], tls: settings })).options.redisOptions?.tls, expected);
  });

  it('the sentinels and the master they name', () => {
    const options = opened<Redis>(() => createRedisClient({ sentinel: { master: 'm', nodes: ['rediss://127.0.0.1:1'], username: undefined, password: undefined }, tls: settings })).options;
    assert.deepEqual(options.sentinelTLS, expected);
    assert.deepEqual(options.tls, expected);
    assert.equal(options.enableTLSForSentinelMode, true);
  });

  // What the connection log reads a reset or an alert by (explainRedisError).
  it('the connection log knows which clients speak TLS and show a certificate', () => {
    const sentinel = (scheme: string): { sentinel: { master: string; nodes: string[]; username: undefined; password: undefined } } =>
      ({ sentinel: { master: 'm', nodes: [`${scheme}://127.0.0.1:1`], username: undefined, password: undefined } });
    const cases: [string, () => RedisClient, { tls: boolean; clientCertificate: boolean }][] = [
      ['redis://', () => createRedisClient({ url: 'redis://127.0.0.1:1' }), { tls: false, clientCertificate: false }],
      ['rediss://', () => createRedisClient({ url: 'rediss://127.0.0.1:1' }), { tls: true, clientCertificate: false }],
      ['rediss:// with a certificate', () => createRedisClient({ url: 'rediss://127.0.0.1:1', tls: settings }), { tls: true, clientCertificate: true }],
      ['a cluster with a certificate', () => createRedisClient({ cluster: ['rediss://127.0.0.1:1'], tls: settings }), { tls: true, clientCertificate: true }],
      ['a plaintext cluster', () => createRedisClient({ cluster: ['redis://127.0.0.1:1'] }), { tls: false, clientCertificate: false }],
      ['sentinels with a certificate', () => createRedisClient({ ...sentinel('rediss'), tls: settings }), { tls: true, clientCertificate: true }],
      ['plaintext sentinels', () => createRedisClient(sentinel('redis')), { tls: false, clientCertificate: false }],
    ];
    for (const [name, make, expected] of cases) assert.deepEqual(redisTransport(opened(make)), expected, name);
  });

  it('rediss:// without redis.tls: Node\'s defaults', () => {
    assert.deepEqual(opened<Redis>(() => createRedisClient({ url: 'rediss://127.0.0.1:1' })).options.tls, {});
  });

  // The config refuses these at its line; a caller that skips it must not connect in plaintext with certificates named.
  it('refuses redis.tls with plaintext connections', () => {
    const sentinel = { master: 'm', nodes: ['redis://127.0.0.1:1'], username: undefined, password: undefined };
    for (const options of [{ url: 'redis://127.0.0.1:1' }, { cluster: ['redis://127.0.0.1:1'] }, { sentinel }]) {
      let client: RedisClient | undefined;
      try {
        assert.throws(() => (client = createRedisClient({ ...options, tls: settings })), (error: unknown) =>
          error instanceof PortcullisError && error.code === ErrorCode.CONFIG_INVALID && /rediss:\/\//.test(error.message));
      } finally {
        client?.disconnect();
      }
    }
  });
});
